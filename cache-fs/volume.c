// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Volume I/O: requests split into blocks and sent through the exclusive
 * cache; read misses go to storage asynchronously and the reply is sent from
 * the completion, so no FUSE worker waits on a read.  Sizes live in memory
 * (v->size) and in the home file's size, set together.  Memory for requests
 * comes from bounded preallocated pools: a request that finds a pool empty
 * waits for one to come back, it never allocates.
 *
 * Backing file system nearly full: a write-back cache would acknowledge data
 * it may later fail to store.  When free space (less what was written since
 * it was read) drops below the dirty data plus the write plus a reserve, the
 * dirty data is written out first and the write goes synchronously through
 * to storage, so ENOSPC reaches the writer and nothing acknowledged is lost.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hecache/ctl.h"
#include "log.h"
#include "odefrag.h"
#include "util.h"
#include "volume.h"

const char *const hc_req_kind_names[HC_REQ_NKINDS] = {
	"read", "write", "copy_file_range", "getxattr", "getattr", "lookup", "fsync",
	"fallocate", "other",
};

#define NRREQ 64
#define NWREQ 64

struct hc_buf_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* buffers or requests came back */
	void *mem;
	size_t mem_len;
	void **free;		/* lock */
	unsigned nfree;		/* lock */
	struct hc_rreq *rreqs;
	struct hc_rreq **rfree;	/* lock */
	unsigned nrfree;	/* lock */
	struct hc_wreq wreqs[NWREQ];
	struct hc_wreq *wfree[NWREQ];	/* lock */
	unsigned nwfree;	/* lock */
};

int hc_buf_pool_create(unsigned nbufs, struct hc_buf_pool **out)
{
	if (nbufs < HC_REQ_MAX_BLOCKS)
		nbufs = HC_REQ_MAX_BLOCKS;
	struct hc_buf_pool *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->mem_len = (size_t)nbufs * HC_BLOCK_SIZE;
	p->mem = mmap(NULL, p->mem_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->mem != MAP_FAILED) {
		/*
		 * Huge pages where the kernel has them: a read's buffers, handed
		 * out in address order (below), are then physically contiguous
		 * and a 1 MiB read is one storage request.  In 4 KiB pages it is
		 * 256 segments, past the limit of many disks (virtio-blk here:
		 * 254), so the block layer splits it.
		 */
		(void)madvise(p->mem, p->mem_len, MADV_HUGEPAGE);
		memset(p->mem, 0, p->mem_len);	/* populate now, never on the I/O path */
	}
	p->free = calloc(nbufs, sizeof(*p->free));
	p->rreqs = calloc(NRREQ, sizeof(*p->rreqs));
	p->rfree = calloc(NRREQ, sizeof(*p->rfree));
	if (p->mem == MAP_FAILED || !p->free || !p->rreqs || !p->rfree) {
		if (p->mem != MAP_FAILED)
			munmap(p->mem, p->mem_len);
		free(p->free);
		free(p->rreqs);
		free(p->rfree);
		free(p);
		return -ENOMEM;
	}
	/* A stack popped from the top: the first request gets the lowest addresses. */
	for (unsigned i = 0; i < nbufs; i++)
		p->free[i] = (char *)p->mem + (size_t)(nbufs - 1 - i) * HC_BLOCK_SIZE;
	p->nfree = nbufs;
	for (unsigned i = 0; i < NRREQ; i++)
		p->rfree[i] = &p->rreqs[i];
	p->nrfree = NRREQ;
	for (unsigned i = 0; i < NWREQ; i++)
		p->wfree[i] = &p->wreqs[i];
	p->nwfree = NWREQ;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	*out = p;
	return 0;
}

void hc_buf_pool_destroy(struct hc_buf_pool *p)
{
	if (!p)
		return;
	/* Replies may still be on their way from the completion thread. */
	pthread_mutex_lock(&p->lock);
	while (p->nrfree < NRREQ || p->nwfree < NWREQ)
		pthread_cond_wait(&p->cond, &p->lock);
	pthread_mutex_unlock(&p->lock);
	munmap(p->mem, p->mem_len);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	free(p->free);
	free(p->rreqs);
	free(p->rfree);
	free(p);
}

