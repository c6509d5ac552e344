/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The indirection map of one volume (DESIGN.md "Reconcile"): a sparse map
 * from logical block to physical address or ZERO; a block with no entry lives
 * at home (its own offset in the volume's home file).  In RAM only: the
 * journal (journal.h) makes it persistent and is the only code that should
 * modify a map that belongs to a journal.
 *
 * Not thread safe: the caller serializes every call on one map (the volume's
 * lock); lookups may run concurrently with each other.
 */
#ifndef HC_IMAP_H
#define HC_IMAP_H

#include <stddef.h>
#include <stdint.h>

#include "hecache/format.h"

/* A physical address: a volume's home file, overflow.dat, or ZERO. */
struct hc_phys {
	uint32_t file;		/* volume id, HC_PHYS_OVERFLOW or HC_PHYS_ZERO */
	uint64_t block;		/* <= HC_PHYS_BLOCK_MAX; 0 for ZERO */
};

static inline int hc_phys_is_zero(const struct hc_phys *p)
{
	return p->file == HC_PHYS_ZERO;
}

/* 1 when p is a well-formed address (ZERO is block 0 only). */
static inline int hc_phys_valid(const struct hc_phys *p)
{
	if (p->file == HC_PHYS_ZERO)
		return p->block == 0;
	return p->block <= HC_PHYS_BLOCK_MAX;
}

static inline int hc_phys_eq(const struct hc_phys *a, const struct hc_phys *b)
{
	return a->file == b->file && a->block == b->block;
}

struct hc_imap;

/*
 * The largest logical block a map holds.  Volumes are at most 2^44 bytes
 * (HC_MAX_VOLUME_SIZE, cache-fs/volume.h), so their blocks fit in 32 bits,
 * and so do the map's keys; a set beyond is refused, never truncated.
 */
#define HC_IMAP_LBLK_MAX 0xFFFFFFFFull

/* Creates an empty map for volume vol.  Returns 0 or -ENOMEM. */
int hc_imap_create(uint32_t vol, struct hc_imap **out) __attribute__((warn_unused_result));
/* Frees the map and every entry; NULL is fine. */
void hc_imap_destroy(struct hc_imap *m);
uint32_t hc_imap_vol(const struct hc_imap *m);

/*
 * 0 and *out = the entry of lblk, or -ENOENT when lblk lives at home (as
 * every block past HC_IMAP_LBLK_MAX does).
 */
int hc_imap_lookup(const struct hc_imap *m, uint64_t lblk, struct hc_phys *out);

/*
 * Sets lblk's entry to *p.  Returns 0 when lblk had no entry, 1 when an
 * entry was replaced (its old value in *old when old is not NULL),
 * -EINVAL for an invalid address or lblk > HC_IMAP_LBLK_MAX, -ENOMEM
 * (map unchanged).
 */
int hc_imap_set(struct hc_imap *m, uint64_t lblk, const struct hc_phys *p, struct hc_phys *old);

/* Drops lblk's entry: 0 (old value in *old if not NULL) or -ENOENT. */
int hc_imap_clear(struct hc_imap *m, uint64_t lblk, struct hc_phys *old);

/* Called for each entry of a range, in logical order. */
typedef int (*hc_imap_fn)(void *arg, uint64_t lblk, const struct hc_phys *p);

/*
 * Drops every entry in [first, first + count) (count saturates: UINT64_MAX
 * means "to the end"), calling fn (when not NULL) on each before it goes;
 * fn's return value is ignored and fn must not touch the map.  Never
 * allocates, never fails.  Returns the number of entries dropped.
 */
uint64_t hc_imap_clear_range(struct hc_imap *m, uint64_t first, uint64_t count, hc_imap_fn fn,
			     void *arg);

/*
 * Calls fn on the entries of [first, first + count) in increasing logical
 * order until fn returns non-zero, and returns that value (0 when all were
 * visited).  fn must not modify the map; for a walk that lets go of the
 * volume lock between steps, use hc_imap_next.
 */
int hc_imap_walk(const struct hc_imap *m, uint64_t first, uint64_t count, hc_imap_fn fn,
		 void *arg);

/*
 * The first entry at or after `from`: 0 with *lblk and *p set, or -ENOENT.
 * Stateless (one descent, O(log n)), so safe across modifications.
 */
int hc_imap_next(const struct hc_imap *m, uint64_t from, uint64_t *lblk, struct hc_phys *p);

/* Entries in the map. */
uint64_t hc_imap_count(const struct hc_imap *m);
/* Bytes of RAM the map's nodes take (its own accounting, without malloc's overhead). */
size_t hc_imap_bytes(const struct hc_imap *m);

/*
 * Checks the tree's structural invariants (key order, separators, counts,
 * accounting).  0 or -HC_ECORRUPT; for tests and fsck.
 */
int hc_imap_check(const struct hc_imap *m);

#endif
