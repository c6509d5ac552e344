// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of the exclusive cache (excache.c) over a real temporary file
 * (O_DIRECT, as the daemon opens home files) and the "sync" engine, some also
 * with "uring": admission of writes (write-back: nothing reaches the file
 * before a flush), read hits that copy a block out and take it out of the
 * cache (a dirty one is written back first; on a volume that keeps taken
 * blocks, later: first when space is short, and not at all if discarded or
 * written again before then), LRU eviction with a 16-block
 * cache and every block reaching the file, partial-block writes merged with
 * the rest of the block read from storage, discard dropping dirty data with
 * no write, hc_cache_zero_range, write-through groups, write-back errors
 * reported by flush without losing data, writers of several blocks that
 * wait for slots served in FIFO order (write-backs held by a wb_submit hook
 * and released one block at a time), hints (what the hint hook said of a
 * block reaches its write-back, and any other change of its bytes clears
 * it), runs of a write kept in consecutive slots, and a four-thread
 * random stress
 * (with and without taken blocks kept) verified byte for byte against a
 * shadow copy.  Counters are checked against what each test did.
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

#include "excache.h"
#include "hecache/format.h"
#include "ioeng.h"
#include "t_helpers.h"

#define BS HC_BLOCK_SIZE

static const char *const engine_names[] = { "sync", "uring" };

/* One cache over one volume file. */
struct fix {
	struct hc_ioeng *e;
	struct hc_cache *c;
	struct hc_cstats ds;	/* the "domain" counters */
	struct hc_cvol v;
	int fd;			/* the volume's descriptor (O_DIRECT) */
	int rwfd;		/* a read-write one when v.fd is read-only */
	char *path;
};
static struct fix F;

static void cache_open_fd(const char *engine, unsigned blocks, int readonly)
{
	memset(&F, 0, sizeof(F));
	F.path = t_path(t_dir, "vol");
	F.rwfd = t_open_direct(F.path, O_RDWR | O_CREAT, 0600);
	F.fd = readonly ? t_open_direct(F.path, O_RDONLY, 0) : F.rwfd;
	int r = hc_ioeng_create(engine, 32, 0, &F.e);
	ck_assert_msg(r == 0, "engine %s: %s", engine, strerror(-r));
	ck_assert_int_eq(hc_cache_create((uint64_t)blocks * BS, F.e, &F.c), 0);
	ck_assert_uint_eq(hc_cache_blocks(F.c), blocks);
	F.v.fd = F.fd;
	F.v.dstats = &F.ds;
	ck_assert_int_eq(hc_cache_register(F.c, &F.v), 0);
}

static void cache_open(const char *engine, unsigned blocks)
{
	cache_open_fd(engine, blocks, 0);
}

static void cache_close(void)
{
	hc_cache_unregister(F.c, &F.v);
	hc_cache_destroy(F.c);
	hc_ioeng_destroy(F.e);
	if (F.fd != F.rwfd)
		close(F.fd);
	close(F.rwfd);
	free(F.path);
	memset(&F, 0, sizeof(F));
}

static int same_counters(const struct hc_cstats *s, const struct hc_cstats *t)
{
	return s->hits == t->hits && s->misses == t->misses && s->admissions == t->admissions &&
	       s->writebacks == t->writebacks && s->discards == t->discards &&
	       s->read_bytes == t->read_bytes && s->written_bytes == t->written_bytes &&
	       s->cached == t->cached && s->dirty == t->dirty;
}

/*
 * The volume's counters, checked against the totals (one volume here).  A
 * write-back completing on the engine's thread updates the volume's counter,
 * then the total's, and its writebacks before its written_bytes: read them
 * again until they agree (at most 2 s), so that a reader between two updates
 * is not taken for a miscount.
 */
static struct hc_cstats stats(void)
{
	struct hc_cstats s, t;
	for (int tries = 0; tries < 2000; tries++) {
		hc_cstats_read(&F.ds, &s);
		hc_cache_total(F.c, &t);
		if (same_counters(&s, &t) && s.written_bytes == s.writebacks * BS)
			break;
		usleep(1000);
	}
	ck_assert_uint_eq(s.hits, t.hits);
	ck_assert_uint_eq(s.misses, t.misses);
	ck_assert_uint_eq(s.admissions, t.admissions);
	ck_assert_uint_eq(s.writebacks, t.writebacks);
	ck_assert_uint_eq(s.discards, t.discards);
	ck_assert_uint_eq(s.read_bytes, t.read_bytes);
	ck_assert_uint_eq(s.written_bytes, t.written_bytes);
	ck_assert_int_eq(s.cached, t.cached);
	ck_assert_int_eq(s.dirty, t.dirty);
	ck_assert_int_ge(s.dirty, 0);
	ck_assert_int_le(s.dirty, s.cached);
	ck_assert_int_le(s.cached, (int64_t)hc_cache_blocks(F.c));
	ck_assert_uint_eq(s.written_bytes, s.writebacks * BS);
	return s;
}

static void cwrite(uint64_t off, const void *buf, size_t len)
{
	int r = hc_cache_write(F.c, &F.v, off, buf, len, NULL);
	ck_assert_msg(r == 0, "hc_cache_write(%llu, %zu) = %d", (unsigned long long)off, len, r);
}

/* Writes whole blocks [blk, blk+n) of pattern seed. */
static void cwrite_blocks(uint64_t blk, unsigned n, uint64_t seed)
{
	char *b = malloc((size_t)n * BS);
	t_pattern(b, (size_t)n * BS, seed, blk * BS);
	cwrite(blk * BS, b, (size_t)n * BS);
	free(b);
}

/* Reads one block through the cache; returns 1 on a hit. */
static int cread(uint64_t blk, void *buf)
{
	void *bufs[1] = { buf };
	uint8_t miss[1] = { 0xaa };
	unsigned h = hc_cache_read(F.c, &F.v, blk, 1, bufs, miss);
	ck_assert_uint_le(h, 1);
	ck_assert_uint_eq(miss[0], !h);
	return (int)h;
}

/* Reads [off, off+len) of the file as it is on storage (zeros past EOF). */
static void file_read(uint64_t off, void *buf, size_t len)
{
	size_t alen = ((off % BS) + len + BS - 1) / BS * BS;
	char *a = t_alloc_aligned(alen);
	size_t got = t_pread_all(F.rwfd, a, alen, (off_t)(off - off % BS));
	memset(a + got, 0, alen - got);
	memcpy(buf, a + off % BS, len);
	free(a);
}

/* Asserts that block blk on storage holds pattern seed (or zeros: seed 0). */
static void assert_file_block(uint64_t blk, uint64_t seed)
{
	char b[BS];
	file_read(blk * BS, b, BS);
	ssize_t bad = seed ? t_pattern_check(b, BS, seed, blk * BS) : t_memchk(b, 0, BS);
	ck_assert_msg(bad == -1, "block %llu on storage differs at byte %zd",
		      (unsigned long long)blk, bad);
}

/* Puts pattern seed into blocks [blk, blk+n) of the file, behind the cache. */
static void file_write_blocks(uint64_t blk, unsigned n, uint64_t seed)
{
	char *b = t_alloc_aligned((size_t)n * BS);
	t_pattern(b, (size_t)n * BS, seed, blk * BS);
	t_pwrite_all(F.rwfd, b, (size_t)n * BS, (off_t)(blk * BS));
	free(b);
}

/* ---- admission and hits ------------------------------------------------ */

