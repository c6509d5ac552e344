// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The libfuse low-level op table: the only code that talks to libfuse and
 * the only caller of fuse_reply_*.  Each callback sends exactly one reply;
 * reads (and write-through writes) send theirs from the I/O completion.
 *
 * Volumes of kind disk and swap are opened with FOPEN_DIRECT_IO, so the
 * kernel page cache never holds their blocks and every guest miss reaches
 * the daemon; kind ram volumes keep the page cache so they can be mmap'ed
 * shared (file-backed guest RAM), the host's own writeback then being the
 * eviction.  O_DIRECT opens bypass the page cache in either case.
 */
#include "config.h"

#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "fs_ops.h"
#include "furing.h"
#include "log.h"
#include "volume.h"

#define STATS_XATTR "user.hecache.stats"
#define KIND_XATTR "user.hecache.kind"
#define ATTR_TIMEOUT 1.0

static struct hc_fs *FS(fuse_req_t req)
{
	struct hc_daemon *d = fuse_req_userdata(req);
	return d->fs;
}

/* Counts one request of kind k (requests answered by libfuse itself are not). */
static void COUNT(fuse_req_t req, int k)
{
	__atomic_fetch_add(&FS(req)->nreq[k], 1, __ATOMIC_RELAXED);
}

static struct hc_node *NODE(fuse_req_t req, fuse_ino_t ino)
{
	return hc_fs_node(FS(req), ino);
}