/* A request context and n buffers, all at once (so waiters cannot deadlock). */
static struct hc_rreq *rreq_get(struct hc_buf_pool *p, unsigned n)
{
	pthread_mutex_lock(&p->lock);
	while (!p->nrfree || p->nfree < n)
		pthread_cond_wait(&p->cond, &p->lock);
	struct hc_rreq *r = p->rfree[--p->nrfree];
	for (unsigned k = 0; k < n; k++)
		r->buf[k] = p->free[--p->nfree];
	pthread_mutex_unlock(&p->lock);
	r->nblk = n;
	return r;
}

void hc_rreq_release(struct hc_rreq *r)
{
	struct hc_buf_pool *p = r->fs->bufs;
	pthread_mutex_lock(&p->lock);
	/* Pushed back last to first, so the next request pops them in address order. */
	for (unsigned k = r->nblk; k-- > 0;)
		p->free[p->nfree++] = r->buf[k];
	p->rfree[p->nrfree++] = r;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

static struct hc_wreq *wreq_get(struct hc_buf_pool *p)
{
	pthread_mutex_lock(&p->lock);
	while (!p->nwfree)
		pthread_cond_wait(&p->cond, &p->lock);
	struct hc_wreq *w = p->wfree[--p->nwfree];
	pthread_mutex_unlock(&p->lock);
	return w;
}

static void wreq_put(struct hc_buf_pool *p, struct hc_wreq *w)
{
	pthread_mutex_lock(&p->lock);
	p->wfree[p->nwfree++] = w;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

uint64_t hc_vol_size(struct hc_volume *v)
{
	pthread_mutex_lock(&v->lock);
	uint64_t s = v->size;
	pthread_mutex_unlock(&v->lock);
	return s;
}

static void rreq_put_pending(struct hc_rreq *r)
{
	if (__atomic_sub_fetch(&r->pending, 1, __ATOMIC_ACQ_REL) == 0)
		r->done(r);
}

static void read_done(struct hc_io *io)
{
	struct hc_rreq *r = io->priv;
	size_t want = 0;
	for (int k = 0; k < io->iovcnt; k++)
		want += io->iov[k].iov_len;
	if (io->res < 0) {
		int zero = 0;
		__atomic_compare_exchange_n(&r->err, &zero, (int)io->res, 0, __ATOMIC_RELAXED,
					    __ATOMIC_RELAXED);
	} else {
		hc_cache_count_read(r->fs->cache, &r->vol->cv, (uint64_t)io->res);
		/* Home blocks just read from storage: dedup hints. */
		for (int k = 0; k < io->iovcnt && (size_t)k * HC_BLOCK_SIZE < (size_t)io->res; k++)
			hc_rc_note_home(r->fs, r->vol, (uint64_t)io->off / HC_BLOCK_SIZE + (uint64_t)k,
					io->iov[k].iov_base);
		/* Past the end of the home file: zeros (the volume is sparse). */
		size_t got = (size_t)io->res;
		for (int k = 0; k < io->iovcnt && got < want; k++) {
			size_t l = io->iov[k].iov_len;
			if (got >= l) {
				got -= l;
				continue;
			}
			memset((char *)io->iov[k].iov_base + got, 0, l - got);
			got = 0;
		}
	}
	rreq_put_pending(r);
}

int hc_vol_read(struct hc_fs *fs, struct hc_volume *v, uint64_t off, size_t size,
		void (*done)(struct hc_rreq *r), void *priv, void *dst, size_t dst_len)
{
	if (size > HC_REQ_MAX_BYTES)
		size = HC_REQ_MAX_BYTES;
	uint64_t vsize = hc_vol_size(v);
	uint64_t end = off + size < vsize ? off + size : vsize;
	unsigned n = 0;
	uint64_t blk0 = off / HC_BLOCK_SIZE;
	if (off < end)
		n = (unsigned)((end - 1) / HC_BLOCK_SIZE - blk0 + 1);
	/* Straight into the reply's place: one copy of every byte fewer. */
	int direct = dst && off % HC_BLOCK_SIZE == 0 && (size_t)n * HC_BLOCK_SIZE <= dst_len;
	struct hc_rreq *r = rreq_get(fs->bufs, direct ? 0 : n);
	if (direct)
		for (unsigned k = 0; k < n; k++)
			r->buf[k] = (char *)dst + (size_t)k * HC_BLOCK_SIZE;
	r->fs = fs;
	r->vol = v;
	r->done = done;
	r->priv = priv;
	r->err = 0;
	r->iovcnt = (int)n;
	if (n == 0) {
		done(r);
		return 0;
	}
	__atomic_fetch_add(&fs->guest_ops, 1, __ATOMIC_RELAXED);
	hc_dmrc_event(v->dom->mrc, HC_TRACE_MISS, v->cv.id, blk0, n);
	hc_cache_read(fs->cache, &v->cv, blk0, n, r->buf, r->miss);
	/* Misses with a map entry: zeros or another physical block, read now. */
	int merr = hc_rc_read_mapped(fs, v, blk0, n, r->buf, r->miss);
	if (merr)
		r->err = merr;
	for (unsigned k = 0; k < n; k++) {
		uint64_t bstart = (blk0 + k) * HC_BLOCK_SIZE;
		uint64_t from = k == 0 ? off - bstart : 0;
		uint64_t to = bstart + HC_BLOCK_SIZE > end ? end - bstart : HC_BLOCK_SIZE;
		r->iov[k].iov_base = (char *)r->buf[k] + from;
		r->iov[k].iov_len = to - from;
		r->riov[k].iov_base = r->buf[k];
		r->riov[k].iov_len = HC_BLOCK_SIZE;
	}
	/* One vectored read per run of consecutive misses. */
	r->pending = 1;
	unsigned nio = 0;
	for (unsigned k = 0; k < n;) {
		if (!r->miss[k]) {
			k++;
			continue;
		}
		unsigned e = k;
		while (e < n && r->miss[e])
			e++;
		struct hc_io *io = &r->io[nio++];
		io->op = HC_IO_READ;
		/* Only the last run may run inline (ioeng.h): the others go first. */
		unsigned last = e;
		while (last < n && !r->miss[last])
			last++;
		io->may_inline = last == n;
		io->may_route = 1;	/* the reply is sent from read_done, nobody waits */
		io->fd = v->cv.fd;
		io->off = (blk0 + k) * HC_BLOCK_SIZE;
		io->iov = &r->riov[k];
		io->iovcnt = (int)(e - k);
		io->done = read_done;
		io->priv = r;
		__atomic_fetch_add(&r->pending, 1, __ATOMIC_RELAXED);
		int err = hc_ioeng_submit(fs->eng, io);
		if (err) {
			io->res = err;
			read_done(io);
		}
		k = e;
	}
	rreq_put_pending(r);
	return 0;
}

/*
 * 1 when the backing file system may not hold the dirty data plus len more
 * bytes and the reserve.  Free space is read at most every 100 ms; in
 * between, every byte written to storage since that reading counts as used
 * (conservative: overwrites of allocated blocks use nothing), so a fast
 * writer cannot run past the check.
 */
static int space_low(struct hc_fs *fs, uint64_t len)
{
	struct hc_cstats t;
	hc_cache_total(fs->cache, &t);
	uint64_t now = hc_now_ns();
	pthread_mutex_lock(&fs->space_lock);
	if (now - fs->space_checked_ns > 100 * 1000 * 1000ull || !fs->space_checked_ns) {
		struct statvfs st;
		if (fstatvfs(fs->b->dirfd, &st) == 0) {
			fs->space_avail = (uint64_t)st.f_bavail * st.f_frsize;
			fs->space_written = t.written_bytes;
		}
		fs->space_checked_ns = now;
	}
	uint64_t used = t.written_bytes - fs->space_written;
	uint64_t avail = fs->space_avail > used ? fs->space_avail - used : 0;
	pthread_mutex_unlock(&fs->space_lock);
	uint64_t dirty = t.dirty > 0 ? (uint64_t)t.dirty * HC_BLOCK_SIZE : 0;
	return avail < dirty + len + fs->space_reserve;
}

/*
 * Writes every dirty block of every volume to storage (low space: the
 * space the dirty data needs is taken before new data is accepted).  A
 * volume whose previous write-back failed is retried once.  Returns 0 or
 * the first error; the blocks that failed stay cached, dirty.
 */
static int flush_all_dirty(struct hc_fs *fs)
{
	int err = 0;
	pthread_mutex_lock(&fs->ns_lock);
	for (struct hc_domain *d = fs->domains; d; d = d->next)
		for (struct hc_volume *v = d->vols; v; v = v->next) {
			int e = hc_cache_flush(fs->cache, &v->cv);
			if (e)
				e = hc_cache_flush(fs->cache, &v->cv);
			if (e && !err)
				err = e;
		}
	pthread_mutex_unlock(&fs->ns_lock);
	return err;
}

struct sync_group {
	struct hc_cache_group grp;
	sem_t sem;
};

static void sync_group_done(struct hc_cache_group *g)
{
	sem_post(&((struct sync_group *)g)->sem);
}

/*
 * The backing file system is nearly full: no write may be acknowledged
 * before it is stored.  Dirty data is written first (so what was already
 * acknowledged gets its space), then this write goes through to storage and
 * is waited for.  When it fails, its blocks leave the cache again, so the
 * error reaches the writer, reads return what storage holds and the blocks
 * of a write nobody acknowledged never fail a later fsync.
 */
static ssize_t write_low_space(struct hc_fs *fs, struct hc_volume *v, uint64_t off,
			       const void *buf, size_t len)
{
	int err = flush_all_dirty(fs);
	if (err)
		return err;
	struct sync_group s = { .grp = { .pending = 1, .err = 0, .done = sync_group_done } };
	sem_init(&s.sem, 0, 0);
	err = hc_cache_write(fs->cache, &v->cv, off, buf, len, &s.grp);
	hc_cache_group_fail(&s.grp, err);
	hc_cache_group_put(&s.grp);
	while (sem_wait(&s.sem) < 0 && errno == EINTR)
		;
	sem_destroy(&s.sem);
	err = __atomic_load_n(&s.grp.err, __ATOMIC_RELAXED);
	if (err) {
		hc_cache_discard(fs->cache, &v->cv, off / HC_BLOCK_SIZE,
				 (off + len - 1) / HC_BLOCK_SIZE);
		return err;
	}
	return (ssize_t)len;
}

/* Grows the volume to end if it is smaller. */
static int extend(struct hc_volume *v, uint64_t end)
{
	int err = 0;
	pthread_mutex_lock(&v->lock);
	if (end > v->size) {
		if (ftruncate(v->cv.fd, (off_t)end) < 0)
			err = -errno;
		else
			v->size = end;
	}
	clock_gettime(CLOCK_REALTIME, &v->mtime);
	pthread_mutex_unlock(&v->lock);
	return err;
}

static void wreq_group_done(struct hc_cache_group *g)
{
	struct hc_wreq *w = (struct hc_wreq *)g;
	w->done(w, __atomic_load_n(&g->err, __ATOMIC_RELAXED));
}

void hc_wreq_release(struct hc_wreq *w)
{
	wreq_put(w->fs->bufs, w);
}

/*
 * A write-back write: whole blocks that an identical block of the domain
 * already holds are shared now and cached clean (hc_rc_write_share), the
 * rest goes into the cache dirty, in runs.  Writes longer than
 * SHARE_AT_WRITE_MAX are only shared at write-back: double paging writes
 * single pages or small swap clusters, and a large sequential write would
 * hash and look up every block on the writer's path, then again at
 * write-back (an index lookup is two cache misses under its mutex).
 */
#define SHARE_AT_WRITE_MAX (256u << 10)

static int write_cached(struct hc_fs *fs, struct hc_volume *v, uint64_t off, const char *buf,
			size_t len)
{
	if (len > SHARE_AT_WRITE_MAX || !len || !v->cv.hint)
		return hc_cache_write(fs->cache, &v->cv, off, buf, len, NULL);
	/* The blocks' hints (excache.c "Hints"), asked once for both uses. */
	struct hc_hint hint[SHARE_AT_WRITE_MAX / HC_BLOCK_SIZE + 1];
	unsigned nh = hc_cache_hints(&v->cv, off, buf, len, hint, sizeof(hint) / sizeof(hint[0]));
	uint64_t first = off / HC_BLOCK_SIZE, from = off, end = off + len;
	uint64_t b = (off + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE;
	int err = 0;
	for (; !err && (b + 1) * HC_BLOCK_SIZE <= end; b++) {
		const char *data = buf + (b * HC_BLOCK_SIZE - off);
		int r = hc_rc_write_share(fs, v, b, data, &hint[b - first]);
		if (r <= 0)
			continue;	/* an error here only loses the chance */
		if (b * HC_BLOCK_SIZE > from) {
			unsigned h = (unsigned)(from / HC_BLOCK_SIZE - first);
			err = hc_cache_write_hinted(fs->cache, &v->cv, from, buf + (from - off),
						    b * HC_BLOCK_SIZE - from, NULL, hint + h, nh - h);
		}
		if (!err)
			err = hc_cache_write_clean(fs->cache, &v->cv, b, data);
		from = (b + 1) * HC_BLOCK_SIZE;
	}
	if (!err && from < end) {
		unsigned h = (unsigned)(from / HC_BLOCK_SIZE - first);
		err = hc_cache_write_hinted(fs->cache, &v->cv, from, buf + (from - off), end - from,
					    NULL, hint + h, nh - h);
	}
	return err;
}

ssize_t hc_vol_write(struct hc_fs *fs, struct hc_volume *v, uint64_t off, const void *buf,
		     size_t len, void (*done)(struct hc_wreq *w, int err), void *priv)
{
	if (off >= HC_MAX_VOLUME_SIZE || len > HC_MAX_VOLUME_SIZE - off)
		return -EFBIG;
	if (len == 0)
		return 0;
	uint64_t blk0 = off / HC_BLOCK_SIZE;
	__atomic_fetch_add(&fs->guest_ops, 1, __ATOMIC_RELAXED);
	hc_dmrc_event(v->dom->mrc, HC_TRACE_EVICT, v->cv.id, blk0,
		      (off + len - 1) / HC_BLOCK_SIZE - blk0 + 1);
	pthread_rwlock_rdlock(&v->iolock);
	int err = extend(v, off + len);
	if (err) {
		pthread_rwlock_unlock(&v->iolock);
		return err;
	}
	if (space_low(fs, len)) {
		ssize_t res = write_low_space(fs, v, off, buf, len);
		pthread_rwlock_unlock(&v->iolock);
		return res;
	}
	if (!fs->writethrough) {
		err = write_cached(fs, v, off, buf, len);
		pthread_rwlock_unlock(&v->iolock);
		return err ? err : (ssize_t)len;
	}
	struct hc_wreq *w = wreq_get(fs->bufs);
	w->grp.pending = 1;
	w->grp.err = 0;
	w->grp.done = wreq_group_done;
	w->fs = fs;
	w->done = done;
	w->priv = priv;
	w->size = len;
	err = hc_cache_write(fs->cache, &v->cv, off, buf, len, &w->grp);
	pthread_rwlock_unlock(&v->iolock);
	hc_cache_group_fail(&w->grp, err);
	hc_cache_group_put(&w->grp);
	return 0;
}

/* Trims the home file to the logical size (a tail write-back writes a whole block). */
static int fix_home_size(struct hc_volume *v)
{
	struct stat st;
	int err = 0;
	pthread_mutex_lock(&v->lock);
	if (fstat(v->cv.fd, &st) < 0)
		err = -errno;
	else if ((uint64_t)st.st_size != v->size && ftruncate(v->cv.fd, (off_t)v->size) < 0)
		err = -errno;
	pthread_mutex_unlock(&v->lock);
	return err;
}

int hc_vol_fsync(struct hc_fs *fs, struct hc_volume *v, int datasync)
{
	int err = hc_cache_flush(fs->cache, &v->cv);
	int err2 = fix_home_size(v);
	uint64_t g = __atomic_load_n(&v->wgen, __ATOMIC_ACQUIRE);
	if (datasync ? fdatasync(v->cv.fd) : fsync(v->cv.fd))
		err2 = err2 ? err2 : -errno;
	else
		hc_rc_synced(v, g);
	/* I5: the maps after the data (every record's data is durable already). */
	if (!err && !err2)
		err2 = hc_rc_commit(fs);
	return err ? err : err2;
}

static const char zeros[HC_BLOCK_SIZE];

/* Zeroes bytes [off, off+len) of one block through the cache (map-aware). */
static int zero_through_cache(struct hc_fs *fs, struct hc_volume *v, uint64_t off, uint64_t len)
{
	if (!len)
		return 0;
	return hc_cache_write(fs->cache, &v->cv, off, zeros, len, NULL);
}

/*
 * Makes the cache forget bytes [off, off+len) of v: whole blocks dropped,
 * partial ones zeroed in place.  The caller changes the home file after.
 */
static void cache_forget_range(struct hc_fs *fs, struct hc_volume *v, uint64_t off, uint64_t len)
{
	if (!len)
		return;
	uint64_t end = off + len;
	uint64_t first = (off + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE;
	uint64_t last_excl = end / HC_BLOCK_SIZE;
	if (off % HC_BLOCK_SIZE) {
		uint64_t b = off / HC_BLOCK_SIZE;
		unsigned to = b == end / HC_BLOCK_SIZE ? (unsigned)(end % HC_BLOCK_SIZE) : HC_BLOCK_SIZE;
		hc_cache_zero_range(fs->cache, &v->cv, b, (unsigned)(off % HC_BLOCK_SIZE), to);
	}
	if (end % HC_BLOCK_SIZE && end / HC_BLOCK_SIZE >= first)
		hc_cache_zero_range(fs->cache, &v->cv, end / HC_BLOCK_SIZE, 0,
				    (unsigned)(end % HC_BLOCK_SIZE));
	if (last_excl > first)
		hc_cache_discard(fs->cache, &v->cv, first, last_excl - 1);
}

int hc_vol_truncate(struct hc_fs *fs, struct hc_volume *v, uint64_t size)
{
	if (size > HC_MAX_VOLUME_SIZE)
		return -EFBIG;
	int err = 0;
	pthread_rwlock_wrlock(&v->iolock);
	uint64_t old = hc_vol_size(v);
	int shrink = size < old;
	if (shrink) {
		/*
		 * Other volumes' entries pointing at home blocks past size get
		 * their own copies first; refused (EBUSY) only when one cannot.
		 */
		err = hc_rc_truncate_begin(fs, v, size);
		if (err == -EBUSY) {
			hc_rc_hold_shares(v, 1);
			/*
			 * Entries a pass drops may free home blocks the next can
			 * move.  A pass that fails (ENOSPC, EIO) ends it with its error.
			 */
			for (int pass = 0; err == -EBUSY && pass < 3; pass++) {
				int e = hc_odefrag_unshare(fs, v, size / HC_BLOCK_SIZE);
				err = e ? e : hc_rc_truncate_begin(fs, v, size);
			}
			hc_rc_hold_shares(v, 0);
		}
		if (err) {
			pthread_rwlock_unlock(&v->iolock);
			return err;
		}
		/* An indirected last block: ftruncate cannot zero its tail. */
		if (size % HC_BLOCK_SIZE && hc_rc_has_entry(v, size / HC_BLOCK_SIZE))
			err = zero_through_cache(fs, v, size,
						 HC_BLOCK_SIZE - size % HC_BLOCK_SIZE);
		cache_forget_range(fs, v, size, UINT64_MAX / 2 - size);
	}
	pthread_mutex_lock(&v->lock);
	if (err)
		;
	else if (ftruncate(v->cv.fd, (off_t)size) < 0)
		err = -errno;
	else
		v->size = size;
	clock_gettime(CLOCK_REALTIME, &v->mtime);
	pthread_mutex_unlock(&v->lock);
	if (shrink)
		hc_rc_truncate_end(fs, v, err ? old : size);
	pthread_rwlock_unlock(&v->iolock);
	return err;
}

int hc_vol_fallocate(struct hc_fs *fs, struct hc_volume *v, int mode, uint64_t off, uint64_t len)
{
	const int known = FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
	if (mode & ~known)
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE))
		return -EOPNOTSUPP;
	if (off >= HC_MAX_VOLUME_SIZE || len > HC_MAX_VOLUME_SIZE - off)
		return -EFBIG;
	int err = 0;
	pthread_rwlock_wrlock(&v->iolock);
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		/*
		 * Discard.  Whole blocks: dropped from the cache with no write,
		 * then from the map and storage (hc_rc_discard keeps home blocks
		 * other volumes share).  Partial blocks inside the size: zeros
		 * written through the cache (the block may live elsewhere).
		 */
		uint64_t end = off + len, vsize = hc_vol_size(v);
		uint64_t first = (off + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE;
		uint64_t last_excl = end / HC_BLOCK_SIZE;
		uint64_t pieces[2][2];
		int np = 0;
		if (first > last_excl) {
			pieces[np][0] = off;
			pieces[np++][1] = end;
		} else {
			if (off < first * HC_BLOCK_SIZE) {
				pieces[np][0] = off;
				pieces[np++][1] = first * HC_BLOCK_SIZE;
			}
			if (last_excl * HC_BLOCK_SIZE < end) {
				pieces[np][0] = last_excl * HC_BLOCK_SIZE;
				pieces[np++][1] = end;
			}
		}
		for (int i = 0; i < np && !err; i++) {
			uint64_t a = pieces[i][0], b = pieces[i][1] < vsize ? pieces[i][1] : vsize;
			if (a < b)
				err = zero_through_cache(fs, v, a, b - a);
		}
		if (!err && last_excl > first) {
			hc_cache_discard(fs->cache, &v->cv, first, last_excl - 1);
			err = hc_rc_discard(fs, v, first, last_excl - 1, mode);
		}
		if (!err && !(mode & FALLOC_FL_KEEP_SIZE))
			err = extend(v, end);
	} else if (fallocate(v->cv.fd, mode, (off_t)off, (off_t)len) < 0) {
		err = -errno;
	}
	if (!err && !(mode & FALLOC_FL_KEEP_SIZE)) {
		pthread_mutex_lock(&v->lock);
		if (off + len > v->size)
			v->size = off + len;
		pthread_mutex_unlock(&v->lock);
	}
	pthread_rwlock_unlock(&v->iolock);
	return err;
}

int hc_vol_flush_home(struct hc_fs *fs, struct hc_volume *v)
{
	int err = hc_cache_flush(fs->cache, &v->cv);
	return err ? err : fix_home_size(v);
}

int64_t hc_vol_seek(struct hc_fs *fs, struct hc_volume *v, int64_t off, int whence)
{
	/* Holes are the home file's once every cached block is written. */
	int err = hc_vol_flush_home(fs, v);
	if (err)
		return err;
	uint64_t size = hc_vol_size(v);
	if (off < 0 || (uint64_t)off >= size)
		return -ENXIO;
	int64_t r = hc_rc_seek(v, off, whence, size);
	if (r >= 0 && (uint64_t)r > size)
		r = (int64_t)size;
	return r;
}

ssize_t hc_vol_copy_range(struct hc_fs *fs, struct hc_volume *src, uint64_t soff,
			  struct hc_volume *dst, uint64_t doff, uint64_t len)
{
	if (src == dst || src->dom != dst->dom || soff % HC_BLOCK_SIZE || doff % HC_BLOCK_SIZE)
		return -EOPNOTSUPP;	/* the kernel copies it through read and write */
	if (doff >= HC_MAX_VOLUME_SIZE || len > HC_MAX_VOLUME_SIZE - doff)
		return -EFBIG;
	struct hc_volume *a = src->vid < dst->vid ? src : dst;
	struct hc_volume *b = a == src ? dst : src;
	pthread_rwlock_wrlock(&a->iolock);
	pthread_rwlock_wrlock(&b->iolock);
	ssize_t res;
	uint64_t ssize = hc_vol_size(src);
	if (soff >= ssize) {
		res = 0;
		goto out;
	}
	if (len > ssize - soff)
		len = ssize - soff;
	uint64_t n = len / HC_BLOCK_SIZE;
	if (!n) {
		res = -EOPNOTSUPP;	/* a partial block: copied by the kernel */
		goto out;
	}
	/* The source range's data at storage, the destination's cached blocks gone. */
	int err = hc_cache_flush_range(fs->cache, &src->cv, soff / HC_BLOCK_SIZE,
				       soff / HC_BLOCK_SIZE + n - 1);
	if (!err)
		err = fix_home_size(src);
	if (err) {
		res = err;
		goto out;
	}
	hc_cache_discard(fs->cache, &dst->cv, doff / HC_BLOCK_SIZE, doff / HC_BLOCK_SIZE + n - 1);
	err = extend(dst, doff + n * HC_BLOCK_SIZE);
	uint64_t done = 0;
	if (!err)
		err = hc_rc_copy_refs(fs, src, soff / HC_BLOCK_SIZE, dst, doff / HC_BLOCK_SIZE, n,
				      &done);
	/*
	 * No commit here: the records point at durable data already (I4), and
	 * like any write a copy is durable after fsync (I5) or the 1 s timer.
	 */
	res = err ? err : done ? (ssize_t)(done * HC_BLOCK_SIZE) : -EOPNOTSUPP;
out:
	pthread_rwlock_unlock(&b->iolock);
	pthread_rwlock_unlock(&a->iolock);
	return res;
}
