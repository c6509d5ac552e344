// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Linux AIO engine (libaio).  io_submit is thread safe, so submitters need
 * no lock; one completion thread reaps events.  Each I/O's iocb lives in a
 * preallocated array indexed by a free list, so nothing is allocated per I/O.
 * fsync is not asynchronous on most file systems under AIO: it runs inline.
 * The completion thread polls with a short timeout to notice shutdown.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <libaio.h>

#include "ioeng.h"
#include "log.h"

struct aio {
	io_context_t ctx;
	pthread_t thread;
	int stop;			/* atomic */
	pthread_mutex_t lock;		/* protects free_top, free_idx */
	unsigned depth;
	unsigned free_top;
	unsigned *free_idx;
	struct iocb *cbs;
};

static struct iocb *get_cb(struct aio *a)
{
	pthread_mutex_lock(&a->lock);
	struct iocb *cb = a->free_top ? &a->cbs[a->free_idx[--a->free_top]] : NULL;
	pthread_mutex_unlock(&a->lock);
	return cb;
}

static void put_cb(struct aio *a, struct iocb *cb)
{
	pthread_mutex_lock(&a->lock);
	a->free_idx[a->free_top++] = (unsigned)(cb - a->cbs);
	pthread_mutex_unlock(&a->lock);
}

static void *aio_thread(void *arg)
{
	struct hc_ioeng *e = arg;
	struct aio *a = e->priv;
	struct io_event ev[64];
	hc_ioeng_block_signals();
	while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE)) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		int n = io_getevents(a->ctx, 1, 64, ev, &ts);
		if (n < 0) {
			if (n != -EINTR)
				hc_log(LOG_ERR, "io_getevents: %s", strerror(-n));
			continue;
		}
		for (int i = 0; i < n; i++) {
			struct hc_io *io = ev[i].data;
			long res = (long)ev[i].res;
			/* Before the iocb goes back to the free list (TSan, see ioeng.h). */
			HC_TSAN_ACQUIRE(io);
			put_cb(a, ev[i].obj);
			hc_ioeng_complete(e, io, res);
		}
	}
	return NULL;
}

static int aio_init(struct hc_ioeng *e, unsigned depth)
{
	struct aio *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->depth = depth;
	a->cbs = calloc(depth, sizeof(*a->cbs));
	a->free_idx = calloc(depth, sizeof(*a->free_idx));
	int err = -ENOMEM;
	if (!a->cbs || !a->free_idx)
		goto fail_alloc;
	for (unsigned i = 0; i < depth; i++)
		a->free_idx[i] = i;
	a->free_top = depth;
	err = io_setup((int)depth, &a->ctx);
	if (err)
		goto fail_alloc;
	pthread_mutex_init(&a->lock, NULL);
	e->priv = a;
	err = -pthread_create(&a->thread, NULL, aio_thread, e);
	if (err)
		goto fail_thread;
	pthread_setname_np(a->thread, "hc-aio");
	return 0;

fail_thread:
	pthread_mutex_destroy(&a->lock);
	io_destroy(a->ctx);
fail_alloc:
	free(a->free_idx);
	free(a->cbs);
	free(a);
	return err;
}

static int aio_submit(struct hc_ioeng *e, struct hc_io *io)
{
	struct aio *a = e->priv;
	if (io->op == HC_IO_FSYNC || io->op == HC_IO_FDATASYNC) {
		int r = io->op == HC_IO_FSYNC ? fsync(io->fd) : fdatasync(io->fd);
		hc_ioeng_complete(e, io, r < 0 ? -errno : 0);
		return 0;
	}
	struct iocb *cb = get_cb(a);
	if (!cb)
		return -EBUSY;	/* cannot happen: hc_ioeng bounds depth */
	if (io->op == HC_IO_READ)
		io_prep_preadv(cb, io->fd, io->iov, io->iovcnt, (long long)io->off);
	else
		io_prep_pwritev(cb, io->fd, io->iov, io->iovcnt, (long long)io->off);
	cb->data = io;
	HC_TSAN_RELEASE(io);
	int res;
	do
		res = io_submit(a->ctx, 1, &cb);
	while (res == -EINTR || res == -EAGAIN);
	if (res != 1) {
		put_cb(a, cb);
		return res < 0 ? res : -EIO;
	}
	return 0;
}

static void aio_fini(struct hc_ioeng *e)
{
	struct aio *a = e->priv;
	__atomic_store_n(&a->stop, 1, __ATOMIC_RELEASE);
	pthread_join(a->thread, NULL);
	io_destroy(a->ctx);
	pthread_mutex_destroy(&a->lock);
	free(a->free_idx);
	free(a->cbs);
	free(a);
}

const struct hc_ioeng_ops hc_ioeng_aio_ops = {
	.name = "aio",
	.init = aio_init,
	.fini = aio_fini,
	.submit = aio_submit,
};