static struct hc_volume *VOL(fuse_req_t req, fuse_ino_t ino)
{
	struct hc_node *n = NODE(req, ino);
	return n->type == HC_NODE_VOLUME ? (struct hc_volume *)n : NULL;
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	/* Parallel direct I/O from AIO/io_uring guests (QEMU, loop). */
	if (conn->capable & FUSE_CAP_ASYNC_DIO)
		conn->want |= FUSE_CAP_ASYNC_DIO;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	conn->max_write = HC_REQ_MAX_BYTES;
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void op_destroy(void *userdata)
{
	struct hc_daemon *d = userdata;
	if (d->fs)
		hc_fs_flush_all(d->fs);
}

static void reply_entry(fuse_req_t req, struct hc_node *n)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	int err = hc_ns_getattr(FS(req), n, &e.attr);
	if (err) {
		hc_ns_forget(FS(req), n, 1);
		fuse_reply_err(req, -err);
		return;
	}
	e.ino = hc_fs_ino(FS(req), n);
	e.attr_timeout = ATTR_TIMEOUT;
	e.entry_timeout = ATTR_TIMEOUT;
	fuse_reply_entry(req, &e);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	COUNT(req, HC_REQ_LOOKUP);
	struct hc_node *n;
	int err = hc_ns_lookup(FS(req), NODE(req, parent), name, &n);
	if (err)
		fuse_reply_err(req, -err);
	else
		reply_entry(req, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	COUNT(req, HC_REQ_OTHER);
	hc_ns_forget(FS(req), NODE(req, ino), nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	COUNT(req, HC_REQ_OTHER);
	for (size_t i = 0; i < count; i++)
		hc_ns_forget(FS(req), NODE(req, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_GETATTR);
	struct stat st;
	int err = hc_ns_getattr(FS(req), NODE(req, ino), &st);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_attr(req, &st, ATTR_TIMEOUT);
}

/* The file descriptor behind a node, for chmod/chown/utimens. */
static int node_fd(struct hc_fs *fs, struct hc_node *n)
{
	if (n->type == HC_NODE_ROOT)
		return fs->b->dirfd;
	if (n->type == HC_NODE_DOMAIN)
		return ((struct hc_domain *)n)->dirfd;
	return ((struct hc_volume *)n)->cv.fd;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_OTHER);
	struct hc_fs *fs = FS(req);
	struct hc_node *n = NODE(req, ino);
	int fd = node_fd(fs, n);
	int err = 0;
	if (to_set & FUSE_SET_ATTR_MODE &&
	    fchmod(fd, attr->st_mode & (n->type == HC_NODE_VOLUME ? HC_VOL_MODE_MASK : 07777)) < 0)
		err = -errno;
	if (!err && (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uid_t uid = to_set & FUSE_SET_ATTR_UID ? attr->st_uid : (uid_t)-1;
		gid_t gid = to_set & FUSE_SET_ATTR_GID ? attr->st_gid : (gid_t)-1;
		if (fchown(fd, uid, gid) < 0)
			err = -errno;
	}
	if (!err && (to_set & FUSE_SET_ATTR_SIZE)) {
		if (n->type != HC_NODE_VOLUME)
			err = -EISDIR;
		else if (attr->st_size < 0)
			err = -EINVAL;
		else
			err = hc_vol_truncate(fs, (struct hc_volume *)n, (uint64_t)attr->st_size);
	}
	if (!err && (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_ATIME)
			ts[0] = attr->st_atim;
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (to_set & FUSE_SET_ATTR_MTIME)
			ts[1] = attr->st_mtim;
		if (futimens(fd, ts) < 0) {
			err = -errno;
		} else if (n->type == HC_NODE_VOLUME && (to_set & FUSE_SET_ATTR_MTIME)) {
			struct hc_volume *v = (struct hc_volume *)n;
			pthread_mutex_lock(&v->lock);
			v->mtime.tv_sec = 0;	/* the home file's time rules now */
			v->mtime.tv_nsec = 0;
			pthread_mutex_unlock(&v->lock);
		}
	}
	if (err) {
		fuse_reply_err(req, -err);
		return;
	}
	op_getattr(req, ino, fi);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	COUNT(req, HC_REQ_OTHER);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct hc_node *n;
	int err = hc_ns_mkdir(FS(req), NODE(req, parent), name, mode & ~ctx->umask, ctx->uid,
			      ctx->gid, &n);
	if (err)
		fuse_reply_err(req, -err);
	else
		reply_entry(req, n);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	COUNT(req, HC_REQ_OTHER);
	fuse_reply_err(req, EPERM);	/* volumes are regular files, made by create */
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	COUNT(req, HC_REQ_OTHER);
	fuse_reply_err(req, EPERM);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	COUNT(req, HC_REQ_OTHER);
	fuse_reply_err(req, EPERM);
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	COUNT(req, HC_REQ_OTHER);
	fuse_reply_err(req, -hc_ns_rmdir(FS(req), NODE(req, parent), name));
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	COUNT(req, HC_REQ_OTHER);
	fuse_reply_err(req, -hc_ns_unlink(FS(req), NODE(req, parent), name));
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		      const char *newname, unsigned int flags)
{
	COUNT(req, HC_REQ_OTHER);
	fuse_reply_err(req, -hc_ns_rename(FS(req), NODE(req, parent), name,
					  NODE(req, newparent), newname, flags));
}

static void set_open_flags(struct hc_volume *v, struct fuse_file_info *fi)
{
	fi->direct_io = v->kind != HC_KIND_RAM;
	fi->keep_cache = 0;
	fi->fh = (uint64_t)(uintptr_t)v;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_OTHER);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct hc_volume *v;
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int err = hc_ns_create(FS(req), NODE(req, parent), name, mode & ~ctx->umask, ctx->uid,
			       ctx->gid, &v);
	if (err) {
		fuse_reply_err(req, -err);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	err = hc_ns_getattr(FS(req), &v->node, &e.attr);
	if (err) {
		hc_ns_forget(FS(req), &v->node, 1);
		fuse_reply_err(req, -err);
		return;
	}
	e.ino = hc_fs_ino(FS(req), &v->node);
	e.attr_timeout = e.entry_timeout = ATTR_TIMEOUT;
	set_open_flags(v, fi);
	hc_ns_open(FS(req), v);
	if (fuse_reply_create(req, &e, fi) == -ENOENT)
		hc_ns_release(FS(req), v);	/* interrupted: no release will come */
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_OTHER);
	struct hc_volume *v = VOL(req, ino);
	if (!v) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (fi->flags & O_TRUNC) {
		int err = hc_vol_truncate(FS(req), v, 0);
		if (err) {
			fuse_reply_err(req, -err);
			return;
		}
	}
	set_open_flags(v, fi);
	hc_ns_open(FS(req), v);
	if (fuse_reply_open(req, fi) == -ENOENT)
		hc_ns_release(FS(req), v);
}

static void read_reply(struct hc_rreq *r)
{
	fuse_req_t req = r->priv;
	if (r->err)
		fuse_reply_err(req, -r->err);
	else
		fuse_reply_iov(req, r->iov, r->iovcnt);
	hc_rreq_release(r);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_READ);
	struct hc_volume *v = VOL(req, ino);
	if (!v) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	size_t plen;
	void *payload = hc_furing_payload(&plen);
	int err = hc_vol_read(FS(req), v, (uint64_t)off, size, read_reply, req, payload, plen);
	if (err)
		fuse_reply_err(req, -err);
}

static void write_reply(struct hc_wreq *w, int err)
{
	fuse_req_t req = w->priv;
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_write(req, w->size);
	hc_wreq_release(w);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_WRITE);
	struct hc_volume *v = VOL(req, ino);
	if (!v) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (size == 0) {
		fuse_reply_write(req, 0);
		return;
	}
	ssize_t res = hc_vol_write(FS(req), v, (uint64_t)off, buf, size, write_reply, req);
	if (res < 0)
		fuse_reply_err(req, (int)-res);
	else if (res > 0)
		fuse_reply_write(req, (size_t)res);
	/* res == 0: write-through, write_reply answers */
}

