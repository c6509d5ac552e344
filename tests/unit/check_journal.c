// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of swap-reconcile/journal.c: persistence of the maps, counts
 * and overflow allocator through meta.log and meta.ckpt.
 *
 * A deterministic workload (op number = record sequence) of map sets to
 * overflow blocks carrying a data tag, to other volumes' home blocks and to
 * ZERO, copies of other entries (shared targets) and clears, is checked
 * against a model after every reopen.  Covered: round trips, uncommitted
 * records lost and nothing else, checkpoints with records buffered across
 * them, the torn tail cut at every byte of the last batch, a batch torn out
 * of page order, a flipped bit or a re-sealed wrong sequence in the middle
 * refused with the offset and nothing written, truncated / corrupt /
 * self-contradicting checkpoints refused, the crash windows of a checkpoint,
 * I4's delayed reuse of freed blocks, concurrent appenders and committers,
 * SIGKILL of a writer at random moments (every committed record survives
 * and every overflow block holds its data), and the time to open a state of
 * a million indirections.
 */
#include "config.h"

#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "hecache/errors.h"
#include "hecache/format.h"
#include "journal.h"
#include "log.h"
#include "t_helpers.h"
#include "util.h"

#define QUICK(c)                                                               \
	do {                                                                   \
		if (!(c))                                                      \
			ck_abort_msg("%s:%d: %s failed", __FILE__, __LINE__, #c); \
	} while (0)

#define NV 3		/* volumes 1..NV */
#define NL 64		/* logical blocks 0..NL-1 of each */

static char msg[512];
static int dirfd_ = -1;

static int jopen(uint64_t ckpt_bytes, struct hc_journal **j)
{
	if (dirfd_ < 0) {
		dirfd_ = open(t_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ck_assert_int_ge(dirfd_, 0);
	}
	struct hc_journal_opts o = { .name = t_dir, .ckpt_bytes = ckpt_bytes };
	*j = NULL;
	return hc_journal_open(dirfd_, &o, j, msg, sizeof(msg));
}

static struct hc_journal *jopen_ok(uint64_t ckpt_bytes)
{
	struct hc_journal *j;
	int r = jopen(ckpt_bytes, &j);
	ck_assert_msg(r == 0, "open: %d %s", r, msg);
	ck_assert_ptr_nonnull(j);
	return j;
}

static struct hc_imap *vmap(struct hc_journal *j, uint32_t vol)
{
	struct hc_imap *m = NULL;
	QUICK(hc_journal_imap(j, vol, &m) == 0);
	return m;
}

static uint64_t jseq(struct hc_journal *j)
{
	struct hc_journal_stats st;
	hc_journal_stats(j, &st);
	return st.seq;
}

static void verify_ok(struct hc_journal *j)
{
	char m[256];
	int r = hc_journal_verify(j, m, sizeof(m));
	ck_assert_msg(r == 0, "verify: %s", m);
}

static char *fpath(const char *name)
{
	return t_path(t_dir, name);
}

/* ---- the workload and its model ---------------------------------------- */

enum { OP_OVF, OP_HOME, OP_ZERO, OP_COPY, OP_CLEAR, OP_CLEAR_RANGE };

struct op {
	int kind;
	uint32_t v, v2;
	uint64_t l, b, count;
};

static void gen_op(uint64_t seed, uint64_t seq, struct op *o)
{
	uint64_t r = hc_mix64(seed * 0x9E3779B97F4A7C15ull + seq);
	static const int kinds[10] = { OP_OVF, OP_OVF, OP_OVF, OP_HOME, OP_HOME,
				       OP_ZERO, OP_COPY, OP_COPY, OP_CLEAR, OP_CLEAR_RANGE };
	o->kind = kinds[(r >> 16) % 10];
	o->v = 1 + (uint32_t)(r % NV);
	o->v2 = 1 + (o->v + (uint32_t)((r >> 24) % (NV - 1))) % NV;	/* != v */
	o->l = (r >> 8) % NL;
	o->b = (r >> 32) % NL;
	o->count = 1 + (r >> 40) % 16;
}

/* What the model knows of a block. */
enum { D_HOME, D_ZERO, D_SHARE, D_OVF };
struct desc {
	int kind;
	uint32_t file;
	uint64_t block;	/* SHARE: block; OVF: tag */
};

struct model {
	struct desc d[NV + 1][NL];
};

static void model_apply(struct model *md, const struct op *o, uint64_t seq)
{
	struct desc *t = &md->d[o->v][o->l];
	switch (o->kind) {
	case OP_OVF:
		*t = (struct desc){ D_OVF, HC_PHYS_OVERFLOW, seq };
		break;
	case OP_HOME:
		*t = (struct desc){ D_SHARE, o->v2, o->b };
		break;
	case OP_ZERO:
		*t = (struct desc){ D_ZERO, HC_PHYS_ZERO, 0 };
		break;
	case OP_COPY: {
		struct desc s = md->d[o->v2][o->b];
		if (s.kind == D_HOME)
			s = (struct desc){ D_SHARE, o->v2, o->b };
		if (s.kind == D_SHARE && s.file == o->v && s.block == o->l)
			s = (struct desc){ D_HOME, 0, 0 };
		*t = s;
		break;
	}
	case OP_CLEAR:
		t->kind = D_HOME;
		break;
	case OP_CLEAR_RANGE:
		for (uint64_t k = o->l; k < NL && k < o->l + o->count; k++)
			md->d[o->v][k].kind = D_HOME;
		break;
	}
}

static void model_build(struct model *md, uint64_t seed, uint64_t upto)
{
	memset(md, 0, sizeof(*md));
	for (uint64_t s = 1; s <= upto; s++) {
		struct op o;
		gen_op(seed, s, &o);
		model_apply(md, &o, s);
	}
}

static void tag_block(void *buf, uint64_t tag)
{
	uint64_t *w = buf;
	for (size_t i = 0; i < HC_BLOCK_SIZE / 8; i++)
		w[i] = tag ^ i;
}

/*
 * Runs ops [first, first + n) as one batch: overflow data first (written and
 * synced when ovf_fd >= 0: I4), then the records.  Returns the last seq.
 */
static uint64_t run_batch(struct hc_journal *j, uint64_t seed, uint64_t first, uint64_t n,
			  int ovf_fd)
{
	uint64_t blk[64];
	QUICK(n <= 64);
	static char *buf;
	if (!buf)
		buf = t_alloc_aligned(HC_BLOCK_SIZE);
	struct op o;
	for (uint64_t i = 0; i < n; i++) {
		gen_op(seed, first + i, &o);
		if (o.kind != OP_OVF)
			continue;
		QUICK(hc_refcount_alloc(hc_journal_refcount(j), 1, &blk[i]) == 0);
		if (ovf_fd >= 0) {
			tag_block(buf, first + i);
			QUICK(pwrite(ovf_fd, buf, HC_BLOCK_SIZE, (off_t)(blk[i] * HC_BLOCK_SIZE)) ==
			      HC_BLOCK_SIZE);
		}
	}
	if (ovf_fd >= 0)
		QUICK(fdatasync(ovf_fd) == 0);
	uint64_t seq = 0;
	for (uint64_t i = 0; i < n; i++) {
		gen_op(seed, first + i, &o);
		struct hc_imap *m = vmap(j, o.v);
		struct hc_phys p;
		int r;
		switch (o.kind) {
		case OP_OVF:
			p = (struct hc_phys){ HC_PHYS_OVERFLOW, blk[i] };
			r = hc_journal_map_set(j, m, o.l, &p, &seq);
			break;
		case OP_HOME:
			p = (struct hc_phys){ o.v2, o.b };
			r = hc_journal_map_set(j, m, o.l, &p, &seq);
			break;
		case OP_ZERO:
			p = (struct hc_phys){ HC_PHYS_ZERO, 0 };
			r = hc_journal_map_set(j, m, o.l, &p, &seq);
			break;
		case OP_COPY:
			if (hc_imap_lookup(vmap(j, o.v2), o.b, &p))
				p = (struct hc_phys){ o.v2, o.b };
			if (p.file == o.v && p.block == o.l)
				r = hc_journal_map_clear(j, m, o.l, 1, &seq);
			else
				r = hc_journal_map_set(j, m, o.l, &p, &seq);
			break;
		case OP_CLEAR:
			r = hc_journal_map_clear(j, m, o.l, 1, &seq);
			break;
		default:
			r = hc_journal_map_clear(j, m, o.l, o.count, &seq);
			break;
		}
		QUICK(r == 0);
		QUICK(seq == first + i);
	}
	return seq;
}

/* Runs ops first..last in batches of `batch`, committing each. */
static void run_ops(struct hc_journal *j, uint64_t seed, uint64_t first, uint64_t last,
		    uint64_t batch, int commit)
{
	for (uint64_t s = first; s <= last; s += batch) {
		uint64_t n = HC_MIN(batch, last - s + 1);
		run_batch(j, seed, s, n, -1);
		if (commit)
			QUICK(hc_journal_commit(j) == 0);
	}
}

/* Checks the journal's state against the model (and data tags when ovf_fd >= 0). */
static void model_check(struct hc_journal *j, const struct model *md, int ovf_fd)
{
	static char *buf, *want;
	if (!buf) {
		buf = t_alloc_aligned(HC_BLOCK_SIZE);
		want = t_alloc_aligned(HC_BLOCK_SIZE);
	}
	uint64_t tagblk[NV * NL][2];
	size_t ntags = 0;
	for (uint32_t v = 1; v <= NV; v++) {
		struct hc_imap *m = vmap(j, v);
		for (uint64_t l = 0; l < NL; l++) {
			const struct desc *d = &md->d[v][l];
			struct hc_phys p;
			int r = hc_imap_lookup(m, l, &p);
			if (d->kind == D_HOME) {
				ck_assert_msg(r == -ENOENT, "%u:%llu should be home, is %u:%llu", v,
					      (unsigned long long)l, p.file,
					      (unsigned long long)p.block);
				continue;
			}
			ck_assert_msg(r == 0, "%u:%llu missing (model kind %d)", v,
				      (unsigned long long)l, d->kind);
			if (d->kind == D_ZERO) {
				QUICK(hc_phys_is_zero(&p));
			} else if (d->kind == D_SHARE) {
				ck_assert_msg(p.file == d->file && p.block == d->block,
					      "%u:%llu -> %u:%llu, model %u:%llu", v,
					      (unsigned long long)l, p.file,
					      (unsigned long long)p.block, d->file,
					      (unsigned long long)d->block);
			} else {
				QUICK(p.file == HC_PHYS_OVERFLOW);
				/* One tag, one block, and back. */
				for (size_t k = 0; k < ntags; k++)
					QUICK((tagblk[k][0] == d->block) == (tagblk[k][1] == p.block));
				tagblk[ntags][0] = d->block;
				tagblk[ntags++][1] = p.block;
				if (ovf_fd >= 0) {
					ssize_t n = pread(ovf_fd, buf, HC_BLOCK_SIZE,
							  (off_t)(p.block * HC_BLOCK_SIZE));
					tag_block(want, d->block);
					ck_assert_msg(n == HC_BLOCK_SIZE &&
						      !memcmp(buf, want, HC_BLOCK_SIZE),
						      "%u:%llu -> overflow %llu does not hold the data of "
						      "record %llu", v, (unsigned long long)l,
						      (unsigned long long)p.block,
						      (unsigned long long)d->block);
				}
			}
		}
	}
	verify_ok(j);
}

/* ---- state snapshots ------------------------------------------------------ */

struct snap {
	uint64_t *v;	/* (vol, lblk, file, block) quads, then (file, block, count) */
	size_t n, cap;
	uint64_t seq, hwm;
};

static void snap_push(struct snap *s, uint64_t x)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 1024;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		QUICK(s->v != NULL);
	}
	s->v[s->n++] = x;
}

