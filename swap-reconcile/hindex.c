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
 *
 * Deferred notes (hc_hindex_note()).  An insert walks two chains and, once
 * the pool is full, unlinks a victim from two more: a handful of cache
 * misses, about half a microsecond.  Noting the 256 blocks of a 1 MiB read
 * that way took some 150 us from the thread that answers the read, before
 * its reply (perf: find_phys, drop and hc_hindex_insert were a quarter of
 * the FUSE queue threads' time during 1 MiB sequential reads).  A note is
 * appended to a pending array instead (plock), and the index's own thread,
 * woken every PEND_KICK notes, inserts them.  Reads note; write-back
 * completions insert (they run on the I/O engine's thread already, and
 * deferring them would hand their inserts to the next writer's lookup,
 * which drains).  Order is kept: every other operation first inserts what
 * is pending (drain(), under lock), so a lookup finds a block noted just
 * before, and an insert or remove of a block comes after the notes made
 * before it.  With the pending array full (the thread not keeping up) the
 * noting thread drains it itself, as it would have inserted: nothing is
 * dropped.  Lock order: lock, then plock.
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
#define PEND_CAP 4096u		/* deferred notes */
#define PEND_KICK 256u		/* pending notes that wake the index's thread */
#define AHEAD 4u		/* drain() and runs: blocks prefetched ahead */

struct pend {
	uint64_t hash, phys;
	uint32_t dom;
};

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
	pthread_mutex_t plock;
	pthread_cond_t pcond;
	struct pend *pend;		/* plock: notes not yet inserted */
	uint32_t npend;			/* plock to change; drain() peeks */
	struct pend *spare;		/* lock: the other array, drained */
	int stop;			/* plock */
	int thr_on;
	pthread_t thr;
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
	h->pend = calloc(PEND_CAP, sizeof(*h->pend));
	h->spare = calloc(PEND_CAP, sizeof(*h->spare));
	if (!h->e || !h->hb || !h->pb || !h->pend || !h->spare) {
		free(h->pend);
		free(h->spare);
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
	h->st.bytes = sizeof(*h) + h->n * sizeof(*h->e) + 2 * nb * sizeof(*h->hb) +
		      2 * PEND_CAP * sizeof(*h->pend);
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->plock, NULL);
	pthread_cond_init(&h->pcond, NULL);
	*out = h;
	return 0;
}

void hc_hindex_destroy(struct hc_hindex *h)
{
	if (!h)
		return;
	hc_hindex_stop(h);
	pthread_cond_destroy(&h->pcond);
	pthread_mutex_destroy(&h->plock);
	pthread_mutex_destroy(&h->lock);
	free(h->pend);
	free(h->spare);
	free(h->e);
	free(h->hb);
	free(h->pb);
	free(h);
}

uint64_t hc_hindex_hash(const struct hc_hindex *h, const void *block)
{
	return h->collide ? 0x5eed : XXH3_64bits_dispatch(block, HC_BLOCK_SIZE);
}

/* The content-hash bucket. */
static inline uint64_t hbucket(const struct hc_hindex *h, uint64_t hash)
{
	return hc_mix64(hash) & h->mask;
}

/*
 * The physical-address bucket: 16 blocks in a row take 16 buckets in a row
 * (a write-back run's inserts replace the entries of its blocks: one or two
 * cache lines of buckets per 16 blocks, not one each).
 */
static inline uint64_t pbucket(const struct hc_hindex *h, uint64_t phys)
{
	return ((hc_mix64(phys >> 4) << 4) | (phys & 15)) & h->mask;
}

/*
 * Fetches ahead what an insert of (hash, phys) will read: at stage 0 its two
 * buckets, at stage 1 (the buckets fetched by now) the first entries of
 * their chains, which the insert walks (the same-contents count, the old
 * entry of phys).
 */
static inline void fetch(const struct hc_hindex *h, uint64_t hash, uint64_t phys, int stage)
{
	const uint32_t *hb = &h->hb[hbucket(h, hash)], *pb = &h->pb[pbucket(h, phys)];
	if (!stage) {
		__builtin_prefetch(hb);
		__builtin_prefetch(pb);
		return;
	}
	if (*hb != NIL)
		__builtin_prefetch(&h->e[*hb]);
	if (*pb != NIL)
		__builtin_prefetch(&h->e[*pb]);
}

/* With the pool full: the buckets of the entry the CLOCK hand takes soon. */
static inline void fetch_victim(const struct hc_hindex *h)
{
	if (h->free_head != NIL)
		return;
	const struct ent *v = &h->e[(h->hand + AHEAD) % h->n];
	__builtin_prefetch(&h->pb[pbucket(h, v->phys)]);
	__builtin_prefetch(&h->hb[hbucket(h, v->hash)]);
}

