// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Miss-ratio curve estimator (mrc.h).
 *
 * DOC: block states
 *
 *   UNKNOWN --evict---------------------->  STACK (newest sequence number)
 *   STACK   --evict---------------------->  STACK (moved to the top)
 *   STACK   --miss at depth d------------>  READ  (hist[d] += w)
 *   UNKNOWN --miss----------------------->  READ  (cold += w)
 *   READ    --miss----------------------->  READ  (silent += w)
 *   READ    --evict---------------------->  STACK
 *   STACK   --oldest, stack over its cap-->  UNKNOWN
 *   READ    --oldest read, over its cap--->  UNKNOWN
 *   any     --hash above lowered threshold->  UNKNOWN (sampled, fixed size)
 *
 * STACK is Lu & Shen's eviction-ordered stack: blocks the guest wrote out
 * and has not read back.  A miss of a STACK block at depth d (d blocks
 * evicted after it still on the stack) would have hit with d+1 more pages:
 * those d blocks plus itself.  READ remembers a block that is back in guest
 * memory, so that a second read with no eviction in between is told apart:
 * the guest dropped a clean copy silently, which says nothing about memory
 * size and is counted apart, never guessed into the curve.  UNKNOWN blocks
 * take no memory; a miss of one is "cold or beyond": a first read, or a
 * block the bounded tracker dropped.
 *
 * Depth in O(log n).  Each eviction takes the next sequence number; a
 * Fenwick tree over sequence numbers holds a 1 for each STACK entry, so the
 * depth of sequence s is nlive - prefix(s).  Sequence numbers only grow; at
 * the tree's capacity (twice the stack bound) the live ones are renumbered
 * 1..nlive in order and the tree rebuilt in O(capacity), at most once per
 * `cap` evictions: amortized O(1).  seq2key/live map a sequence number back
 * to its block, for renumbering and for dropping the oldest entry when the
 * stack exceeds its bound (`low` walks up to the oldest live number).
 *
 * READ entries are bounded too (rcap, oldest read dropped first): a FIFO
 * ring of (key, read stamp) in read order, twice rcap long.  Entries that
 * changed state since are stale (their block's stamp or state differs) and
 * are skipped when popping and squeezed out when the ring fills.
 *
 * The block map is open addressing with linear probing and backward-shift
 * deletion (no tombstones), sized at creation for cap + rcap + 1 entries at
 * most half full.
 *
 * Sampling (SHARDS).  A block is tracked iff hc_mix64(key) <= thr; the rate is
 * R = (thr + 1) / 2^64.  Distances measured among samples are scaled by 1/R
 * (or by the observed ratio, dist_scale) and every sampled miss weighs 1/R.  Fixed size: whenever STACK + READ
 * entries exceed sample_max, thr is halved and every entry above it purged
 * (O(cap), at most 64 times in total).  The histogram keeps the weights
 * already recorded: they estimate whole-stream counts whatever the rate.
 * hc_mrc_curve corrects the curve's level for the sample-count error as
 * cfg.adjust says (mrc.h): SHARDS_adj, or scaling to the miss events seen.
 *
 * The histogram holds doubles: exact integers in exact mode (below 2^53
 * events), weighted estimates in sampled mode.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mrc.h"
#include "util.h"

#define ST_STACK 1u
#define ST_READ 2u
#define TWO64 18446744073709551616.0

/* val = (seq or read stamp) << 2 | state; 0 = empty slot. */
struct ent {
	uint64_t key;
	uint64_t val;
};

struct rent {
	uint64_t key;
	uint64_t stamp;
};

struct hc_mrc {
	struct hc_mrc_config cfg;
	uint64_t cap;		/* STACK entries at most */
	uint64_t rcap;		/* READ entries at most */
	uint64_t bcap;		/* sequence numbers 1..bcap */
	uint64_t nb;		/* histogram buckets */
	uint64_t thr0, thr;	/* sampling threshold: tracked iff hc_mix64(key) <= thr */
	double w;		/* weight of a sampled event: 1 / rate */

	struct ent *tab;
	uint64_t tmask;
	uint32_t *bit;		/* Fenwick tree, [1..bcap] */
	uint64_t *seq2key;	/* [1..bcap] */
	uint8_t *live;		/* [1..bcap] */
	uint64_t next_seq, low, nlive;
	struct rent *ring;
	uint64_t rsize, rhead, rcount, nread, rclock;
	double *hist;

	uint64_t evictions, misses;
	uint64_t ev_all, ev_sampled;	/* evictions, and sampled ones, at this threshold */
	double cold, silent, hist_total;
};

/* --- block map -------------------------------------------------------- */

static struct ent *tab_find(struct hc_mrc *m, uint64_t key, uint64_t h)
{
	for (uint64_t i = h & m->tmask;; i = (i + 1) & m->tmask) {
		struct ent *e = &m->tab[i];
		if (!e->val)
			return NULL;
		if (e->key == key)
			return e;
	}
}

/* key must be absent; the table never fills (sized at creation). */
static struct ent *tab_insert(struct hc_mrc *m, uint64_t key, uint64_t h)
{
	uint64_t i = h & m->tmask;
	while (m->tab[i].val)
		i = (i + 1) & m->tmask;
	m->tab[i].key = key;
	return &m->tab[i];
}

static void tab_delete(struct hc_mrc *m, struct ent *e)
{
	uint64_t i = (uint64_t)(e - m->tab);
	uint64_t j = i;
	for (;;) {
		j = (j + 1) & m->tmask;
		if (!m->tab[j].val)
			break;
		uint64_t home = hc_mix64(m->tab[j].key) & m->tmask;
		/* move j to i unless its home lies cyclically in (i, j] */
		if (((j - home) & m->tmask) >= ((j - i) & m->tmask)) {
			m->tab[i] = m->tab[j];
			i = j;
		}
	}
	m->tab[i].val = 0;
}

/* --- Fenwick tree and stack -------------------------------------------- */

static void bit_add(struct hc_mrc *m, uint64_t s, int32_t d)
{
	for (; s <= m->bcap; s += s & (~s + 1))
		m->bit[s] += (uint32_t)d;
}

static uint64_t bit_prefix(const struct hc_mrc *m, uint64_t s)
{
	uint64_t sum = 0;
	for (; s; s &= s - 1)
		sum += m->bit[s];
	return sum;
}

static void stack_unmark(struct hc_mrc *m, uint64_t s)
{
	bit_add(m, s, -1);
	m->live[s] = 0;
	m->nlive--;
}

/* Renumbers the live entries 1..nlive in order and rebuilds the tree. */
static void renumber(struct hc_mrc *m)
{
	uint64_t n = 0;
	for (uint64_t s = 1; s < m->next_seq; s++) {
		if (!m->live[s])
			continue;
		uint64_t key = m->seq2key[s];
		struct ent *e = tab_find(m, key, hc_mix64(key));
		n++;
		e->val = n << 2 | ST_STACK;
		m->seq2key[n] = key;
		m->live[s] = 0;
		m->live[n] = 1;
	}
	for (uint64_t i = 1; i <= m->bcap; i++) {
		uint64_t lo = i - (i & (~i + 1));
		uint64_t hi = i < n ? i : n;
		m->bit[i] = (uint32_t)(n > lo ? hi - lo : 0);
	}
	m->next_seq = n + 1;
	m->low = 1;
}

/* Puts e on top of the stack; drops the oldest entry beyond cap. */
static void stack_push(struct hc_mrc *m, struct ent *e, uint64_t key)
{
	if (m->next_seq > m->bcap)
		renumber(m);
	uint64_t s = m->next_seq++;
	e->val = s << 2 | ST_STACK;
	m->seq2key[s] = key;
	m->live[s] = 1;
	m->nlive++;
	bit_add(m, s, 1);
	if (m->nlive > m->cap) {
		while (!m->live[m->low])
			m->low++;
		uint64_t k = m->seq2key[m->low];
		stack_unmark(m, m->low);
		tab_delete(m, tab_find(m, k, hc_mix64(k)));
	}
}

/* --- READ ring ---------------------------------------------------------- */

static struct ent *ring_current(struct hc_mrc *m, const struct rent *r)
{
	struct ent *e = tab_find(m, r->key, hc_mix64(r->key));
	if (e && e->val == (r->stamp << 2 | ST_READ))
		return e;
	return NULL;
}

static void ring_compact(struct hc_mrc *m)
{
	uint64_t n = 0;
	for (uint64_t i = 0; i < m->rcount; i++) {
		struct rent r = m->ring[(m->rhead + i) % m->rsize];
		if (ring_current(m, &r))	/* n <= i: never overwrites one unread */
			m->ring[(m->rhead + n++) % m->rsize] = r;
	}
	m->rcount = n;
}

/* Makes e READ; drops the oldest READ entry beyond rcap. */
static void read_push(struct hc_mrc *m, struct ent *e, uint64_t key)
{
	if (m->rcount == m->rsize)
		ring_compact(m);
	uint64_t stamp = ++m->rclock;
	e->val = stamp << 2 | ST_READ;
	m->ring[(m->rhead + m->rcount) % m->rsize] = (struct rent){ key, stamp };
	m->rcount++;
	m->nread++;
	while (m->nread > m->rcap) {
		struct rent r = m->ring[m->rhead];
		m->rhead = (m->rhead + 1) % m->rsize;
		m->rcount--;
		struct ent *old = ring_current(m, &r);
		if (old) {
			tab_delete(m, old);
			m->nread--;
		}
	}
}

/* --- sampling ------------------------------------------------------------ */

static void set_thr(struct hc_mrc *m, uint64_t thr)
{
	m->thr = thr;
	m->ev_all = m->ev_sampled = 0;
	m->w = m->cfg.sampled ? TWO64 / ((double)thr + 1.0) : 1.0;
}

/* Fixed size: halves the rate until the samples fit, purging the others. */
static void lower_rate(struct hc_mrc *m)
{
	while (m->nlive + m->nread > m->cfg.sample_max && m->thr) {
		set_thr(m, m->thr >> 1);
		for (uint64_t s = 1; s < m->next_seq; s++) {
			uint64_t k = m->seq2key[s];
			uint64_t h = hc_mix64(k);
			if (!m->live[s] || h <= m->thr)
				continue;
			stack_unmark(m, s);
			tab_delete(m, tab_find(m, k, h));
		}
		for (uint64_t i = 0; i < m->rcount; i++) {
			struct rent *r = &m->ring[(m->rhead + i) % m->rsize];
			struct ent *e;
			if (hc_mix64(r->key) > m->thr && (e = ring_current(m, r))) {
				tab_delete(m, e);
				m->nread--;
			}
		}
	}
}

/* --- events -------------------------------------------------------------- */

void hc_mrc_evict(struct hc_mrc *m, uint64_t key)
{
	uint64_t h = hc_mix64(key);
	m->evictions++;
	m->ev_all++;
	if (h > m->thr)
		return;
	m->ev_sampled++;
	struct ent *e = tab_find(m, key, h);
	if (!e) {
		e = tab_insert(m, key, h);
	} else if ((e->val & 3) == ST_STACK) {
		stack_unmark(m, e->val >> 2);
	} else {
		m->nread--;	/* its ring entry is now stale */
	}
	stack_push(m, e, key);
	if (m->cfg.sampled && m->cfg.sample_max && m->nlive + m->nread > m->cfg.sample_max)
		lower_rate(m);
}

/*
 * With HC_MRC_ADJ_SCALE, sampled distances scale by the observed sampling
 * ratio of evictions at the current threshold (all / sampled) rather than by
 * 1/R: the hash keeps about
 * R of the blocks, give or take 1/sqrt(samples), and that error would shift
 * every distance; the observed ratio cancels it.  Until 64 evictions were
 * sampled at this threshold, 1/R.
 */
static double dist_scale(const struct hc_mrc *m)
{
	if (m->cfg.adjust != HC_MRC_ADJ_SCALE || m->ev_sampled < 64)
		return m->w;
	return (double)m->ev_all / (double)m->ev_sampled;
}

void hc_mrc_miss(struct hc_mrc *m, uint64_t key)
{
	uint64_t h = hc_mix64(key);
	m->misses++;
	if (h > m->thr)
		return;
	struct ent *e = tab_find(m, key, h);
	if (!e) {
		m->cold += m->w;
		e = tab_insert(m, key, h);
	} else if ((e->val & 3) == ST_READ) {
		m->silent += m->w;
		return;
	} else {
		uint64_t s = e->val >> 2;
		uint64_t d = m->nlive - bit_prefix(m, s);
		stack_unmark(m, s);
		if (m->cfg.sampled)
			d = (uint64_t)((double)d * dist_scale(m));
		if (d < m->cfg.max_tracked) {
			m->hist[d / m->cfg.bucket_blocks] += m->w;
			m->hist_total += m->w;
		} else {
			m->cold += m->w;
		}
	}
	read_push(m, e, key);
	if (m->cfg.sampled && m->cfg.sample_max && m->nlive + m->nread > m->cfg.sample_max)
		lower_rate(m);
}

/* --- lifecycle and reports ------------------------------------------------ */

int hc_mrc_create(const struct hc_mrc_config *cfg, struct hc_mrc **out)
{
	struct hc_mrc_config c = *cfg;
	if (!c.bucket_blocks)
		c.bucket_blocks = 1;
	if (!c.max_tracked || c.max_tracked > HC_MRC_MAX_TRACKED || c.bucket_blocks > c.max_tracked)
		return -EINVAL;
	if (c.sampled) {
		if (!(c.rate > 0 && c.rate <= 1))
			return -EINVAL;
		if (c.sample_max && (c.sample_max < 64 || c.sample_max > HC_MRC_MAX_TRACKED))
			return -EINVAL;
	}

	struct hc_mrc *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cfg = c;
	if (!c.sampled) {
		m->cap = c.max_tracked;
		m->thr0 = UINT64_MAX;
	} else {
		/* a sample deeper than max_tracked * rate is out of range anyway */
		/* fixed size: one over, so the rate is lowered before any drop */
		m->cap = c.sample_max ? c.sample_max + 1 : (uint64_t)(c.max_tracked * c.rate) + 1;
		if (m->cap < 16)
			m->cap = 16;
		double t = c.rate * TWO64;
		m->thr0 = t >= TWO64 ? UINT64_MAX : (uint64_t)t;
	}
	m->rcap = m->cap;
	m->bcap = 2 * m->cap;
	m->nb = (c.max_tracked + c.bucket_blocks - 1) / c.bucket_blocks;
	m->rsize = 2 * m->rcap;
	uint64_t tsize = 64;
	while (tsize < 2 * (m->cap + m->rcap + 1))
		tsize <<= 1;
	m->tmask = tsize - 1;

	m->tab = calloc(tsize, sizeof(*m->tab));
	if (!m->tab)
		goto err_tab;
	m->bit = calloc(m->bcap + 1, sizeof(*m->bit));
	if (!m->bit)
		goto err_bit;
	m->seq2key = calloc(m->bcap + 1, sizeof(*m->seq2key));
	if (!m->seq2key)
		goto err_seq2key;
	m->live = calloc(m->bcap + 1, 1);
	if (!m->live)
		goto err_live;
	m->ring = calloc(m->rsize, sizeof(*m->ring));
	if (!m->ring)
		goto err_ring;
	m->hist = calloc(m->nb, sizeof(*m->hist));
	if (!m->hist)
		goto err_hist;
	hc_mrc_reset(m);
	*out = m;
	return 0;

err_hist:
	free(m->ring);
err_ring:
	free(m->live);
err_live:
	free(m->seq2key);
err_seq2key:
	free(m->bit);
err_bit:
	free(m->tab);
err_tab:
	free(m);
	return -ENOMEM;
}

void hc_mrc_destroy(struct hc_mrc *m)
{
	if (!m)
		return;
	free(m->hist);
	free(m->ring);
	free(m->live);
	free(m->seq2key);
	free(m->bit);
	free(m->tab);
	free(m);
}

void hc_mrc_reset(struct hc_mrc *m)
{
	memset(m->tab, 0, (m->tmask + 1) * sizeof(*m->tab));
	memset(m->bit, 0, (m->bcap + 1) * sizeof(*m->bit));
	memset(m->live, 0, m->bcap + 1);
	memset(m->hist, 0, m->nb * sizeof(*m->hist));
	m->next_seq = 1;
	m->low = 1;
	m->nlive = 0;
	m->rhead = m->rcount = m->nread = m->rclock = 0;
	m->evictions = m->misses = 0;
	m->cold = m->silent = m->hist_total = 0;
	set_thr(m, m->thr0);
}

void hc_mrc_stats(const struct hc_mrc *m, struct hc_mrc_stats *out)
{
	out->evictions = m->evictions;
	out->misses = m->misses;
	out->tracked = m->nlive;
	out->read_tracked = m->nread;
	out->cold = m->cold;
	out->silent = m->silent;
	out->hist_total = m->hist_total;
	out->rate = 1.0 / m->w;
}

size_t hc_mrc_curve(const struct hc_mrc *m, uint64_t step_pages, size_t n, double *misses_out)
{
	if (!step_pages)
		return 0;
	/*
	 * Sampled: the weighted counts estimate the whole stream's misses up to
	 * the sample-count error.  The true number of misses is known: SCALE
	 * scales every count to it (misses = f * (cold + measured + silent));
	 * FIRST (SHARDS_adj) adds the gap to the first bucket (mrc.h).
	 */
	double f = 1, adj = 0;
	double seen = m->cold + m->hist_total + m->silent;
	if (m->cfg.sampled && m->cfg.adjust == HC_MRC_ADJ_SCALE && seen > 0)
		f = (double)m->misses / seen;
	else if (m->cfg.sampled)
		adj = (double)m->misses - seen;
	double left = f * (m->cold + m->hist_total) + adj;
	uint64_t b = m->cfg.bucket_blocks, k = 0;	/* buckets [0, k) subtracted */
	size_t i;
	for (i = 0; i < n; i++) {
		if (i && step_pages > m->cfg.max_tracked / i)
			break;
		uint64_t c = (uint64_t)i * step_pages;
		for (; k < m->nb && (k + 1) * b <= c; k++)
			left -= f * m->hist[k] + (k ? 0 : adj);
		misses_out[i] = left > 0 ? left : 0;
	}
	return i;
}
