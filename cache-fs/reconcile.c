// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * swap-reconcile wired into the daemon (doc/reconcile.md): persistent
 * volume ids, the journal's lifecycle (open at mount, 1 s commit timer,
 * checkpoint when the log grows and at clean unmount), reads through the
 * indirection maps, write-back classification (zero / dedup / copy on
 * write / in place), discard and truncate on maps.
 *
 * DOC: ordering (I4).  A map record may become durable only after the data
 * it points at.  Records are appended as soon as that data is written (not
 * synced), and the journal's barrier (hc_journal_set_barrier), which every
 * commit runs after taking its batch and every checkpoint after its
 * snapshot, before writing anything, fdatasyncs the files they point into:
 * overflow.dat when it was written since its last sync (CoW), and the home
 * files listed since the last barrier (need_sync: the home file when an
 * entry is cleared, a dedup candidate's or a copy_file_range source's file
 * when it has writes not yet synced).  A file is listed after its data was
 * written and before the record is appended, so a batch's records always
 * point at data the barrier that precedes them covers.  The write-back
 * path thus never waits for an fdatasync; a commit (fsync's or the 1 s
 * timer's) pays one per file written, for all records at once.  Each file
 * counts the writes that completed (wgen) and the count its last fdatasync
 * covered (sgen); a file with sgen == wgen needs no sync.
 *
 * DOC: sharing (I2, I3).  A home block is a dedup candidate only while it
 * is verified under its volume's rlock: the byte compare, the durability
 * check and the map_set that makes its count >= 1 all happen with it held,
 * and a write-back of that volume checks the count under the same lock
 * before writing in place.  So a block whose bytes were compared cannot be
 * overwritten before the reference exists, and once it exists the owner
 * copies on write.  An overflow block is never written in place (a
 * rewrite of a block that lives there goes home or to a new overflow
 * block), so it changes only by being freed and reallocated: it is a
 * candidate under ovf_lock, which every allocation takes, while its count
 * is >= 1 (the count table refuses a reference to a freed block), and only
 * for the domain whose write-back filled it this mount (I2).  Hints come
 * from home reads and writes and from reads and writes through map entries
 * (a page the hypervisor paged in from a block that was itself copied on
 * write is found when the guest then swaps it out: double paging).
 *
 * Limits: only runs of plain in-place blocks (no entry to clear, no home
 * block shared) go through the io engine; runs that change the map are
 * written synchronously on the submitting thread; dedup looks at 4
 * candidates at most and skips a candidate whose volume is busy (trylock).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "hindex.h"
#include "journal.h"
#include "hecache/errors.h"
#include "log.h"
#include "util.h"
#include "volume.h"

#define VID_XATTR "user.hecache.vid"
#define NEXT_VID_XATTR "user.hecache.next_vid"
#define OVF_FILE "overflow.dat"
#define MAX_CAND 4
#define NIFL 128		/* asynchronous write-back runs in flight, all volumes */
#define RUN_MAX 256		/* blocks in one write-back run (the cache's WB_MAX) */

/* One plain in-place write-back run in flight through the io engine. */
struct hc_rc_ifl {
	struct hc_rc_ifl *next;
	struct hc_volume *v;
	uint64_t b0;
	unsigned n;
	void (*done)(struct hc_io *io);	/* the cache's completion */
	void *priv;
	uint64_t hash[RUN_MAX];
	int hashed;
};
#define HIDX_VID_BITS 24	/* hash index phys = vid << 40 | block */

static const char zero_block[HC_BLOCK_SIZE] __attribute__((aligned(HC_BLOCK_SIZE)));

static inline struct hc_volume *cv_vol(struct hc_cvol *cv)
{
	return (struct hc_volume *)((char *)cv - offsetof(struct hc_volume, cv));
}

static inline uint64_t hidx_phys(uint32_t vid, uint64_t blk)
{
	return ((uint64_t)vid << HC_PHYS_BLOCK_BITS) | blk;
}

static int is_zero(const void *p)
{
	return !memcmp(p, zero_block, HC_BLOCK_SIZE);
}

/* fdatasync fd unless every completed write is already covered. */
static int sync_gen(int fd, uint64_t *wgen, uint64_t *sgen)
{
	uint64_t g = __atomic_load_n(wgen, __ATOMIC_ACQUIRE);
	if (__atomic_load_n(sgen, __ATOMIC_ACQUIRE) >= g)
		return 0;
	if (fdatasync(fd) < 0)
		return -errno;
	uint64_t cur = __atomic_load_n(sgen, __ATOMIC_RELAXED);
	while (cur < g && !__atomic_compare_exchange_n(sgen, &cur, g, 0, __ATOMIC_RELEASE,
						       __ATOMIC_RELAXED))
		;
	return 0;
}

/*
 * Lists v's home file for the next barrier when it has completed writes no
 * fdatasync covered yet; call after the data write, before appending the
 * record that points at it.  0 or -errno.
 */
static int need_sync(struct hc_fs *fs, struct hc_volume *v)
{
	uint64_t g = __atomic_load_n(&v->wgen, __ATOMIC_ACQUIRE);
	if (__atomic_load_n(&v->sgen, __ATOMIC_ACQUIRE) >= g)
		return 0;
	int err = 0;
	pthread_mutex_lock(&fs->bar_lock);
	if (v->bar_gen != fs->bar_gen) {
		if (fs->nbar == fs->capbar) {
			size_t cap = fs->capbar ? 2 * fs->capbar : 16;
			int *t = realloc(fs->bar_fd, cap * sizeof(*t));
			if (t) {
				fs->bar_fd = t;
				fs->capbar = cap;
			} else {
				err = -ENOMEM;
			}
		}
		int fd = err ? -1 : fcntl(v->cv.fd, F_DUPFD_CLOEXEC, 0);
		if (!err && fd < 0)
			err = -errno;
		if (!err) {
			fs->bar_fd[fs->nbar++] = fd;
			v->bar_gen = fs->bar_gen;
		}
	}
	pthread_mutex_unlock(&fs->bar_lock);
	return err;
}

/* The journal's barrier: see "ordering" above. */
static int barrier(void *arg)
{
	struct hc_fs *fs = arg;
	pthread_mutex_lock(&fs->bar_lock);
	int *fds = fs->bar_fd;
	size_t n = fs->nbar;
	fs->bar_fd = NULL;
	fs->nbar = fs->capbar = 0;
	fs->bar_gen++;
	pthread_mutex_unlock(&fs->bar_lock);
	int err = sync_gen(fs->ovf_fd, &fs->ovf_wgen, &fs->ovf_sgen);
	for (size_t i = 0; i < n; i++) {
		if (!err && fdatasync(fds[i]) < 0)
			err = -errno;
		close(fds[i]);
	}
	free(fds);
	return err;
}


void hc_rc_synced(struct hc_volume *v, uint64_t g)
{
	uint64_t cur = __atomic_load_n(&v->sgen, __ATOMIC_RELAXED);
	while (cur < g && !__atomic_compare_exchange_n(&v->sgen, &cur, g, 0, __ATOMIC_RELEASE,
						       __ATOMIC_RELAXED))
		;
}

/* --- volume ids --------------------------------------------------------- */

static int read_u32_xattr(int fd, const char *name, uint32_t *out)
{
	char buf[16];
	ssize_t n = fgetxattr(fd, name, buf, sizeof(buf) - 1);
	if (n < 0)
		return errno == ENODATA ? -ENOENT : -errno;
	buf[n] = 0;
	char *end;
	unsigned long long x = strtoull(buf, &end, 10);
	if (end == buf || *end || x == 0 || x > HC_PHYS_VOL_MAX)
		return -HC_ECORRUPT;
	*out = (uint32_t)x;
	return 0;
}

static int write_u32_xattr(int fd, const char *name, uint32_t x)
{
	char buf[16];
	int n = snprintf(buf, sizeof(buf), "%u", x);
	if (fsetxattr(fd, name, buf, (size_t)n, 0) < 0)
		return -errno;
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

/* vid_lock held. */
static int byvid_put(struct hc_fs *fs, uint32_t vid, struct hc_volume *v)
{
	if (vid >= fs->nbyvid) {
		uint32_t n = fs->nbyvid ? fs->nbyvid : 64;
		while (n <= vid)
			n *= 2;
		struct hc_volume **t = realloc(fs->byvid, n * sizeof(*t));
		if (!t)
			return -ENOMEM;
		memset(t + fs->nbyvid, 0, (n - fs->nbyvid) * sizeof(*t));
		fs->byvid = t;
		fs->nbyvid = n;
	}
	fs->byvid[vid] = v;
	return 0;
}

struct hc_volume *hc_ns_find_vid(struct hc_fs *fs, uint32_t vid)
{
	pthread_mutex_lock(&fs->vid_lock);
	struct hc_volume *v = vid < fs->nbyvid ? fs->byvid[vid] : NULL;
	pthread_mutex_unlock(&fs->vid_lock);
	return v;
}

/* A fresh id, persisted in the backing directory before it is used.  ns_lock held. */
static int alloc_vid(struct hc_fs *fs, uint32_t *out)
{
	if (fs->next_vid > HC_PHYS_VOL_MAX)
		return -ENOSPC;
	uint32_t vid = fs->next_vid;
	int err = write_u32_xattr(fs->b->dirfd, NEXT_VID_XATTR, vid + 1);
	if (err)
		return err;
	fs->next_vid = vid + 1;
	*out = vid;
	return 0;
}

static int vol_wb_submit(struct hc_cvol *cv, struct hc_io *io, const struct hc_hint *hint);
static int vol_read_block(struct hc_cvol *cv, uint64_t blk, void *buf);
static void vol_hint(struct hc_cvol *cv, const void *block, struct hc_hint *h);

int hc_rc_attach(struct hc_fs *fs, struct hc_volume *v)
{
	v->fs = fs;
	uint32_t vid;
	int err = read_u32_xattr(v->cv.fd, VID_XATTR, &vid);
	if (err == -ENOENT) {
		err = alloc_vid(fs, &vid);
		if (!err)
			err = write_u32_xattr(v->cv.fd, VID_XATTR, vid);
	}
	if (err)
		return err;
	pthread_mutex_lock(&fs->vid_lock);
	if (vid < fs->nbyvid && fs->byvid[vid]) {
		pthread_mutex_unlock(&fs->vid_lock);
		return -EEXIST;	/* a copied home file: two volumes, one id */
	}
	err = byvid_put(fs, vid, v);
	pthread_mutex_unlock(&fs->vid_lock);
	if (err)
		return err;
	if (vid >= fs->next_vid) {
		/* The directory's counter was lost or is behind: never reuse. */
		int e = write_u32_xattr(fs->b->dirfd, NEXT_VID_XATTR, vid + 1);
		if (e)
			hc_log(LOG_WARNING, "cannot advance %s: %s", NEXT_VID_XATTR, strerror(-e));
		fs->next_vid = vid + 1;
	}
	err = hc_journal_imap(fs->j, vid, &v->map);
	if (err) {
		hc_rc_detach(fs, v);
		return err;
	}
	v->vid = vid;
	pthread_mutex_init(&v->rlock, NULL);
	pthread_mutex_init(&v->ifl_lock, NULL);
	v->ifl = NULL;
	pthread_rwlock_init(&v->maplock, NULL);
	v->cv.wb_submit = vol_wb_submit;
	v->cv.read_block = vol_read_block;
	v->cv.hint = vol_hint;
	return 0;
}

void hc_rc_detach(struct hc_fs *fs, struct hc_volume *v)
{
	pthread_mutex_lock(&fs->vid_lock);
	for (uint32_t i = 0; i < fs->nbyvid; i++)
		if (fs->byvid[i] == v)
			fs->byvid[i] = NULL;
	pthread_mutex_unlock(&fs->vid_lock);
}

void hc_rc_attach_again(struct hc_fs *fs, struct hc_volume *v)
{
	pthread_mutex_lock(&fs->vid_lock);
	if (byvid_put(fs, v->vid, v))
		hc_log(LOG_ERR, "volume %u: out of memory", v->vid);
	pthread_mutex_unlock(&fs->vid_lock);
}

struct shared_arg {
	uint32_t vid;
	uint64_t from, to;	/* [from, to] */
	uint64_t *out;
	size_t n, cap;
	int oom;
};

static int collect_shared(void *arg, const struct hc_phys *p, uint32_t count)
{
	struct shared_arg *a = arg;
	if (p->file != a->vid || p->block < a->from || p->block > a->to || !count)
		return 0;
	if (!a->out)
		return 1;	/* just asking whether there is one */
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		uint64_t *t = realloc(a->out, cap * sizeof(*t));
		if (!t) {
			a->oom = 1;
			return 1;
		}
		a->out = t;
		a->cap = cap;
	}
	a->out[a->n++] = p->block;
	return 0;
}

/* 1 when a count names a home block of v in [from, to]. */
static int home_shared_in(struct hc_fs *fs, struct hc_volume *v, uint64_t from, uint64_t to)
{
	struct shared_arg a = { .vid = v->vid, .from = from, .to = to };
	return hc_refcount_walk(hc_journal_refcount(fs->j), collect_shared, &a) != 0;
}

int hc_rc_vol_shared(struct hc_fs *fs, struct hc_volume *v)
{
	return home_shared_in(fs, v, 0, UINT64_MAX);
}

uint64_t hc_rc_seq(struct hc_fs *fs)
{
	if (!fs->j)
		return 0;
	struct hc_journal_stats st;
	hc_journal_stats(fs->j, &st);
	return st.seq;
}

void hc_rc_clear_map(struct hc_fs *fs, struct hc_volume *v)
{
	if (!v->map)
		return;
	pthread_mutex_lock(&v->rlock);
	pthread_rwlock_wrlock(&v->maplock);
	if (hc_imap_count(v->map)) {
		int err = hc_journal_map_clear(fs->j, v->map, 0, UINT64_MAX, NULL);
		if (err)
			hc_log(LOG_ERR, "volume %u: cannot clear its map: %s", v->vid,
			       strerror(-err));
	}
	pthread_rwlock_unlock(&v->maplock);
	pthread_mutex_unlock(&v->rlock);
}

void hc_rc_forget_volume(struct hc_fs *fs, struct hc_volume *v)
{
	if (!v->map)
		return;
	hc_rc_detach(fs, v);
	hc_rc_clear_map(fs, v);
	v->map = NULL;
	pthread_mutex_destroy(&v->rlock);
	pthread_mutex_destroy(&v->ifl_lock);
	pthread_rwlock_destroy(&v->maplock);
}

/* --- open, timer, close ------------------------------------------------- */

int hc_rc_open(struct hc_fs *fs, char *msg, size_t msglen)
{
	fs->ovf_fd = -1;
	pthread_mutex_init(&fs->vid_lock, NULL);
	pthread_mutex_init(&fs->ovf_lock, NULL);
	pthread_mutex_init(&fs->ifl_pool_lock, NULL);
	pthread_mutex_init(&fs->bar_lock, NULL);
	fs->bar_gen = 1;	/* volumes start at 0: listed for none */
	fs->ifl_pool = calloc(NIFL, sizeof(*fs->ifl_pool));
	if (!fs->ifl_pool) {
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	for (unsigned i = 0; i < NIFL; i++) {
		fs->ifl_pool[i].next = fs->ifl_free;
		fs->ifl_free = &fs->ifl_pool[i];
	}
	pthread_mutex_init(&fs->timer_lock, NULL);
	pthread_cond_init(&fs->timer_cond, NULL);
	struct hc_journal_opts o = { .name = fs->b->path };
	int err = hc_journal_open(fs->b->dirfd, &o, &fs->j, msg, msglen);
	if (err) {
		fs->j = NULL;
		return err;
	}
	fs->ovf_fd = openat(fs->b->dirfd, OVF_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fs->ovf_fd < 0) {
		err = -errno;
		snprintf(msg, msglen, "%s/%s: %s", fs->b->path, OVF_FILE, strerror(errno));
		return err;
	}
	hc_journal_set_barrier(fs->j, barrier, fs);
	uint64_t max = hc_cache_max_blocks(fs->cache);
	if (max < 65536)
		max = 65536;
	if (max > (4u << 20))
		max = 4u << 20;
	err = hc_hindex_create(max, &fs->hidx);
	if (err) {
		fs->hidx = NULL;
		snprintf(msg, msglen, "cannot allocate the dedup index: %s", strerror(-err));
		return err;
	}
	uint32_t nv = 1;
	err = read_u32_xattr(fs->b->dirfd, NEXT_VID_XATTR, &nv);
	if (err && err != -ENOENT) {
		snprintf(msg, msglen, "%s: bad %s xattr: %s", fs->b->path, NEXT_VID_XATTR,
			 err == -HC_ECORRUPT ? "not a volume id" : strerror(-err));
		return err;
	}
	fs->next_vid = nv;
	return 0;
}

int hc_rc_commit(struct hc_fs *fs)
{
	return fs->j ? hc_journal_commit(fs->j) : 0;
}

static void *timer_main(void *arg)
{
	struct hc_fs *fs = arg;
	pthread_mutex_lock(&fs->timer_lock);
	while (!fs->timer_stop) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 1;
		pthread_cond_timedwait(&fs->timer_cond, &fs->timer_lock, &ts);
		if (fs->timer_stop)
			break;
		pthread_mutex_unlock(&fs->timer_lock);
		/* Records point at durable data only (see the DOC above). */
		hc_ns_reap(fs);
		int err = hc_journal_commit(fs->j);
		if (err)
			hc_log_ratelimited(LOG_ERR, "metadata commit failed: %s", strerror(-err));
		else if ((err = hc_journal_maybe_checkpoint(fs->j)) < 0)
			hc_log_ratelimited(LOG_ERR, "metadata checkpoint failed: %s",
					   strerror(-err));
		pthread_mutex_lock(&fs->timer_lock);
	}
	pthread_mutex_unlock(&fs->timer_lock);
	return NULL;
}

int hc_rc_start(struct hc_fs *fs)
{
	int err = pthread_create(&fs->timer, NULL, timer_main, fs);
	if (err)
		return -err;
	fs->timer_on = 1;
	/* Without its thread the index inserts notes at once: slower, not wrong. */
	if ((err = hc_hindex_start(fs->hidx)))
		hc_log(LOG_WARNING, "dedup hint thread: %s; hints are inserted inline",
		       strerror(-err));
	return 0;
}

void hc_rc_close(struct hc_fs *fs, int clean)
{
	if (fs->timer_on) {
		pthread_mutex_lock(&fs->timer_lock);
		fs->timer_stop = 1;
		pthread_cond_broadcast(&fs->timer_cond);
		pthread_mutex_unlock(&fs->timer_lock);
		pthread_join(fs->timer, NULL);
		fs->timer_on = 0;
	}
	hc_hindex_stop(fs->hidx);
	if (fs->j && clean) {
		int err = hc_journal_commit(fs->j);
		if (!err)
			err = hc_journal_checkpoint(fs->j);
		if (err)
			hc_log(LOG_ERR, "%s: final metadata checkpoint failed: %s", fs->b->path,
			       strerror(-err));
	}
	hc_journal_close(fs->j);
	fs->j = NULL;
	if (fs->ovf_fd >= 0)
		close(fs->ovf_fd);
	fs->ovf_fd = -1;
	hc_hindex_destroy(fs->hidx);
	fs->hidx = NULL;
	free(fs->byvid);
	fs->byvid = NULL;
	fs->nbyvid = 0;
	free(fs->ovf_dom);
	fs->ovf_dom = NULL;
	fs->novf_dom = 0;
	free(fs->ifl_pool);
	fs->ifl_pool = fs->ifl_free = NULL;
	pthread_mutex_destroy(&fs->ifl_pool_lock);
	for (size_t i = 0; i < fs->nbar; i++)
		close(fs->bar_fd[i]);
	free(fs->bar_fd);
	fs->bar_fd = NULL;
	fs->nbar = fs->capbar = 0;
	pthread_mutex_destroy(&fs->bar_lock);
	pthread_mutex_destroy(&fs->vid_lock);
	pthread_mutex_destroy(&fs->ovf_lock);
	pthread_mutex_destroy(&fs->timer_lock);
	pthread_cond_destroy(&fs->timer_cond);
}

/* --- reads -------------------------------------------------------------- */

/* Reads physical block p into buf (zeros past the end).  maplock held (shared). */
static int read_phys(struct hc_fs *fs, struct hc_volume *v, const struct hc_phys *p, void *buf)
{
	if (hc_phys_is_zero(p)) {
		memset(buf, 0, HC_BLOCK_SIZE);
		return 0;
	}
	int fd;
	if (p->file == HC_PHYS_OVERFLOW) {
		fd = fs->ovf_fd;
	} else if (p->file == v->vid) {
		fd = v->cv.fd;	/* its own home (it may be unlinked, still open) */
	} else {
		/* An entry pointing into t keeps t's home file (a zombie, ns.c). */
		struct hc_volume *t = hc_ns_find_vid(fs, p->file);
		if (!t) {
			hc_log_ratelimited(LOG_ERR, "map entry points at missing volume %u",
					   p->file);
			return -EIO;
		}
		fd = t->cv.fd;
	}
	ssize_t got = hc_pread_full(fd, buf, HC_BLOCK_SIZE, (off_t)(p->block * HC_BLOCK_SIZE));
	if (got < 0)
		return (int)got;
	hc_cache_count_read(fs->cache, &v->cv, (uint64_t)got);
	return 0;
}

static void note_target(struct hc_fs *fs, struct hc_volume *v, const struct hc_phys *p,
			const void *buf);

int hc_rc_read_mapped(struct hc_fs *fs, struct hc_volume *v, uint64_t blk0, unsigned n,
		      void *const *bufs, uint8_t *miss)
{
	int err = 0;
	pthread_rwlock_rdlock(&v->maplock);
	if (hc_imap_count(v->map)) {
		for (unsigned k = 0; k < n && !err; k++) {
			struct hc_phys p;
			if (!miss[k] || hc_imap_lookup(v->map, blk0 + k, &p))
				continue;
			err = read_phys(fs, v, &p, bufs[k]);
			miss[k] = 0;
			if (!err)
				note_target(fs, v, &p, bufs[k]);
		}
	}
	pthread_rwlock_unlock(&v->maplock);
	return err;
}

static int vol_read_block(struct hc_cvol *cv, uint64_t blk, void *buf)
{
	struct hc_volume *v = cv_vol(cv);
	struct hc_phys p = { .file = v->vid, .block = blk };
	pthread_rwlock_rdlock(&v->maplock);
	hc_imap_lookup(v->map, blk, &p);
	int err = read_phys(v->fs, v, &p, buf);
	pthread_rwlock_unlock(&v->maplock);
	return err;
}

/* The hash index's domain key: one key for every domain with dedup=all. */
static uint32_t idx_dom(const struct hc_fs *fs, const struct hc_volume *v)
{
	return fs->dedup == HC_DEDUP_ALL ? 0 : v->dom->did;
}

/* 1 when v's blocks go into the hash index (and look for candidates there). */
static int indexed(const struct hc_fs *fs, const struct hc_volume *v)
{
	return fs->dedup != HC_DEDUP_OFF && v->vid < (1u << HIDX_VID_BITS);
}

void hc_rc_note_home(struct hc_fs *fs, struct hc_volume *v, uint64_t blk, const void *buf)
{
	if (!indexed(fs, v) || is_zero(buf))
		return;
	hc_hindex_note(fs->hidx, hc_hindex_hash(fs->hidx, buf), idx_dom(fs, v),
		       hidx_phys(v->vid, blk));
}

/*
 * A block read through a map entry: its target (a home block of a volume
 * of the domain, or an overflow block; hash index encoding: volume id 0,
 * never used, for overflow.dat) is a dedup hint too.  This is what finds a
 * page the hypervisor paged in from a block that was itself copied on
 * write or shared.
 */
static void note_target(struct hc_fs *fs, struct hc_volume *v, const struct hc_phys *p,
			const void *buf)
{
	if (!indexed(fs, v) || hc_phys_is_zero(p) || is_zero(buf))
		return;
	uint32_t f = p->file == HC_PHYS_OVERFLOW ? 0 : p->file;
	if (f >= (1u << HIDX_VID_BITS))
		return;
	hc_hindex_note(fs->hidx, hc_hindex_hash(fs->hidx, buf), idx_dom(fs, v),
		       hidx_phys(f, p->block));
}

static void ovf_owner_set(struct hc_fs *fs, uint64_t b, const struct hc_volume *v);

void hc_rc_ovf_owner(struct hc_fs *fs, uint64_t start, uint64_t n, const struct hc_volume *v)
{
	for (uint64_t b = start; b < start + n; b++)
		ovf_owner_set(fs, b, v);
}

/* Records who filled overflow block b (ovf_lock held); no memory: unknown. */
static void ovf_owner_set(struct hc_fs *fs, uint64_t b, const struct hc_volume *v)
{
	if (b >= fs->novf_dom) {
		uint64_t n = fs->novf_dom ? fs->novf_dom : 1024;
		while (n <= b)
			n *= 2;
		uint32_t *t = realloc(fs->ovf_dom, n * sizeof(*t));
		if (!t)
			return;
		memset(t + fs->novf_dom, 0, (n - fs->novf_dom) * sizeof(*t));
		fs->ovf_dom = t;
		fs->novf_dom = n;
	}
	fs->ovf_dom[b] = v->dom->did + 1;
}

/*
 * Tries to share overflow block ob for data (block b of v, rlock of v
 * held).  Under ovf_lock no overflow block is allocated, so one that has
 * references now holds the same bytes until the entry is set: its count
 * is >= 1 (a reserved or freed block is refused; a block with references
 * has durable contents, I4), the bytes are compared (I2), the entry set
 * (an inc on a block freed meanwhile is refused by the count table).
 * 1 shared, 0 not, -errno.
 */
static int try_share_ovf(struct hc_fs *fs, struct hc_volume *v, uint64_t b, uint64_t ob,
			 const void *data, void *cbuf)
{
	struct hc_phys p = { .file = HC_PHYS_OVERFLOW, .block = ob };
	int res = 0;
	pthread_mutex_lock(&fs->ovf_lock);
	uint32_t owner = ob < fs->novf_dom ? fs->ovf_dom[ob] : 0;
	if (!owner || (fs->dedup != HC_DEDUP_ALL && owner != v->dom->did + 1))
		goto out;	/* I2: not known to be this domain's */
	if (hc_refcount_get(hc_journal_refcount(fs->j), &p) == 0)
		goto out;
	ssize_t r = pread(fs->ovf_fd, cbuf, HC_BLOCK_SIZE, (off_t)(ob * HC_BLOCK_SIZE));
	if (r != HC_BLOCK_SIZE || memcmp(cbuf, data, HC_BLOCK_SIZE))
		goto out;
	pthread_rwlock_wrlock(&v->maplock);
	res = hc_journal_map_set(fs->j, v->map, b, &p, NULL);
	pthread_rwlock_unlock(&v->maplock);
	if (res == -EOVERFLOW || res == -EINVAL)
		res = 0;	/* too many references, or freed meanwhile */
	else if (res == 0)
		res = 1;
out:
	pthread_mutex_unlock(&fs->ovf_lock);
	return res;
}

int hc_rc_in_flight(struct hc_volume *v, uint64_t blk)
{
	int r = 0;
	pthread_mutex_lock(&v->ifl_lock);
	for (struct hc_rc_ifl *f = v->ifl; f && !r; f = f->next)
		r = blk >= f->b0 && blk - f->b0 < f->n;
	pthread_mutex_unlock(&v->ifl_lock);
	return r;
}

/* --- write-back --------------------------------------------------------- */

enum { K_NONE, K_ZERO, K_SHARED, K_HOME, K_OVF };

/*
 * Tries to share candidate c for data (block b of v, in the run [b0, b0+n)
 * being stored, rlock of v held): compares the bytes under the owner's
 * rlock, makes them durable, sets the entry.  1 shared, 0 not, -errno.
 */
static int try_share(struct hc_fs *fs, struct hc_volume *v, uint64_t b, uint64_t b0, unsigned n,
		     const void *data, uint64_t c, void *cbuf, const void *known,
		     const struct hc_phys *cur, int has)
{
	struct hc_phys p = { .file = (uint32_t)(c >> HC_PHYS_BLOCK_BITS),
			     .block = c & HC_PHYS_BLOCK_MAX };
	if (p.file == 0)
		p.file = HC_PHYS_OVERFLOW;
	if (has && hc_phys_eq(&p, cur))
		return 0;	/* (would be a no-op; let the normal path decide) */
	if (p.file == HC_PHYS_OVERFLOW)
		return try_share_ovf(fs, v, b, p.block, data, cbuf);
	struct hc_volume *x;
	if (p.file == v->vid) {
		x = v;
		/*
		 * Not a home block of this run: the run may overwrite it in
		 * place after its count was read as 0 (I3), or copy it on
		 * write for nothing.
		 */
		if (p.block >= b0 && p.block - b0 < n)
			return 0;
	} else {
		pthread_mutex_lock(&fs->vid_lock);
		x = p.file < fs->nbyvid ? fs->byvid[p.file] : NULL;
		if (x && pthread_mutex_trylock(&x->rlock))
			x = NULL;	/* busy: a lost chance, not a wait */
		pthread_mutex_unlock(&fs->vid_lock);
		if (!x)
			return 0;
	}
	int res = 0;
	if (x->noshare || x->zombie || (x->dom != v->dom && fs->dedup != HC_DEDUP_ALL))
		goto out;	/* I2: no sharing across domains unless configured */
	/* Only whole blocks inside the candidate's size, not being written. */
	if ((p.block + 1) * HC_BLOCK_SIZE > hc_vol_size(x) || hc_rc_in_flight(x, p.block))
		goto out;
	if (!known) {
		ssize_t r = pread(x->cv.fd, cbuf, HC_BLOCK_SIZE, (off_t)(p.block * HC_BLOCK_SIZE));
		if (r != HC_BLOCK_SIZE)
			goto out;
		known = cbuf;
	}
	if (memcmp(known, data, HC_BLOCK_SIZE))
		goto out;	/* I2: a hash match is only a hint */
	res = need_sync(fs, x);	/* I4: synced before the record is durable */
	if (res)
		goto out;
	pthread_rwlock_wrlock(&v->maplock);
	res = hc_journal_map_set(fs->j, v->map, b, &p, NULL);
	pthread_rwlock_unlock(&v->maplock);
	if (res == -EOVERFLOW)
		res = 0;	/* store a copy instead */
	else if (res == 0)
		res = 1;
out:
	if (x != v)
		pthread_mutex_unlock(&x->rlock);
	return res;
}

/*
 * DOC: sharing at write time.  Double paging: the hypervisor reads page P
 * from its swap volume (block f), the guest then writes P to its own swap
 * volume (block b).  Shared at b's write-back, P is often gone from f by
 * then: the hypervisor reuses frame f, writes new contents to f, and takes
 * them back (a read hit on a dirty block writes it back first) before b
 * leaves the cache.  So a whole-block write whose hash has a candidate is
 * shared at once, while f still holds P: b must not be cached at all (no
 * older contents of b can be written back after the entry is set; a write
 * of b racing with this one may win, as concurrent writes may), the
 * candidate is checked as at write-back (try_share: bytes compared under
 * its volume's rlock, I2; listed for the barrier, I4), and b then enters
 * the cache clean (hc_cache_write_clean): read hits stay hits and leaving
 * the cache writes nothing.  Only for volumes of kind swap, where double
 * paging writes (the guest's swap disk): there a block without a candidate
 * costs one more index lookup (the write-back looks again; the hash is the
 * block's hint, excache.c "Hints", computed once for both); other volumes
 * are shared at write-back only.
 */
int hc_rc_write_share(struct hc_fs *fs, struct hc_volume *v, uint64_t blk, const void *data,
		      const struct hc_hint *hint)
{
	if (!fs->j || !indexed(fs, v) || __atomic_load_n(&v->kind, __ATOMIC_RELAXED) != HC_KIND_SWAP)
		return 0;
	uint64_t cand[MAX_CAND];
	uint64_t h = hint && hint->kind == HC_HINT_HASH ? hint->hash : hc_hindex_hash(fs->hidx, data);
	size_t nc = hc_hindex_lookup(fs->hidx, h, idx_dom(fs, v), cand, MAX_CAND);
	if (!nc || hc_cache_cached(fs->cache, &v->cv, blk))
		return 0;
	void *cbuf;
	if (posix_memalign(&cbuf, HC_BLOCK_SIZE, HC_BLOCK_SIZE))
		return 0;	/* a lost chance: the write-back may still share it */
	int r = 0;
	pthread_mutex_lock(&v->rlock);
	struct hc_phys cur;
	int had = hc_imap_lookup(v->map, blk, &cur) == 0;
	if (!hc_rc_in_flight(v, blk))
		for (size_t c = 0; c < nc && r == 0; c++)
			r = try_share(fs, v, blk, blk, 1, data, cand[c], cbuf, NULL, &cur, had);
	pthread_mutex_unlock(&v->rlock);
	free(cbuf);
	if (r == 1)
		hc_cache_count_rc(fs->cache, &v->cv, 0, 1, 0, 0);
	return r;
}

/* pwritev of whole blocks, completing short writes. */
static int write_blocks(int fd, struct iovec *iov, unsigned n, uint64_t off)
{
	while (n) {
		ssize_t r = pwritev(fd, iov, (int)n, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -EIO;
		size_t w = (size_t)r;
		while (w >= HC_BLOCK_SIZE && n) {
			iov++;
			n--;
			w -= HC_BLOCK_SIZE;
			off += HC_BLOCK_SIZE;
		}
		if (w) {
			/* Short inside a block (rare): finish it alone. */
			ssize_t rr;
			size_t done = w;
			while (done < HC_BLOCK_SIZE) {
				rr = pwrite(fd, (char *)iov->iov_base + done, HC_BLOCK_SIZE - done,
					    (off_t)(off + done));
				if (rr <= 0)
					return rr < 0 ? -errno : -EIO;
				done += (size_t)rr;
			}
			iov++;
			n--;
			off += HC_BLOCK_SIZE;
		}
	}
	return 0;
}

static struct hc_rc_ifl *ifl_get(struct hc_fs *fs)
{
	pthread_mutex_lock(&fs->ifl_pool_lock);
	struct hc_rc_ifl *f = fs->ifl_free;
	if (f)
		fs->ifl_free = f->next;
	pthread_mutex_unlock(&fs->ifl_pool_lock);
	return f;
}

static void ifl_put(struct hc_fs *fs, struct hc_rc_ifl *f)
{
	pthread_mutex_lock(&fs->ifl_pool_lock);
	f->next = fs->ifl_free;
	fs->ifl_free = f;
	pthread_mutex_unlock(&fs->ifl_pool_lock);
}

/* Completion of an asynchronous in-place run: hints, then the cache's done. */
static void ifl_done(struct hc_io *io)
{
	struct hc_rc_ifl *f = io->priv;
	struct hc_volume *v = f->v;
	struct hc_fs *fs = v->fs;
	/* Counted even after a failure: the home file may have changed. */
	__atomic_fetch_add(&v->wgen, 1, __ATOMIC_RELEASE);
	if (io->res >= 0 && f->hashed)
		hc_hindex_insert_run(fs->hidx, f->hash, f->n, idx_dom(fs, v),
				     hidx_phys(v->vid, f->b0));
	pthread_mutex_lock(&v->ifl_lock);
	struct hc_rc_ifl **pp = &v->ifl;
	while (*pp != f)
		pp = &(*pp)->next;
	*pp = f->next;
	pthread_mutex_unlock(&v->ifl_lock);
	io->done = f->done;
	io->priv = f->priv;
	io->saved = 0;
	ifl_put(fs, f);
	io->done(io);	/* v may be gone after this */
}

/*
 * DOC: the verification window.  A write-back run whose blocks all have
 * candidates among the volume's own blocks, one after the other (a guest
 * or the kernel swapping out again what it swapped out before, to other
 * slots), would read each candidate with its own synchronous pread: 128
 * disk reads in a row for a 512 KiB swap-out, on the thread that serves
 * the FUSE queue.  Instead, the first candidate of such a sequence is read
 * with the ones that follow it, up to WIN_MAX blocks, in one pread, and
 * the compares use those bytes.  Only for candidates in v itself: v's
 * rlock is held from the read to the last compare, and every writer of
 * v's home file holds it, except asynchronous runs already in flight
 * (which hold none), and no new one starts while we hold it.  So the
 * window stops before the first block in flight when it is read, and the
 * bytes of the others stay what is on disk until the rlock is released.
 */
#define WIN_MAX 64

struct vwin {
	uint64_t first;	/* v's block in buf[0] */
	unsigned n;	/* blocks held */
	void *buf;	/* WIN_MAX blocks, allocated at first use */
};

/*
 * The bytes of candidate c of block k (cand[k][c], k in the run [b0,
 * b0+n) of v, v's rlock held) when the window holds them or a read of two
 * or more of them in a row can fill it; else NULL (try_share reads it).
 */
static const void *vwin_get(struct hc_volume *v, struct vwin *w, uint64_t b0, unsigned n,
			    unsigned k, size_t c, uint64_t (*cand)[MAX_CAND], const uint8_t *nc)
{
	uint64_t x = cand[k][c];
	if ((uint32_t)(x >> HC_PHYS_BLOCK_BITS) != v->vid)
		return NULL;
	uint64_t p = x & HC_PHYS_BLOCK_MAX;
	if (w->n && p >= w->first && p - w->first < w->n)
		return (const char *)w->buf + (p - w->first) * HC_BLOCK_SIZE;
	/* How many of the next blocks' first candidates follow p on v. */
	uint64_t size = hc_vol_size(v) / HC_BLOCK_SIZE;
	unsigned m = 0;
	while (m < WIN_MAX && k + m < n && (m == 0 || (nc[k + m] && cand[k + m][0] == x + m)) &&
	       !(p + m >= b0 && p + m - b0 < n) && p + m < size && !hc_rc_in_flight(v, p + m))
		m++;
	if (m < 2)
		return NULL;
	if (!w->buf && posix_memalign(&w->buf, HC_BLOCK_SIZE, WIN_MAX * HC_BLOCK_SIZE)) {
		w->buf = NULL;
		return NULL;
	}
	ssize_t r = hc_pread_full(v->cv.fd, w->buf, (size_t)m * HC_BLOCK_SIZE,
				  (off_t)(p * HC_BLOCK_SIZE));
	w->n = r > 0 ? (unsigned)((size_t)r / HC_BLOCK_SIZE) : 0;
	w->first = p;
	return w->n ? w->buf : NULL;
}

/*
 * What store_run needs to know of a block, found as it enters the cache
 * (excache.c "Hints"): whether it is all zeros and, when v's blocks are
 * indexed, its hash.
 */
static void vol_hint(struct hc_cvol *cv, const void *block, struct hc_hint *h)
{
	struct hc_volume *v = cv_vol(cv);
	if (is_zero(block)) {
		h->kind = HC_HINT_ZERO;
	} else if (indexed(v->fs, v)) {
		h->hash = hc_hindex_hash(v->fs->hidx, block);
		h->kind = HC_HINT_HASH;
	} else {
		h->kind = HC_HINT_DATA;
	}
}

/*
 * Stores a write-back run of v: blocks b0 .. b0+n-1 with data in iov and
 * hints in hint (or NULL); *saved gets the number stored without a data
 * write (zero, shared).  A zero hint is checked (a wrong one would lose
 * data); a wrong hash only costs a dedup chance (candidates are compared,
 * I2), a wrong "not zero" a data write.
 * A run of plain in-place blocks (no entry to clear, no home block shared)
 * goes to the io engine as one vectored write and returns 1: io->done is
 * called at its completion (the rlock is not held meanwhile: the run is
 * registered in v->ifl so that no dedup compares its blocks).
 * Returns 0 or -errno (the cache keeps the blocks dirty and retries; every
 * state reached on the way is consistent).
 */
static int store_run(struct hc_fs *fs, struct hc_volume *v, uint64_t b0, struct iovec *iov,
		     const struct hc_hint *hint, unsigned n, uint32_t *saved, struct hc_io *io)
{
	uint8_t kind[RUN_MAX];
	uint8_t had[RUN_MAX];
	struct hc_phys cur[RUN_MAX];
	uint64_t hash[RUN_MAX];
	uint64_t ovf[RUN_MAX];
	void *cbuf = NULL;
	int err = 0;
	if (n > RUN_MAX)
		return -EINVAL;
	uint64_t cand[RUN_MAX][MAX_CAND];
	uint8_t nc[RUN_MAX];
	struct vwin win = { 0 };
	memset(kind, K_NONE, sizeof(kind));
	if (posix_memalign(&cbuf, HC_BLOCK_SIZE, HC_BLOCK_SIZE))
		return -ENOMEM;
	struct hc_refcount *rc = hc_journal_refcount(fs->j);
	pthread_mutex_lock(&v->rlock);
	unsigned nhome_clear = 0, novf = 0, nhome = 0;
	/* Candidates first: the verification window looks ahead (vwin_get). */
	for (unsigned k = 0; k < n; k++) {
		const void *data = iov[k].iov_base;
		/* Only we change v's map (rlock), so no maplock for lookups. */
		had[k] = hc_imap_lookup(v->map, b0 + k, &cur[k]) == 0;
		nc[k] = 0;
		uint8_t hk = hint ? hint[k].kind : HC_HINT_NONE;
		if ((hk == HC_HINT_NONE || hk == HC_HINT_ZERO) && is_zero(data))
			kind[k] = K_ZERO;
		else if (hk == HC_HINT_HASH)
			hash[k] = hint[k].hash;
		else if (indexed(fs, v))
			hash[k] = hc_hindex_hash(fs->hidx, data);
	}
	/* kind[] is K_NONE (0) or K_ZERO here: zero blocks are skipped. */
	if (indexed(fs, v))
		hc_hindex_lookup_run(fs->hidx, hash, kind, n, idx_dom(fs, v), &cand[0][0], MAX_CAND,
				     nc);
	for (unsigned k = 0; k < n; k++) {
		uint64_t b = b0 + k;
		const void *data = iov[k].iov_base;
		if (kind[k] == K_ZERO)
			continue;
		for (size_t c = 0; c < nc[k]; c++) {
			const void *known = vwin_get(v, &win, b0, n, k, c, cand, nc);
			int r = try_share(fs, v, b, b0, n, data, cand[k][c], cbuf, known, &cur[k],
					  had[k]);
			if (r < 0) {
				err = r;
				goto out;
			}
			if (r) {
				kind[k] = K_SHARED;
				break;
			}
		}
		if (kind[k] == K_SHARED)
			continue;
		struct hc_phys home = { .file = v->vid, .block = b };
		if (hc_refcount_home_free(rc, &home)) {
			/* I3, I4: nobody else reads this home block: in place. */
			kind[k] = K_HOME;
			nhome++;
			if (had[k])
				nhome_clear++;
		} else {
			kind[k] = K_OVF;
			pthread_mutex_lock(&fs->ovf_lock);
			err = hc_refcount_alloc(rc, 1, &ovf[k]);
			if (!err)
				ovf_owner_set(fs, ovf[k], v);
			pthread_mutex_unlock(&fs->ovf_lock);
			if (err)
				goto out;
			novf++;
		}
	}
	/* The common case: one asynchronous write, no map change. */
	struct hc_rc_ifl *f;
	if (nhome == n && !nhome_clear && n <= RUN_MAX && (f = ifl_get(fs))) {
		f->v = v;
		f->b0 = b0;
		f->n = n;
		f->hashed = indexed(fs, v);
		if (f->hashed)
			memcpy(f->hash, hash, n * sizeof(hash[0]));
		f->done = io->done;
		f->priv = io->priv;
		pthread_mutex_lock(&v->ifl_lock);
		f->next = v->ifl;
		v->ifl = f;
		pthread_mutex_unlock(&v->ifl_lock);
		pthread_mutex_unlock(&v->rlock);
		free(cbuf);
		free(win.buf);
		io->done = ifl_done;
		io->priv = f;
		int e = hc_ioeng_submit(fs->eng, io);
		if (e) {
			io->res = e;
			ifl_done(io);
		}
		return 1;
	}
	/* Data: runs of in-place blocks as one vectored write each. */
	for (unsigned k = 0; k < n && !err;) {
		if (kind[k] == K_OVF) {
			ssize_t r = pwrite(fs->ovf_fd, iov[k].iov_base, HC_BLOCK_SIZE,
					   (off_t)(ovf[k] * HC_BLOCK_SIZE));
			if (r != HC_BLOCK_SIZE)
				err = r < 0 ? -errno : -EIO;
			k++;
			continue;
		}
		if (kind[k] != K_HOME) {
			k++;
			continue;
		}
		unsigned e = k;
		while (e < n && kind[e] == K_HOME)
			e++;
		err = write_blocks(v->cv.fd, &iov[k], e - k, (b0 + k) * HC_BLOCK_SIZE);
		k = e;
	}
	if (novf)
		__atomic_fetch_add(&fs->ovf_wgen, 1, __ATOMIC_RELEASE);
	if (nhome)
		__atomic_fetch_add(&v->wgen, 1, __ATOMIC_RELEASE);
	if (err)
		goto out;
	for (unsigned k = 0; k < n; k++)
		if (kind[k] == K_HOME && indexed(fs, v))
			hc_hindex_insert(fs->hidx, hash[k], idx_dom(fs, v), hidx_phys(v->vid, b0 + k));
	/* I4: the barrier syncs overflow.dat (ovf_wgen) and listed homes. */
	if (nhome_clear && (err = need_sync(fs, v)))
		goto out;
	pthread_rwlock_wrlock(&v->maplock);
	for (unsigned k = 0; k < n && !err; k++) {
		uint64_t b = b0 + k;
		struct hc_phys p;
		switch (kind[k]) {
		case K_ZERO:
			p.file = HC_PHYS_ZERO;
			p.block = 0;
			if (!had[k] || !hc_phys_is_zero(&cur[k]))
				err = hc_journal_map_set(fs->j, v->map, b, &p, NULL);
			break;
		case K_HOME:
			if (had[k])
				err = hc_journal_map_clear(fs->j, v->map, b, 1, NULL);
			break;
		case K_OVF:
			p.file = HC_PHYS_OVERFLOW;
			p.block = ovf[k];
			err = hc_journal_map_set(fs->j, v->map, b, &p, NULL);
			if (!err) {
				kind[k] = K_NONE;	/* owned by the map now */
				if (indexed(fs, v))
					hc_hindex_insert(fs->hidx, hash[k], idx_dom(fs, v),
							 hidx_phys(0, ovf[k]));
			}
			break;
		default:
			break;
		}
	}
	pthread_rwlock_unlock(&v->maplock);
	if (!err) {
		uint64_t nz = 0, nd = 0;
		for (unsigned k = 0; k < n; k++) {
			nz += kind[k] == K_ZERO;
			nd += kind[k] == K_SHARED;
		}
		*saved = (uint32_t)(nz + nd);
		hc_cache_count_rc(fs->cache, &v->cv, nz, nd, novf, 0);
	}
out:
	/* Reserved overflow blocks no record points at go back. */
	for (unsigned k = 0; k < n; k++)
		if (kind[k] == K_OVF && novf)
			hc_refcount_cancel(rc, ovf[k], 1);
	pthread_mutex_unlock(&v->rlock);
	free(cbuf);
	free(win.buf);
	return err;
}

static int vol_wb_submit(struct hc_cvol *cv, struct hc_io *io, const struct hc_hint *hint)
{
	struct hc_volume *v = cv_vol(cv);
	uint64_t b0 = (uint64_t)io->off / HC_BLOCK_SIZE;
	int err = store_run(v->fs, v, b0, io->iov, hint, (unsigned)io->iovcnt, &io->saved, io);
	if (err == 1)
		return 0;	/* in flight: io->done comes at its completion */
	io->res = err ? err : (ssize_t)io->iovcnt * HC_BLOCK_SIZE;
	io->done(io);
	return 0;
}

/* --- discard, truncate -------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int punch(int fd, int mode, uint64_t first, uint64_t last)
{
	off_t off = (off_t)(first * HC_BLOCK_SIZE);
	off_t len = (off_t)((last - first + 1) * HC_BLOCK_SIZE);
	mode |= FALLOC_FL_KEEP_SIZE;
	if (fallocate(fd, mode, off, len) == 0)
		return 0;
	if (errno == EOPNOTSUPP && (mode & FALLOC_FL_ZERO_RANGE)) {
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0)
			return 0;
	}
	return -errno;
}

/* The home blocks of v in [from, to] some entry points at, sorted (*out malloc'd). */
static int shared_in(struct hc_fs *fs, struct hc_volume *v, uint64_t from, uint64_t to,
		     uint64_t **out, size_t *n)
{
	struct shared_arg a = { .vid = v->vid, .from = from, .to = to };
	a.out = malloc(sizeof(uint64_t));
	if (!a.out)
		return -ENOMEM;
	a.cap = 1;
	hc_refcount_walk(hc_journal_refcount(fs->j), collect_shared, &a);
	if (a.oom) {
		free(a.out);
		return -ENOMEM;
	}
	qsort(a.out, a.n, sizeof(*a.out), cmp_u64);
	*out = a.out;
	*n = a.n;
	return 0;
}

int hc_rc_shared_blocks(struct hc_fs *fs, struct hc_volume *v, uint64_t **out, size_t *n)
{
	return shared_in(fs, v, 0, UINT64_MAX, out, n);
}

/* Punches blocks [first, last] of fd but the sorted keep[0..n) (any past last ignored). */
static int punch_gaps(int fd, int mode, const uint64_t *keep, size_t n, uint64_t first,
		      uint64_t last)
{
	uint64_t from = first;
	int err = 0;
	for (size_t i = 0; i <= n && !err; i++) {
		uint64_t stop = i < n && keep[i] <= last ? keep[i] : last + 1;
		if (stop > from)
			err = punch(fd, mode, from, stop - 1);
		if (stop == last + 1)
			break;
		from = stop + 1;
	}
	return err;
}

int hc_rc_punch_except(struct hc_volume *v, const uint64_t *keep, size_t n)
{
	struct stat st;
	if (fstat(v->cv.fd, &st) < 0)
		return -errno;
	uint64_t end = ((uint64_t)st.st_size + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE;
	return end ? punch_gaps(v->cv.fd, FALLOC_FL_PUNCH_HOLE, keep, n, 0, end - 1) : 0;
}

int hc_rc_discard(struct hc_fs *fs, struct hc_volume *v, uint64_t first, uint64_t last,
		  int mode)
{
	uint64_t *keep = NULL;
	size_t nkeep = 0;
	pthread_mutex_lock(&v->rlock);
	int err = shared_in(fs, v, first, last, &keep, &nkeep);
	/*
	 * I4: a block whose count fell to 0 by a record not yet durable would
	 * come back after a crash with its entry, and read zeros; commit first
	 * (nothing to do when every record is durable).  No count can rise
	 * meanwhile: sharing into v takes its rlock, which we hold.
	 */
	if (!err)
		err = hc_rc_commit(fs);
	if (err)
		goto out;
	/* Home blocks others read stay; the rest of the range is punched. */
	err = punch_gaps(v->cv.fd, mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE), keep,
			 nkeep, first, last);
	if (err)
		goto out;
	__atomic_fetch_add(&v->wgen, 1, __ATOMIC_RELEASE);
	pthread_rwlock_wrlock(&v->maplock);
	uint64_t l;
	struct hc_phys p;
	if (hc_imap_next(v->map, first, &l, &p) == 0 && l <= last)
		err = hc_journal_map_clear(fs->j, v->map, first, last - first + 1, NULL);
	struct hc_phys zero = { .file = HC_PHYS_ZERO, .block = 0 };
	for (size_t i = 0; i < nkeep && !err; i++)
		err = hc_journal_map_set(fs->j, v->map, keep[i], &zero, NULL);
	pthread_rwlock_unlock(&v->maplock);
out:
	pthread_mutex_unlock(&v->rlock);
	free(keep);
	return err;
}

int hc_rc_truncate_begin(struct hc_fs *fs, struct hc_volume *v, uint64_t size)
{
	int err = 0;
	pthread_mutex_lock(&v->rlock);
	/* A partial last block counts: ftruncate zeroes its tail at home. */
	if (home_shared_in(fs, v, size / HC_BLOCK_SIZE, UINT64_MAX))
		err = -EBUSY;
	else if (!(err = hc_rc_commit(fs)))	/* I4, as in hc_rc_discard */
		v->noshare++;
	pthread_mutex_unlock(&v->rlock);
	return err;
}

void hc_rc_hold_shares(struct hc_volume *v, int on)
{
	pthread_mutex_lock(&v->rlock);
	v->noshare += on ? 1 : -1;
	pthread_mutex_unlock(&v->rlock);
}

void hc_rc_truncate_end(struct hc_fs *fs, struct hc_volume *v, uint64_t size)
{
	uint64_t first = (size + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE;
	pthread_mutex_lock(&v->rlock);
	pthread_rwlock_wrlock(&v->maplock);
	uint64_t l;
	struct hc_phys p;
	if (hc_imap_next(v->map, first, &l, &p) == 0) {
		int err = hc_journal_map_clear(fs->j, v->map, first, UINT64_MAX, NULL);
		if (err)
			hc_log(LOG_ERR, "%s: cannot clear the map past the new size: %s",
			       v->name, strerror(-err));
	}
	pthread_rwlock_unlock(&v->maplock);
	v->noshare--;
	pthread_mutex_unlock(&v->rlock);
}

int hc_rc_has_entry(struct hc_volume *v, uint64_t blk)
{
	struct hc_phys p;
	pthread_rwlock_rdlock(&v->maplock);
	int r = hc_imap_lookup(v->map, blk, &p) == 0;
	pthread_rwlock_unlock(&v->maplock);
	return r;
}

/* --- copy_file_range as references -------------------------------------- */

int hc_rc_copy_refs(struct hc_fs *fs, struct hc_volume *src, uint64_t sb, struct hc_volume *dst,
		    uint64_t db, uint64_t n, uint64_t *done)
{
	struct hc_volume *a = src->vid < dst->vid ? src : dst;
	struct hc_volume *b = a == src ? dst : src;
	*done = 0;
	pthread_mutex_lock(&a->rlock);
	pthread_mutex_lock(&b->rlock);
	/* I4: the source's home blocks are synced before the records are durable. */
	int err = need_sync(fs, src);
	if (err)
		goto out;
	pthread_rwlock_wrlock(&dst->maplock);
	uint64_t k;
	for (k = 0; k < n && !err; k++) {
		struct hc_phys p = { .file = src->vid, .block = sb + k };
		hc_imap_lookup(src->map, sb + k, &p);	/* src's map: we hold its rlock */
		if (p.file == dst->vid && p.block == db + k) {
			struct hc_phys cur;
			if (hc_imap_lookup(dst->map, db + k, &cur) == 0)
				err = hc_journal_map_clear(fs->j, dst->map, db + k, 1, NULL);
		} else {
			err = hc_journal_map_set(fs->j, dst->map, db + k, &p, NULL);
		}
		if (err == -EOVERFLOW) {
			err = 0;	/* too many references: the rest is copied */
			break;
		}
	}
	*done = err ? k - 1 : k;
	pthread_rwlock_unlock(&dst->maplock);
	hc_cache_count_rc(fs->cache, &dst->cv, 0, 0, 0, *done);
out:
	pthread_mutex_unlock(&b->rlock);
	pthread_mutex_unlock(&a->rlock);
	return err;
}

/* --- SEEK_DATA / SEEK_HOLE ---------------------------------------------- */

/* The first block >= blk with an entry other than ZERO, or UINT64_MAX. */
static uint64_t next_data_entry(struct hc_volume *v, uint64_t blk)
{
	uint64_t l;
	struct hc_phys p;
	while (hc_imap_next(v->map, blk, &l, &p) == 0) {
		if (!hc_phys_is_zero(&p))
			return l;
		blk = l + 1;
	}
	return UINT64_MAX;
}

int64_t hc_rc_seek(struct hc_volume *v, int64_t off, int whence, uint64_t size)
{
	int64_t res;
	pthread_rwlock_rdlock(&v->maplock);
	if (whence == SEEK_DATA) {
		off_t h = lseek(v->cv.fd, (off_t)off, SEEK_DATA);
		uint64_t home = h < 0 ? size : (uint64_t)h;
		uint64_t e = next_data_entry(v, (uint64_t)off / HC_BLOCK_SIZE);
		uint64_t eoff = e == UINT64_MAX ? size
			      : e * HC_BLOCK_SIZE < (uint64_t)off ? (uint64_t)off : e * HC_BLOCK_SIZE;
		uint64_t r = home < eoff ? home : eoff;
		res = h < 0 && errno != ENXIO ? -errno : r >= size ? -ENXIO : (int64_t)r;
	} else {
		/*
		 * The first home hole that no data entry covers: from a home
		 * hole, skip the run of consecutive non-ZERO entries there (one
		 * map walk, not one lseek per entry), and look again.
		 */
		uint64_t pos = (uint64_t)off;
		res = (int64_t)size;
		while (pos < size) {
			off_t h = lseek(v->cv.fd, (off_t)pos, SEEK_HOLE);
			if (h < 0) {
				if (errno != ENXIO)	/* ENXIO: at the home file's end */
					res = -errno;
				break;
			}
			pos = (uint64_t)h;
			if (pos >= size)
				break;
			uint64_t blk = pos / HC_BLOCK_SIZE, l;
			struct hc_phys p;
			while (hc_imap_next(v->map, blk, &l, &p) == 0 && l == blk &&
			       !hc_phys_is_zero(&p))
				blk++;
			if (blk * HC_BLOCK_SIZE <= pos) {
				res = (int64_t)pos;	/* no data entry here: a hole */
				break;
			}
			pos = blk * HC_BLOCK_SIZE;	/* data elsewhere up to here */
		}
	}
	pthread_rwlock_unlock(&v->maplock);
	return res;
}
