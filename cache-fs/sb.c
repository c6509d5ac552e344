// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Backing directory and superblock.  Two copies at offsets 0 and 4096 of
 * hecache.sb; the newest copy whose magic and checksum are valid wins, and an
 * update always overwrites the other one, so a torn superblock write can cost
 * at most the update in progress.  A bad copy is reported (file and offset)
 * but mounting goes on from the good one; with both bad, nothing is written.
 */
#include "config.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "hecache/errors.h"
#include "log.h"
#include "sb.h"

void hc_sb_encode(const struct hc_sb_info *info, struct hc_sb_disk *d)
{
	memset(d, 0, sizeof(*d));
	memcpy(d->magic, HC_SB_MAGIC, 8);
	d->major = htole16(info->major);
	d->minor = htole16(info->minor);
	d->block_size = htole32(info->block_size);
	memcpy(d->uuid, info->uuid, 16);
	d->generation = htole64(info->generation);
	d->created = htole64(info->created);
	d->mounted = htole64(info->mounted);
	d->flags = htole32(info->flags);
	d->checksum = htole64(XXH64(d, offsetof(struct hc_sb_disk, checksum), 0));
}

int hc_sb_decode(const struct hc_sb_disk *d, struct hc_sb_info *info)
{
	if (memcmp(d->magic, HC_SB_MAGIC, 8))
		return -HC_ECORRUPT;
	if (le64toh(d->checksum) != XXH64(d, offsetof(struct hc_sb_disk, checksum), 0))
		return -HC_ECORRUPT;
	info->major = le16toh(d->major);
	info->minor = le16toh(d->minor);
	if (info->major > HC_SB_MAJOR)
		return -HC_EVERSION;
	info->block_size = le32toh(d->block_size);
	if (info->block_size != HC_BLOCK_SIZE)
		return -HC_ECORRUPT;
	memcpy(info->uuid, d->uuid, 16);
	info->generation = le64toh(d->generation);
	info->created = le64toh(d->created);
	info->mounted = le64toh(d->mounted);
	info->flags = le32toh(d->flags);
	return 0;
}

/* 1 if the directory holds nothing but "." and "..", 0 if it does, -errno. */
static int dir_is_empty(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int err = -errno;
		close(fd);
		return err;
	}
	int empty = 1;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			empty = 0;
			break;
		}
	}
	closedir(d);
	return empty;
}

