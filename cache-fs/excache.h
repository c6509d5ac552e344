/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The exclusive cache: one preallocated, mlocked pool of 4 KiB blocks shared
 * by every volume of every domain (DESIGN.md "Exclusive cache").
 *
 * - A write is an eviction from the guest: the block is admitted dirty
 *   (write-back), or admitted and written at once (a write group, used for
 *   -o writethrough and near-full backing file systems).
 * - A read is a miss in the guest: a hit copies the block out and takes it
 *   out of the cache; a dirty block taken out is written back first (the
 *   write runs in the background; the reader does not wait for it).  On a
 *   volume with lazy_taken (swap) it keeps its slot instead until it is
 *   written back, first of all dirty blocks when space is needed, or at a
 *   flush; a write or discard of it before then saves the write.
 * - Blocks leave in LRU order when space is needed; dirty ones are written
 *   back ahead of need (coalesced with their dirty neighbours) so a writer
 *   normally finds a clean victim at once.
 * - Discard drops blocks, dirty or not, with no write.
 *
 * All entry points take the cache lock themselves; none may be called with
 * it held.  Storage I/O goes through the io engine given at creation.
 */
#ifndef HC_EXCACHE_H
#define HC_EXCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "ioeng.h"

/* Counters; updated atomically, read with hc_cache_stats_read(). */
struct hc_cstats {
	uint64_t hits;		/* guest reads served from the cache (blocks) */
	uint64_t misses;	/* guest reads that went to storage (blocks) */
	uint64_t admissions;	/* blocks written into the cache */
	uint64_t writebacks;	/* blocks written from the cache to storage */
	uint64_t discards;	/* cached blocks dropped by discard, no write */
	uint64_t read_bytes;	/* bytes read from storage */
	uint64_t written_bytes;	/* bytes written to storage */
	/* swap-reconcile: write-back blocks that needed no data write */
	uint64_t zero_blocks;	/* all zeros: a ZERO map entry */
	uint64_t dedup_blocks;	/* same bytes as a stored block: a reference to it */
	uint64_t cow_blocks;	/* home block shared: written to overflow.dat instead */
	uint64_t ref_blocks;	/* copy_file_range'd as references (destination's domain) */
	int64_t cached;		/* blocks in the cache now */
	int64_t dirty;		/* of which dirty or being written */
};

/* What a volume's hint hook found in a block (struct hc_cvol). */
enum { HC_HINT_NONE, HC_HINT_ZERO, HC_HINT_DATA, HC_HINT_HASH };

struct hc_hint {
	uint64_t hash;		/* HC_HINT_HASH: the block's content hash */
	uint8_t kind;		/* HC_HINT_*: ZERO all zeros, DATA not, HASH not and hashed */
};

/*
 * The cache's view of one volume.  The volume layer embeds it, fills fd and
 * dstats, and registers it; fields below the line belong to the cache and
 * are protected by the cache lock.
 */
struct hc_cvol {
	int fd;				/* backing home file, O_DIRECT when possible */
	struct hc_cstats *dstats;	/* the domain's counters */
	/*
	 * Atomic.  1: a dirty block a read takes out keeps its slot until it
	 * is written back (excache.c "Taken blocks"); swap volumes.  0: its
	 * write-back starts at the read.
	 */
	int lazy_taken;
	/*
	 * Optional storage hooks (swap-reconcile: blocks may live elsewhere
	 * than at home).  NULL: the home file at fd through the io engine.
	 * wb_submit takes a write-back (io->off, io->iov of whole blocks),
	 * stores it, sets io->res and calls io->done(io) (maybe before it
	 * returns), and io->saved to the number of blocks it stored without a
	 * data write; called without the cache lock.  hint[k] is what `hint`
	 * said of block k's bytes when they entered the cache (HC_HINT_NONE
	 * when it was not asked, or the slot changed since).  read_block reads
	 * one block's current contents (zeros past the end).  Both return 0 or
	 * -errno (wb_submit: -errno means io->done was not called).
	 */
	int (*wb_submit)(struct hc_cvol *v, struct hc_io *io, const struct hc_hint *hint);
	int (*read_block)(struct hc_cvol *v, uint64_t blk, void *buf);
	/*
	 * Optional, with wb_submit: looks at a whole block a writer brings,
	 * before it enters the cache (the writer's buffer is still in the
	 * CPU's caches then; at write-back the slot is read from memory, and
	 * slots scattered over the pool cost three times as much to read as
	 * consecutive ones, excache.c "Hints").  Called without the cache
	 * lock; fills *h.  Hints are only hints: wb_submit must not trust one
	 * to be right where a wrong one could return other data (a zero hint
	 * must be checked, a hash verified before sharing, DESIGN.md I2).
	 */
	void (*hint)(struct hc_cvol *v, const void *block, struct hc_hint *h);
	/* --- cache-private --- */
	uint32_t id;
	uint32_t dirty_head;		/* list of DIRTY slots */
	uint64_t ndirty;		/* DIRTY slots */
	uint64_t nwb;			/* slots with a write-back in flight */
	int wb_err;			/* first write-back error since last flush */
};