START_TEST(test_write_admits)
{
	cache_open("sync", 16);
	struct hc_cstats s = stats();
	ck_assert_uint_eq(s.admissions, 0);
	ck_assert_int_eq(s.cached, 0);

	cwrite_blocks(0, 3, 1);
	s = stats();
	ck_assert_uint_eq(s.admissions, 3);
	ck_assert_int_eq(s.cached, 3);
	ck_assert_int_eq(s.dirty, 3);
	ck_assert_uint_eq(s.writebacks, 0);
	ck_assert_uint_eq(s.read_bytes, 0);
	ck_assert_uint_eq(s.hits + s.misses, 0);
	/* Write-back: nothing on storage yet. */
	ck_assert_int_eq(t_file_size(F.path), 0);

	/* Overwriting a cached block admits it again, in place. */
	cwrite_blocks(1, 1, 2);
	s = stats();
	ck_assert_uint_eq(s.admissions, 4);
	ck_assert_int_eq(s.cached, 3);
	ck_assert_int_eq(s.dirty, 3);

	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	s = stats();
	ck_assert_int_eq(s.dirty, 0);
	ck_assert_int_eq(s.cached, 3);
	ck_assert_uint_eq(s.writebacks, 3);
	assert_file_block(0, 1);
	assert_file_block(1, 2);
	assert_file_block(2, 1);

	/* Clean blocks are not written again; a re-dirtied one is. */
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	ck_assert_uint_eq(stats().writebacks, 3);
	cwrite_blocks(2, 1, 3);
	s = stats();
	ck_assert_int_eq(s.dirty, 1);
	ck_assert_uint_eq(s.admissions, 5);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	s = stats();
	ck_assert_uint_eq(s.writebacks, 4);
	ck_assert_int_eq(s.dirty, 0);
	assert_file_block(2, 3);
	assert_file_block(0, 1);
	cache_close();
}
END_TEST

START_TEST(test_read_hit_takes_block_out)
{
	cache_open("sync", 16);
	cwrite_blocks(4, 2, 3);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	uint64_t wb = stats().writebacks;

	char buf[BS];
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(cread(4, buf), 1);
	ck_assert_int_eq(t_pattern_check(buf, BS, 3, 4 * BS), -1);
	struct hc_cstats s = stats();
	ck_assert_uint_eq(s.hits, 1);
	ck_assert_uint_eq(s.misses, 0);
	ck_assert_int_eq(s.cached, 1);
	ck_assert_uint_eq(s.writebacks, wb);	/* clean: no write */

	/* Exclusive: the second read of the same block misses. */
	ck_assert_int_eq(cread(4, buf), 0);
	s = stats();
	ck_assert_uint_eq(s.hits, 1);
	ck_assert_uint_eq(s.misses, 1);

	/* A run of four blocks with one hit in it. */
	char *b4 = malloc(4 * BS);
	void *bufs[4] = { b4, b4 + BS, b4 + 2 * BS, b4 + 3 * BS };
	uint8_t miss[4];
	memset(miss, 0x55, sizeof(miss));
	ck_assert_uint_eq(hc_cache_read(F.c, &F.v, 3, 4, bufs, miss), 1);
	ck_assert_uint_eq(miss[0], 1);
	ck_assert_uint_eq(miss[1], 1);
	ck_assert_uint_eq(miss[2], 0);
	ck_assert_uint_eq(miss[3], 1);
	ck_assert_int_eq(t_pattern_check(bufs[2], BS, 3, 5 * BS), -1);
	s = stats();
	ck_assert_uint_eq(s.hits, 2);
	ck_assert_uint_eq(s.misses, 4);
	ck_assert_int_eq(s.cached, 0);
	ck_assert_int_eq(s.dirty, 0);
	free(b4);
	cache_close();
}
END_TEST

/*
 * A hit on a dirty block: the reader gets it, storage gets it too.  _i / 2:
 * on a volume that keeps taken blocks (swap), where the block is written
 * only when written back (here at the flush), and read again meanwhile
 * from its slot.
 */
START_TEST(test_read_hit_dirty_written_back)
{
	int lazy = _i / 2;
	cache_open(engine_names[_i % 2], 16);
	F.v.lazy_taken = lazy;
	cwrite_blocks(7, 1, 4);
	ck_assert_int_eq(t_file_size(F.path), 0);
	char buf[BS];
	ck_assert_int_eq(cread(7, buf), 1);
	ck_assert_int_eq(t_pattern_check(buf, BS, 4, 7 * BS), -1);
	if (lazy) {
		struct hc_cstats s = stats();
		ck_assert_uint_eq(s.writebacks, 0);	/* taken: no write yet */
		ck_assert_int_eq(s.dirty, 1);
		ck_assert_uint_eq(hc_cache_taken(F.c), 1);
		memset(buf, 0, sizeof(buf));
		ck_assert_int_eq(cread(7, buf), 1);
		ck_assert_int_eq(t_pattern_check(buf, BS, 4, 7 * BS), -1);
	}
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);	/* waits for write-backs */
	assert_file_block(7, 4);
	ck_assert_uint_eq(hc_cache_taken(F.c), 0);
	struct hc_cstats s = stats();
	ck_assert_uint_eq(s.writebacks, 1);
	ck_assert_int_eq(s.cached, 0);
	ck_assert_int_eq(s.dirty, 0);
	ck_assert_int_eq(cread(7, buf), 0);

	/* Dirty neighbours go with it and stay cached, clean. */
	cwrite_blocks(20, 10, 5);
	ck_assert_int_eq(cread(25, buf), 1);
	ck_assert_int_eq(t_pattern_check(buf, BS, 5, 25 * BS), -1);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	for (uint64_t b = 20; b < 30; b++)
		assert_file_block(b, 5);
	s = stats();
	ck_assert_uint_eq(s.writebacks, 11);
	ck_assert_int_eq(s.cached, 9);
	ck_assert_int_eq(s.dirty, 0);
	ck_assert_int_eq(cread(25, buf), 0);
	ck_assert_int_eq(cread(24, buf), 1);
	ck_assert_int_eq(t_pattern_check(buf, BS, 5, 24 * BS), -1);
	cache_close();
}
END_TEST

/* ---- taken blocks (lazy_taken) ------------------------------------------- */

/*
 * Taken blocks that need no write: discarded (the kernel punched the freed
 * swap cluster) or written again (swapped out anew) before space ran short.
 */
START_TEST(test_taken_discard_or_rewrite)
{
	cache_open("sync", 16);
	F.v.lazy_taken = 1;
	cwrite_blocks(0, 8, 1);
	char buf[BS];
	for (uint64_t b = 0; b < 8; b++)
		ck_assert_int_eq(cread(b, buf), 1);
	ck_assert_uint_eq(hc_cache_taken(F.c), 8);
	ck_assert_uint_eq(hc_cache_discard(F.c, &F.v, 0, 7), 8);
	ck_assert_uint_eq(hc_cache_taken(F.c), 0);
	struct hc_cstats s = stats();
	ck_assert_uint_eq(s.writebacks, 0);
	ck_assert_uint_eq(s.discards, 8);
	ck_assert_int_eq(s.cached, 0);
	ck_assert_int_eq(s.dirty, 0);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	ck_assert_int_eq(t_file_size(F.path), 0);	/* never written */

	/* Written again: an ordinary dirty block, kept once written. */
	cwrite_blocks(3, 1, 2);
	ck_assert_int_eq(cread(3, buf), 1);
	ck_assert_uint_eq(hc_cache_taken(F.c), 1);
	cwrite_blocks(3, 1, 3);
	ck_assert_uint_eq(hc_cache_taken(F.c), 0);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	assert_file_block(3, 3);
	s = stats();
	ck_assert_uint_eq(s.writebacks, 1);
	ck_assert_int_eq(s.cached, 1);
	ck_assert_int_eq(cread(3, buf), 1);
	ck_assert_int_eq(t_pattern_check(buf, BS, 3, 3 * BS), -1);
	cache_close();
}
END_TEST

/*
 * When space runs short a taken block is the first written back, before
 * older dirty blocks still in the cache, and leaves once written.  Blocks
 * are even-numbered so that no write-back takes a neighbour along.
 */
START_TEST(test_taken_written_first)
{
	const unsigned nslots = 64, ndirty = 56;	/* write-ahead below 8 free */
	cache_open("sync", nslots);
	F.v.lazy_taken = 1;
	for (uint64_t k = 0; k < ndirty; k++)
		cwrite_blocks(2 * k, 1, 6);
	ck_assert_uint_eq(stats().writebacks, 0);
	char buf[BS];
	ck_assert_int_eq(cread(80, buf), 1);
	ck_assert_uint_eq(stats().writebacks, 0);
	ck_assert_uint_eq(hc_cache_taken(F.c), 1);
	cwrite_blocks(201, 1, 7);	/* 7 free left: write-ahead starts */
	ck_assert_uint_eq(hc_cache_taken(F.c), 0);
	struct hc_cstats s = stats();
	ck_assert_uint_eq(s.writebacks, 1);
	assert_file_block(80, 6);
	assert_file_block(0, 0);	/* the oldest dirty block: not yet */
	ck_assert_int_eq(s.cached, ndirty);
	ck_assert_int_eq(s.dirty, ndirty);
	ck_assert_int_eq(cread(80, buf), 0);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	for (uint64_t k = 0; k < ndirty; k++)
		assert_file_block(2 * k, 6);
	assert_file_block(201, 7);
	cache_close();
}
END_TEST

