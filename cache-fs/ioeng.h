/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * I/O engines: physical reads, writes and syncs on backing files.
 * Three engines share one ops table shape (ioeng_uring.c, ioeng_aio.c,
 * ioeng_sync.c); one is chosen at mount with -o io=.  Asynchronous engines
 * run one completion thread that calls io->done(); the sync engine does the
 * I/O in the submitting thread and calls io->done() before submit returns.
 *
 * Inline when idle: an asynchronous engine runs a read in the submitting
 * thread (preadv, done() before submit returns, as the sync engine) when no
 * other read of the engine is in flight (write-backs may be) and the caller
 * set may_inline: the last (or only) read it issues for what it waits on, so
 * that the other reads of a request are not held back behind an inline one.
 * At queue depth 1 the hand-over to the completion thread is an extra
 * wake-up on the way of every miss (4 KiB O_DIRECT random reads through the
 * mount at depth 1: 9.3k-10.2k/s with io_uring, 13.5k/s inline); as soon as
 * a second read is in flight the engine is asynchronous again, so at most
 * one thread ever waits in such a read: no FUSE worker is parked per
 * outstanding I/O.  Writes and syncs are
 * always asynchronous (write-back runs ahead of need).
 *
 * Contract for callers: never hold a lock across hc_ioeng_submit() that
 * io->done() takes.  At most `depth` I/Os are in flight; submit waits for a
 * free place beyond that (bounded, never allocates).  done() must not submit.
 * A short write is continued by the engine; a short read means end of file
 * and is reported as such (res < requested bytes).
 */
#ifndef HC_IOENG_H
#define HC_IOENG_H

#include <semaphore.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/*
 * Submission and completion meet through the kernel (io_uring rings, AIO
 * events), which ThreadSanitizer cannot see: tell it that everything done
 * up to the hand-over to the kernel happens before the completion.
 */
#if defined(__SANITIZE_THREAD__)
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define HC_TSAN_RELEASE(p) __tsan_release(p)
#define HC_TSAN_ACQUIRE(p) __tsan_acquire(p)
#else
#define HC_TSAN_RELEASE(p) do { } while (0)
#define HC_TSAN_ACQUIRE(p) do { } while (0)
#endif

enum hc_io_op { HC_IO_READ, HC_IO_WRITE, HC_IO_FSYNC, HC_IO_FDATASYNC };

struct hc_io {
	enum hc_io_op op;
	int fd;
	uint64_t off;
	struct iovec *iov;	/* engine may advance it on short writes */
	int iovcnt;
	ssize_t res;		/* bytes transferred or -errno, set before done() */
	void (*done)(struct hc_io *io);
	void *priv;
	uint32_t saved;		/* write-back hook: blocks it did not need to write */
	uint8_t may_inline;	/* a read the caller waits for alone: may run inline */
	uint8_t may_route;	/* a read nobody waits on in this thread: may go local */
	size_t done_bytes;	/* engine-private: progress of a short write */
	void *eng_priv;		/* engine-private */
};

struct hc_ioeng;

struct hc_ioeng_ops {
	const char *name;
	int (*init)(struct hc_ioeng *e, unsigned depth);
	void (*fini)(struct hc_ioeng *e);
	/* Queues one I/O; returns 0 or -errno (then done() is not called). */
	int (*submit)(struct hc_ioeng *e, struct hc_io *io);
};

struct hc_ioeng {
	const struct hc_ioeng_ops *ops;
	unsigned depth;
	sem_t slots;		/* free places, counts down from depth */
	int inline_idle;	/* a read runs inline when no other read is in flight */
	unsigned reads;		/* atomic: reads submitted and not completed */
	uint64_t inlined;	/* atomic: reads run inline */
	void *priv;
};

extern const struct hc_ioeng_ops hc_ioeng_uring_ops;
extern const struct hc_ioeng_ops hc_ioeng_aio_ops;
extern const struct hc_ioeng_ops hc_ioeng_sync_ops;

/*
 * Creates the engine named "uring", "aio" or "sync".  When "uring" cannot be
 * set up (kernel without io_uring, io_uring_disabled, seccomp) and fallback
 * is set, logs one line and falls back to "aio", then "sync".
 * Returns 0, -EINVAL for an unknown name, or the engine's -errno.
 */
int hc_ioeng_create(const char *name, unsigned depth, int fallback,
		    struct hc_ioeng **out) __attribute__((warn_unused_result));
void hc_ioeng_destroy(struct hc_ioeng *e);
const char *hc_ioeng_name(const struct hc_ioeng *e);

/* Submits io; io->done() runs exactly once unless this returns an error
 * (possibly before this returns, see "inline when idle" above). */
int hc_ioeng_submit(struct hc_ioeng *e, struct hc_io *io);
/* Submits io and waits for it; returns io->res (io->done is overwritten). */
ssize_t hc_ioeng_run(struct hc_ioeng *e, struct hc_io *io);

/* Turns "inline when idle" on (default for asynchronous engines) or off. */
void hc_ioeng_set_inline(struct hc_ioeng *e, int on);

/*
 * Tells the engine that the calling thread has other requests waiting for
 * it (busy) or not: a busy thread's reads never run inline.  Per thread,
 * not busy until set.
 */
void hc_ioeng_thread_busy(int busy);

/*
 * Local rings: a thread that owns an io_uring of its own (a FUSE queue
 * thread, furing.c) may take the reads it submits with may_route set: they
 * go to its ring instead of the engine's thread, so that their completion
 * (and the reply it sends) runs in the thread that will also commit the
 * reply, without a hand-over between threads.  The thread must reap its
 * ring and call hc_ioeng_complete_local() for each such read; it must never
 * wait for one of them outside its loop, which is what may_route promises.
 * Such reads hold no engine slot (the ring's owner bounds them) but count
 * as in flight for "inline when idle".  Per thread; NULL turns it off.
 */
struct hc_ioeng_local {
	int (*submit)(void *ctx, struct hc_io *io);	/* queue on the ring: 0 or -errno */
	void *ctx;
};
void hc_ioeng_set_local(const struct hc_ioeng_local *l);
void hc_ioeng_complete_local(struct hc_ioeng *e, struct hc_io *io, ssize_t res);
/* Reads run inline so far. */
uint64_t hc_ioeng_inlined(const struct hc_ioeng *e);

/* For engines: finishes io (continuing a short write), frees its slot. */
void hc_ioeng_complete(struct hc_ioeng *e, struct hc_io *io, ssize_t res);
/* Blocks every signal in the calling (engine) thread. */
void hc_ioeng_block_signals(void);

#endif
