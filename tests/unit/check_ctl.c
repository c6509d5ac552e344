// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of the control protocol (ctl.c, dmrc.c) without FUSE: a real
 * backing directory and hc_fs, requests through hc_ctl_handle() and, once,
 * through the listening socket.  Covered: every error class of a request
 * line; status, stats, domain and volume requests and their errors (EEXIST,
 * ENOENT, EBUSY while open, bad kind); map extents after writes and a punch;
 * the curve and recommendation of a known eviction/miss sequence driven
 * through hc_vol_write and hc_vol_read; domain_set_memory moving the curve's
 * memory sizes; a trace whose records match the I/O; flush; agent requests
 * refused outside a connection; the socket's mode, credentials check and
 * removal; and a removed domain outliving its last open, unlinked volume.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctl.h"
#include "hecache/ctl.h"
#include "ioeng.h"
#include "sb.h"
#include "t_helpers.h"
#include "volume.h"

#define BS HC_BLOCK_SIZE

static struct {
	struct hc_backing *b;
	struct hc_ioeng *e;
	struct hc_fs *fs;
	struct hc_ctl *c;
	char msg[512];
} F;

static void start(int mrc_on)
{
	memset(&F, 0, sizeof(F));
	int r = hc_backing_open(t_dir, 1, &F.b, F.msg, sizeof(F.msg));
	ck_assert_msg(r == 0, "hc_backing_open: %s", F.msg);
	ck_assert_int_eq(hc_ioeng_create("sync", 64, 0, &F.e), 0);
	struct hc_mrc_config cfg = { .max_tracked = 4096, .bucket_blocks = 1 };
	r = hc_fs_create(F.b, F.e, 1 << 20, 0, mrc_on ? &cfg : NULL, &F.fs, F.msg, sizeof(F.msg));
	ck_assert_msg(r == 0, "hc_fs_create: %s", F.msg);
	struct hc_ctl_info info = {
		.fs = F.fs, .backing = t_dir, .mountpoint = "/nowhere", .io_engine = "sync",
		.mrc_mode = mrc_on ? "exact" : "off", .ghost_bytes = 4096ull * BS,
		.owner = getuid(),
	};
	ck_assert_int_eq(hc_ctl_create(&info, &F.c), 0);
}

static void stop(void)
{
	hc_ctl_destroy(F.c);
	hc_fs_destroy(F.fs);
	hc_ioeng_destroy(F.e);
	hc_backing_close(F.b);
	memset(&F, 0, sizeof(F));
}