/* ---- eviction ------------------------------------------------------------ */

START_TEST(test_lru_eviction)
{
	const unsigned nslots = 16, nblk = 64;
	cache_open(engine_names[_i], nslots);
	for (uint64_t b = 0; b < nblk; b++) {
		cwrite_blocks(b, 1, 1000 + b);
		struct hc_cstats s = stats();
		ck_assert_uint_eq(s.admissions, b + 1);
		ck_assert_int_le(s.cached, nslots);
	}
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	struct hc_cstats s = stats();
	ck_assert_uint_eq(s.admissions, nblk);
	/* Every block written back exactly once, none lost, none twice. */
	ck_assert_uint_eq(s.writebacks, nblk);
	ck_assert_int_eq(s.dirty, 0);
	/* Blocks leave only when a slot is needed: the cache is full. */
	ck_assert_int_eq(s.cached, nslots);
	ck_assert_uint_eq(s.read_bytes, 0);
	for (uint64_t b = 0; b < nblk; b++)
		assert_file_block(b, 1000 + b);

	/* What is left are the most recently written blocks. */
	char *all = malloc((size_t)nblk * BS);
	void *bufs[64];
	uint8_t miss[64];
	for (unsigned k = 0; k < nblk; k++)
		bufs[k] = all + (size_t)k * BS;
	unsigned hits = hc_cache_read(F.c, &F.v, 0, nblk, bufs, miss);
	ck_assert_uint_eq(hits, nslots);
	unsigned nhit = 0;
	for (unsigned k = 0; k < nblk; k++) {
		if (miss[k])
			continue;
		nhit++;
		ck_assert_int_eq(t_pattern_check(bufs[k], BS, 1000 + k, (uint64_t)k * BS), -1);
		/*
		 * With the synchronous engine write-backs finish in LRU order, so
		 * the survivors are exactly the last 16; asynchronous completions
		 * may reorder blocks written back together.
		 */
		if (!strcmp(engine_names[_i], "sync"))
			ck_assert_msg(k >= nblk - nslots, "block %u survived, LRU says no", k);
	}
	ck_assert_uint_eq(nhit, nslots);
	s = stats();
	ck_assert_uint_eq(s.hits, nslots);
	ck_assert_uint_eq(s.misses, nblk - nslots);
	ck_assert_int_eq(s.cached, 0);
	free(all);
	cache_close();
}
END_TEST

/*
 * The write-ahead mark follows what early write-back costs: a stream of
 * new blocks (every block cleaned early leaves as the LRU victim) raises it
 * from 1/16 to 1/4 of the slots; the same stream with the oldest cached
 * block discarded after each write (every block cleaned early was written
 * for nothing) brings it back down; the stream alone raises it again; read
 * back from a swap volume (lazy_taken: a dirty block read out would have
 * waited) they bring it down again, while reads of another volume's blocks
 * (written at the hit anyway) do not.  The data stays right throughout.  The synchronous engine makes it exact: an
 * asynchronous one lets a writer that outruns storage find no clean block,
 * and the write-back it then starts is needed at once, not early (no fate).
 */
START_TEST(test_writeahead_adapts)
{
	const unsigned nslots = 1024, run = 16;
	cache_open("sync", nslots);
	ck_assert_uint_eq(hc_cache_writeahead(F.c), nslots / 16);
	uint64_t b = 0;
	for (; b < 8 * nslots; b += run)
		cwrite_blocks(b, run, 7);
	ck_assert_uint_eq(hc_cache_writeahead(F.c), nslots / 4);
	struct hc_cstats s0 = stats();
	for (uint64_t e = b + 4 * nslots; b < e; b++) {
		cwrite_blocks(b, 1, 8);
		hc_cache_discard(F.c, &F.v, b - (nslots - 8), b - (nslots - 8));
	}
	ck_assert_uint_eq(hc_cache_writeahead(F.c), nslots / 16);
	/* What was discarded had been written back early, clean: the waste counted. */
	ck_assert_uint_ge(stats().discards - s0.discards, 4 * nslots - 16);
	for (uint64_t e = b + 8 * nslots; b < e; b += run)
		cwrite_blocks(b, run, 20);
	ck_assert_uint_eq(hc_cache_writeahead(F.c), nslots / 4);
	char buf[BS];
	for (int lazy = 0; lazy < 2; lazy++) {
		F.v.lazy_taken = lazy;
		for (uint64_t e = b + 4 * nslots; b < e; b++) {
			cwrite_blocks(b, 1, 30);
			uint64_t old = b - (nslots - 8);
			ck_assert_int_eq(cread(old, buf), 1);
			ck_assert_int_eq(t_pattern_check(buf, BS, old < 20 * nslots ? 20 : 30, old * BS),
					 -1);
		}
		ck_assert_uint_eq(hc_cache_writeahead(F.c), lazy ? nslots / 16 : nslots / 4);
	}
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	for (uint64_t k = 0; k < 20 * nslots; k += 61)
		if (k < 7 * nslots || k >= 12 * nslots)
			assert_file_block(k, k < 7 * nslots ? 7 : 20);
	cache_close();
}
END_TEST

/*
 * Resize: shrinking a cache full of dirty blocks writes them back (none
 * lost) and leaves at most the new size cached; the cache then works at that
 * size; growing back gives the slots again; sizes outside 16..pool refused.
 */
START_TEST(test_resize)
{
	const unsigned nslots = 64;
	cache_open(engine_names[_i % 2], nslots);
	F.v.lazy_taken = _i / 2;
	ck_assert_int_eq(hc_cache_resize(F.c, 15), -EINVAL);
	ck_assert_int_eq(hc_cache_resize(F.c, nslots + 1), -EINVAL);
	cwrite_blocks(0, nslots, 7);
	ck_assert_int_gt(stats().dirty, 0);	/* write-ahead may have cleaned some */
	/* _i 2, 3: half of them read back, taken (kept dirty): written too. */
	char tb[BS];
	for (uint64_t k = 0; F.v.lazy_taken && k < nslots; k += 2)
		if (cread(k, tb))
			ck_assert_int_eq(t_pattern_check(tb, BS, 7, k * BS), -1);
	ck_assert_int_eq(hc_cache_resize(F.c, 16), 0);
	ck_assert_uint_eq(hc_cache_blocks(F.c), 16);
	ck_assert_uint_eq(hc_cache_max_blocks(F.c), nslots);
	struct hc_cstats s = stats();
	ck_assert_int_le(s.cached, 16);
	ck_assert_uint_ge(s.writebacks, nslots - 16);
	/* Written at the small size: never more than 16 cached. */
	for (uint64_t b = nslots; b < 3 * nslots; b++) {
		cwrite_blocks(b, 1, 7);
		ck_assert_int_le(stats().cached, 16);
	}
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	for (uint64_t b = 0; b < 3 * nslots; b++)
		assert_file_block(b, 7);
	ck_assert_int_eq(hc_cache_resize(F.c, nslots), 0);
	ck_assert_uint_eq(hc_cache_blocks(F.c), nslots);
	cwrite_blocks(0, nslots, 8);
	s = stats();
	ck_assert_int_eq(s.cached, nslots);	/* every slot usable again */
	char b[BS];
	for (uint64_t k = 0; k < nslots; k++) {
		ck_assert_int_eq(cread(k, b), 1);
		ck_assert_int_eq(t_pattern_check(b, BS, 8, k * BS), -1);
	}
	cache_close();
}
END_TEST

