// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * pread/pwrite engine: the I/O runs in the submitting thread and done() is
 * called before submit returns.  The portable fallback, and the reference
 * the asynchronous engines are tested against.
 */
#include "config.h"

#include <errno.h>
#include <unistd.h>

#include "ioeng.h"

static int sync_init(struct hc_ioeng *e, unsigned depth)
{
	return 0;
}

static void sync_fini(struct hc_ioeng *e)
{
}

static int sync_submit(struct hc_ioeng *e, struct hc_io *io)
{
	ssize_t res;
	switch (io->op) {
	case HC_IO_READ:
		res = preadv(io->fd, io->iov, io->iovcnt, (off_t)io->off);
		break;
	case HC_IO_WRITE:
		res = pwritev(io->fd, io->iov, io->iovcnt, (off_t)io->off);
		break;
	case HC_IO_FSYNC:
		res = fsync(io->fd);
		break;
	default:
		res = fdatasync(io->fd);
		break;
	}
	if (res < 0)
		res = -errno;
	hc_ioeng_complete(e, io, res);
	return 0;
}

const struct hc_ioeng_ops hc_ioeng_sync_ops = {
	.name = "sync",
	.init = sync_init,
	.fini = sync_fini,
	.submit = sync_submit,
};
