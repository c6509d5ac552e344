// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of swap-reconcile/imap.c: the per-volume indirection map.
 * Basic set / replace / clear / lookup, invalid addresses, logical blocks
 * past HC_IMAP_LBLK_MAX refused (not truncated), random operations (set,
 * clear, range clears small and huge, walks, next) against an array model
 * over three far-apart key windows (0, 2^31, the top of the 32-bit key
 * space), the tree's own invariant check after every burst, ordered walks
 * that stop early, and the memory cost per entry over a million random and
 * a million sequential entries, by the map's own accounting and by
 * mallinfo2, at the end and at every step of the growth (printed; bounds the
 * layout meets asserted, see imap.c), and of small maps.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hecache/errors.h"
#include "imap.h"
#include "t_helpers.h"
#include "volume.h"

/* Every block of the largest volume has a key. */
_Static_assert(HC_MAX_VOLUME_SIZE / HC_BLOCK_SIZE - 1 <= HC_IMAP_LBLK_MAX,
	       "volume blocks do not fit the map's keys");

/* ck_assert in fork mode writes to a pipe on every call: not in hot loops. */
#define QUICK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			ck_abort_msg("%s:%d: %s failed", __FILE__, __LINE__, #c); \
	} while (0)

static struct hc_imap *new_map(uint32_t vol)
{
	struct hc_imap *m = NULL;
	ck_assert_int_eq(hc_imap_create(vol, &m), 0);
	ck_assert_ptr_nonnull(m);
	return m;
}

static struct hc_phys P(uint32_t file, uint64_t block)
{
	struct hc_phys p = { file, block };
	return p;
}

