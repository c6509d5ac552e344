/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Domains, volumes and the namespace they form (ns.c), and volume I/O
 * (volume.c): splitting requests into blocks, sizes, fsync, discard, seek.
 *
 * The namespace is two levels deep: the root holds domains (directories of
 * the backing directory), a domain holds volumes (regular files, their home
 * files).  Every domain and volume is in memory for the whole mount, loaded
 * at start; a volume object outlives the kernel's inodes because the cache
 * may hold its dirty blocks.  Node pointers are the FUSE inode numbers.
 *
 * Locking: hc_fs.ns_lock protects the lists, names, lookup and open counts.
 * A volume's iolock is taken shared by reads and writes and exclusively by
 * size changes and fallocate; its size is read and set under v->lock.
 */
#ifndef HC_VOLUME_H
#define HC_VOLUME_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>

#include "dmrc.h"
#include "excache.h"
#include "hecache/format.h"
#include "ioeng.h"
#include "mrc.h"
#include "sb.h"

#define HC_MAX_VOLUME_SIZE (1ull << 44)	/* 16 TiB */
#define HC_REQ_MAX_BYTES (1u << 20)		/* largest FUSE read/write */
#define HC_REQ_MAX_BLOCKS (HC_REQ_MAX_BYTES / HC_BLOCK_SIZE + 2)

enum hc_node_type { HC_NODE_ROOT, HC_NODE_DOMAIN, HC_NODE_VOLUME };

enum hc_kind { HC_KIND_DISK, HC_KIND_SWAP, HC_KIND_RAM };

/* Where a domain's memory size came from. */
enum { HC_MEM_NONE, HC_MEM_HECTL, HC_MEM_AGENT };

struct hc_node {
	enum hc_node_type type;
	uint64_t nlookup;	/* ns_lock */
};

struct hc_domain {
	struct hc_node node;
	char name[NAME_MAX + 1];	/* ns_lock */
	int dirfd;
	int removed;			/* ns_lock */
	unsigned nvol;			/* ns_lock: volume objects, unlinked ones too */
	struct hc_cstats stats;		/* atomics */
	struct hc_dmrc *mrc;		/* its own lock; set at creation */
	uint64_t mem_bytes;		/* ns_lock: the guest's memory M, 0 = unknown */
	int mem_source;			/* ns_lock: HC_MEM_* */
	struct hc_volume *vols;		/* ns_lock */
	struct hc_domain *next;		/* ns_lock */
	uint32_t did;			/* dedup key of the hash index (runtime only) */
};

struct hc_volume {
	struct hc_node node;
	struct hc_cvol cv;
	struct hc_domain *dom;		/* ns_lock */
	char name[NAME_MAX + 1];	/* ns_lock */
	enum hc_kind kind;
	int direct;			/* cv.fd opened with O_DIRECT */
	int nopen;			/* ns_lock */
	int unlinked;			/* ns_lock */
	int zombie;			/* ns_lock and rlock: unlinked, home kept while shared */
	int reapable;			/* ns_lock: reap() found it unshared */
	int punched;			/* ns_lock: its unshared blocks were punched */
	int quiesced;			/* ns_lock: closed, map cleared, cache dropped */
	uint64_t *keep;			/* ns_lock, in reap(): its shared blocks */
	size_t nkeep;
	struct hc_volume *znext;	/* ns_lock: fs->zombies */
	pthread_rwlock_t iolock;
	pthread_mutex_t lock;
	uint64_t size;			/* lock: logical size in bytes */
	struct timespec mtime;		/* lock: last write, 0 = take backing's */
	struct hc_volume *next;		/* ns_lock */
	/* --- reconcile (reconcile.c, doc/reconcile.md) --- */
	struct hc_fs *fs;
	uint32_t vid;			/* persistent volume id (user.hecache.vid) */
	struct hc_imap *map;		/* the journal's map of vid */
	/*
	 * rlock serializes everything that writes this volume's home file
	 * or changes its map (write-back runs, discard, truncate, unlink,
	 * copy_file_range) with the byte check of a dedup that shares one
	 * of its home blocks.  Held across storage I/O; never held while
	 * calling into the cache; other volumes' rlocks only by trylock
	 * (dedup) or in vid order (copy_file_range).
	 */
	pthread_mutex_t rlock;
	/* maplock: map lookups (shared) vs changes (exclusive, rlock held too). */
	pthread_rwlock_t maplock;
	uint64_t wgen, sgen;		/* atomics: home writes done / covered by fdatasync */
	/*
	 * Plain in-place write-back runs in flight through the io engine
	 * (rlock released): registered under rlock, removed at completion
	 * under ifl_lock; a dedup candidate inside one is skipped (its home
	 * bytes are changing).
	 */
	pthread_mutex_t ifl_lock;
	struct hc_rc_ifl *ifl;		/* ifl_lock: list of runs in flight */
	int noshare;			/* rlock: a truncate is under way, share nothing */
	uint64_t bar_gen;		/* fs->bar_lock: the barrier its home is listed for */
};

