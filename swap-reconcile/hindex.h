/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The dedup hash index (DESIGN.md "Reconcile"): RAM only, bounded, maps the
 * XXH3 of a block's contents to the physical addresses of blocks believed to
 * hold them, per domain.  It only gives hints: the caller compares the bytes
 * before sharing (I2), and a lost or stale entry loses a dedup chance, never
 * data.  When full, the entry not looked up or inserted for longest is
 * replaced (CLOCK).  Thread-safe (one mutex).
 *
 * Test hook: with HECACHE_TEST_HASH_COLLIDE=1 in the environment when the
 * index is created, hc_hindex_hash() returns the same value for every block,
 * so every lookup returns candidates whose bytes differ (the byte check must
 * refuse them all).
 */
#ifndef HC_HINDEX_H
#define HC_HINDEX_H

#include <stddef.h>
#include <stdint.h>

struct hc_hindex;

/* Creates an index of at most max_entries (at least 16).  0, -EINVAL or -ENOMEM. */
int hc_hindex_create(uint64_t max_entries, struct hc_hindex **out)
	__attribute__((warn_unused_result));
void hc_hindex_destroy(struct hc_hindex *h);

/* The hash of one 4 KiB block (XXH3, or a constant under the test hook). */
uint64_t hc_hindex_hash(const struct hc_hindex *h, const void *block);

/*
 * Records that physical block phys of domain dom holds contents of hash.
 * An older entry for phys is replaced (a physical block holds one content).
 */
void hc_hindex_insert(struct hc_hindex *h, uint64_t hash, uint32_t dom, uint64_t phys);

/*
 * Up to max candidates of domain dom for hash, most recently recorded first,
 * into out.  Returns how many.  Candidates are hints: compare the bytes.
 */
size_t hc_hindex_lookup(struct hc_hindex *h, uint64_t hash, uint32_t dom, uint64_t *out,
			size_t max);

/*
 * Both for a run of n blocks, under one lock, with the index's memory
 * fetched ahead: insert_run records block k (k < n) as phys0 + k holding
 * hash[k]; lookup_run stores block k's candidates (at most max, max <= 255)
 * at out[k * max] and their number in nout[k], 0 where skip[k] is set
 * (skip may be NULL).  Each is the loop of single calls, in order.
 */
void hc_hindex_insert_run(struct hc_hindex *h, const uint64_t *hash, uint32_t n, uint32_t dom,
			  uint64_t phys0);
void hc_hindex_lookup_run(struct hc_hindex *h, const uint64_t *hash, const uint8_t *skip,
			  uint32_t n, uint32_t dom, uint64_t *out, size_t max, uint8_t *nout);

/*
 * hc_hindex_insert(), deferred: the entry is inserted by the index's thread
 * (hc_hindex_start()), or at the latest before the next lookup, insert,
 * remove or stats call, so no caller can tell the difference but the
 * noting thread, which does not wait for the insert.  Without the thread
 * (not started, or stopped), an insert.
 */
void hc_hindex_note(struct hc_hindex *h, uint64_t hash, uint32_t dom, uint64_t phys);

/*
 * Starts the thread that inserts deferred notes.  0 or -errno (the notes
 * are then inserted at once).
 */
int hc_hindex_start(struct hc_hindex *h) __attribute__((warn_unused_result));

/* Stops that thread, inserting what it left.  NULL-safe; destroy calls it. */
void hc_hindex_stop(struct hc_hindex *h);

/* Forgets phys (overwritten, freed, discarded).  No-op when absent. */
void hc_hindex_remove(struct hc_hindex *h, uint64_t phys);

struct hc_hindex_stats {
	uint64_t entries, max_entries;
	uint64_t inserts, lookups, candidates, replaced;
	uint64_t bytes;		/* memory of the index, allocated at creation */
};
void hc_hindex_stats(struct hc_hindex *h, struct hc_hindex_stats *out);

#endif
