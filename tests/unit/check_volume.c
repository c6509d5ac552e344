// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of the volume and namespace layer (volume.c, ns.c) without
 * FUSE: a backing directory under /var/tmp opened with hc_backing_open, the
 * "sync" and "uring" engines, hc_fs_create.  Covered: domains and volumes
 * (mkdir, create, lookup, readdir, rename, unlink, rmdir and their errors),
 * asynchronous reads (struct hc_rreq, copied out and released in done())
 * verified byte for byte against a shadow copy, size extension, truncate,
 * punch hole, zero range, SEEK_DATA/SEEK_HOLE, fsync putting the data and
 * the exact size in the home file, -EFBIG past HC_MAX_VOLUME_SIZE,
 * write-through, the stats text, reloading a backing directory after
 * hc_fs_destroy, and several threads reading and writing their own volumes
 * (also writing copies of their own blocks, shared at write-back).
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hecache/errors.h"
#include "hecache/format.h"
#include "ioeng.h"
#include "sb.h"
#include "t_helpers.h"
#include "util.h"
#include "volume.h"

#define BS HC_BLOCK_SIZE

static const char *const engine_names[] = { "sync", "uring" };

struct fix {
	struct hc_backing *b;
	struct hc_ioeng *e;
	struct hc_fs *fs;
	char msg[512];
};
static struct fix F;

static void fs_start(uint64_t cache_bytes, int writethrough)
{
	int r = hc_fs_create(F.b, F.e, cache_bytes, writethrough, NULL, &F.fs, F.msg, sizeof(F.msg));
	ck_assert_msg(r == 0, "hc_fs_create: %d %s", r, F.msg);
}

static void fs_open(const char *engine, uint64_t cache_bytes, int writethrough)
{
	memset(&F, 0, sizeof(F));
	int r = hc_backing_open(t_dir, 1, &F.b, F.msg, sizeof(F.msg));
	ck_assert_msg(r == 0, "hc_backing_open: %d %s", r, F.msg);
	r = hc_ioeng_create(engine, 64, 0, &F.e);
	ck_assert_msg(r == 0, "engine %s: %s", engine, strerror(-r));
	fs_start(cache_bytes, writethrough);
}

static void fs_close(void)
{
	hc_fs_destroy(F.fs);
	hc_ioeng_destroy(F.e);
	hc_backing_close(F.b);
	memset(&F, 0, sizeof(F));
}

static struct hc_domain *mkdom(const char *name)
{
	struct hc_node *n = NULL;
	int r = hc_ns_mkdir(F.fs, &F.fs->root, name, 0700, getuid(), getgid(), &n);
	ck_assert_msg(r == 0, "mkdir %s: %s", name, strerror(-r));
	ck_assert_int_eq(n->type, HC_NODE_DOMAIN);
	return (struct hc_domain *)n;
}

static struct hc_volume *mkvol(struct hc_domain *d, const char *name)
{
	struct hc_volume *v = NULL;
	int r = hc_ns_create(F.fs, &d->node, name, 0600, getuid(), getgid(), &v);
	ck_assert_msg(r == 0, "create %s: %s", name, strerror(-r));
	ck_assert_int_eq(v->node.type, HC_NODE_VOLUME);
	ck_assert_ptr_eq(v->dom, d);
	return v;
}

static struct hc_node *lookup(struct hc_node *parent, const char *name)
{
	struct hc_node *n = NULL;
	int r = hc_ns_lookup(F.fs, parent, name, &n);
	ck_assert_msg(r == 0, "lookup %s: %s", name, strerror(-r));
	return n;
}

/* ---- I/O helpers ------------------------------------------------------- */

/* Reads through the volume layer; returns the byte count or -errno. */
static ssize_t vread(struct hc_volume *v, uint64_t off, void *buf, size_t size)
{
	return t_vol_read(F.fs, v, off, buf, size);
}

static void vwrite(struct hc_volume *v, uint64_t off, const void *buf, size_t len)
{
	ssize_t r = hc_vol_write(F.fs, v, off, buf, len, NULL, NULL);
	ck_assert_msg(r == (ssize_t)len, "write %zu at %llu: %zd", len, (unsigned long long)off,
		      r);
}

/* Reads [off, off+len) and compares with want; asserts the full length. */
static void vcheck(struct hc_volume *v, uint64_t off, const void *want, size_t len)
{
	char *buf = malloc(len ? len : 1);
	memset(buf, 0xa5, len);
	ssize_t r = vread(v, off, buf, len);
	ck_assert_msg(r == (ssize_t)len, "read %zu at %llu: %zd", len, (unsigned long long)off, r);
	ssize_t bad = t_memdiff(buf, want, len);
	ck_assert_msg(bad == -1, "read at %llu differs at byte %zd (offset %llu)",
		      (unsigned long long)off, bad, (unsigned long long)(off + (uint64_t)bad));
	free(buf);
}

/* The home file, read directly. */
static void *home_file(const char *dom, const char *vol, size_t *len)
{
	char *d = t_path(t_dir, dom);
	char *p = t_path(d, vol);
	void *b = t_read_file(p, len);
	free(p);
	free(d);
	return b;
}

static off_t home_size(const char *dom, const char *vol)
{
	char *d = t_path(t_dir, dom);
	char *p = t_path(d, vol);
	off_t s = t_file_size(p);
	free(p);
	free(d);
	return s;
}

static void shadow_write(char *shadow, uint64_t off, const char *buf, size_t len)
{
	memcpy(shadow + off, buf, len);
}

/* ---- read / write ------------------------------------------------------ */

START_TEST(test_write_read)
{
	fs_open(engine_names[_i], 64 * BS, 0);
	struct hc_domain *d = mkdom("vm1");
	struct hc_volume *v = mkvol(d, "disk");
	ck_assert_uint_eq(hc_vol_size(v), 0);

	const size_t total = 40 * BS;
	char *shadow = calloc(1, total);
	char *buf = malloc(total);

	/* Aligned blocks, then unaligned pieces over and between them. */
	t_pattern(buf, 3 * BS, 1, 0);
	vwrite(v, 0, buf, 3 * BS);
	shadow_write(shadow, 0, buf, 3 * BS);
	ck_assert_uint_eq(hc_vol_size(v), 3 * BS);
	t_pattern(buf, 5000, 2, 2 * BS + 17);
	vwrite(v, 2 * BS + 17, buf, 5000);
	shadow_write(shadow, 2 * BS + 17, buf, 5000);
	ck_assert_uint_eq(hc_vol_size(v), 2 * BS + 17 + 5000);
	t_pattern(buf, 1, 3, 10 * BS + 4095);
	vwrite(v, 10 * BS + 4095, buf, 1);
	shadow_write(shadow, 10 * BS + 4095, buf, 1);
	uint64_t size = 11 * BS;
	ck_assert_uint_eq(hc_vol_size(v), size);
	struct stat st;
	ck_assert_int_eq(hc_ns_getattr(F.fs, &v->node, &st), 0);
	ck_assert_int_eq(st.st_size, (off_t)size);
	ck_assert(S_ISREG(st.st_mode));

	/* Reads: whole, odd ranges, one byte, across cached and uncached. */
	vcheck(v, 0, shadow, size);
	vcheck(v, 0, shadow, size);	/* again: now from storage (exclusive cache) */
	vcheck(v, 1, shadow + 1, 3 * BS);
	vcheck(v, 2 * BS + 16, shadow + 2 * BS + 16, 5002);
	vcheck(v, 10 * BS + 4095, shadow + 10 * BS + 4095, 1);
	vcheck(v, 5 * BS, shadow + 5 * BS, 2 * BS);	/* a hole: zeros */

	/* At and past the end: short and empty reads. */
	ssize_t r = vread(v, size - 10, buf, 100);
	ck_assert_int_eq(r, 10);
	ck_assert_int_eq(t_memdiff(buf, shadow + size - 10, 10), -1);
	ck_assert_int_eq(vread(v, size, buf, 100), 0);
	ck_assert_int_eq(vread(v, size + 12345, buf, 100), 0);
	ck_assert_int_eq(vread(v, 0, buf, 0), 0);

	/* Writing the same block again and reading it back. */
	t_pattern(buf, BS, 4, BS);
	vwrite(v, BS, buf, BS);
	shadow_write(shadow, BS, buf, BS);
	vcheck(v, 0, shadow, size);

	/* A write far out grows the size; the gap reads as zeros. */
	t_pattern(buf, 100, 5, 30 * BS);
	vwrite(v, 30 * BS, buf, 100);
	shadow_write(shadow, 30 * BS, buf, 100);
	size = 30 * BS + 100;
	ck_assert_uint_eq(hc_vol_size(v), size);
	vcheck(v, 0, shadow, size);
	ck_assert_int_eq(hc_vol_write(F.fs, v, 0, buf, 0, NULL, NULL), 0);
	ck_assert_uint_eq(hc_vol_size(v), size);

	/* A read larger than HC_REQ_MAX_BYTES is cut to it. */
	char *big = malloc(HC_REQ_MAX_BYTES + 2 * BS);
	t_pattern(big, HC_REQ_MAX_BYTES + 2 * BS, 6, 0);
	vwrite(v, 0, big, HC_REQ_MAX_BYTES + 2 * BS);
	memset(big, 0, HC_REQ_MAX_BYTES + 2 * BS);
	r = vread(v, 100, big, HC_REQ_MAX_BYTES + 2 * BS);
	ck_assert_int_eq(r, HC_REQ_MAX_BYTES);
	ck_assert_int_eq(t_pattern_check(big, HC_REQ_MAX_BYTES, 6, 100), -1);
	free(big);
	free(buf);
	free(shadow);
	fs_close();
}
END_TEST