static int snap_entry(void *arg, uint64_t lblk, const struct hc_phys *p)
{
	struct snap *s = arg;
	snap_push(s, lblk);
	snap_push(s, p->file);
	snap_push(s, p->block);
	return 0;
}

static int snap_rc(void *arg, const struct hc_phys *p, uint32_t count)
{
	struct snap *s = arg;
	snap_push(s, p->file);
	snap_push(s, p->block);
	snap_push(s, count);
	return 0;
}

static int cmp_trip(const void *a, const void *b)
{
	return memcmp(a, b, 3 * sizeof(uint64_t));
}

static void snap_take(struct hc_journal *j, struct snap *s, uint32_t maxvol)
{
	memset(s, 0, sizeof(*s));
	for (uint32_t v = 0; v <= maxvol; v++) {
		snap_push(s, 0xFFFF0000u + v);
		hc_imap_walk(vmap(j, v), 0, UINT64_MAX, snap_entry, s);
	}
	size_t rc0 = s->n;
	hc_refcount_walk(hc_journal_refcount(j), snap_rc, s);
	qsort(s->v + rc0, (s->n - rc0) / 3, 3 * sizeof(uint64_t), cmp_trip);
	s->seq = jseq(j);
	struct hc_refcount_stats st;
	hc_refcount_stats(hc_journal_refcount(j), &st);
	s->hwm = st.ovf_hwm;
}

