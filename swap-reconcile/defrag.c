// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * reconcile-defrag's engine (defrag.h): locality of a layout, and policy
 * home over a journal opened offline.
 *
 * DOC: the home policy, one block at a time.  An entry b -> T of volume V
 * (T another volume's home block, an overflow.dat block, or ZERO) goes
 * through three states, and a crash in any of them is safe:
 *
 *   indirected   the entry is durable; reads of b go to T.  V's home block
 *                (V, b) is dead space: V does not resolve b to it, and no
 *                entry targets it (checked: hc_refcount_get == 0, else the
 *                block is skipped for good in this pass -- I3, its bytes
 *                belong to whoever points at it).
 *   copied       T's bytes written at (V, b) (or the block punched, for
 *                ZERO) and the home file synced.  The entry still sends
 *                reads to T, which holds the same bytes, so nothing a reader
 *                sees changed; a crash here redoes the copy on the next run.
 *   home         the map_clear record is committed: b resolves to (V, b).
 *                Only now may T's count fall to 0 and an overflow T be
 *                released -- by the journal after the commit (I4) -- and
 *                punched.
 *
 * Why the order cannot be relaxed: dropping the entry before the home copy
 * is durable would, after a crash, send b to a home block holding stale
 * bytes (I1); punching an overflow block before the record freeing it is
 * durable would, after a crash, replay the entry onto a hole.
 *
 * Why counts only fall during a pass: offline, this is the only writer, and
 * it only drops entries.  So a home block found unshared when its batch is
 * formed stays unshared until it is written, and a target found shared
 * stays so (it is never written) until its last referrer goes home -- which
 * is why a kept block can move in a later pass, never in the same one.
 *
 * Batches: up to batch_blocks entries are copied, then one sync, one
 * map_clear per physically consecutive run, one commit; so a batch costs an
 * fdatasync and a journal commit whatever its size, and the rate limiter
 * (the caller's batch_done) works in batches.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "defrag.h"
#include "hecache/format.h"
#include "util.h"

/* --- locality ------------------------------------------------------------------------ */

struct loc {
	struct hc_defrag_locality *l;
	uint32_t vid;
	uint64_t next;		/* first logical block not accounted yet */
	struct hc_phys prev;	/* phys(next - 1), when next > 0 */
};

/* Accounts block b (== s->next) at physical p: the pair (b - 1, b), and runs. */
static void step(struct loc *s, uint64_t b, const struct hc_phys *p)
{
	struct hc_defrag_locality *l = s->l;
	const struct hc_phys *q = &s->prev;
	if (b == 0) {
		l->runs++;
	} else {
		int same = q->file == p->file;
		if (!same || (p->file != HC_PHYS_ZERO && p->block != q->block + 1))
			l->runs++;
		if (same && p->file != HC_PHYS_ZERO) {
			l->pairs++;
			l->jump_sum += p->block > q->block ? p->block - q->block - 1
							    : q->block - p->block + 1;
		}
	}
	s->prev = *p;
	s->next = b + 1;
}

/* Accounts [s->next, to) at home: one step, then pairs of jump 0. */
static void home_until(struct loc *s, uint64_t to)
{
	if (s->next >= to)
		return;
	uint64_t from = s->next;
	struct hc_phys h = { .file = s->vid, .block = from };
	step(s, from, &h);
	s->l->pairs += to - from - 1;
	s->prev.block = to - 1;
	s->next = to;
}

static int loc_entry(void *arg, uint64_t lblk, const struct hc_phys *p)
{
	struct loc *s = arg;
	s->l->entries++;
	if (hc_phys_is_zero(p))
		s->l->zero++;
	if (lblk >= s->l->blocks)
		return 0;	/* past the end: counted, not part of the layout */
	home_until(s, lblk);
	step(s, lblk, p);
	return 0;
}

void hc_defrag_locality(const struct hc_imap *m, uint32_t vid, uint64_t blocks,
			struct hc_defrag_locality *out)
{
	memset(out, 0, sizeof(*out));
	out->blocks = blocks;
	struct loc s = { .l = out, .vid = vid };
	if (m)
		hc_imap_walk(m, 0, UINT64_MAX, loc_entry, &s);
	home_until(&s, blocks);
}

void hc_defrag_locality_add(struct hc_defrag_locality *sum, const struct hc_defrag_locality *l)
{
	sum->blocks += l->blocks;
	sum->entries += l->entries;
	sum->zero += l->zero;
	sum->runs += l->runs;
	sum->pairs += l->pairs;
	sum->jump_sum += l->jump_sum;
}

double hc_defrag_mean_jump(const struct hc_defrag_locality *l)
{
	return l->pairs ? (double)l->jump_sum / (double)l->pairs : 0.0;
}

/* --- policy home ---------------------------------------------------------------------- */

#define RUN_MAX 256u	/* blocks per read/write: 1 MiB */

struct item {
	uint64_t lblk;
	struct hc_phys p;
};

/* A physically consecutive run of items: [i, i + n). */
struct run {
	size_t i, n;
};

struct pass {
	struct hc_journal *j;
	struct hc_imap *m;
	uint32_t vid;
	int fd;
	uint64_t size;
	const struct hc_defrag_io *io;
	struct hc_defrag_result *res;
	char *msg;
	size_t msglen;
	struct item *it;	/* the batch */
	size_t nit;
	struct run *runs;
	size_t nruns;
	void *buf;		/* RUN_MAX blocks */
};

static int next_in_run(const struct item *a, const struct item *b)
{
	if (b->lblk != a->lblk + 1 || a->p.file != b->p.file)
		return 0;
	return hc_phys_is_zero(&a->p) || b->p.block == a->p.block + 1;
}

static void split_runs(struct pass *s)
{
	s->nruns = 0;
	for (size_t i = 0; i < s->nit;) {
		size_t k = i + 1;
		while (k < s->nit && k - i < RUN_MAX && next_in_run(&s->it[k - 1], &s->it[k]))
			k++;
		s->runs[s->nruns++] = (struct run){ .i = i, .n = k - i };
		i = k;
	}
}

static const char *file_name(uint32_t file, char *buf, size_t len)
{
	if (file == HC_PHYS_OVERFLOW)
		snprintf(buf, len, "overflow.dat");
	else
		snprintf(buf, len, "volume id %" PRIu32, file);
	return buf;
}

/* Writes run r's data at home; *punched set when it punched. */
static int copy_run(struct pass *s, const struct run *r, int *punched)
{
	const struct item *first = &s->it[r->i];
	uint64_t home = first->lblk * HC_BLOCK_SIZE;
	size_t len = r->n * HC_BLOCK_SIZE;
	size_t wlen = s->size - home < len ? (size_t)(s->size - home) : len;
	char name[32];
	int err;
	if (hc_phys_is_zero(&first->p)) {
		if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)home,
			      (off_t)wlen) == 0) {
			*punched = 1;
			return 0;
		}
		err = -errno;
		if (err != -EOPNOTSUPP) {
			snprintf(s->msg, s->msglen, "punching blocks %" PRIu64 "-%" PRIu64
				 " of the home file: %s", first->lblk, first->lblk + r->n - 1,
				 strerror(-err));
			return err;
		}
		memset(s->buf, 0, wlen);
	} else {
		int rfd = s->io->file_fd(s->io->arg, first->p.file);
		ssize_t got = rfd < 0 ? rfd : hc_pread_full(rfd, s->buf, len,
							    (off_t)(first->p.block * HC_BLOCK_SIZE));
		err = got < 0 ? (int)got : 0;	/* past the end: zeros */
		if (err) {
			snprintf(s->msg, s->msglen, "block %" PRIu64 ": reading its target, block %"
				 PRIu64 " of %s: %s", first->lblk, first->p.block,
				 file_name(first->p.file, name, sizeof(name)),
				 err == -ENOENT ? "no such file in the backing directory"
						: strerror(-err));
			return err;
		}
	}
	err = hc_pwrite_all(s->fd, s->buf, wlen, (off_t)home);
	if (err)
		snprintf(s->msg, s->msglen, "writing blocks %" PRIu64 "-%" PRIu64
			 " of the home file: %s", first->lblk, first->lblk + r->n - 1,
			 strerror(-err));
	return err;
}