START_TEST(test_imap_basic)
{
	struct hc_imap *m = new_map(7);
	struct hc_phys p, old;
	ck_assert_uint_eq(hc_imap_vol(m), 7);
	ck_assert_uint_eq(hc_imap_count(m), 0);
	ck_assert_int_eq(hc_imap_lookup(m, 0, &p), -ENOENT);
	ck_assert_int_eq(hc_imap_clear(m, 0, NULL), -ENOENT);
	uint64_t l;
	ck_assert_int_eq(hc_imap_next(m, 0, &l, &p), -ENOENT);

	struct hc_phys a = P(3, HC_PHYS_BLOCK_MAX), z = P(HC_PHYS_ZERO, 0),
		       o = P(HC_PHYS_OVERFLOW, 0x12345678ull);
	ck_assert_int_eq(hc_imap_set(m, 10, &a, NULL), 0);
	ck_assert_int_eq(hc_imap_set(m, 0, &z, NULL), 0);
	ck_assert_int_eq(hc_imap_set(m, HC_IMAP_LBLK_MAX, &o, NULL), 0);
	ck_assert_uint_eq(hc_imap_count(m), 3);
	ck_assert_int_eq(hc_imap_lookup(m, 10, &p), 0);
	ck_assert(hc_phys_eq(&p, &a));
	ck_assert_int_eq(hc_imap_lookup(m, 0, &p), 0);
	ck_assert(hc_phys_is_zero(&p));
	ck_assert_int_eq(hc_imap_lookup(m, HC_IMAP_LBLK_MAX, &p), 0);
	ck_assert(hc_phys_eq(&p, &o));
	ck_assert_int_eq(hc_imap_lookup(m, 11, &p), -ENOENT);

	/* Replace returns 1 and the old value. */
	ck_assert_int_eq(hc_imap_set(m, 10, &o, &old), 1);
	ck_assert(hc_phys_eq(&old, &a));
	ck_assert_uint_eq(hc_imap_count(m), 3);

	/* Invalid addresses are refused, the map unchanged. */
	struct hc_phys bad1 = P(3, HC_PHYS_BLOCK_MAX + 1), bad2 = P(HC_PHYS_ZERO, 1);
	ck_assert_int_eq(hc_imap_set(m, 5, &bad1, NULL), -EINVAL);
	ck_assert_int_eq(hc_imap_set(m, 10, &bad2, NULL), -EINVAL);
	ck_assert_uint_eq(hc_imap_count(m), 3);
	ck_assert_int_eq(hc_imap_lookup(m, 10, &p), 0);
	ck_assert(hc_phys_eq(&p, &o));

	ck_assert_int_eq(hc_imap_next(m, 1, &l, &p), 0);
	ck_assert_uint_eq(l, 10);
	ck_assert_int_eq(hc_imap_next(m, 11, &l, &p), 0);
	ck_assert_uint_eq(l, HC_IMAP_LBLK_MAX);

	/* Past the key space: refused, never truncated onto 0, 10 or the top. */
	const uint64_t past[] = { HC_IMAP_LBLK_MAX + 1, HC_IMAP_LBLK_MAX + 1 + 10,
				  (HC_IMAP_LBLK_MAX + 1) * 2 - 1, UINT64_MAX };
	for (unsigned k = 0; k < 4; k++) {
		ck_assert_int_eq(hc_imap_set(m, past[k], &a, NULL), -EINVAL);
		ck_assert_int_eq(hc_imap_lookup(m, past[k], &p), -ENOENT);
		ck_assert_int_eq(hc_imap_clear(m, past[k], NULL), -ENOENT);
		ck_assert_int_eq(hc_imap_next(m, past[k], &l, &p), -ENOENT);
		ck_assert_uint_eq(hc_imap_clear_range(m, past[k], UINT64_MAX, NULL, NULL), 0);
	}
	ck_assert_uint_eq(hc_imap_count(m), 3);
	ck_assert_int_eq(hc_imap_lookup(m, 10, &p), 0);
	ck_assert(hc_phys_eq(&p, &o));
	ck_assert_int_eq(hc_imap_lookup(m, 0, &p), 0);
	ck_assert(hc_phys_is_zero(&p));
	ck_assert_int_eq(hc_imap_check(m), 0);
	/* A range reaching past the key space still covers its top. */
	struct hc_phys o2 = P(HC_PHYS_OVERFLOW, 1);
	ck_assert_int_eq(hc_imap_set(m, HC_IMAP_LBLK_MAX - 1, &o2, NULL), 0);
	ck_assert_uint_eq(hc_imap_clear_range(m, HC_IMAP_LBLK_MAX - 1, 1000, NULL, NULL), 2);
	ck_assert_int_eq(hc_imap_lookup(m, HC_IMAP_LBLK_MAX, &p), -ENOENT);
	ck_assert_int_eq(hc_imap_set(m, HC_IMAP_LBLK_MAX, &o, NULL), 0);

	ck_assert_int_eq(hc_imap_clear(m, 10, &old), 0);
	ck_assert(hc_phys_eq(&old, &o));
	ck_assert_int_eq(hc_imap_clear(m, 10, &old), -ENOENT);
	ck_assert_uint_eq(hc_imap_clear_range(m, 0, UINT64_MAX, NULL, NULL), 2);
	ck_assert_uint_eq(hc_imap_count(m), 0);
	ck_assert_uint_eq(hc_imap_bytes(m), 0);
	ck_assert_int_eq(hc_imap_check(m), 0);
	hc_imap_destroy(m);
	hc_imap_destroy(NULL);
}
END_TEST

/* ---- random operations against a model --------------------------------- */

#define WIN 3000u
static const uint64_t bases[3] = { 0, 1ull << 31, HC_IMAP_LBLK_MAX - WIN + 1 };

struct model {
	uint8_t has[3 * WIN];
	struct hc_phys p[3 * WIN];
};

static uint64_t key_of(unsigned i)
{
	return bases[i / WIN] + i % WIN;
}

static int idx_of(uint64_t k)
{
	for (unsigned w = 0; w < 3; w++)
		if (k >= bases[w] && k - bases[w] < WIN)
			return (int)(w * WIN + (k - bases[w]));
	return -1;
}

static struct hc_phys rand_phys(uint64_t *s)
{
	switch (t_rand_below(s, 4)) {
	case 0:
		return P(HC_PHYS_ZERO, 0);
	case 1:
		return P(HC_PHYS_OVERFLOW, t_rand(s) & HC_PHYS_BLOCK_MAX);
	default:
		return P((uint32_t)t_rand_below(s, 1000), t_rand(s) & HC_PHYS_BLOCK_MAX);
	}
}

struct walk_ctx {
	const struct model *md;
	uint64_t seen;
	int64_t last;
	int fail;
	uint64_t stop_after;
};

static int walk_check(void *arg, uint64_t lblk, const struct hc_phys *p)
{
	struct walk_ctx *w = arg;
	int i = idx_of(lblk);
	if (i < 0 || !w->md->has[i] || !hc_phys_eq(p, &w->md->p[i]) || (int64_t)i <= w->last)
		w->fail++;
	w->last = i;
	w->seen++;
	return w->stop_after && w->seen == w->stop_after ? 42 : 0;
}

