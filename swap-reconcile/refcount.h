/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Reference counts of the physical blocks that indirections point at, and
 * the allocator of overflow.dat blocks; one of each per backing directory,
 * shared by all its volumes, behind one internal mutex (every function takes
 * it; none may be called with it held; it nests inside the journal's lock).
 *
 * What a count means.  count(p) is the number of map entries, over every
 * volume's map, that point at p; ZERO is never counted and a home block's
 * implicit reference (its own volume has no entry there) is not counted
 * either.  So, for the write path:
 *   - a home block (V, b) that V still resolves to itself is shared when
 *     count >= 1 (someone else points at it): copy on write;
 *   - a block V reaches through its entry is shared when count >= 2;
 *   - an overflow block with count 0 is garbage.
 * Counts are kept in RAM only: the journal derives them from the map
 * records it replays (journal.h) and cross-checks them against the
 * checkpoint.
 *
 * The allocator.  An overflow block is free, reserved (hc_refcount_alloc
 * handed it out and nothing points at it yet), referenced (count >= 1) or
 * pending (its count fell to 0 in journal record `seq`).  I4: a pending
 * block is not handed out again until hc_refcount_release(durable_seq) is
 * called with durable_seq >= seq, which the journal does after each commit.
 * A reserved block that the caller does not use goes back at once with
 * hc_refcount_cancel (no record ever pointed at it).
 */
#ifndef HC_REFCOUNT_H
#define HC_REFCOUNT_H

#include <stddef.h>
#include <stdint.h>

#include "imap.h"

#define HC_REFCOUNT_MAX ((1u << 24) - 1)	/* per block; more is -EOVERFLOW */

struct hc_refcount;

struct hc_refcount_stats {
	uint64_t entries;	/* blocks with a count */
	size_t bytes;		/* RAM of the count table */
	uint64_t ovf_hwm;	/* overflow.dat blocks ever handed out (file size) */
	uint64_t ovf_used;	/* reserved + referenced + pending */
	uint64_t ovf_pending;	/* freed, waiting for their record to be durable */
};

/* Creates an empty table and allocator.  0 or -ENOMEM. */
int hc_refcount_create(struct hc_refcount **out) __attribute__((warn_unused_result));
void hc_refcount_destroy(struct hc_refcount *rc);

/*
 * Replay mode (the journal's replay at open): inc may reference any overflow
 * block (it becomes allocated) and a count falling to 0 frees the block at
 * once, since the record doing it is durable already.
 */
void hc_refcount_set_replay(struct hc_refcount *rc, int on);

/* Count of p (0 when none; always 0 for ZERO). */
uint32_t hc_refcount_get(struct hc_refcount *rc, const struct hc_phys *p);

/*
 * 1 when home block p may be overwritten in place: no entry points at it
 * (count 0) and none did in a record that is not yet durable (I4: after a
 * crash that entry would come back onto the new bytes).  0 otherwise, and
 * for overflow blocks and ZERO.
 */
int hc_refcount_home_free(struct hc_refcount *rc, const struct hc_phys *p);

/*
 * One more reference to p.  Returns the new count, -EINVAL (ZERO, a bad
 * address, or, outside replay, an overflow block with count 0 that is not
 * reserved), -EOVERFLOW (HC_REFCOUNT_MAX) or -ENOMEM; on error nothing
 * changed.
 */
int hc_refcount_inc(struct hc_refcount *rc, const struct hc_phys *p);

/*
 * One reference less, dropped by journal record `seq`.  Returns the new
 * count, or -ENOENT when p had none (a bug or corrupt metadata).  An
 * overflow block whose count reaches 0 becomes pending until seq is durable
 * (freed at once in replay mode).
 */
int hc_refcount_dec(struct hc_refcount *rc, const struct hc_phys *p, uint64_t seq);

/*
 * Undoes an inc that was never journaled (count back, no pending free).
 * For the journal's error paths only.
 */
void hc_refcount_undo_inc(struct hc_refcount *rc, const struct hc_phys *p);

/*
 * Reserves n contiguous overflow blocks, lowest addresses first, growing the
 * high-water mark when no free run is long enough.  0 and *start, -EINVAL
 * (n == 0), -ENOSPC (past HC_PHYS_BLOCK_MAX) or -ENOMEM.
 */
int hc_refcount_alloc(struct hc_refcount *rc, uint64_t n, uint64_t *start)
	__attribute__((warn_unused_result));
/*
 * Gives back reserved blocks nothing points at.  Returns 0, or -EINVAL
 * (leaving all of them alone) when any of them is not reserved.
 */
int hc_refcount_cancel(struct hc_refcount *rc, uint64_t start, uint64_t n);
/*
 * Frees the pending blocks whose freeing record is <= durable_seq, and
 * forgets the home blocks such records freed (hc_refcount_home_free).
 */
void hc_refcount_release(struct hc_refcount *rc, uint64_t durable_seq);
/* Raises the high-water mark to at least hwm (checkpoint load).  0 or -ENOMEM. */
int hc_refcount_set_hwm(struct hc_refcount *rc, uint64_t hwm);
/* 1 when overflow block b is free (not reserved, referenced or pending). */
int hc_refcount_ovf_free(struct hc_refcount *rc, uint64_t b);

/*
 * Calls fn on every counted block, in no particular order, until fn returns
 * non-zero (returned).  Holds the lock: fn must not call back in.
 */
int hc_refcount_walk(struct hc_refcount *rc,
		     int (*fn)(void *arg, const struct hc_phys *p, uint32_t count), void *arg);

void hc_refcount_stats(struct hc_refcount *rc, struct hc_refcount_stats *st);

#endif
