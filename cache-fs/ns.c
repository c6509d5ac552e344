// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The namespace: domains (directories of the backing directory) holding
 * volumes (their regular files), loaded at mount and kept in memory.
 * Anything else in the backing directory (the superblock, later metadata
 * files) is not shown.  A volume's kind is kept in the user.hecache.kind
 * extended attribute of its home file; without one, a volume named "ram" or
 * "*.ram" is kind ram, "swap" or "*.swap" kind swap, others disk.
 * Ownership: created objects belong to the caller (the daemon runs as root
 * and the mount uses default_permissions, so the kernel checks access).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "hecache/errors.h"
#include "log.h"
#include "util.h"
#include "volume.h"

#define KIND_XATTR "user.hecache.kind"

static const char *const kind_names[] = { "disk", "swap", "ram" };

const char *hc_kind_name(enum hc_kind k)
{
	return kind_names[k];
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && !strcmp(s + a - b, suffix);
}

static enum hc_kind kind_of(int fd, const char *name)
{
	char buf[16];
	ssize_t n = fgetxattr(fd, KIND_XATTR, buf, sizeof(buf) - 1);
	if (n > 0) {
		buf[n] = 0;
		for (unsigned k = 0; k < 3; k++)
			if (!strcmp(buf, kind_names[k]))
				return (enum hc_kind)k;
	}
	if (!strcmp(name, "ram") || ends_with(name, ".ram"))
		return HC_KIND_RAM;
	if (!strcmp(name, "swap") || ends_with(name, ".swap"))
		return HC_KIND_SWAP;
	return HC_KIND_DISK;
}

struct hc_node *hc_fs_node(struct hc_fs *fs, uint64_t ino)
{
	return ino == 1 ? &fs->root : (struct hc_node *)(uintptr_t)ino;
}

uint64_t hc_fs_ino(struct hc_fs *fs, struct hc_node *n)
{
	return n == &fs->root ? 1 : (uint64_t)(uintptr_t)n;
}

/*
 * DOC: unlinked shared volumes.  A volume whose home blocks other volumes
 * point at (copy_file_range references, dedup) cannot lose its home file
 * with its name.  Unlink (and rename over it) therefore renames the home
 * file to ZOMBIE_PREFIX<vid> in its domain directory and keeps the volume,
 * off the domain's list, on fs->zombies: references into it still resolve
 * by volume id, nothing new shares into it (try_share), and once nobody has
 * it open its own map is cleared.  hc_ns_reap removes the home file when no
 * entry points into it any more, once the records that say so are durable
 * (reap): at once after each unlink, rename, rmdir and last close (so
 * `rm -rf DOMAIN` works in any order), and every second from the reconcile
 * timer.  The rename is the only step that must be atomic: after a crash
 * the hidden file is found at mount and reaped the same way.
 * Offline tools (hectl fsck, reconcile-defrag --offline) see it as a
 * volume of that name, which it is.  Once nobody has it open, its cached
 * blocks are dropped and its home blocks nobody shares are punched (after
 * the same commit), so it holds only what the references need.
 */
#define ZOMBIE_PREFIX ".hc-unlinked."

static int valid_name(const char *name)
{
	return *name && strlen(name) <= NAME_MAX && strcmp(name, ".") && strcmp(name, "..") &&
	       !strchr(name, '/') && strncmp(name, ZOMBIE_PREFIX, strlen(ZOMBIE_PREFIX));
}

/* Opens a home file, O_DIRECT when the backing file system allows it. */
static int open_home(int dirfd, const char *name, int flags, mode_t mode, int *direct)
{
	int fd = openat(dirfd, name, flags | O_RDWR | O_DIRECT | O_CLOEXEC, mode);
	*direct = 1;
	if (fd < 0 && errno == EINVAL) {
		hc_log_ratelimited(LOG_WARNING,
				   "backing file system refuses O_DIRECT; using buffered I/O");
		fd = openat(dirfd, name, flags | O_RDWR | O_CLOEXEC, mode);
		*direct = 0;
	}
	return fd < 0 ? -errno : fd;
}

/*
 * A swap volume keeps the dirty blocks a read takes out until they are
 * needed (lazy_taken, excache.c "Taken blocks"), unless its domain has
 * another swap or ram volume: with two of them (a hypervisor's swap and a
 * guest's, double paging), the block the hypervisor reads back is the one
 * the guest is about to write, and it must be at home for that write to
 * share it (reconcile.c).  ns_lock held.
 */