struct hc_buf_pool;
struct hc_odefrag;
struct hc_rreq;
struct hc_wreq;

/* FUSE requests served, by kind (fs_ops.c counts, ctl status reports). */
enum { HC_REQ_READ, HC_REQ_WRITE, HC_REQ_COPY_FILE_RANGE, HC_REQ_GETXATTR, HC_REQ_GETATTR,
       HC_REQ_LOOKUP, HC_REQ_FSYNC, HC_REQ_FALLOCATE, HC_REQ_OTHER, HC_REQ_NKINDS };
extern const char *const hc_req_kind_names[HC_REQ_NKINDS];

/*
 * Mode bits a volume may have: never set-user-ID or set-group-ID, so the
 * kernel can leave privilege killing to us (fs_ops.c, FUSE_HANDLE_KILLPRIV_V2).
 */
#define HC_VOL_MODE_MASK 01777

/* Where write-back looks for identical blocks to share (-o dedup=). */
enum { HC_DEDUP_DOMAIN, HC_DEDUP_OFF, HC_DEDUP_ALL };

struct hc_fs {
	uint64_t nreq[HC_REQ_NKINDS];	/* atomics: FUSE requests served */
	struct hc_backing *b;
	struct hc_cache *cache;
	struct hc_ioeng *eng;
	int writethrough;
	int killpriv_v2;		/* atomic, set at FUSE INIT (fs_ops.c): no getxattr per copy */
	unsigned fuse_uring_queues;	/* atomic: FUSE over io_uring queues serving, 0 if off */
	uint64_t fuse_uring_replies;	/* atomic: requests answered through them */
	int mrc_on;			/* each domain has a curve */
	struct hc_mrc_config mrc_cfg;
	struct hc_node root;
	pthread_mutex_t ns_lock;
	struct hc_domain *domains;	/* ns_lock */
	struct hc_volume *zombies;	/* ns_lock: unlinked volumes others share (ns.c) */
	uint64_t reap_seq;		/* ns_lock: journal seq when reap last looked */
	int reap_dirty;			/* ns_lock: a zombie came or was closed since */
	struct hc_buf_pool *bufs;
	pthread_mutex_t space_lock;
	uint64_t space_checked_ns;	/* space_lock */
	uint64_t space_avail;		/* space_lock: f_bavail at the last check */
	uint64_t space_written;		/* space_lock: written_bytes at the last check */
	uint64_t space_reserve;		/* bytes kept free before write-through */
	/* --- reconcile (reconcile.c) --- */
	struct hc_journal *j;
	struct hc_hindex *hidx;
	int dedup;			/* HC_DEDUP_*, set before requests are served */
	int ovf_fd;			/* BACKING/overflow.dat */
	/*
	 * ovf_lock: overflow allocation, and a dedup compare-and-share of an
	 * overflow block (no block can be reallocated and rewritten between
	 * the compare and the new reference).  Nests inside rlock, outside
	 * maplock.  ovf_dom[b]: 1 + the id of the domain whose write-back
	 * filled overflow block b this mount (0: unknown, not a candidate).
	 */
	pthread_mutex_t ovf_lock;
	uint32_t *ovf_dom;		/* ovf_lock */
	uint64_t novf_dom;		/* ovf_lock */
	/* Contexts of asynchronous write-back runs (reconcile.c), preallocated. */
	pthread_mutex_t ifl_pool_lock;
	struct hc_rc_ifl *ifl_free;	/* ifl_pool_lock */
	struct hc_rc_ifl *ifl_pool;
	uint64_t ovf_wgen, ovf_sgen;	/* atomics, as a volume's wgen/sgen */
	/*
	 * The journal's barrier (reconcile.c "ordering"): home files that
	 * records appended since the last barrier point at, not yet synced
	 * (descriptors dup'd at listing), and the barrier's generation.
	 */
	pthread_mutex_t bar_lock;
	int *bar_fd;			/* bar_lock */
	size_t nbar, capbar;		/* bar_lock */
	uint64_t bar_gen;		/* bar_lock */
	uint32_t next_vid;		/* ns_lock; persisted in the backing dir's xattr */
	uint32_t next_did;		/* ns_lock */
	pthread_mutex_t vid_lock;	/* byvid; nests inside rlock and maplock */
	struct hc_volume **byvid;	/* vid_lock: listed volumes by id */
	uint32_t nbyvid;		/* vid_lock */
	pthread_t timer;
	int timer_on;
	pthread_mutex_t timer_lock;
	pthread_cond_t timer_cond;
	int timer_stop;			/* timer_lock */
	int rc_opened;			/* hc_rc_open was called: hc_rc_close */
	struct hc_odefrag *od;		/* the online defrag job (odefrag.h), set at start */
	uint64_t guest_ops;		/* atomic: reads and writes served (defrag yields) */
	int clean;			/* the last hc_fs_flush_all succeeded */
};