/* A set of writes a caller waits for as one (write-through). */
struct hc_cache_group {
	int pending;			/* atomic; starts at 1, held by the caller */
	int err;			/* first error, atomic */
	void (*done)(struct hc_cache_group *g);
};

struct hc_cache;

/*
 * Creates a cache of `bytes` (rounded down to blocks, at least 16) over
 * engine e.  The pool is allocated, populated and locked now.
 * Returns 0, -EINVAL (too small) or -ENOMEM.
 */
int hc_cache_create(uint64_t bytes, struct hc_ioeng *e, struct hc_cache **out)
	__attribute__((warn_unused_result));
/* Destroys the cache; every volume must have been unregistered. */
void hc_cache_destroy(struct hc_cache *c);
/* Blocks the cache holds at most now, and at most ever (the pool). */
uint64_t hc_cache_blocks(const struct hc_cache *c);
/* Dirty blocks a read took out that wait for their write-back (lazy_taken). */
uint64_t hc_cache_taken(struct hc_cache *c);
/*
 * The write-ahead mark: write-back starts while fewer blocks than this are
 * free, clean or being written.  It adapts between 1/16 and 1/4 of the
 * pool to how often early write-back turns out wasted (excache.c).
 */
uint64_t hc_cache_writeahead(struct hc_cache *c);
uint64_t hc_cache_max_blocks(const struct hc_cache *c);
/* The pool slot holding blk of v, or -1 (tests: where blocks were put). */
int64_t hc_cache_slot(struct hc_cache *c, struct hc_cvol *v, uint64_t blk);
/* Writers of several blocks holding a ticket (waiting for slots, or served). */
uint64_t hc_cache_ticketed_writers(struct hc_cache *c);

/*
 * Changes how many blocks the cache may hold, between 16 and the pool
 * allocated at creation.  Shrinking writes dirty blocks back as needed and
 * returns their memory to the system; growing takes it again (locked).
 * Returns 0, -EINVAL (out of range) or a write-back error that left the
 * cache bigger than asked (every remaining block dirty and failing).
 */
int hc_cache_resize(struct hc_cache *c, uint64_t blocks);

/* Registers a volume (fd, dstats set); returns 0 or -ENOSPC (too many). */
int hc_cache_register(struct hc_cache *c, struct hc_cvol *v);
/* Drops every block of v without writing it and forgets v. */
void hc_cache_unregister(struct hc_cache *c, struct hc_cvol *v);

/*
 * Guest read of blocks [blk, blk+n).  Each cached block is copied into
 * bufs[i] and taken out of the cache (hit; with lazy_taken a dirty one stays
 * until written back, excache.c "Taken blocks"); miss[i] is set for the others,
 * which the caller reads from storage.  Returns the number of hits.
 */
unsigned hc_cache_read(struct hc_cache *c, struct hc_cvol *v, uint64_t blk, unsigned n,
		       void *const *bufs, uint8_t *miss);

