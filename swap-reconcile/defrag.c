// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * reconcile-defrag's engine (defrag.h): locality of a layout, and policies
 * home and swap over a journal opened offline, or the daemon's own through
 * the online hooks of struct hc_defrag_io (cache-fs/odefrag.c).
 *
 * DOC: the home policy, one block at a time.  An entry b -> T of volume V
 * (T another volume's home block, an overflow.dat block, or ZERO) goes
 * through three states, and a crash in any of them is safe:
 *
 *   indirected   the entry is durable; reads of b go to T.  V's home block
 *                (V, b) is dead space: V does not resolve b to it, and no
 *                entry targets it (checked: hc_refcount_home_free, else the
 *                block is skipped for good in this pass -- I3, its bytes
 *                belong to whoever points at it, or did in a record not
 *                yet durable, I4).
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
 *
 * DOC: the swap policy, one run at a time.  Policy swap leaves the entries
 * in place and moves what they point at: a run of logically consecutive
 * non-ZERO entries b..b+n-1 (within the volume, n <= UNIT_MAX) whose
 * targets T_0..T_n-1 are not already consecutive blocks of one file gets n
 * new consecutive overflow.dat blocks N..N+n-1, so a reader of the run reads
 * one extent.  A single entry, or a run laid out in order already (a copy of
 * a whole range, or one this policy made), is left alone, so a second pass
 * moves nothing.  The volume's home file is never written.  Each entry goes
 * through four states:
 *
 *   reserved     N..N+n-1 handed out by hc_refcount_alloc when the run is
 *                found, in RAM only: nothing points at them and no record
 *                names them.
 *   copied       T_i's bytes written at N+i and overflow.dat synced.  The
 *                entry still reads T_i, unchanged: T_i is a target, and a
 *                target is never written in place while referenced (I3),
 *                and online nobody else writes the volume's blocks between
 *                begin and end.
 *   re-pointed   hc_journal_map_set(b+i -> N+i): the record counts N+i and
 *                uncounts T_i; it may reach the disk at any moment, which is
 *                why the copy is synced first (I4).
 *   committed    the records are durable.  Only now may an overflow T_i
 *                left with no referrer be released (the journal does it at
 *                the commit) and punched.  A T_i someone else still points
 *                at (dedup, a shared copy-on-write block, another volume's
 *                home block) keeps its bytes for them: swap then costs a
 *                block of space and buys locality.
 *
 * So at any crash point each entry points either at its old, unchanged
 * target or at a durable copy of it, and a rerun continues.  What a crash
 * can leave behind is space, never wrong data: blocks reserved and copied
 * but never pointed at (the allocator is rebuilt from the records at the
 * next open, so they are free there, holding garbage), and old blocks freed
 * by a commit but not punched yet; hectl fsck --repair punches both.
 *
 * Batches: a run longer than a batch is moved over several (the extent is
 * reserved once, so its pieces still land side by side); each batch is up
 * to batch_blocks entries of one or more runs, one fdatasync of
 * overflow.dat and one commit.  Between batches (online, the volume's lock
 * let go) the run's blocks are looked up again: one whose entry went away,
 * turned ZERO or is busy is left alone and its reserved block given back
 * (hc_refcount_cancel), as are the rest of the run's blocks on an error or
 * a stop in the middle -- after which the next pass finds the run not in
 * order and moves all of it again.  The entries swap leaves alone are
 * walked at most VISIT_MAX per batch, so online the walk between begin and
 * end stays short.
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

void hc_defrag_result_add(struct hc_defrag_result *sum, const struct hc_defrag_result *pass)
{
	sum->moved += pass->moved;
	sum->zeroed += pass->zeroed;
	sum->relocated += pass->relocated;
	sum->bytes += pass->bytes;
	sum->ovf_freed += pass->ovf_freed;
	sum->batches += pass->batches;
	sum->kept_shared = pass->kept_shared;
	sum->kept_eof = pass->kept_eof;
	sum->kept_busy = pass->kept_busy;
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
/* Swap: the longest run moved as one extent (64 MiB), and the entries it
 * visits between begin and end when they move nothing. */
#define UNIT_MAX 16384u
#define VISIT_MAX(cap) (16 * (uint64_t)(cap) + RUN_MAX)

struct item {
	uint64_t lblk;
	struct hc_phys p;
	uint64_t to;		/* swap: its new overflow.dat block */
};

/*
 * Swap: the run of logically consecutive entries [s, s + n) being moved to
 * the reserved overflow.dat blocks [base, base + n), block s + i to base + i;
 * the blocks before cursor are done (moved, or their slot given back).
 */
struct unit {
	uint64_t s, n, base, cursor;
	int active;
};

/*
 * Items [i, i + n): home, a physically consecutive run; swap, a logically
 * consecutive run that goes to overflow.dat blocks [to, to + n).
 */
struct run {
	size_t i, n;
	uint64_t to;
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
	uint64_t *ob;		/* scratch: the batch's old overflow targets */
	void *buf;		/* RUN_MAX blocks */
	struct unit u;		/* swap */
	int dry_run;
	int every;		/* swap: hc_defrag_home_opts.every */
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

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/*
 * Punches the overflow.dat blocks that the batch's entries pointed at (the
 * old targets, s->it) and that the last commit left free.  Each block once,
 * however many entries of the batch pointed at it; online under
 * HC_DEFRAG_HOLD_OVF, so a block found free cannot be handed out and
 * written before the punch.
 */
static void punch_freed(struct pass *s)
{
	struct hc_refcount *rc = hc_journal_refcount(s->j);
	size_t n = 0;
	for (size_t i = 0; i < s->nit; i++)
		if (s->it[i].p.file == HC_PHYS_OVERFLOW)
			s->ob[n++] = s->it[i].p.block;
	if (!n)
		return;
	int ofd = s->io->file_fd(s->io->arg, HC_PHYS_OVERFLOW);
	if (ofd < 0)
		return;
	qsort(s->ob, n, sizeof(*s->ob), cmp_u64);
	hold(s, HC_DEFRAG_HOLD_OVF, 1);
	for (size_t i = 0; i < n;) {
		uint64_t b = s->ob[i], e = b;
		if (!hc_refcount_ovf_free(rc, b)) {
			while (i < n && s->ob[i] == b)
				i++;
			continue;
		}
		/* [b, e]: free blocks of the batch, duplicates folded */
		while (i < n && (s->ob[i] == e ||
				 (s->ob[i] == e + 1 && hc_refcount_ovf_free(rc, e + 1))))
			e = s->ob[i++];
		e++;
		/* Failure leaves unreferenced blocks behind, as a crash here would:
		 * hectl fsck --repair punches them. */
		if (fallocate(ofd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(b * HC_BLOCK_SIZE), (off_t)((e - b) * HC_BLOCK_SIZE)) == 0)
			s->res->ovf_freed += e - b;
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
	}
	if (!dry_run)
		punch_freed(s);
	s->res->bytes += bytes;
	s->res->batches++;
	/* Online the daemon's timer checkpoints (not under the volume's lock). */
	if (!dry_run && !s->io->begin && (err = hc_journal_maybe_checkpoint(s->j)) < 0) {
		snprintf(s->msg, s->msglen, "checkpointing the journal: %s", strerror(-err));
		return err;
	}
	return 0;
}

/* The map and the buffers of a pass whose batches hold up to cap entries. */
static int pass_init(struct pass *s, uint32_t cap)
{
	int err = hc_journal_imap(s->j, s->vid, &s->m);
	if (err) {
		snprintf(s->msg, s->msglen, "the map of volume id %" PRIu32 ": %s", s->vid,
			 strerror(-err));
		return err;
	}
	s->it = calloc(cap, sizeof(*s->it));
	s->runs = calloc(cap, sizeof(*s->runs));
	s->ob = calloc(cap, sizeof(*s->ob));
	if (!s->it || !s->runs || !s->ob ||
	    posix_memalign(&s->buf, HC_BLOCK_SIZE, RUN_MAX * HC_BLOCK_SIZE)) {
		s->buf = NULL;
		snprintf(s->msg, s->msglen, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

static void pass_free(struct pass *s)
{
	free(s->buf);
	free(s->ob);
	free(s->runs);
	free(s->it);
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
	int err = pass_init(&s, cap);
	if (err)
		goto out;
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
			else if (!hc_refcount_home_free(rc, &home))
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
	pass_free(&s);
	return err;
}

/* --- policy swap ---------------------------------------------------------------------- */

/* Reads run r's targets (physically consecutive pieces at once) and writes them at r->to. */
static int relocate_run(struct pass *s, const struct run *r, int ofd)
{
	char *buf = s->buf, name[32];
	for (size_t i = 0; i < r->n;) {
		const struct item *a = &s->it[r->i + i];
		size_t k = 1;
		while (i + k < r->n && a[k].p.file == a->p.file && a[k].p.block == a->p.block + k)
			k++;
		int rfd = s->io->file_fd(s->io->arg, a->p.file);
		ssize_t got = rfd < 0 ? rfd : hc_pread_full(rfd, buf + i * HC_BLOCK_SIZE,
							    k * HC_BLOCK_SIZE,
							    (off_t)(a->p.block * HC_BLOCK_SIZE));
		if (got < 0) {
			snprintf(s->msg, s->msglen, "block %" PRIu64 ": reading its target, block %"
				 PRIu64 " of %s: %s", a->lblk, a->p.block,
				 file_name(a->p.file, name, sizeof(name)),
				 got == -ENOENT ? "no such file in the backing directory"
						: strerror((int)-got));
			return (int)got;
		}
		i += k;
	}
	int err = hc_pwrite_all(ofd, buf, r->n * HC_BLOCK_SIZE, (off_t)(r->to * HC_BLOCK_SIZE));
	if (err)
		snprintf(s->msg, s->msglen, "writing blocks %" PRIu64 "-%" PRIu64
			 " of overflow.dat: %s", r->to, r->to + r->n - 1, strerror(-err));
	return err;
}

/* Gives back reserved overflow.dat blocks [b, b + n) that nothing points at. */
static void unreserve(struct pass *s, uint64_t b, uint64_t n)
{
	if (s->dry_run || !n)
		return;
	hold(s, HC_DEFRAG_HOLD_OVF, 1);
	hc_refcount_cancel(hc_journal_refcount(s->j), b, n);
	hold(s, HC_DEFRAG_HOLD_OVF, 0);
}

/* The slots of the unit's logical blocks [from, to): not used. */
static void unit_skip(struct pass *s, uint64_t from, uint64_t to)
{
	struct unit *u = &s->u;
	unreserve(s, u->base + (from - u->s), to - from);
}

/* Ends the unit early (error, stop): the slots from its cursor on go back. */
static void unit_drop(struct pass *s)
{
	struct unit *u = &s->u;
	if (u->active)
		unit_skip(s, u->cursor, u->s + u->n);
	u->active = 0;
}

/* The slots of items [i, nit) go back (they were never pointed at). */
static void items_drop(struct pass *s, size_t i)
{
	while (i < s->nit) {
		size_t k = i + 1;
		while (k < s->nit && s->it[k].to == s->it[k - 1].to + 1)
			k++;
		unreserve(s, s->it[i].to, k - i);
		i = k;
	}
}

/*
 * Finds the next run to move, from *from on: the entries from the first
 * non-ZERO one (within the volume, not busy) while they are logically
 * consecutive, at most UNIT_MAX; moved when it has two or more and their
 * targets are not consecutive blocks of one file.  Reserves its blocks
 * (not in a dry run).  1: found (s->u), 0: no entry left, 2: visited
 * enough for this batch, -errno with msg.
 */
static int unit_find(struct pass *s, uint64_t *from, uint64_t nblk, uint64_t *visited,
		     uint64_t cap)
{
	const struct hc_defrag_io *io = s->io;
	struct hc_defrag_result *res = s->res;
	uint64_t lblk, l;
	struct hc_phys p, q;
	while (*visited < VISIT_MAX(cap)) {
		if (hc_imap_next(s->m, *from, &lblk, &p))
			return 0;
		++*visited;
		if (lblk >= nblk || hc_phys_is_zero(&p) || (io->skip && io->skip(io->arg, lblk))) {
			if (lblk >= nblk)
				res->kept_eof++;
			else if (!hc_phys_is_zero(&p))
				res->kept_busy++;
			*from = lblk + 1;
			continue;
		}
		uint64_t n = 1;
		int in_place = 1;
		while (n < UNIT_MAX && !hc_imap_next(s->m, lblk + n, &l, &q) && l == lblk + n &&
		       l < nblk && !hc_phys_is_zero(&q) && !(io->skip && io->skip(io->arg, l))) {
			if (q.file != p.file || q.block != p.block + n)
				in_place = 0;
			n++;
		}
		*visited += n - 1;
		*from = lblk + n;
		if (!s->every && (n < 2 || in_place))
			continue;
		uint64_t base = 0;
		if (!s->dry_run) {
			hold(s, HC_DEFRAG_HOLD_OVF, 1);
			int err = hc_refcount_alloc(hc_journal_refcount(s->j), n, &base);
			if (!err && s->io->allocated)
				s->io->allocated(s->io->arg, base, n);
			hold(s, HC_DEFRAG_HOLD_OVF, 0);
			if (err) {
				snprintf(s->msg, s->msglen, "allocating %" PRIu64 " blocks of "
					 "overflow.dat: %s", n, strerror(-err));
				return err;
			}
		}
		s->u = (struct unit){ .s = lblk, .n = n, .base = base, .cursor = lblk,
				      .active = 1 };
		return 1;
	}
	return 2;
}

/*
 * Adds the unit's entries from its cursor to the batch, up to cap items.
 * Between batches the volume may have changed (online): a block that has
 * no entry now, or a ZERO one, or is past the end or busy, is left alone
 * and its slot given back.
 */
static void unit_take(struct pass *s, uint64_t nblk, uint64_t cap)
{
	const struct hc_defrag_io *io = s->io;
	struct unit *u = &s->u;
	uint64_t end = u->s + u->n, l;
	struct hc_phys p;
	while (s->nit < cap && u->cursor < end) {
		if (hc_imap_next(s->m, u->cursor, &l, &p) || l >= end) {
			unit_skip(s, u->cursor, end);
			u->cursor = end;
			break;
		}
		unit_skip(s, u->cursor, l);
		u->cursor = l + 1;
		if (l >= nblk || hc_phys_is_zero(&p) || (io->skip && io->skip(io->arg, l))) {
			if (l >= nblk)
				s->res->kept_eof++;
			else if (!hc_phys_is_zero(&p))
				s->res->kept_busy++;
			unit_skip(s, l, l + 1);
			continue;
		}
		s->it[s->nit++] = (struct item){ .lblk = l, .p = p, .to = u->base + (l - u->s) };
	}
	if (u->cursor >= end)
		u->active = 0;
}

/* Copies, syncs, re-points and commits the batch in s->it. */
static int swap_write(struct pass *s)
{
	int err = 0;
	s->fd = s->io->file_fd(s->io->arg, HC_PHYS_OVERFLOW);
	if (s->fd < 0) {
		err = s->fd;
		snprintf(s->msg, s->msglen, "opening overflow.dat: %s", strerror(-err));
		goto drop;
	}
	/* write runs: logically and (so) newly physically consecutive, RUN_MAX at most */
	s->nruns = 0;
	for (size_t i = 0; i < s->nit;) {
		size_t k = i + 1;
		while (k < s->nit && k - i < RUN_MAX && s->it[k].lblk == s->it[k - 1].lblk + 1 &&
		       s->it[k].to == s->it[k - 1].to + 1)
			k++;
		s->runs[s->nruns++] = (struct run){ .i = i, .n = k - i, .to = s->it[i].to };
		i = k;
	}
	for (size_t i = 0; !err && i < s->nruns; i++)
		err = relocate_run(s, &s->runs[i], s->fd);
	if (!err && fdatasync(s->fd) < 0) {
		err = -errno;
		snprintf(s->msg, s->msglen, "syncing overflow.dat: %s", strerror(-err));
	}
	if (err)
		goto drop;
	/* The copies are durable: now the entries may point at them (I4). */
	size_t i;
	hold(s, HC_DEFRAG_HOLD_MAP, 1);
	for (i = 0; i < s->nit; i++) {
		const struct item *it = &s->it[i];
		struct hc_phys np = { .file = HC_PHYS_OVERFLOW, .block = it->to };
		if ((err = hc_journal_map_set(s->j, s->m, it->lblk, &np, NULL))) {
			snprintf(s->msg, s->msglen, "pointing block %" PRIu64 " at block %" PRIu64
				 " of overflow.dat: %s", it->lblk, np.block, strerror(-err));
			break;
		}
	}
	hold(s, HC_DEFRAG_HOLD_MAP, 0);
	if (err) {
		/* the entries set so far point at durable copies */
		items_drop(s, i);
		unit_drop(s);
		return err;
	}
	if ((err = hc_journal_commit(s->j))) {
		snprintf(s->msg, s->msglen, "committing the journal: %s", strerror(-err));
		unit_drop(s);
		return err;
	}
	punch_freed(s);
	return 0;
drop:
	items_drop(s, 0);
	unit_drop(s);
	return err;
}

static int swap_batch(struct pass *s)
{
	int err;
	if (!s->dry_run && (err = swap_write(s)))
		return err;
	s->res->relocated += s->nit;
	s->res->bytes += s->nit * (uint64_t)HC_BLOCK_SIZE;
	s->res->batches++;
	/* Online the daemon's timer checkpoints (not under the volume's lock). */
	if (!s->dry_run && !s->io->begin && (err = hc_journal_maybe_checkpoint(s->j)) < 0) {
		snprintf(s->msg, s->msglen, "checkpointing the journal: %s", strerror(-err));
		return err;
	}
	return 0;
}

int hc_defrag_swap(struct hc_journal *j, uint32_t vid, uint64_t size,
		   const struct hc_defrag_home_opts *o, const struct hc_defrag_io *io,
		   struct hc_defrag_result *res, char *msg, size_t msglen)
{
	uint32_t cap = o && o->batch_blocks ? o->batch_blocks : HC_DEFRAG_BATCH;
	memset(res, 0, sizeof(*res));
	msg[0] = 0;
	struct pass s = { .j = j, .vid = vid, .fd = -1, .size = size, .io = io, .res = res,
			  .msg = msg, .msglen = msglen, .dry_run = o && o->dry_run,
			  .every = o && o->every };
	int err = pass_init(&s, cap);
	if (err)
		goto out;
	uint64_t from = 0;
	int more = 1;
	while (more) {
		if (io->begin && io->begin(io->arg, &s.size))
			break;	/* the volume is going away */
		uint64_t nblk = (s.size + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE, visited = 0;
		s.nit = 0;
		while (s.nit < cap) {
			if (!s.u.active) {
				int r = unit_find(&s, &from, nblk, &visited, cap);
				if (r == 0)
					more = 0;
				if (r < 0)
					err = r;
				if (r != 1)
					break;
			}
			unit_take(&s, nblk, cap);
		}
		if (!err && s.nit)
			err = swap_batch(&s);
		else if (err)
			items_drop(&s, 0);
		if (io->end)
			io->end(io->arg);
		if (err)
			break;
		if (s.nit && io->batch_done && io->batch_done(io->arg, res)) {
			err = -EINTR;
			break;
		}
	}
	unit_drop(&s);	/* stopped in the middle of a run */
out:
	pass_free(&s);
	return err;
}