/* A read in progress; done() gets it with err or iov/iovcnt to reply with. */
struct hc_rreq {
	struct hc_fs *fs;
	struct hc_volume *vol;
	void (*done)(struct hc_rreq *r);
	void *priv;
	int err;
	int iovcnt;
	struct iovec iov[HC_REQ_MAX_BLOCKS];	/* the reply */
	/* private */
	int pending;
	unsigned nblk;
	void *buf[HC_REQ_MAX_BLOCKS];
	uint8_t miss[HC_REQ_MAX_BLOCKS];
	struct iovec riov[HC_REQ_MAX_BLOCKS];
	struct hc_io io[HC_REQ_MAX_BLOCKS / 2 + 1];
};

/* A write-through in progress. */
struct hc_wreq {
	struct hc_cache_group grp;
	struct hc_fs *fs;
	void (*done)(struct hc_wreq *w, int err);
	void *priv;
	size_t size;
};

/* --- ns.c --- */

/*
 * Loads the namespace of an opened backing directory and creates the cache
 * and buffer pool.  mrc: each domain's curve configuration, NULL for none.
 * msg gets one line on failure.
 */
int hc_fs_create(struct hc_backing *b, struct hc_ioeng *eng, uint64_t cache_bytes,
		 int writethrough, const struct hc_mrc_config *mrc, struct hc_fs **out,
		 char *msg, size_t msglen)
	__attribute__((warn_unused_result));
/* Writes back every dirty block and syncs every volume; returns 0 or -errno. */
int hc_fs_flush_all(struct hc_fs *fs);
/* Frees everything (call hc_fs_flush_all first to keep dirty data). */
void hc_fs_destroy(struct hc_fs *fs);