/* hc_vol_read() with dst (a FUSE ring's payload): hits and misses land in place. */
START_TEST(test_read_into_dst)
{
	fs_open(engine_names[_i], 16 * BS, 0);
	struct hc_domain *d = mkdom("vm1");
	struct hc_volume *v = mkvol(d, "disk");
	const size_t total = 32 * BS;
	char *ref = malloc(total);
	t_pattern(ref, total, 41, 0);
	vwrite(v, 0, ref, total);	/* 16 blocks cached, 16 written back */
	vwrite(v, total, ref, 100);	/* a last partial block */
	size_t dlen = 20 * BS;
	char *dst = t_alloc_aligned(dlen);
	char *out = malloc(dlen);
	int in_place = 0;

	/* Aligned, across misses and hits: in place, and the right bytes. */
	struct hc_cstats before, after;
	hc_cache_total(F.fs->cache, &before);
	ssize_t r = t_vol_read_dst(F.fs, v, 8 * BS, out, 16 * BS, dst, dlen, &in_place);
	hc_cache_total(F.fs->cache, &after);
	ck_assert_int_eq(r, 16 * BS);
	ck_assert_msg(in_place, "%s: an aligned read did not land in dst", engine_names[_i]);
	ck_assert(memcmp(dst, ref + 8 * BS, 16 * BS) == 0);
	ck_assert(memcmp(out, ref + 8 * BS, 16 * BS) == 0);
	ck_assert_msg(after.hits > before.hits && after.misses > before.misses,
		      "want hits and misses: %llu hits, %llu misses",
		      (unsigned long long)(after.hits - before.hits),
		      (unsigned long long)(after.misses - before.misses));
	/* Aligned, ending in a partial block and at the end of the volume. */
	memset(dst, 0xee, dlen);
	r = t_vol_read_dst(F.fs, v, total - BS, out, 3 * BS, dst, dlen, &in_place);
	ck_assert_int_eq(r, BS + 100);
	ck_assert(in_place);
	ck_assert(memcmp(out, ref + total - BS, BS) == 0 && memcmp(out + BS, ref, 100) == 0);
	/* Not block aligned, or larger than dst: through the pool, still right. */
	r = t_vol_read_dst(F.fs, v, 100, out, 2 * BS, dst, dlen, &in_place);
	ck_assert_int_eq(r, 2 * BS);
	ck_assert(!in_place);
	ck_assert(memcmp(out, ref + 100, 2 * BS) == 0);
	r = t_vol_read_dst(F.fs, v, 0, out, 20 * BS, dst, 19 * BS, &in_place);
	ck_assert_int_eq(r, 20 * BS);
	ck_assert(!in_place);
	ck_assert(memcmp(out, ref, 20 * BS) == 0);
	free(ref);
	free(dst);
	free(out);
	fs_close();
}
END_TEST

START_TEST(test_size_truncate)
{
	fs_open(engine_names[_i], 64 * BS, 0);
	struct hc_volume *v = mkvol(mkdom("vm1"), "disk");
	char buf[4 * BS], want[4 * BS];

	for (int flushed = 0; flushed <= 1; flushed++) {
		ck_assert_int_eq(hc_vol_truncate(F.fs, v, 0), 0);
		t_pattern(buf, 3 * BS, 7 + (uint64_t)flushed, 0);
		vwrite(v, 0, buf, 3 * BS);
		if (flushed)
			ck_assert_int_eq(hc_vol_fsync(F.fs, v, 0), 0);
		/* Shrink into the middle of block 1 ... */
		ck_assert_int_eq(hc_vol_truncate(F.fs, v, 5000), 0);
		ck_assert_uint_eq(hc_vol_size(v), 5000);
		ck_assert_int_eq(vread(v, 0, want, sizeof(want)), 5000);
		ck_assert_int_eq(t_pattern_check(want, 5000, 7 + (uint64_t)flushed, 0), -1);
		/* ... and grow again: beyond 5000 it is zeros, cache or storage. */
		ck_assert_int_eq(hc_vol_truncate(F.fs, v, 4 * BS), 0);
		ck_assert_uint_eq(hc_vol_size(v), 4 * BS);
		memcpy(want, buf, 5000);
		memset(want + 5000, 0, sizeof(want) - 5000);
		vcheck(v, 0, want, 4 * BS);
		vcheck(v, 0, want, 4 * BS);
		/* And so it is in the home file after fsync, at the exact size. */
		ck_assert_int_eq(hc_vol_fsync(F.fs, v, 0), 0);
		size_t len;
		char *h = home_file("vm1", "disk", &len);
		ck_assert_uint_eq(len, 4 * BS);
		ck_assert_int_eq(t_memdiff(h, want, len), -1);
		free(h);
	}
	/* Truncate to zero and to a size not on a block boundary. */
	ck_assert_int_eq(hc_vol_truncate(F.fs, v, 0), 0);
	ck_assert_int_eq(vread(v, 0, buf, sizeof(buf)), 0);
	ck_assert_int_eq(hc_vol_truncate(F.fs, v, 6001), 0);
	memset(want, 0, sizeof(want));
	vcheck(v, 0, want, 6001);
	ck_assert_int_eq(hc_vol_truncate(F.fs, v, HC_MAX_VOLUME_SIZE + 1), -EFBIG);
	ck_assert_uint_eq(hc_vol_size(v), 6001);
	fs_close();
}
END_TEST

START_TEST(test_punch_hole)
{
	fs_open(engine_names[_i], 64 * BS, 0);
	struct hc_volume *v = mkvol(mkdom("vm1"), "disk");
	const size_t size = 8 * BS;
	char *shadow = malloc(size);
	t_pattern(shadow, size, 9, 0);
	vwrite(v, 0, shadow, 4 * BS);
	ck_assert_int_eq(hc_vol_fsync(F.fs, v, 0), 0);	/* blocks 0-3 clean */
	vwrite(v, 4 * BS, shadow + 4 * BS, 4 * BS);	/* blocks 4-7 dirty */

	/* Across clean and dirty blocks, partial at both ends. */
	const uint64_t off = 2 * BS + 100, len = 3 * BS;
	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  off, len), 0);
	memset(shadow + off, 0, len);
	ck_assert_uint_eq(hc_vol_size(v), size);
	vcheck(v, 0, shadow, size);
	vcheck(v, 0, shadow, size);
	ck_assert_int_eq(hc_vol_fsync(F.fs, v, 0), 0);
	size_t hl;
	char *h = home_file("vm1", "disk", &hl);
	ck_assert_uint_eq(hl, size);
	ck_assert_int_eq(t_memdiff(h, shadow, size), -1);
	free(h);

	/* Inside one block, on dirty data. */
	t_pattern(shadow + 6 * BS, BS, 10, 6 * BS);
	vwrite(v, 6 * BS, shadow + 6 * BS, BS);
	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  6 * BS + 10, 20), 0);
	memset(shadow + 6 * BS + 10, 0, 20);
	vcheck(v, 6 * BS, shadow + 6 * BS, BS);
	/* Past the end, with KEEP_SIZE: the size stays. */
	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  7 * BS, 10 * BS), 0);
	memset(shadow + 7 * BS, 0, BS);
	ck_assert_uint_eq(hc_vol_size(v), size);
	vcheck(v, 0, shadow, size);

	/* The discard was a discard: counted, and no blocks written for it. */
	struct hc_cstats s;
	hc_cstats_read(&v->dom->stats, &s);
	ck_assert_uint_gt(s.discards, 0);

	/* Modes refused. */
	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, FALLOC_FL_PUNCH_HOLE, 0, BS), -EOPNOTSUPP);
	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, FALLOC_FL_COLLAPSE_RANGE, 0, BS),
			 -EOPNOTSUPP);
	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, FALLOC_FL_INSERT_RANGE, 0, BS), -EOPNOTSUPP);
	vcheck(v, 0, shadow, size);
	free(shadow);
	fs_close();
}
END_TEST