/* A cache re-used many times over: the counters still add up. */
START_TEST(test_eviction_counters_add_up)
{
	cache_open(engine_names[_i], 16);
	uint64_t st = 99, written = 0;
	static unsigned char latest[256];	/* seed generation per block */
	for (int round = 0; round < 400; round++) {
		uint64_t b = t_rand_below(&st, 256);
		unsigned n = 1 + (unsigned)t_rand_below(&st, 3);
		if (b + n > 256)
			n = (unsigned)(256 - b);
		for (unsigned k = 0; k < n; k++)
			latest[b + k] = (unsigned char)(round % 250 + 1);
		char *buf = malloc((size_t)n * BS);
		for (unsigned k = 0; k < n; k++)
			t_pattern(buf + (size_t)k * BS, BS, latest[b + k] * 1000ull + b + k,
				  (b + k) * BS);
		cwrite(b * BS, buf, (size_t)n * BS);
		free(buf);
		written += n;
	}
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	struct hc_cstats s = stats();
	ck_assert_uint_eq(s.admissions, written);
	ck_assert_int_eq(s.dirty, 0);
	ck_assert_uint_ge(s.writebacks, 1);
	ck_assert_uint_le(s.writebacks, written);
	for (uint64_t b = 0; b < 256; b++)
		if (latest[b])
			assert_file_block(b, latest[b] * 1000ull + b);
		else
			assert_file_block(b, 0);
	cache_close();
}
END_TEST

/* ---- partial blocks ------------------------------------------------------ */

START_TEST(test_partial_write_merges)
{
	cache_open("sync", 16);
	const size_t fsize = 8 * BS;
	size_t shadow_len = 21 * BS;
	char *shadow = calloc(1, shadow_len);
	t_pattern(shadow, fsize, 5, 0);
	file_write_blocks(0, 8, 5);

	/* 100 bytes inside block 3: the rest of it comes from storage. */
	char w[8192];
	t_pattern(w, 100, 6, 3 * BS + 1000);
	cwrite(3 * BS + 1000, w, 100);
	memcpy(shadow + 3 * BS + 1000, w, 100);
	struct hc_cstats s = stats();
	ck_assert_uint_eq(s.admissions, 1);
	ck_assert_uint_eq(s.read_bytes, BS);
	char buf[BS];
	ck_assert_int_eq(cread(3, buf), 1);
	ck_assert_int_eq(t_memdiff(buf, shadow + 3 * BS, BS), -1);

	/* Across a block boundary: two partial blocks, two storage reads. */
	t_pattern(w, 200, 7, 5 * BS + 4000);
	cwrite(5 * BS + 4000, w, 200);
	memcpy(shadow + 5 * BS + 4000, w, 200);
	s = stats();
	ck_assert_uint_eq(s.admissions, 3);
	ck_assert_uint_eq(s.read_bytes, 3 * BS);

	/* Partial write into a cached block: no storage read. */
	cwrite_blocks(1, 1, 8);
	t_pattern(shadow + BS, BS, 8, BS);
	t_pattern(w, 10, 9, BS + 5);
	cwrite(BS + 5, w, 10);
	memcpy(shadow + BS + 5, w, 10);
	s = stats();
	ck_assert_uint_eq(s.read_bytes, 3 * BS);
	ck_assert_uint_eq(s.admissions, 5);

	/* Unaligned, several blocks: partial head and tail, whole middle. */
	t_pattern(w, 8000, 10, 6 * BS + 3000);
	cwrite(6 * BS + 3000, w, 8000);
	memcpy(shadow + 6 * BS + 3000, w, 8000);
	s = stats();
	ck_assert_uint_eq(s.admissions, 8);	/* blocks 6, 7, 8 */
	/* 6 is cached, 7 whole, 8 partial but past the end of the file */
	ck_assert_uint_eq(s.read_bytes, 3 * BS);

	/* Past the end of the file: the rest of the block is zeros. */
	t_pattern(w, 10, 11, 20 * BS + 100);
	cwrite(20 * BS + 100, w, 10);
	memcpy(shadow + 20 * BS + 100, w, 10);
	s = stats();
	ck_assert_uint_eq(s.read_bytes, 3 * BS);
	ck_assert_int_eq(cread(20, buf), 1);
	ck_assert_int_eq(t_memdiff(buf, shadow + 20 * BS, BS), -1);

	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	char *file = malloc(shadow_len);
	file_read(0, file, shadow_len);
	ssize_t bad = t_memdiff(file, shadow, shadow_len);
	ck_assert_msg(bad == -1, "file differs from the shadow at byte %zd (block %zd)", bad,
		      bad / (ssize_t)BS);
	/* Everything still cached reads back right too. */
	for (uint64_t b = 0; b < 21; b++) {
		if (cread(b, buf))
			ck_assert_int_eq(t_memdiff(buf, shadow + b * BS, BS), -1);
	}
	free(file);
	free(shadow);
	cache_close();
}
END_TEST

/* ---- discard and zeroing ----------------------------------------------- */

START_TEST(test_discard_drops_without_write)
{
	cache_open("sync", 16);
	file_write_blocks(0, 4, 8);	/* the old contents */
	cwrite_blocks(2, 1, 9);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);	/* block 2: clean, stored */
	cwrite_blocks(1, 1, 9);				/* block 1: dirty */
	struct hc_cstats s = stats();
	ck_assert_uint_eq(s.writebacks, 1);
	ck_assert_int_eq(s.cached, 2);
	ck_assert_int_eq(s.dirty, 1);

	ck_assert_uint_eq(hc_cache_discard(F.c, &F.v, 1, 2), 2);
	s = stats();
	ck_assert_uint_eq(s.discards, 2);
	ck_assert_int_eq(s.cached, 0);
	ck_assert_int_eq(s.dirty, 0);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	s = stats();
	ck_assert_uint_eq(s.writebacks, 1);	/* the dirty block was not written */
	assert_file_block(0, 8);
	assert_file_block(1, 8);		/* still the old data */
	assert_file_block(2, 9);
	assert_file_block(3, 8);
	char buf[BS];
	ck_assert_int_eq(cread(1, buf), 0);
	ck_assert_int_eq(cread(2, buf), 0);

	/* Nothing cached in the range: nothing dropped, nothing counted. */
	ck_assert_uint_eq(hc_cache_discard(F.c, &F.v, 0, 3), 0);
	ck_assert_uint_eq(stats().discards, 2);

	/* A range larger than the cache (the scan path), partly cached. */
	cwrite_blocks(10, 4, 10);
	cwrite_blocks(1000, 1, 10);
	ck_assert_uint_eq(hc_cache_discard(F.c, &F.v, 11, UINT64_MAX), 4);
	s = stats();
	ck_assert_uint_eq(s.discards, 6);
	ck_assert_int_eq(s.cached, 1);
	ck_assert_int_eq(s.dirty, 1);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	ck_assert_uint_eq(stats().writebacks, 2);
	assert_file_block(10, 10);
	for (uint64_t b = 11; b < 14; b++)
		assert_file_block(b, 0);
	ck_assert_int_eq(t_file_size(F.path), 11 * BS);
	cache_close();
}
END_TEST

START_TEST(test_zero_range)
{
	cache_open("sync", 16);
	cwrite_blocks(2, 2, 10);
	hc_cache_zero_range(F.c, &F.v, 2, 100, 300);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	char want[BS], buf[BS];
	t_pattern(want, BS, 10, 2 * BS);
	memset(want + 100, 0, 200);
	char file[BS];
	file_read(2 * BS, file, BS);
	ck_assert_int_eq(t_memdiff(file, want, BS), -1);
	ck_assert_int_eq(cread(2, buf), 1);
	ck_assert_int_eq(t_memdiff(buf, want, BS), -1);

	/* Empty and inverted ranges change nothing; `to` is clipped to the block. */
	hc_cache_zero_range(F.c, &F.v, 3, 300, 100);
	hc_cache_zero_range(F.c, &F.v, 3, 200, 200);
	hc_cache_zero_range(F.c, &F.v, 3, 4000, 100000);
	t_pattern(want, BS, 10, 3 * BS);
	memset(want + 4000, 0, BS - 4000);
	ck_assert_int_eq(cread(3, buf), 1);
	ck_assert_int_eq(t_memdiff(buf, want, BS), -1);

	/* A block not cached: nothing happens, here or on storage. */
	file_write_blocks(6, 1, 11);
	struct hc_cstats before = stats();
	hc_cache_zero_range(F.c, &F.v, 6, 0, BS);
	struct hc_cstats after = stats();
	ck_assert_int_eq(after.cached, before.cached);
	ck_assert_uint_eq(after.admissions, before.admissions);
	ck_assert_int_eq(cread(6, buf), 0);
	assert_file_block(6, 11);

	/* The whole block of a clean cached one. */
	cwrite_blocks(8, 1, 12);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	hc_cache_zero_range(F.c, &F.v, 8, 0, BS);
	ck_assert_int_eq(cread(8, buf), 1);
	ck_assert_int_eq(t_memchk(buf, 0, BS), -1);
	cache_close();
}
END_TEST