static void hold(struct pass *s, int what, int on)
{
	if (s->io->hold)
		s->io->hold(s->io->arg, what, on);
}

/*
 * Punches the blocks of overflow run r that the last commit left free
 * (online, under HC_DEFRAG_HOLD_OVF: a block found free cannot be handed
 * out and written before the punch).
 */
static void punch_freed(struct pass *s, const struct run *r)
{
	const struct item *first = &s->it[r->i];
	struct hc_refcount *rc = hc_journal_refcount(s->j);
	int ofd = s->io->file_fd(s->io->arg, HC_PHYS_OVERFLOW);
	if (ofd < 0)
		return;
	hold(s, HC_DEFRAG_HOLD_OVF, 1);
	for (uint64_t b = first->p.block, end = b + r->n; b < end;) {
		if (!hc_refcount_ovf_free(rc, b)) {
			b++;
			continue;
		}
		uint64_t e = b + 1;
		while (e < end && hc_refcount_ovf_free(rc, e))
			e++;
		/* Failure leaves unreferenced blocks behind, as a crash here would:
		 * hectl fsck --repair punches them. */
		if (fallocate(ofd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(b * HC_BLOCK_SIZE), (off_t)((e - b) * HC_BLOCK_SIZE)) == 0)
			s->res->ovf_freed += e - b;
		b = e;
	}
	hold(s, HC_DEFRAG_HOLD_OVF, 0);
}