struct hc_node *hc_fs_node(struct hc_fs *fs, uint64_t ino);
uint64_t hc_fs_ino(struct hc_fs *fs, struct hc_node *n);

/* Looks a name up in the root or a domain; +1 lookup on success. */
int hc_ns_lookup(struct hc_fs *fs, struct hc_node *parent, const char *name,
		 struct hc_node **out);
/* Drops n lookups; frees an unlinked volume nobody uses any more. */
void hc_ns_forget(struct hc_fs *fs, struct hc_node *node, uint64_t n);
int hc_ns_mkdir(struct hc_fs *fs, struct hc_node *parent, const char *name, mode_t mode,
		uid_t uid, gid_t gid, struct hc_node **out);
int hc_ns_rmdir(struct hc_fs *fs, struct hc_node *parent, const char *name);
int hc_ns_create(struct hc_fs *fs, struct hc_node *parent, const char *name, mode_t mode,
		 uid_t uid, gid_t gid, struct hc_volume **out);
int hc_ns_unlink(struct hc_fs *fs, struct hc_node *parent, const char *name);
int hc_ns_rename(struct hc_fs *fs, struct hc_node *parent, const char *name,
		 struct hc_node *newparent, const char *newname, unsigned flags);
/* Calls fill for entries from index off on; stops when fill returns non-zero. */
int hc_ns_readdir(struct hc_fs *fs, struct hc_node *dir, uint64_t off,
		  int (*fill)(void *ctx, const char *name, const struct stat *st, uint64_t next),
		  void *ctx);
int hc_ns_getattr(struct hc_fs *fs, struct hc_node *n, struct stat *st);
/* Open count, for the life of unlinked volumes. */
void hc_ns_open(struct hc_fs *fs, struct hc_volume *v);
void hc_ns_release(struct hc_fs *fs, struct hc_volume *v);
/*
 * Removes the home files of unlinked volumes whose blocks nobody shares any
 * more (see DOC: unlinked shared volumes in ns.c); the reconcile timer calls
 * it every second.
 */
void hc_ns_reap(struct hc_fs *fs);
int hc_ns_statfs(struct hc_fs *fs, struct statvfs *st);
/* Text of the counters (doc/hecache-fs.8): all domains + total, or one. */
int hc_ns_stats_text(struct hc_fs *fs, struct hc_domain *only, char *buf, size_t len);
int hc_ns_set_kind(struct hc_fs *fs, struct hc_volume *v, const char *kind);
/* Finds a domain by name; call with ns_lock held.  NULL when absent. */
struct hc_domain *hc_ns_find_domain(struct hc_fs *fs, const char *name);
/* Finds a volume of d by name; call with ns_lock held.  NULL when absent. */
struct hc_volume *hc_ns_find_volume(struct hc_domain *d, const char *name);
const char *hc_kind_name(enum hc_kind k);

/* --- volume.c --- */

/* Buffer pool of 4 KiB blocks for read replies (bounded, preallocated). */
int hc_buf_pool_create(unsigned nbufs, struct hc_buf_pool **out)
	__attribute__((warn_unused_result));
/* Waits for every request context to come back (replies in flight), then frees. */
void hc_buf_pool_destroy(struct hc_buf_pool *p);

/*
 * Reads size bytes at off.  Hits are served from the cache, misses from
 * storage asynchronously; r->done runs once, maybe before this returns.
 * The caller replies and then calls hc_rreq_release().  With dst (page
 * aligned, dst_len bytes, the reply's final place: a FUSE ring buffer) and
 * a block-aligned off, the data is read straight into dst and r->iov points
 * there, instead of into buffers of the pool.  Returns 0, or -errno when
 * nothing was started (done will not run).
 */
int hc_vol_read(struct hc_fs *fs, struct hc_volume *v, uint64_t off, size_t size,
		void (*done)(struct hc_rreq *r), void *priv, void *dst, size_t dst_len);
