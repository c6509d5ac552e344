// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The dedup hash index (hindex.h).
 *
 * A fixed pool of entries (hash, phys, domain), allocated at creation, on
 * two chained hash tables of 32-bit indexes: by content hash (lookup; new
 * entries at the head, so candidates come most recent first) and by physical
 * address (insert replaces, remove).  Chains are singly linked: unlinking
 * walks the chain from its bucket, short at the load kept here (buckets >=
 * entries), long only under the collision test hook, where every entry is on
 * one hash chain.  Replacement is CLOCK over the pool: lookups that return
 * an entry and inserts set its reference bit; the hand clears bits until it
 * finds an entry without one.  32 bytes per entry plus 8 per bucket pair.
 * Many blocks with one contents (a guest writing the same buffer over and
 * over) would make one long hash chain, walked by every insert and unlink:
 * only the SAME_MAX most recent blocks per contents and domain are kept.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <xxh_x86dispatch.h>

#include "hecache/format.h"
#include "hindex.h"
#include "util.h"

#define NIL UINT32_MAX
#define SAME_MAX 8		/* entries kept per (hash, domain); lookups use 4 */

struct ent {
	uint64_t hash;
	uint64_t phys;
	uint32_t dom;
	uint32_t hnext;		/* hash chain, or free list */
	uint32_t pnext;		/* phys chain */
	uint8_t used, ref;
};

struct hc_hindex {
	pthread_mutex_t lock;
	int collide;			/* test hook */
	uint32_t n, count;		/* pool size, entries in use */
	uint32_t free_head, hand;	/* lock */
	uint64_t mask;
	struct ent *e;			/* lock */
	uint32_t *hb, *pb;		/* lock: buckets by hash, by phys */
	struct hc_hindex_stats st;	/* lock */
};

int hc_hindex_create(uint64_t max_entries, struct hc_hindex **out)
{
	if (max_entries < 16 || max_entries >= NIL / 2)
		return -EINVAL;
	struct hc_hindex *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	uint64_t nb = 16;
	while (nb < max_entries)
		nb <<= 1;
	h->n = (uint32_t)max_entries;
	h->mask = nb - 1;
	h->e = calloc(h->n, sizeof(*h->e));
	h->hb = malloc(nb * sizeof(*h->hb));
	h->pb = malloc(nb * sizeof(*h->pb));
	if (!h->e || !h->hb || !h->pb) {
		free(h->e);
		free(h->hb);
		free(h->pb);
		free(h);
		return -ENOMEM;
	}
	memset(h->hb, 0xff, nb * sizeof(*h->hb));
	memset(h->pb, 0xff, nb * sizeof(*h->pb));
	for (uint32_t i = 0; i < h->n; i++)
		h->e[i].hnext = i + 1 < h->n ? i + 1 : NIL;
	h->free_head = 0;
	const char *c = getenv("HECACHE_TEST_HASH_COLLIDE");
	h->collide = c && !strcmp(c, "1");
	h->st.max_entries = h->n;
	h->st.bytes = sizeof(*h) + h->n * sizeof(*h->e) + 2 * nb * sizeof(*h->hb);
	pthread_mutex_init(&h->lock, NULL);
	*out = h;
	return 0;
}

void hc_hindex_destroy(struct hc_hindex *h)
{
	if (!h)
		return;
	pthread_mutex_destroy(&h->lock);
	free(h->e);
	free(h->hb);
	free(h->pb);
	free(h);
}

uint64_t hc_hindex_hash(const struct hc_hindex *h, const void *block)
{
	return h->collide ? 0x5eed : XXH3_64bits_dispatch(block, HC_BLOCK_SIZE);
}

/* Unlinks entry i from both chains and frees it.  lock held. */
static void drop(struct hc_hindex *h, uint32_t i)
{
	struct ent *e = &h->e[i];
	uint32_t *p = &h->hb[hc_mix64(e->hash) & h->mask];
	while (*p != i)
		p = &h->e[*p].hnext;
	*p = e->hnext;
	p = &h->pb[hc_mix64(e->phys) & h->mask];
	while (*p != i)
		p = &h->e[*p].pnext;
	*p = e->pnext;
	e->used = 0;
	e->hnext = h->free_head;
	h->free_head = i;
	h->count--;
}

static uint32_t find_phys(struct hc_hindex *h, uint64_t phys)
{
	uint32_t i = h->pb[hc_mix64(phys) & h->mask];
	while (i != NIL && h->e[i].phys != phys)
		i = h->e[i].pnext;
	return i;
}

/* A free entry, replacing one by CLOCK when the pool is full.  lock held. */
static uint32_t take(struct hc_hindex *h)
{
	if (h->free_head == NIL) {
		for (;;) {
			struct ent *e = &h->e[h->hand];
			uint32_t i = h->hand;
			h->hand = h->hand + 1 < h->n ? h->hand + 1 : 0;
			if (e->ref) {
				e->ref = 0;
				continue;
			}
			drop(h, i);
			h->st.replaced++;
			break;
		}
	}
	uint32_t i = h->free_head;
	h->free_head = h->e[i].hnext;
	h->count++;
	return i;
}

void hc_hindex_insert(struct hc_hindex *h, uint64_t hash, uint32_t dom, uint64_t phys)
{
	pthread_mutex_lock(&h->lock);
	uint32_t old = find_phys(h, phys);
	if (old != NIL)
		drop(h, old);
	/* At most SAME_MAX blocks per contents: the oldest goes (chains stay short). */
	uint32_t same = 0, last = NIL;
	for (uint32_t i = h->hb[hc_mix64(hash) & h->mask]; i != NIL; i = h->e[i].hnext)
		if (h->e[i].hash == hash && h->e[i].dom == dom) {
			same++;
			last = i;
		}
	if (same >= SAME_MAX)
		drop(h, last);
	uint32_t i = take(h);
	struct ent *e = &h->e[i];
	e->hash = hash;
	e->phys = phys;
	e->dom = dom;
	e->used = 1;
	e->ref = 1;
	uint64_t hb = hc_mix64(hash) & h->mask, pb = hc_mix64(phys) & h->mask;
	e->hnext = h->hb[hb];
	h->hb[hb] = i;
	e->pnext = h->pb[pb];
	h->pb[pb] = i;
	h->st.inserts++;
	pthread_mutex_unlock(&h->lock);
}

size_t hc_hindex_lookup(struct hc_hindex *h, uint64_t hash, uint32_t dom, uint64_t *out,
			size_t max)
{
	size_t n = 0;
	pthread_mutex_lock(&h->lock);
	for (uint32_t i = h->hb[hc_mix64(hash) & h->mask]; i != NIL && n < max; i = h->e[i].hnext) {
		struct ent *e = &h->e[i];
		if (e->hash != hash || e->dom != dom)
			continue;
		e->ref = 1;
		out[n++] = e->phys;
	}
	h->st.lookups++;
	h->st.candidates += n;
	pthread_mutex_unlock(&h->lock);
	return n;
}

void hc_hindex_remove(struct hc_hindex *h, uint64_t phys)
{
	pthread_mutex_lock(&h->lock);
	uint32_t i = find_phys(h, phys);
	if (i != NIL)
		drop(h, i);
	pthread_mutex_unlock(&h->lock);
}

void hc_hindex_stats(struct hc_hindex *h, struct hc_hindex_stats *out)
{
	pthread_mutex_lock(&h->lock);
	*out = h->st;
	out->entries = h->count;
	pthread_mutex_unlock(&h->lock);
}
