// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Deterministic synthetic access streams (gen.h): splitmix64 randomness, a
 * libm-free ln/exp for the zipf table, and the uniform, zipf and scanhot
 * samplers shared by hc-mrc and hedp.  `hc-mrc lru` predicts hedp's guest
 * faults from the same stream, and tests/integration/mrc_offline.sh has
 * exact expected results: the arithmetic here must not change (not even
 * the order of floating-point operations).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "util.h"

#define LN2 0.6931471805599453

static uint64_t rnd(uint64_t *state)
{
	*state += 0x9E3779B97F4A7C15ull;
	return hc_mix64(*state);
}

/* Uniform in [0, n). */
static uint64_t rnd_below(uint64_t *state, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rnd(state) * n) >> 64);
}

/* Uniform in [0, 1). */
static double rnd_unit(uint64_t *state)
{
	return (double)(rnd(state) >> 11) * 0x1p-53;
}

/* ln x for normal x > 0 (the tools do not link libm). */
static double ln_(double x)
{
	uint64_t b;
	memcpy(&b, &x, sizeof(b));
	int e = (int)((b >> 52) & 0x7ff) - 1023;
	b = (b & ((1ull << 52) - 1)) | (1023ull << 52);
	double m;
	memcpy(&m, &b, sizeof(m));	/* [1, 2) */
	if (m > 1.4142135623730951) {
		m /= 2;
		e++;
	}
	double s = (m - 1) / (m + 1), s2 = s * s, term = s, sum = 0;
	for (int k = 1; k < 40; k += 2) {
		sum += term / k;
		term *= s2;
	}
	return e * LN2 + 2 * sum;
}

/* e^y for |y| < 700. */
static double exp_(double y)
{
	long k = (long)(y / LN2 + (y >= 0 ? 0.5 : -0.5));
	double r = y - (double)k * LN2, sum = 1, term = 1;
	for (int i = 1; i < 25; i++) {
		term *= r / i;
		sum += term;
	}
	uint64_t b = (uint64_t)(k + 1023) << 52;
	double p2;
	memcpy(&p2, &b, sizeof(p2));
	return sum * p2;
}

int hc_gen_init(struct hc_gen *g, uint64_t seed)
{
	uint64_t w = g->pages;
	g->rng = seed;
	g->hot = 0;
	g->scan = 0;
	g->cdf = NULL;
	if (!w || (g->pattern == HC_GEN_SCANHOT && w < 2))
		return -EINVAL;
	if (g->pattern == HC_GEN_ZIPF) {
		g->cdf = calloc(w, sizeof(*g->cdf));
		if (!g->cdf)
			return -ENOMEM;
		double sum = 0;
		for (uint64_t i = 0; i < w; i++) {
			sum += exp_(-g->theta * ln_((double)(i + 1)));
			g->cdf[i] = sum;
		}
		for (uint64_t i = 0; i < w; i++)
			g->cdf[i] /= sum;
		g->cdf[w - 1] = 1.0;
	} else if (g->pattern == HC_GEN_SCANHOT) {
		g->hot = (uint64_t)(g->hot_frac * (double)w + 0.5);
		if (g->hot < 1)
			g->hot = 1;
		if (g->hot >= w)
			g->hot = w - 1;
	}
	return 0;
}

void hc_gen_free(struct hc_gen *g)
{
	if (!g)
		return;
	free(g->cdf);
	g->cdf = NULL;
}

uint64_t hc_gen_uniform(struct hc_gen *g)
{
	return rnd_below(&g->rng, g->pages);
}

uint64_t hc_gen_zipf(struct hc_gen *g)
{
	double u = rnd_unit(&g->rng);
	uint64_t lo = 0, hi = g->pages - 1;	/* first i with cdf[i] > u */
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		if (g->cdf[mid] > u)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

uint64_t hc_gen_scanhot(struct hc_gen *g)
{
	if (rnd_unit(&g->rng) < g->hot_prob)
		return rnd_below(&g->rng, g->hot);
	uint64_t p = g->hot + g->scan;
	g->scan = (g->scan + 1) % (g->pages - g->hot);
	return p;
}

uint64_t hc_gen_next(struct hc_gen *g)
{
	switch (g->pattern) {
	case HC_GEN_ZIPF:
		return hc_gen_zipf(g);
	case HC_GEN_SCANHOT:
		return hc_gen_scanhot(g);
	default:
		return hc_gen_uniform(g);
	}
}

int hc_gen_pattern_parse(const char *name, enum hc_gen_pattern *out)
{
	static const enum hc_gen_pattern all[] = { HC_GEN_UNIFORM, HC_GEN_ZIPF, HC_GEN_SCANHOT };
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		if (!strcmp(name, hc_gen_pattern_name(all[i]))) {
			*out = all[i];
			return 0;
		}
	}
	return -EINVAL;
}

const char *hc_gen_pattern_name(enum hc_gen_pattern p)
{
	return p == HC_GEN_ZIPF ? "zipf" : p == HC_GEN_SCANHOT ? "scanhot" : "uniform";
}
