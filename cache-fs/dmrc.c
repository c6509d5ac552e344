// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A domain's miss-ratio curve and trace (dmrc.h).  The key of a block is
 * HC_MRC_KEY(volume id, block): volume ids are the cache's slot numbers,
 * reused after a volume is deleted, so a deleted volume's old evictions may
 * be taken for a new volume's (a curve error until they age out, never a
 * data error).
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dmrc.h"
#include "hecache/ctl.h"
#include "util.h"

#define TRACE_BUF 4096

struct hc_dmrc {
	pthread_mutex_t lock;
	struct hc_mrc *mrc;			/* lock (NULL: no curve) */
	int trace_fd;				/* lock: -1 when no trace runs */
	int tracing;				/* atomic: trace_fd >= 0, read unlocked */
	int trace_err;				/* lock: first write error */
	uint64_t trace_t0;			/* lock: CLOCK_MONOTONIC ns at start */
	uint64_t trace_records;			/* lock: records written */
	unsigned trace_n;			/* lock: records in tbuf */
	char trace_path[4096];			/* lock */
	struct hc_trace_rec tbuf[TRACE_BUF];	/* lock */
};

static uint64_t now_ns(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int hc_dmrc_create(const struct hc_mrc_config *cfg, struct hc_dmrc **out)
{
	struct hc_dmrc *d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	if (cfg) {
		int err = hc_mrc_create(cfg, &d->mrc);
		if (err) {
			free(d);
			return err;
		}
	}
	pthread_mutex_init(&d->lock, NULL);
	d->trace_fd = -1;
	*out = d;
	return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* lock held */
static void trace_flush(struct hc_dmrc *d)
{
	if (!d->trace_n)
		return;
	int err = write_all(d->trace_fd, d->tbuf, d->trace_n * sizeof(d->tbuf[0]));
	if (err && !d->trace_err)
		d->trace_err = err;
	if (!err)
		d->trace_records += d->trace_n;
	d->trace_n = 0;
}

void hc_dmrc_event(struct hc_dmrc *d, unsigned op, uint32_t vol, uint64_t blk, uint64_t n)
{
	/* With no curve and no trace (-o mrc=off) the request path skips the lock. */
	if (!d || !n || (!d->mrc && !__atomic_load_n(&d->tracing, __ATOMIC_ACQUIRE)))
		return;
	pthread_mutex_lock(&d->lock);
	if (d->mrc) {
		for (uint64_t i = 0; i < n; i++) {
			uint64_t key = HC_MRC_KEY(vol, blk + i);
			if (op == HC_TRACE_EVICT)
				hc_mrc_evict(d->mrc, key);
			else
				hc_mrc_miss(d->mrc, key);
		}
	}
	if (d->trace_fd >= 0 && !d->trace_err) {
		uint64_t t = now_ns(CLOCK_MONOTONIC) - d->trace_t0;
		for (uint64_t i = 0; i < n; i++) {
			struct hc_trace_rec *r = &d->tbuf[d->trace_n++];
			r->t_ns = htole64(t);
			r->op = htole32(op);
			r->vol = htole32(vol);
			r->block = htole64(blk + i);
			if (d->trace_n == TRACE_BUF)
				trace_flush(d);
		}
	}
	pthread_mutex_unlock(&d->lock);
}

int hc_dmrc_trace_start(struct hc_dmrc *d, const char *path, const char *domain)
{
	int err = 0;
	pthread_mutex_lock(&d->lock);
	if (d->trace_fd >= 0) {
		err = -EBUSY;
		goto out;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	struct hc_trace_header h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, HC_TRACE_MAGIC, sizeof(h.magic));
	h.version = htole32(HC_TRACE_VERSION);
	h.record_size = htole32(sizeof(struct hc_trace_rec));
	h.start_ns = htole64(now_ns(CLOCK_REALTIME));
	snprintf(h.domain, sizeof(h.domain), "%s", domain);
	err = write_all(fd, &h, sizeof(h));
	if (err) {
		close(fd);
		unlink(path);
		goto out;
	}
	d->trace_fd = fd;
	d->trace_err = 0;
	d->trace_records = 0;
	d->trace_n = 0;
	d->trace_t0 = now_ns(CLOCK_MONOTONIC);
	snprintf(d->trace_path, sizeof(d->trace_path), "%s", path);
	__atomic_store_n(&d->tracing, 1, __ATOMIC_RELEASE);
out:
	pthread_mutex_unlock(&d->lock);
	return err;
}

int hc_dmrc_trace_stop(struct hc_dmrc *d, uint64_t *records, char *path, size_t pathlen)
{
	int err;
	pthread_mutex_lock(&d->lock);
	if (d->trace_fd < 0) {
		pthread_mutex_unlock(&d->lock);
		return -ENOENT;
	}
	if (!d->trace_err)
		trace_flush(d);
	if (fsync(d->trace_fd) < 0 && !d->trace_err)
		d->trace_err = -errno;
	close(d->trace_fd);
	d->trace_fd = -1;
	__atomic_store_n(&d->tracing, 0, __ATOMIC_RELEASE);
	err = d->trace_err;
	*records = d->trace_records;
	snprintf(path, pathlen, "%s", d->trace_path);
	pthread_mutex_unlock(&d->lock);
	return err;
}

int hc_dmrc_enabled(const struct hc_dmrc *d)
{
	return d && d->mrc;
}

void hc_dmrc_stats(struct hc_dmrc *d, struct hc_mrc_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!hc_dmrc_enabled(d))
		return;
	pthread_mutex_lock(&d->lock);
	hc_mrc_stats(d->mrc, out);
	pthread_mutex_unlock(&d->lock);
}

size_t hc_dmrc_curve(struct hc_dmrc *d, uint64_t step_pages, size_t n, double *misses_out)
{
	if (!hc_dmrc_enabled(d))
		return 0;
	pthread_mutex_lock(&d->lock);
	size_t r = hc_mrc_curve(d->mrc, step_pages, n, misses_out);
	pthread_mutex_unlock(&d->lock);
	return r;
}

void hc_dmrc_reset(struct hc_dmrc *d)
{
	if (!hc_dmrc_enabled(d))
		return;
	pthread_mutex_lock(&d->lock);
	hc_mrc_reset(d->mrc);
	pthread_mutex_unlock(&d->lock);
}

void hc_dmrc_destroy(struct hc_dmrc *d)
{
	if (!d)
		return;
	if (d->trace_fd >= 0) {
		uint64_t n;
		char p[8];
		hc_dmrc_trace_stop(d, &n, p, sizeof(p));
	}
	hc_mrc_destroy(d->mrc);
	pthread_mutex_destroy(&d->lock);
	free(d);
}