static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_OTHER);
	fuse_reply_err(req, 0);	/* durability is fsync's job (write-back cache) */
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_OTHER);
	struct hc_volume *v = VOL(req, ino);
	if (v)
		hc_ns_release(FS(req), v);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_FSYNC);
	struct hc_volume *v = VOL(req, ino);
	fuse_reply_err(req, v ? -hc_vol_fsync(FS(req), v, datasync) : EISDIR);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_OTHER);
	if (NODE(req, ino)->type == HC_NODE_VOLUME)
		fuse_reply_err(req, ENOTDIR);
	else
		fuse_reply_open(req, fi);
}

struct dirbuf {
	fuse_req_t req;
	char *buf;
	size_t size, used;
};

static int fill_dir(void *ctx, const char *name, const struct stat *st, uint64_t next)
{
	struct dirbuf *b = ctx;
	size_t len = fuse_add_direntry(b->req, b->buf + b->used, b->size - b->used, name, st,
				       (off_t)next);
	if (len > b->size - b->used)
		return 1;
	b->used += len;
	return 0;
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_OTHER);
	struct dirbuf b = { req, malloc(size), size, 0 };
	if (!b.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int err = hc_ns_readdir(FS(req), NODE(req, ino), (uint64_t)off, fill_dir, &b);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_buf(req, b.buf, b.used);
	free(b.buf);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_OTHER);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_OTHER);
	int fd = node_fd(FS(req), NODE(req, ino));
	fuse_reply_err(req, fsync(fd) < 0 ? errno : 0);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	COUNT(req, HC_REQ_OTHER);
	struct statvfs st;
	int err = hc_ns_statfs(FS(req), &st);
	if (err)
		fuse_reply_err(req, -err);
	else
		fuse_reply_statfs(req, &st);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_FALLOCATE);
	struct hc_volume *v = VOL(req, ino);
	if (!v) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	fuse_reply_err(req, -hc_vol_fallocate(FS(req), v, mode, (uint64_t)off, (uint64_t)len));
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t off_out,
			       struct fuse_file_info *fi_out, size_t len, int flags)
{
	COUNT(req, HC_REQ_COPY_FILE_RANGE);
	struct hc_volume *src = VOL(req, ino_in), *dst = VOL(req, ino_out);
	if (!src || !dst) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (flags || off_in < 0 || off_out < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* EOPNOTSUPP: the kernel falls back to a read/write copy. */
	ssize_t r = hc_vol_copy_range(FS(req), src, (uint64_t)off_in, dst, (uint64_t)off_out, len);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_write(req, (size_t)r);
}

static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	COUNT(req, HC_REQ_OTHER);
	struct hc_volume *v = VOL(req, ino);
	if (!v || (whence != SEEK_DATA && whence != SEEK_HOLE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	int64_t r = hc_vol_seek(FS(req), v, off, whence);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, (off_t)r);
}

static void reply_xattr_value(fuse_req_t req, const char *val, size_t len, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, val, len);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	COUNT(req, HC_REQ_GETXATTR);
	struct hc_node *n = NODE(req, ino);
	if (!strcmp(name, STATS_XATTR) && n->type != HC_NODE_VOLUME) {
		char buf[65536];
		int len = hc_ns_stats_text(FS(req),
					   n->type == HC_NODE_DOMAIN ? (struct hc_domain *)n : NULL,
					   buf, sizeof(buf));
		if (len < 0)
			fuse_reply_err(req, -len);
		else
			reply_xattr_value(req, buf, (size_t)len, size);
		return;
	}
	if (!strcmp(name, KIND_XATTR) && n->type == HC_NODE_VOLUME) {
		const char *k = hc_kind_name(((struct hc_volume *)n)->kind);
		reply_xattr_value(req, k, strlen(k), size);
		return;
	}
	fuse_reply_err(req, ENODATA);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	COUNT(req, HC_REQ_OTHER);
	struct hc_node *n = NODE(req, ino);
	const char *name = n->type == HC_NODE_VOLUME ? KIND_XATTR : STATS_XATTR;
	reply_xattr_value(req, name, strlen(name) + 1, size);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	COUNT(req, HC_REQ_OTHER);
	struct hc_volume *v = VOL(req, ino);
	if (!v || strcmp(name, KIND_XATTR)) {
		fuse_reply_err(req, ENOTSUP);
		return;
	}
	char kind[16];
	if (size >= sizeof(kind)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	memcpy(kind, value, size);
	kind[size] = 0;
	fuse_reply_err(req, -hc_ns_set_kind(FS(req), v, kind));
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	COUNT(req, HC_REQ_OTHER);
	fuse_reply_err(req, ENOTSUP);
}

const struct fuse_lowlevel_ops hc_fs_ops = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.fallocate = op_fallocate,
	.copy_file_range = op_copy_file_range,
	.lseek = op_lseek,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
};

