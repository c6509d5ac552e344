/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control socket BACKING/ctl.sock (doc/ctl-protocol.md): one thread
 * serving hectl, agents and defrag, one JSON object per line.  Requests run
 * on that thread one at a time; none holds a data-path lock for long (the
 * longest are flush and map, which write back dirty blocks).
 */
#ifndef HC_CTL_H
#define HC_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "volume.h"

struct hc_ctl_info {
	struct hc_fs *fs;
	const char *backing;		/* as given on the command line */
	const char *mountpoint;
	const char *io_engine;
	const char *mrc_mode;		/* "off", "exact" or "sampled" */
	uint64_t ghost_bytes;		/* reach of the curves past M */
	uid_t owner;			/* served besides root */
	/* Tell the kernel a name or an inode changed behind its back; may be NULL. */
	void (*inval_entry)(void *arg, uint64_t parent_ino, const char *name);
	void (*inval_inode)(void *arg, uint64_t ino);
	void *arg;
};

struct hc_ctl;

/* Creates the request handler (no socket yet).  Returns 0 or -ENOMEM. */
int hc_ctl_create(const struct hc_ctl_info *info, struct hc_ctl **out)
	__attribute__((warn_unused_result));

/*
 * Binds ctl.sock in the backing directory dirfd (mode 0600; a stale socket
 * is replaced: the caller holds the backing directory's lock) and starts
 * the serving thread.  Returns 0 or -errno.
 */
int hc_ctl_listen(struct hc_ctl *c, int dirfd);

/*
 * Handles one request line (no newline) outside any connection, as the
 * fuzzer and unit tests do; agent requests are refused.  Returns the reply
 * line (malloc'd, no newline).
 */
char *hc_ctl_handle(struct hc_ctl *c, const char *line, size_t len);

/* Stops the thread, closes every connection, removes ctl.sock; NULL-safe. */
void hc_ctl_destroy(struct hc_ctl *c);

#endif
