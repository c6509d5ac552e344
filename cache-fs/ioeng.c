// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Engine selection, bounded submission and the completion rule shared by
 * all engines (ioeng.h).  A short write is resubmitted for the remainder
 * from the completion path, holding on to its slot, so callers only ever see
 * a full transfer or an error.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "ioeng.h"
#include "log.h"

static const struct hc_ioeng_ops *const engines[] = {
	&hc_ioeng_uring_ops, &hc_ioeng_aio_ops, &hc_ioeng_sync_ops,
};

static int try_create(const struct hc_ioeng_ops *ops, unsigned depth, struct hc_ioeng **out)
{
	struct hc_ioeng *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->ops = ops;
	e->depth = depth;
	e->inline_idle = ops != &hc_ioeng_sync_ops;
	sem_init(&e->slots, 0, depth);
	int err = ops->init(e, depth);
	if (err) {
		sem_destroy(&e->slots);
		free(e);
		return err;
	}
	*out = e;
	return 0;
}

int hc_ioeng_create(const char *name, unsigned depth, int fallback, struct hc_ioeng **out)
{
	size_t n = sizeof(engines) / sizeof(engines[0]);
	size_t i;
	for (i = 0; i < n; i++)
		if (!strcmp(engines[i]->name, name))
			break;
	if (i == n)
		return -EINVAL;
	int err = try_create(engines[i], depth, out);
	while (err && fallback && i + 1 < n) {
		hc_log(LOG_WARNING, "io engine %s unavailable (%s); falling back to %s",
		       engines[i]->name, strerror(-err), engines[i + 1]->name);
		i++;
		err = try_create(engines[i], depth, out);
	}
	return err;
}

void hc_ioeng_destroy(struct hc_ioeng *e)
{
	if (!e)
		return;
	e->ops->fini(e);
	sem_destroy(&e->slots);
	free(e);
}

const char *hc_ioeng_name(const struct hc_ioeng *e)
{
	return e->ops->name;
}

static size_t iov_total(const struct iovec *iov, int cnt)
{
	size_t t = 0;
	for (int i = 0; i < cnt; i++)
		t += iov[i].iov_len;
	return t;
}

void hc_ioeng_set_inline(struct hc_ioeng *e, int on)
{
	e->inline_idle = on && e->ops != &hc_ioeng_sync_ops;
}

static __thread int thread_busy;
static __thread const struct hc_ioeng_local *local;

void hc_ioeng_thread_busy(int busy)
{
	thread_busy = busy;
}

void hc_ioeng_set_local(const struct hc_ioeng_local *l)
{
	local = l;
}

uint64_t hc_ioeng_inlined(const struct hc_ioeng *e)
{
	return __atomic_load_n(&e->inlined, __ATOMIC_RELAXED);
}

int hc_ioeng_submit(struct hc_ioeng *e, struct hc_io *io)
{
	/* A read for the calling thread's own ring (hc_ioeng_set_local()) holds no slot. */
	int own = local && io->op == HC_IO_READ && io->may_route && e->ops != &hc_ioeng_sync_ops;
	if (!own)
		while (sem_wait(&e->slots) < 0 && errno == EINTR)
			;
	io->done_bytes = 0;
	/*
	 * Inline when idle (ioeng.h).  An inline read counts in reads until it
	 * completes, so two submitters never both see none: at most one read
	 * runs inline at a time.  It holds a slot, as the engine's reads do: a
	 * read for the own ring runs inline only when it can take one at once.
	 */
	if (io->op == HC_IO_READ &&
	    __atomic_fetch_add(&e->reads, 1, __ATOMIC_ACQ_REL) == 0 && e->inline_idle &&
	    io->may_inline && !thread_busy && (!own || sem_trywait(&e->slots) == 0)) {
		__atomic_fetch_add(&e->inlined, 1, __ATOMIC_RELAXED);
		return hc_ioeng_sync_ops.submit(e, io);
	}
	int err;
	if (own) {
		io->eng_priv = e;
		err = local->submit(local->ctx, io);
	} else {
		err = e->ops->submit(e, io);
	}
	if (err) {
		if (io->op == HC_IO_READ)
			__atomic_fetch_sub(&e->reads, 1, __ATOMIC_RELEASE);
		if (!own)
			sem_post(&e->slots);
	}
	return err;
}

/* The end of every I/O: its result, its place given back, its done(). */
static void finish(struct hc_ioeng *e, struct hc_io *io, ssize_t res, int slot)
{
	io->res = res;
	if (io->op == HC_IO_READ)
		__atomic_fetch_sub(&e->reads, 1, __ATOMIC_RELEASE);
	if (slot)
		sem_post(&e->slots);
	io->done(io);
}

void hc_ioeng_complete_local(struct hc_ioeng *e, struct hc_io *io, ssize_t res)
{
	finish(e, io, res, 0);
}

void hc_ioeng_complete(struct hc_ioeng *e, struct hc_io *io, ssize_t res)
{
	HC_TSAN_ACQUIRE(io);
	if (io->op == HC_IO_WRITE && res > 0) {
		size_t left = iov_total(io->iov, io->iovcnt);
		if ((size_t)res < left) {
			/* Short write: advance past what was written and go on. */
			size_t adv = (size_t)res;
			io->done_bytes += adv;
			io->off += adv;
			while (adv && io->iovcnt) {
				if (adv >= io->iov[0].iov_len) {
					adv -= io->iov[0].iov_len;
					io->iov++;
					io->iovcnt--;
				} else {
					io->iov[0].iov_base = (char *)io->iov[0].iov_base + adv;
					io->iov[0].iov_len -= adv;
					adv = 0;
				}
			}
			int err = e->ops->submit(e, io);
			if (!err)
				return;
			res = err;
		} else {
			res += (ssize_t)io->done_bytes;
		}
	} else if (io->op == HC_IO_WRITE && res == 0) {
		res = -EIO;	/* no progress on a write: never report success */
	}
	finish(e, io, res, 1);
}

struct waiter {
	sem_t sem;
};

static void run_done(struct hc_io *io)
{
	struct waiter *w = io->priv;
	sem_post(&w->sem);
}

ssize_t hc_ioeng_run(struct hc_ioeng *e, struct hc_io *io)
{
	struct waiter w;
	sem_init(&w.sem, 0, 0);
	io->done = run_done;
	io->priv = &w;
	int err = hc_ioeng_submit(e, io);
	if (err) {
		sem_destroy(&w.sem);
		return err;
	}
	while (sem_wait(&w.sem) < 0 && errno == EINTR)
		;
	sem_destroy(&w.sem);
	return io->res;
}

void hc_ioeng_block_signals(void)
{
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
}
