// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The control socket (ctl.h, doc/ctl-protocol.md).
 *
 * DOC: connections
 *
 * One thread polls the listening socket, a stop eventfd and up to
 * HC_CTL_MAX_CONN connections.  Each connection has an input buffer of one
 * maximal line and an output queue; requests are handled in arrival order
 * on this thread and their replies queued, so a client that does not read
 * only fills its own queue (past OUT_MAX it is dropped).  A line longer
 * than HC_CTL_MAX_LINE gets an E2BIG reply and is skipped up to its newline.
 *
 * A connection that sends agent_register becomes its domain's agent (the
 * newest registration wins); domain_set_memory pushes set_memory to it.
 *
 * Domains and volumes are reached through hc_ns_lookup (which pins the node
 * with a lookup reference, dropped with hc_ns_forget), or under ns_lock for
 * listings; the data path never waits for this thread.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctl.h"
#include "hecache/ctl.h"
#include "ioeng.h"
#include "log.h"
#include "odefrag.h"
#include "journal.h"
#include "util.h"

#define OUT_MAX (16u << 20)		/* queued reply bytes before a client is dropped */
#define DEFAULT_STEP (4ull << 20)
#define MAX_POINTS 1024

struct conn {
	int fd;
	uid_t uid;
	int skipping;			/* dropping the rest of an oversized line */
	size_t inlen;
	char *in;			/* HC_CTL_MAX_LINE bytes */
	char *out;
	size_t outlen, outoff, outcap;
	char agent[NAME_MAX + 1];	/* domain when registered as its agent */
	struct json_object *report;	/* the agent's last report */
};

struct hc_ctl {
	struct hc_ctl_info info;
	int dirfd;			/* -1 until listening */
	int lfd, stopfd;
	pthread_t thread;
	int running;
	time_t started;
	struct conn *conns[HC_CTL_MAX_CONN];
};

/* One request being handled. */
struct req {
	struct hc_ctl *c;
	struct conn *cn;		/* NULL outside a connection */
	struct json_object *in;
	struct json_object *out;	/* members of the reply */
	char msg[512];			/* error message */
};

static int fail(struct req *r, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct req *r, int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->msg, sizeof(r->msg), fmt, ap);
	va_end(ap);
	return err;
}

static void add_u64(struct json_object *o, const char *k, uint64_t v)
{
	json_object_object_add(o, k, json_object_new_uint64(v));
}

static void add_str(struct json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
}

/* --- arguments -------------------------------------------------------- */

static int arg_str(struct req *r, const char *k, int required, const char **out)
{
	struct json_object *v;
	*out = NULL;
	if (!json_object_object_get_ex(r->in, k, &v) || json_object_is_type(v, json_type_null))
		return required ? fail(r, -EINVAL, "missing \"%s\"", k) : 0;
	if (!json_object_is_type(v, json_type_string))
		return fail(r, -EINVAL, "\"%s\" must be a string", k);
	*out = json_object_get_string(v);
	return 0;
}

static int arg_name(struct req *r, const char *k, int required, const char **out)
{
	int err = arg_str(r, k, required, out);
	if (err || !*out)
		return err;
	const char *s = *out;
	if (!*s || strlen(s) > NAME_MAX || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, ".."))
		return fail(r, -EINVAL, "\"%s\": invalid name (one path component, at most %d bytes)",
			    k, NAME_MAX);
	return 0;
}

/* A non-negative integer; *present tells whether it was given. */
static int arg_u64(struct req *r, const char *k, int required, uint64_t *out, int *present)
{
	struct json_object *v;
	*present = 0;
	if (!json_object_object_get_ex(r->in, k, &v) || json_object_is_type(v, json_type_null))
		return required ? fail(r, -EINVAL, "missing \"%s\"", k) : 0;
	if (!json_object_is_type(v, json_type_int))
		return fail(r, -EINVAL, "\"%s\" must be an integer", k);
	errno = 0;
	int64_t x = json_object_get_int64(v);
	if (x < 0 || errno)
		return fail(r, -EINVAL, "\"%s\" must be a non-negative integer", k);
	*out = (uint64_t)x;
	*present = 1;
	return 0;
}

