// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Reference counts and the overflow allocator (refcount.h).
 *
 * Counts live in an open-addressing hash with linear probing and
 * backward-shift deletion (no tombstones, so a table that churns never
 * degrades).  A slot is 12 bytes: file (32 bits), block (40 bits) and count
 * (24 bits), count 0 meaning empty; the table doubles past 3/4 full and
 * halves under 1/8, so a count costs 16-32 bytes.
 *
 * The allocator is two bitmaps over [0, hwm): `used` (reserved, referenced
 * or pending) and `pending`, a FIFO of (block, seq) for pending frees, and
 * `hint`, below which every block is used (first fit from the bottom keeps
 * overflow.dat compact).  A pending block is only released by
 * hc_refcount_release, never re-referenced: an inc on it is refused, so a
 * block that was freed by a record that is not yet durable can never end up
 * holding new data (I4).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "refcount.h"
#include "util.h"

#define MIN_CAP 64u

struct slot {
	uint32_t file;
	uint32_t lo;		/* block bits 0-31 */
	uint32_t hi_count;	/* block bits 32-39 | count << 8 */
};

struct pend {
	uint64_t block;
	uint64_t seq;
};

struct hc_refcount {
	pthread_mutex_t lock;	/* everything below */
	int replay;
	struct slot *tab;
	uint64_t cap;		/* power of two */
	uint64_t n;

	uint64_t *used;		/* bitmaps of `bits` bits, >= hwm */
	uint64_t *pending;
	uint64_t bits;
	uint64_t hwm;
	uint64_t hint;
	uint64_t nused;
	struct pend *pq;	/* FIFO [ph, pt) */
	size_t ph, pt, pcap;
};

static inline uint64_t slot_block(const struct slot *s)
{
	return (uint64_t)s->lo | (uint64_t)(s->hi_count & 0xff) << 32;
}

static inline uint32_t slot_count(const struct slot *s)
{
	return s->hi_count >> 8;
}

static inline void slot_set_count(struct slot *s, uint32_t c)
{
	s->hi_count = (s->hi_count & 0xff) | c << 8;
}

static inline uint64_t hash_phys(uint32_t file, uint64_t block)
{
	return hc_mix64(block ^ (uint64_t)file * 0x9E3779B97F4A7C15ull);
}