/*
 * DOC: FUSE_HANDLE_KILLPRIV_V2
 *
 * Before every copy_file_range and fallocate the kernel calls
 * file_modified(), which asks the file system for security.capability (to
 * drop it) unless the inode is marked S_NOSEC.  FUSE marks inodes S_NOSEC
 * only when the server handles privilege killing itself
 * (FUSE_HANDLE_KILLPRIV_V2 sets SB_NOSEC); otherwise every copy costs a
 * getxattr round trip as well: two requests where a read and a write cost
 * two.  libfuse 3.14 cannot ask for that flag, so the session's I/O hooks
 * below note the flags of the kernel's INIT request and add the flag to
 * libfuse's INIT reply when the kernel offered it.
 *
 * The promise the flag makes (the server clears set-user-ID, set-group-ID
 * and security.capability on write, truncate and chown) holds because a
 * volume never has any of them: create and chmod drop the set-id bits
 * (HC_VOL_MODE_MASK), getattr hides any a home file had from before, and
 * setxattr accepts only user.hecache.kind.  Directories are not concerned:
 * the kernel kills privileges on regular files only.
 */
static uint64_t init_unique;		/* the INIT request being answered, 0 after */
static uint32_t init_flags;		/* what the kernel offered in it */
static uint32_t init_flags2;
static struct hc_furing *furing;	/* NULL: requests through /dev/fuse only */

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	(void)userdata;
	ssize_t r = read(fd, buf, len);
	const size_t hl = sizeof(struct fuse_in_header);
	if (r >= (ssize_t)(hl + offsetof(struct fuse_init_in, flags) + sizeof(uint32_t))) {
		const struct fuse_in_header *in = buf;
		if (in->opcode == FUSE_INIT) {
			const struct fuse_init_in *ii = (const void *)(in + 1);
			int ext = (ii->flags & FUSE_INIT_EXT) &&
				  r >= (ssize_t)(hl + offsetof(struct fuse_init_in, flags2) +
						 sizeof(uint32_t));
			__atomic_store_n(&init_flags, ii->flags, __ATOMIC_RELAXED);
			__atomic_store_n(&init_flags2, ext ? ii->flags2 : 0, __ATOMIC_RELAXED);
			__atomic_store_n(&init_unique, in->unique, __ATOMIC_RELEASE);
		}
	}
	return r;
}