static void snap_eq(const struct snap *a, const struct snap *b)
{
	ck_assert_uint_eq(a->seq, b->seq);
	ck_assert_uint_eq(a->n, b->n);
	ck_assert_msg(!memcmp(a->v, b->v, a->n * sizeof(uint64_t)), "states differ");
}

static void snap_free(struct snap *s)
{
	free(s->v);
	s->v = NULL;
}

/* Reopens and checks the state is exactly s. */
static void reopen_eq(const struct snap *s, uint32_t maxvol)
{
	struct hc_journal *j = jopen_ok(0);
	struct snap t;
	snap_take(j, &t, maxvol);
	snap_eq(&t, s);
	verify_ok(j);
	snap_free(&t);
	hc_journal_close(j);
}

/* ---- basics ----------------------------------------------------------------- */

START_TEST(test_journal_fresh)
{
	struct hc_journal *j = jopen_ok(0);
	char *log = fpath(HC_JOURNAL_FILE), *ck = fpath(HC_CKPT_FILE);
	ck_assert_int_eq(t_file_size(log), 0);
	ck_assert_int_eq(t_file_size(ck), -1);
	struct hc_journal_stats st;
	hc_journal_stats(j, &st);
	ck_assert_uint_eq(st.seq, 0);
	ck_assert_uint_eq(st.durable, 0);
	ck_assert_int_eq(hc_journal_commit(j), 0);	/* nothing to do */
	ck_assert_int_eq(t_file_size(log), 0);
	/* Bad arguments change nothing. */
	struct hc_imap *m = vmap(j, 1), *dummy;
	ck_assert_int_eq(hc_journal_imap(j, HC_PHYS_ZERO, &dummy), -EINVAL);
	ck_assert_int_eq(hc_journal_map_clear(j, m, 0, 0, NULL), -EINVAL);
	struct hc_phys self = { 1, 5 }, nores = { HC_PHYS_OVERFLOW, 3 }, bad = { 2, 1ull << 41 };
	ck_assert_int_eq(hc_journal_map_set(j, m, 5, &self, NULL), -EINVAL);
	ck_assert_int_eq(hc_journal_map_set(j, m, 5, &nores, NULL), -EINVAL);
	ck_assert_int_eq(hc_journal_map_set(j, m, 5, &bad, NULL), -EINVAL);
	ck_assert_uint_eq(jseq(j), 0);
	ck_assert_uint_eq(hc_imap_count(m), 0);
	/* Empty checkpoint round trip. */
	ck_assert_int_eq(hc_journal_checkpoint(j), 0);
	ck_assert_int_ge(t_file_size(ck), (off_t)sizeof(struct hc_ckpt_disk));
	hc_journal_close(j);
	j = jopen_ok(0);
	ck_assert_uint_eq(jseq(j), 0);
	hc_journal_close(j);
	hc_journal_close(NULL);
	free(log);
	free(ck);
}
END_TEST

START_TEST(test_journal_roundtrip)
{
	uint64_t seed = 11;
	struct hc_journal *j = jopen_ok(0);
	run_ops(j, seed, 1, 3000, 40, 1);
	struct model md;
	model_build(&md, seed, 3000);
	model_check(j, &md, -1);
	struct snap s;
	snap_take(j, &s, NV);
	ck_assert_uint_eq(s.seq, 3000);
	char *log = fpath(HC_JOURNAL_FILE);
	ck_assert_int_eq(t_file_size(log), 3000 * 64);
	hc_journal_close(j);
	reopen_eq(&s, NV);
	snap_free(&s);

	/* And on from there, across several reopens. */
	for (uint64_t k = 0; k < 3; k++) {
		j = jopen_ok(0);
		uint64_t from = 3001 + k * 500;
		run_ops(j, seed, from, from + 499, 17, 1);
		hc_journal_close(j);
	}
	j = jopen_ok(0);
	ck_assert_uint_eq(jseq(j), 4500);
	model_build(&md, seed, 4500);
	model_check(j, &md, -1);
	struct hc_journal_stats st;
	hc_journal_stats(j, &st);
	ck_assert_uint_eq(st.replayed, 4500);
	ck_assert_uint_eq(st.torn_bytes, 0);
	hc_journal_close(j);
	free(log);
}
END_TEST

START_TEST(test_journal_uncommitted)
{
	uint64_t seed = 12;
	struct hc_journal *j = jopen_ok(0);
	run_ops(j, seed, 1, 200, 10, 1);
	struct snap s;
	snap_take(j, &s, NV);
	run_ops(j, seed, 201, 260, 10, 0);	/* never committed */
	ck_assert_uint_eq(jseq(j), 260);
	struct hc_journal_stats st;
	hc_journal_stats(j, &st);
	ck_assert_uint_eq(st.durable, 200);
	ck_assert_uint_eq(st.buffered, 60);
	hc_journal_close(j);
	reopen_eq(&s, NV);
	snap_free(&s);
}
END_TEST

/* The barrier: what it saw of the log when called, and its answer. */
struct bar {
	int calls, fail;
	off_t log_size_seen;	/* meta.log's size at the last call */
};

static int bar_fn(void *arg)
{
	struct bar *b = arg;
	char *log = fpath(HC_JOURNAL_FILE);
	b->calls++;
	b->log_size_seen = t_file_size(log);
	free(log);
	return b->fail ? -EIO : 0;
}

START_TEST(test_journal_barrier)
{
	uint64_t seed = 13;
	struct hc_journal *j = jopen_ok(0);
	struct bar b = { 0 };
	hc_journal_set_barrier(j, bar_fn, &b);
	run_ops(j, seed, 1, 100, 50, 0);
	ck_assert_int_eq(b.calls, 0);		/* appends do not call it */
	QUICK(hc_journal_commit(j) == 0);
	ck_assert_int_eq(b.calls, 1);		/* once per commit ... */
	ck_assert_int_eq(b.log_size_seen, 0);	/* ... before the batch is written */
	QUICK(hc_journal_commit(j) == 0);
	ck_assert_int_eq(b.calls, 1);		/* nothing to commit: not called */
	run_ops(j, seed, 101, 150, 50, 0);
	QUICK(hc_journal_checkpoint(j) == 0);
	ck_assert_int_eq(b.calls, 2);		/* and once per checkpoint */
	/* A failing barrier fails the commit, writes nothing, and sticks. */
	run_ops(j, seed, 151, 160, 50, 0);
	char *log = fpath(HC_JOURNAL_FILE);
	off_t before = t_file_size(log);
	b.fail = 1;
	ck_assert_int_eq(hc_journal_commit(j), -EIO);
	ck_assert_int_eq(t_file_size(log), before);
	b.fail = 0;
	ck_assert_int_eq(hc_journal_commit(j), -EIO);
	hc_journal_close(j);
	/* What reached the disk: the checkpoint's 150 records, not the rest. */
	j = jopen_ok(0);
	ck_assert_uint_eq(jseq(j), 150);
	hc_journal_close(j);
	free(log);
}
END_TEST