void hc_rreq_release(struct hc_rreq *r);

/*
 * Writes len bytes at off.  Write-back: returns len once admitted.
 * Backing file system nearly full: returns len once stored, or the error.
 * Write-through (-o writethrough): returns 0 and later calls done(w, err)
 * with w from a bounded pool.
 * Negative errno on failure (-EFBIG past HC_MAX_VOLUME_SIZE).
 */
ssize_t hc_vol_write(struct hc_fs *fs, struct hc_volume *v, uint64_t off, const void *buf,
		     size_t len, void (*done)(struct hc_wreq *w, int err), void *priv);
void hc_wreq_release(struct hc_wreq *w);
int hc_vol_fsync(struct hc_fs *fs, struct hc_volume *v, int datasync);
int hc_vol_truncate(struct hc_fs *fs, struct hc_volume *v, uint64_t size);
int hc_vol_fallocate(struct hc_fs *fs, struct hc_volume *v, int mode, uint64_t off, uint64_t len);
/* SEEK_DATA / SEEK_HOLE; returns the offset or -errno. */
/*
 * Writes v's cached dirty blocks back and sets the home file's size to the
 * volume's: afterwards the home file's holes (outside map entries) are
 * the volume's.  0 or -errno.
 */
int hc_vol_flush_home(struct hc_fs *fs, struct hc_volume *v);
int64_t hc_vol_seek(struct hc_fs *fs, struct hc_volume *v, int64_t off, int whence);
uint64_t hc_vol_size(struct hc_volume *v);

/*
 * copy_file_range from src to dst (both volumes).  Block-aligned ranges
 * between volumes of one domain become references (no data copied);
 * returns the bytes copied, which may be short (an unaligned tail).
 * -EOPNOTSUPP for anything else: the caller (the kernel) then copies
 * through read and write.  -errno on failure.
 */
ssize_t hc_vol_copy_range(struct hc_fs *fs, struct hc_volume *src, uint64_t soff,
			  struct hc_volume *dst, uint64_t doff, uint64_t len);

/* --- reconcile.c: swap-reconcile wired in (doc/reconcile.md) --- */

/*
 * Opens the journal, overflow.dat and the hash index of fs->b; starts
 * nothing yet.  One line in msg on failure (a journal refusal names the
 * file and offset).
 */
int hc_rc_open(struct hc_fs *fs, char *msg, size_t msglen) __attribute__((warn_unused_result));
/* Starts the 1 s commit/checkpoint timer. */
int hc_rc_start(struct hc_fs *fs);
/*
 * Stops the timer; with clean set, commits and checkpoints; closes the
 * journal and overflow.dat.  Safe on a half-open fs.
 */
void hc_rc_close(struct hc_fs *fs, int clean);
/* Gives v its persistent id (assigning one if it has none), map and hooks. */
int hc_rc_attach(struct hc_fs *fs, struct hc_volume *v);
void hc_rc_detach(struct hc_fs *fs, struct hc_volume *v);
/* Lists v by its id again after a detach that did not go through. */
void hc_rc_attach_again(struct hc_fs *fs, struct hc_volume *v);
/* Makes every map change durable (after the data it points at). */
int hc_rc_commit(struct hc_fs *fs);
/* Home file of v synced: records it (fdatasync done by the caller after g was read). */
void hc_rc_synced(struct hc_volume *v, uint64_t g);
/*
 * Read misses through the map: for each k with miss[k], a block with an
 * entry is read now (ZERO: zeros) into bufs[k] and miss[k] cleared; blocks
 * at home stay missed.  Returns 0 or -errno.
 */
int hc_rc_read_mapped(struct hc_fs *fs, struct hc_volume *v, uint64_t blk0, unsigned n,
		      void *const *bufs, uint8_t *miss);
