/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * FUSE over io_uring (Linux 6.14+): requests arrive in per-CPU rings of
 * registered buffers instead of through read(2) of /dev/fuse, and a reply
 * is committed together with the fetch of the next request.  See DOC:
 * FUSE over io_uring in furing.c.
 */
#ifndef HC_FURING_H
#define HC_FURING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct fuse_session;
struct hc_furing;

/* The INIT flag (FUSE_OVER_IO_URING, in flags2 as bit 41 - 32). */
#define HC_FURING_INIT_FLAG (1ULL << 41)

/*
 * Creates the (idle) queues for session se talking to /dev/fuse fd, one per
 * possible CPU (-E2BIG beyond 64: their buffers would lock too much); volume
 * reads their threads submit go to their own rings (hc_ioeng_set_local()).
 * Nothing is registered until hc_furing_start().  Returns 0 or -errno.
 */
int hc_furing_create(struct fuse_session *se, int fd, struct hc_furing **out)
	__attribute__((warn_unused_result));

/*
 * Before FUSE_OVER_IO_URING goes into the INIT reply: starts the queue
 * threads, which make their rings and buffers (payload of max_payload bytes
 * each).  Returns 0 or -errno (then the reply must not ask for rings).
 */
int hc_furing_prepare(struct hc_furing *fr, size_t max_payload);

/*
 * After the kernel took the INIT reply: every queue registers its buffers
 * and starts serving.  Returns 0 or -errno; after an error the kernel has
 * given up the rings and requests keep coming through /dev/fuse.
 */
int hc_furing_start(struct hc_furing *fr);

/*
 * The reply hook: when iov[0]'s fuse_out_header answers a request that came
 * through a ring, copies the reply into that request's buffers, commits it
 * and returns 1 (*sent = bytes); returns 0 for requests that came through
 * /dev/fuse and for notifications.
 */
int hc_furing_reply(struct hc_furing *fr, const struct iovec *iov, int count, ssize_t *sent);

unsigned hc_furing_queues(const struct hc_furing *fr);
unsigned hc_furing_depth(const struct hc_furing *fr);

/*
 * In a queue thread serving a request: that request's payload buffer (page
 * aligned, *len bytes), where its reply will be copied from (a reply whose
 * data already sits there in place is not copied).  NULL elsewhere.
 */
void *hc_furing_payload(size_t *len);

/*
 * Stops the queue threads and their rings (after the session loop
 * returned); later replies go to /dev/fuse.  The memory stays until
 * hc_furing_destroy(), for replies still on their way from the I/O engine.
 */
void hc_furing_stop(struct hc_furing *fr);

/* Stops (if not yet) and frees; after the last reply was sent. */
void hc_furing_destroy(struct hc_furing *fr);

#endif