START_TEST(test_zero_range)
{
	fs_open(engine_names[_i], 64 * BS, 0);
	struct hc_volume *v = mkvol(mkdom("vm1"), "disk");
	size_t size = 6 * BS;
	char *shadow = calloc(1, 16 * BS);
	t_pattern(shadow, size, 11, 0);
	vwrite(v, 0, shadow, size);
	ck_assert_int_eq(hc_vol_fsync(F.fs, v, 0), 0);
	t_pattern(shadow + 3 * BS, BS, 12, 3 * BS);
	vwrite(v, 3 * BS, shadow + 3 * BS, BS);	/* one dirty block among clean */

	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, FALLOC_FL_ZERO_RANGE, BS + 1, 3 * BS), 0);
	memset(shadow + BS + 1, 0, 3 * BS);
	ck_assert_uint_eq(hc_vol_size(v), size);
	vcheck(v, 0, shadow, size);

	/* Past the end: grows the size unless KEEP_SIZE. */
	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
					  5 * BS, 4 * BS), 0);
	memset(shadow + 5 * BS, 0, BS);
	ck_assert_uint_eq(hc_vol_size(v), size);
	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, FALLOC_FL_ZERO_RANGE, 5 * BS + 7, 4 * BS), 0);
	size = 9 * BS + 7;
	ck_assert_uint_eq(hc_vol_size(v), size);
	vcheck(v, 0, shadow, size);
	ck_assert_int_eq(hc_vol_fsync(F.fs, v, 1), 0);
	size_t hl;
	char *h = home_file("vm1", "disk", &hl);
	ck_assert_uint_eq(hl, size);
	ck_assert_int_eq(t_memdiff(h, shadow, size), -1);
	free(h);

	/* Plain allocation (mode 0) grows the size too; the new part is zeros. */
	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, 0, 10 * BS, 2 * BS), 0);
	size = 12 * BS;
	ck_assert_uint_eq(hc_vol_size(v), size);
	vcheck(v, 0, shadow, size);
	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, FALLOC_FL_ZERO_RANGE, HC_MAX_VOLUME_SIZE, 1),
			 -EFBIG);
	free(shadow);
	fs_close();
}
END_TEST

START_TEST(test_seek_data_hole)
{
	fs_open(engine_names[_i], 64 * BS, 0);
	struct hc_volume *v = mkvol(mkdom("vm1"), "disk");
	const uint64_t size = 256 * BS;
	ck_assert_int_eq(hc_vol_truncate(F.fs, v, size), 0);
	char buf[2 * BS];
	t_pattern(buf, sizeof(buf), 13, 0);
	vwrite(v, 0, buf, BS);			/* data: block 0 */
	vwrite(v, 10 * BS, buf, 2 * BS);	/* blocks 10-11 */
	vwrite(v, 100 * BS + 5, buf, 10);	/* part of block 100 */
	/* Still in the cache: seek must see them anyway. */
	ck_assert_int_eq(hc_vol_seek(F.fs, v, 0, SEEK_DATA), 0);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, 0, SEEK_HOLE), BS);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, 1, SEEK_HOLE), BS);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, BS, SEEK_HOLE), BS);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, BS, SEEK_DATA), 10 * BS);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, 10 * BS + 1, SEEK_DATA), 10 * BS + 1);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, 10 * BS, SEEK_HOLE), 12 * BS);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, 12 * BS, SEEK_DATA), 100 * BS);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, 100 * BS, SEEK_HOLE), 101 * BS);
	/* After the last data: no more data; the hole runs to the end. */
	ck_assert_int_eq(hc_vol_seek(F.fs, v, 101 * BS, SEEK_DATA), -ENXIO);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, 101 * BS, SEEK_HOLE), 101 * BS);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, size - 1, SEEK_HOLE), size - 1);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, size, SEEK_DATA), -ENXIO);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, size, SEEK_HOLE), -ENXIO);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, -1, SEEK_DATA), -ENXIO);
	/* A punched block becomes a hole. */
	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  10 * BS, BS), 0);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, BS, SEEK_DATA), 11 * BS);
	/* The data is still right and the size did not move. */
	ck_assert_uint_eq(hc_vol_size(v), size);
	char want[BS];
	memset(want, 0, sizeof(want));
	memcpy(want + 5, buf, 10);
	vcheck(v, 100 * BS, want, BS);
	vcheck(v, 0, buf, BS);
	vcheck(v, 11 * BS, buf + BS, BS);
	fs_close();
}
END_TEST

/* fsync: the data and the exact size are in the home file. */
START_TEST(test_fsync_home_file)
{
	fs_open(engine_names[_i], 64 * BS, 0);
	struct hc_domain *d = mkdom("vm1");
	struct hc_volume *v = mkvol(d, "disk");
	const size_t size = 10000;
	char *data = malloc(size);
	t_pattern(data, size, 14, 0);
	vwrite(v, 0, data, size);
	ck_assert_int_eq(home_size("vm1", "disk"), (off_t)size);	/* extended at once */
	ck_assert_int_eq(hc_vol_fsync(F.fs, v, 0), 0);
	size_t len;
	char *h = home_file("vm1", "disk", &len);
	ck_assert_uint_eq(len, size);	/* not rounded up to the block */
	ck_assert_int_eq(t_memdiff(h, data, size), -1);
	free(h);
	struct hc_cstats s;
	hc_cstats_read(&d->stats, &s);
	ck_assert_int_eq(s.dirty, 0);
	ck_assert_uint_eq(s.writebacks, 3);

	/* fdatasync too, after an overwrite in the middle. */
	t_pattern(data + 4000, 3000, 15, 4000);
	vwrite(v, 4000, data + 4000, 3000);
	ck_assert_int_eq(hc_vol_fsync(F.fs, v, 1), 0);
	h = home_file("vm1", "disk", &len);
	ck_assert_uint_eq(len, size);
	ck_assert_int_eq(t_memdiff(h, data, size), -1);
	free(h);

	/* hc_fs_flush_all does it for every volume. */
	struct hc_volume *v2 = mkvol(d, "swap");
	ck_assert_int_eq(v2->kind, HC_KIND_SWAP);
	/* Contents found nowhere else (dedup would leave the home files alone). */
	char *u = malloc(2 * BS);
	t_pattern(u, 2 * BS, 77, 0);
	vwrite(v2, BS, u, BS);
	vwrite(v, 0, u + BS, BS);
	ck_assert_int_eq(hc_fs_flush_all(F.fs), 0);
	h = home_file("vm1", "swap", &len);
	ck_assert_uint_eq(len, 2 * BS);
	ck_assert_int_eq(t_memchk(h, 0, BS), -1);
	ck_assert_int_eq(t_memdiff(h + BS, u, BS), -1);
	free(h);
	h = home_file("vm1", "disk", &len);
	ck_assert_int_eq(t_memdiff(h, u + BS, BS), -1);
	free(u);
	free(h);
	free(data);
	fs_close();
}
END_TEST

