/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The backing directory and its superblock (hecache.sb, two alternating
 * copies; format in include/hecache/format.h and doc/format.md).
 * Opening takes an exclusive flock on hecache.sb for the life of the handle,
 * so two daemons (or a daemon and an offline tool) never share a directory.
 */
#ifndef HC_SB_H
#define HC_SB_H

#include <stddef.h>
#include <stdint.h>

#include "hecache/format.h"

struct hc_sb_info {
	uint16_t major, minor;
	uint32_t block_size;
	uint8_t uuid[16];
	uint64_t generation;
	uint64_t created, mounted;
	uint32_t flags;
};

struct hc_backing {
	char *path;		/* as given */
	int dirfd;		/* O_DIRECTORY of the backing directory */
	int sbfd;		/* hecache.sb, flocked */
	struct hc_sb_info sb;	/* newest valid copy */
	int copy;		/* index of that copy (0 or 1) */
	int formatted;		/* 1 when this open created the superblock */
};

/* Encodes info into one on-disk copy (checksum filled in). */
void hc_sb_encode(const struct hc_sb_info *info, struct hc_sb_disk *d);
/*
 * Decodes one copy.  Returns 0, -HC_ECORRUPT (magic/checksum/block size) or
 * -HC_EVERSION (major newer than HC_SB_MAJOR).
 */
int hc_sb_decode(const struct hc_sb_disk *d, struct hc_sb_info *info);

/*
 * Opens a backing directory.  An empty directory is formatted when
 * format_empty is set; a non-empty one without hecache.sb is refused
 * (-HC_ENOTHC), as is one with no valid copy (-HC_ECORRUPT) or a newer
 * major version (-HC_EVERSION).  Nothing is written before every check has
 * passed.  On failure msg holds one line naming the problem.
 */
int hc_backing_open(const char *path, int format_empty, struct hc_backing **out,
		    char *msg, size_t msglen) __attribute__((warn_unused_result));
/*
 * Writes a new generation into the other copy (with flags) and fsyncs it.
 * Returns 0 or -errno.
 */
int hc_backing_write_sb(struct hc_backing *b, uint32_t flags);
void hc_backing_close(struct hc_backing *b);

#endif