START_TEST(test_journal_checkpoint)
{
	uint64_t seed = 13;
	char *log = fpath(HC_JOURNAL_FILE), *ck = fpath(HC_CKPT_FILE);
	struct hc_journal *j = jopen_ok(0);
	run_ops(j, seed, 1, 1000, 25, 1);
	run_ops(j, seed, 1001, 1100, 25, 0);	/* buffered across the checkpoint */
	ck_assert_int_eq(hc_journal_checkpoint(j), 0);
	ck_assert_int_eq(t_file_size(log), 0);
	struct hc_journal_stats st;
	hc_journal_stats(j, &st);
	ck_assert_uint_eq(st.ckpt_seq, 1100);
	ck_assert_uint_eq(st.durable, 1100);
	ck_assert_uint_eq(st.buffered, 0);
	run_ops(j, seed, 1101, 1500, 25, 1);
	ck_assert_int_eq(t_file_size(log), 400 * 64);
	struct snap s;
	snap_take(j, &s, NV);
	hc_journal_close(j);
	reopen_eq(&s, NV);
	snap_free(&s);

	/* Uncommitted records that a checkpoint took are durable. */
	j = jopen_ok(0);
	run_ops(j, seed, 1501, 1600, 25, 0);
	ck_assert_int_eq(hc_journal_checkpoint(j), 0);
	snap_take(j, &s, NV);
	hc_journal_close(j);
	reopen_eq(&s, NV);
	snap_free(&s);
	j = jopen_ok(0);
	struct model md;
	model_build(&md, seed, 1600);
	model_check(j, &md, -1);
	hc_journal_stats(j, &st);
	ck_assert_uint_eq(st.replayed, 0);
	hc_journal_close(j);

	/* maybe_checkpoint fires past the threshold only. */
	j = jopen_ok(64 * 100);
	run_ops(j, seed, 1601, 1650, 10, 1);
	ck_assert_int_eq(hc_journal_maybe_checkpoint(j), 0);
	run_ops(j, seed, 1651, 1700, 10, 1);
	ck_assert_int_eq(hc_journal_maybe_checkpoint(j), 1);
	ck_assert_int_eq(t_file_size(log), 0);
	hc_journal_stats(j, &st);
	ck_assert_uint_eq(st.ckpt_seq, 1700);
	ck_assert_uint_eq(st.checkpoints, 1);
	hc_journal_close(j);
	j = jopen_ok(0);
	model_build(&md, seed, 1700);
	model_check(j, &md, -1);
	hc_journal_close(j);
	free(log);
	free(ck);
}
END_TEST

/* ---- torn tails and corruption -------------------------------------------- */

/* Builds 300 committed ops, then a last batch of 5, with snapshots after each op. */
static void build_last_batch(uint64_t seed, struct snap snaps[6], int checkpoint)
{
	struct hc_journal *j = jopen_ok(0);
	run_ops(j, seed, 1, 300, 30, 1);
	if (checkpoint) {
		ck_assert_int_eq(hc_journal_checkpoint(j), 0);
		run_ops(j, seed, 301, 300, 1, 1);
	}
	snap_take(j, &snaps[0], NV);
	for (int i = 1; i <= 5; i++) {
		run_batch(j, seed, 300 + (uint64_t)i, 1, -1);
		snap_take(j, &snaps[i], NV);
	}
	ck_assert_int_eq(hc_journal_commit(j), 0);
	hc_journal_close(j);
}

static void torn_at_every_byte(int checkpoint)
{
	struct snap snaps[6];
	build_last_batch(21, snaps, checkpoint);
	char *log = fpath(HC_JOURNAL_FILE);
	size_t len;
	char *orig = t_read_file(log, &len);
	size_t start = len - 5 * 64;
	ck_assert_uint_eq(start, checkpoint ? 0 : 300 * 64);
	for (size_t cut = start; cut < len; cut++) {
		t_write_file(log, orig, cut);
		struct hc_journal *j = jopen_ok(0);
		size_t whole = (cut - start) / 64;
		struct snap t;
		snap_take(j, &t, NV);
		snap_eq(&t, &snaps[whole]);
		snap_free(&t);
		struct hc_journal_stats st;
		hc_journal_stats(j, &st);
		QUICK(st.torn_bytes == (cut - start) % 64);
		QUICK(st.log_bytes == start + whole * 64);
		verify_ok(j);
		hc_journal_close(j);
		QUICK(t_file_size(log) == (off_t)(start + whole * 64));
	}
	/* After a cut, the log goes on from where it was cut. */
	t_write_file(log, orig, start + 100);
	struct hc_journal *j = jopen_ok(0);
	ck_assert_uint_eq(jseq(j), 301);
	run_batch(j, 21, 302, 4, -1);
	ck_assert_int_eq(hc_journal_commit(j), 0);
	hc_journal_close(j);
	reopen_eq(&snaps[5], NV);
	for (int i = 0; i < 6; i++)
		snap_free(&snaps[i]);
	free(orig);
	free(log);
}

START_TEST(test_journal_torn_tail)
{
	torn_at_every_byte(0);
}
END_TEST

START_TEST(test_journal_torn_after_checkpoint)
{
	torn_at_every_byte(1);
}
END_TEST

/* The page cache wrote a later page of the last batch but not an earlier one. */
START_TEST(test_journal_torn_out_of_order)
{
	struct snap snaps[6];
	build_last_batch(22, snaps, 0);
	char *log = fpath(HC_JOURNAL_FILE);
	size_t len;
	char *orig = t_read_file(log, &len);
	size_t start = len - 5 * 64;
	for (int hole = 0; hole < 4; hole++) {
		char *b = malloc(len);
		memcpy(b, orig, len);
		memset(b + start + (size_t)hole * 64, 0, 64);	/* never reached the disk */
		t_write_file(log, b, len);
		struct hc_journal *j = jopen_ok(0);
		struct snap t;
		snap_take(j, &t, NV);
		snap_eq(&t, &snaps[hole]);
		snap_free(&t);
		hc_journal_close(j);
		ck_assert_int_eq(t_file_size(log), (off_t)(start + (size_t)hole * 64));
		free(b);
	}
	for (int i = 0; i < 6; i++)
		snap_free(&snaps[i]);
	free(orig);
	free(log);
}
END_TEST