START_TEST(test_efbig)
{
	fs_open("sync", 64 * BS, 0);
	struct hc_volume *v = mkvol(mkdom("vm1"), "disk");
	char buf[2 * BS];
	t_pattern(buf, sizeof(buf), 16, 0);
	vwrite(v, 0, buf, 100);
	const uint64_t max = HC_MAX_VOLUME_SIZE;
	ck_assert_int_eq(hc_vol_write(F.fs, v, max - 10, buf, 20, NULL, NULL), -EFBIG);
	ck_assert_int_eq(hc_vol_write(F.fs, v, max, buf, 1, NULL, NULL), -EFBIG);
	ck_assert_int_eq(hc_vol_write(F.fs, v, max + BS, buf, BS, NULL, NULL), -EFBIG);
	ck_assert_int_eq(hc_vol_write(F.fs, v, UINT64_MAX - 5, buf, 10, NULL, NULL), -EFBIG);
	ck_assert_int_eq(hc_vol_write(F.fs, v, 1, buf, SIZE_MAX, NULL, NULL), -EFBIG);
	ck_assert_int_eq(hc_vol_truncate(F.fs, v, max + 1), -EFBIG);
	ck_assert_int_eq(hc_vol_fallocate(F.fs, v, 0, max - 1, 2), -EFBIG);
	ck_assert_uint_eq(hc_vol_size(v), 100);
	vcheck(v, 0, buf, 100);
	/* Far out but within the limit works (sparse). */
	const uint64_t far = 1ull << 40;
	vwrite(v, far, buf, 2 * BS);
	ck_assert_uint_eq(hc_vol_size(v), far + 2 * BS);
	vcheck(v, far, buf, 2 * BS);
	vcheck(v, 0, buf, 100);
	ck_assert_int_eq(hc_vol_truncate(F.fs, v, 100), 0);
	fs_close();
}
END_TEST

/* ---- write-through ------------------------------------------------------ */

struct wwait {
	sem_t sem;
	int calls;	/* atomic */
	int err;
	size_t size;
};

static void wdone(struct hc_wreq *w, int err)
{
	struct wwait *ww = w->priv;
	ww->err = err;
	ww->size = w->size;
	hc_wreq_release(w);
	__atomic_fetch_add(&ww->calls, 1, __ATOMIC_ACQ_REL);
	sem_post(&ww->sem);
}

START_TEST(test_write_through)
{
	fs_open(engine_names[_i], 64 * BS, 1);
	struct hc_volume *v = mkvol(mkdom("vm1"), "disk");
	char *data = malloc(5 * BS);
	t_pattern(data, 5 * BS, 17, 0);
	for (int i = 0; i < 100; i++) {	/* more than the request pool */
		struct wwait w;
		memset(&w, 0, sizeof(w));
		sem_init(&w.sem, 0, 0);
		uint64_t off = (uint64_t)(i % 5) * 1000;
		size_t len = 5 * BS - off;
		ssize_t r = hc_vol_write(F.fs, v, off, data + off, len, wdone, &w);
		ck_assert_int_eq(r, 0);	/* answered by wdone */
		while (sem_wait(&w.sem) < 0 && errno == EINTR)
			;
		ck_assert_int_eq(w.err, 0);
		ck_assert_uint_eq(w.size, len);
		ck_assert_int_eq(__atomic_load_n(&w.calls, __ATOMIC_ACQUIRE), 1);
		sem_destroy(&w.sem);
	}
	/* On storage before any fsync. */
	size_t len;
	char *h = home_file("vm1", "disk", &len);
	ck_assert_uint_ge(len, 5 * BS);
	ck_assert_int_eq(t_memdiff(h, data, 5 * BS), -1);
	free(h);
	struct hc_cstats s;
	hc_cstats_read(&v->dom->stats, &s);
	ck_assert_int_eq(s.dirty, 0);
	vcheck(v, 0, data, 5 * BS);
	free(data);
	fs_close();
}
END_TEST

/* ---- persistence -------------------------------------------------------- */

/*
 * _i: bit 0 the engine; bit 1 set: the backing directory is closed and
 * opened again in between, clear: the same hc_backing is used again.
 */
START_TEST(test_reopen)
{
	fs_open(engine_names[_i & 1], 64 * BS, 0);
	struct hc_domain *d1 = mkdom("vm1"), *d2 = mkdom("vm2");
	struct hc_volume *a = mkvol(d1, "disk"), *b = mkvol(d1, "mem"), *c = mkvol(d2, "swap");
	char *data = malloc(8 * BS);
	t_pattern(data, 8 * BS, 18, 0);
	vwrite(a, 0, data, 3 * BS + 7);
	vwrite(b, BS, data, 2 * BS);
	vwrite(c, 5 * BS, data, 100);
	ck_assert_int_eq(hc_ns_set_kind(F.fs, b, "ram"), 0);
	ck_assert_int_eq(b->kind, HC_KIND_RAM);
	ck_assert_int_eq(hc_ns_set_kind(F.fs, b, "bogus"), -EINVAL);
	ck_assert_int_eq(hc_fs_flush_all(F.fs), 0);
	hc_fs_destroy(F.fs);
	F.fs = NULL;
	if (_i & 2) {
		hc_backing_close(F.b);
		F.b = NULL;
		int r = hc_backing_open(t_dir, 0, &F.b, F.msg, sizeof(F.msg));
		ck_assert_msg(r == 0, "hc_backing_open: %d %s", r, F.msg);
		ck_assert_int_eq(F.b->formatted, 0);
	}

	/* Things that are not domains or volumes are left alone. */
	char *stray = t_path(t_dir, "stray.txt");
	t_write_file(stray, "x", 1);
	char *sub = t_path(t_dir, "vm1/subdir");
	ck_assert_int_eq(mkdir(sub, 0700), 0);

	fs_start(64 * BS, 0);
	struct hc_node *n1 = NULL, *n2 = NULL, *tmp;
	int r1 = hc_ns_lookup(F.fs, &F.fs->root, "vm1", &n1);
	int r2 = hc_ns_lookup(F.fs, &F.fs->root, "vm2", &n2);
	ck_assert_msg(r1 == 0 && r2 == 0,
		      "domains not found after hc_fs_create on a %s hc_backing: vm1 %d, vm2 %d",
		      (_i & 2) ? "reopened" : "reused", r1, r2);
	ck_assert_int_eq(hc_ns_lookup(F.fs, &F.fs->root, HC_SB_FILE, &tmp), -ENOENT);
	ck_assert_int_eq(hc_ns_lookup(F.fs, &F.fs->root, "stray.txt", &tmp), -ENOENT);
	ck_assert_int_eq(hc_ns_lookup(F.fs, n1, "subdir", &tmp), -ENOENT);
	a = (struct hc_volume *)lookup(n1, "disk");
	b = (struct hc_volume *)lookup(n1, "mem");
	c = (struct hc_volume *)lookup(n2, "swap");
	ck_assert_uint_eq(hc_vol_size(a), 3 * BS + 7);
	ck_assert_uint_eq(hc_vol_size(b), 3 * BS);
	ck_assert_uint_eq(hc_vol_size(c), 5 * BS + 100);
	ck_assert_int_eq(a->kind, HC_KIND_DISK);
	ck_assert_int_eq(b->kind, HC_KIND_RAM);	/* from the xattr */
	ck_assert_int_eq(c->kind, HC_KIND_SWAP);	/* from the name */
	vcheck(a, 0, data, 3 * BS + 7);
	char *want = calloc(1, 6 * BS);
	memcpy(want + BS, data, 2 * BS);
	vcheck(b, 0, want, 3 * BS);
	memset(want, 0, 6 * BS);
	memcpy(want + 5 * BS, data, 100);
	vcheck(c, 0, want, 5 * BS + 100);
	free(want);
	free(data);
	free(stray);
	free(sub);
	fs_close();
}
END_TEST

START_TEST(test_create_refused)
{
	memset(&F, 0, sizeof(F));
	ck_assert_int_eq(hc_backing_open(t_dir, 1, &F.b, F.msg, sizeof(F.msg)), 0);
	ck_assert_int_eq(hc_ioeng_create("sync", 8, 0, &F.e), 0);
	struct hc_fs *fs = NULL;
	F.msg[0] = 0;
	ck_assert_int_eq(hc_fs_create(F.b, F.e, 4096, 0, NULL, &fs, F.msg, sizeof(F.msg)), -EINVAL);
	ck_assert_ptr_null(fs);
	ck_assert_uint_gt(strlen(F.msg), 0);
	fs_start(64 * BS, 0);
	fs_close();
}
END_TEST

