/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The metadata journal of a backing directory: meta.log (records) and
 * meta.ckpt (checkpoint), formats in include/hecache/format.h and
 * doc/format.md.  The journal owns the persistent metadata state -- every
 * volume's indirection map (imap.h) and the reference counts and overflow
 * allocator (refcount.h) -- rebuilds it at open, and is the only way to
 * change a map: each change is applied in RAM and appended as one record in
 * the same step, so what replay rebuilds is what the daemon saw.
 *
 * Use, on the write path of one block (the caller holds the volume's lock):
 *   1. decide zero / share / CoW / in place from hc_imap_lookup and
 *      hc_refcount_get; for CoW, hc_refcount_alloc a block of overflow.dat;
 *   2. write the data and make it durable (fdatasync) -- I4;
 *   3. hc_journal_map_set (or hc_journal_map_clear to send the block home);
 *   4. at fsync/flush and on a short timer, hc_journal_commit -- I5; on the
 *      control path's timer, hc_journal_maybe_checkpoint.
 *
 * Locking: one journal mutex serializes appends, commits' bookkeeping and
 * checkpoint snapshots; it nests inside the volume locks and outside the
 * refcount lock.  Lookups need only the volume lock: a map changes only
 * inside hc_journal_map_* (volume lock and journal mutex both held).  No I/O
 * runs under the journal mutex; appends never wait for I/O.
 */
#ifndef HC_JOURNAL_H
#define HC_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#include "imap.h"
#include "refcount.h"

#define HC_JOURNAL_CKPT_BYTES (64ull << 20)	/* default checkpoint threshold */

struct hc_journal;

struct hc_journal_opts {
	const char *name;	/* backing directory as the user knows it (messages) */
	uint64_t ckpt_bytes;	/* log size that calls for a checkpoint; 0: default */
};

struct hc_journal_stats {
	uint64_t seq;		/* last record appended */
	uint64_t durable;	/* every record up to this one is durable */
	uint64_t ckpt_seq;	/* sequence of meta.ckpt */
	uint64_t log_bytes;	/* size of meta.log */
	uint64_t buffered;	/* records appended, not yet written */
	uint64_t commits;	/* batches written */
	uint64_t checkpoints;	/* checkpoints written */
	uint64_t replayed;	/* records applied at open */
	uint64_t torn_bytes;	/* torn tail dropped at open */
	uint64_t nvols;		/* maps */
	uint64_t entries;	/* map entries, all maps */
};

/*
 * Opens the journal of the backing directory dirfd: loads meta.ckpt,
 * replays meta.log and cuts off a torn tail.  A fresh directory has
 * neither: meta.log is created here, meta.ckpt by the first checkpoint.
 *
 * Refused, with nothing written and one line in msg naming the file and the
 * offset: a checkpoint that is truncated, fails a checksum or disagrees with
 * itself (-HC_ECORRUPT), a newer major version (-HC_EVERSION), and a bad
 * log record followed by a later intact commit (-HC_ECORRUPT: that record
 * was durable, so it is corruption, not a crash).  A bad record with
 * nothing committed after it is the torn tail of the commit a crash
 * interrupted: dropped with a warning.  Other errors: -errno.
 */
int hc_journal_open(int dirfd, const struct hc_journal_opts *o, struct hc_journal **out,
		    char *msg, size_t msglen) __attribute__((warn_unused_result));

/*
 * Frees the journal and its state.  Writes nothing: commit (and checkpoint)
 * first for a clean shutdown.  NULL is fine.
 */
void hc_journal_close(struct hc_journal *j);

/*
 * The map of volume vol (0..HC_PHYS_VOL_MAX), created empty when it has
 * none.  0 and *out (valid until close), -EINVAL or -ENOMEM.
 */
int hc_journal_imap(struct hc_journal *j, uint32_t vol, struct hc_imap **out);
/* The refcount table and overflow allocator, valid until close. */
struct hc_refcount *hc_journal_refcount(struct hc_journal *j);

/*
 * Sets lblk of map m (from hc_journal_imap; caller holds its volume's
 * lock) to *p and appends one record: counts follow (p + 1, old target - 1;
 * an overflow block left with none is freed once this record is durable).
 * I4: the contents of p must already be durable -- the caller wrote and
 * synced them, or p's data was durable and unchanged since -- because this
 * record may reach the disk at any moment from now on; or, with a barrier
 * (hc_journal_set_barrier), written and known to the barrier before this
 * call.  A p that is an
 * overflow block nothing points at yet must be reserved (hc_refcount_alloc).
 * Returns 0 with *seq (if not NULL) = the record's sequence; -EINVAL (bad
 * address, p is lblk's own home block: use map_clear, unreserved overflow
 * block), -EOVERFLOW (p has HC_REFCOUNT_MAX references: store a copy),
 * -ENOMEM, or the journal's sticky I/O error; on error nothing changed.
 */
int hc_journal_map_set(struct hc_journal *j, struct hc_imap *m, uint64_t lblk,
		       const struct hc_phys *p, uint64_t *seq);

/*
 * Sends [first, first + count) of m home (count UINT64_MAX: to the end;
 * discard, truncate, volume removal) and appends one record, even when the
 * range held no entry (check with hc_imap_next to avoid that).  Counts of
 * the dropped targets fall as for map_set.  0 with *seq, -EINVAL (count 0),
 * -ENOMEM or the sticky error; on error nothing changed.
 */
int hc_journal_map_clear(struct hc_journal *j, struct hc_imap *m, uint64_t first,
			 uint64_t count, uint64_t *seq);

/*
 * I5: makes every record appended before the call durable (one write and
 * one fdatasync for all of them, shared with concurrent callers: group
 * commit), then releases the overflow blocks their records freed.  0, or
 * the I/O error, which is sticky: a journal that failed to write refuses
 * every later change and commit (the page cache's state is unknown; reopen
 * to recover from what is on disk).
 */
int hc_journal_commit(struct hc_journal *j);

/*
 * Writes the whole state to meta.ckpt (meta.ckpt.tmp, fsync, rename, fsync
 * of the directory) and empties meta.log.  Appends go on meanwhile; commits
 * wait for it.  The state is snapshotted under the journal mutex (about
 * 30 ms per million entries); the I/O runs outside it.  0 or -errno (a
 * failure before the rename leaves everything as it was).
 */
int hc_journal_checkpoint(struct hc_journal *j);
/*
 * Installs fn, called by every commit after it has taken its batch of
 * records and by every checkpoint after its snapshot, before either writes
 * anything (outside the journal's mutex, possibly from several threads at
 * once): it makes durable the data that records appended so far point at
 * (the daemon fdatasyncs the files written since the last call).  Non-zero
 * (-errno) fails that commit or checkpoint, and a failed commit is sticky as
 * a write error.  So a record may be appended as soon as its data is
 * written, not synced.  NULL: no barrier (the caller syncs before appending).
 */
void hc_journal_set_barrier(struct hc_journal *j, int (*fn)(void *arg), void *arg);
/* Checkpoints when meta.log has grown past the threshold: 1 if it did, 0, -errno. */
int hc_journal_maybe_checkpoint(struct hc_journal *j);

void hc_journal_stats(struct hc_journal *j, struct hc_journal_stats *st);

/*
 * Cross-checks the state (fsck's core): every map's structure, every count
 * against the map entries that point at the block, every referenced
 * overflow block allocated and below the high-water mark.  0, or
 * -HC_ECORRUPT with the first problem in msg; -ENOMEM.
 */
int hc_journal_verify(struct hc_journal *j, char *msg, size_t msglen);

#endif