static int arg_double(struct req *r, const char *k, double def, double *out)
{
	struct json_object *v;
	*out = def;
	if (!json_object_object_get_ex(r->in, k, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
		return fail(r, -EINVAL, "\"%s\" must be a number", k);
	*out = json_object_get_double(v);
	return 0;
}

/* --- namespace helpers ------------------------------------------------- */

/* Looks up (and pins) the domain named by "domain". */
static int get_domain(struct req *r, struct hc_domain **out)
{
	const char *name;
	int err = arg_name(r, "domain", 1, &name);
	if (err)
		return err;
	struct hc_fs *fs = r->c->info.fs;
	struct hc_node *n;
	if (hc_ns_lookup(fs, &fs->root, name, &n))
		return fail(r, -ENOENT, "domain %s: not found", name);
	*out = (struct hc_domain *)n;
	return 0;
}

static void put_node(struct req *r, struct hc_node *n)
{
	hc_ns_forget(r->c->info.fs, n, 1);
}

/* Looks up (and pins) "domain" and its "volume". */
static int get_volume(struct req *r, struct hc_domain **dout, struct hc_volume **out)
{
	const char *name;
	int err = arg_name(r, "volume", 1, &name);
	if (!err)
		err = get_domain(r, dout);
	if (err)
		return err;
	struct hc_node *n;
	if (hc_ns_lookup(r->c->info.fs, &(*dout)->node, name, &n)) {
		err = fail(r, -ENOENT, "volume %s/%s: not found", (*dout)->name, name);
		put_node(r, &(*dout)->node);
		return err;
	}
	*out = (struct hc_volume *)n;
	return 0;
}

static void put_volume(struct req *r, struct hc_domain *d, struct hc_volume *v)
{
	put_node(r, &v->node);
	put_node(r, &d->node);
}

static void inval_entry(struct hc_ctl *c, struct hc_node *parent, const char *name)
{
	if (c->info.inval_entry)
		c->info.inval_entry(c->info.arg, hc_fs_ino(c->info.fs, parent), name);
}

static void inval_inode(struct hc_ctl *c, struct hc_node *n)
{
	if (c->info.inval_inode)
		c->info.inval_inode(c->info.arg, hc_fs_ino(c->info.fs, n));
}

static struct conn *agent_of(struct hc_ctl *c, const char *domain)
{
	for (int i = 0; i < HC_CTL_MAX_CONN; i++)
		if (c->conns[i] && !strcmp(c->conns[i]->agent, domain))
			return c->conns[i];
	return NULL;
}

/* --- requests ---------------------------------------------------------- */

static const char *mem_source_name(int s)
{
	return s == HC_MEM_AGENT ? "agent" : s == HC_MEM_HECTL ? "hectl" : "none";
}

static int op_status(struct req *r)
{
	struct hc_ctl *c = r->c;
	struct hc_fs *fs = c->info.fs;
	struct json_object *o = r->out, *cache = json_object_new_object();
	add_str(o, "version", PACKAGE_VERSION);
	add_u64(o, "protocol", HC_CTL_PROTOCOL);
	add_u64(o, "pid", (uint64_t)getpid());
	add_str(o, "backing", c->info.backing);
	add_str(o, "mountpoint", c->info.mountpoint);
	add_u64(o, "uptime_s", (uint64_t)(time(NULL) - c->started));
	add_str(o, "io_engine", c->info.io_engine);
	add_u64(o, "io_inline_reads", hc_ioeng_inlined(fs->eng));
	json_object_object_add(o, "writethrough", json_object_new_boolean(fs->writethrough));
	struct hc_cstats t;
	hc_cache_total(fs->cache, &t);
	add_u64(cache, "bytes", hc_cache_blocks(fs->cache) * HC_BLOCK_SIZE);
	add_u64(cache, "blocks", hc_cache_blocks(fs->cache));
	add_u64(cache, "max_bytes", hc_cache_max_blocks(fs->cache) * HC_BLOCK_SIZE);
	add_u64(cache, "cached_blocks", t.cached > 0 ? (uint64_t)t.cached : 0);
	add_u64(cache, "dirty_blocks", t.dirty > 0 ? (uint64_t)t.dirty : 0);
	add_u64(cache, "taken_blocks", hc_cache_taken(fs->cache));
	add_u64(cache, "writeahead_blocks", hc_cache_writeahead(fs->cache));
	json_object_object_add(o, "cache", cache);
	struct json_object *rq = json_object_new_object();
	uint64_t total = 0;
	for (int k = 0; k < HC_REQ_NKINDS; k++) {
		uint64_t n = __atomic_load_n(&fs->nreq[k], __ATOMIC_RELAXED);
		add_u64(rq, hc_req_kind_names[k], n);
		total += n;
	}
	add_u64(rq, "total", total);
	json_object_object_add(o, "fuse_requests", rq);
	int kp = __atomic_load_n(&fs->killpriv_v2, __ATOMIC_RELAXED);
	json_object_object_add(o, "fuse_killpriv_v2", json_object_new_boolean(kp));
	add_u64(o, "fuse_uring_queues", __atomic_load_n(&fs->fuse_uring_queues, __ATOMIC_RELAXED));
	add_u64(o, "fuse_uring_replies", __atomic_load_n(&fs->fuse_uring_replies, __ATOMIC_RELAXED));
	struct json_object *mrc = json_object_new_object();
	add_str(mrc, "mode", c->info.mrc_mode);
	add_u64(mrc, "ghost_bytes", c->info.ghost_bytes);
	json_object_object_add(o, "mrc", mrc);
	add_str(o, "dedup", fs->dedup == HC_DEDUP_OFF ? "off"
			    : fs->dedup == HC_DEDUP_ALL ? "all" : "domain");
	uint64_t nd = 0, nv = 0, na = 0;
	pthread_mutex_lock(&fs->ns_lock);
	for (struct hc_domain *d = fs->domains; d; d = d->next, nd++)
		for (struct hc_volume *v = d->vols; v; v = v->next)
			nv++;
	pthread_mutex_unlock(&fs->ns_lock);
	for (int i = 0; i < HC_CTL_MAX_CONN; i++)
		na += c->conns[i] && c->conns[i]->agent[0];
	add_u64(o, "domains", nd);
	add_u64(o, "volumes", nv);
	add_u64(o, "agents", na);
	return 0;
}

static struct json_object *counters(const struct hc_cstats *s, const char *name)
{
	struct json_object *o = json_object_new_object();
	if (name)
		add_str(o, "name", name);
	add_u64(o, "hits", s->hits);
	add_u64(o, "misses", s->misses);
	add_u64(o, "admissions", s->admissions);
	add_u64(o, "writebacks", s->writebacks);
	add_u64(o, "discards", s->discards);
	add_u64(o, "read_bytes", s->read_bytes);
	add_u64(o, "written_bytes", s->written_bytes);
	add_u64(o, "zero_blocks", s->zero_blocks);
	add_u64(o, "dedup_blocks", s->dedup_blocks);
	add_u64(o, "cow_blocks", s->cow_blocks);
	add_u64(o, "ref_blocks", s->ref_blocks);
	add_u64(o, "cached_blocks", s->cached > 0 ? (uint64_t)s->cached : 0);
	add_u64(o, "dirty_blocks", s->dirty > 0 ? (uint64_t)s->dirty : 0);
	uint64_t n = s->hits + s->misses;
	json_object_object_add(o, "hit_ratio",
			       json_object_new_double(n ? (double)s->hits / (double)n : 0));
	return o;
}

/*
 * Calls fn for every domain, or only for the one named by the optional
 * "domain" argument, under ns_lock.  ENOENT when that domain does not exist.
 */
static int each_domain(struct req *r, void (*fn)(struct req *r, struct hc_domain *d, void *arg),
		       void *arg)
{
	struct hc_fs *fs = r->c->info.fs;
	const char *only;
	int err = arg_name(r, "domain", 0, &only);
	if (err)
		return err;
	int found = 0;
	pthread_mutex_lock(&fs->ns_lock);
	for (struct hc_domain *d = fs->domains; d; d = d->next) {
		if (only && strcmp(only, d->name))
			continue;
		found = 1;
		fn(r, d, arg);
	}
	pthread_mutex_unlock(&fs->ns_lock);
	return only && !found ? fail(r, -ENOENT, "domain %s: not found", only) : 0;
}

static void stats_of(struct req *r, struct hc_domain *d, void *arr)
{
	struct hc_cstats s;
	hc_cstats_read(&d->stats, &s);
	json_object_array_add(arr, counters(&s, d->name));
}

static int op_stats(struct req *r)
{
	struct json_object *arr = json_object_new_array();
	json_object_object_add(r->out, "domains", arr);
	int err = each_domain(r, stats_of, arr);
	if (err)
		return err;
	struct hc_cstats s;
	hc_cache_total(r->c->info.fs->cache, &s);
	json_object_object_add(r->out, "total", counters(&s, NULL));
	return 0;
}

static int op_domain_list(struct req *r)
{
	struct hc_fs *fs = r->c->info.fs;
	struct json_object *arr = json_object_new_array();
	pthread_mutex_lock(&fs->ns_lock);
	for (struct hc_domain *d = fs->domains; d; d = d->next) {
		struct json_object *o = json_object_new_object();
		uint64_t nv = 0;
		for (struct hc_volume *v = d->vols; v; v = v->next)
			nv++;
		add_str(o, "name", d->name);
		add_u64(o, "volumes", nv);
		add_u64(o, "memory_bytes", d->mem_bytes);
		add_str(o, "memory_source", mem_source_name(d->mem_source));
		struct conn *a = agent_of(r->c, d->name);
		json_object_object_add(o, "agent", json_object_new_boolean(a != NULL));
		json_object_object_add(o, "agent_report",
				       a && a->report ? json_object_get(a->report) : NULL);
		json_object_array_add(arr, o);
	}
	pthread_mutex_unlock(&fs->ns_lock);
	json_object_object_add(r->out, "domains", arr);
	return 0;
}

/* Creates domain `name` unless it exists; *created tells which. */
static int make_domain(struct req *r, const char *name, int *created)
{
	struct hc_fs *fs = r->c->info.fs;
	struct hc_node *n;
	*created = 0;
	int err = hc_ns_mkdir(fs, &fs->root, name, 0755, 0, 0, &n);
	if (err == -EEXIST)
		return 0;
	if (err)
		return fail(r, err, "domain %s: cannot create: %s", name, strerror(-err));
	*created = 1;
	inval_entry(r->c, &fs->root, name);
	put_node(r, n);
	return 0;
}

static int op_domain_create(struct req *r)
{
	const char *name;
	int created, err = arg_name(r, "domain", 1, &name);
	if (!err)
		err = make_domain(r, name, &created);
	if (!err && !created)
		err = fail(r, -EEXIST, "domain %s: already exists", name);
	return err;
}

static int send_line(struct conn *cn, struct json_object *o);

static int op_domain_set_memory(struct req *r)
{
	uint64_t bytes;
	int present;
	struct hc_domain *d;
	int err = arg_u64(r, "bytes", 1, &bytes, &present);
	if (!err && bytes < HC_BLOCK_SIZE)
		err = fail(r, -EINVAL, "\"bytes\" must be at least %d", HC_BLOCK_SIZE);
	if (!err)
		err = get_domain(r, &d);
	if (err)
		return err;
	struct hc_fs *fs = r->c->info.fs;
	pthread_mutex_lock(&fs->ns_lock);
	d->mem_bytes = bytes;
	d->mem_source = HC_MEM_HECTL;
	pthread_mutex_unlock(&fs->ns_lock);
	struct conn *a = agent_of(r->c, d->name);
	int sent = 0;
	if (a) {
		struct json_object *push = json_object_new_object();
		add_u64(push, "v", HC_CTL_PROTOCOL);
		add_str(push, "op", "set_memory");
		add_str(push, "domain", d->name);
		add_u64(push, "bytes", bytes);
		sent = send_line(a, push) == 0;
		json_object_put(push);
	}
	add_u64(r->out, "memory_bytes", bytes);
	json_object_object_add(r->out, "sent_to_agent", json_object_new_boolean(sent));
	put_node(r, &d->node);
	return 0;
}

static int parse_kind(struct req *r, const char *kind)
{
	if (kind && strcmp(kind, "disk") && strcmp(kind, "swap") && strcmp(kind, "ram"))
		return fail(r, -EINVAL, "unknown kind '%s' (use disk, swap or ram)", kind);
	return 0;
}

static struct json_object *volume_obj(struct hc_domain *d, struct hc_volume *v)
{
	struct json_object *o = json_object_new_object();
	struct stat st;
	add_str(o, "domain", d->name);
	add_str(o, "name", v->name);
	add_u64(o, "size", hc_vol_size(v));
	add_str(o, "kind", hc_kind_name(v->kind));
	add_u64(o, "allocated_bytes", fstat(v->cv.fd, &st) ? 0 : (uint64_t)st.st_blocks * 512);
	add_u64(o, "open", (uint64_t)v->nopen);
	return o;
}

static void volumes_of(struct req *r, struct hc_domain *d, void *arr)
{
	for (struct hc_volume *v = d->vols; v; v = v->next)
		json_object_array_add(arr, volume_obj(d, v));
}

static int op_volume_list(struct req *r)
{
	struct json_object *arr = json_object_new_array();
	json_object_object_add(r->out, "volumes", arr);
	return each_domain(r, volumes_of, arr);
}

static int resize(struct req *r, struct hc_volume *v, uint64_t size)
{
	if (size > HC_MAX_VOLUME_SIZE)
		return fail(r, -EFBIG, "size %llu is past the largest volume (16 TiB)",
			    (unsigned long long)size);
	int err = hc_vol_truncate(r->c->info.fs, v, size);
	if (err)
		return fail(r, err, "volume %s/%s: cannot resize: %s", v->dom->name, v->name,
			    strerror(-err));
	inval_inode(r->c, &v->node);
	return 0;
}

static int op_volume_create(struct req *r)
{
	struct hc_fs *fs = r->c->info.fs;
	const char *dname, *vname, *kind;
	uint64_t size;
	int present, created;
	int err = arg_name(r, "domain", 1, &dname);
	if (!err)
		err = arg_name(r, "volume", 1, &vname);
	if (!err)
		err = arg_u64(r, "size", 1, &size, &present);
	if (!err)
		err = arg_str(r, "kind", 0, &kind);
	if (!err)
		err = parse_kind(r, kind);
	if (!err && size > HC_MAX_VOLUME_SIZE)
		err = fail(r, -EFBIG, "size %llu is past the largest volume (16 TiB)",
			   (unsigned long long)size);
	if (!err)
		err = make_domain(r, dname, &created);
	struct hc_domain *d;
	if (!err)
		err = get_domain(r, &d);
	if (err)
		return err;
	struct hc_volume *v;
	err = hc_ns_create(fs, &d->node, vname, 0644, r->cn ? r->cn->uid : 0, 0, &v);
	if (err) {
		err = fail(r, err, "volume %s/%s: %s", dname, vname,
			   err == -EEXIST ? "already exists" : strerror(-err));
		goto out;
	}
	inval_entry(r->c, &d->node, vname);
	err = resize(r, v, size);
	if (!err && kind && (err = hc_ns_set_kind(fs, v, kind)))
		err = fail(r, err, "volume %s/%s: cannot set kind: %s", dname, vname,
			   strerror(-err));
	if (!err)
		json_object_object_add(r->out, "volume", volume_obj(d, v));
	put_node(r, &v->node);
out:
	put_node(r, &d->node);
	return err;
}

static int op_volume_resize(struct req *r)
{
	uint64_t size;
	int present;
	struct hc_domain *d;
	struct hc_volume *v;
	int err = arg_u64(r, "size", 1, &size, &present);
	if (!err)
		err = get_volume(r, &d, &v);
	if (err)
		return err;
	err = resize(r, v, size);
	if (!err)
		json_object_object_add(r->out, "volume", volume_obj(d, v));
	put_volume(r, d, v);
	return err;
}

static int op_volume_delete(struct req *r)
{
	struct hc_fs *fs = r->c->info.fs;
	struct hc_domain *d;
	struct hc_volume *v;
	int err = get_volume(r, &d, &v);
	if (err)
		return err;
	pthread_mutex_lock(&fs->ns_lock);
	int busy = v->nopen > 0;
	pthread_mutex_unlock(&fs->ns_lock);
	char name[NAME_MAX + 1];
	snprintf(name, sizeof(name), "%s", v->name);
	if (busy)
		err = fail(r, -EBUSY, "volume %s/%s: open (in use); close it first", d->name, name);
	put_node(r, &v->node);
	if (!err && (err = hc_ns_unlink(fs, &d->node, name)))
		err = fail(r, err, "volume %s/%s: cannot delete: %s", d->name, name,
			   strerror(-err));
	if (!err)
		inval_entry(r->c, &d->node, name);
	put_node(r, &d->node);
	return err;
}

static int op_volume_set_kind(struct req *r)
{
	const char *kind;
	struct hc_domain *d;
	struct hc_volume *v;
	int err = arg_str(r, "kind", 1, &kind);
	if (!err)
		err = parse_kind(r, kind);
	if (!err)
		err = get_volume(r, &d, &v);
	if (err)
		return err;
	err = hc_ns_set_kind(r->c->info.fs, v, kind);
	if (err)
		err = fail(r, err, "volume %s/%s: cannot set kind: %s", d->name, v->name,
			   strerror(-err));
	else
		json_object_object_add(r->out, "volume", volume_obj(d, v));
	put_volume(r, d, v);
	return err;
}

static void add_extent(struct json_object *arr, uint64_t start, uint64_t count, const char *t)
{
	struct json_object *e = json_object_new_object();
	add_u64(e, "start", start);
	add_u64(e, "count", count);
	add_str(e, "target", t);
	json_object_array_add(arr, e);
}

/* lseek of the home file, -errno; ENXIO past the end counts as `end`. */
static int64_t home_seek(struct hc_volume *v, uint64_t blk, int whence, uint64_t end)
{
	off_t o = lseek(v->cv.fd, (off_t)(blk * HC_BLOCK_SIZE), whence);
	if (o < 0)
		return errno == ENXIO ? (int64_t)(end * HC_BLOCK_SIZE) : -errno;
	return (int64_t)o;
}

/*
 * Extents home/hole of blocks [first, end), which have no map entry: the
 * home file's SEEK_DATA/SEEK_HOLE (the cache was flushed once by map_all).
 */
static int map_extents(struct req *r, struct hc_volume *v, uint64_t first, uint64_t end,
		       struct json_object *arr)
{
	uint64_t b = first;
	while (b < end) {
		int64_t data = home_seek(v, b, SEEK_DATA, end);
		if (data < 0)
			return (int)data;
		uint64_t db = (uint64_t)data / HC_BLOCK_SIZE;
		if (db > end)
			db = end;
		if (db > b)
			add_extent(arr, b, db - b, "hole");
		if (db >= end)
			break;
		int64_t hole = home_seek(v, db, SEEK_HOLE, end);
		if (hole < 0)
			return (int)hole;
		uint64_t hb = ((uint64_t)hole + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE;
		if (hb > end)
			hb = end;
		if (hb <= db)
			hb = db + 1;
		add_extent(arr, db, hb - db, "home");
		b = hb;
	}
	return 0;
}

struct run {
	uint64_t l, n;
	struct hc_phys p;
};

/* An indirected run: its target volume, overflow.dat or zero, with the count. */
static void add_run(struct req *r, struct json_object *arr, const struct run *u)
{
	struct hc_fs *fs = r->c->info.fs;
	char t[2 * NAME_MAX + 16];
	if (hc_phys_is_zero(&u->p)) {
		add_extent(arr, u->l, u->n, "zero");
		return;
	}
	if (u->p.file == HC_PHYS_OVERFLOW) {
		snprintf(t, sizeof(t), "overflow");
	} else {
		pthread_mutex_lock(&fs->ns_lock);
		struct hc_volume *x = hc_ns_find_vid(fs, u->p.file);
		if (x)
			snprintf(t, sizeof(t), "%s/%s", x->dom->name, x->name);
		else
			snprintf(t, sizeof(t), "volume#%u", u->p.file);
		pthread_mutex_unlock(&fs->ns_lock);
	}
	add_extent(arr, u->l, u->n, t);
	struct json_object *e = json_object_array_get_idx(arr, json_object_array_length(arr) - 1);
	add_u64(e, "target_block", u->p.block);
	add_u64(e, "refcount", hc_refcount_get(hc_journal_refcount(fs->j), &u->p));
}

/* Extents of [first, end): indirections from the map, home/hole between them. */
static int map_all(struct req *r, struct hc_volume *v, uint64_t first, uint64_t end,
		   struct json_object *arr)
{
	struct run *runs = NULL;
	size_t n = 0, cap = 0;
	/* Home holes are holes once every cached block is stored. */
	int err = hc_vol_flush_home(r->c->info.fs, v);
	if (err)
		return err;
	pthread_rwlock_rdlock(&v->maplock);
	uint64_t b = first, l;
	struct hc_phys p;
	while (hc_imap_next(v->map, b, &l, &p) == 0 && l < end) {
		struct run *u = n ? &runs[n - 1] : NULL;
		if (u && u->l + u->n == l && u->p.file == p.file &&
		    (hc_phys_is_zero(&p) || u->p.block + u->n == p.block)) {
			u->n++;
		} else {
			if (n == cap) {
				size_t c2 = cap ? 2 * cap : 64;
				struct run *t = realloc(runs, c2 * sizeof(*t));
				if (!t) {
					err = -ENOMEM;
					break;
				}
				runs = t;
				cap = c2;
			}
			runs[n++] = (struct run){ .l = l, .n = 1, .p = p };
		}
		b = l + 1;
	}
	pthread_rwlock_unlock(&v->maplock);
	uint64_t pos = first;
	for (size_t i = 0; i < n && !err; i++) {
		if (runs[i].l > pos)
			err = map_extents(r, v, pos, runs[i].l, arr);
		if (!err)
			add_run(r, arr, &runs[i]);
		pos = runs[i].l + runs[i].n;
	}
	if (!err && pos < end)
		err = map_extents(r, v, pos, end, arr);
	free(runs);
	return err;
}

static int op_map(struct req *r)
{
	struct hc_domain *d;
	struct hc_volume *v;
	uint64_t start = 0, end = 0;
	int has_start, has_end;
	int err = arg_u64(r, "start", 0, &start, &has_start);
	if (!err)
		err = arg_u64(r, "end", 0, &end, &has_end);
	if (!err)
		err = get_volume(r, &d, &v);
	if (err)
		return err;
	uint64_t size = hc_vol_size(v);
	uint64_t nblk = (size + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE;
	if (!has_end || end > nblk)
		end = nblk;
	if (has_start && start > end)
		err = fail(r, -EINVAL, "start %llu is past end %llu", (unsigned long long)start,
			   (unsigned long long)end);
	struct json_object *arr = json_object_new_array();
	if (!err && (err = map_all(r, v, start, end, arr)))
		err = fail(r, err, "volume %s/%s: %s", d->name, v->name, strerror(-err));
	add_u64(r->out, "size", size);
	json_object_object_add(r->out, "extents", arr);
	put_volume(r, d, v);
	return err;
}

static int get_step(struct req *r, uint64_t *step_pages)
{
	uint64_t step = DEFAULT_STEP;
	int present;
	int err = arg_u64(r, "step", 0, &step, &present);
	if (err)
		return err;
	if (step < HC_BLOCK_SIZE)
		return fail(r, -EINVAL, "\"step\" must be at least %d bytes", HC_BLOCK_SIZE);
	*step_pages = step / HC_BLOCK_SIZE;
	return 0;
}

/* The domain's memory size M (0: unknown). */
static uint64_t domain_memory(struct req *r, struct hc_domain *d)
{
	pthread_mutex_lock(&r->c->info.fs->ns_lock);
	uint64_t mem = d->mem_bytes;
	pthread_mutex_unlock(&r->c->info.fs->ns_lock);
	return mem;
}

/* The domain's curve: n points, step_pages apart, into pts (MAX_POINTS). */
static int curve(struct req *r, struct hc_domain *d, uint64_t step_pages, uint64_t npts,
		 double *pts, size_t *n)
{
	if (!hc_dmrc_enabled(d->mrc))
		return fail(r, -EOPNOTSUPP, "miss-ratio curves are off (mount with -o mrc=exact or mrc=sampled)");
	uint64_t reach = r->c->info.ghost_bytes / HC_BLOCK_SIZE / step_pages + 1;
	if (!npts || npts > reach)
		npts = reach;
	if (npts > MAX_POINTS)
		npts = MAX_POINTS;
	*n = hc_dmrc_curve(d->mrc, step_pages, npts, pts);
	return 0;
}

static int op_mrc(struct req *r)
{
	uint64_t step, npts = 0;
	int present;
	struct hc_domain *d;
	int err = get_step(r, &step);
	if (!err)
		err = arg_u64(r, "points", 0, &npts, &present);
	if (!err)
		err = get_domain(r, &d);
	if (err)
		return err;
	double pts[MAX_POINTS];
	size_t n = 0;
	err = curve(r, d, step, npts, pts, &n);
	if (err)
		goto out;
	struct hc_mrc_stats st;
	hc_dmrc_stats(d->mrc, &st);
	uint64_t mem = domain_memory(r, d);
	struct json_object *o = r->out, *arr = json_object_new_array();
	add_str(o, "domain", d->name);
	add_str(o, "mode", r->c->info.mrc_mode);
	json_object_object_add(o, "rate", json_object_new_double(st.rate));
	add_u64(o, "memory_bytes", mem);
	add_u64(o, "step", step * HC_BLOCK_SIZE);
	add_u64(o, "evictions", st.evictions);
	add_u64(o, "misses", st.misses);
	json_object_object_add(o, "cold", json_object_new_double(st.cold));
	json_object_object_add(o, "silent", json_object_new_double(st.silent));
	add_u64(o, "tracked_blocks", st.tracked);
	for (size_t i = 0; i < n; i++) {
		struct json_object *p = json_object_new_object();
		uint64_t extra = i * step * HC_BLOCK_SIZE;
		add_u64(p, "extra_bytes", extra);
		json_object_object_add(p, "memory_bytes",
				       mem ? json_object_new_uint64(mem + extra) : NULL);
		json_object_object_add(p, "misses", json_object_new_double(pts[i]));
		json_object_array_add(arr, p);
	}
	json_object_object_add(o, "curve", arr);
out:
	put_node(r, &d->node);
	return err;
}

static int op_mrc_reset(struct req *r)
{
	struct hc_domain *d;
	int err = get_domain(r, &d);
	if (err)
		return err;
	hc_dmrc_reset(d->mrc);
	put_node(r, &d->node);
	return 0;
}

static int op_recommend(struct req *r)
{
	uint64_t step, maxb = r->c->info.ghost_bytes;
	double tol;
	int present;
	struct hc_domain *d;
	int err = get_step(r, &step);
	if (!err)
		err = arg_double(r, "tolerance", 0.05, &tol);
	if (!err && !(tol >= 0 && tol <= 100))
		err = fail(r, -EINVAL, "\"tolerance\" must be between 0 and 100");
	if (!err)
		err = arg_u64(r, "max", 0, &maxb, &present);
	if (!err)
		err = get_domain(r, &d);
	if (err)
		return err;
	double pts[MAX_POINTS];
	size_t n = 0;
	err = curve(r, d, step, maxb / HC_BLOCK_SIZE / step + 1, pts, &n);
	if (!err && (n == 0 || pts[0] <= 0))
		err = fail(r, -EAGAIN, "domain %s: no misses measured yet", d->name);
	if (err)
		goto out;
	double target = (1 + tol) * pts[n - 1];
	size_t k = 0;
	while (k < n - 1 && pts[k] > target)
		k++;
	uint64_t mem = domain_memory(r, d);
	struct json_object *o = r->out;
	uint64_t extra = k * step * HC_BLOCK_SIZE, mextra = (n - 1) * step * HC_BLOCK_SIZE;
	add_str(o, "domain", d->name);
	json_object_object_add(o, "tolerance", json_object_new_double(tol));
	add_u64(o, "extra_bytes", extra);
	json_object_object_add(o, "memory_bytes", mem ? json_object_new_uint64(mem + extra) : NULL);
	json_object_object_add(o, "predicted_misses", json_object_new_double(pts[k]));
	add_u64(o, "max_extra_bytes", mextra);
	json_object_object_add(o, "max_memory_bytes",
			       mem ? json_object_new_uint64(mem + mextra) : NULL);
	json_object_object_add(o, "misses_at_max", json_object_new_double(pts[n - 1]));
	json_object_object_add(o, "misses_now", json_object_new_double(pts[0]));
out:
	put_node(r, &d->node);
	return err;
}

static int op_trace_start(struct req *r)
{
	const char *path;
	struct hc_domain *d;
	int err = arg_str(r, "path", 1, &path);
	if (!err && path[0] != '/')
		err = fail(r, -EINVAL, "\"path\" must be absolute");
	if (!err)
		err = get_domain(r, &d);
	if (err)
		return err;
	err = hc_dmrc_trace_start(d->mrc, path, d->name);
	if (err == -EBUSY)
		err = fail(r, err, "domain %s: a trace is already running", d->name);
	else if (err)
		err = fail(r, err, "%s: %s", path, strerror(-err));
	add_str(r->out, "path", path);
	put_node(r, &d->node);
	return err;
}

static int op_trace_stop(struct req *r)
{
	struct hc_domain *d;
	int err = get_domain(r, &d);
	if (err)
		return err;
	uint64_t records = 0;
	char path[PATH_MAX];
	err = hc_dmrc_trace_stop(d->mrc, &records, path, sizeof(path));
	if (err == -ENOENT)
		err = fail(r, err, "domain %s: no trace running", d->name);
	else if (err)
		err = fail(r, err, "%s: writing the trace failed: %s", path, strerror(-err));
	else {
		add_u64(r->out, "records", records);
		add_str(r->out, "path", path);
	}
	put_node(r, &d->node);
	return err;
}

static void flush_domain(struct req *r, struct hc_domain *d, void *err)
{
	for (struct hc_volume *v = d->vols; v; v = v->next) {
		int e = hc_vol_fsync(r->c->info.fs, v, 0);
		if (e && !*(int *)err)
			*(int *)err = fail(r, e, "volume %s/%s: flush failed: %s", d->name,
					   v->name, strerror(-e));
	}
}

static int op_flush(struct req *r)
{
	struct hc_cstats before, after;
	hc_cache_total(r->c->info.fs->cache, &before);
	int ferr = 0, err = each_domain(r, flush_domain, &ferr);
	if (err)
		return err;
	hc_cache_total(r->c->info.fs->cache, &after);
	add_u64(r->out, "flushed_blocks", after.writebacks - before.writebacks);
	return ferr;
}

static int op_cache_resize(struct req *r)
{
	struct hc_cache *cache = r->c->info.fs->cache;
	uint64_t bytes, max = hc_cache_max_blocks(cache) * HC_BLOCK_SIZE;
	int present;
	char a[32], b[32];
	int err = arg_u64(r, "bytes", 1, &bytes, &present);
	if (err)
		return err;
	if (bytes < 16 * HC_BLOCK_SIZE || bytes > max)
		return fail(r, -EINVAL, "cache size %s is outside 64K..%s (the pool allocated at "
			    "mount; remount with a larger -o cache= to go past it)",
			    hc_format_size(bytes, a, sizeof(a)), hc_format_size(max, b, sizeof(b)));
	err = hc_cache_resize(cache, bytes / HC_BLOCK_SIZE);
	if (err)
		return fail(r, err, "cache resize stopped at %s: write-back failed: %s",
			    hc_format_size(hc_cache_blocks(cache) * HC_BLOCK_SIZE, a, sizeof(a)),
			    strerror(-err));
	add_u64(r->out, "bytes", hc_cache_blocks(cache) * HC_BLOCK_SIZE);
	add_u64(r->out, "max_bytes", max);
	return 0;
}

/* --- online defrag (odefrag.h) --------------------------------------------- */

static int no_job(struct req *r)
{
	return fail(r, -EOPNOTSUPP, "this daemon runs no defrag jobs");
}

static int op_defrag_start(struct req *r)
{
	if (!r->c->info.fs->od)
		return no_job(r);
	const char *pol;
	double rate;
	int err = arg_str(r, "policy", 0, &pol);
	if (!err)
		err = arg_double(r, "rate", HC_ODEFRAG_RATE, &rate);
	if (err)
		return err;
	int policy = !pol || !strcmp(pol, "home") ? HC_ODEFRAG_HOME
		     : !strcmp(pol, "swap") ? HC_ODEFRAG_SWAP : -1;
	if (policy < 0)
		return fail(r, -EINVAL, "policy %s: unknown (home or swap)", pol);
	struct json_object *a;
	const char *vols[HC_CTL_MAX_DEFRAG_VOLS];
	size_t n = 0;
	if (json_object_object_get_ex(r->in, "volumes", &a) &&
	    !json_object_is_type(a, json_type_null)) {
		if (!json_object_is_type(a, json_type_array))
			return fail(r, -EINVAL, "\"volumes\" must be an array of \"DOMAIN/NAME\"");
		n = json_object_array_length(a);
		if (n > HC_CTL_MAX_DEFRAG_VOLS)
			return fail(r, -EINVAL, "at most %d volumes", HC_CTL_MAX_DEFRAG_VOLS);
		for (size_t i = 0; i < n; i++) {
			struct json_object *x = json_object_array_get_idx(a, i);
			if (!json_object_is_type(x, json_type_string))
				return fail(r, -EINVAL, "\"volumes\" must be an array of \"DOMAIN/NAME\"");
			vols[i] = json_object_get_string(x);
		}
	}
	char msg[512];
	err = hc_odefrag_start(r->c->info.fs->od, policy, rate, vols, n, msg, sizeof(msg));
	if (err)
		return fail(r, err, "%s", msg);
	hc_odefrag_status(r->c->info.fs->od, r->out);
	return 0;
}

static int op_defrag_status(struct req *r)
{
	if (!r->c->info.fs->od)
		return no_job(r);
	hc_odefrag_status(r->c->info.fs->od, r->out);
	return 0;
}

static int op_defrag_cancel(struct req *r)
{
	if (!r->c->info.fs->od)
		return no_job(r);
	if (hc_odefrag_cancel(r->c->info.fs->od))
		return fail(r, -ENOENT, "no defrag job is running");
	hc_odefrag_status(r->c->info.fs->od, r->out);
	return 0;
}

static int op_agent_register(struct req *r)
{
	uint64_t mem = 0;
	int present;
	struct hc_domain *d;
	if (!r->cn)
		return fail(r, -EINVAL, "agent_register needs a socket connection");
	int err = arg_u64(r, "memory_bytes", 0, &mem, &present);
	if (!err)
		err = get_domain(r, &d);
	if (err)
		return err;
	struct conn *old = agent_of(r->c, d->name);
	if (old && old != r->cn) {
		old->agent[0] = 0;
		json_object_put(old->report);
		old->report = NULL;
	}
	snprintf(r->cn->agent, sizeof(r->cn->agent), "%s", d->name);
	if (present && mem >= HC_BLOCK_SIZE) {
		pthread_mutex_lock(&r->c->info.fs->ns_lock);
		d->mem_bytes = mem;
		d->mem_source = HC_MEM_AGENT;
		pthread_mutex_unlock(&r->c->info.fs->ns_lock);
	}
	hc_log(LOG_INFO, "agent of domain %s registered", d->name);
	add_str(r->out, "domain", d->name);
	put_node(r, &d->node);
	return 0;
}

static int op_agent_report(struct req *r)
{
	struct hc_fs *fs = r->c->info.fs;
	uint64_t mem;
	int present;
	if (!r->cn || !r->cn->agent[0])
		return fail(r, -EINVAL, "agent_report before agent_register");
	int err = arg_u64(r, "memory_bytes", 1, &mem, &present);
	if (err)
		return err;
	pthread_mutex_lock(&fs->ns_lock);
	struct hc_domain *d = hc_ns_find_domain(fs, r->cn->agent);
	if (d && mem >= HC_BLOCK_SIZE) {
		d->mem_bytes = mem;
		d->mem_source = HC_MEM_AGENT;
	}
	pthread_mutex_unlock(&fs->ns_lock);
	json_object_put(r->cn->report);
	r->cn->report = json_object_get(r->in);
	json_object_object_del(r->cn->report, "op");
	json_object_object_del(r->cn->report, "v");
	json_object_object_del(r->cn->report, "id");
	return 0;
}

static const struct {
	const char *name;
	int (*fn)(struct req *r);
} ops[] = {
	{ "status", op_status },
	{ "stats", op_stats },
	{ "domain_list", op_domain_list },
	{ "domain_create", op_domain_create },
	{ "domain_set_memory", op_domain_set_memory },
	{ "volume_list", op_volume_list },
	{ "volume_create", op_volume_create },
	{ "volume_resize", op_volume_resize },
	{ "volume_delete", op_volume_delete },
	{ "volume_set_kind", op_volume_set_kind },
	{ "map", op_map },
	{ "mrc", op_mrc },
	{ "mrc_reset", op_mrc_reset },
	{ "recommend", op_recommend },
	{ "trace_start", op_trace_start },
	{ "trace_stop", op_trace_stop },
	{ "flush", op_flush },
	{ "cache_resize", op_cache_resize },
	{ "defrag_start", op_defrag_start },
	{ "defrag_status", op_defrag_status },
	{ "defrag_cancel", op_defrag_cancel },
	{ "agent_register", op_agent_register },
	{ "agent_report", op_agent_report },
};

/* --- dispatch ----------------------------------------------------------- */

static const char *errname(int err)
{
	const char *n = strerrorname_np(err < 0 ? -err : err);
	return n ? n : "EIO";
}

/* Parses and runs one request; returns the reply object. */
static struct json_object *dispatch(struct hc_ctl *c, struct conn *cn, const char *line,
				    size_t len)
{
	struct req r = { .c = c, .cn = cn, .out = json_object_new_object() };
	struct json_object *id = NULL;
	int err = 0;
	struct json_tokener *tok = json_tokener_new_ex(HC_CTL_MAX_DEPTH);
	if (!tok) {
		err = fail(&r, -ENOMEM, "out of memory");
		goto reply;
	}
	r.in = json_tokener_parse_ex(tok, line, (int)len);
	enum json_tokener_error jerr = json_tokener_get_error(tok);
	size_t end = json_tokener_get_parse_end(tok);
	while (end < len && (line[end] == ' ' || line[end] == '\t' || line[end] == '\r'))
		end++;
	if (jerr == json_tokener_continue)
		err = fail(&r, -EINVAL, "invalid JSON: truncated request");
	else if (jerr != json_tokener_success)
		err = fail(&r, -EINVAL, "invalid JSON: %s", json_tokener_error_desc(jerr));
	else if (end < len)
		err = fail(&r, -EINVAL, "invalid JSON: text after the object");
	else if (!json_object_is_type(r.in, json_type_object))
		err = fail(&r, -EINVAL, "a request must be a JSON object");
	json_tokener_free(tok);
	if (err)
		goto reply;
	if (json_object_object_get_ex(r.in, "id", &id))
		json_object_get(id);
	struct json_object *v, *op;
	if (json_object_object_get_ex(r.in, "v", &v) &&
	    (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) != HC_CTL_PROTOCOL)) {
		err = fail(&r, -EPROTO, "unsupported protocol version (this daemon speaks %d)",
			   HC_CTL_PROTOCOL);
		goto reply;
	}
	if (!json_object_object_get_ex(r.in, "op", &op) || !json_object_is_type(op, json_type_string)) {
		err = fail(&r, -EINVAL, "missing \"op\" (a string)");
		goto reply;
	}
	const char *name = json_object_get_string(op);
	size_t i;
	for (i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
		if (!strcmp(ops[i].name, name))
			break;
	if (i == sizeof(ops) / sizeof(ops[0]))
		err = fail(&r, -EOPNOTSUPP, "unknown op '%.64s'", name);
	else
		err = ops[i].fn(&r);
reply:;
	struct json_object *rep = json_object_new_object();
	add_u64(rep, "v", HC_CTL_PROTOCOL);
	json_object_object_add(rep, "ok", json_object_new_boolean(err == 0));
	if (id)
		json_object_object_add(rep, "id", id);
	if (err) {
		add_str(rep, "error", errname(err));
		add_str(rep, "message", r.msg[0] ? r.msg : strerror(-err));
		json_object_put(r.out);
	} else {
		json_object_object_foreach(r.out, k, val)
			json_object_object_add(rep, k, json_object_get(val));
		json_object_put(r.out);
	}
	json_object_put(r.in);
	return rep;
}

char *hc_ctl_handle(struct hc_ctl *c, const char *line, size_t len)
{
	struct json_object *rep = dispatch(c, NULL, line, len);
	char *s = strdup(json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(rep);
	return s;
}

/* --- connections ---------------------------------------------------------- */

static void conn_close(struct hc_ctl *c, int i)
{
	struct conn *cn = c->conns[i];
	if (cn->agent[0])
		hc_log(LOG_INFO, "agent of domain %s disconnected", cn->agent);
	close(cn->fd);
	json_object_put(cn->report);
	free(cn->in);
	free(cn->out);
	free(cn);
	c->conns[i] = NULL;
}

/* Sends what is queued; returns -1 when the peer is gone. */
static int conn_flush(struct conn *cn)
{
	while (cn->outoff < cn->outlen) {
		ssize_t n = send(cn->fd, cn->out + cn->outoff, cn->outlen - cn->outoff,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
		cn->outoff += (size_t)n;
	}
	cn->outoff = cn->outlen = 0;
	return 0;
}

/* Queues one line; -ENOBUFS when the client stopped reading. */
static int send_line(struct conn *cn, struct json_object *o)
{
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t n = strlen(s);
	if (cn->outlen + n + 1 > OUT_MAX)
		return -ENOBUFS;
	if (cn->outlen + n + 1 > cn->outcap) {
		size_t cap = cn->outcap ? cn->outcap : 4096;
		while (cap < cn->outlen + n + 1)
			cap *= 2;
		char *p = realloc(cn->out, cap);
		if (!p)
			return -ENOMEM;
		cn->out = p;
		cn->outcap = cap;
	}
	memcpy(cn->out + cn->outlen, s, n);
	cn->out[cn->outlen + n] = '\n';
	cn->outlen += n + 1;
	return conn_flush(cn) ? -EPIPE : 0;
}

static int reply_error(struct conn *cn, const char *err, const char *msg)
{
	struct json_object *o = json_object_new_object();
	add_u64(o, "v", HC_CTL_PROTOCOL);
	json_object_object_add(o, "ok", json_object_new_boolean(0));
	add_str(o, "error", err);
	add_str(o, "message", msg);
	int r = send_line(cn, o);
	json_object_put(o);
	return r;
}

/* Handles the complete lines in cn->in; returns -1 to drop the connection. */
static int conn_lines(struct hc_ctl *c, struct conn *cn)
{
	size_t off = 0;
	char *nl;
	while ((nl = memchr(cn->in + off, '\n', cn->inlen - off))) {
		size_t len = (size_t)(nl - (cn->in + off));
		if (cn->skipping) {
			cn->skipping = 0;
		} else if (len) {
			struct json_object *rep = dispatch(c, cn, cn->in + off, len);
			int err = send_line(cn, rep);
			json_object_put(rep);
			if (err)
				return -1;
		}
		off += len + 1;
	}
	memmove(cn->in, cn->in + off, cn->inlen - off);
	cn->inlen -= off;
	if (cn->inlen == HC_CTL_MAX_LINE) {
		/* A full buffer without a newline: the line is too long. */
		if (!cn->skipping && reply_error(cn, "E2BIG", "request line longer than 65536 bytes"))
			return -1;
		cn->skipping = 1;
		cn->inlen = 0;
	}
	return 0;
}

static int conn_read(struct hc_ctl *c, struct conn *cn)
{
	ssize_t n = recv(cn->fd, cn->in + cn->inlen, HC_CTL_MAX_LINE - cn->inlen, MSG_DONTWAIT);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	if (n == 0)
		return -1;
	cn->inlen += (size_t)n;
	return conn_lines(c, cn);
}

/* Accepts one connection; returns -1 when none is waiting. */
static int conn_accept(struct hc_ctl *c)
{
	int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return -1;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	struct conn tmp = { .fd = fd };
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
	    (cred.uid != 0 && cred.uid != c->info.owner)) {
		reply_error(&tmp, "EACCES", "permission denied: only root and the mounting user");
		free(tmp.out);
		close(fd);
		return 0;
	}
	int i;
	for (i = 0; i < HC_CTL_MAX_CONN && c->conns[i]; i++)
		;
	struct conn *cn = i < HC_CTL_MAX_CONN ? calloc(1, sizeof(*cn)) : NULL;
	char *in = cn ? malloc(HC_CTL_MAX_LINE) : NULL;
	if (!in) {
		reply_error(&tmp, "EMFILE", "too many control connections");
		free(tmp.out);
		free(cn);
		close(fd);
		return 0;
	}
	cn->fd = fd;
	cn->uid = cred.uid;
	cn->in = in;
	c->conns[i] = cn;
	return 0;
}

static void *serve(void *arg)
{
	struct hc_ctl *c = arg;
	struct pollfd p[HC_CTL_MAX_CONN + 2];
	int idx[HC_CTL_MAX_CONN + 2];
	for (;;) {
		int n = 0;
		p[n++] = (struct pollfd){ .fd = c->stopfd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = c->lfd, .events = POLLIN };
		for (int i = 0; i < HC_CTL_MAX_CONN; i++) {
			struct conn *cn = c->conns[i];
			if (!cn)
				continue;
			idx[n] = i;
			p[n++] = (struct pollfd){ .fd = cn->fd,
						  .events = (short)(POLLIN | (cn->outlen ? POLLOUT : 0)) };
		}
		if (poll(p, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			hc_log(LOG_ERR, "control socket: poll: %s", strerror(errno));
			return NULL;
		}
		if (p[0].revents)
			return NULL;
		for (int k = 2; k < n; k++) {
			struct conn *cn = c->conns[idx[k]];
			if (!cn || !p[k].revents)
				continue;
			int bad = (p[k].revents & POLLOUT) && conn_flush(cn);
			if (!bad && (p[k].revents & (POLLIN | POLLHUP | POLLERR)))
				bad = conn_read(c, cn);
			if (bad)
				conn_close(c, idx[k]);
		}
		if (p[1].revents & POLLIN)
			while (conn_accept(c) == 0)
				;
	}
}

int hc_ctl_create(const struct hc_ctl_info *info, struct hc_ctl **out)
{
	struct hc_ctl *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->info = *info;
	c->dirfd = c->lfd = c->stopfd = -1;
	c->started = time(NULL);
	*out = c;
	return 0;
}

int hc_ctl_listen(struct hc_ctl *c, int dirfd)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	/* Through /proc so that a long backing path still fits in sun_path. */
	snprintf(a.sun_path, sizeof(a.sun_path), "/proc/self/fd/%d/%s", dirfd, HC_CTL_SOCK);
	int err;
	c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	c->stopfd = eventfd(0, EFD_CLOEXEC);
	if (c->lfd < 0 || c->stopfd < 0)
		return -errno;
	unlinkat(dirfd, HC_CTL_SOCK, 0);	/* stale: we hold the directory's lock */
	mode_t old = umask(0177);
	int r = bind(c->lfd, (struct sockaddr *)&a, sizeof(a));
	err = errno;
	umask(old);
	if (r < 0)
		return -err;
	c->dirfd = dirfd;
	if (fchmodat(dirfd, HC_CTL_SOCK, 0600, 0) < 0 || listen(c->lfd, SOMAXCONN) < 0)
		return -errno;
	err = pthread_create(&c->thread, NULL, serve, c);
	if (err)
		return -err;
	c->running = 1;
	return 0;
}

void hc_ctl_destroy(struct hc_ctl *c)
{
	if (!c)
		return;
	if (c->running) {
		uint64_t one = 1;
		if (write(c->stopfd, &one, sizeof(one)) != sizeof(one))
			hc_log(LOG_WARNING, "control socket: cannot stop its thread");
		pthread_join(c->thread, NULL);
	}
	for (int i = 0; i < HC_CTL_MAX_CONN; i++)
		if (c->conns[i])
			conn_close(c, i);
	if (c->dirfd >= 0)
		unlinkat(c->dirfd, HC_CTL_SOCK, 0);
	if (c->lfd >= 0)
		close(c->lfd);
	if (c->stopfd >= 0)
		close(c->stopfd);
	free(c);
}