/* Refused: the open fails naming the file and offset, and writes nothing. */
static void assert_refused(int want, const char *file, uint64_t off)
{
	char *list0 = t_dir_listing(t_dir);
	char *names[2] = { fpath(HC_JOURNAL_FILE), fpath(HC_CKPT_FILE) };
	size_t len0[2];
	char *data0[2];
	for (int i = 0; i < 2; i++)
		data0[i] = t_file_size(names[i]) >= 0 ? t_read_file(names[i], &len0[i]) : NULL;
	struct hc_journal *j;
	int r = jopen(0, &j);
	ck_assert_msg(r == want, "open = %d (%s), want %d", r, msg, want);
	ck_assert_ptr_null(j);
	ck_assert_msg(strstr(msg, file) != NULL, "message does not name %s: %s", file, msg);
	char at[64];
	snprintf(at, sizeof(at), "offset %llu", (unsigned long long)off);
	ck_assert_msg(strstr(msg, at) != NULL, "message does not say %s: %s", at, msg);
	ck_assert_ptr_null(strchr(msg, '\n'));
	char *list1 = t_dir_listing(t_dir);
	ck_assert_str_eq(list0, list1);
	for (int i = 0; i < 2; i++) {
		if (data0[i]) {
			size_t l;
			char *d = t_read_file(names[i], &l);
			ck_assert_uint_eq(l, len0[i]);
			ck_assert_int_eq(t_memdiff(d, data0[i], l), -1);
			free(d);
			free(data0[i]);
		}
		free(names[i]);
	}
	free(list0);
	free(list1);
}

static void flip(const char *name, uint64_t off, uint8_t mask)
{
	char *p = fpath(name);
	int fd = open(p, O_RDWR);
	ck_assert_int_ge(fd, 0);
	uint8_t b;
	ck_assert_int_eq(pread(fd, &b, 1, (off_t)off), 1);
	b ^= mask;
	ck_assert_int_eq(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
	free(p);
}

START_TEST(test_journal_corrupt_middle)
{
	struct snap snaps[6];
	build_last_batch(23, snaps, 0);
	char *log = fpath(HC_JOURNAL_FILE);
	size_t len;
	char *orig = t_read_file(log, &len);
	/* Any bit of a record in an earlier batch; the first record too. */
	static const uint64_t recs[] = { 0, 1, 29, 30, 150, 299 };
	for (size_t i = 0; i < sizeof(recs) / sizeof(recs[0]); i++) {
		for (int byte = 0; byte < 64; byte += 9) {
			t_write_file(log, orig, len);
			flip(HC_JOURNAL_FILE, recs[i] * 64 + (uint64_t)byte, 0x04);
			assert_refused(-HC_ECORRUPT, HC_JOURNAL_FILE, recs[i] * 64);
		}
	}
	/* An intact record with the wrong sequence number is never a crash. */
	t_write_file(log, orig, len);
	struct hc_jrec_disk d;
	memcpy(&d, orig + 100 * 64, 64);
	d.seq = htole64(le64toh(d.seq) + 1);
	d.checksum = htole64(XXH64(&d, offsetof(struct hc_jrec_disk, checksum), 0));
	char *p = malloc(len);
	memcpy(p, orig, len);
	memcpy(p + 100 * 64, &d, 64);
	t_write_file(log, p, len);
	assert_refused(-HC_ECORRUPT, HC_JOURNAL_FILE, 100 * 64);
	/* ... not even as the very last record. */
	memcpy(p, orig, len);
	memcpy(&d, orig + len - 64, 64);
	d.seq = htole64(le64toh(d.seq) + 5);
	d.checksum = htole64(XXH64(&d, offsetof(struct hc_jrec_disk, checksum), 0));
	memcpy(p + len - 64, &d, 64);
	t_write_file(log, p, len);
	assert_refused(-HC_ECORRUPT, HC_JOURNAL_FILE, len - 64);
	/* A newer major version is refused as such. */
	memcpy(p, orig, len);
	memcpy(&d, orig + 10 * 64, 64);
	d.major = htole16(HC_META_MAJOR + 1);
	d.checksum = htole64(XXH64(&d, offsetof(struct hc_jrec_disk, checksum), 0));
	memcpy(p + 10 * 64, &d, 64);
	t_write_file(log, p, len);
	assert_refused(-HC_EVERSION, HC_JOURNAL_FILE, 10 * 64);
	/* The original still opens. */
	t_write_file(log, orig, len);
	reopen_eq(&snaps[5], NV);
	for (int i = 0; i < 6; i++)
		snap_free(&snaps[i]);
	free(p);
	free(orig);
	free(log);
}
END_TEST

/* A state with enough entries for a checkpoint body of several chunks. */
static void big_state(struct hc_journal *j, uint64_t n)
{
	struct hc_imap *a = vmap(j, 1), *b = vmap(j, 2);
	struct hc_refcount *rc = hc_journal_refcount(j);
	for (uint64_t i = 0; i < n; i++) {
		struct hc_phys p;
		if (i % 3 == 0) {
			QUICK(hc_refcount_alloc(rc, 1, &p.block) == 0);
			p.file = HC_PHYS_OVERFLOW;
		} else if (i % 3 == 1) {
			p = (struct hc_phys){ 2, i };
		} else {
			p = (struct hc_phys){ HC_PHYS_ZERO, 0 };
		}
		QUICK(hc_journal_map_set(j, a, i * 2, &p, NULL) == 0);
		if (i % 5 == 0) {
			struct hc_phys q;
			QUICK(hc_imap_lookup(a, i * 2, &q) == 0);
			QUICK(hc_journal_map_set(j, b, n + i, &q, NULL) == 0);
		}
	}
}

START_TEST(test_journal_ckpt_truncated)
{
	struct hc_journal *j = jopen_ok(0);
	big_state(j, 60000);
	ck_assert_int_eq(hc_journal_checkpoint(j), 0);
	struct snap s;
	snap_take(j, &s, 2);
	hc_journal_close(j);
	char *ck = fpath(HC_CKPT_FILE);
	size_t len;
	char *orig = t_read_file(ck, &len);
	ck_assert_uint_gt(len, 2 * HC_CKPT_CHUNK);	/* at least three chunks */
	size_t cuts[] = { 0, 1, 127, 128, 129, 4096, HC_CKPT_CHUNK + 128,
			  HC_CKPT_CHUNK + 136, len / 2, len - 8, len - 1 };
	for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
		t_write_file(ck, orig, cuts[i]);
		assert_refused(-HC_ECORRUPT, HC_CKPT_FILE, cuts[i]);
	}
	/* Extra bytes at the end are not ignored either. */
	char *longer = malloc(len + 10);
	memcpy(longer, orig, len);
	memset(longer + len, 0, 10);
	t_write_file(ck, longer, len + 10);
	assert_refused(-HC_ECORRUPT, HC_CKPT_FILE, len);
	free(longer);
	t_write_file(ck, orig, len);
	reopen_eq(&s, 2);
	snap_free(&s);
	free(orig);
	free(ck);
}
END_TEST