/* A home block read from storage: a dedup hint. */
void hc_rc_note_home(struct hc_fs *fs, struct hc_volume *v, uint64_t blk, const void *buf);
/*
 * Whole blocks [first, last] discarded (already dropped from the cache):
 * entries cleared, home blocks others share become ZERO entries, the rest
 * of the home range is punched with mode.  0 or -errno.
 */
int hc_rc_discard(struct hc_fs *fs, struct hc_volume *v, uint64_t first, uint64_t last,
		  int mode);
/*
 * Truncate support: hc_rc_truncate_begin refuses (-EBUSY) when another
 * volume shares a home block at or past byte size, else blocks sharing
 * into v until hc_rc_truncate_end, which clears the map past size.
 */
int hc_rc_truncate_begin(struct hc_fs *fs, struct hc_volume *v, uint64_t size);
void hc_rc_truncate_end(struct hc_fs *fs, struct hc_volume *v, uint64_t size);
/* on 1: nothing new shares v's blocks until the matching on 0 (v->noshare). */
void hc_rc_hold_shares(struct hc_volume *v, int on);
/*
 * Overflow blocks [start, start + n) hold v's data from now on (fs->ovf_lock
 * held): dedup may offer them to v's domain only (I2).
 */
void hc_rc_ovf_owner(struct hc_fs *fs, uint64_t start, uint64_t n, const struct hc_volume *v);
/*
 * A whole-block write of blk (data, h its hint or NULL) to a volume of kind
 * swap: when an identical block of the domain is known, point blk at it now
 * (doc: "sharing at write time" in reconcile.c) and return 1 -- the caller
 * then caches the data clean (hc_cache_write_clean); 0: write it as usual;
 * -errno.
 */
int hc_rc_write_share(struct hc_fs *fs, struct hc_volume *v, uint64_t blk, const void *data,
		      const struct hc_hint *h);
/* 1 when home block blk of v is being written by an asynchronous write-back run. */
int hc_rc_in_flight(struct hc_volume *v, uint64_t blk);
/* 1 when some map entry points into v's home file (call with v->rlock held). */
int hc_rc_vol_shared(struct hc_fs *fs, struct hc_volume *v);
/* Volume v is going away for good: its map is cleared. */
void hc_rc_forget_volume(struct hc_fs *fs, struct hc_volume *v);
/* The journal's last record (0 without one): counts change only with it. */
uint64_t hc_rc_seq(struct hc_fs *fs);
/* Clears v's map (journalled), dropping its references; v stays usable. */
void hc_rc_clear_map(struct hc_fs *fs, struct hc_volume *v);
/* The home blocks of v some entry points at, sorted (*out malloc'd). 0 or -ENOMEM. */
int hc_rc_shared_blocks(struct hc_fs *fs, struct hc_volume *v, uint64_t **out, size_t *n);
/* Punches v's home file but for the n sorted blocks keep (size kept). 0 or -errno. */
int hc_rc_punch_except(struct hc_volume *v, const uint64_t *keep, size_t n);
/* SEEK_DATA / SEEK_HOLE over home holes and map entries; off < size. */
int64_t hc_rc_seek(struct hc_volume *v, int64_t off, int whence, uint64_t size);
/* 1 when block blk of v has a map entry. */
int hc_rc_has_entry(struct hc_volume *v, uint64_t blk);
/*
 * Points dst's blocks [db, db+n) at whatever src's [sb, sb+n) resolve to
 * (the caller flushed src's dirty blocks and dropped dst's range from the
 * cache, and holds both iolocks).  *done = blocks referenced (short when a
 * block has too many references).  0 or -errno.
 */
int hc_rc_copy_refs(struct hc_fs *fs, struct hc_volume *src, uint64_t sb, struct hc_volume *dst,
		    uint64_t db, uint64_t n, uint64_t *done);
/* Finds a listed volume by id; ns_lock held.  NULL when none. */
struct hc_volume *hc_ns_find_vid(struct hc_fs *fs, uint32_t vid);

#endif