static void set_lazy_taken(struct hc_domain *d)
{
	unsigned paging = 0;
	for (struct hc_volume *v = d->vols; v; v = v->next)
		paging += v->kind != HC_KIND_DISK;
	for (struct hc_volume *v = d->vols; v; v = v->next)
		__atomic_store_n(&v->cv.lazy_taken, v->kind == HC_KIND_SWAP && paging == 1,
				 __ATOMIC_RELAXED);
}

static int new_volume(struct hc_fs *fs, struct hc_domain *d, const char *name, int fd,
		      int direct, struct hc_volume **out)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	struct hc_volume *v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->node.type = HC_NODE_VOLUME;
	v->dom = d;
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->direct = direct;
	v->kind = kind_of(fd, name);
	v->size = (uint64_t)st.st_size;
	v->cv.fd = fd;
	v->cv.dstats = &d->stats;
	int err = hc_cache_register(fs->cache, &v->cv);
	if (err) {
		free(v);
		return err;
	}
	/* Its persistent id, map and storage hooks (reconcile.c). */
	err = hc_rc_attach(fs, v);
	if (err) {
		hc_cache_unregister(fs->cache, &v->cv);
		free(v);
		return err;
	}
	pthread_rwlock_init(&v->iolock, NULL);
	pthread_mutex_init(&v->lock, NULL);
	d->nvol++;
	v->next = d->vols;
	d->vols = v;
	set_lazy_taken(d);
	*out = v;
	return 0;
}

static void free_domain(struct hc_domain *d)
{
	close(d->dirfd);
	hc_dmrc_destroy(d->mrc);
	free(d);
}

static void maybe_free(struct hc_fs *fs, struct hc_node *n);
static void unlist_volume(struct hc_volume *v);

/* ns_lock held (or the fs being destroyed). */
static void free_volume(struct hc_fs *fs, struct hc_volume *v)
{
	struct hc_domain *d = v->dom;
	hc_cache_unregister(fs->cache, &v->cv);
	if (v->unlinked)
		hc_rc_forget_volume(fs, v);	/* gone for good: drop its references */
	else if (v->map) {
		hc_rc_detach(fs, v);
		pthread_mutex_destroy(&v->rlock);
		pthread_rwlock_destroy(&v->maplock);
	}
	close(v->cv.fd);
	pthread_rwlock_destroy(&v->iolock);
	pthread_mutex_destroy(&v->lock);
	free(v);
	d->nvol--;
}

static struct hc_domain *new_domain(struct hc_fs *fs, const char *name, int dirfd)
{
	struct hc_domain *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	if (hc_dmrc_create(fs->mrc_on ? &fs->mrc_cfg : NULL, &d->mrc)) {
		free(d);
		return NULL;
	}
	d->node.type = HC_NODE_DOMAIN;
	d->did = fs->next_did++;
	snprintf(d->name, sizeof(d->name), "%s", name);
	d->dirfd = dirfd;
	d->next = fs->domains;
	fs->domains = d;
	return d;
}

static int load_domain(struct hc_fs *fs, const char *name, char *msg, size_t msglen)
{
	int dirfd = openat(fs->b->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		snprintf(msg, msglen, "%s/%s: %s", fs->b->path, name, strerror(errno));
		return -errno;
	}
	struct hc_domain *d = new_domain(fs, name, dirfd);
	if (!d) {
		close(dirfd);
		return -ENOMEM;
	}
	/* A dup would share (and leave at the end) dirfd's read position. */
	int scan = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = scan < 0 ? NULL : fdopendir(scan);
	if (!dir) {
		snprintf(msg, msglen, "%s/%s: %s", fs->b->path, name, strerror(errno));
		return -errno;
	}
	int err = 0;
	struct dirent *de;
	while (!err && (de = readdir(dir))) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode)) {
			hc_log(LOG_WARNING, "%s/%s/%s: not a regular file; not served",
			       fs->b->path, name, de->d_name);
			continue;
		}
		int direct;
		int fd = open_home(dirfd, de->d_name, 0, 0, &direct);
		struct hc_volume *v;
		err = fd < 0 ? fd : new_volume(fs, d, de->d_name, fd, direct, &v);
		if (!err && !strncmp(de->d_name, ZOMBIE_PREFIX, strlen(ZOMBIE_PREFIX))) {
			unlist_volume(v);	/* unlinked while shared: reaped later */
			v->zombie = 1;
			v->znext = fs->zombies;
			fs->zombies = v;
			fs->reap_dirty = 1;
		}
		if (err) {
			if (fd >= 0)
				close(fd);
			snprintf(msg, msglen, "%s/%s/%s: %s", fs->b->path, name, de->d_name,
				 err == -EEXIST ? "volume id (user.hecache.vid) already used by "
						  "another volume; a copied home file?"
				 : err == -HC_ECORRUPT ? "bad volume id (user.hecache.vid)"
						       : strerror(-err));
		}
	}
	closedir(dir);
	return err;
}