START_TEST(test_journal_ckpt_corrupt)
{
	struct hc_journal *j = jopen_ok(0);
	big_state(j, 60000);
	ck_assert_int_eq(hc_journal_checkpoint(j), 0);
	struct snap s;
	snap_take(j, &s, 2);
	hc_journal_close(j);
	char *ck = fpath(HC_CKPT_FILE);
	size_t len;
	char *orig = t_read_file(ck, &len);
	/* Header bytes: reported at offset 0. */
	for (uint64_t off = 0; off < 128; off += 7) {
		t_write_file(ck, orig, len);
		flip(HC_CKPT_FILE, off, 0x20);
		assert_refused(-HC_ECORRUPT, HC_CKPT_FILE, 0);
	}
	/* Body bytes and their checksums: reported at the chunk's offset. */
	uint64_t c1 = 128 + HC_CKPT_CHUNK + 8;
	uint64_t body[] = { 128, 5000, 128 + HC_CKPT_CHUNK, c1, c1 + 77, len - 1 };
	uint64_t chunk[] = { 128, 128, 128, c1, c1, 0 };
	chunk[5] = 128 + ((len - 128 - 1) / (HC_CKPT_CHUNK + 8)) * (HC_CKPT_CHUNK + 8);
	for (size_t i = 0; i < sizeof(body) / sizeof(body[0]); i++) {
		t_write_file(ck, orig, len);
		flip(HC_CKPT_FILE, body[i], 0x01);
		assert_refused(-HC_ECORRUPT, HC_CKPT_FILE, chunk[i]);
	}
	/* A newer major version. */
	t_write_file(ck, orig, len);
	struct hc_ckpt_disk h;
	memcpy(&h, orig, sizeof(h));
	h.major = htole16(HC_META_MAJOR + 1);
	h.checksum = htole64(XXH64(&h, offsetof(struct hc_ckpt_disk, checksum), 0));
	char *p = malloc(len);
	memcpy(p, orig, len);
	memcpy(p, &h, sizeof(h));
	t_write_file(ck, p, len);
	assert_refused(-HC_EVERSION, HC_CKPT_FILE, 0);

	/* Checksums right, contents wrong: a count that the maps contradict. */
	memcpy(p, orig, len);
	uint64_t nvols = le64toh(((struct hc_ckpt_disk *)orig)->nvols);
	uint64_t nmap = le64toh(((struct hc_ckpt_disk *)orig)->nmap);
	uint64_t rc_bo = nvols * 16 + nmap * 24 + 3 * 16;	/* the fourth count */
	uint64_t fo = 128 + rc_bo + 8 * (rc_bo / HC_CKPT_CHUNK);
	struct hc_ckpt_rc_disk rd;
	memcpy(&rd, p + fo, sizeof(rd));
	rd.count = htole32(le32toh(rd.count) + 1);
	memcpy(p + fo, &rd, sizeof(rd));
	uint64_t cs = rc_bo / HC_CKPT_CHUNK * HC_CKPT_CHUNK;
	uint64_t cfo = 128 + cs + 8 * (cs / HC_CKPT_CHUNK);
	uint64_t n = HC_MIN((uint64_t)HC_CKPT_CHUNK, le64toh(h.body_bytes) - cs);
	uint64_t sum = htole64(XXH64(p + cfo, n, 0));
	memcpy(p + cfo + n, &sum, 8);
	t_write_file(ck, p, len);
	assert_refused(-HC_ECORRUPT, HC_CKPT_FILE, fo);
	ck_assert_msg(strstr(msg, "reference count") != NULL, "%s", msg);

	t_write_file(ck, orig, len);
	reopen_eq(&s, 2);
	snap_free(&s);
	free(p);
	free(orig);
	free(ck);
}
END_TEST

/* A crash between the rename and the log's truncation; a leftover tmp. */
START_TEST(test_journal_ckpt_crash_windows)
{
	uint64_t seed = 24;
	char *log = fpath(HC_JOURNAL_FILE), *tmp = fpath(HC_CKPT_TMP);
	struct hc_journal *j = jopen_ok(0);
	run_ops(j, seed, 1, 500, 20, 1);
	size_t len;
	char *old = t_read_file(log, &len);
	run_ops(j, seed, 501, 520, 20, 0);
	ck_assert_int_eq(hc_journal_checkpoint(j), 0);
	struct snap s;
	snap_take(j, &s, NV);
	hc_journal_close(j);
	t_write_file(log, old, len);	/* as if the truncation never happened */
	t_write_file(tmp, "garbage", 7);	/* and an older checkpoint was cut short */
	j = jopen_ok(0);
	struct snap t;
	snap_take(j, &t, NV);
	snap_eq(&t, &s);
	snap_free(&t);
	ck_assert_int_eq(t_file_size(log), 0);	/* all <= the checkpoint: dropped */
	ck_assert_int_eq(t_file_size(tmp), -1);
	run_ops(j, seed, 521, 600, 20, 1);
	hc_journal_close(j);
	j = jopen_ok(0);
	struct model md;
	model_build(&md, seed, 600);
	model_check(j, &md, -1);
	hc_journal_close(j);

	/* Records missing between checkpoint and log: refused. */
	j = jopen_ok(0);
	ck_assert_int_eq(hc_journal_checkpoint(j), 0);	/* at 600 */
	hc_journal_close(j);
	char *ck = fpath(HC_CKPT_FILE);
	size_t cl;
	char *ckd = t_read_file(ck, &cl);
	j = jopen_ok(0);
	run_ops(j, seed, 601, 700, 20, 1);
	ck_assert_int_eq(hc_journal_checkpoint(j), 0);	/* at 700, log emptied */
	run_ops(j, seed, 701, 720, 20, 1);
	hc_journal_close(j);
	t_write_file(ck, ckd, cl);	/* the checkpoint at 600 with records 701.. */
	assert_refused(-HC_ECORRUPT, HC_JOURNAL_FILE, 0);
	snap_free(&s);
	free(ckd);
	free(ck);
	free(old);
	free(log);
	free(tmp);
}
END_TEST