/* Sends a printf-formatted request; returns the parsed reply. */
static struct json_object *call(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static struct json_object *call(const char *fmt, ...)
{
	char line[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	char *s = hc_ctl_handle(F.c, line, strlen(line));
	ck_assert_ptr_nonnull(s);
	struct json_object *o = json_tokener_parse(s);
	ck_assert_msg(o && json_object_is_type(o, json_type_object), "reply not an object: %s", s);
	free(s);
	return o;
}

static struct json_object *member(struct json_object *o, const char *k)
{
	struct json_object *v = NULL;
	ck_assert_msg(json_object_object_get_ex(o, k, &v), "no \"%s\" in %s", k,
		      json_object_to_json_string(o));
	return v;
}

static int64_t num(struct json_object *o, const char *k)
{
	return json_object_get_int64(member(o, k));
}

/* The request must succeed; returns the reply (caller puts it). */
#define OK(...)                                                                     \
	({                                                                          \
		struct json_object *_o = call(__VA_ARGS__);                         \
		ck_assert_msg(json_object_get_boolean(member(_o, "ok")), "%s",      \
			      json_object_to_json_string(_o));                      \
		_o;                                                                 \
	})

/* The request must fail with error name err. */
#define FAILS(err, ...)                                                             \
	do {                                                                        \
		struct json_object *_o = call(__VA_ARGS__);                         \
		ck_assert_msg(!json_object_get_boolean(member(_o, "ok")), "%s",     \
			      json_object_to_json_string(_o));                      \
		ck_assert_str_eq(json_object_get_string(member(_o, "error")), err); \
		ck_assert_int_gt(strlen(json_object_get_string(member(_o, "message"))), 5); \
		ck_assert_int_eq(num(_o, "v"), 1);                                  \
		json_object_put(_o);                                                \
	} while (0)

static struct hc_volume *volume(const char *dom, const char *name)
{
	pthread_mutex_lock(&F.fs->ns_lock);
	struct hc_domain *d = hc_ns_find_domain(F.fs, dom);
	struct hc_volume *v = d ? hc_ns_find_volume(d, name) : NULL;
	pthread_mutex_unlock(&F.fs->ns_lock);
	ck_assert_ptr_nonnull(v);
	return v;
}

static void write_blocks(struct hc_volume *v, uint64_t first, uint64_t n, int seed)
{
	char *buf = t_alloc_aligned(BS);
	for (uint64_t b = first; b < first + n; b++) {
		t_pattern(buf, BS, (uint64_t)seed, b * BS);
		ck_assert_int_eq(hc_vol_write(F.fs, v, b * BS, buf, BS, NULL, NULL), BS);
	}
	free(buf);
}

static void read_blocks(struct hc_volume *v, uint64_t first, uint64_t n, int seed)
{
	char *buf = t_alloc_aligned(BS);
	for (uint64_t b = first; b < first + n; b++) {
		ck_assert_int_eq(t_vol_read(F.fs, v, b * BS, buf, BS), BS);
		ck_assert_int_eq(t_pattern_check(buf, BS, (uint64_t)seed, b * BS), -1);
	}
	free(buf);
}

START_TEST(test_bad_requests)
{
	start(1);
	FAILS("EINVAL", "garbage");
	FAILS("EINVAL", "{\"op\":\"status\"");
	FAILS("EINVAL", "{\"op\":\"status\"} x");
	FAILS("EINVAL", "[1]");
	FAILS("EINVAL", "17");
	FAILS("EINVAL", "{}");
	FAILS("EINVAL", "{\"op\":null}");
	FAILS("EPROTO", "{\"op\":\"status\",\"v\":0}");
	FAILS("EPROTO", "{\"op\":\"status\",\"v\":1.5}");
	FAILS("EOPNOTSUPP", "{\"op\":\"format_disk\"}");
	FAILS("EINVAL", "{\"op\":\"stats\",\"domain\":7}");
	FAILS("EINVAL", "{\"op\":\"stats\",\"domain\":\"\"}");
	FAILS("EINVAL", "{\"op\":\"stats\",\"domain\":\"a/b\"}");
	FAILS("EINVAL", "{\"op\":\"stats\",\"domain\":\"..\"}");
	FAILS("EINVAL", "{\"op\":\"mrc\",\"domain\":\"x\",\"step\":100}");
	FAILS("EINVAL", "{\"op\":\"recommend\",\"domain\":\"x\",\"tolerance\":\"big\"}");
	FAILS("EINVAL", "{\"op\":\"recommend\",\"domain\":\"x\",\"tolerance\":-1}");
	FAILS("EINVAL", "{\"op\":\"trace_start\",\"domain\":\"x\",\"path\":\"rel/path\"}");
	FAILS("EINVAL", "{\"op\":\"agent_register\",\"domain\":\"x\"}");
	FAILS("EINVAL", "{\"op\":\"agent_report\",\"memory_bytes\":4096}");
	FAILS("EINVAL", "{\"op\":\"cache_resize\",\"bytes\":2097152}");	/* pool: 1M */
	FAILS("EINVAL", "{\"op\":\"cache_resize\",\"bytes\":4096}");
	FAILS("EINVAL", "{\"op\":\"cache_resize\"}");
	char deep[200];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	char *s = hc_ctl_handle(F.c, deep, sizeof(deep));
	ck_assert_ptr_nonnull(strstr(s, "\"EINVAL\""));
	free(s);
	/* The id is echoed, whatever its type; a good request still works. */
	struct json_object *o = OK("{\"op\":\"status\",\"id\":{\"n\":[1,2]}}");
	ck_assert_str_eq(json_object_to_json_string_ext(member(o, "id"), JSON_C_TO_STRING_PLAIN),
			 "{\"n\":[1,2]}");
	ck_assert_int_eq(num(o, "protocol"), HC_CTL_PROTOCOL);
	ck_assert_str_eq(json_object_get_string(member(member(o, "mrc"), "mode")), "exact");
	json_object_put(o);
	stop();
}
END_TEST

START_TEST(test_volumes)
{
	start(1);
	json_object_put(OK("{\"op\":\"volume_create\",\"domain\":\"vm1\",\"volume\":\"swap\","
			   "\"size\":1048576,\"kind\":\"swap\"}"));
	FAILS("EEXIST", "{\"op\":\"volume_create\",\"domain\":\"vm1\",\"volume\":\"swap\",\"size\":1}");
	FAILS("EEXIST", "{\"op\":\"domain_create\",\"domain\":\"vm1\"}");
	FAILS("EINVAL", "{\"op\":\"volume_create\",\"domain\":\"vm1\",\"volume\":\"d\",\"size\":1,"
			"\"kind\":\"tape\"}");
	FAILS("EFBIG", "{\"op\":\"volume_create\",\"domain\":\"vm1\",\"volume\":\"d\","
		       "\"size\":18446744073709551615}");
	json_object_put(OK("{\"op\":\"domain_create\",\"domain\":\"vm2\"}"));
	struct json_object *o = OK("{\"op\":\"volume_list\",\"domain\":\"vm1\"}");
	struct json_object *arr = member(o, "volumes");
	ck_assert_int_eq(json_object_array_length(arr), 1);
	struct json_object *v0 = json_object_array_get_idx(arr, 0);
	ck_assert_str_eq(json_object_get_string(member(v0, "kind")), "swap");
	ck_assert_int_eq(num(v0, "size"), 1 << 20);
	json_object_put(o);
	char *home = t_path(t_dir, "vm1/swap");
	ck_assert_int_eq(t_file_size(home), 1 << 20);

	o = OK("{\"op\":\"volume_resize\",\"domain\":\"vm1\",\"volume\":\"swap\",\"size\":8192}");
	ck_assert_int_eq(num(member(o, "volume"), "size"), 8192);
	json_object_put(o);
	json_object_put(OK("{\"op\":\"volume_set_kind\",\"domain\":\"vm1\",\"volume\":\"swap\","
			   "\"kind\":\"ram\"}"));
	FAILS("ENOENT", "{\"op\":\"volume_resize\",\"domain\":\"vm1\",\"volume\":\"no\",\"size\":1}");
	FAILS("ENOENT", "{\"op\":\"volume_delete\",\"domain\":\"vm9\",\"volume\":\"swap\"}");

	struct hc_volume *v = volume("vm1", "swap");
	ck_assert_str_eq(hc_kind_name(v->kind), "ram");
	hc_ns_open(F.fs, v);
	FAILS("EBUSY", "{\"op\":\"volume_delete\",\"domain\":\"vm1\",\"volume\":\"swap\"}");
	hc_ns_release(F.fs, v);
	json_object_put(OK("{\"op\":\"volume_delete\",\"domain\":\"vm1\",\"volume\":\"swap\"}"));
	ck_assert_int_eq(t_file_size(home), -1);
	free(home);

	o = OK("{\"op\":\"domain_list\"}");
	ck_assert_int_eq(json_object_array_length(member(o, "domains")), 2);
	json_object_put(o);
	o = OK("{\"op\":\"status\"}");
	ck_assert_int_eq(num(o, "domains"), 2);
	ck_assert_int_eq(num(o, "volumes"), 0);
	json_object_put(o);
	stop();
}
END_TEST

START_TEST(test_map_stats_flush)
{
	start(1);
	json_object_put(OK("{\"op\":\"volume_create\",\"domain\":\"vm1\",\"volume\":\"disk\","
			   "\"size\":%d}", 64 * BS));
	struct hc_volume *v = volume("vm1", "disk");
	write_blocks(v, 8, 8, 1);
	write_blocks(v, 32, 4, 1);
	struct json_object *o = OK("{\"op\":\"flush\",\"domain\":\"vm1\"}");
	ck_assert_int_eq(num(o, "flushed_blocks"), 12);
	json_object_put(o);
	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  10 * BS, 2 * BS), 0);
	o = OK("{\"op\":\"map\",\"domain\":\"vm1\",\"volume\":\"disk\"}");
	const char *want = "[{\"start\":0,\"count\":8,\"target\":\"hole\"},"
			   "{\"start\":8,\"count\":2,\"target\":\"home\"},"
			   "{\"start\":10,\"count\":2,\"target\":\"hole\"},"
			   "{\"start\":12,\"count\":4,\"target\":\"home\"},"
			   "{\"start\":16,\"count\":16,\"target\":\"hole\"},"
			   "{\"start\":32,\"count\":4,\"target\":\"home\"},"
			   "{\"start\":36,\"count\":28,\"target\":\"hole\"}]";
	ck_assert_str_eq(json_object_to_json_string_ext(member(o, "extents"),
							JSON_C_TO_STRING_PLAIN), want);
	json_object_put(o);
	o = OK("{\"op\":\"map\",\"domain\":\"vm1\",\"volume\":\"disk\",\"start\":9,\"end\":13}");
	ck_assert_str_eq(json_object_to_json_string_ext(member(o, "extents"),
							JSON_C_TO_STRING_PLAIN),
			 "[{\"start\":9,\"count\":1,\"target\":\"home\"},"
			 "{\"start\":10,\"count\":2,\"target\":\"hole\"},"
			 "{\"start\":12,\"count\":1,\"target\":\"home\"}]");
	json_object_put(o);
	FAILS("EINVAL", "{\"op\":\"map\",\"domain\":\"vm1\",\"volume\":\"disk\",\"start\":20,"
			"\"end\":10}");

	read_blocks(v, 12, 4, 1);
	o = OK("{\"op\":\"stats\",\"domain\":\"vm1\"}");
	struct json_object *d = json_object_array_get_idx(member(o, "domains"), 0);
	ck_assert_str_eq(json_object_get_string(member(d, "name")), "vm1");
	ck_assert_int_eq(num(d, "admissions"), 12);
	ck_assert_int_eq(num(d, "hits") + num(d, "misses"), 4);
	ck_assert_int_eq(num(member(o, "total"), "admissions"), 12);
	json_object_put(o);
	FAILS("ENOENT", "{\"op\":\"stats\",\"domain\":\"vm2\"}");
	FAILS("ENOENT", "{\"op\":\"flush\",\"domain\":\"vm2\"}");
	stop();
}
END_TEST

