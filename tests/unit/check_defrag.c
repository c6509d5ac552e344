// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of swap-reconcile/defrag.c: policies home and swap over a
 * journal in a temporary directory, with three home files and an
 * overflow.dat of known contents.
 *
 * The fixture builds fragmented maps of every kind: overflow targets in
 * shuffled order, an overflow run already in order, isolated entries,
 * references to another volume's home blocks (reversed, scattered), ZERO
 * entries, dedup (two volumes' entries on one overflow block, and two
 * entries of one volume on one block), a home block that is itself a target
 * while its own block is indirected, and optionally an entry past the end of
 * the volume.  Checked: every logical block reads the same bytes before and
 * after (resolved through the map), home empties the maps and frees all of
 * overflow.dat (each freed block counted once), swap makes every run of
 * entries physically consecutive and improves the locality without writing
 * a home file, a second swap moves nothing, counts verify
 * (hc_journal_verify) and reopening gives the same maps, dry runs change
 * nothing and predict the real run, batches and -EINTR, the online hooks
 * (begin/end/hold balance, skip, no checkpoint), errors give back the
 * reserved blocks, and SIGKILL at every stage of swap's batches loses
 * nothing.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "defrag.h"
#include "hecache/format.h"
#include "journal.h"
#include "log.h"
#include "t_helpers.h"
#include "util.h"

#define BS HC_BLOCK_SIZE
#define NV 3		/* volumes 1..NV */
#define NL 64		/* blocks of each volume */
#define EOF_LBLK 70	/* the entry past the end of volume 1 */
#define MAXE 128	/* entries per map, at most */

/* The fixture: the files, the journal, the online hooks' bookkeeping. */
struct fx {
	int dfd, ofd;
	int vfd[NV + 1];
	int hide;		/* file_fd answers -ENOENT for this volume */
	struct hc_journal *j;
	/* online hooks */
	int begins, ends, depth[2], holds[2];
	int begin_stop, stops;	/* begin returns 1; how often it did */
	uint64_t busy;		/* skip answers 1 for this block of busy_vid */
	uint32_t busy_vid, cur_vid;
	/* batch_done */
	int batches, stop_after;
	/* crash: SIGKILL at this hold(on) call */
	int kill_at, ons;
};

static struct fx F;
static char msg[512];

static struct hc_journal *jopen(uint64_t ckpt_bytes)
{
	struct hc_journal_opts o = { .name = t_dir, .ckpt_bytes = ckpt_bytes };
	struct hc_journal *j = NULL;
	int r = hc_journal_open(F.dfd, &o, &j, msg, sizeof(msg));
	ck_assert_msg(r == 0, "open: %d %s", r, msg);
	return j;
}

static struct hc_imap *vmap(struct hc_journal *j, uint32_t vid)
{
	struct hc_imap *m = NULL;
	ck_assert_int_eq(hc_journal_imap(j, vid, &m), 0);
	return m;
}

static void verify_ok(struct hc_journal *j)
{
	char m[256];
	int r = hc_journal_verify(j, m, sizeof(m));
	ck_assert_msg(r == 0, "verify: %s", m);
}

static int file_fd(void *arg, uint32_t file)
{
	struct fx *f = arg;
	if (file == HC_PHYS_OVERFLOW)
		return f->ofd;
	if (file >= 1 && file <= NV && (int)file != f->hide)
		return f->vfd[file];
	return -ENOENT;
}

static int batch_done(void *arg, const struct hc_defrag_result *r)
{
	struct fx *f = arg;
	(void)r;
	f->batches++;
	return f->stop_after && f->batches >= f->stop_after;
}

static int begin(void *arg, uint64_t *size)
{
	struct fx *f = arg;
	ck_assert_int_eq(f->begins, f->ends);
	ck_assert(!f->depth[0] && !f->depth[1]);
	*size = NL * BS;
	if (f->begin_stop) {
		f->stops++;	/* the pass ends: no end to come */
		return 1;
	}
	f->begins++;
	return 0;
}

static void end(void *arg)
{
	struct fx *f = arg;
	ck_assert_int_eq(f->begins, f->ends + 1);
	ck_assert(!f->depth[0] && !f->depth[1]);
	f->ends++;
}

static void hold(void *arg, int what, int on)
{
	struct fx *f = arg;
	ck_assert(what == HC_DEFRAG_HOLD_MAP || what == HC_DEFRAG_HOLD_OVF);
	ck_assert_int_eq(f->depth[what], !on);
	ck_assert_int_eq(f->depth[!what], 0);	/* never both */
	f->depth[what] = on;
	if (on) {
		f->holds[what]++;
		if (f->kill_at && ++f->ons == f->kill_at)
			raise(SIGKILL);
	}
}