/* Copies, syncs, drops and commits the batch in s->it. */
static int run_batch(struct pass *s, int dry_run)
{
	split_runs(s);
	int punched = 0, err = 0;
	uint64_t bytes = 0;
	for (size_t i = 0; i < s->nruns; i++) {
		const struct run *r = &s->runs[i];
		const struct item *first = &s->it[r->i];
		int zero = hc_phys_is_zero(&first->p);
		if (!zero) {
			uint64_t home = first->lblk * HC_BLOCK_SIZE;
			uint64_t len = r->n * (uint64_t)HC_BLOCK_SIZE;
			bytes += s->size - home < len ? s->size - home : len;
		}
		if (!dry_run && (err = copy_run(s, r, &punched)))
			return err;
	}
	if (!dry_run && (punched ? fsync(s->fd) : fdatasync(s->fd)) < 0) {
		err = -errno;
		snprintf(s->msg, s->msglen, "syncing the home file: %s", strerror(-err));
		return err;
	}
	/* The data is durable: now the entries may go (I4). */
	if (!dry_run)
		hold(s, HC_DEFRAG_HOLD_MAP, 1);
	for (size_t i = 0; i < s->nruns && !dry_run; i++) {
		const struct run *r = &s->runs[i];
		err = hc_journal_map_clear(s->j, s->m, s->it[r->i].lblk, r->n, NULL);
		if (err) {
			snprintf(s->msg, s->msglen, "dropping the entries of blocks %" PRIu64
				 "-%" PRIu64 ": %s", s->it[r->i].lblk,
				 s->it[r->i].lblk + r->n - 1, strerror(-err));
			break;
		}
	}
	if (!dry_run)
		hold(s, HC_DEFRAG_HOLD_MAP, 0);
	if (err)
		return err;
	if (!dry_run && (err = hc_journal_commit(s->j))) {
		snprintf(s->msg, s->msglen, "committing the journal: %s", strerror(-err));
		return err;
	}
	for (size_t i = 0; i < s->nruns; i++) {
		const struct run *r = &s->runs[i];
		if (hc_phys_is_zero(&s->it[r->i].p))
			s->res->zeroed += r->n;
		else
			s->res->moved += r->n;
		if (!dry_run && s->it[r->i].p.file == HC_PHYS_OVERFLOW)
			punch_freed(s, r);
	}
	s->res->bytes += bytes;
	s->res->batches++;
	/* Online the daemon's timer checkpoints (not under the volume's lock). */
	if (!dry_run && !s->io->begin && (err = hc_journal_maybe_checkpoint(s->j)) < 0) {
		snprintf(s->msg, s->msglen, "checkpointing the journal: %s", strerror(-err));
		return err;
	}
	return 0;
}

int hc_defrag_home(struct hc_journal *j, uint32_t vid, int fd, uint64_t size,
		   const struct hc_defrag_home_opts *o, const struct hc_defrag_io *io,
		   struct hc_defrag_result *res, char *msg, size_t msglen)
{
	uint32_t cap = o && o->batch_blocks ? o->batch_blocks : HC_DEFRAG_BATCH;
	int dry_run = o && o->dry_run;
	memset(res, 0, sizeof(*res));
	msg[0] = 0;
	struct pass s = { .j = j, .vid = vid, .fd = fd, .size = size, .io = io, .res = res,
			  .msg = msg, .msglen = msglen };
	int err = hc_journal_imap(j, vid, &s.m);
	if (err) {
		snprintf(msg, msglen, "the map of volume id %" PRIu32 ": %s", vid, strerror(-err));
		return err;
	}
	s.it = calloc(cap, sizeof(*s.it));
	s.runs = calloc(cap, sizeof(*s.runs));
	if (!s.it || !s.runs || posix_memalign(&s.buf, HC_BLOCK_SIZE, RUN_MAX * HC_BLOCK_SIZE)) {
		s.buf = NULL;
		snprintf(msg, msglen, "out of memory");
		err = -ENOMEM;
		goto out;
	}
	struct hc_refcount *rc = hc_journal_refcount(j);
	uint64_t from = 0, lblk;
	struct hc_phys p;
	int more = 1;
	while (more) {
		if (io->begin && io->begin(io->arg, &s.size))
			break;	/* the volume is going away */
		size = s.size;
		s.nit = 0;
		while (s.nit < cap) {
			if (hc_imap_next(s.m, from, &lblk, &p)) {
				more = 0;	/* -ENOENT: no entry left */
				break;
			}
			from = lblk + 1;
			struct hc_phys home = { .file = vid, .block = lblk };
			if (lblk >= (size + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE)
				res->kept_eof++;
			else if (hc_refcount_get(rc, &home) > 0)
				res->kept_shared++;
			else if (io->skip && io->skip(io->arg, lblk))
				res->kept_busy++;
			else
				s.it[s.nit++] = (struct item){ .lblk = lblk, .p = p };
		}
		err = s.nit ? run_batch(&s, dry_run) : 0;
		if (io->end)
			io->end(io->arg);
		if (err || !s.nit)
			break;
		if (io->batch_done && io->batch_done(io->arg, res)) {
			err = -EINTR;
			break;
		}
	}
out:
	free(s.buf);
	free(s.runs);
	free(s.it);
	return err;
}