static int write_copy(int fd, int copy, const struct hc_sb_info *info)
{
	char buf[HC_SB_COPY_SIZE];
	memset(buf, 0, sizeof(buf));
	hc_sb_encode(info, (struct hc_sb_disk *)buf);
	ssize_t n = pwrite(fd, buf, sizeof(buf), (off_t)copy * HC_SB_COPY_SIZE);
	if (n < 0)
		return -errno;
	if (n != (ssize_t)sizeof(buf))
		return -EIO;
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

static int format_new(struct hc_backing *b, char *msg, size_t msglen)
{
	int fd = openat(b->dirfd, HC_SB_FILE, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(msg, msglen, "%s/%s: cannot create: %s", b->path, HC_SB_FILE,
			 strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;
		close(fd);
		snprintf(msg, msglen, "%s: %s", b->path, hc_strerror(HC_ELOCKED));
		return err == EWOULDBLOCK ? -HC_ELOCKED : -err;
	}
	struct hc_sb_info info = {
		.major = HC_SB_MAJOR, .minor = HC_SB_MINOR,
		.block_size = HC_BLOCK_SIZE, .generation = 1,
		.created = (uint64_t)time(NULL),
	};
	if (getrandom(info.uuid, sizeof(info.uuid), 0) != sizeof(info.uuid)) {
		for (int i = 0; i < 16; i++)
			info.uuid[i] = (uint8_t)(rand() ^ (time(NULL) >> (i % 8)));
	}
	int err = write_copy(fd, 0, &info);
	if (!err) {
		info.generation = 0;	/* copy 1 starts out older */
		err = write_copy(fd, 1, &info);
		info.generation = 1;
	}
	if (err == 0)
		err = fsync(b->dirfd) < 0 ? -errno : 0;
	if (err) {
		snprintf(msg, msglen, "%s/%s: cannot write: %s", b->path, HC_SB_FILE,
			 strerror(-err));
		close(fd);
		unlinkat(b->dirfd, HC_SB_FILE, 0);
		return err;
	}
	b->sbfd = fd;
	b->sb = info;
	b->copy = 0;
	b->formatted = 1;
	return 0;
}

static int read_existing(struct hc_backing *b, char *msg, size_t msglen)
{
	int fd = openat(b->dirfd, HC_SB_FILE, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		snprintf(msg, msglen, "%s/%s: cannot open: %s", b->path, HC_SB_FILE,
			 strerror(errno));
		return -errno;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;
		close(fd);
		snprintf(msg, msglen, "%s: %s", b->path, hc_strerror(HC_ELOCKED));
		return err == EWOULDBLOCK ? -HC_ELOCKED : -err;
	}
	struct hc_sb_info info[2];
	int res[2];
	for (int c = 0; c < 2; c++) {
		char buf[HC_SB_COPY_SIZE];
		ssize_t n = pread(fd, buf, sizeof(buf), (off_t)c * HC_SB_COPY_SIZE);
		if (n < (ssize_t)sizeof(struct hc_sb_disk))
			res[c] = n < 0 ? -errno : -HC_ECORRUPT;
		else
			res[c] = hc_sb_decode((struct hc_sb_disk *)buf, &info[c]);
	}
	int best = -1;
	for (int c = 0; c < 2; c++) {
		if (res[c] == -HC_EVERSION) {
			snprintf(msg, msglen,
				 "%s/%s: format version %u.%u at offset %u is newer than this "
				 "hecache-fs (reads up to %u.x)", b->path, HC_SB_FILE,
				 info[c].major, info[c].minor, c * HC_SB_COPY_SIZE, HC_SB_MAJOR);
			close(fd);
			return -HC_EVERSION;
		}
		if (res[c] == 0 && (best < 0 || info[c].generation > info[best].generation))
			best = c;
	}
	if (best < 0) {
		snprintf(msg, msglen,
			 "%s/%s: no valid superblock copy (offsets 0 and %u: %s)", b->path,
			 HC_SB_FILE, HC_SB_COPY_SIZE, hc_strerror(res[0]));
		close(fd);
		return -HC_ECORRUPT;
	}
	if (res[!best] && info[best].generation > 0)
		hc_log(LOG_WARNING, "%s/%s: superblock copy at offset %u is bad (%s); using the copy at offset %u",
		       b->path, HC_SB_FILE, (!best) * HC_SB_COPY_SIZE, hc_strerror(res[!best]),
		       best * HC_SB_COPY_SIZE);
	b->sbfd = fd;
	b->sb = info[best];
	b->copy = best;
	return 0;
}

int hc_backing_open(const char *path, int format_empty, struct hc_backing **out,
		    char *msg, size_t msglen)
{
	struct hc_backing *b = calloc(1, sizeof(*b));
	if (!b) {
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	b->sbfd = -1;
	b->path = strdup(path);
	if (!b->path) {
		free(b);
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	int err;
	b->dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (b->dirfd < 0) {
		err = -errno;
		snprintf(msg, msglen, "backing directory %s: %s", path, strerror(errno));
		goto fail_dir;
	}
	struct stat st;
	if (fstatat(b->dirfd, HC_SB_FILE, &st, 0) == 0) {
		err = read_existing(b, msg, msglen);
	} else if (errno != ENOENT) {
		err = -errno;
		snprintf(msg, msglen, "%s/%s: %s", path, HC_SB_FILE, strerror(errno));
	} else {
		int empty = dir_is_empty(b->dirfd);
		if (empty < 0) {
			err = empty;
			snprintf(msg, msglen, "backing directory %s: %s", path, strerror(-empty));
		} else if (!empty) {
			err = -HC_ENOTHC;
			snprintf(msg, msglen,
				 "backing directory %s is not empty and has no %s: not a hecache backing directory",
				 path, HC_SB_FILE);
		} else if (!format_empty) {
			err = -HC_ENOTHC;
			snprintf(msg, msglen, "backing directory %s is empty (no %s)", path, HC_SB_FILE);
		} else {
			err = format_new(b, msg, msglen);
		}
	}
	if (err)
		goto fail_sb;
	*out = b;
	return 0;

fail_sb:
	close(b->dirfd);
fail_dir:
	free(b->path);
	free(b);
	return err;
}

int hc_backing_write_sb(struct hc_backing *b, uint32_t flags)
{
	struct hc_sb_info info = b->sb;
	info.generation++;
	info.flags = flags;
	info.mounted = (uint64_t)time(NULL);
	int err = write_copy(b->sbfd, !b->copy, &info);
	if (err)
		return err;
	b->sb = info;
	b->copy = !b->copy;
	return 0;
}

void hc_backing_close(struct hc_backing *b)
{
	if (!b)
		return;
	if (b->sbfd >= 0)
		close(b->sbfd);	/* drops the flock */
	close(b->dirfd);
	free(b->path);
	free(b);
}