/* The INIT reply: what libfuse 3.14 cannot ask for; 1 when rings are wanted. */
static int edit_init_reply(struct hc_daemon *d, struct fuse_init_out *io)
{
	if (init_flags & FUSE_HANDLE_KILLPRIV_V2) {
		io->flags |= FUSE_HANDLE_KILLPRIV_V2;
		__atomic_store_n(&d->fs->killpriv_v2, 1, __ATOMIC_RELAXED);
	}
	uint32_t bit = (uint32_t)(HC_FURING_INIT_FLAG >> 32);
	if (!furing || !(init_flags2 & bit) || !(io->flags & FUSE_INIT_EXT))
		return 0;
	/* The kernel's payload size: max(FUSE_MIN_READ_BUFFER, max_write, max_pages pages). */
	size_t p = 8192;
	if (io->max_write > p)
		p = io->max_write;
	if ((size_t)io->max_pages * 4096 > p)
		p = (size_t)io->max_pages * 4096;
	int err = hc_furing_prepare(furing, p);
	if (err) {
		hc_log(LOG_WARNING, "FUSE over io_uring: %s (requests keep coming through "
		       "/dev/fuse)", strerror(-err));
		return 0;
	}
	io->flags2 |= bit;
	return 1;
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	struct hc_daemon *d = userdata;
	ssize_t sent;
	if (hc_furing_reply(furing, iov, count, &sent)) {
		__atomic_fetch_add(&d->fs->fuse_uring_replies, 1, __ATOMIC_RELAXED);
		return sent;
	}
	uint64_t u = __atomic_load_n(&init_unique, __ATOMIC_ACQUIRE);
	int rings = 0;
	if (u && count >= 2 && iov[0].iov_len >= sizeof(struct fuse_out_header) &&
	    iov[1].iov_len >= offsetof(struct fuse_init_out, flags2) + sizeof(uint32_t)) {
		const struct fuse_out_header *out = iov[0].iov_base;
		if (out->unique == u) {
			if (out->error == 0)
				rings = edit_init_reply(d, iov[1].iov_base);
			__atomic_store_n(&init_unique, 0, __ATOMIC_RELAXED);
		}
	}
	ssize_t r = writev(fd, iov, count);
	if (rings && r >= 0) {
		/* The kernel took the INIT reply: its rings can be registered now. */
		int err = hc_furing_start(furing);
		if (err)
			hc_log(LOG_WARNING, "FUSE over io_uring: %s (requests keep coming "
			       "through /dev/fuse)", strerror(-err));
		else {
			/* Logged first: who sees the queues in the status finds the line. */
			hc_log(LOG_INFO, "FUSE over io_uring: %u queues of %u requests",
			       hc_furing_queues(furing), hc_furing_depth(furing));
			__atomic_store_n(&d->fs->fuse_uring_queues, hc_furing_queues(furing),
					 __ATOMIC_RELAXED);
		}
	}
	return r;
}

int hc_fs_ops_attach_io(struct fuse_session *se, struct hc_furing *fr)
{
	furing = fr;
	static const struct fuse_custom_io io = { .read = io_read, .writev = io_writev };
	return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}
