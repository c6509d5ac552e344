/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Miss-ratio curves of one domain (DESIGN.md "Miss-ratio curves"): how many
 * of the guest's misses would have hit with c more pages of guest memory,
 * estimated online from the guest's evictions (writes out) and misses (reads
 * in) of 64-bit block keys (the caller makes a key from volume id and block
 * number).  Lu & Shen's eviction-ordered stack: a miss of a block that was
 * evicted, with d distinct blocks evicted after it, would have hit with d+1
 * more pages.  Exact mode costs O(log n) per event; sampled mode (SHARDS,
 * Waldspurger et al., FAST 2015) tracks only blocks whose hash falls under a
 * threshold and scales what it sees, in constant memory.
 *
 * Limits.  Only distances below `max_tracked` pages are measured: farther
 * ones, and misses of blocks the tracker dropped, count as "cold or beyond"
 * (a bounded tracker cannot tell them from first reads).  Memory is fixed at
 * creation, 130 to 200 bytes per tracked entry (max_tracked in exact mode,
 * sample_max or max_tracked*rate in sampled mode); nothing is allocated
 * after hc_mrc_create.
 *
 * Not locked: the caller serializes every call on one hc_mrc (the daemon
 * holds the domain's mutex).
 */
#ifndef HC_MRC_H
#define HC_MRC_H

#include <stddef.h>
#include <stdint.h>

#define HC_MRC_MAX_TRACKED (1ull << 30)	/* upper bound of max_tracked */

struct hc_mrc_config {
	int sampled;		/* 0: exact; 1: SHARDS sampling */
	double rate;		/* sampled: initial rate, in (0, 1] */
	/*
	 * sampled: 0 = fixed rate; else fixed size: at most this many blocks
	 * tracked (at least 64); the rate is halved whenever it is exceeded.
	 */
	uint64_t sample_max;
	uint64_t max_tracked;	/* range of the curve in pages, 1..HC_MRC_MAX_TRACKED */
	uint32_t bucket_blocks;	/* histogram bucket width in pages; 0 = 1 */
	int adjust;		/* sampled: HC_MRC_ADJ_FIRST or HC_MRC_ADJ_SCALE */
};

/*
 * How a sampled curve is corrected for the sample-count error (the sampled
 * blocks' weighted misses do not add up to the misses seen).
 * FIRST: SHARDS_adj (Waldspurger et al.): the gap goes to the first bucket;
 * right when it comes from a few hot blocks at short distances (a guest
 * too small for its hot set: a skewed stream missing at short distances).
 * SCALE: every count is scaled to the misses seen and distances by the
 * observed sampling ratio; right when the hot set hits in the guest and the
 * gap is spread over all distances.  Measured (tools/hc-mrc, 1% sampling):
 * a guest of a quarter of a 500k-page footprint, mean MAE 0.003 (uniform),
 * 0.005 (zipf), 0.008 (scan+hot) with SCALE against 0.01-0.02 with FIRST;
 * a guest of 1000 pages over 200k keys, zipf 0.06 with SCALE, 0.02 with FIRST.
 */
enum { HC_MRC_ADJ_FIRST = 0, HC_MRC_ADJ_SCALE = 1 };

/*
 * Counters.  evictions and misses count every event given; the doubles are
 * estimates of whole-stream counts in sampled mode (each sampled event
 * weighs 1/rate) and exact integers in exact mode.
 */
struct hc_mrc_stats {
	uint64_t evictions;	/* hc_mrc_evict calls */
	uint64_t misses;	/* hc_mrc_miss calls */
	uint64_t tracked;	/* blocks on the stack now (samples in sampled mode) */
	uint64_t read_tracked;	/* blocks remembered as read since their eviction */
	double cold;		/* misses of blocks never evicted, dropped, or too deep */
	double silent;		/* re-reads with no eviction in between (not in the curve) */
	double hist_total;	/* misses measured at a distance below max_tracked */
	double rate;		/* current sampling rate (1 in exact mode) */
};

struct hc_mrc;

/*
 * Creates an estimator; all its memory is allocated now.
 * Returns 0, -EINVAL (rate outside (0, 1] in sampled mode, sample_max
 * between 1 and 63, max_tracked 0 or too large, bucket_blocks larger than
 * max_tracked) or -ENOMEM.
 */
int hc_mrc_create(const struct hc_mrc_config *cfg, struct hc_mrc **out)
	__attribute__((warn_unused_result));
/* Frees m; NULL is a no-op. */
void hc_mrc_destroy(struct hc_mrc *m);

/* The guest evicted block key (wrote it out). */
void hc_mrc_evict(struct hc_mrc *m, uint64_t key);
/* The guest missed on block key (read it in). */
void hc_mrc_miss(struct hc_mrc *m, uint64_t key);

void hc_mrc_stats(const struct hc_mrc *m, struct hc_mrc_stats *out);

/*
 * Predicted misses with c extra pages of guest memory, for c = 0, step,
 * 2*step, ... while c <= max_tracked, at most n points, into misses_out.
 * misses(c) = cold + hist_total - (misses measured at distance < c); silent
 * re-reads are left out.  Sampled mode corrects the level as cfg.adjust says;
 * misses(0) is the true count less the silent estimate (FIRST) or share
 * (SCALE).  c is rounded down to a bucket boundary (a
 * conservative estimate when step is not a multiple of bucket_blocks).
 * Returns the number of points written (0 when step_pages is 0).
 */
size_t hc_mrc_curve(const struct hc_mrc *m, uint64_t step_pages, size_t n, double *misses_out);

/* Forgets every event and counter; the sampling rate returns to its initial value. */
void hc_mrc_reset(struct hc_mrc *m);

#endif