struct cleared {
	const struct model *md;
	uint64_t n;
	int fail;
};

static int clear_check(void *arg, uint64_t lblk, const struct hc_phys *p)
{
	struct cleared *c = arg;
	int i = idx_of(lblk);
	if (i < 0 || !c->md->has[i] || !hc_phys_eq(p, &c->md->p[i]))
		c->fail++;
	c->n++;
	return 0;
}

static void model_compare(struct hc_imap *m, const struct model *md)
{
	uint64_t n = 0;
	for (unsigned i = 0; i < 3 * WIN; i++) {
		struct hc_phys p;
		int r = hc_imap_lookup(m, key_of(i), &p);
		if (md->has[i]) {
			QUICK(r == 0);
			QUICK(hc_phys_eq(&p, &md->p[i]));
			n++;
		} else {
			QUICK(r == -ENOENT);
		}
	}
	ck_assert_uint_eq(hc_imap_count(m), n);
	ck_assert_int_eq(hc_imap_check(m), 0);
	struct walk_ctx w = { md, 0, -1, 0, 0 };
	ck_assert_int_eq(hc_imap_walk(m, 0, UINT64_MAX, walk_check, &w), 0);
	ck_assert_int_eq(w.fail, 0);
	ck_assert_uint_eq(w.seen, n);
	/* next() visits the same sequence. */
	uint64_t from = 0, l, cnt = 0;
	struct hc_phys p;
	int64_t last = -1;
	while (hc_imap_next(m, from, &l, &p) == 0) {
		int i = idx_of(l);
		QUICK(i >= 0 && i > last);
		QUICK(md->has[i] && hc_phys_eq(&p, &md->p[i]));
		last = i;
		cnt++;
		if (l == HC_IMAP_LBLK_MAX)
			break;
		from = l + 1;
	}
	ck_assert_uint_eq(cnt, n);
}

START_TEST(test_imap_random_model)
{
	static struct model md;
	memset(&md, 0, sizeof(md));
	struct hc_imap *m = new_map(1);
	uint64_t s = 1234 + (uint64_t)_i;
	for (int round = 0; round < 40; round++) {
		/* Phases that fill, then drain, so the tree grows and shrinks. */
		unsigned set_pct = round % 4 == 3 ? 20 : 75;
		for (int k = 0; k < 5000; k++) {
			unsigned i = (unsigned)t_rand_below(&s, 3 * WIN);
			uint64_t key = key_of(i);
			unsigned op = (unsigned)t_rand_below(&s, 100);
			if (op < set_pct) {
				struct hc_phys p = rand_phys(&s), old;
				int r = hc_imap_set(m, key, &p, &old);
				QUICK(r == md.has[i]);
				if (r == 1)
					QUICK(hc_phys_eq(&old, &md.p[i]));
				md.has[i] = 1;
				md.p[i] = p;
			} else if (op < 97) {
				struct hc_phys old;
				int r = hc_imap_clear(m, key, &old);
				QUICK(r == (md.has[i] ? 0 : -ENOENT));
				if (!r)
					QUICK(hc_phys_eq(&old, &md.p[i]));
				md.has[i] = 0;
			} else {
				/* A range within the window, sometimes to the end of it. */
				unsigned w = i / WIN, first = i % WIN;
				uint64_t count = op == 99 ? UINT64_MAX
							  : 1 + t_rand_below(&s, WIN - first + 50);
				struct cleared c = { &md, 0, 0 };
				uint64_t want = 0;
				for (unsigned q = first; q < WIN && q - first < count; q++)
					want += md.has[w * WIN + q];
				if (count == UINT64_MAX && w < 2)
					for (unsigned q = (w + 1) * WIN; q < 3 * WIN; q++)
						want += md.has[q];
				uint64_t got = hc_imap_clear_range(m, key, count, clear_check, &c);
				QUICK(c.fail == 0 && got == want && c.n == want);
				for (unsigned q = first; q < WIN && q - first < count; q++)
					md.has[w * WIN + q] = 0;
				if (count == UINT64_MAX)
					for (unsigned q = (w + 1) * WIN; q < 3 * WIN; q++)
						md.has[q] = 0;
			}
		}
		model_compare(m, &md);
	}
	/* An early stop returns the callback's value. */
	uint64_t n = hc_imap_count(m);
	if (n > 3) {
		struct walk_ctx w = { &md, 0, -1, 0, 3 };
		ck_assert_int_eq(hc_imap_walk(m, 0, UINT64_MAX, walk_check, &w), 42);
		ck_assert_uint_eq(w.seen, 3);
	}
	/* Walk of a sub-range sees exactly that range. */
	struct walk_ctx w = { &md, 0, -1, 0, 0 };
	ck_assert_int_eq(hc_imap_walk(m, bases[1] + 100, 200, walk_check, &w), 0);
	uint64_t want = 0;
	for (unsigned q = 100; q < 300; q++)
		want += md.has[WIN + q];
	ck_assert_uint_eq(w.seen, want);
	ck_assert_int_eq(w.fail, 0);
	hc_imap_destroy(m);
}
END_TEST

