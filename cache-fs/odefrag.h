/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Online reconcile-defrag (DESIGN.md "reconcile-defrag"): one job at a time
 * per daemon, run by its own thread over swap-reconcile/defrag.c's engine
 * under the volumes' locks, rate-limited and yielding to guest I/O; asked
 * for over the control socket (defrag_start/status/cancel, hectl defrag,
 * reconcile-defrag --online).  An unfinished job is kept in
 * BACKING/defrag.job and resumed at the next mount.
 */
#ifndef HC_ODEFRAG_H
#define HC_ODEFRAG_H

#include <stddef.h>

#include <json-c/json.h>

struct hc_defrag_locality;
struct hc_fs;
struct hc_odefrag;

enum { HC_ODEFRAG_HOME, HC_ODEFRAG_SWAP };

#define HC_ODEFRAG_RATE 32.0	/* MiB/s written, the default */

/* A job runner for fs (no thread yet).  0 or -ENOMEM. */
int hc_odefrag_create(struct hc_fs *fs, struct hc_odefrag **out)
	__attribute__((warn_unused_result));
/*
 * Stops a running job after its current batch (everything done so far is
 * durable) and frees od; the job file stays, so the next mount resumes.
 * NULL-safe.
 */
void hc_odefrag_destroy(struct hc_odefrag *od);
/* Starts the job BACKING/defrag.job describes, if there is one (logged). */
void hc_odefrag_resume(struct hc_odefrag *od);
/*
 * Starts a job: policy HC_ODEFRAG_*, rate MiB/s written (0: unlimited),
 * volumes "DOMAIN/NAME" (n == 0: every volume with map entries).
 * 0; -EBUSY (a job is running), -ENOENT (no such volume), -EINVAL,
 * -EOPNOTSUPP, -errno; one line in msg.
 */
int hc_odefrag_start(struct hc_odefrag *od, int policy, double rate, const char *const *volumes,
		     size_t n, char *msg, size_t msglen) __attribute__((warn_unused_result));
/* Asks a running job to stop after its current batch; 0, -ENOENT when none runs. */
int hc_odefrag_cancel(struct hc_odefrag *od);
/*
 * A locality as JSON (blocks, indirections, zero, runs, pairs, jump_sum,
 * mean_jump): the shape of defrag_status and of reconcile-defrag --json.
 */
struct json_object *hc_odefrag_locality_json(const struct hc_defrag_locality *l);
/* Adds the job's state to out (doc/ctl-protocol.md "defrag_status"). */
void hc_odefrag_status(struct hc_odefrag *od, struct json_object *out);

struct hc_volume;
/*
 * Before a truncate of t that would cut its home blocks from `from` on
 * while entries (of any volume, t too) point at them: gives every such
 * entry its data at its own volume's home and drops it, as policy home
 * does (hc_defrag_home), or, where that home block is itself shared (I3),
 * copies the data to a new overflow.dat block and points the entry there
 * (hc_defrag_swap, every).  Each volume's batches run under its rlock and
 * follow I4.  The caller holds t's iolock (no copy_file_range out of t
 * meanwhile) and checks again after: a share made meanwhile still refuses
 * the truncate.  0 or -errno (logged).
 */
int hc_odefrag_unshare(struct hc_fs *fs, struct hc_volume *t, uint64_t from);

#endif