/* Curve points as integers. */
static void curve_of(struct json_object *o, int64_t *pts, size_t n)
{
	struct json_object *c = member(o, "curve");
	ck_assert_int_eq(json_object_array_length(c), n);
	for (size_t i = 0; i < n; i++)
		pts[i] = (int64_t)json_object_get_double(member(json_object_array_get_idx(c, i),
								 "misses"));
}

START_TEST(test_mrc_recommend)
{
	start(1);
	json_object_put(OK("{\"op\":\"volume_create\",\"domain\":\"vm1\",\"volume\":\"swap\","
			   "\"size\":%d}", 256 * BS));
	struct hc_volume *v = volume("vm1", "swap");
	FAILS("EAGAIN", "{\"op\":\"recommend\",\"domain\":\"vm1\"}");
	/* Evict 0..127 in order, then read 0..63: block b has 127-b evicted after it. */
	write_blocks(v, 0, 128, 2);
	read_blocks(v, 0, 64, 2);
	read_blocks(v, 0, 8, 2);	/* silent re-reads: not in the curve */
	char *zero = t_alloc_aligned(64 * BS);
	ck_assert_int_eq(t_vol_read(F.fs, v, 128 * BS, zero, 64 * BS), 64 * BS);
	free(zero);			/* 64 cold misses: in every point */
	struct json_object *o = OK("{\"op\":\"mrc\",\"domain\":\"vm1\",\"step\":%d,\"points\":5}",
				   32 * BS);
	int64_t pts[5];
	curve_of(o, pts, 5);
	/* b in 0..63 hits with c >= 128-b pages: none up to 64, b >= 32 at 96, all at 128. */
	ck_assert_int_eq(pts[0], 64 + 64);
	ck_assert_int_eq(pts[1], 64 + 64);
	ck_assert_int_eq(pts[2], 64 + 64);
	ck_assert_int_eq(pts[3], 32 + 64);
	ck_assert_int_eq(pts[4], 0 + 64);
	ck_assert_int_eq(num(o, "evictions"), 128);
	ck_assert_int_eq(num(o, "misses"), 136);
	ck_assert_int_eq((int64_t)json_object_get_double(member(o, "cold")), 64);
	ck_assert_int_eq((int64_t)json_object_get_double(member(o, "silent")), 8);
	ck_assert(json_object_is_type(member(json_object_array_get_idx(member(o, "curve"), 1),
					     "memory_bytes"), json_type_null));
	json_object_put(o);

	json_object_put(OK("{\"op\":\"domain_set_memory\",\"domain\":\"vm1\",\"bytes\":%d}",
			   1024 * BS));
	o = OK("{\"op\":\"recommend\",\"domain\":\"vm1\",\"step\":%d,\"tolerance\":0.05}", 32 * BS);
	ck_assert_int_eq(num(o, "extra_bytes"), 128 * BS);
	ck_assert_int_eq(num(o, "memory_bytes"), (1024 + 128) * BS);
	ck_assert_int_eq((int64_t)json_object_get_double(member(o, "misses_now")), 128);
	ck_assert_int_eq((int64_t)json_object_get_double(member(o, "misses_at_max")), 64);
	json_object_put(o);
	/* 96 <= 1.5 * 64: 96 pages do; 1 + 1 = 2x: the current size does. */
	o = OK("{\"op\":\"recommend\",\"domain\":\"vm1\",\"step\":%d,\"tolerance\":0.5}", 32 * BS);
	ck_assert_int_eq(num(o, "extra_bytes"), 96 * BS);
	json_object_put(o);
	o = OK("{\"op\":\"recommend\",\"domain\":\"vm1\",\"step\":%d,\"tolerance\":1}", 32 * BS);
	ck_assert_int_eq(num(o, "extra_bytes"), 0);
	json_object_put(o);
	o = OK("{\"op\":\"domain_list\"}");
	struct json_object *d = json_object_array_get_idx(member(o, "domains"), 0);
	ck_assert_int_eq(num(d, "memory_bytes"), 1024 * BS);
	ck_assert_str_eq(json_object_get_string(member(d, "memory_source")), "hectl");
	ck_assert(!json_object_get_boolean(member(d, "agent")));
	json_object_put(o);

	json_object_put(OK("{\"op\":\"mrc_reset\",\"domain\":\"vm1\"}"));
	o = OK("{\"op\":\"mrc\",\"domain\":\"vm1\"}");
	ck_assert_int_eq(num(o, "misses"), 0);
	json_object_put(o);
	FAILS("ENOENT", "{\"op\":\"mrc\",\"domain\":\"vm9\"}");
	stop();

	start(0);	/* same backing directory, curves off */
	FAILS("EOPNOTSUPP", "{\"op\":\"mrc\",\"domain\":\"vm1\"}");
	stop();
}
END_TEST