/*
 * Guest write of len bytes at byte offset off.  Whole blocks are admitted
 * dirty; a partial block not in the cache is read from storage first.
 * With grp, every block written is also sent to storage and grp counts the
 * writes (take a reference before, drop it with hc_cache_group_put after).
 * Returns 0 or -errno: when no block can be freed because every cached
 * block is dirty and its write-back failed, the last write-back error (-EIO
 * if none was recorded); an error reading a partial block.
 */
int hc_cache_write(struct hc_cache *c, struct hc_cvol *v, uint64_t off, const void *buf,
		   size_t len, struct hc_cache_group *grp);
/*
 * hc_cache_write by a caller that already asked v's hint hook: hint[k] is
 * the hint of the k-th block the write touches (ignored for a partial
 * one), for k < nhint; the blocks after those get none.
 */
int hc_cache_write_hinted(struct hc_cache *c, struct hc_cvol *v, uint64_t off, const void *buf,
			  size_t len, struct hc_cache_group *grp, const struct hc_hint *hint,
			  unsigned nhint);
/*
 * Asks v's hint hook about the whole blocks of a write of len bytes at off
 * (buf): hint[k] for the k-th block it touches (HC_HINT_NONE for a partial
 * one), at most max.  Returns how many were filled (0 without a hook).
 */
unsigned hc_cache_hints(struct hc_cvol *v, uint64_t off, const void *buf, size_t len,
			struct hc_hint *hint, unsigned max);

/* 1 when blk of v is in the cache, in any state. */
int hc_cache_cached(struct hc_cache *c, struct hc_cvol *v, uint64_t blk);
/*
 * A whole-block write of blk whose data storage already holds (the caller
 * made a map entry point at an identical block): the block enters the cache
 * clean (leaving it writes nothing), counted as an admission.  If blk is
 * cached by then (a concurrent write), it is an ordinary dirty write
 * instead.  0 or -errno (as hc_cache_write).
 */
int hc_cache_write_clean(struct hc_cache *c, struct hc_cvol *v, uint64_t blk, const void *buf);
/*
 * Writes every dirty block of v to storage and waits for it and for all
 * write-backs in flight.  Blocks stay cached, clean.  Returns 0 or the first
 * write-back error since the previous flush (then cleared).  After a failed
 * background write-back, the flush reports that error at once without
 * retrying (like fsync after a writeback error); the next flush retries
 * every dirty block, which stays cached meanwhile.
 */
int hc_cache_flush(struct hc_cache *c, struct hc_cvol *v);
/*
 * Writes back v's dirty blocks in [first, last] (and waits for those being
 * written): afterwards storage holds that range.  Returns 0 or the first
 * write-back error of the range (the blocks stay cached, dirty).
 */
int hc_cache_flush_range(struct hc_cache *c, struct hc_cvol *v, uint64_t first, uint64_t last);

/*
 * Drops blocks [first, last] of v, dirty or not, without writing them;
 * waits for reads filling and writes in flight on them first.
 * Returns the number of cached blocks dropped.
 */
uint64_t hc_cache_discard(struct hc_cache *c, struct hc_cvol *v, uint64_t first, uint64_t last);

/* Zeroes bytes [from, to) of block blk if it is cached (truncate, punch). */
void hc_cache_zero_range(struct hc_cache *c, struct hc_cvol *v, uint64_t blk, unsigned from,
			 unsigned to);

/* Totals over all domains. */
void hc_cache_total(struct hc_cache *c, struct hc_cstats *out);
/* Snapshot of one counters struct. */
void hc_cstats_read(const struct hc_cstats *s, struct hc_cstats *out);
/* Adds to a counter of s and of the totals (for storage reads of misses). */
void hc_cache_count_read(struct hc_cache *c, struct hc_cvol *v, uint64_t bytes);
/* Adds to v's domain's and the total swap-reconcile counters. */
void hc_cache_count_rc(struct hc_cache *c, struct hc_cvol *v, uint64_t zero, uint64_t dedup,
		       uint64_t cow, uint64_t refs);

void hc_cache_group_get(struct hc_cache_group *g);
/* Records err in g unless an error is already there (err 0: no-op). */
void hc_cache_group_fail(struct hc_cache_group *g, int err);
void hc_cache_group_put(struct hc_cache_group *g);

#endif