/* Unlinks entry i from both chains and frees it.  lock held. */
static void drop(struct hc_hindex *h, uint32_t i)
{
	struct ent *e = &h->e[i];
	uint32_t *p = &h->hb[hbucket(h, e->hash)];
	while (*p != i)
		p = &h->e[*p].hnext;
	*p = e->hnext;
	p = &h->pb[pbucket(h, e->phys)];
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
	uint32_t i = h->pb[pbucket(h, phys)];
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

/* Inserts one entry.  lock held. */
static void ins(struct hc_hindex *h, uint64_t hash, uint32_t dom, uint64_t phys)
{
	uint32_t old = find_phys(h, phys);
	if (old != NIL)
		drop(h, old);
	/* At most SAME_MAX blocks per contents: the oldest goes (chains stay short). */
	uint32_t same = 0, last = NIL;
	for (uint32_t i = h->hb[hbucket(h, hash)]; i != NIL; i = h->e[i].hnext)
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
	uint64_t hb = hbucket(h, hash), pb = pbucket(h, phys);
	e->hnext = h->hb[hb];
	h->hb[hb] = i;
	e->pnext = h->pb[pb];
	h->pb[pb] = i;
	h->st.inserts++;
}

/*
 * Inserts the pending notes, oldest first.  lock held.  Nothing pending is
 * the common case on write paths (their inserts are not deferred): one
 * load, no plock.  A note made before this call, by this thread or by one
 * that synchronised with it since, is seen.
 */
static void drain(struct hc_hindex *h)
{
	if (!__atomic_load_n(&h->npend, __ATOMIC_ACQUIRE))
		return;
	pthread_mutex_lock(&h->plock);
	struct pend *p = h->pend;
	uint32_t n = h->npend;
	h->pend = h->spare;
	__atomic_store_n(&h->npend, 0, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&h->plock);
	h->spare = p;
	/*
	 * The buckets of the notes a few ahead, and of the entries the CLOCK
	 * hand will take, are fetched while this one is inserted: their cache
	 * misses overlap instead of following one another (the thread's CPU
	 * time in 1 MiB sequential reads: 78-80 ticks per 6 s against 83-90).
	 */
	for (uint32_t i = 0; i < n; i++) {
		if (i + 2 * AHEAD < n)
			fetch(h, p[i + 2 * AHEAD].hash, p[i + 2 * AHEAD].phys, 0);
		if (i + AHEAD < n)
			fetch(h, p[i + AHEAD].hash, p[i + AHEAD].phys, 1);
		fetch_victim(h);
		ins(h, p[i].hash, p[i].dom, p[i].phys);
	}
}

void hc_hindex_insert(struct hc_hindex *h, uint64_t hash, uint32_t dom, uint64_t phys)
{
	pthread_mutex_lock(&h->lock);
	drain(h);
	ins(h, hash, dom, phys);
	pthread_mutex_unlock(&h->lock);
}

void hc_hindex_note(struct hc_hindex *h, uint64_t hash, uint32_t dom, uint64_t phys)
{
	pthread_mutex_lock(&h->plock);
	if (!h->thr_on || h->stop || h->npend == PEND_CAP) {
		pthread_mutex_unlock(&h->plock);
		hc_hindex_insert(h, hash, dom, phys);
		return;
	}
	uint32_t n = h->npend;
	h->pend[n++] = (struct pend){ .hash = hash, .phys = phys, .dom = dom };
	__atomic_store_n(&h->npend, n, __ATOMIC_RELEASE);
	if (n == PEND_KICK)
		pthread_cond_signal(&h->pcond);
	pthread_mutex_unlock(&h->plock);
}

static void *note_main(void *arg)
{
	struct hc_hindex *h = arg;
	pthread_mutex_lock(&h->plock);
	while (!h->stop) {
		if (h->npend < PEND_KICK) {
			pthread_cond_wait(&h->pcond, &h->plock);
			continue;
		}
		pthread_mutex_unlock(&h->plock);
		pthread_mutex_lock(&h->lock);
		drain(h);
		pthread_mutex_unlock(&h->lock);
		pthread_mutex_lock(&h->plock);
	}
	pthread_mutex_unlock(&h->plock);
	return NULL;
}

int hc_hindex_start(struct hc_hindex *h)
{
	if (h->thr_on)
		return 0;
	h->stop = 0;
	int err = pthread_create(&h->thr, NULL, note_main, h);
	if (err)
		return -err;
	pthread_setname_np(h->thr, "hc-hindex");
	pthread_mutex_lock(&h->plock);
	h->thr_on = 1;
	pthread_mutex_unlock(&h->plock);
	return 0;
}

void hc_hindex_stop(struct hc_hindex *h)
{
	if (!h || !h->thr_on)
		return;
	pthread_mutex_lock(&h->plock);
	h->stop = 1;
	pthread_cond_signal(&h->pcond);
	pthread_mutex_unlock(&h->plock);
	pthread_join(h->thr, NULL);
	pthread_mutex_lock(&h->plock);
	h->thr_on = 0;
	pthread_mutex_unlock(&h->plock);
	pthread_mutex_lock(&h->lock);
	drain(h);
	pthread_mutex_unlock(&h->lock);
}

/*
 * Batches (a write-back run: up to 256 blocks).  One lock for the run, and
 * the buckets of the blocks a few ahead fetched while this one is looked
 * up or inserted, as drain() does: an index operation is mostly cache
 * misses, and one after the other they do not overlap (perf, 1 MiB
 * sequential writes: hc_hindex_lookup 10 % and the inserts' find_phys,
 * drop and ins 11 % of the daemon).
 */
void hc_hindex_insert_run(struct hc_hindex *h, const uint64_t *hash, uint32_t n, uint32_t dom,
			  uint64_t phys0)
{
	pthread_mutex_lock(&h->lock);
	drain(h);
	for (uint32_t k = 0; k < n; k++) {
		if (k + 2 * AHEAD < n)
			fetch(h, hash[k + 2 * AHEAD], phys0 + k + 2 * AHEAD, 0);
		if (k + AHEAD < n)
			fetch(h, hash[k + AHEAD], phys0 + k + AHEAD, 1);
		fetch_victim(h);
		ins(h, hash[k], dom, phys0 + k);
	}
	pthread_mutex_unlock(&h->lock);
}

/* One lookup.  lock held. */
static size_t lookup(struct hc_hindex *h, uint64_t hash, uint32_t dom, uint64_t *out, size_t max)
{
	size_t n = 0;
	for (uint32_t i = h->hb[hbucket(h, hash)]; i != NIL && n < max; i = h->e[i].hnext) {
		struct ent *e = &h->e[i];
		if (e->hash != hash || e->dom != dom)
			continue;
		e->ref = 1;
		out[n++] = e->phys;
	}
	h->st.lookups++;
	h->st.candidates += n;
	return n;
}

void hc_hindex_lookup_run(struct hc_hindex *h, const uint64_t *hash, const uint8_t *skip,
			  uint32_t n, uint32_t dom, uint64_t *out, size_t max, uint8_t *nout)
{
	pthread_mutex_lock(&h->lock);
	drain(h);
	/*
	 * Block j's bucket is fetched while block j - 2 AHEAD is looked up,
	 * and its chain's first entry while block j - AHEAD is.
	 */
	for (uint32_t j = 0; j < n + 2 * AHEAD; j++) {
		if (j < n && !(skip && skip[j]))	/* a skipped hash may be unset */
			__builtin_prefetch(&h->hb[hbucket(h, hash[j])]);
		if (j >= AHEAD && j - AHEAD < n && !(skip && skip[j - AHEAD])) {
			uint32_t i = h->hb[hbucket(h, hash[j - AHEAD])];
			if (i != NIL)
				__builtin_prefetch(&h->e[i]);
		}
		if (j < 2 * AHEAD)
			continue;
		uint32_t k = j - 2 * AHEAD;
		nout[k] = skip && skip[k] ? 0 : (uint8_t)lookup(h, hash[k], dom, out + k * max, max);
	}
	pthread_mutex_unlock(&h->lock);
}

size_t hc_hindex_lookup(struct hc_hindex *h, uint64_t hash, uint32_t dom, uint64_t *out,
			size_t max)
{
	pthread_mutex_lock(&h->lock);
	drain(h);
	size_t n = lookup(h, hash, dom, out, max);
	pthread_mutex_unlock(&h->lock);
	return n;
}

void hc_hindex_remove(struct hc_hindex *h, uint64_t phys)
{
	pthread_mutex_lock(&h->lock);
	drain(h);
	uint32_t i = find_phys(h, phys);
	if (i != NIL)
		drop(h, i);
	pthread_mutex_unlock(&h->lock);
}

void hc_hindex_stats(struct hc_hindex *h, struct hc_hindex_stats *out)
{
	pthread_mutex_lock(&h->lock);
	drain(h);
	*out = h->st;
	out->entries = h->count;
	pthread_mutex_unlock(&h->lock);
}