START_TEST(test_trace)
{
	start(_i);	/* traces work with curves on and off */
	json_object_put(OK("{\"op\":\"volume_create\",\"domain\":\"vm1\",\"volume\":\"swap\","
			   "\"size\":%d}", 64 * BS));
	struct hc_volume *v = volume("vm1", "swap");
	char *path = t_path(t_dir, "events.trace");
	json_object_put(OK("{\"op\":\"trace_start\",\"domain\":\"vm1\",\"path\":\"%s\"}", path));
	FAILS("EBUSY", "{\"op\":\"trace_start\",\"domain\":\"vm1\",\"path\":\"%s.2\"}", path);
	write_blocks(v, 3, 5000 / 64 + 1, 3);	/* 79 evictions of blocks 3..81 */
	read_blocks(v, 5, 2, 3);
	struct json_object *o = OK("{\"op\":\"trace_stop\",\"domain\":\"vm1\"}");
	ck_assert_int_eq(num(o, "records"), 81);
	json_object_put(o);
	FAILS("ENOENT", "{\"op\":\"trace_stop\",\"domain\":\"vm1\"}");
	FAILS("EEXIST", "{\"op\":\"trace_start\",\"domain\":\"vm1\",\"path\":\"%s\"}", path);

	size_t len;
	char *t = t_read_file(path, &len);
	ck_assert_int_eq(len, sizeof(struct hc_trace_header) + 81 * sizeof(struct hc_trace_rec));
	struct hc_trace_header *h = (struct hc_trace_header *)t;
	ck_assert_int_eq(memcmp(h->magic, HC_TRACE_MAGIC, 8), 0);
	ck_assert_int_eq(h->version, HC_TRACE_VERSION);
	ck_assert_int_eq(h->record_size, sizeof(struct hc_trace_rec));
	ck_assert_str_eq(h->domain, "vm1");
	struct hc_trace_rec *r = (struct hc_trace_rec *)(t + sizeof(*h));
	uint64_t last = 0;
	for (int i = 0; i < 81; i++) {
		ck_assert_int_eq(r[i].op, i < 79 ? HC_TRACE_EVICT : HC_TRACE_MISS);
		ck_assert_int_eq(r[i].block, i < 79 ? (uint64_t)i + 3 : (uint64_t)i - 79 + 5);
		ck_assert_int_eq(r[i].vol, v->cv.id);
		ck_assert_uint_ge(r[i].t_ns, last);
		last = r[i].t_ns;
	}
	free(t);
	free(path);
	stop();
}
END_TEST