/* ---- stats -------------------------------------------------------------- */

static const char *const stat_names[] = { "hits", "misses", "admissions", "writebacks",
					  "discards", "read_bytes", "written_bytes", "cached",
					  "dirty" };

/* Finds "<label> " at a line start in text and parses its nine counters. */
static int parse_stats_line(const char *text, const char *label, long long out[9])
{
	size_t ll = strlen(label);
	const char *p = text;
	while (p && *p) {
		if (!strncmp(p, label, ll) && p[ll] == ' ') {
			p += ll;
			for (int k = 0; k < 9; k++) {
				char name[32];
				int used;
				if (sscanf(p, " %31s %lld%n", name, &out[k], &used) != 2 ||
				    strcmp(name, stat_names[k]))
					return -1;
				p += used;
			}
			return *p == '\n' ? 0 : -1;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return -1;
}

static void assert_stats_match(const long long got[9], const struct hc_cstats *s)
{
	const long long want[9] = {
		(long long)s->hits,	  (long long)s->misses,	    (long long)s->admissions,
		(long long)s->writebacks, (long long)s->discards,   (long long)s->read_bytes,
		(long long)s->written_bytes, (long long)s->cached, (long long)s->dirty,
	};
	for (int k = 0; k < 9; k++)
		ck_assert_msg(got[k] == want[k], "%s: text says %lld, counters %lld", stat_names[k],
			      got[k], want[k]);
}

/*
 * A swap volume keeps the dirty blocks reads take out (lazy_taken) while it
 * is its domain's only swap or ram volume; a second one (double paging)
 * turns it off for both, and it comes back when that one goes.  Through
 * the volume: a dirty block read back is written only at the flush.
 */
START_TEST(test_lazy_taken_swap)
{
	fs_open("sync", 64 * BS, 0);
	struct hc_domain *d = mkdom("vm1");
	struct hc_volume *a = mkvol(d, "a.swap"), *disk = mkvol(d, "disk");
	ck_assert_int_eq(a->cv.lazy_taken, 1);
	ck_assert_int_eq(disk->cv.lazy_taken, 0);
	char *data = malloc(2 * BS);
	t_pattern(data, 2 * BS, 23, 0);
	vwrite(a, 0, data, 2 * BS);
	vcheck(a, 0, data, 2 * BS);
	struct hc_cstats s;
	hc_cstats_read(&d->stats, &s);
	ck_assert_uint_eq(s.writebacks, 0);
	vcheck(a, 0, data, 2 * BS);	/* served from the kept slots */
	ck_assert_int_eq(hc_vol_fsync(F.fs, a, 0), 0);
	hc_cstats_read(&d->stats, &s);
	ck_assert_uint_eq(s.writebacks, 2);
	ck_assert_int_eq(s.cached, 0);

	struct hc_volume *b = mkvol(d, "b.swap");
	ck_assert_int_eq(a->cv.lazy_taken, 0);
	ck_assert_int_eq(b->cv.lazy_taken, 0);
	ck_assert_int_eq(hc_ns_set_kind(F.fs, b, "disk"), 0);
	ck_assert_int_eq(a->cv.lazy_taken, 1);
	ck_assert_int_eq(hc_ns_set_kind(F.fs, b, "ram"), 0);
	ck_assert_int_eq(a->cv.lazy_taken, 0);
	ck_assert_int_eq(hc_ns_unlink(F.fs, &d->node, "b.swap"), 0);
	ck_assert_int_eq(a->cv.lazy_taken, 1);
	hc_ns_forget(F.fs, &b->node, 1000);
	free(data);
	fs_close();
}
END_TEST

START_TEST(test_stats_text)
{
	fs_open("sync", 64 * BS, 0);
	struct hc_domain *d1 = mkdom("vm1"), *d2 = mkdom("vm2");
	struct hc_volume *v1 = mkvol(d1, "disk"), *v2 = mkvol(d2, "disk");
	char *data = malloc(4 * BS);
	t_pattern(data, 4 * BS, 19, 0);
	vwrite(v1, 0, data, 4 * BS);
	vwrite(v2, 0, data, BS);
	vcheck(v1, 0, data, 2 * BS);	/* 2 hits */
	vcheck(v1, 0, data, 2 * BS);	/* 2 misses */
	ck_assert_int_eq(hc_vol_fsync(F.fs, v1, 0), 0);

	char text[4096];
	int n = hc_ns_stats_text(F.fs, NULL, text, sizeof(text));
	ck_assert_int_gt(n, 0);
	ck_assert_uint_eq(strlen(text), (size_t)n);
	long long got[9];
	struct hc_cstats s1, s2, t;
	hc_cstats_read(&d1->stats, &s1);
	hc_cstats_read(&d2->stats, &s2);
	hc_cache_total(F.fs->cache, &t);
	ck_assert_msg(parse_stats_line(text, "domain vm1", got) == 0, "no vm1 line in:\n%s", text);
	assert_stats_match(got, &s1);
	ck_assert_int_eq(got[0], 2);	/* hits */
	ck_assert_int_eq(got[1], 2);	/* misses */
	ck_assert_int_eq(got[2], 4);	/* admissions */
	ck_assert_msg(parse_stats_line(text, "domain vm2", got) == 0, "no vm2 line in:\n%s", text);
	assert_stats_match(got, &s2);
	ck_assert_int_eq(got[2], 1);
	ck_assert_msg(parse_stats_line(text, "total", got) == 0, "no total line in:\n%s", text);
	assert_stats_match(got, &t);
	ck_assert_uint_eq(t.admissions, s1.admissions + s2.admissions);

	/* One domain only: its line, nothing else. */
	n = hc_ns_stats_text(F.fs, d2, text, sizeof(text));
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(strncmp(text, "domain vm2 ", 11), 0);
	ck_assert_ptr_eq(strchr(text, '\n'), text + n - 1);

	/* Too small a buffer: -ERANGE, nothing written past its end. */
	for (size_t len = 0; len < 64; len += 7) {
		memset(text, '#', sizeof(text));
		ck_assert_int_eq(hc_ns_stats_text(F.fs, NULL, text, len), -ERANGE);
		for (size_t k = len; k < 128; k++)
			ck_assert_msg(text[k] == '#', "byte %zu written with a %zu-byte buffer", k,
				      len);
	}
	free(data);
	fs_close();
}
END_TEST

/* ---- namespace ---------------------------------------------------------- */

struct dirlist {
	char names[16][64];
	int n;
};

static int fill(void *ctx, const char *name, const struct stat *st, uint64_t next)
{
	struct dirlist *l = ctx;
	if (l->n < 16)
		snprintf(l->names[l->n++], 64, "%s", name);
	return 0;
}

static int listed(const struct dirlist *l, const char *name)
{
	for (int i = 0; i < l->n; i++)
		if (!strcmp(l->names[i], name))
			return 1;
	return 0;
}

START_TEST(test_namespace_errors)
{
	fs_open("sync", 64 * BS, 0);
	struct hc_node *root = &F.fs->root;
	struct hc_domain *d1 = mkdom("vm1"), *d2 = mkdom("vm2");
	struct hc_volume *a = mkvol(d1, "a"), *b = mkvol(d1, "b");
	mkvol(d2, "c");
	struct hc_node *n;
	struct hc_volume *v;
	uid_t u = getuid();
	gid_t g = getgid();

	/* Names and places. */
	ck_assert_int_eq(hc_ns_mkdir(F.fs, root, "vm1", 0700, u, g, &n), -EEXIST);
	ck_assert_int_eq(hc_ns_mkdir(F.fs, &d1->node, "x", 0700, u, g, &n), -EPERM);
	static const char *const bad[] = { "", ".", "..", "a/b" };
	for (size_t i = 0; i < 4; i++) {
		ck_assert_int_eq(hc_ns_mkdir(F.fs, root, bad[i], 0700, u, g, &n), -EINVAL);
		ck_assert_int_eq(hc_ns_create(F.fs, &d1->node, bad[i], 0600, u, g, &v), -EINVAL);
	}
	ck_assert_int_eq(hc_ns_create(F.fs, &d1->node, "a", 0600, u, g, &v), -EEXIST);
	ck_assert_int_eq(hc_ns_create(F.fs, root, "v", 0600, u, g, &v), -EPERM);
	ck_assert_int_eq(hc_ns_lookup(F.fs, root, "nope", &n), -ENOENT);
	ck_assert_int_eq(hc_ns_lookup(F.fs, &d1->node, "nope", &n), -ENOENT);
	ck_assert_int_eq(hc_ns_lookup(F.fs, &a->node, "x", &n), -ENOTDIR);
	ck_assert_ptr_eq(lookup(&d1->node, "b"), &b->node);

	/* rmdir and unlink. */
	ck_assert_int_eq(hc_ns_rmdir(F.fs, root, "vm1"), -ENOTEMPTY);
	ck_assert_int_eq(hc_ns_rmdir(F.fs, root, "nope"), -ENOENT);
	ck_assert_int_eq(hc_ns_unlink(F.fs, &d1->node, "nope"), -ENOENT);
	ck_assert_int_eq(hc_ns_unlink(F.fs, root, "vm1"), -EISDIR);

	/* rename. */
	ck_assert_int_eq(hc_ns_rename(F.fs, &d1->node, "a", &d2->node, "a", 0), -EXDEV);
	ck_assert_int_eq(hc_ns_rename(F.fs, &d1->node, "a", root, "a", 0), -EXDEV);
	ck_assert_int_eq(hc_ns_rename(F.fs, root, "vm1", &d2->node, "vm1", 0), -EXDEV);
	ck_assert_int_eq(hc_ns_rename(F.fs, &d1->node, "a", &d1->node, "b", RENAME_NOREPLACE),
			 -EEXIST);
	ck_assert_int_eq(hc_ns_rename(F.fs, &d1->node, "a", &d1->node, "z", RENAME_EXCHANGE),
			 -EINVAL);
	ck_assert_int_eq(hc_ns_rename(F.fs, &d1->node, "a", &d1->node, "x/y", 0), -EINVAL);
	ck_assert_int_eq(hc_ns_rename(F.fs, &d1->node, "nope", &d1->node, "z", 0), -ENOENT);
	ck_assert_int_eq(hc_ns_rename(F.fs, root, "vm1", root, "vm2", 0), -ENOTEMPTY);
	ck_assert_int_eq(hc_ns_rename(F.fs, root, "vm1", root, "vm2", RENAME_NOREPLACE), -EEXIST);

	/* Nothing moved on disk by all that. */
	char *p = t_path(t_dir, "vm1/a");
	ck_assert_int_eq(t_file_size(p), 0);
	free(p);
	struct dirlist l = { .n = 0 };
	ck_assert_int_eq(hc_ns_readdir(F.fs, &d1->node, 0, fill, &l), 0);
	ck_assert_int_eq(l.n, 4);
	ck_assert(listed(&l, ".") && listed(&l, "..") && listed(&l, "a") && listed(&l, "b"));
	l.n = 0;
	ck_assert_int_eq(hc_ns_readdir(F.fs, root, 0, fill, &l), 0);
	ck_assert_int_eq(l.n, 4);
	ck_assert(listed(&l, "vm1") && listed(&l, "vm2"));
	ck_assert_int_eq(hc_ns_readdir(F.fs, &a->node, 0, fill, &l), -ENOTDIR);
	fs_close();
}
END_TEST

START_TEST(test_namespace_changes)
{
	fs_open(engine_names[_i], 64 * BS, 0);
	struct hc_node *root = &F.fs->root;
	struct hc_domain *d1 = mkdom("vm1");
	struct hc_volume *a = mkvol(d1, "a"), *b = mkvol(d1, "b");
	char data[2 * BS];
	t_pattern(data, sizeof(data), 20, 0);
	vwrite(a, 0, data, BS);			/* dirty in the cache */
	vwrite(b, 0, data + BS, BS);

	/* Rename within the domain: same volume, new name, data kept. */
	ck_assert_int_eq(hc_ns_rename(F.fs, &d1->node, "a", &d1->node, "a2", 0), 0);
	struct hc_node *n;
	ck_assert_int_eq(hc_ns_lookup(F.fs, &d1->node, "a", &n), -ENOENT);
	ck_assert_ptr_eq(lookup(&d1->node, "a2"), &a->node);
	ck_assert_str_eq(a->name, "a2");
	ck_assert_int_eq(home_size("vm1", "a"), -1);
	ck_assert_int_eq(home_size("vm1", "a2"), BS);
	vcheck(a, 0, data, BS);
	ck_assert_int_eq(hc_ns_rename(F.fs, &d1->node, "a2", &d1->node, "a2", 0), 0);

	/* Rename over another volume replaces it. */
	ck_assert_int_eq(hc_ns_rename(F.fs, &d1->node, "b", &d1->node, "a2", 0), 0);
	ck_assert_ptr_eq(lookup(&d1->node, "a2"), &b->node);
	ck_assert_int_eq(hc_ns_lookup(F.fs, &d1->node, "b", &n), -ENOENT);
	vcheck(b, 0, data + BS, BS);
	ck_assert_int_eq(home_size("vm1", "b"), -1);
	/* The replaced volume is unlisted; its last forget frees it. */
	ck_assert_int_eq(a->unlinked, 1);
	hc_ns_forget(F.fs, &a->node, 1000);
	a = NULL;
	ck_assert_int_eq(hc_vol_fsync(F.fs, b, 0), 0);
	size_t len;
	char *h = home_file("vm1", "a2", &len);
	ck_assert_uint_eq(len, BS);
	ck_assert_int_eq(t_memdiff(h, data + BS, BS), -1);
	free(h);

	/* Unlink: gone from the namespace and the disk at once ... */
	vwrite(b, BS, data, BS);
	ck_assert_int_eq(hc_ns_unlink(F.fs, &d1->node, "a2"), 0);
	ck_assert_int_eq(hc_ns_lookup(F.fs, &d1->node, "a2", &n), -ENOENT);
	ck_assert_int_eq(home_size("vm1", "a2"), -1);
	/* ... but an open volume keeps working until its release. */
	hc_ns_open(F.fs, b);
	hc_ns_forget(F.fs, &b->node, 1000);
	char both[2 * BS];
	memcpy(both, data + BS, BS);
	memcpy(both + BS, data, BS);
	vcheck(b, 0, both, 2 * BS);
	hc_ns_release(F.fs, b);
	b = NULL;

	/* rmdir of the now empty domain. */
	ck_assert_int_eq(hc_ns_rmdir(F.fs, root, "vm1"), 0);
	ck_assert_int_eq(hc_ns_lookup(F.fs, root, "vm1", &n), -ENOENT);
	ck_assert_int_eq(home_size("vm1", "."), -1);
	hc_ns_forget(F.fs, &d1->node, 1000);

	/* Renaming a domain takes its volumes along, onto an empty one too. */
	struct hc_domain *d2 = mkdom("vm2"), *d4 = mkdom("vm4");
	struct hc_volume *c = mkvol(d2, "c");
	vwrite(c, 0, data, 2 * BS);
	ck_assert_int_eq(hc_ns_rename(F.fs, root, "vm2", root, "vm3", 0), 0);
	ck_assert_ptr_eq(lookup(root, "vm3"), &d2->node);
	ck_assert_int_eq(hc_ns_lookup(F.fs, root, "vm2", &n), -ENOENT);
	ck_assert_str_eq(d2->name, "vm3");
	ck_assert_int_eq(hc_ns_rename(F.fs, root, "vm3", root, "vm4", 0), 0);
	ck_assert_int_eq(d4->removed, 1);
	hc_ns_forget(F.fs, &d4->node, 1000);
	ck_assert_ptr_eq(lookup(root, "vm4"), &d2->node);
	ck_assert_ptr_eq(lookup(&d2->node, "c"), &c->node);
	vcheck(c, 0, data, 2 * BS);
	ck_assert_int_eq(hc_vol_fsync(F.fs, c, 0), 0);
	h = home_file("vm4", "c", &len);
	ck_assert_uint_eq(len, 2 * BS);
	ck_assert_int_eq(t_memdiff(h, data, len), -1);
	free(h);
	ck_assert_int_eq(home_size("vm3", "c"), -1);
	fs_close();
}
END_TEST

/* ---- threads ------------------------------------------------------------ */

#define MT_THREADS 3
#define MT_SIZE (48 * BS)
#define MT_MS 1500

struct mt {
	pthread_t th;
	struct hc_volume *v;
	uint64_t rng;
	char *shadow;
	uint64_t size;
	unsigned long ops;
	char err[256];
};

static uint64_t mt_deadline;
static int mt_dups;	/* aligned writes often copy blocks the volume holds */

static void *mt_main(void *arg)
{
	struct mt *m = arg;
	char *buf = malloc(4 * BS), *rd = malloc(4 * BS);
	while (t_now_ms() < mt_deadline && m->ops < 20000) {
		m->ops++;
		unsigned op = (unsigned)t_rand_below(&m->rng, 100);
		uint64_t off = t_rand_below(&m->rng, MT_SIZE);
		size_t len = 1 + (size_t)t_rand_below(&m->rng, 3 * BS);
		if (t_rand_below(&m->rng, 2)) {
			off -= off % BS;
			len = BS * (1 + len / BS);
		}
		if (off + len > MT_SIZE)
			len = MT_SIZE - off;
		if (op < 45) {
			uint64_t from = t_rand_below(&m->rng, MT_SIZE / BS) * BS;
			if (mt_dups && off % BS == 0 && len % BS == 0 && from + len <= m->size &&
			    (from + len <= off || off + len <= from) && t_rand_below(&m->rng, 2))
				memcpy(buf, m->shadow + from, len);	/* dedup candidates in a row */
			else
				t_fill_random(buf, len, &m->rng);
			ssize_t r = hc_vol_write(F.fs, m->v, off, buf, len, NULL, NULL);
			if (r != (ssize_t)len) {
				snprintf(m->err, sizeof(m->err), "write %zu at %llu: %zd", len,
					 (unsigned long long)off, r);
				break;
			}
			memcpy(m->shadow + off, buf, len);
			if (off + len > m->size)
				m->size = off + len;
		} else if (op < 90) {
			ssize_t r = t_vol_read(F.fs, m->v, off, rd, len);
			size_t want = off >= m->size ? 0 : HC_MIN(len, m->size - off);
			if (r != (ssize_t)want) {
				snprintf(m->err, sizeof(m->err), "read %zu at %llu: %zd, want %zu",
					 len, (unsigned long long)off, r, want);
				break;
			}
			ssize_t bad = t_memdiff(rd, m->shadow + off, want);
			if (bad >= 0) {
				snprintf(m->err, sizeof(m->err), "read at %llu differs at %llu",
					 (unsigned long long)off, (unsigned long long)(off + (uint64_t)bad));
				break;
			}
		} else if (op < 95) {
			int r = hc_vol_fsync(F.fs, m->v, op & 1);
			if (r) {
				snprintf(m->err, sizeof(m->err), "fsync: %d", r);
				break;
			}
		} else {
			int r = hc_vol_fallocate(F.fs, m->v, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
						 off, len);
			if (r) {
				snprintf(m->err, sizeof(m->err), "punch: %d", r);
				break;
			}
			if (off < m->size)
				memset(m->shadow + off, 0, HC_MIN(len, m->size - off));
		}
	}
	free(buf);
	free(rd);
	return NULL;
}

/*
 * Threads on their own volumes, sharing a cache smaller than their data.
 * In the second pair of rounds half the aligned writes copy blocks the
 * volume already holds elsewhere: their write-backs, run by whichever
 * thread needs a slot while the owner goes on writing, reading and
 * punching, share them through the verification window (reconcile.c).
 */
START_TEST(test_threads)
{
	mt_dups = _i / 2;
	fs_open(engine_names[_i % 2], 32 * BS, 0);
	struct hc_domain *d = mkdom("vm1");
	struct mt m[MT_THREADS];
	mt_deadline = t_now_ms() + MT_MS;
	for (int t = 0; t < MT_THREADS; t++) {
		char name[16];
		snprintf(name, sizeof(name), "v%d", t);
		memset(&m[t], 0, sizeof(m[t]));
		m[t].v = mkvol(d, name);
		m[t].rng = 777ull * (uint64_t)(t + 1) + (uint64_t)_i;
		m[t].shadow = calloc(1, MT_SIZE);
	}
	for (int t = 0; t < MT_THREADS; t++)
		ck_assert_int_eq(pthread_create(&m[t].th, NULL, mt_main, &m[t]), 0);
	for (int t = 0; t < MT_THREADS; t++)
		pthread_join(m[t].th, NULL);
	for (int t = 0; t < MT_THREADS; t++)
		ck_assert_msg(m[t].err[0] == 0, "thread %d after %lu ops: %s", t, m[t].ops,
			      m[t].err);
	ck_assert_int_eq(hc_fs_flush_all(F.fs), 0);
	if (mt_dups) {
		struct hc_cstats s;
		hc_cstats_read(&d->stats, &s);
		ck_assert_msg(s.dedup_blocks > 0, "no block was shared");
	}
	for (int t = 0; t < MT_THREADS; t++) {
		ck_assert_uint_eq(hc_vol_size(m[t].v), m[t].size);
		vcheck(m[t].v, 0, m[t].shadow, m[t].size);
		char name[16];
		snprintf(name, sizeof(name), "v%d", t);
		size_t len;
		char *h = home_file("vm1", name, &len);
		ck_assert_uint_eq(len, m[t].size);
		/* Blocks with a map entry (zero, dedup) live elsewhere than at home. */
		for (size_t b = 0; b * BS < len; b++) {
			if (hc_rc_has_entry(m[t].v, b))
				continue;
			size_t n = len - b * BS < BS ? len - b * BS : BS;
			ssize_t bad = t_memdiff(h + b * BS, m[t].shadow + b * BS, n);
			ck_assert_msg(bad == -1, "home file %s differs at byte %zd", name,
				      (ssize_t)(b * BS) + bad);
		}
		free(h);
		free(m[t].shadow);
	}
	fs_close();
}
END_TEST

/*
 * Dedup inside one write-back run (reconcile.c store_run): block 0 holds A
 * at home and in the hash index; one run then writes B to block 0 and A to
 * block 1.  Block 1 must not share block 0's home block, which the same run
 * overwrites in place (I3); a second read (a miss: the first took the block
 * out of the cache) goes through the map.  Also after a reload.
 */
START_TEST(test_dedup_same_run)
{
	fs_open(engine_names[_i], 16 << 20, 0);
	struct hc_volume *v = mkvol(mkdom("d"), "v");
	char *a = t_alloc_aligned(2 * BS), *bb = t_alloc_aligned(2 * BS);
	uint64_t seed = 7;
	t_fill_random(a, BS, &seed);		/* A */
	t_fill_random(a + BS, BS, &seed);
	vwrite(v, 0, a, 2 * BS);
	ck_assert_int_eq(hc_vol_fsync(F.fs, v, 0), 0);
	t_fill_random(bb, BS, &seed);		/* B at 0, A at 1: one run */
	memcpy(bb + BS, a, BS);
	vwrite(v, 0, bb, 2 * BS);
	ck_assert_int_eq(hc_vol_fsync(F.fs, v, 0), 0);
	for (int round = 0; round < 2; round++) {
		vcheck(v, 0, bb, 2 * BS);	/* hits: out of the cache */
		vcheck(v, 0, bb, 2 * BS);	/* misses: from storage and the map */
		if (round == 0) {
			fs_close();
			fs_open(engine_names[_i], 16 << 20, 0);
			v = (struct hc_volume *)lookup(lookup(&F.fs->root, "d"), "v");
		}
	}
	free(a);
	free(bb);
	fs_close();
}
END_TEST

/*
 * Sharing at write time (reconcile.c "sharing at write time"): a whole
 * block written to swap volume y, not cached, whose contents x's home block holds, is
 * shared at once (an entry before any write-back, nothing stored for y),
 * reads back from the cache and through the entry, survives x's overwrite
 * (copy on write) and a restart; the same data in another domain is not
 * shared (I2), nor in a disk volume; a block already cached is left to its
 * write-back.
 */
START_TEST(test_dedup_at_write)
{
	fs_open(engine_names[_i], 16 << 20, 0);
	struct hc_domain *d = mkdom("d");
	struct hc_volume *x = mkvol(d, "x"), *y = mkvol(d, "y.swap");
	struct hc_volume *z = mkvol(mkdom("e"), "z.swap"), *w = mkvol(d, "w");
	char *a = t_alloc_aligned(BS), *b = t_alloc_aligned(BS), *buf = t_alloc_aligned(BS);
	uint64_t seed = 13;
	t_fill_random(a, BS, &seed);
	t_fill_random(b, BS, &seed);
	vwrite(x, 0, a, BS);
	ck_assert_int_eq(hc_vol_fsync(F.fs, x, 0), 0);
	vcheck(x, 0, a, BS);		/* out of the cache: x's home holds A */
	vwrite(y, 0, a, BS);
	ck_assert_msg(hc_rc_has_entry(y, 0), "y's block was not shared when written");
	vwrite(z, 0, a, BS);
	ck_assert_msg(!hc_rc_has_entry(z, 0), "shared across domains (I2)");
	vwrite(w, 0, a, BS);
	ck_assert_msg(!hc_rc_has_entry(w, 0), "a disk volume was shared at write time");
	vcheck(y, 0, a, BS);		/* a hit: cached clean */
	vwrite(x, 0, b, BS);		/* x's home block is shared: copy on write */
	ck_assert_int_eq(hc_vol_fsync(F.fs, x, 0), 0);
	ck_assert_int_eq(hc_vol_fsync(F.fs, y, 0), 0);
	vcheck(y, 0, a, BS);		/* a miss: through the entry */
	vcheck(x, 0, b, BS);
	struct stat st;
	ck_assert_int_eq(fstat(y->cv.fd, &st), 0);
	ck_assert_int_eq(st.st_blocks, 0);	/* nothing stored for y */
	/* y's block cached (dirty): written as usual, shared at its write-back */
	t_fill_random(buf, BS, &seed);
	vwrite(y, BS, buf, BS);		/* unique: cached dirty */
	vwrite(y, BS, a, BS);
	ck_assert_msg(!hc_rc_has_entry(y, 1), "a cached block was shared at write time");
	ck_assert_int_eq(hc_vol_fsync(F.fs, y, 0), 0);
	vcheck(y, BS, a, BS);
	fs_close();
	fs_open(engine_names[_i], 16 << 20, 0);
	y = (struct hc_volume *)lookup(lookup(&F.fs->root, "d"), "y.swap");
	x = (struct hc_volume *)lookup(lookup(&F.fs->root, "d"), "x");
	ck_assert_msg(hc_rc_has_entry(y, 0), "the entry did not survive a restart");
	vcheck(y, 0, a, BS);
	vcheck(y, BS, a, BS);
	vcheck(x, 0, b, BS);
	free(a);
	free(b);
	free(buf);
	fs_close();
}
END_TEST

/*
 * The verification window (reconcile.c): a write-back run whose blocks
 * all have their candidates one after the other in the same volume (the
 * same data written again elsewhere) compares them from reads of up to
 * WIN_MAX blocks.  Every block of a run longer than two windows is shared
 * with the right block: wrong offsets in the window would fail the
 * compare and store copies.  The run's first block has no candidate in
 * sequence (its data is new), and one block in the middle is new too, so
 * windows start anew after it.  Reads come back right through the
 * entries, and again after a restart.
 */
START_TEST(test_dedup_window)
{
	enum { N = 150, AT = 1000, NEW = 70 };
	fs_open(engine_names[_i], 16 << 20, 0);
	struct hc_volume *v = mkvol(mkdom("d"), "v");
	char *a = t_alloc_aligned(N * BS), *b = t_alloc_aligned((N + 1) * BS);
	uint64_t seed = 21;
	t_fill_random(a, N * BS, &seed);
	vwrite(v, 0, a, N * BS);
	ck_assert_int_eq(hc_vol_fsync(F.fs, v, 0), 0);
	t_fill_random(b, BS, &seed);		/* new */
	memcpy(b + BS, a, N * BS);
	t_fill_random(b + (1 + NEW) * BS, BS, &seed);	/* new */
	vwrite(v, (uint64_t)AT * BS, b, (N + 1) * BS);
	ck_assert_int_eq(hc_vol_fsync(F.fs, v, 0), 0);
	ck_assert_msg(!hc_rc_has_entry(v, AT), "new data was shared");
	ck_assert_msg(!hc_rc_has_entry(v, AT + 1 + NEW), "new data was shared");
	for (unsigned k = 0; k < N; k++)
		if (k != NEW)
			ck_assert_msg(hc_rc_has_entry(v, AT + 1 + k), "block %u was not shared", k);
	for (int round = 0; round < 2; round++) {
		vcheck(v, (uint64_t)AT * BS, b, (N + 1) * BS);	/* hits */
		vcheck(v, (uint64_t)AT * BS, b, (N + 1) * BS);	/* through the entries */
		vcheck(v, 0, a, N * BS);
		if (round == 0) {
			fs_close();
			fs_open(engine_names[_i], 16 << 20, 0);
			v = (struct hc_volume *)lookup(lookup(&F.fs->root, "d"), "v");
		}
	}
	free(a);
	free(b);
	fs_close();
}
END_TEST

/*
 * SEEK_HOLE on a volume whose last block is a map entry (a dedup reference
 * to its own block 0): the volume has no hole, so the answer is its size
 * (once was ENXIO: the home file had a hole there and the search stepped
 * past the end).  SEEK_DATA from the shared block finds it.
 */
START_TEST(test_seek_hole_entry)
{
	fs_open(engine_names[_i], 16 << 20, 0);
	struct hc_volume *v = mkvol(mkdom("d"), "v");
	char *a = t_alloc_aligned(BS);
	uint64_t seed = 11;
	t_fill_random(a, BS, &seed);
	vwrite(v, 0, a, BS);
	ck_assert_int_eq(hc_vol_fsync(F.fs, v, 0), 0);
	vwrite(v, BS, a, BS);
	ck_assert_int_eq(hc_vol_fsync(F.fs, v, 0), 0);
	ck_assert_msg(hc_rc_has_entry(v, 1), "block 1 was not shared with block 0");
	ck_assert_int_eq(hc_vol_seek(F.fs, v, 0, SEEK_HOLE), 2 * BS);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, BS, SEEK_HOLE), 2 * BS);
	ck_assert_int_eq(hc_vol_seek(F.fs, v, BS, SEEK_DATA), BS);
	vread(v, 0, a, BS);	/* out of the cache */
	vcheck(v, BS, a, BS);
	free(a);
	fs_close();
}
END_TEST

