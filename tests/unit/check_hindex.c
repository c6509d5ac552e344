// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of the dedup hash index (swap-reconcile/hindex.c): lookups per
 * domain, most recent first; a physical block re-inserted with new contents
 * forgets the old; remove; CLOCK replacement keeps what was looked up; the
 * hash of equal and different blocks; the collision test hook; random
 * operations against a reference model, with inserts made at once and
 * deferred (hc_hindex_note() with the index's thread running); notes
 * from several threads while others look up; the run calls against single
 * calls.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hecache/format.h"
#include "hindex.h"
#include "t_helpers.h"

static struct hc_hindex *mk(uint64_t n)
{
	struct hc_hindex *h;
	ck_assert_int_eq(hc_hindex_create(n, &h), 0);
	return h;
}

START_TEST(test_basics)
{
	struct hc_hindex *h;
	ck_assert_int_eq(hc_hindex_create(15, &h), -EINVAL);
	h = mk(64);
	uint64_t out[8];
	ck_assert_uint_eq(hc_hindex_lookup(h, 1, 0, out, 8), 0);
	hc_hindex_insert(h, 1, 0, 100);
	hc_hindex_insert(h, 1, 0, 101);
	hc_hindex_insert(h, 1, 7, 102);	/* another domain */
	hc_hindex_insert(h, 2, 0, 103);
	ck_assert_uint_eq(hc_hindex_lookup(h, 1, 0, out, 8), 2);
	ck_assert_uint_eq(out[0], 101);	/* most recent first */
	ck_assert_uint_eq(out[1], 100);
	ck_assert_uint_eq(hc_hindex_lookup(h, 1, 0, out, 1), 1);
	ck_assert_uint_eq(hc_hindex_lookup(h, 1, 7, out, 8), 1);
	ck_assert_uint_eq(out[0], 102);
	ck_assert_uint_eq(hc_hindex_lookup(h, 1, 8, out, 8), 0);
	/* 101 now holds other contents: it leaves hash 1. */
	hc_hindex_insert(h, 3, 0, 101);
	ck_assert_uint_eq(hc_hindex_lookup(h, 1, 0, out, 8), 1);
	ck_assert_uint_eq(out[0], 100);
	ck_assert_uint_eq(hc_hindex_lookup(h, 3, 0, out, 8), 1);
	hc_hindex_remove(h, 100);
	hc_hindex_remove(h, 100);	/* absent: no-op */
	/* One contents in 20 blocks: the 8 most recent are kept. */
	for (uint64_t p = 200; p < 220; p++)
		hc_hindex_insert(h, 9, 0, p);
	uint64_t many[16];
	ck_assert_uint_eq(hc_hindex_lookup(h, 9, 0, many, 16), 8);
	ck_assert_uint_eq(many[0], 219);
	ck_assert_uint_eq(many[7], 212);
	for (uint64_t p = 212; p < 220; p++)
		hc_hindex_remove(h, p);
	ck_assert_uint_eq(hc_hindex_lookup(h, 1, 0, out, 8), 0);
	struct hc_hindex_stats st;
	hc_hindex_stats(h, &st);
	ck_assert_uint_eq(st.entries, 3);
	ck_assert_uint_eq(st.max_entries, 64);
	ck_assert_uint_gt(st.bytes, 64 * 32);
	hc_hindex_destroy(h);
}
END_TEST

START_TEST(test_clock)
{
	struct hc_hindex *h = mk(16);
	uint64_t out[4];
	for (uint64_t p = 0; p < 16; p++)
		hc_hindex_insert(h, 1000 + p, 0, p);
	hc_hindex_insert(h, 2000, 0, 16);	/* full: one sweep clears, entry 0 goes */
	ck_assert_uint_eq(hc_hindex_lookup(h, 1000, 0, out, 4), 0);
	ck_assert_uint_eq(hc_hindex_lookup(h, 1001, 0, out, 4), 1);	/* referenced */
	hc_hindex_insert(h, 2001, 0, 17);	/* skips 1, replaces 2 */
	ck_assert_uint_eq(hc_hindex_lookup(h, 1001, 0, out, 4), 1);
	ck_assert_uint_eq(hc_hindex_lookup(h, 1002, 0, out, 4), 0);
	for (uint64_t p = 100; p < 1000; p++)
		hc_hindex_insert(h, p, 0, p);
	struct hc_hindex_stats st;
	hc_hindex_stats(h, &st);
	ck_assert_uint_eq(st.entries, 16);
	ck_assert_uint_eq(st.replaced, st.inserts - 16);
	hc_hindex_destroy(h);
}
END_TEST

START_TEST(test_hash)
{
	char *a = t_alloc_aligned(HC_BLOCK_SIZE), *b = t_alloc_aligned(HC_BLOCK_SIZE);
	uint64_t seed = 3;
	t_fill_random(a, HC_BLOCK_SIZE, &seed);
	memcpy(b, a, HC_BLOCK_SIZE);
	unsetenv("HECACHE_TEST_HASH_COLLIDE");
	struct hc_hindex *h = mk(16);
	ck_assert_uint_eq(hc_hindex_hash(h, a), hc_hindex_hash(h, b));
	b[4095] ^= 1;
	ck_assert_uint_ne(hc_hindex_hash(h, a), hc_hindex_hash(h, b));
	hc_hindex_destroy(h);
	/* The test hook: every block has the same hash. */
	setenv("HECACHE_TEST_HASH_COLLIDE", "1", 1);
	h = mk(16);
	ck_assert_uint_eq(hc_hindex_hash(h, a), hc_hindex_hash(h, b));
	hc_hindex_insert(h, hc_hindex_hash(h, a), 0, 1);
	hc_hindex_insert(h, hc_hindex_hash(h, b), 0, 2);
	uint64_t out[4];
	ck_assert_uint_eq(hc_hindex_lookup(h, hc_hindex_hash(h, a), 0, out, 4), 2);
	hc_hindex_destroy(h);
	unsetenv("HECACHE_TEST_HASH_COLLIDE");
	free(a);
	free(b);
}
END_TEST

/*
 * Random inserts, removes and lookups against a model; no replacement by
 * CLOCK, but at most 8 blocks per contents (the oldest goes).  Loop 1 makes
 * half the inserts deferred notes, with the index's thread inserting them
 * meanwhile: the model is the same, as every operation sees the notes made
 * before it in order.
 */
START_TEST(test_model)
{
	int deferred = _i;
	enum { NPHYS = 512, NHASH = 32, NDOM = 3 };
	struct { int used; uint64_t hash; uint32_t dom; int t; } m[NPHYS];
	memset(m, 0, sizeof(m));
	struct hc_hindex *h = mk(NPHYS);
	if (deferred)
		ck_assert_int_eq(hc_hindex_start(h), 0);
	uint64_t seed = 42, out[NPHYS];
	for (int op = 0; op < 200000; op++) {
		uint64_t p = t_rand_below(&seed, NPHYS);
		uint64_t hash = t_rand_below(&seed, NHASH);
		uint32_t dom = (uint32_t)t_rand_below(&seed, NDOM);
		switch (t_rand_below(&seed, 3)) {
		case 0: {
			if (deferred && (op & 1))
				hc_hindex_note(h, hash, dom, p);
			else
				hc_hindex_insert(h, hash, dom, p);
			/* the index keeps the 8 most recent blocks per (hash, dom) */
			int same = 0, oldest = -1;
			for (int q = 0; q < NPHYS; q++)
				if (q != (int)p && m[q].used && m[q].hash == hash && m[q].dom == dom) {
					same++;
					if (oldest < 0 || m[q].t < m[oldest].t)
						oldest = q;
				}
			if (same >= 8)
				m[oldest].used = 0;
			m[p].used = 1;
			m[p].hash = hash;
			m[p].dom = dom;
			m[p].t = op;
			break;
		}
		case 1:
			hc_hindex_remove(h, p);
			m[p].used = 0;
			break;
		default: {
			size_t n = hc_hindex_lookup(h, hash, dom, out, NPHYS);
			size_t want = 0;
			for (int q = 0; q < NPHYS; q++)
				want += m[q].used && m[q].hash == hash && m[q].dom == dom;
			ck_assert_uint_eq(n, want);
			for (size_t k = 0; k < n; k++) {
				ck_assert(m[out[k]].used && m[out[k]].hash == hash &&
					  m[out[k]].dom == dom);
				for (size_t j = 0; j < k; j++)
					ck_assert_uint_ne(out[j], out[k]);
			}
		}
		}
	}
	hc_hindex_destroy(h);
}
END_TEST

enum { NOTERS = 3, PER_NOTER = 20000 };

struct noter {
	struct hc_hindex *h;
	unsigned id;
};

static void *note_many(void *arg)
{
	struct noter *n = arg;
	for (uint64_t k = 0; k < PER_NOTER; k++)
		hc_hindex_note(n->h, 1000000 * (n->id + 1) + k, 0, (uint64_t)n->id * PER_NOTER + k);
	return NULL;
}

/*
 * Threads note distinct blocks while this one looks them up: a block whose
 * note has returned is found; after the threads are done every block is,
 * once, under its own hash; stopping the index's thread leaves nothing
 * pending.
 */
/*
 * The run calls against loops of single calls on a twin index: random runs
 * of inserts and lookups (with skipped blocks), few distinct hashes (the
 * same-contents limit) and a small pool (CLOCK replacement, driven by the
 * lookups' reference bits), so any difference in order or result shows up
 * in a later lookup or in the stats.
 */
START_TEST(test_runs)
{
	enum { MAXC = 4, RUN = 64 };
	struct hc_hindex *a = mk(256), *b = mk(256);
	uint64_t seed = 99, hash[RUN], outa[RUN][MAXC], outb[RUN][MAXC];
	uint8_t skip[RUN], nb[RUN];
	for (int round = 0; round < 3000; round++) {
		uint32_t n = 1 + (uint32_t)(t_rand(&seed) % RUN);
		uint32_t dom = (uint32_t)(t_rand(&seed) % 2);
		for (uint32_t k = 0; k < n; k++) {
			hash[k] = 1 + t_rand(&seed) % 97;
			skip[k] = t_rand(&seed) % 5 == 0;
		}
		if (t_rand(&seed) % 2) {
			uint64_t phys0 = t_rand(&seed) % 4096;
			for (uint32_t k = 0; k < n; k++)
				hc_hindex_insert(a, hash[k], dom, phys0 + k);
			hc_hindex_insert_run(b, hash, n, dom, phys0);
			continue;
		}
		hc_hindex_lookup_run(b, hash, round % 3 ? skip : NULL, n, dom, &outb[0][0], MAXC, nb);
		for (uint32_t k = 0; k < n; k++) {
			size_t na = round % 3 && skip[k] ? 0 : hc_hindex_lookup(a, hash[k], dom, outa[k], MAXC);
			ck_assert_uint_eq(nb[k], na);
			for (size_t c = 0; c < na; c++)
				ck_assert_uint_eq(outb[k][c], outa[k][c]);
		}
	}
	struct hc_hindex_stats sa, sb;
	hc_hindex_stats(a, &sa);
	hc_hindex_stats(b, &sb);
	ck_assert_uint_eq(sa.entries, sb.entries);
	ck_assert_uint_eq(sa.inserts, sb.inserts);
	ck_assert_uint_eq(sa.lookups, sb.lookups);
	ck_assert_uint_eq(sa.candidates, sb.candidates);
	ck_assert_uint_eq(sa.replaced, sb.replaced);
	ck_assert_uint_gt(sa.replaced, 0);
	ck_assert_uint_gt(sa.candidates, 0);
	hc_hindex_destroy(a);
	hc_hindex_destroy(b);
}
END_TEST

START_TEST(test_notes_threads)
{
	struct hc_hindex *h = mk(NOTERS * PER_NOTER + 16);	/* no replacement */
	ck_assert_int_eq(hc_hindex_start(h), 0);
	ck_assert_int_eq(hc_hindex_start(h), 0);	/* once is enough */
	pthread_t t[NOTERS];
	struct noter n[NOTERS];
	for (unsigned i = 0; i < NOTERS; i++) {
		n[i] = (struct noter){ .h = h, .id = i };
		ck_assert_int_eq(pthread_create(&t[i], NULL, note_many, &n[i]), 0);
	}
	uint64_t out[4];
	for (int k = 0; k < 2000; k++)
		(void)hc_hindex_lookup(h, 1000000 + (uint64_t)k, 0, out, 4);
	for (unsigned i = 0; i < NOTERS; i++)
		pthread_join(t[i], NULL);
	/* This thread's own note, looked up at once. */
	hc_hindex_note(h, 7, 1, 999999999);
	ck_assert_uint_eq(hc_hindex_lookup(h, 7, 1, out, 4), 1);
	ck_assert_uint_eq(out[0], 999999999);
	hc_hindex_remove(h, 999999999);
	for (unsigned i = 0; i < NOTERS; i++)
		for (uint64_t k = 0; k < PER_NOTER; k += 97) {
			ck_assert_uint_eq(hc_hindex_lookup(h, 1000000 * (i + 1) + k, 0, out, 4), 1);
			ck_assert_uint_eq(out[0], (uint64_t)i * PER_NOTER + k);
		}
	hc_hindex_stop(h);
	struct hc_hindex_stats st;
	hc_hindex_stats(h, &st);
	ck_assert_uint_eq(st.entries, NOTERS * PER_NOTER);
	ck_assert_uint_eq(st.inserts, NOTERS * PER_NOTER + 1);
	/* Stopped: a note is an insert. */
	hc_hindex_note(h, 8, 1, 5);
	hc_hindex_stats(h, &st);
	ck_assert_uint_eq(st.inserts, NOTERS * PER_NOTER + 2);
	hc_hindex_destroy(h);
}
END_TEST

static Suite *hindex_suite(void)
{
	Suite *s = suite_create("hindex");
	TCase *tc = tcase_create("index");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_basics);
	tcase_add_test(tc, test_clock);
	tcase_add_test(tc, test_hash);
	tcase_add_loop_test(tc, test_model, 0, 2);
	tcase_add_test(tc, test_notes_threads);
	tcase_add_test(tc, test_runs);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run_suite(hindex_suite());
}