START_TEST(test_socket)
{
	start(1);
	int dirfd = open(t_dir, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(dirfd, 0);
	ck_assert_int_eq(hc_ctl_listen(F.c, dirfd), 0);
	char *path = t_path(t_dir, HC_CTL_SOCK);
	struct stat st;
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert(S_ISSOCK(st.st_mode));
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	const char req[] = "{\"op\":\"status\",\"id\":3}\n{\"op\":\"agent_register\","
			   "\"domain\":\"none\"}\n";
	ck_assert_int_eq(write(fd, req, sizeof(req) - 1), sizeof(req) - 1);
	char buf[4096];
	size_t got = 0;
	while (got < sizeof(buf) - 1) {
		ssize_t n = read(fd, buf + got, sizeof(buf) - 1 - got);
		ck_assert_int_gt(n, 0);
		got += (size_t)n;
		buf[got] = 0;
		char *nl = strchr(buf, '\n');
		if (nl && strchr(nl + 1, '\n'))
			break;
	}
	ck_assert_ptr_nonnull(strstr(buf, "\"id\":3"));
	ck_assert_ptr_nonnull(strstr(buf, "\"ENOENT\""));	/* no domain "none" */
	close(fd);
	hc_ctl_destroy(F.c);
	F.c = NULL;
	ck_assert_int_eq(stat(path, &st), -1);	/* removed */
	close(dirfd);
	free(path);
	stop();
}
END_TEST

/* A removed domain stays until its open, unlinked volume goes (ASan checks). */
START_TEST(test_domain_outlives_volume)
{
	start(1);
	json_object_put(OK("{\"op\":\"volume_create\",\"domain\":\"vm1\",\"volume\":\"d\","
			   "\"size\":%d}", 16 * BS));
	struct hc_volume *v = volume("vm1", "d");
	hc_ns_open(F.fs, v);
	struct hc_node *dn, *vn;
	ck_assert_int_eq(hc_ns_lookup(F.fs, &F.fs->root, "vm1", &dn), 0);
	ck_assert_int_eq(hc_ns_lookup(F.fs, dn, "d", &vn), 0);
	ck_assert_int_eq(hc_ns_unlink(F.fs, dn, "d"), 0);
	ck_assert_int_eq(hc_ns_rmdir(F.fs, &F.fs->root, "vm1"), 0);
	hc_ns_forget(F.fs, dn, 1);	/* the domain is gone from every list */
	write_blocks(v, 0, 4, 4);	/* counts in the removed domain's stats */
	read_blocks(v, 0, 4, 4);
	hc_ns_release(F.fs, v);
	hc_ns_forget(F.fs, vn, 1);	/* frees the volume, then the domain */
	struct json_object *o = OK("{\"op\":\"status\"}");
	ck_assert_int_eq(num(o, "domains"), 0);
	json_object_put(o);
	stop();
}
END_TEST

static Suite *ctl_suite(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("protocol");
	t_tcase_fixtures(tc, 60);
	tcase_add_test(tc, test_bad_requests);
	tcase_add_test(tc, test_socket);
	suite_add_tcase(s, tc);

	tc = tcase_create("requests");
	t_tcase_fixtures(tc, 60);
	tcase_add_test(tc, test_volumes);
	tcase_add_test(tc, test_map_stats_flush);
	tcase_add_test(tc, test_domain_outlives_volume);
	suite_add_tcase(s, tc);

	tc = tcase_create("mrc");
	t_tcase_fixtures(tc, 60);
	tcase_add_test(tc, test_mrc_recommend);
	tcase_add_loop_test(tc, test_trace, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run_suite(ctl_suite());
}