static int load(struct hc_fs *fs, char *msg, size_t msglen)
{
	int scan = openat(fs->b->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *dir = scan < 0 ? NULL : fdopendir(scan);
	if (!dir) {
		snprintf(msg, msglen, "%s: %s", fs->b->path, strerror(errno));
		return -errno;
	}
	int err = 0;
	struct dirent *de;
	while (!err && (de = readdir(dir))) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(fs->b->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISDIR(st.st_mode))
			err = load_domain(fs, de->d_name, msg, msglen);
	}
	closedir(dir);
	return err;
}

int hc_fs_create(struct hc_backing *b, struct hc_ioeng *eng, uint64_t cache_bytes,
		 int writethrough, const struct hc_mrc_config *mrc, struct hc_fs **out,
		 char *msg, size_t msglen)
{
	struct hc_fs *fs = calloc(1, sizeof(*fs));
	if (!fs) {
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	fs->b = b;
	fs->eng = eng;
	fs->writethrough = writethrough;
	fs->root.type = HC_NODE_ROOT;
	fs->space_reserve = 64ull << 20;
	if (mrc) {
		fs->mrc_on = 1;
		fs->mrc_cfg = *mrc;
	}
	pthread_mutex_init(&fs->ns_lock, NULL);
	pthread_mutex_init(&fs->space_lock, NULL);
	char sz[32];
	int err = hc_cache_create(cache_bytes, eng, &fs->cache);
	if (err) {
		snprintf(msg, msglen, "cannot allocate a cache of %s: %s",
			 hc_format_size(cache_bytes, sz, sizeof(sz)),
			 err == -EINVAL ? "too small (at least 64K)" : strerror(-err));
		goto fail;
	}
	err = hc_buf_pool_create(8192, &fs->bufs);
	if (err) {
		snprintf(msg, msglen, "cannot allocate request buffers: %s", strerror(-err));
		goto fail;
	}
	fs->rc_opened = 1;
	err = hc_rc_open(fs, msg, msglen);
	if (err)
		goto fail;
	err = load(fs, msg, msglen);
	if (err)
		goto fail;
	err = hc_rc_start(fs);
	if (err) {
		snprintf(msg, msglen, "cannot start the metadata timer: %s", strerror(-err));
		goto fail;
	}
	*out = fs;
	return 0;
fail:
	hc_fs_destroy(fs);
	return err;
}

int hc_fs_flush_all(struct hc_fs *fs)
{
	int err = 0;
	pthread_mutex_lock(&fs->ns_lock);
	for (struct hc_domain *d = fs->domains; d; d = d->next)
		for (struct hc_volume *v = d->vols; v; v = v->next) {
			int e = hc_vol_fsync(fs, v, 0);
			if (e && !err) {
				hc_log(LOG_ERR, "%s/%s: flush failed: %s", d->name, v->name,
				       strerror(-e));
				err = e;
			}
		}
	pthread_mutex_unlock(&fs->ns_lock);
	int e = hc_rc_commit(fs);
	if (e && !err) {
		hc_log(LOG_ERR, "%s: metadata commit failed: %s", fs->b->path, strerror(-e));
		err = e;
	}
	fs->clean = !err;
	return err;
}

void hc_fs_destroy(struct hc_fs *fs)
{
	if (!fs)
		return;
	while (fs->zombies) {
		struct hc_volume *z = fs->zombies;
		fs->zombies = z->znext;
		free_volume(fs, z);	/* its home file stays for the next mount */
	}
	struct hc_domain *d = fs->domains;
	while (d) {
		struct hc_domain *dn = d->next;
		struct hc_volume *v = d->vols;
		while (v) {
			struct hc_volume *vn = v->next;
			free_volume(fs, v);
			v = vn;
		}
		free_domain(d);
		d = dn;
	}
	if (fs->rc_opened)
		hc_rc_close(fs, fs->clean);
	hc_buf_pool_destroy(fs->bufs);
	hc_cache_destroy(fs->cache);
	pthread_mutex_destroy(&fs->ns_lock);
	pthread_mutex_destroy(&fs->space_lock);
	free(fs);
}

struct hc_domain *hc_ns_find_domain(struct hc_fs *fs, const char *name)
{
	for (struct hc_domain *d = fs->domains; d; d = d->next)
		if (!strcmp(d->name, name))
			return d;
	return NULL;
}

struct hc_volume *hc_ns_find_volume(struct hc_domain *d, const char *name)
{
	for (struct hc_volume *v = d->vols; v; v = v->next)
		if (!strcmp(v->name, name))
			return v;
	return NULL;
}

int hc_ns_lookup(struct hc_fs *fs, struct hc_node *parent, const char *name,
		 struct hc_node **out)
{
	struct hc_node *n = NULL;
	pthread_mutex_lock(&fs->ns_lock);
	if (parent->type == HC_NODE_ROOT) {
		struct hc_domain *d = hc_ns_find_domain(fs, name);
		n = d ? &d->node : NULL;
	} else if (parent->type == HC_NODE_DOMAIN) {
		struct hc_volume *v = hc_ns_find_volume((struct hc_domain *)parent, name);
		n = v ? &v->node : NULL;
	}
	if (n)
		n->nlookup++;
	pthread_mutex_unlock(&fs->ns_lock);
	if (!n)
		return parent->type == HC_NODE_VOLUME ? -ENOTDIR : -ENOENT;
	*out = n;
	return 0;
}

/* Frees a removed domain or an unlinked volume nobody refers to. ns_lock held. */
static void maybe_free(struct hc_fs *fs, struct hc_node *n)
{
	if (n->type == HC_NODE_VOLUME) {
		struct hc_volume *v = (struct hc_volume *)n;
		/* Nobody can read it any more: drop what it shares at once. */
		if (v->unlinked && !v->nopen)
			hc_rc_clear_map(fs, v);
	}
	if (n->nlookup)
		return;
	if (n->type == HC_NODE_VOLUME) {
		struct hc_volume *v = (struct hc_volume *)n;
		if (v->unlinked && !v->nopen && !v->zombie) {
			struct hc_domain *d = v->dom;
			free_volume(fs, v);
			maybe_free(fs, &d->node);	/* the last volume kept it */
		}
	} else if (n->type == HC_NODE_DOMAIN) {
		/* An unlinked volume still open keeps its removed domain (stats, mrc). */
		struct hc_domain *d = (struct hc_domain *)n;
		if (d->removed && !d->nvol)
			free_domain(d);
	}
}

void hc_ns_forget(struct hc_fs *fs, struct hc_node *node, uint64_t n)
{
	if (node == &fs->root)
		return;
	pthread_mutex_lock(&fs->ns_lock);
	node->nlookup = node->nlookup > n ? node->nlookup - n : 0;
	maybe_free(fs, node);
	pthread_mutex_unlock(&fs->ns_lock);
}

int hc_ns_mkdir(struct hc_fs *fs, struct hc_node *parent, const char *name, mode_t mode,
		uid_t uid, gid_t gid, struct hc_node **out)
{
	if (parent->type != HC_NODE_ROOT)
		return -EPERM;	/* domains hold volumes only */
	if (!valid_name(name))
		return -EINVAL;
	int err = 0;
	pthread_mutex_lock(&fs->ns_lock);
	if (hc_ns_find_domain(fs, name)) {
		err = -EEXIST;
		goto out;
	}
	if (mkdirat(fs->b->dirfd, name, mode & 07777) < 0) {
		err = -errno;
		goto out;
	}
	if (fchownat(fs->b->dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
		hc_log(LOG_WARNING, "chown of domain %s: %s", name, strerror(errno));
	int dirfd = openat(fs->b->dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		err = -errno;
		unlinkat(fs->b->dirfd, name, AT_REMOVEDIR);
		goto out;
	}
	struct hc_domain *d = new_domain(fs, name, dirfd);
	if (!d) {
		close(dirfd);
		unlinkat(fs->b->dirfd, name, AT_REMOVEDIR);
		err = -ENOMEM;
		goto out;
	}
	fsync(fs->b->dirfd);
	d->node.nlookup++;
	*out = &d->node;
out:
	pthread_mutex_unlock(&fs->ns_lock);
	return err;
}

static void unlist_domain(struct hc_fs *fs, struct hc_domain *d)
{
	struct hc_domain **p = &fs->domains;
	while (*p != d)
		p = &(*p)->next;
	*p = d->next;
	d->removed = 1;
}

static void unlist_volume(struct hc_volume *v)
{
	struct hc_volume **p = &v->dom->vols;
	while (*p != v)
		p = &(*p)->next;
	*p = v->next;
	v->unlinked = 1;
	set_lazy_taken(v->dom);
}

/* Hides the home file of v (being unlinked; ns_lock and v->rlock held). */
static int zombify(struct hc_fs *fs, struct hc_volume *v)
{
	char z[NAME_MAX + 1];
	snprintf(z, sizeof(z), ZOMBIE_PREFIX "%" PRIu32, v->vid);
	if (renameat(v->dom->dirfd, v->name, v->dom->dirfd, z) < 0)
		return -errno;
	hc_log(LOG_INFO, "%s/%s: unlinked; other volumes share its blocks, so its home file "
	       "stays as %s until they stop", v->dom->name, v->name, z);
	snprintf(v->name, sizeof(v->name), "%s", z);
	v->zombie = 1;
	v->znext = fs->zombies;
	fs->zombies = v;
	fs->reap_dirty = 1;
	return 0;
}

static void zombie_unlist(struct hc_fs *fs, struct hc_volume *v)
{
	struct hc_volume **p = &fs->zombies;
	while (*p != v)
		p = &(*p)->znext;
	*p = v->znext;
	v->zombie = 0;
}

/* Undoes zombify (the rename that was to follow it failed). */
static void unzombify(struct hc_fs *fs, struct hc_volume *v, const char *name)
{
	pthread_mutex_lock(&v->rlock);
	if (renameat(v->dom->dirfd, v->name, v->dom->dirfd, name) == 0) {
		zombie_unlist(fs, v);
		snprintf(v->name, sizeof(v->name), "%s", name);
	} else {
		hc_log(LOG_ERR, "%s/%s: cannot rename back to %s: %s", v->dom->name, v->name, name,
		       strerror(errno));
	}
	pthread_mutex_unlock(&v->rlock);
}

/*
 * Removes the zombies nobody has open and nobody shares (ns_lock held).
 * I4: the records that dropped the last references into a zombie must be
 * durable before its home file goes, or a crash could bring back an entry
 * pointing into a file that is gone.  Nothing can point into a zombie anew,
 * so one that is unshared now stays unshared: the journal is committed
 * after the check and before the unlink.
 */
static void reap(struct hc_fs *fs)
{
	if (!fs->zombies)
		return;
	/* Counts change only with journal records: nothing new, nothing to do. */
	uint64_t seq = hc_rc_seq(fs);
	if (!fs->reap_dirty && seq == fs->reap_seq)
		return;
	fs->reap_dirty = 0;
	int any = 0;
	for (struct hc_volume *z = fs->zombies; z; z = z->znext) {
		z->reapable = 0;
		if (z->nopen)
			continue;
		if (!z->quiesced) {
			hc_rc_clear_map(fs, z);	/* none while it was open */
			hc_cache_discard(fs->cache, &z->cv, 0, UINT64_MAX);	/* nobody reads it */
			z->quiesced = 1;
		}
		pthread_mutex_lock(&z->rlock);
		z->reapable = !hc_rc_vol_shared(fs, z);
		if (!z->reapable && !z->punched && !z->keep &&
		    hc_rc_shared_blocks(fs, z, &z->keep, &z->nkeep))
			z->keep = NULL;	/* out of memory: punch another time */
		pthread_mutex_unlock(&z->rlock);
		any |= z->reapable || z->keep;
	}
	fs->reap_seq = hc_rc_seq(fs);	/* after our own map clears */
	if (!any)
		return;
	int err = hc_rc_commit(fs);
	if (err) {
		hc_log_ratelimited(LOG_ERR, "metadata commit failed: %s (unlinked home files kept)",
				   strerror(-err));
		fs->reap_dirty = 1;	/* look again next time */
		for (struct hc_volume *z = fs->zombies; z; z = z->znext) {
			free(z->keep);
			z->keep = NULL;
		}
		return;
	}
	struct hc_volume *z = fs->zombies;
	while (z) {
		struct hc_volume *next = z->znext;
		if (z->keep) {
			/*
			 * Still shared: give back the space of every other block.
			 * Their counts were 0 before the commit (I4) and no
			 * entry can point into a zombie anew.
			 */
			pthread_mutex_lock(&z->rlock);
			err = hc_rc_punch_except(z, z->keep, z->nkeep);
			pthread_mutex_unlock(&z->rlock);
			if (err)
				hc_log_ratelimited(LOG_WARNING, "%s/%s: cannot free unshared blocks: %s",
						   z->dom->name, z->name, strerror(-err));
			z->punched = 1;
			free(z->keep);
			z->keep = NULL;
		}
		if (z->reapable) {
			pthread_mutex_lock(&z->rlock);
			int gone = unlinkat(z->dom->dirfd, z->name, 0) == 0;
			if (!gone) {
				hc_log_ratelimited(LOG_ERR, "%s/%s: %s", z->dom->name, z->name,
						   strerror(errno));
				fs->reap_dirty = 1;	/* try again next time */
			}
			if (gone) {
				hc_rc_detach(fs, z);
				zombie_unlist(fs, z);
			}
			pthread_mutex_unlock(&z->rlock);
			if (gone)
				maybe_free(fs, &z->node);
		}
		z = next;
	}
}

/*
 * v (unlist_volume done) lost its name, or its last opener: maybe_free
 * clears the map of an unlinked volume nobody has open (and may free v);
 * that clearing is committed at once, so a crash cannot leave the map
 * behind a home file that is gone, and the zombies are looked at again,
 * since those references may have been the last into one.  ns_lock held.
 */
static void let_go(struct hc_fs *fs, struct hc_volume *v)
{
	int closed = !v->nopen;
	if (closed && v->zombie)
		fs->reap_dirty = 1;
	maybe_free(fs, &v->node);	/* v may be gone from here on */
	if (closed)
		hc_rc_commit(fs);
	reap(fs);
}

void hc_ns_reap(struct hc_fs *fs)
{
	pthread_mutex_lock(&fs->ns_lock);
	reap(fs);
	pthread_mutex_unlock(&fs->ns_lock);
}

int hc_ns_rmdir(struct hc_fs *fs, struct hc_node *parent, const char *name)
{
	if (parent->type != HC_NODE_ROOT)
		return parent->type == HC_NODE_DOMAIN ? -ENOENT : -ENOTDIR;
	int err = 0;
	pthread_mutex_lock(&fs->ns_lock);
	reap(fs);
	struct hc_domain *d = hc_ns_find_domain(fs, name);
	if (!d)
		err = -ENOENT;
	else if (d->vols)
		err = -ENOTEMPTY;
	else if (unlinkat(fs->b->dirfd, name, AT_REMOVEDIR) < 0)
		err = -errno;
	if (!err) {
		unlist_domain(fs, d);
		maybe_free(fs, &d->node);
	}
	pthread_mutex_unlock(&fs->ns_lock);
	return err;
}

int hc_ns_create(struct hc_fs *fs, struct hc_node *parent, const char *name, mode_t mode,
		 uid_t uid, gid_t gid, struct hc_volume **out)
{
	if (parent->type != HC_NODE_DOMAIN)
		return -EPERM;	/* volumes live in a domain directory */
	if (!valid_name(name))
		return -EINVAL;
	struct hc_domain *d = (struct hc_domain *)parent;
	int err = 0;
	pthread_mutex_lock(&fs->ns_lock);
	if (hc_ns_find_volume(d, name)) {
		err = -EEXIST;
		goto out;
	}
	int direct;
	int fd = open_home(d->dirfd, name, O_CREAT | O_EXCL, mode & HC_VOL_MODE_MASK, &direct);
	if (fd < 0) {
		err = fd;
		goto out;
	}
	if (fchown(fd, uid, gid) < 0)
		hc_log(LOG_WARNING, "chown of volume %s/%s: %s", d->name, name, strerror(errno));
	struct hc_volume *v;
	err = new_volume(fs, d, name, fd, direct, &v);
	if (err) {
		close(fd);
		unlinkat(d->dirfd, name, 0);
		goto out;
	}
	fsync(d->dirfd);
	v->node.nlookup++;
	*out = v;
out:
	pthread_mutex_unlock(&fs->ns_lock);
	return err;
}

int hc_ns_unlink(struct hc_fs *fs, struct hc_node *parent, const char *name)
{
	if (parent->type != HC_NODE_DOMAIN)
		return parent->type == HC_NODE_ROOT ? -EISDIR : -ENOTDIR;
	struct hc_domain *d = (struct hc_domain *)parent;
	int err = 0;
	pthread_mutex_lock(&fs->ns_lock);
	struct hc_volume *v = hc_ns_find_volume(d, name);
	if (!v) {
		err = -ENOENT;
		goto out;
	}
	/* Order ns_lock -> rlock: no rlock holder takes ns_lock. */
	pthread_mutex_lock(&v->rlock);
	if (hc_rc_vol_shared(fs, v))
		err = zombify(fs, v);	/* other volumes read its home blocks */
	else if (unlinkat(d->dirfd, name, 0) < 0)
		err = -errno;
	else
		hc_rc_detach(fs, v);	/* no new sharing into it */
	pthread_mutex_unlock(&v->rlock);
	if (!err) {
		unlist_volume(v);
		let_go(fs, v);
	}
out:
	pthread_mutex_unlock(&fs->ns_lock);
	return err;
}

int hc_ns_rename(struct hc_fs *fs, struct hc_node *parent, const char *name,
		 struct hc_node *newparent, const char *newname, unsigned flags)
{
	if (flags & ~RENAME_NOREPLACE)
		return -EINVAL;
	if (!valid_name(newname))
		return -EINVAL;
	if (parent->type != newparent->type ||
	    (parent->type == HC_NODE_DOMAIN && parent != newparent))
		return -EXDEV;	/* a volume stays in its domain */
	int err = 0;
	pthread_mutex_lock(&fs->ns_lock);
	if (parent->type == HC_NODE_ROOT) {
		struct hc_domain *d = hc_ns_find_domain(fs, name), *t = hc_ns_find_domain(fs, newname);
		if (!d)
			err = -ENOENT;
		else if (d == t)
			goto out;
		else if (t && (flags & RENAME_NOREPLACE))
			err = -EEXIST;
		else if (t && t->vols)
			err = -ENOTEMPTY;
		else if (renameat(fs->b->dirfd, name, fs->b->dirfd, newname) < 0)
			err = -errno;
		if (err)
			goto out;
		if (t) {
			unlist_domain(fs, t);
			maybe_free(fs, &t->node);
		}
		snprintf(d->name, sizeof(d->name), "%s", newname);
		fsync(fs->b->dirfd);
	} else {
		struct hc_domain *dom = (struct hc_domain *)parent;
		struct hc_volume *v = hc_ns_find_volume(dom, name), *t = hc_ns_find_volume(dom, newname);
		if (!v)
			err = -ENOENT;
		else if (v == t)
			goto out;
		else if (t && (flags & RENAME_NOREPLACE))
			err = -EEXIST;
		int tz = 0;	/* t's blocks are shared: t becomes a zombie */
		if (!err && t) {
			pthread_mutex_lock(&t->rlock);
			if (hc_rc_vol_shared(fs, t))
				tz = !(err = zombify(fs, t));
			else
				hc_rc_detach(fs, t);
			pthread_mutex_unlock(&t->rlock);
		}
		if (!err && renameat(dom->dirfd, name, dom->dirfd, newname) < 0) {
			err = -errno;
			if (tz)
				unzombify(fs, t, newname);	/* still there: as it was */
			else if (t)
				hc_rc_attach_again(fs, t);
		}
		if (err)
			goto out;
		if (t) {
			unlist_volume(t);
			let_go(fs, t);
		}
		snprintf(v->name, sizeof(v->name), "%s", newname);
		fsync(dom->dirfd);
	}
out:
	pthread_mutex_unlock(&fs->ns_lock);
	return err;
}

int hc_ns_getattr(struct hc_fs *fs, struct hc_node *n, struct stat *st)
{
	int fd;
	struct hc_volume *v = NULL;
	if (n->type == HC_NODE_ROOT)
		fd = fs->b->dirfd;
	else if (n->type == HC_NODE_DOMAIN)
		fd = ((struct hc_domain *)n)->dirfd;
	else
		fd = (v = (struct hc_volume *)n)->cv.fd;
	if (fstat(fd, st) < 0)
		return -errno;
	st->st_ino = hc_fs_ino(fs, n);
	if (n->type == HC_NODE_ROOT)
		st->st_nlink = 2;
	if (v) {
		pthread_mutex_lock(&v->lock);
		st->st_size = (off_t)v->size;
		if (v->mtime.tv_sec > st->st_mtim.tv_sec ||
		    (v->mtime.tv_sec == st->st_mtim.tv_sec && v->mtime.tv_nsec > st->st_mtim.tv_nsec))
			st->st_mtim = st->st_ctim = v->mtime;
		pthread_mutex_unlock(&v->lock);
		st->st_blksize = HC_BLOCK_SIZE;
		st->st_mode &= S_IFMT | HC_VOL_MODE_MASK;
	}
	return 0;
}

int hc_ns_readdir(struct hc_fs *fs, struct hc_node *dir, uint64_t off,
		  int (*fill)(void *ctx, const char *name, const struct stat *st, uint64_t next),
		  void *ctx)
{
	if (dir->type == HC_NODE_VOLUME)
		return -ENOTDIR;
	struct stat st;
	memset(&st, 0, sizeof(st));
	uint64_t idx = 0;
	pthread_mutex_lock(&fs->ns_lock);
	st.st_mode = S_IFDIR;
	st.st_ino = hc_fs_ino(fs, dir);
	if (idx++ >= off && fill(ctx, ".", &st, idx))
		goto out;
	st.st_ino = 1;
	if (idx++ >= off && fill(ctx, "..", &st, idx))
		goto out;
	if (dir->type == HC_NODE_ROOT) {
		for (struct hc_domain *d = fs->domains; d; d = d->next) {
			st.st_ino = hc_fs_ino(fs, &d->node);
			if (idx++ >= off && fill(ctx, d->name, &st, idx))
				goto out;
		}
	} else {
		st.st_mode = S_IFREG;
		for (struct hc_volume *v = ((struct hc_domain *)dir)->vols; v; v = v->next) {
			st.st_ino = hc_fs_ino(fs, &v->node);
			if (idx++ >= off && fill(ctx, v->name, &st, idx))
				goto out;
		}
	}
out:
	pthread_mutex_unlock(&fs->ns_lock);
	return 0;
}

void hc_ns_open(struct hc_fs *fs, struct hc_volume *v)
{
	pthread_mutex_lock(&fs->ns_lock);
	v->nopen++;
	pthread_mutex_unlock(&fs->ns_lock);
}

void hc_ns_release(struct hc_fs *fs, struct hc_volume *v)
{
	pthread_mutex_lock(&fs->ns_lock);
	v->nopen--;
	if (v->unlinked && !v->nopen)
		let_go(fs, v);	/* the last close of an unlinked volume */
	else
		maybe_free(fs, &v->node);
	pthread_mutex_unlock(&fs->ns_lock);
}

int hc_ns_statfs(struct hc_fs *fs, struct statvfs *st)
{
	return fstatvfs(fs->b->dirfd, st) < 0 ? -errno : 0;
}

static int stats_line(char *buf, size_t len, const char *label, const struct hc_cstats *s)
{
	return snprintf(buf, len,
			"%s hits %llu misses %llu admissions %llu writebacks %llu discards %llu "
			"read_bytes %llu written_bytes %llu cached %lld dirty %lld\n",
			label, (unsigned long long)s->hits, (unsigned long long)s->misses,
			(unsigned long long)s->admissions, (unsigned long long)s->writebacks,
			(unsigned long long)s->discards, (unsigned long long)s->read_bytes,
			(unsigned long long)s->written_bytes, (long long)s->cached,
			(long long)s->dirty);
}

int hc_ns_stats_text(struct hc_fs *fs, struct hc_domain *only, char *buf, size_t len)
{
	size_t used = 0;
	struct hc_cstats s;
	char label[NAME_MAX + 16];
	pthread_mutex_lock(&fs->ns_lock);
	for (struct hc_domain *d = fs->domains; d && used < len; d = d->next) {
		if (only && d != only)
			continue;
		hc_cstats_read(&d->stats, &s);
		snprintf(label, sizeof(label), "domain %s", d->name);
		used += (size_t)stats_line(buf + used, len - used, label, &s);
	}
	pthread_mutex_unlock(&fs->ns_lock);
	if (!only && used < len) {
		hc_cache_total(fs->cache, &s);
		used += (size_t)stats_line(buf + used, len - used, "total", &s);
	}
	return used >= len ? -ERANGE : (int)used;
}

int hc_ns_set_kind(struct hc_fs *fs, struct hc_volume *v, const char *kind)
{
	for (unsigned k = 0; k < 3; k++) {
		if (strcmp(kind, kind_names[k]))
			continue;
		if (fsetxattr(v->cv.fd, KIND_XATTR, kind, strlen(kind), 0) < 0)
			return -errno;
		pthread_mutex_lock(&fs->ns_lock);
		__atomic_store_n(&v->kind, (enum hc_kind)k, __ATOMIC_RELAXED);
		if (!v->unlinked)
			set_lazy_taken(v->dom);
		pthread_mutex_unlock(&fs->ns_lock);
		return 0;
	}
	return -EINVAL;
}