/* ---- write-through and errors ------------------------------------------- */

struct grp_wait {
	struct hc_cache_group g;
	sem_t sem;
	int calls;	/* atomic */
};

static void grp_done(struct hc_cache_group *g)
{
	struct grp_wait *w = (struct grp_wait *)g;
	__atomic_fetch_add(&w->calls, 1, __ATOMIC_ACQ_REL);
	sem_post(&w->sem);
}

/* Writes n blocks through a group and waits for it; returns its error. */
static int write_through(uint64_t blk, unsigned n, uint64_t seed, int *werr)
{
	struct grp_wait w;
	memset(&w, 0, sizeof(w));
	w.g.pending = 1;
	w.g.done = grp_done;
	sem_init(&w.sem, 0, 0);
	char *b = malloc((size_t)n * BS);
	t_pattern(b, (size_t)n * BS, seed, blk * BS);
	*werr = hc_cache_write(F.c, &F.v, blk * BS, b, (size_t)n * BS, &w.g);
	hc_cache_group_put(&w.g);
	while (sem_wait(&w.sem) < 0 && errno == EINTR)
		;
	ck_assert_int_eq(__atomic_load_n(&w.calls, __ATOMIC_ACQUIRE), 1);
	ck_assert_int_eq(__atomic_load_n(&w.g.pending, __ATOMIC_ACQUIRE), 0);
	sem_destroy(&w.sem);
	free(b);
	return __atomic_load_n(&w.g.err, __ATOMIC_ACQUIRE);
}

START_TEST(test_write_through_group)
{
	cache_open(engine_names[_i], 16);
	int werr;
	ck_assert_int_eq(write_through(3, 5, 13, &werr), 0);
	ck_assert_int_eq(werr, 0);
	/* On storage when the group completes, no flush needed. */
	for (uint64_t b = 3; b < 8; b++)
		assert_file_block(b, 13);
	struct hc_cstats s = stats();
	ck_assert_uint_eq(s.admissions, 5);
	ck_assert_uint_eq(s.writebacks, 5);
	ck_assert_int_eq(s.dirty, 0);
	ck_assert_int_eq(s.cached, 5);
	char buf[BS];
	ck_assert_int_eq(cread(5, buf), 1);
	ck_assert_int_eq(t_pattern_check(buf, BS, 13, 5 * BS), -1);
	cache_close();
}
END_TEST

START_TEST(test_write_through_error)
{
	cache_open_fd(engine_names[_i], 16, 1);
	int werr;
	int gerr = write_through(0, 2, 14, &werr);
	ck_assert_int_eq(gerr, -EBADF);
	/* Kept, dirty, readable. */
	struct hc_cstats s = stats();
	ck_assert_int_eq(s.cached, 2);
	ck_assert_int_eq(s.dirty, 2);
	char buf[BS];
	ck_assert_int_eq(cread(1, buf), 1);
	ck_assert_int_eq(t_pattern_check(buf, BS, 14, BS), -1);
	cache_close();
}
END_TEST

/*
 * The volume's descriptor is read-only: every write-back fails with EBADF.
 * Flush reports it, the data stays in the cache, readable; once storage
 * works again a flush writes it all.
 */
START_TEST(test_flush_error_keeps_data)
{
	cache_open_fd(engine_names[_i], 16, 1);
	cwrite_blocks(0, 3, 15);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), -EBADF);
	struct hc_cstats s = stats();
	ck_assert_int_eq(s.cached, 3);
	ck_assert_int_eq(s.dirty, 3);
	ck_assert_uint_eq(s.writebacks, 0);
	/* Still failing: reported again, not forgotten. */
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), -EBADF);

	/* A read hit gets the data; the failed write-back keeps it cached. */
	char buf[BS];
	for (int i = 0; i < 2; i++) {
		memset(buf, 0, sizeof(buf));
		ck_assert_int_eq(cread(1, buf), 1);
		ck_assert_int_eq(t_pattern_check(buf, BS, 15, BS), -1);
	}
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), -EBADF);
	s = stats();
	ck_assert_int_eq(s.cached, 3);
	ck_assert_int_eq(s.dirty, 3);
	ck_assert_int_eq(t_file_size(F.path), 0);

	/* Storage is back: the next flush that finds no new error writes all. */
	F.v.fd = F.rwfd;
	int r = hc_cache_flush(F.c, &F.v);
	if (r)
		r = hc_cache_flush(F.c, &F.v);
	ck_assert_int_eq(r, 0);
	for (uint64_t b = 0; b < 3; b++)
		assert_file_block(b, 15);
	s = stats();
	ck_assert_int_eq(s.dirty, 0);
	ck_assert_uint_eq(s.writebacks, 3);
	cache_close();
}
END_TEST

/* A cache full of blocks that cannot be written: new writes fail, none lost. */
START_TEST(test_full_of_failed_blocks)
{
	const unsigned nslots = 16;
	cache_open_fd("sync", nslots, 1);
	for (uint64_t b = 0; b < nslots; b++)
		cwrite_blocks(b, 1, 16);
	char blk[BS];
	t_pattern(blk, BS, 16, nslots * BS);
	int r = hc_cache_write(F.c, &F.v, nslots * BS, blk, BS, NULL);
	ck_assert_msg(r < 0, "a write into a cache full of unwritable blocks returned %d", r);
	struct hc_cstats s = stats();
	ck_assert_int_eq(s.cached, nslots);
	ck_assert_int_eq(s.dirty, nslots);
	ck_assert_uint_eq(s.admissions, nslots);
	char *all = malloc(nslots * BS);
	void *bufs[16];
	uint8_t miss[16];
	for (unsigned k = 0; k < nslots; k++)
		bufs[k] = all + (size_t)k * BS;
	ck_assert_uint_eq(hc_cache_read(F.c, &F.v, 0, nslots, bufs, miss), nslots);
	ck_assert_int_eq(t_pattern_check(all, nslots * BS, 16, 0), -1);

	F.v.fd = F.rwfd;
	r = hc_cache_flush(F.c, &F.v);
	if (r)
		r = hc_cache_flush(F.c, &F.v);
	ck_assert_int_eq(r, 0);
	for (uint64_t b = 0; b < nslots; b++)
		assert_file_block(b, 16);
	/* And writing works again. */
	cwrite(nslots * BS, blk, BS);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	assert_file_block(nslots, 16);
	free(all);
	cache_close();
}
END_TEST

/* ---- stress ------------------------------------------------------------- */

#define ST_THREADS 4
#define ST_REGION 64		/* blocks per thread */
#define ST_SLOTS 64		/* cache blocks: a quarter of the data */
#define ST_MS 1500
#define ST_MAX_OPS 20000

struct st_thread {
	pthread_t th;
	int t;
	uint64_t rng;
	unsigned char *shadow;	/* ST_REGION blocks, the data the region must hold */
	uint64_t blocks_read, hits, admitted, discarded, ops;
	char err[256];
};

static uint64_t st_deadline;

#define ST_FAIL(st, ...)                                                      \
	do {                                                                  \
		snprintf((st)->err, sizeof((st)->err), __VA_ARGS__);          \
		return NULL;                                                  \
	} while (0)

