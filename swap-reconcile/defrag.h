/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * reconcile-defrag's engine (DESIGN.md "reconcile-defrag"): the locality of
 * a volume's layout, and policy `home` -- copy every indirected block of a
 * volume back to its home offset and drop the indirection -- over a journal
 * opened offline (journal.h) or the daemon's own (online: the hooks of
 * struct hc_defrag_io keep its other writers out, cache-fs/odefrag.c),
 * and policy `swap` -- relocate the targets so that logically consecutive
 * entries become physically consecutive -- over either.
 *
 * Offline the caller owns the journal and the files alone (the backing
 * directory's lock, sb.h, keeps the daemon out) and leaves the online
 * hooks NULL.
 */
#ifndef HC_DEFRAG_H
#define HC_DEFRAG_H

#include <stddef.h>
#include <stdint.h>

#include "journal.h"

/*
 * The layout of one volume's logical blocks [0, blocks), where block b lives
 * at phys(b): its map entry, or its home block (vid, b) when it has none.
 * See reconcile-defrag(8) "LOCALITY" for the definitions.
 */
struct hc_defrag_locality {
	uint64_t blocks;	/* logical blocks: the home file's size, rounded up */
	uint64_t entries;	/* map entries (indirections), ZERO included */
	uint64_t zero;		/* of which ZERO */
	uint64_t runs;		/* maximal physically consecutive runs over [0, blocks) */
	uint64_t pairs;		/* pairs (b, b+1), both non-ZERO, both in one file */
	uint64_t jump_sum;	/* sum of |phys(b+1) - phys(b) - 1| over those pairs */
};

/* The locality of map m (NULL: no map, every block at home) of volume vid. */
void hc_defrag_locality(const struct hc_imap *m, uint32_t vid, uint64_t blocks,
			struct hc_defrag_locality *out);
/* sum += l, field by field. */
void hc_defrag_locality_add(struct hc_defrag_locality *sum, const struct hc_defrag_locality *l);
/* jump_sum / pairs, 0 without pairs. */
double hc_defrag_mean_jump(const struct hc_defrag_locality *l);

/* What one call of hc_defrag_home did (or, with dry_run, would do). */
struct hc_defrag_result {
	uint64_t moved;		/* blocks copied home, their entries dropped */
	uint64_t zeroed;	/* ZERO entries whose home block was punched, then dropped */
	uint64_t bytes;		/* bytes written at home */
	uint64_t kept_shared;	/* entries left: home block another entry's target (I3) */
	uint64_t kept_eof;	/* entries left: past the end of the home file */
	uint64_t kept_busy;	/* entries left: online, home block being written */
	uint64_t relocated;	/* policy swap: blocks copied to new overflow blocks */
	uint64_t ovf_freed;	/* overflow.dat blocks this call freed and punched */
	uint64_t batches;	/* commits */
};

/*
 * Adds one pass's result to a volume's running total: the counts of work
 * done are summed, the kept_* counts are the last pass's (what is left).
 */
void hc_defrag_result_add(struct hc_defrag_result *sum, const struct hc_defrag_result *pass);

/* How hc_defrag_home reaches the files and reports progress. */
struct hc_defrag_io {
	/*
	 * A descriptor to read physical file `file` (a volume id, or
	 * HC_PHYS_OVERFLOW; that one must be writable, for punching) from, or
	 * -errno (-ENOENT: no such file).  Owned by the caller.
	 */
	int (*file_fd)(void *arg, uint32_t file);
	/*
	 * Called after each committed batch with this call's totals so far;
	 * may sleep (rate limit).  Non-zero stops the pass after that batch
	 * (hc_defrag_home then returns -EINTR, everything done so far durable).
	 * NULL: never stops.
	 */
	int (*batch_done)(void *arg, const struct hc_defrag_result *sofar);
	/*
	 * Online only (NULL offline).  begin is called before each batch is
	 * formed: it keeps every other writer of the volume's home file and
	 * map out until end (the daemon's rlock), sets *size to the volume's
	 * size now, and returns non-zero to end the pass early (the volume is
	 * going away; hc_defrag_home then returns 0).  hold(arg, what, 1/0)
	 * brackets map changes (HC_DEFRAG_HOLD_MAP: readers out) and the
	 * check-and-punch of freed overflow blocks (HC_DEFRAG_HOLD_OVF: no
	 * allocation meanwhile).  skip(arg, lblk) != 0 leaves an entry alone
	 * in this batch (its home block is being written).
	 */
	int (*begin)(void *arg, uint64_t *size);
	void (*end)(void *arg);
	void (*hold)(void *arg, int what, int on);
	int (*skip)(void *arg, uint64_t lblk);
	/*
	 * Online: overflow blocks [start, start + n) were just reserved for
	 * the volume's data (called under HC_DEFRAG_HOLD_OVF): the daemon
	 * records whose data they hold (dedup never crosses domains, I2).
	 */
	void (*allocated)(void *arg, uint64_t start, uint64_t n);
	void *arg;
};

enum { HC_DEFRAG_HOLD_MAP, HC_DEFRAG_HOLD_OVF };

struct hc_defrag_home_opts {
	uint32_t batch_blocks;	/* entries per batch (write, sync, drop, commit); 0: 1024 */
	int dry_run;		/* classify only: no I/O, no record */
	int every;		/* swap: every entry not skipped moves, alone or in place too */
};

#define HC_DEFRAG_BATCH 1024u

/*
 * One pass of policy home over volume vid: home file fd (read-write), size
 * bytes.  For each entry of the volume's map, in logical order: an entry
 * whose home block is itself a target (hc_refcount_get > 0) is left alone
 * (I3: its home holds another volume's data) and counted in kept_shared, one
 * past the end of the home file in kept_eof; any other gets its data
 * written at home (a ZERO entry: the home block punched, zeros written
 * where punching is not supported).  Per batch, I4: the home file is synced
 * (fdatasync; fsync when the batch punched) before the entries are dropped
 * (hc_journal_map_clear, one record per physically consecutive run) and
 * committed; overflow.dat blocks left without references are punched only
 * after that commit.  A crash at any point leaves every entry either still
 * there (pointing at its unchanged target) or dropped with its data durable
 * at home, so a rerun continues.  Entries freed by this pass (another
 * volume's home blocks no longer shared) may let a next pass move blocks
 * kept in this one.
 *
 * Online, the home-block check, the copy, the sync and the drop of one batch
 * all happen between begin and end, so no write-back of the volume can
 * write the home block or change the entry in between.
 *
 * Returns 0; -EINTR when batch_done asked to stop; else -errno or the
 * journal's error with one line in msg (the batch in flight is not dropped:
 * its entries stay, pointing at their unchanged targets).
 */
int hc_defrag_home(struct hc_journal *j, uint32_t vid, int fd, uint64_t size,
		   const struct hc_defrag_home_opts *o, const struct hc_defrag_io *io,
		   struct hc_defrag_result *res, char *msg, size_t msglen)
	__attribute__((warn_unused_result));

/*
 * One pass of policy swap over volume vid (size bytes): runs of logically
 * consecutive non-ZERO entries whose targets are not physically
 * consecutive get their data copied into newly allocated consecutive
 * overflow.dat blocks and their entries re-pointed there (I4: the copies
 * are synced before the records; freed old overflow blocks are punched
 * after the commit).  The volume's home file is not written.  Same
 * contract as hc_defrag_home otherwise (io hooks, batches, -EINTR, msg).
 */
int hc_defrag_swap(struct hc_journal *j, uint32_t vid, uint64_t size,
		   const struct hc_defrag_home_opts *o, const struct hc_defrag_io *io,
		   struct hc_defrag_result *res, char *msg, size_t msglen)
	__attribute__((warn_unused_result));

#endif
