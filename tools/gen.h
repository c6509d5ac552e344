// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Deterministic synthetic access streams for the tools (hc-mrc, hedp).
 *
 * A stream is a sequence of page numbers in [0, pages) drawn by one of
 * three patterns: uniform; zipf (rank r + 1 with probability proportional
 * to (r + 1)^-theta, page = rank - 1, by binary search in a table of
 * `pages` doubles); scanhot (with probability hot_prob a uniform page of
 * the hot set [0, hot), else the next page of a cyclic scan over
 * [hot, pages)).  The same parameters and seed give the same stream on
 * every machine: the randomness is a splitmix64 counter and the zipf table
 * uses its own ln/exp (the tools do not link libm).  Tests compare streams
 * across tools and against recorded results, so any change to the
 * arithmetic here changes their expected outputs.
 *
 * Limits: pages >= 1 (scanhot: >= 2); no thread safety (one stream, one
 * caller).
 */
#ifndef HC_TOOLS_GEN_H
#define HC_TOOLS_GEN_H

#include <stdint.h>

enum hc_gen_pattern {
	HC_GEN_NONE,		/* not chosen yet; generates as uniform */
	HC_GEN_UNIFORM,
	HC_GEN_ZIPF,
	HC_GEN_SCANHOT,
};

/* The tools' default parameters. */
#define HC_GEN_ZIPF_THETA 0.99
#define HC_GEN_HOT_FRAC 0.1
#define HC_GEN_HOT_PROB 0.5

struct hc_gen {
	/* parameters: set by the caller before hc_gen_init */
	enum hc_gen_pattern pattern;
	uint64_t pages;		/* W: pages are [0, W) */
	double theta;		/* zipf exponent, (0, 10] */
	double hot_frac;	/* scanhot: hot set size / W, (0, 1) */
	double hot_prob;	/* scanhot: probability of a hot access, [0, 1] */
	/* state: set by hc_gen_init */
	uint64_t hot;		/* scanhot: pages [0, hot) are hot, 1 <= hot < W */
	uint64_t rng;		/* splitmix64 counter */
	uint64_t scan;		/* scanhot: next scan page is hot + scan */
	double *cdf;		/* zipf: P(rank <= i + 1); page = rank - 1 */
};

/*
 * Starts the stream of g's parameters with `seed`.  Returns 0, -EINVAL if
 * g->pages is 0 (or 1 for scanhot), -ENOMEM if the zipf table cannot be
 * allocated.  Release with hc_gen_free.
 */
int hc_gen_init(struct hc_gen *g, uint64_t seed) __attribute__((warn_unused_result));

/* Frees the zipf table; g may be re-initialised.  NULL-safe. */
void hc_gen_free(struct hc_gen *g);

/* The next page of the stream, by g->pattern. */
uint64_t hc_gen_next(struct hc_gen *g);

/* The next page drawn by one pattern (hc_gen_next dispatches to these). */
uint64_t hc_gen_uniform(struct hc_gen *g);
uint64_t hc_gen_zipf(struct hc_gen *g);	/* needs a g initialised as zipf */
uint64_t hc_gen_scanhot(struct hc_gen *g);	/* needs a g initialised as scanhot */

/* "uniform", "zipf" or "scanhot" into *out: 0, or -EINVAL for another name. */
int hc_gen_pattern_parse(const char *name, enum hc_gen_pattern *out);

/* The name of p ("uniform" for HC_GEN_NONE). */
const char *hc_gen_pattern_name(enum hc_gen_pattern p);

#endif