/* ---- memory per entry -------------------------------------------------- */

static size_t heap_used(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

/*
 * Bounds the layout meets, with a little room (imap.c DOC: 13-byte slots;
 * measured 15.1 bytes per entry random, 13.1 sequential at a million; at
 * most 18.0 / 15.0 at any size from 1000 entries on, as the root grows).
 */
#define RANDOM_MAX 16.0
#define SEQ_MAX 13.5
#define RANDOM_PEAK 18.5
#define SEQ_PEAK 15.5
#define HALF_MAX 28.5	/* after deleting a random half: measured 27.3 */

static void measure(const char *what, int random)
{
	const uint64_t n = 1000000;
	size_t before = heap_used();
	struct hc_imap *m = new_map(2);
	uint64_t s = 99;
	uint64_t inserted = 0, peak_at = 0;
	double peak = 0;
	for (uint64_t i = 0; inserted < n; i++) {
		uint64_t key = random ? t_rand(&s) >> 32 : i;	/* 32-bit random keys */
		struct hc_phys p = P((uint32_t)(i % 7), i & HC_PHYS_BLOCK_MAX);
		int r = hc_imap_set(m, key, &p, NULL);
		QUICK(r >= 0);
		inserted += r == 0;
		if (inserted >= 1000) {
			double b = (double)hc_imap_bytes(m) / (double)inserted;
			if (b > peak) {
				peak = b;
				peak_at = inserted;
			}
		}
	}
	size_t after = heap_used();
	ck_assert_uint_eq(hc_imap_count(m), n);
	ck_assert_int_eq(hc_imap_check(m), 0);
	double own = (double)hc_imap_bytes(m) / (double)n;
	double heap = (double)(after - before) / (double)n;
	double bound = random ? RANDOM_MAX : SEQ_MAX, peak_bound = random ? RANDOM_PEAK : SEQ_PEAK;
	printf("imap %s: %.2f bytes/entry (own accounting), %.2f bytes/entry (mallinfo2), %llu "
	       "entries; peak while growing from 1000 entries: %.2f at %llu\n",
	       what, own, heap, (unsigned long long)n, peak, (unsigned long long)peak_at);
	ck_assert_msg(own <= bound, "%s: %.2f bytes per entry", what, own);
	ck_assert_msg(heap <= bound + 0.5, "%s: %.2f heap bytes per entry", what, heap);
	ck_assert_msg(peak <= peak_bound, "%s: %.2f bytes per entry at %llu entries", what, peak,
		      (unsigned long long)peak_at);

	/* Drop half at random: still within budget, then everything. */
	if (random) {
		uint64_t s2 = 99, dropped = 0;
		for (uint64_t i = 0; i < n; i++) {
			uint64_t key = t_rand(&s2) >> 32;
			if (i % 2 && hc_imap_clear(m, key, NULL) == 0)
				dropped++;
		}
		ck_assert_int_eq(hc_imap_check(m), 0);
		double half = (double)hc_imap_bytes(m) / (double)hc_imap_count(m);
		printf("imap %s after deleting half: %.2f bytes/entry, %llu entries\n", what, half,
		       (unsigned long long)hc_imap_count(m));
		ck_assert_msg(half <= HALF_MAX, "after deletes: %.2f bytes per entry", half);
	}
	uint64_t left = hc_imap_count(m);
	ck_assert_uint_eq(hc_imap_clear_range(m, 0, UINT64_MAX, NULL, NULL), left);
	ck_assert_uint_eq(hc_imap_bytes(m), 0);
	hc_imap_destroy(m);
}

START_TEST(test_imap_memory_random)
{
	measure("random 32-bit keys", 1);
}
END_TEST

START_TEST(test_imap_memory_sequential)
{
	measure("sequential keys", 0);
}
END_TEST

/*
 * A small map does not pay for whole nodes: its root leaf, then its root
 * inner node, start small and grow by half.
 */
START_TEST(test_imap_memory_small)
{
	struct hc_imap *m = new_map(4);
	uint64_t s = 3;
	double worst = 0;
	for (uint64_t k = 1; k <= 2000; k++) {
		struct hc_phys p = P(1, k);
		int r;
		do
			r = hc_imap_set(m, t_rand(&s) >> 32, &p, NULL);
		while (r == 1);
		QUICK(r == 0);
		size_t b = hc_imap_bytes(m);
		if (k == 1) {
			printf("imap with 1 entry: %zu bytes\n", b);
			ck_assert_uint_le(b, 64);
		}
		if (k >= 16 && (double)b / (double)k > worst)
			worst = (double)b / (double)k;
		if (k % 97 == 0)
			ck_assert_int_eq(hc_imap_check(m), 0);
	}
	printf("imap from 16 to 2000 random entries: at most %.2f bytes/entry\n", worst);
	ck_assert_msg(worst <= 32.0, "%.2f bytes per entry", worst);
	ck_assert_int_eq(hc_imap_check(m), 0);
	hc_imap_destroy(m);
}
END_TEST

/* Descending and interleaved inserts, then a big range clear down to empty. */
START_TEST(test_imap_patterns)
{
	struct hc_imap *m = new_map(3);
	struct hc_phys p = P(1, 1);
	for (uint64_t i = 200000; i-- > 0;)
		QUICK(hc_imap_set(m, i * 3, &p, NULL) == 0);
	ck_assert_int_eq(hc_imap_check(m), 0);
	for (uint64_t i = 0; i < 200000; i++)
		QUICK(hc_imap_set(m, i * 3 + 1, &p, NULL) == 0);
	ck_assert_uint_eq(hc_imap_count(m), 400000);
	ck_assert_int_eq(hc_imap_check(m), 0);
	/* Clear a middle range: exactly the keys inside go. */
	uint64_t got = hc_imap_clear_range(m, 1000, 300000, NULL, NULL);
	uint64_t want = 0;
	for (uint64_t k = 1000; k < 301000; k++)
		want += k % 3 != 2 && k < 600000;
	ck_assert_uint_eq(got, want);
	ck_assert_int_eq(hc_imap_check(m), 0);
	ck_assert_int_eq(hc_imap_lookup(m, 999, &p), 0);
	ck_assert_int_eq(hc_imap_lookup(m, 1000, &p), -ENOENT);
	ck_assert_int_eq(hc_imap_lookup(m, 300999, &p), -ENOENT);
	ck_assert_int_eq(hc_imap_lookup(m, 301000, &p), 0);
	/* Clear every third leaf's worth, then all. */
	for (uint64_t k = 0; k < 600000; k += 900)
		hc_imap_clear_range(m, k, 300, NULL, NULL);
	ck_assert_int_eq(hc_imap_check(m), 0);
	uint64_t left = hc_imap_count(m);
	ck_assert_uint_eq(hc_imap_clear_range(m, 0, UINT64_MAX, NULL, NULL), left);
	ck_assert_uint_eq(hc_imap_count(m), 0);
	ck_assert_uint_eq(hc_imap_bytes(m), 0);
	ck_assert_int_eq(hc_imap_check(m), 0);
	/* Usable again after emptying. */
	ck_assert_int_eq(hc_imap_set(m, 5, &p, NULL), 0);
	ck_assert_int_eq(hc_imap_lookup(m, 5, &p), 0);
	ck_assert_uint_eq(hc_imap_clear_range(m, 0, 0, NULL, NULL), 0);
	hc_imap_destroy(m);
}
END_TEST

static Suite *imap_suite(void)
{
	Suite *s = suite_create("imap");
	TCase *tc;

	tc = tcase_create("basic");
	tcase_add_test(tc, test_imap_basic);
	tcase_add_test(tc, test_imap_patterns);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tc = tcase_create("model");
	tcase_add_loop_test(tc, test_imap_random_model, 0, 3);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);

	tc = tcase_create("memory");
	tcase_add_test(tc, test_imap_memory_random);
	tcase_add_test(tc, test_imap_memory_sequential);
	tcase_add_test(tc, test_imap_memory_small);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run_suite(imap_suite());
}