/* I4: an overflow block freed by a record is reused only once it is durable. */
START_TEST(test_journal_pending_free)
{
	struct hc_journal *j = jopen_ok(0);
	struct hc_refcount *rc = hc_journal_refcount(j);
	struct hc_imap *m = vmap(j, 1);
	uint64_t b, c;
	ck_assert_int_eq(hc_refcount_alloc(rc, 1, &b), 0);
	struct hc_phys p = { HC_PHYS_OVERFLOW, b }, z = { HC_PHYS_ZERO, 0 };
	ck_assert_int_eq(hc_journal_map_set(j, m, 7, &p, NULL), 0);
	ck_assert_int_eq(hc_journal_map_set(j, m, 8, &p, NULL), 0);	/* shared */
	ck_assert_uint_eq(hc_refcount_get(rc, &p), 2);
	ck_assert_int_eq(hc_journal_commit(j), 0);
	ck_assert_int_eq(hc_journal_map_set(j, m, 7, &z, NULL), 0);
	ck_assert_int_eq(hc_journal_map_clear(j, m, 8, 1, NULL), 0);	/* last reference */
	ck_assert_uint_eq(hc_refcount_get(rc, &p), 0);
	ck_assert(!hc_refcount_ovf_free(rc, b));
	ck_assert_int_eq(hc_refcount_alloc(rc, 1, &c), 0);
	ck_assert_uint_ne(c, b);
	ck_assert_int_eq(hc_refcount_cancel(rc, c, 1), 0);
	/* Re-pointing at the pending block is refused, too. */
	ck_assert_int_eq(hc_journal_map_set(j, m, 9, &p, NULL), -EINVAL);
	ck_assert_int_eq(hc_journal_commit(j), 0);
	ck_assert(hc_refcount_ovf_free(rc, b));
	ck_assert_int_eq(hc_refcount_alloc(rc, 1, &c), 0);
	ck_assert_uint_eq(c, b);
	/* A checkpoint makes frees durable as well. */
	p.block = c;
	ck_assert_int_eq(hc_journal_map_set(j, m, 10, &p, NULL), 0);
	ck_assert_int_eq(hc_journal_commit(j), 0);
	ck_assert_int_eq(hc_journal_map_clear(j, m, 0, UINT64_MAX, NULL), 0);
	ck_assert(!hc_refcount_ovf_free(rc, c));
	ck_assert_int_eq(hc_journal_checkpoint(j), 0);
	ck_assert(hc_refcount_ovf_free(rc, c));
	ck_assert_uint_eq(hc_imap_count(m), 0);
	hc_journal_close(j);
	/* Reserved but never referenced blocks leave no trace. */
	j = jopen_ok(0);
	rc = hc_journal_refcount(j);
	ck_assert_int_eq(hc_refcount_alloc(rc, 3, &b), 0);
	ck_assert_uint_eq(b, 0);
	hc_journal_close(j);
}
END_TEST

/* ---- concurrency ----------------------------------------------------------- */

struct wthr {
	struct hc_journal *j;
	uint32_t vol;
	int errors;
};

static void *writer(void *arg)
{
	struct wthr *w = arg;
	struct hc_imap *m;
	if (hc_journal_imap(w->j, w->vol, &m))
		return (void *)1;
	for (uint64_t i = 0; i < 3000; i++) {
		struct hc_phys p = { w->vol + 100, i };	/* another volume's block */
		if (hc_journal_map_set(w->j, m, i, &p, NULL))
			w->errors++;
		if (i % 25 == 0 && hc_journal_commit(w->j))
			w->errors++;
		if (w->vol == 1 && i % 1000 == 999 && hc_journal_checkpoint(w->j))
			w->errors++;
	}
	if (hc_journal_commit(w->j))
		w->errors++;
	return NULL;
}