static void *st_main(void *arg)
{
	struct st_thread *st = arg;
	const uint64_t base = (uint64_t)st->t * ST_REGION;	/* first block */
	char *buf = t_alloc_aligned(4 * BS);
	char *rd = t_alloc_aligned(4 * BS);
	while (st->ops < ST_MAX_OPS && t_now_ms() < st_deadline) {
		st->ops++;
		unsigned op = (unsigned)t_rand_below(&st->rng, 100);
		uint64_t rb = t_rand_below(&st->rng, ST_REGION);	/* block in region */
		if (op < 35) {
			/* write: whole blocks or any byte range, up to 3 blocks */
			uint64_t off, len;
			if (t_rand_below(&st->rng, 2)) {
				unsigned n = 1 + (unsigned)t_rand_below(&st->rng, 3);
				if (rb + n > ST_REGION)
					n = (unsigned)(ST_REGION - rb);
				off = rb * BS;
				len = (uint64_t)n * BS;
			} else {
				off = rb * BS + t_rand_below(&st->rng, BS);
				len = 1 + t_rand_below(&st->rng, 3 * BS);
				if (off + len > ST_REGION * BS)
					len = ST_REGION * BS - off;
			}
			t_fill_random(buf, len, &st->rng);
			int r = hc_cache_write(F.c, &F.v, base * BS + off, buf, len, NULL);
			if (r)
				ST_FAIL(st, "write %llu+%llu: %d", (unsigned long long)off,
					(unsigned long long)len, r);
			memcpy(st->shadow + off, buf, len);
			st->admitted += (off + len - 1) / BS - off / BS + 1;
		} else if (op < 70) {
			/* read 1..4 blocks: hits from the cache, misses from storage */
			unsigned n = 1 + (unsigned)t_rand_below(&st->rng, 4);
			if (rb + n > ST_REGION)
				n = (unsigned)(ST_REGION - rb);
			void *bufs[4];
			uint8_t miss[4];
			for (unsigned k = 0; k < n; k++)
				bufs[k] = rd + (size_t)k * BS;
			unsigned h = hc_cache_read(F.c, &F.v, base + rb, n, bufs, miss);
			unsigned counted = 0;
			for (unsigned k = 0; k < n; k++) {
				if (miss[k]) {
					ssize_t got = pread(F.rwfd, bufs[k], BS,
							    (off_t)((base + rb + k) * BS));
					if (got < 0)
						ST_FAIL(st, "pread: %s", strerror(errno));
					memset((char *)bufs[k] + got, 0, BS - (size_t)got);
				} else {
					counted++;
				}
				ssize_t bad = t_memdiff(bufs[k], st->shadow + (rb + k) * BS, BS);
				if (bad >= 0)
					ST_FAIL(st, "block %llu (%s) differs at byte %zd",
						(unsigned long long)(base + rb + k),
						miss[k] ? "miss, from storage" : "hit", bad);
			}
			if (counted != h)
				ST_FAIL(st, "read returned %u hits, flags say %u", h, counted);
			st->blocks_read += n;
			st->hits += h;
		} else if (op < 80) {
			int r = hc_cache_flush(F.c, &F.v);
			if (r)
				ST_FAIL(st, "flush: %d", r);
		} else if (op < 90) {
			/* discard, then punch the file as the volume layer does */
			unsigned n = 1 + (unsigned)t_rand_below(&st->rng, 3);
			if (rb + n > ST_REGION)
				n = (unsigned)(ST_REGION - rb);
			st->discarded += hc_cache_discard(F.c, &F.v, base + rb, base + rb + n - 1);
			if (fallocate(F.rwfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)((base + rb) * BS), (off_t)n * BS) < 0)
				ST_FAIL(st, "punch: %s", strerror(errno));
			memset(st->shadow + rb * BS, 0, (size_t)n * BS);
		} else {
			/* zero part of a block in the cache and on storage */
			unsigned from = (unsigned)t_rand_below(&st->rng, BS);
			unsigned to = from + 1 + (unsigned)t_rand_below(&st->rng, BS - from);
			hc_cache_zero_range(F.c, &F.v, base + rb, from, to);
			if (fallocate(F.rwfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				      (off_t)((base + rb) * BS + from), (off_t)(to - from)) < 0)
				ST_FAIL(st, "punch: %s", strerror(errno));
			memset(st->shadow + rb * BS + from, 0, to - from);
		}
	}
	free(buf);
	free(rd);
	return NULL;
}

START_TEST(test_stress)
{
	cache_open(engine_names[_i % 2], ST_SLOTS);
	F.v.lazy_taken = _i / 2;	/* 2, 3: taken blocks kept (swap volume) */
	struct st_thread th[ST_THREADS];
	st_deadline = t_now_ms() + ST_MS;
	for (int t = 0; t < ST_THREADS; t++) {
		memset(&th[t], 0, sizeof(th[t]));
		th[t].t = t;
		th[t].rng = 1234567ull * (uint64_t)(t + 1) + (uint64_t)_i;
		th[t].shadow = calloc(ST_REGION, BS);
		ck_assert_int_eq(pthread_create(&th[t].th, NULL, st_main, &th[t]), 0);
	}
	uint64_t blocks_read = 0, hits = 0, admitted = 0, discarded = 0;
	for (int t = 0; t < ST_THREADS; t++) {
		pthread_join(th[t].th, NULL);
		ck_assert_msg(th[t].err[0] == 0, "thread %d after %llu ops: %s", t,
			      (unsigned long long)th[t].ops, th[t].err);
		ck_assert_uint_gt(th[t].ops, 0);
		blocks_read += th[t].blocks_read;
		hits += th[t].hits;
		admitted += th[t].admitted;
		discarded += th[t].discarded;
	}
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	ck_assert_uint_eq(hc_cache_taken(F.c), 0);	/* all written, none left */
	struct hc_cstats s = stats();
	ck_assert_uint_eq(s.hits, hits);
	ck_assert_uint_eq(s.hits + s.misses, blocks_read);
	ck_assert_uint_eq(s.admissions, admitted);
	ck_assert_uint_eq(s.discards, discarded);
	ck_assert_int_eq(s.dirty, 0);

	/* Storage holds every region's data... */
	const size_t total = (size_t)ST_THREADS * ST_REGION * BS;
	char *file = malloc(total);
	file_read(0, file, total);
	for (int t = 0; t < ST_THREADS; t++) {
		ssize_t bad = t_memdiff(file + (size_t)t * ST_REGION * BS, th[t].shadow,
					(size_t)ST_REGION * BS);
		ck_assert_msg(bad == -1, "region %d differs on storage at byte %zd (block %zd)", t,
			      bad, bad / (ssize_t)BS);
	}
	/* ... and so does every block still cached. */
	char buf[BS];
	for (uint64_t b = 0; b < (uint64_t)ST_THREADS * ST_REGION; b++) {
		if (!cread(b, buf))
			continue;
		ck_assert_msg(t_memdiff(buf, th[b / ST_REGION].shadow + (b % ST_REGION) * BS, BS) ==
				      -1, "cached block %llu differs", (unsigned long long)b);
	}
	ck_assert_int_eq(stats().cached, 0);
	for (int t = 0; t < ST_THREADS; t++)
		free(th[t].shadow);
	free(file);
	cache_close();
}
END_TEST

/* ---- writers of several blocks get slots in FIFO order ----------------- */

/* wb_submit hook: write-backs are held until the test releases them. */
static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static struct hc_io *held[64];
static unsigned nheld;

static int held_submit(struct hc_cvol *v, struct hc_io *io, const struct hc_hint *hint)
{
	pthread_mutex_lock(&held_lock);
	ck_assert_uint_lt(nheld, 64);
	held[nheld++] = io;
	pthread_mutex_unlock(&held_lock);
	return 0;
}

static unsigned held_count(void)
{
	pthread_mutex_lock(&held_lock);
	unsigned n = nheld;
	pthread_mutex_unlock(&held_lock);
	return n;
}

/* Writes the oldest held write-back to the file and completes it. */
static void release_one(void)
{
	for (int i = 0; i < 5000 && !held_count(); i++)
		usleep(1000);
	pthread_mutex_lock(&held_lock);
	ck_assert_uint_gt(nheld, 0);
	struct hc_io *io = held[0];
	memmove(held, held + 1, --nheld * sizeof(held[0]));
	pthread_mutex_unlock(&held_lock);
	ssize_t r = pwritev(F.rwfd, io->iov, io->iovcnt, (off_t)io->off);
	io->res = r;
	io->done(io);
}

struct fifo_writer {
	pthread_t th;
	uint64_t blk;
	unsigned n;
	int done;
};