int hc_refcount_create(struct hc_refcount **out)
{
	struct hc_refcount *rc = calloc(1, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	rc->cap = MIN_CAP;
	rc->tab = calloc(rc->cap, sizeof(*rc->tab));
	if (!rc->tab) {
		free(rc);
		return -ENOMEM;
	}
	pthread_mutex_init(&rc->lock, NULL);
	*out = rc;
	return 0;
}

void hc_refcount_destroy(struct hc_refcount *rc)
{
	if (!rc)
		return;
	pthread_mutex_destroy(&rc->lock);
	free(rc->tab);
	free(rc->used);
	free(rc->pending);
	free(rc->pq);
	free(rc);
}

void hc_refcount_set_replay(struct hc_refcount *rc, int on)
{
	pthread_mutex_lock(&rc->lock);
	rc->replay = on;
	pthread_mutex_unlock(&rc->lock);
}

/* Index of p's slot, or of the empty slot where it would go. */
static uint64_t find(const struct hc_refcount *rc, uint32_t file, uint64_t block)
{
	uint64_t mask = rc->cap - 1, i = hash_phys(file, block) & mask;
	for (;;) {
		const struct slot *s = &rc->tab[i];
		if (!slot_count(s) || (s->file == file && slot_block(s) == block))
			return i;
		i = (i + 1) & mask;
	}
}

static int resize(struct hc_refcount *rc, uint64_t ncap)
{
	struct slot *nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	struct slot *ot = rc->tab;
	uint64_t ocap = rc->cap;
	rc->tab = nt;
	rc->cap = ncap;
	for (uint64_t i = 0; i < ocap; i++)
		if (slot_count(&ot[i]))
			rc->tab[find(rc, ot[i].file, slot_block(&ot[i]))] = ot[i];
	free(ot);
	return 0;
}

/* Removes slot i, shifting back the run after it (linear probing). */
static void slot_delete(struct hc_refcount *rc, uint64_t i)
{
	uint64_t mask = rc->cap - 1, j = i;
	for (;;) {
		j = (j + 1) & mask;
		struct slot *s = &rc->tab[j];
		if (!slot_count(s))
			break;
		uint64_t home = hash_phys(s->file, slot_block(s)) & mask;
		/* s may move to i when i lies cyclically in [home, j). */
		if (((j - home) & mask) >= ((j - i) & mask)) {
			rc->tab[i] = *s;
			i = j;
		}
	}
	memset(&rc->tab[i], 0, sizeof(rc->tab[i]));
	rc->n--;
	if (rc->cap > MIN_CAP && rc->n < rc->cap / 8)
		resize(rc, rc->cap / 2);	/* failure just keeps the big table */
}

static inline int bit_get(const uint64_t *bm, uint64_t b)
{
	return (bm[b / 64] >> (b % 64)) & 1;
}

static inline void bit_set(uint64_t *bm, uint64_t b)
{
	bm[b / 64] |= 1ull << (b % 64);
}

static inline void bit_clear(uint64_t *bm, uint64_t b)
{
	bm[b / 64] &= ~(1ull << (b % 64));
}

/* Makes the bitmaps hold at least `need` bits. */
static int grow_bits(struct hc_refcount *rc, uint64_t need)
{
	if (need <= rc->bits)
		return 0;
	uint64_t nb = rc->bits ? rc->bits : 4096;
	while (nb < need)
		nb *= 2;
	size_t ow = rc->bits / 64, nw = nb / 64;
	uint64_t *u = realloc(rc->used, nw * 8);
	if (!u)
		return -ENOMEM;
	rc->used = u;
	uint64_t *p = realloc(rc->pending, nw * 8);
	if (!p)
		return -ENOMEM;	/* used is bigger than needed: harmless */
	rc->pending = p;
	memset(u + ow, 0, (nw - ow) * 8);
	memset(p + ow, 0, (nw - ow) * 8);
	rc->bits = nb;
	return 0;
}

static int raise_hwm(struct hc_refcount *rc, uint64_t hwm)
{
	if (hwm <= rc->hwm)
		return 0;
	int r = grow_bits(rc, hwm);
	if (r)
		return r;
	rc->hwm = hwm;
	return 0;
}

static void ovf_free(struct hc_refcount *rc, uint64_t b)
{
	bit_clear(rc->used, b);
	bit_clear(rc->pending, b);
	rc->nused--;
	if (b < rc->hint)
		rc->hint = b;
}

static int valid_target(const struct hc_phys *p)
{
	return !hc_phys_is_zero(p) && hc_phys_valid(p);
}

uint32_t hc_refcount_get(struct hc_refcount *rc, const struct hc_phys *p)
{
	if (!valid_target(p))
		return 0;
	pthread_mutex_lock(&rc->lock);
	uint32_t c = slot_count(&rc->tab[find(rc, p->file, p->block)]);
	pthread_mutex_unlock(&rc->lock);
	return c;
}

static int inc_locked(struct hc_refcount *rc, const struct hc_phys *p)
{
	if (!valid_target(p))
		return -EINVAL;
	uint64_t i = find(rc, p->file, p->block);
	struct slot *s = &rc->tab[i];
	uint32_t c = slot_count(s);
	if (c == HC_REFCOUNT_MAX)
		return -EOVERFLOW;
	if (c) {
		slot_set_count(s, c + 1);
		return (int)c + 1;
	}
	int ovf = p->file == HC_PHYS_OVERFLOW;
	if (ovf) {
		if (!rc->replay) {
			if (p->block >= rc->hwm || !bit_get(rc->used, p->block) ||
			    bit_get(rc->pending, p->block))
				return -EINVAL;
		} else if (raise_hwm(rc, p->block + 1)) {
			return -ENOMEM;
		}
	}
	if ((rc->n + 1) * 4 > rc->cap * 3) {
		if (resize(rc, rc->cap * 2))
			return -ENOMEM;
		i = find(rc, p->file, p->block);
		s = &rc->tab[i];
	}
	if (ovf && rc->replay && !bit_get(rc->used, p->block)) {
		bit_set(rc->used, p->block);
		rc->nused++;
	}
	s->file = p->file;
	s->lo = (uint32_t)p->block;
	s->hi_count = (uint32_t)(p->block >> 32) | 1u << 8;
	rc->n++;
	return 1;
}

int hc_refcount_inc(struct hc_refcount *rc, const struct hc_phys *p)
{
	pthread_mutex_lock(&rc->lock);
	int r = inc_locked(rc, p);
	pthread_mutex_unlock(&rc->lock);
	return r;
}

static int push_pending(struct hc_refcount *rc, uint64_t block, uint64_t seq)
{
	if (rc->pt == rc->pcap) {
		if (rc->ph > 0) {
			memmove(rc->pq, rc->pq + rc->ph, (rc->pt - rc->ph) * sizeof(*rc->pq));
			rc->pt -= rc->ph;
			rc->ph = 0;
		}
		if (rc->pt == rc->pcap) {
			size_t nc = rc->pcap ? rc->pcap * 2 : 256;
			struct pend *q = realloc(rc->pq, nc * sizeof(*q));
			if (!q)
				return -ENOMEM;
			rc->pq = q;
			rc->pcap = nc;
		}
	}
	rc->pq[rc->pt++] = (struct pend){ block, seq };
	return 0;
}

static int dec_locked(struct hc_refcount *rc, const struct hc_phys *p, uint64_t seq, int undo)
{
	if (!valid_target(p))
		return -EINVAL;
	uint64_t i = find(rc, p->file, p->block);
	struct slot *s = &rc->tab[i];
	uint32_t c = slot_count(s);
	if (!c)
		return -ENOENT;
	if (c > 1) {
		slot_set_count(s, c - 1);
		return (int)c - 1;
	}
	slot_delete(rc, i);
	if (p->file == HC_PHYS_OVERFLOW && !undo) {
		if (rc->replay) {
			ovf_free(rc, p->block);
		} else {
			bit_set(rc->pending, p->block);
			/*
			 * Without room in the FIFO the block stays pending for
			 * good: leaked until the next open rebuilds the
			 * allocator from the counts.  Never unsafe.
			 */
			(void)push_pending(rc, p->block, seq);
		}
	}
	return 0;
}

int hc_refcount_dec(struct hc_refcount *rc, const struct hc_phys *p, uint64_t seq)
{
	pthread_mutex_lock(&rc->lock);
	int r = dec_locked(rc, p, seq, 0);
	pthread_mutex_unlock(&rc->lock);
	return r;
}

void hc_refcount_undo_inc(struct hc_refcount *rc, const struct hc_phys *p)
{
	pthread_mutex_lock(&rc->lock);
	dec_locked(rc, p, 0, 1);
	pthread_mutex_unlock(&rc->lock);
}

/* First used block at or after b, or hwm. */
static uint64_t next_used(const struct hc_refcount *rc, uint64_t b)
{
	if (b >= rc->hwm)
		return rc->hwm;
	uint64_t w = b / 64, word = rc->used[w] & ~((1ull << (b % 64)) - 1);
	while (!word) {
		if (++w * 64 >= rc->hwm)
			return rc->hwm;
		word = rc->used[w];
	}
	return HC_MIN(w * 64 + (uint64_t)__builtin_ctzll(word), rc->hwm);
}

/* First free block at or after b, or hwm. */
static uint64_t next_free(const struct hc_refcount *rc, uint64_t b)
{
	if (b >= rc->hwm)
		return rc->hwm;
	uint64_t w = b / 64, word = rc->used[w] | ((1ull << (b % 64)) - 1);
	while (word == ~0ull) {
		if (++w * 64 >= rc->hwm)
			return rc->hwm;
		word = rc->used[w];
	}
	return HC_MIN(w * 64 + (uint64_t)__builtin_ctzll(~word), rc->hwm);
}

int hc_refcount_alloc(struct hc_refcount *rc, uint64_t n, uint64_t *start)
{
	if (n == 0)
		return -EINVAL;
	pthread_mutex_lock(&rc->lock);
	int r = 0;
	/* First fit: free runs one after the other, from the hint up. */
	uint64_t f0 = next_free(rc, rc->hint), first = f0, end = first;
	while (first < rc->hwm) {
		end = next_used(rc, first);
		if (end - first >= n || end == rc->hwm)
			break;
		first = next_free(rc, end);
	}
	if (first >= rc->hwm || end - first < n) {
		/* Extend past the high-water mark, from a free tail run if any. */
		if (first > HC_PHYS_BLOCK_MAX + 1 - n) {
			r = -ENOSPC;
			goto out;
		}
		r = raise_hwm(rc, first + n);
		if (r)
			goto out;
	}
	for (uint64_t k = first; k < first + n; k++)
		bit_set(rc->used, k);
	rc->nused += n;
	rc->hint = first == f0 ? first + n : f0;	/* all used below it */
	*start = first;
out:
	pthread_mutex_unlock(&rc->lock);
	return r;
}

int hc_refcount_cancel(struct hc_refcount *rc, uint64_t start, uint64_t n)
{
	int r = 0;
	pthread_mutex_lock(&rc->lock);
	if (start >= rc->hwm || n > rc->hwm - start) {
		r = -EINVAL;
		goto out;
	}
	for (uint64_t b = start; b < start + n; b++) {
		if (!bit_get(rc->used, b) || bit_get(rc->pending, b) ||
		    slot_count(&rc->tab[find(rc, HC_PHYS_OVERFLOW, b)])) {
			r = -EINVAL;
			goto out;
		}
	}
	for (uint64_t b = start; b < start + n; b++)
		ovf_free(rc, b);
out:
	pthread_mutex_unlock(&rc->lock);
	return r;
}

void hc_refcount_release(struct hc_refcount *rc, uint64_t durable_seq)
{
	pthread_mutex_lock(&rc->lock);
	while (rc->ph < rc->pt && rc->pq[rc->ph].seq <= durable_seq) {
		uint64_t b = rc->pq[rc->ph++].block;
		if (bit_get(rc->pending, b))
			ovf_free(rc, b);
	}
	if (rc->ph == rc->pt)
		rc->ph = rc->pt = 0;
	pthread_mutex_unlock(&rc->lock);
}

int hc_refcount_set_hwm(struct hc_refcount *rc, uint64_t hwm)
{
	if (hwm > HC_PHYS_BLOCK_MAX + 1)
		return -EINVAL;
	pthread_mutex_lock(&rc->lock);
	int r = raise_hwm(rc, hwm);
	pthread_mutex_unlock(&rc->lock);
	return r;
}

int hc_refcount_ovf_free(struct hc_refcount *rc, uint64_t b)
{
	pthread_mutex_lock(&rc->lock);
	int r = b >= rc->hwm || !bit_get(rc->used, b);
	pthread_mutex_unlock(&rc->lock);
	return r;
}

int hc_refcount_walk(struct hc_refcount *rc,
		     int (*fn)(void *arg, const struct hc_phys *p, uint32_t count), void *arg)
{
	int r = 0;
	pthread_mutex_lock(&rc->lock);
	for (uint64_t i = 0; i < rc->cap && !r; i++) {
		const struct slot *s = &rc->tab[i];
		uint32_t c = slot_count(s);
		if (c) {
			struct hc_phys p = { s->file, slot_block(s) };
			r = fn(arg, &p, c);
		}
	}
	pthread_mutex_unlock(&rc->lock);
	return r;
}

void hc_refcount_stats(struct hc_refcount *rc, struct hc_refcount_stats *st)
{
	pthread_mutex_lock(&rc->lock);
	st->entries = rc->n;
	st->bytes = rc->cap * sizeof(struct slot);
	st->ovf_hwm = rc->hwm;
	st->ovf_used = rc->nused;
	st->ovf_pending = 0;
	for (size_t i = rc->ph; i < rc->pt; i++)
		st->ovf_pending += bit_get(rc->pending, rc->pq[i].block);
	pthread_mutex_unlock(&rc->lock);
}