START_TEST(test_journal_threads)
{
	struct hc_journal *j = jopen_ok(0);
	pthread_t th[4];
	struct wthr w[4];
	for (int i = 0; i < 4; i++) {
		w[i] = (struct wthr){ j, (uint32_t)i + 1, 0 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, writer, &w[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		void *ret;
		pthread_join(th[i], &ret);
		ck_assert_ptr_null(ret);
		ck_assert_int_eq(w[i].errors, 0);
	}
	struct hc_journal_stats st;
	hc_journal_stats(j, &st);
	ck_assert_uint_eq(st.seq, 12000);
	ck_assert_uint_eq(st.durable, 12000);
	printf("journal threads: %llu commits for %d commit calls, %llu checkpoints\n",
	       (unsigned long long)st.commits, 4 * (3000 / 25 + 1),
	       (unsigned long long)st.checkpoints);
	hc_journal_close(j);
	j = jopen_ok(0);
	for (uint32_t v = 1; v <= 4; v++) {
		struct hc_imap *m = vmap(j, v);
		ck_assert_uint_eq(hc_imap_count(m), 3000);
		for (uint64_t i = 0; i < 3000; i++) {
			struct hc_phys p;
			QUICK(hc_imap_lookup(m, i, &p) == 0 && p.file == v + 100 && p.block == i);
		}
		struct hc_phys h = { v + 100, 17 };
		ck_assert_uint_eq(hc_refcount_get(hc_journal_refcount(j), &h), 1);
	}
	verify_ok(j);
	hc_journal_close(j);
}
END_TEST

/* ---- SIGKILL at random moments ---------------------------------------------- */

/* The writer: opens (replay), then batches + commits until killed. */
static void crash_child(int wfd, uint64_t seed)
{
	struct hc_journal *j;
	if (jopen(64 * 300, &j))
		_exit(2);
	char *ovf = fpath("overflow.dat");
	int ofd = open(ovf, O_RDWR | O_CREAT, 0600);
	if (ofd < 0)
		_exit(3);
	uint64_t seq = jseq(j), r = seed ^ seq;
	uint64_t t0 = t_now_ms();
	while (t_now_ms() - t0 < 20000) {
		uint64_t n = 1 + hc_mix64(r++) % 24;
		seq = run_batch(j, seed, seq + 1, n, ofd);
		if (hc_journal_commit(j))
			_exit(4);
		if (write(wfd, &seq, sizeof(seq)) != sizeof(seq))
			_exit(5);
		if (hc_journal_maybe_checkpoint(j) < 0)
			_exit(6);
	}
	_exit(7);
}

START_TEST(test_journal_crash_kill)
{
	uint64_t seed = 31, rs = 4242;
	const char *lr = getenv("HC_LONG");
	int rounds = lr && *lr && strcmp(lr, "0") ? 40 : 6;
	char *ovf = fpath("overflow.dat");
	uint64_t acked = 0, replayed_total = 0;
	for (int round = 0; round < rounds; round++) {
		int pfd[2];
		ck_assert_int_eq(pipe(pfd), 0);
		pid_t pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(pfd[0]);
			crash_child(pfd[1], seed);
		}
		close(pfd[1]);
		/* Sometimes during the child's replay, mostly during its writes. */
		usleep((useconds_t)(round % 5 == 4 ? t_rand_below(&rs, 3000)
						   : 20000 + t_rand_below(&rs, 250000)));
		kill(pid, SIGKILL);
		int status;
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status), "child exited with %d",
			      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		uint64_t v;
		while (read(pfd[0], &v, sizeof(v)) == sizeof(v))
			acked = v;
		close(pfd[0]);

		struct hc_journal *j = jopen_ok(0);
		uint64_t got = jseq(j);
		ck_assert_msg(got >= acked, "round %d: %llu records acknowledged, %llu replayed",
			      round, (unsigned long long)acked, (unsigned long long)got);
		struct model md;
		model_build(&md, seed, got);
		int ofd = open(ovf, O_RDONLY);
		model_check(j, &md, ofd);
		if (ofd >= 0)
			close(ofd);
		replayed_total = got;
		hc_journal_close(j);
	}
	struct hc_journal *j = jopen_ok(0);
	struct hc_journal_stats st;
	hc_journal_stats(j, &st);
	hc_journal_close(j);
	printf("journal crash: %d kills, %llu records acknowledged, %llu survived, ckpt at %llu\n",
	       rounds, (unsigned long long)acked, (unsigned long long)replayed_total,
	       (unsigned long long)st.ckpt_seq);
	ck_assert_msg(acked > 0, "nothing was ever acknowledged: not a test");
	free(ovf);
}
END_TEST

/* ---- open time ------------------------------------------------------------------ */

START_TEST(test_journal_open_time)
{
	struct hc_journal *j = jopen_ok(0);
	struct hc_imap *m = vmap(j, 1);
	struct hc_refcount *rc = hc_journal_refcount(j);
	const uint64_t n = 1000000;
	uint64_t b;
	ck_assert_int_eq(hc_refcount_alloc(rc, n / 2, &b), 0);
	for (uint64_t i = 0; i < n; i++) {
		struct hc_phys p = i % 2 ? (struct hc_phys){ HC_PHYS_OVERFLOW, b + i / 2 }
					 : (struct hc_phys){ 2, i * 7 };
		QUICK(hc_journal_map_set(j, m, i * 3, &p, NULL) == 0);
	}
	uint64_t t0 = t_now_ms();
	ck_assert_int_eq(hc_journal_checkpoint(j), 0);
	uint64_t t1 = t_now_ms();
	/* Plus 100k records in the log. */
	for (uint64_t i = 0; i < 100000; i++) {
		struct hc_phys p = { 3, i };
		QUICK(hc_journal_map_set(j, m, i * 3 + 1, &p, NULL) == 0);
	}
	ck_assert_int_eq(hc_journal_commit(j), 0);
	hc_journal_close(j);
	uint64_t t2 = t_now_ms();
	j = jopen_ok(0);
	uint64_t t3 = t_now_ms();
	struct hc_journal_stats st;
	hc_journal_stats(j, &st);
	ck_assert_uint_eq(st.entries, n + 100000);
	ck_assert_uint_eq(st.replayed, 100000);
	char *ck = fpath(HC_CKPT_FILE);
	printf("journal: checkpoint of %llu entries (%lld bytes) in %llu ms; open (checkpoint + "
	       "100000 records) in %llu ms\n", (unsigned long long)n, (long long)t_file_size(ck),
	       (unsigned long long)(t1 - t0), (unsigned long long)(t3 - t2));
	free(ck);
	hc_journal_close(j);
}
END_TEST

/* The torn-tail warnings are expected by the hundred: keep errors only. */
static void quiet(void)
{
	hc_log_set_level(LOG_ERR);
}

static void close_dirfd(void)
{
	if (dirfd_ >= 0)
		close(dirfd_);
	dirfd_ = -1;
}

static TCase *tc_new(const char *name, double timeout)
{
	TCase *tc = tcase_create(name);
	t_tcase_fixtures(tc, timeout);
	tcase_add_checked_fixture(tc, NULL, close_dirfd);
	return tc;
}

static Suite *journal_suite(void)
{
	Suite *s = suite_create("journal");
	TCase *tc;

	tc = tc_new("roundtrip", 120);
	tcase_add_test(tc, test_journal_fresh);
	tcase_add_test(tc, test_journal_roundtrip);
	tcase_add_test(tc, test_journal_uncommitted);
	tcase_add_test(tc, test_journal_checkpoint);
	tcase_add_test(tc, test_journal_barrier);
	tcase_add_test(tc, test_journal_pending_free);
	suite_add_tcase(s, tc);

	tc = tc_new("torn", 300);
	tcase_add_checked_fixture(tc, quiet, NULL);
	tcase_add_test(tc, test_journal_torn_tail);
	tcase_add_test(tc, test_journal_torn_after_checkpoint);
	tcase_add_test(tc, test_journal_torn_out_of_order);
	suite_add_tcase(s, tc);

	tc = tc_new("corrupt", 300);
	tcase_add_checked_fixture(tc, quiet, NULL);
	tcase_add_test(tc, test_journal_corrupt_middle);
	tcase_add_test(tc, test_journal_ckpt_truncated);
	tcase_add_test(tc, test_journal_ckpt_corrupt);
	tcase_add_test(tc, test_journal_ckpt_crash_windows);
	suite_add_tcase(s, tc);

	tc = tc_new("concurrency", 300);
	tcase_add_test(tc, test_journal_threads);
	tcase_add_test(tc, test_journal_crash_kill);
	suite_add_tcase(s, tc);

	tc = tc_new("scale", 300);
	tcase_add_test(tc, test_journal_open_time);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run_suite(journal_suite());
}