static void *fifo_main(void *arg)
{
	struct fifo_writer *w = arg;
	cwrite_blocks(w->blk, w->n, 5);
	__atomic_store_n(&w->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void wait_tickets(uint64_t n)
{
	for (int i = 0; i < 5000 && hc_cache_ticketed_writers(F.c) != n; i++)
		usleep(1000);
	ck_assert_uint_eq(hc_cache_ticketed_writers(F.c), n);
}

START_TEST(test_fifo_slots)
{
	cache_open("sync", 16);
	F.v.wb_submit = held_submit;
	nheld = 0;
	/* 16 dirty blocks, none adjacent: every write-back is one block. */
	for (uint64_t b = 0; b < 16; b++)
		cwrite_blocks(2 * b, 1, 3);
	/* A and then B want 4 slots each; none is free until we release. */
	struct fifo_writer a = { .blk = 100, .n = 4 }, b = { .blk = 200, .n = 4 };
	ck_assert_int_eq(pthread_create(&a.th, NULL, fifo_main, &a), 0);
	wait_tickets(1);
	ck_assert_int_eq(pthread_create(&b.th, NULL, fifo_main, &b), 0);
	wait_tickets(2);
	/* Four slots: all A's (without order B would take some of them). */
	for (int k = 0; k < 4; k++)
		release_one();
	for (int i = 0; i < 5000 && !__atomic_load_n(&a.done, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	ck_assert_msg(a.done, "the first writer did not get the first four slots");
	ck_assert_msg(!b.done, "the second writer finished with the first one's slots");
	wait_tickets(1);
	/* Four more: B's.  Then let everything through. */
	while (!__atomic_load_n(&b.done, __ATOMIC_ACQUIRE))
		release_one();
	pthread_join(a.th, NULL);
	pthread_join(b.th, NULL);
	wait_tickets(0);
	F.v.wb_submit = NULL;
	while (held_count())
		release_one();
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	for (uint64_t k = 0; k < 4; k++) {
		assert_file_block(100 + k, 5);
		assert_file_block(200 + k, 5);
	}
	for (uint64_t k = 0; k < 16; k++)
		assert_file_block(2 * k, 3);
	cache_close();
}
END_TEST

START_TEST(test_create_limits)
{
	struct hc_ioeng *e;
	struct hc_cache *c = NULL;
	ck_assert_int_eq(hc_ioeng_create("sync", 4, 0, &e), 0);
	ck_assert_int_eq(hc_cache_create(0, e, &c), -EINVAL);
	ck_assert_int_eq(hc_cache_create(15 * BS, e, &c), -EINVAL);
	ck_assert_int_eq(hc_cache_create(16 * BS - 1, e, &c), -EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(hc_cache_create(16 * BS + BS - 1, e, &c), 0);
	ck_assert_uint_eq(hc_cache_blocks(c), 16);	/* rounded down */
	hc_cache_destroy(c);
	hc_cache_destroy(NULL);
	hc_ioeng_destroy(e);
}
END_TEST

/* Two volumes share the pool; each one's blocks and counters stay apart. */
START_TEST(test_two_volumes)
{
	cache_open("sync", 16);
	char *p2 = t_path(t_dir, "vol2");
	int fd2 = t_open_direct(p2, O_RDWR | O_CREAT, 0600);
	struct hc_cstats ds2;
	memset(&ds2, 0, sizeof(ds2));
	struct hc_cvol v2 = { .fd = fd2, .dstats = &ds2 };
	ck_assert_int_eq(hc_cache_register(F.c, &v2), 0);
	ck_assert_uint_ne(v2.id, F.v.id);

	cwrite_blocks(0, 2, 17);
	char b[2 * BS];
	t_pattern(b, 2 * BS, 18, 0);
	ck_assert_int_eq(hc_cache_write(F.c, &v2, 0, b, 2 * BS, NULL), 0);
	struct hc_cstats s1, s2, t;
	hc_cstats_read(&F.ds, &s1);
	hc_cstats_read(&ds2, &s2);
	hc_cache_total(F.c, &t);
	ck_assert_uint_eq(s1.admissions, 2);
	ck_assert_uint_eq(s2.admissions, 2);
	ck_assert_uint_eq(t.admissions, 4);
	ck_assert_int_eq(t.cached, 4);

	char buf[BS];
	ck_assert_int_eq(cread(1, buf), 1);
	ck_assert_int_eq(t_pattern_check(buf, BS, 17, BS), -1);
	void *bufs[1] = { buf };
	uint8_t miss[1];
	ck_assert_uint_eq(hc_cache_read(F.c, &v2, 1, 1, bufs, miss), 1);
	ck_assert_int_eq(t_pattern_check(buf, BS, 18, BS), -1);

	/* Unregistering v2 drops its blocks only, without writing them. */
	hc_cache_unregister(F.c, &v2);
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	hc_cache_total(F.c, &t);
	ck_assert_int_eq(t.cached, 1);
	ck_assert_int_eq(cread(0, buf), 1);
	ck_assert_int_eq(t_pattern_check(buf, BS, 17, 0), -1);
	struct stat st;
	ck_assert_int_eq(fstat(fd2, &st), 0);
	ck_assert_int_eq(st.st_size, 2 * BS);	/* block 1 was written back by the read hit */
	close(fd2);
	free(p2);
	cache_close();
}
END_TEST

/* ---- hints: what the hint hook said of a block reaches its write-back --- */

#define HINT_BLOCKS 512
static struct hc_hint hint_seen[HINT_BLOCKS];	/* per block, at its last write-back */
static unsigned hint_calls;

/* Zero, else a hash (FNV-style over 64-bit words). */
static void compute_hint(const void *block, struct hc_hint *h)
{
	const uint64_t *w = block;
	uint64_t x = 0, any = 0;
	for (unsigned k = 0; k < BS / 8; k++) {
		x = (x ^ w[k]) * 0x100000001b3ull;
		any |= w[k];
	}
	h->kind = any ? HC_HINT_HASH : HC_HINT_ZERO;
	h->hash = x;
}

/* The hook (not called under the cache lock: this takes it). */
static void rec_hint(struct hc_cvol *v, const void *block, struct hc_hint *h)
{
	(void)v;
	ck_assert_uint_ge(hc_cache_writeahead(F.c), 8);	/* self-deadlock if locked */
	__atomic_fetch_add(&hint_calls, 1, __ATOMIC_RELAXED);
	compute_hint(block, h);
}

static uint64_t hint_of(const void *block)
{
	struct hc_hint h;
	compute_hint(block, &h);
	return h.hash;
}

/* wb_submit: records the hints, writes the blocks (synchronously). */
static int rec_submit(struct hc_cvol *v, struct hc_io *io, const struct hc_hint *hint)
{
	(void)v;
	uint64_t b0 = io->off / BS;
	for (int k = 0; k < io->iovcnt; k++) {
		ck_assert_uint_lt(b0 + (uint64_t)k, HINT_BLOCKS);
		hint_seen[b0 + (uint64_t)k] = hint[k];
		if (hint[k].kind == HC_HINT_HASH)	/* the hash of the bytes written */
			ck_assert_uint_eq(hint[k].hash, hint_of(io->iov[k].iov_base));
	}
	io->res = pwritev(F.rwfd, io->iov, io->iovcnt, (off_t)io->off);
	io->done(io);
	return 0;
}

static void flush_expect(uint64_t blk, uint8_t kind)
{
	memset(&hint_seen[blk], 0xff, sizeof(hint_seen[blk]));
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	ck_assert_msg(hint_seen[blk].kind == kind, "block %llu written back with hint %u, not %u",
		      (unsigned long long)blk, hint_seen[blk].kind, kind);
}

START_TEST(test_hints)
{
	cache_open("sync", HINT_BLOCKS);
	F.v.wb_submit = rec_submit;
	F.v.hint = rec_hint;
	char z[BS], b[BS];
	memset(z, 0, BS);

	/* Whole blocks: the hook's answer (rec_submit checks the hash). */
	cwrite_blocks(1, 1, 40);
	flush_expect(1, HC_HINT_HASH);
	cwrite(2 * BS, z, BS);
	flush_expect(2, HC_HINT_ZERO);
	/* Written again whole: the new answer replaces the old one. */
	cwrite_blocks(2, 1, 41);
	flush_expect(2, HC_HINT_HASH);
	/* Any other change of the bytes clears it. */
	cwrite_blocks(3, 1, 42);
	memset(b, 7, 100);
	cwrite(3 * BS + 10, b, 100);	/* a partial write of a cached block */
	flush_expect(3, HC_HINT_NONE);
	cwrite(4 * BS, z, BS);
	cwrite(4 * BS + 5, b, 1);	/* zero hint, then one byte: must not stay zero */
	flush_expect(4, HC_HINT_NONE);
	cwrite_blocks(5, 1, 43);
	hc_cache_zero_range(F.c, &F.v, 5, 0, 64);
	flush_expect(5, HC_HINT_NONE);
	ck_assert_int_eq(hc_cache_write_clean(F.c, &F.v, 6, b), 0);
	cwrite(6 * BS + 1, b, 10);	/* clean, then partial: dirty, no hint */
	flush_expect(6, HC_HINT_NONE);
	/* An unaligned write: its whole blocks are hinted, its ends not. */
	char *u = malloc(3 * BS);
	t_pattern(u, 3 * BS, 44, 0);
	cwrite(10 * BS + 2048, u, 3 * BS);
	flush_expect(10, HC_HINT_NONE);
	ck_assert_uint_eq(hint_seen[11].kind, HC_HINT_HASH);
	ck_assert_uint_eq(hint_seen[12].kind, HC_HINT_HASH);
	ck_assert_uint_eq(hint_seen[13].kind, HC_HINT_NONE);
	free(u);
	/* Past the first 257 blocks of one write the hook is not asked. */
	unsigned before = hint_calls;
	cwrite_blocks(100, 300, 45);
	ck_assert_uint_eq(hint_calls - before, 257);
	flush_expect(100, HC_HINT_HASH);
	ck_assert_uint_eq(hint_seen[356].kind, HC_HINT_HASH);
	ck_assert_uint_eq(hint_seen[357].kind, HC_HINT_NONE);
	ck_assert_uint_eq(hint_seen[399].kind, HC_HINT_NONE);
	/* No hook: no hints. */
	F.v.hint = NULL;
	cwrite_blocks(7, 1, 46);
	flush_expect(7, HC_HINT_NONE);

	/* Every byte reached the file. */
	F.v.wb_submit = NULL;
	assert_file_block(1, 40);
	assert_file_block(2, 41);
	assert_file_block(7, 46);
	for (uint64_t k = 100; k < 400; k++)
		assert_file_block(k, 45);
	char f[BS];
	file_read(4 * BS, f, BS);
	memset(z + 5, 7, 1);
	ck_assert_int_eq(t_memdiff(f, z, BS), -1);
	cache_close();
}
END_TEST

/*
 * A writer of several blocks takes the slot after its previous block's when
 * that one is clean and in the older half of the clean list, else the oldest
 * clean slot (excache.c "Runs keep their slots together").
 */
START_TEST(test_run_slots_together)
{
	cache_open("sync", 64);
	/*
	 * Block 2s in slot s for s < 32 (not adjacent: each is written back
	 * alone); the 32 free slots parked: none free.
	 */
	for (uint64_t b = 0; b < 32; b++)
		cwrite_blocks(2 * b, 1, 50);
	for (uint64_t b = 0; b < 32; b++)
		ck_assert_int_eq(hc_cache_slot(F.c, &F.v, 2 * b), (int64_t)b);
	ck_assert_int_eq(hc_cache_resize(F.c, 32), 0);
	/* Slots cleaned oldest first: 5, 0..4, 6, 7, 9..31, and 8 last. */
	uint64_t order[32], n = 0;
	order[n++] = 5;
	for (uint64_t b = 0; b < 32; b++)
		if (b != 5 && b != 8)
			order[n++] = b;
	order[n++] = 8;
	for (unsigned k = 0; k < 32; k++)
		ck_assert_int_eq(hc_cache_flush_range(F.c, &F.v, 2 * order[k], 2 * order[k]), 0);
	/*
	 * Four new blocks in one write: the oldest (slot 5), then slots 6 and
	 * 7 (old enough) rather than 0 and 1, and not slot 8 (the newest
	 * clean block): the oldest again, slot 0.
	 */
	cwrite_blocks(100, 4, 51);
	ck_assert_int_eq(hc_cache_slot(F.c, &F.v, 100), 5);
	ck_assert_int_eq(hc_cache_slot(F.c, &F.v, 101), 6);
	ck_assert_int_eq(hc_cache_slot(F.c, &F.v, 102), 7);
	ck_assert_int_eq(hc_cache_slot(F.c, &F.v, 103), 0);
	for (uint64_t s = 5; s <= 7; s++)
		ck_assert_int_eq(hc_cache_slot(F.c, &F.v, 2 * s), -1);
	ck_assert_int_eq(hc_cache_slot(F.c, &F.v, 0), -1);
	ck_assert_int_eq(hc_cache_slot(F.c, &F.v, 16), 8);
	ck_assert_int_eq(hc_cache_slot(F.c, &F.v, 2), 1);
	/* Single-block writes take the oldest: slots 1 and 2. */
	cwrite_blocks(200, 1, 52);
	cwrite_blocks(300, 1, 52);
	ck_assert_int_eq(hc_cache_slot(F.c, &F.v, 200), 1);
	ck_assert_int_eq(hc_cache_slot(F.c, &F.v, 300), 2);
	/* Nothing lost on the way. */
	ck_assert_int_eq(hc_cache_flush(F.c, &F.v), 0);
	for (uint64_t b = 0; b < 32; b++)
		assert_file_block(2 * b, 50);
	for (uint64_t b = 100; b < 104; b++)
		assert_file_block(b, 51);
	assert_file_block(200, 52);
	assert_file_block(300, 52);
	cache_close();
}
END_TEST

static Suite *excache_suite(void)
{
	Suite *s = suite_create("excache");
	TCase *tc;

	tc = tcase_create("admit");
	t_tcase_fixtures(tc, 30);
	tcase_add_test(tc, test_write_admits);
	tcase_add_test(tc, test_create_limits);
	tcase_add_test(tc, test_two_volumes);
	suite_add_tcase(s, tc);

	tc = tcase_create("hit");
	t_tcase_fixtures(tc, 30);
	tcase_add_test(tc, test_read_hit_takes_block_out);
	tcase_add_loop_test(tc, test_read_hit_dirty_written_back, 0, 4);
	tcase_add_test(tc, test_taken_discard_or_rewrite);
	tcase_add_test(tc, test_taken_written_first);
	suite_add_tcase(s, tc);

	tc = tcase_create("eviction");
	t_tcase_fixtures(tc, 30);
	tcase_add_loop_test(tc, test_lru_eviction, 0, 2);
	tcase_add_loop_test(tc, test_eviction_counters_add_up, 0, 2);
	tcase_add_loop_test(tc, test_resize, 0, 4);
	tcase_add_test(tc, test_writeahead_adapts);
	tcase_add_test(tc, test_run_slots_together);
	suite_add_tcase(s, tc);

	tc = tcase_create("partial");
	t_tcase_fixtures(tc, 30);
	tcase_add_test(tc, test_partial_write_merges);
	suite_add_tcase(s, tc);

	tc = tcase_create("discard");
	t_tcase_fixtures(tc, 30);
	tcase_add_test(tc, test_discard_drops_without_write);
	tcase_add_test(tc, test_zero_range);
	suite_add_tcase(s, tc);

	tc = tcase_create("writethrough");
	t_tcase_fixtures(tc, 30);
	tcase_add_loop_test(tc, test_write_through_group, 0, 2);
	tcase_add_loop_test(tc, test_write_through_error, 0, 2);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	t_tcase_fixtures(tc, 30);
	tcase_add_loop_test(tc, test_flush_error_keeps_data, 0, 2);
	tcase_add_test(tc, test_full_of_failed_blocks);
	suite_add_tcase(s, tc);

	tc = tcase_create("fifo");
	t_tcase_fixtures(tc, 60);
	tcase_add_test(tc, test_fifo_slots);
	suite_add_tcase(s, tc);

	tc = tcase_create("hints");
	t_tcase_fixtures(tc, 30);
	tcase_add_test(tc, test_hints);
	suite_add_tcase(s, tc);

	tc = tcase_create("stress");
	t_tcase_fixtures(tc, 60);
	tcase_add_loop_test(tc, test_stress, 0, 4);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run_suite(excache_suite());
}