static Suite *volume_suite(void)
{
	Suite *s = suite_create("volume");
	TCase *tc;

	tc = tcase_create("io");
	t_tcase_fixtures(tc, 60);
	tcase_add_loop_test(tc, test_write_read, 0, 2);
	tcase_add_loop_test(tc, test_read_into_dst, 0, 2);
	tcase_add_loop_test(tc, test_fsync_home_file, 0, 2);
	tcase_add_test(tc, test_efbig);
	tcase_add_loop_test(tc, test_write_through, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("size");
	t_tcase_fixtures(tc, 60);
	tcase_add_loop_test(tc, test_size_truncate, 0, 2);
	tcase_add_loop_test(tc, test_punch_hole, 0, 2);
	tcase_add_loop_test(tc, test_zero_range, 0, 2);
	tcase_add_loop_test(tc, test_seek_data_hole, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("persist");
	t_tcase_fixtures(tc, 60);
	tcase_add_loop_test(tc, test_reopen, 0, 4);
	tcase_add_test(tc, test_create_refused);
	tcase_add_loop_test(tc, test_dedup_same_run, 0, 2);
	tcase_add_loop_test(tc, test_dedup_at_write, 0, 2);
	tcase_add_loop_test(tc, test_dedup_window, 0, 2);
	tcase_add_loop_test(tc, test_seek_hole_entry, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("namespace");
	t_tcase_fixtures(tc, 60);
	tcase_add_test(tc, test_namespace_errors);
	tcase_add_loop_test(tc, test_namespace_changes, 0, 2);
	tcase_add_test(tc, test_stats_text);
	tcase_add_test(tc, test_lazy_taken_swap);
	suite_add_tcase(s, tc);

	tc = tcase_create("threads");
	t_tcase_fixtures(tc, 60);
	tcase_add_loop_test(tc, test_threads, 0, 4);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run_suite(volume_suite());
}
