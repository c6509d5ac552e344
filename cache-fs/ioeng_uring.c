// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * io_uring engine (liburing).  Submitters share the submission queue under
 * sq_lock; one completion thread owns the completion queue.  The ring has
 * `depth` entries and hc_ioeng bounds in-flight I/O to depth, so a free SQE
 * always exists after the submit that precedes it.  A NOP whose user_data is
 * NULL stops the completion thread.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <liburing.h>

#include "ioeng.h"
#include "log.h"

struct uring {
	struct io_uring ring;
	pthread_mutex_t sq_lock;	/* protects the SQ side of ring */
	pthread_t thread;
};

static void *uring_thread(void *arg)
{
	struct hc_ioeng *e = arg;
	struct uring *u = e->priv;
	hc_ioeng_block_signals();
	for (;;) {
		struct io_uring_cqe *cqe;
		int err = io_uring_wait_cqe(&u->ring, &cqe);
		if (err == -EINTR || err == -EAGAIN)
			continue;
		if (err) {
			hc_log(LOG_ERR, "io_uring wait: %s", strerror(-err));
			continue;
		}
		struct hc_io *io = io_uring_cqe_get_data(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&u->ring, cqe);
		if (!io)
			break;
		hc_ioeng_complete(e, io, res);
	}
	return NULL;
}

static int uring_init(struct hc_ioeng *e, unsigned depth)
{
	struct uring *u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	struct io_uring_params p = { .flags = IORING_SETUP_CQSIZE, .cq_entries = depth * 2 };
	int err = io_uring_queue_init_params(depth + 1, &u->ring, &p);
	if (err) {
		free(u);
		return err;
	}
	pthread_mutex_init(&u->sq_lock, NULL);
	e->priv = u;
	err = -pthread_create(&u->thread, NULL, uring_thread, e);
	if (err) {
		io_uring_queue_exit(&u->ring);
		pthread_mutex_destroy(&u->sq_lock);
		free(u);
		return err;
	}
	pthread_setname_np(u->thread, "hc-uring");
	return 0;
}

static int uring_queue(struct uring *u, struct hc_io *io)
{
	pthread_mutex_lock(&u->sq_lock);
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (!sqe) {
		io_uring_submit(&u->ring);
		sqe = io_uring_get_sqe(&u->ring);
	}
	if (!sqe) {
		pthread_mutex_unlock(&u->sq_lock);
		return -EBUSY;
	}
	if (!io) {
		io_uring_prep_nop(sqe);
	} else {
		switch (io->op) {
		case HC_IO_READ:
			io_uring_prep_readv(sqe, io->fd, io->iov, io->iovcnt, io->off);
			break;
		case HC_IO_WRITE:
			io_uring_prep_writev(sqe, io->fd, io->iov, io->iovcnt, io->off);
			break;
		case HC_IO_FSYNC:
			io_uring_prep_fsync(sqe, io->fd, 0);
			break;
		case HC_IO_FDATASYNC:
			io_uring_prep_fsync(sqe, io->fd, IORING_FSYNC_DATASYNC);
			break;
		}
	}
	io_uring_sqe_set_data(sqe, io);
	if (io)
		HC_TSAN_RELEASE(io);
	int res;
	do
		res = io_uring_submit(&u->ring);
	while (res == -EINTR || res == -EAGAIN);
	pthread_mutex_unlock(&u->sq_lock);
	return res < 0 ? res : 0;
}

static int uring_submit(struct hc_ioeng *e, struct hc_io *io)
{
	return uring_queue(e->priv, io);
}

static void uring_fini(struct hc_ioeng *e)
{
	struct uring *u = e->priv;
	if (uring_queue(u, NULL) == 0)
		pthread_join(u->thread, NULL);
	io_uring_queue_exit(&u->ring);
	pthread_mutex_destroy(&u->sq_lock);
	free(u);
}

const struct hc_ioeng_ops hc_ioeng_uring_ops = {
	.name = "uring",
	.init = uring_init,
	.fini = uring_fini,
	.submit = uring_submit,
};