static int skip(void *arg, uint64_t lblk)
{
	struct fx *f = arg;
	ck_assert_int_eq(f->begins, f->ends + 1);	/* inside a batch */
	return f->cur_vid == f->busy_vid && lblk == f->busy;
}

static struct hc_defrag_io offline_io(void)
{
	return (struct hc_defrag_io){ .file_fd = file_fd, .batch_done = batch_done, .arg = &F };
}

static struct hc_defrag_io online_io(void)
{
	return (struct hc_defrag_io){ .file_fd = file_fd, .batch_done = batch_done,
				      .begin = begin, .end = end, .hold = hold, .skip = skip,
				      .arg = &F };
}

/* ---- building the fixture --------------------------------------------------- */

static void setup(void)
{
	memset(&F, 0, sizeof(F));
	F.dfd = open(t_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(F.dfd, 0);
	void *buf = t_alloc_aligned(NL * BS);
	for (uint32_t v = 1; v <= NV; v++) {
		char name[16];
		snprintf(name, sizeof(name), "vol%u", v);
		F.vfd[v] = openat(F.dfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
		ck_assert_int_ge(F.vfd[v], 0);
		t_pattern(buf, NL * BS, 100 + v, 0);
		t_pwrite_all(F.vfd[v], buf, NL * BS, 0);
	}
	free(buf);
	F.ofd = openat(F.dfd, "overflow.dat", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	ck_assert_int_ge(F.ofd, 0);
	F.hide = -1;
}

static void teardown(void)
{
	hc_journal_close(F.j);
	F.j = NULL;
	for (uint32_t v = 1; v <= NV; v++)
		if (F.vfd[v] > 0)
			close(F.vfd[v]);
	if (F.ofd > 0)
		close(F.ofd);
	if (F.dfd > 0)
		close(F.dfd);
}

/* n new overflow blocks holding pattern 1000 + block; the first in *start. */
static uint64_t ovf_new(uint64_t n)
{
	uint64_t start;
	ck_assert_int_eq(hc_refcount_alloc(hc_journal_refcount(F.j), n, &start), 0);
	char *buf = t_alloc_aligned(BS);
	for (uint64_t b = start; b < start + n; b++) {
		t_pattern(buf, BS, 1000 + b, 0);
		t_pwrite_all(F.ofd, buf, BS, (off_t)(b * BS));
	}
	free(buf);
	return start;
}

static void set(uint32_t vid, uint64_t lblk, uint32_t file, uint64_t block)
{
	struct hc_phys p = { .file = file, .block = block };
	int r = hc_journal_map_set(F.j, vmap(F.j, vid), lblk, &p, NULL);
	ck_assert_msg(r == 0, "set %u/%lu -> %u/%lu: %d", vid, (unsigned long)lblk, file,
		      (unsigned long)block, r);
}

/* Targets of volume 1's blocks 0..31, shuffled: perm(i). */
static uint64_t perm(uint64_t i)
{
	return (i * 13 + 5) % 32;
}

/*
 * The fragmented maps (overflow blocks 0..42, plus 43 with_eof):
 *   vol 1:  0..31 -> overflow perm(i)       shuffled (8..15 shared with vol 2)
 *          40..47 -> overflow 32..39        in order already
 *              50 -> overflow 40            isolated
 *              60 -> overflow 41            isolated; its home is vol 3's target
 *        EOF_LBLK -> overflow 43            past the end (with_eof)
 *   vol 2: 10..25 -> vol 3 home, scattered
 *          30..33 -> ZERO
 *          40..47 -> overflow perm(8..15)   dedup with vol 1
 *          55, 57 -> overflow 42            two entries, one block
 *   vol 3:   0..7 -> vol 1 home 63..56      reversed
 */
static void build(int with_eof)
{
	F.j = jopen(0);
	ovf_new(32);
	for (uint64_t i = 0; i < 32; i++)
		set(1, i, HC_PHYS_OVERFLOW, perm(i));
	uint64_t s = ovf_new(8);
	for (uint64_t i = 0; i < 8; i++)
		set(1, 40 + i, HC_PHYS_OVERFLOW, s + i);
	set(1, 50, HC_PHYS_OVERFLOW, ovf_new(1));
	set(1, 60, HC_PHYS_OVERFLOW, ovf_new(1));
	for (uint64_t i = 0; i < 16; i++)
		set(2, 10 + i, 3, (i * 5 + 3) % 16 + 20);
	for (uint64_t i = 0; i < 4; i++)
		set(2, 30 + i, HC_PHYS_ZERO, 0);
	for (uint64_t i = 0; i < 8; i++)
		set(2, 40 + i, HC_PHYS_OVERFLOW, perm(8 + i));
	uint64_t b = ovf_new(1);
	set(2, 55, HC_PHYS_OVERFLOW, b);
	set(2, 57, HC_PHYS_OVERFLOW, b);
	for (uint64_t i = 0; i < 8; i++)
		set(3, i, 1, 63 - i);
	if (with_eof)
		set(1, EOF_LBLK, HC_PHYS_OVERFLOW, ovf_new(1));
	ck_assert_int_eq(fdatasync(F.ofd), 0);
	ck_assert_int_eq(hc_journal_commit(F.j), 0);
	verify_ok(F.j);
}

/* ---- observing ------------------------------------------------------------------ */

/* Block lblk of volume vid as a reader sees it. */
static void resolve(uint32_t vid, uint64_t lblk, void *buf)
{
	struct hc_phys p;
	ssize_t r;
	if (hc_imap_lookup(vmap(F.j, vid), lblk, &p) < 0) {
		r = hc_pread_full(F.vfd[vid], buf, BS, (off_t)(lblk * BS));
	} else if (hc_phys_is_zero(&p)) {
		memset(buf, 0, BS);
		r = 0;
	} else {
		int fd = p.file == HC_PHYS_OVERFLOW ? F.ofd : F.vfd[p.file];
		r = hc_pread_full(fd, buf, BS, (off_t)(p.block * BS));
	}
	ck_assert_int_ge(r, 0);
}

#define SNAP_BLOCKS (NV * NL + 1)

/* Every block of every volume, and volume 1's EOF_LBLK. */
static char *snapshot(void)
{
	char *s = malloc((size_t)SNAP_BLOCKS * BS);
	ck_assert_ptr_nonnull(s);
	for (uint32_t v = 1; v <= NV; v++)
		for (uint64_t l = 0; l < NL; l++)
			resolve(v, l, s + ((v - 1) * NL + l) * BS);
	resolve(1, EOF_LBLK, s + (size_t)NV * NL * BS);
	return s;
}

static void same_data(const char *before)
{
	char *now = snapshot();
	for (size_t i = 0; i < SNAP_BLOCKS; i++)
		ck_assert_msg(!memcmp(before + i * BS, now + i * BS, BS),
			      "volume %zu block %zu reads other bytes", i / NL + 1, i % NL);
	free(now);
}

struct dump {
	size_t n[NV + 1];
	uint64_t l[NV + 1][MAXE], b[NV + 1][MAXE];
	uint32_t f[NV + 1][MAXE];
};

static int dump_one(void *arg, uint64_t lblk, const struct hc_phys *p)
{
	struct dump *d = arg;
	uint32_t v = d->n[0];	/* the volume being dumped */
	size_t i = d->n[v]++;
	ck_assert_uint_lt(i, MAXE);
	d->l[v][i] = lblk;
	d->f[v][i] = p->file;
	d->b[v][i] = p->block;
	return 0;
}

static void dump(struct hc_journal *j, struct dump *d)
{
	memset(d, 0, sizeof(*d));
	for (uint32_t v = 1; v <= NV; v++) {
		d->n[0] = v;
		hc_imap_walk(vmap(j, v), 0, UINT64_MAX, dump_one, d);
	}
	d->n[0] = 0;
}

static void same_maps(const struct dump *a, const struct dump *b)
{
	for (uint32_t v = 1; v <= NV; v++) {
		ck_assert_uint_eq(a->n[v], b->n[v]);
		for (size_t i = 0; i < a->n[v]; i++)
			ck_assert_msg(a->l[v][i] == b->l[v][i] && a->f[v][i] == b->f[v][i] &&
				      a->b[v][i] == b->b[v][i], "volume %u: entry %zu differs", v,
				      i);
	}
}

static struct hc_defrag_locality loc(uint32_t vid)
{
	struct hc_defrag_locality l;
	hc_defrag_locality(vmap(F.j, vid), vid, NL, &l);
	return l;
}

/* The whole contents of a file of the test directory. */
static char *slurp(const char *name, size_t *len)
{
	char *p = t_path(t_dir, name);
	char *buf = t_read_file(p, len);
	free(p);
	return buf;
}

static void add(struct hc_defrag_result *t, const struct hc_defrag_result *r)
{
	t->moved += r->moved;
	t->zeroed += r->zeroed;
	t->bytes += r->bytes;
	t->kept_shared += r->kept_shared;
	t->kept_eof += r->kept_eof;
	t->kept_busy += r->kept_busy;
	t->relocated += r->relocated;
	t->ovf_freed += r->ovf_freed;
	t->batches += r->batches;
}

static uint64_t ovf_used(void)
{
	struct hc_refcount_stats st;
	hc_refcount_stats(hc_journal_refcount(F.j), &st);
	return st.ovf_used;
}

static int count_ovf(void *arg, const struct hc_phys *p, uint32_t count)
{
	(void)count;
	*(uint64_t *)arg += p->file == HC_PHYS_OVERFLOW;
	return 0;
}

/* No overflow block is left reserved: every used one is referenced or pending. */
static void no_reserved(void)
{
	struct hc_refcount_stats st;
	uint64_t referenced = 0;
	hc_refcount_stats(hc_journal_refcount(F.j), &st);
	hc_refcount_walk(hc_journal_refcount(F.j), count_ovf, &referenced);
	ck_assert_uint_eq(st.ovf_used, referenced + st.ovf_pending);
}

static int swap_all(const struct hc_defrag_home_opts *o, const struct hc_defrag_io *io,
		    struct hc_defrag_result *tot)
{
	memset(tot, 0, sizeof(*tot));
	for (uint32_t v = 1; v <= NV; v++) {
		struct hc_defrag_result r;
		F.cur_vid = v;
		int err = hc_defrag_swap(F.j, v, NL * BS, o, io, &r, msg, sizeof(msg));
		add(tot, &r);
		no_reserved();
		if (err)
			return err;
	}
	return 0;
}

/* Passes of home until one moves nothing (as reconcile-defrag does). */
static int home_all(const struct hc_defrag_home_opts *o, const struct hc_defrag_io *io,
		    struct hc_defrag_result *tot, int *passes)
{
	memset(tot, 0, sizeof(*tot));
	for (*passes = 1;; ++*passes) {
		uint64_t moved = 0, kept = 0;
		for (uint32_t v = 1; v <= NV; v++) {
			struct hc_defrag_result r;
			F.cur_vid = v;
			int err = hc_defrag_home(F.j, v, F.vfd[v], NL * BS, o, io, &r, msg,
						 sizeof(msg));
			add(tot, &r);
			moved += r.moved + r.zeroed;
			kept += r.kept_shared;
			if (err)
				return err;
		}
		if ((o && o->dry_run) || !moved || !kept)
			return 0;
	}
}

/* Every maximal run of in-range non-ZERO entries has consecutive targets in one file. */
static void runs_consecutive(uint32_t vid)
{
	struct hc_imap *m = vmap(F.j, vid);
	uint64_t l, from = 0;
	struct hc_phys p, prev = { 0 };
	uint64_t prev_l = UINT64_MAX;
	while (!hc_imap_next(m, from, &l, &p) && l < NL) {
		if (!hc_phys_is_zero(&p) && !hc_phys_is_zero(&prev) && prev_l != UINT64_MAX &&
		    l == prev_l + 1)
			ck_assert_msg(p.file == prev.file && p.block == prev.block + 1,
				      "volume %u: blocks %lu and %lu not consecutive", vid,
				      (unsigned long)prev_l, (unsigned long)l);
		prev = p;
		prev_l = l;
		from = l + 1;
	}
}

/* ---- policy home ------------------------------------------------------------------ */

START_TEST(test_home_all)
{
	build(0);
	char *before = snapshot();
	struct hc_defrag_result r;
	int passes;
	struct hc_defrag_io io = offline_io();
	ck_assert_int_eq(home_all(NULL, &io, &r, &passes), 0);
	ck_assert_int_eq(passes, 2);	/* vol 1's block 60 waits for vol 3 */
	ck_assert_uint_eq(r.kept_shared, 1);
	ck_assert_uint_eq(r.zeroed, 4);
	ck_assert_uint_eq(r.moved, 32 + 8 + 1 + 1 + 16 + 8 + 2 + 8);
	ck_assert_uint_eq(r.relocated, 0);
	/* every overflow block went free, each counted once (42 is in one batch twice) */
	ck_assert_uint_eq(r.ovf_freed, 43);
	ck_assert_uint_eq(ovf_used(), 0);
	for (uint32_t v = 1; v <= NV; v++) {
		ck_assert_uint_eq(hc_imap_count(vmap(F.j, v)), 0);
		struct hc_defrag_locality l = loc(v);
		ck_assert_uint_eq(l.runs, 1);
		ck_assert_uint_eq(l.jump_sum, 0);
	}
	verify_ok(F.j);
	same_data(before);
	/* reopened: the same (empty) maps */
	hc_journal_close(F.j);
	F.j = jopen(0);
	verify_ok(F.j);
	for (uint32_t v = 1; v <= NV; v++)
		ck_assert_uint_eq(hc_imap_count(vmap(F.j, v)), 0);
	same_data(before);
	free(before);
}
END_TEST

START_TEST(test_home_eof)
{
	build(1);
	char *before = snapshot();
	struct hc_defrag_result r;
	int passes;
	struct hc_defrag_io io = offline_io();
	ck_assert_int_eq(home_all(NULL, &io, &r, &passes), 0);
	ck_assert_uint_ge(r.kept_eof, 1);
	struct hc_phys p;
	ck_assert_int_eq(hc_imap_lookup(vmap(F.j, 1), EOF_LBLK, &p), 0);
	ck_assert_uint_eq(hc_imap_count(vmap(F.j, 1)), 1);
	verify_ok(F.j);
	same_data(before);
	free(before);
}
END_TEST

/* ---- policy swap ------------------------------------------------------------------ */

START_TEST(test_swap_all)
{
	build(1);
	char *before = snapshot();
	struct dump d0, d1, d2;
	dump(F.j, &d0);
	struct hc_defrag_locality l0[NV + 1];
	for (uint32_t v = 1; v <= NV; v++)
		l0[v] = loc(v);
	size_t hl[NV + 1];
	char *home[NV + 1];
	for (uint32_t v = 1; v <= NV; v++) {
		char name[16];
		snprintf(name, sizeof(name), "vol%u", v);
		home[v] = slurp(name, &hl[v]);
	}

	struct hc_defrag_result r;
	struct hc_defrag_io io = offline_io();
	ck_assert_int_eq(swap_all(NULL, &io, &r), 0);
	/* vol 1: 0..31; vol 2: 10..25 and 40..47; vol 3: 0..7 */
	ck_assert_uint_eq(r.relocated, 32 + 16 + 8 + 8);
	ck_assert_uint_eq(r.bytes, r.relocated * BS);
	ck_assert_uint_eq(r.moved + r.zeroed + r.kept_shared + r.kept_busy, 0);
	ck_assert_uint_eq(r.kept_eof, 1);
	/* vol 1's old targets but perm(8..15) freed; those once vol 2 moved too */
	ck_assert_uint_eq(r.ovf_freed, 32);
	ck_assert_uint_eq(r.batches, 3);
	same_data(before);
	verify_ok(F.j);

	/* the entries stay, each on its own new block where it moved */
	dump(F.j, &d1);
	for (uint32_t v = 1; v <= NV; v++) {
		ck_assert_uint_eq(d1.n[v], d0.n[v]);
		runs_consecutive(v);
		struct hc_defrag_locality l = loc(v);
		ck_assert_uint_eq(l.entries, l0[v].entries);
		ck_assert_uint_lt(l.runs, l0[v].runs);
		ck_assert_uint_lt(l.jump_sum, l0[v].jump_sum);
	}
	/* untouched: the run in order, the isolated entries, ZERO, past the end */
	for (size_t i = 0; i < d0.n[1]; i++)
		if (d0.l[1][i] >= 40)
			ck_assert(d1.f[1][i] == d0.f[1][i] && d1.b[1][i] == d0.b[1][i]);
	for (size_t i = 0; i < d0.n[2]; i++)
		if (d0.f[2][i] == HC_PHYS_ZERO || d0.l[2][i] >= 55)
			ck_assert(d1.f[2][i] == d0.f[2][i] && d1.b[2][i] == d0.b[2][i]);
	/* no home file written */
	for (uint32_t v = 1; v <= NV; v++) {
		char name[16];
		size_t n;
		snprintf(name, sizeof(name), "vol%u", v);
		char *now = slurp(name, &n);
		ck_assert_uint_eq(n, hl[v]);
		ck_assert_msg(!memcmp(now, home[v], n), "home file %s written", name);
		free(now);
		free(home[v]);
	}

	/* a second pass has nothing to move */
	ck_assert_int_eq(swap_all(NULL, &io, &r), 0);
	ck_assert_uint_eq(r.relocated + r.batches + r.ovf_freed, 0);
	dump(F.j, &d2);
	same_maps(&d1, &d2);

	/* reopened: the same maps, the same data */
	hc_journal_close(F.j);
	F.j = jopen(0);
	verify_ok(F.j);
	dump(F.j, &d2);
	same_maps(&d1, &d2);
	same_data(before);
	free(before);
}
END_TEST

/* A shared target is copied, never written or freed: its other referrer reads it. */
START_TEST(test_swap_shared)
{
	build(0);
	char *before = snapshot();
	struct hc_defrag_result r;
	struct hc_defrag_io io = offline_io();
	F.cur_vid = 2;
	ck_assert_int_eq(hc_defrag_swap(F.j, 2, NL * BS, NULL, &io, &r, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(r.relocated, 16 + 8);
	ck_assert_uint_eq(r.ovf_freed, 0);	/* perm(8..15): vol 1 still points there */
	for (uint64_t i = 8; i < 16; i++) {
		struct hc_phys p = { .file = HC_PHYS_OVERFLOW, .block = perm(i) };
		ck_assert_uint_eq(hc_refcount_get(hc_journal_refcount(F.j), &p), 1);
	}
	/* vol 3's home blocks, the targets of 10..25, are not targets any more */
	for (uint64_t b = 20; b < 36; b++) {
		struct hc_phys p = { .file = 3, .block = b };
		ck_assert_uint_eq(hc_refcount_get(hc_journal_refcount(F.j), &p), 0);
	}
	verify_ok(F.j);
	same_data(before);
	/* vol 1 then frees them */
	F.cur_vid = 1;
	ck_assert_int_eq(hc_defrag_swap(F.j, 1, NL * BS, NULL, &io, &r, msg, sizeof(msg)), 0);
	ck_assert_uint_eq(r.relocated, 32);
	ck_assert_uint_eq(r.ovf_freed, 32);
	verify_ok(F.j);
	same_data(before);
	free(before);
}
END_TEST

/*
 * every (hc_odefrag_unshare): single entries and runs already in place move
 * too; afterwards every entry inside the size points into overflow.dat, and
 * every block reads the same, also after a reopen.
 */
START_TEST(test_swap_every)
{
	build(0);
	char *before = snapshot();
	struct hc_defrag_io io = offline_io();
	struct hc_defrag_home_opts o = { .every = 1 };
	struct hc_defrag_result r;
	struct dump d0, d;
	dump(F.j, &d0);
	ck_assert_int_eq(swap_all(&o, &io, &r), 0);
	dump(F.j, &d);
	size_t moved = 0;
	for (uint32_t v = 1; v <= NV; v++) {
		ck_assert_uint_eq(d.n[v], d0.n[v]);
		for (size_t i = 0; i < d.n[v]; i++) {
			if (d0.f[v][i] == HC_PHYS_ZERO || d0.l[v][i] >= NL)
				continue;
			ck_assert_uint_eq(d.f[v][i], HC_PHYS_OVERFLOW);
			moved++;
		}
	}
	ck_assert_uint_eq(r.relocated, moved);
	verify_ok(F.j);
	same_data(before);
	hc_journal_close(F.j);
	F.j = jopen(0);
	verify_ok(F.j);
	same_data(before);
	free(before);
}
END_TEST

/* ---- dry runs -------------------------------------------------------------------- */

START_TEST(test_dry_run)
{
	build(1);
	char *before = snapshot();
	struct dump d0, d1;
	dump(F.j, &d0);
	struct hc_journal_stats s0, s1;
	hc_journal_stats(F.j, &s0);
	size_t ol0, ol1;
	char *ovf0 = slurp("overflow.dat", &ol0);
	uint64_t used0 = ovf_used();

	struct hc_defrag_home_opts dry = { .dry_run = 1 };
	struct hc_defrag_io io = offline_io();
	struct hc_defrag_result sw, ho;
	int passes;
	ck_assert_int_eq(swap_all(&dry, &io, &sw), 0);
	ck_assert_int_eq(home_all(&dry, &io, &ho, &passes), 0);
	ck_assert_uint_eq(sw.relocated, 64);
	ck_assert_uint_eq(sw.ovf_freed, 0);
	ck_assert_uint_eq(ho.kept_shared, 1);
	ck_assert_uint_eq(ho.ovf_freed, 0);

	hc_journal_stats(F.j, &s1);
	ck_assert_uint_eq(s1.seq, s0.seq);
	ck_assert_uint_eq(ovf_used(), used0);
	dump(F.j, &d1);
	same_maps(&d0, &d1);
	char *ovf1 = slurp("overflow.dat", &ol1);
	ck_assert_uint_eq(ol0, ol1);
	ck_assert(!memcmp(ovf0, ovf1, ol0));
	same_data(before);

	/* the real runs do what the dry ones said */
	struct hc_defrag_result real;
	ck_assert_int_eq(swap_all(NULL, &io, &real), 0);
	ck_assert_uint_eq(real.relocated, sw.relocated);
	ck_assert_uint_eq(real.bytes, sw.bytes);
	ck_assert_uint_eq(real.batches, sw.batches);
	ck_assert_uint_eq(real.kept_eof, sw.kept_eof);
	same_data(before);
	free(ovf0);
	free(ovf1);
	free(before);
}
END_TEST

/* ---- batches ----------------------------------------------------------------------- */

START_TEST(test_swap_batches)
{
	build(0);
	char *before = snapshot();
	/* batch_blocks 1: a block a batch, and still each run lands in one extent */
	struct hc_defrag_home_opts one = { .batch_blocks = 1 };
	struct hc_defrag_io io = offline_io();
	struct hc_defrag_result r;
	ck_assert_int_eq(swap_all(&one, &io, &r), 0);
	ck_assert_uint_eq(r.relocated, 64);
	ck_assert_uint_eq(r.batches, 64);
	ck_assert_int_eq(F.batches, 64);
	for (uint32_t v = 1; v <= NV; v++)
		runs_consecutive(v);
	verify_ok(F.j);
	same_data(before);
	free(before);
}
END_TEST

/* Batches of 5: runs of 32, 16 + 8 and 8 spread over batches, two runs in one. */
START_TEST(test_swap_batches_shared)
{
	build(0);
	char *before = snapshot();
	struct hc_defrag_home_opts five = { .batch_blocks = 5 };
	struct hc_defrag_io io = offline_io();
	struct hc_defrag_result r;
	ck_assert_int_eq(swap_all(&five, &io, &r), 0);
	ck_assert_uint_eq(r.relocated, 64);
	ck_assert_uint_eq(r.batches, 7 + 5 + 2);	/* vol 1: 32; vol 2: 16 + 8; vol 3: 8 */
	for (uint32_t v = 1; v <= NV; v++)
		runs_consecutive(v);
	verify_ok(F.j);
	same_data(before);
	free(before);
}
END_TEST

START_TEST(test_swap_eintr)
{
	build(0);
	char *before = snapshot();
	struct hc_defrag_home_opts o = { .batch_blocks = 8 };
	struct hc_defrag_io io = offline_io();
	struct hc_defrag_result r;
	F.cur_vid = 1;
	F.stop_after = 1;
	ck_assert_int_eq(hc_defrag_swap(F.j, 1, NL * BS, &o, &io, &r, msg, sizeof(msg)),
			 -EINTR);
	/* 8 of the run of 32 moved, the other 24 reserved blocks given back */
	ck_assert_uint_eq(r.batches, 1);
	ck_assert_uint_eq(r.relocated, 8);
	no_reserved();
	verify_ok(F.j);
	same_data(before);
	/* after a reopen: that run is not in order, so all of it moves */
	hc_journal_close(F.j);
	F.j = jopen(0);
	F.stop_after = 0;
	ck_assert_int_eq(swap_all(&o, &io, &r), 0);
	ck_assert_uint_eq(r.relocated, 64);
	for (uint32_t v = 1; v <= NV; v++)
		runs_consecutive(v);
	verify_ok(F.j);
	same_data(before);
	free(before);
}
END_TEST

/* ---- online hooks --------------------------------------------------------------------- */

START_TEST(test_swap_online)
{
	build(0);
	hc_journal_close(F.j);
	F.j = jopen(1);			/* a checkpoint at every chance offline */
	char *before = snapshot();
	struct hc_journal_stats s0, s1;
	hc_journal_stats(F.j, &s0);
	struct hc_defrag_io io = online_io();
	struct hc_defrag_result r;
	F.busy_vid = 2;
	F.busy = 12;
	ck_assert_int_eq(swap_all(NULL, &io, &r), 0);
	ck_assert_uint_eq(r.kept_busy, 1);
	ck_assert_uint_eq(r.relocated, 63);
	ck_assert_int_eq(F.begins, F.ends);
	ck_assert_int_ge(F.begins, NV);
	ck_assert_int_ge(F.holds[HC_DEFRAG_HOLD_MAP], 3);
	ck_assert_int_ge(F.holds[HC_DEFRAG_HOLD_OVF], 3);
	hc_journal_stats(F.j, &s1);
	ck_assert_uint_eq(s1.checkpoints, s0.checkpoints);	/* online: the daemon's timer */
	struct hc_phys p;
	ck_assert_int_eq(hc_imap_lookup(vmap(F.j, 2), 12, &p), 0);
	ck_assert(p.file == 3 && p.block == (2 * 5 + 3) % 16 + 20);
	verify_ok(F.j);
	same_data(before);

	/* begin ends the pass: nothing done, no end */
	F.begin_stop = 1;
	F.begins = F.ends = 0;
	F.busy_vid = 0;
	ck_assert_int_eq(swap_all(NULL, &io, &r), 0);
	ck_assert_uint_eq(r.relocated + r.batches, 0);
	ck_assert_int_eq(F.stops, NV);
	ck_assert_int_eq(F.begins + F.ends, 0);

	/* offline, the same journal checkpoints */
	struct hc_defrag_io off = offline_io();
	ck_assert_int_eq(swap_all(NULL, &off, &r), 0);
	ck_assert_uint_eq(r.relocated, 16);	/* vol 2's 10..25, 12 back in the run */
	hc_journal_stats(F.j, &s1);
	ck_assert_uint_gt(s1.checkpoints, s0.checkpoints);
	verify_ok(F.j);
	same_data(before);
	free(before);
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------- */

START_TEST(test_swap_errors)
{
	build(0);
	char *before = snapshot();
	struct dump d0, d1;
	dump(F.j, &d0);
	uint64_t used0 = ovf_used();
	struct hc_defrag_io io = offline_io();
	struct hc_defrag_result r;

	/* a target that cannot be read */
	F.hide = 3;
	ck_assert_int_eq(hc_defrag_swap(F.j, 2, NL * BS, NULL, &io, &r, msg, sizeof(msg)),
			 -ENOENT);
	ck_assert_msg(strstr(msg, "volume id 3") && strstr(msg, "no such file"), "%s", msg);
	ck_assert_uint_eq(ovf_used(), used0);	/* the reserved blocks went back */
	dump(F.j, &d1);
	same_maps(&d0, &d1);
	F.hide = -1;

	/* overflow.dat that cannot be written */
	int ofd = F.ofd;
	char *p = t_path(t_dir, "overflow.dat");
	F.ofd = open(p, O_RDONLY | O_CLOEXEC);
	free(p);
	ck_assert_int_ge(F.ofd, 0);
	ck_assert_int_eq(hc_defrag_swap(F.j, 1, NL * BS, NULL, &io, &r, msg, sizeof(msg)),
			 -EBADF);
	ck_assert_msg(strstr(msg, "writing blocks") && strstr(msg, "overflow.dat"), "%s", msg);
	close(F.ofd);
	F.ofd = ofd;
	ck_assert_uint_eq(ovf_used(), used0);
	dump(F.j, &d1);
	same_maps(&d0, &d1);
	verify_ok(F.j);
	same_data(before);

	/* and then it works */
	ck_assert_int_eq(swap_all(NULL, &io, &r), 0);
	ck_assert_uint_eq(r.relocated, 64);
	same_data(before);
	free(before);
}
END_TEST

/* ---- crashes ----------------------------------------------------------------------------- */

/*
 * SIGKILL at the n-th hold(on) of a run of swap with batches of 8 (the
 * holds bracket the allocation, the re-pointing after the sync, and the
 * punch after the commit), n = 1, 2, 3, ..., each run continuing where
 * the last died, until one gets to the end; after each, reopened: the data
 * reads the same and the counts verify.
 */
START_TEST(test_swap_crash)
{
	hc_log_set_level(LOG_ERR);
	build(0);
	char *before = snapshot();
	hc_journal_close(F.j);
	F.j = NULL;
	int finished = 0, killed = 0;
	for (int round = 0; round < 60 && !finished; round++) {
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			struct hc_journal_opts o = { .name = t_dir };
			if (hc_journal_open(F.dfd, &o, &F.j, msg, sizeof(msg)))
				_exit(2);
			F.kill_at = 1 + round;
			struct hc_defrag_home_opts ho = { .batch_blocks = 8 };
			struct hc_defrag_io io = offline_io();
			io.hold = hold;
			struct hc_defrag_result r;
			_exit(swap_all(&ho, &io, &r) ? 3 : 0);
		}
		int st;
		ck_assert_int_eq(waitpid(pid, &st, 0), pid);
		ck_assert_msg((WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL) ||
			      (WIFEXITED(st) && WEXITSTATUS(st) == 0), "round %d: status %d",
			      round, st);
		finished = WIFEXITED(st);
		killed += !finished;
		F.j = jopen(0);
		verify_ok(F.j);
		same_data(before);
		hc_journal_close(F.j);
		F.j = NULL;
	}
	ck_assert_msg(finished, "swap never got to the end");
	ck_assert_int_ge(killed, 9);	/* vol 1's 32 alone take 4 batches, 9 holds */
	F.j = jopen(0);
	for (uint32_t v = 1; v <= NV; v++)
		runs_consecutive(v);
	free(before);
}
END_TEST

/* A TCase over the fixture with its tests (NULL-terminated). */
static void add_case(Suite *s, const char *name, int timeout, ...)
{
	TCase *tc = tcase_create(name);
	t_tcase_fixtures(tc, timeout);
	tcase_add_checked_fixture(tc, setup, teardown);
	va_list ap;
	va_start(ap, timeout);
	for (const TTest *t; (t = va_arg(ap, const TTest *));)
		tcase_add_test(tc, t);
	va_end(ap);
	suite_add_tcase(s, tc);
}

static Suite *defrag_suite(void)
{
	Suite *s = suite_create("defrag");
	add_case(s, "home", 60, test_home_all, test_home_eof, NULL);
	add_case(s, "swap", 60, test_swap_all, test_swap_shared, test_swap_every, NULL);
	add_case(s, "dry_run", 60, test_dry_run, NULL);
	add_case(s, "batches", 60, test_swap_batches, test_swap_batches_shared, test_swap_eintr,
		 NULL);
	add_case(s, "online", 60, test_swap_online, NULL);
	add_case(s, "errors", 60, test_swap_errors, NULL);
	add_case(s, "crash", 120, test_swap_crash, NULL);
	return s;
}

int main(void)
{
	return t_run_suite(defrag_suite());
}
