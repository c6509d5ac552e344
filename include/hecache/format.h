/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * On-disk format of the backing directory's superblock (doc/format.md).
 * All fields little-endian, fixed width; the checksum is last and covers
 * every byte before it.  hecache.sb holds two copies, at offsets 0 and
 * HC_SB_COPY_SIZE; each update writes the copy not holding the newest
 * generation, so a torn write leaves the other one valid.
 */
#ifndef HECACHE_FORMAT_H
#define HECACHE_FORMAT_H

#include <stdint.h>

#define HC_BLOCK_SIZE 4096u
#define HC_BLOCK_SHIFT 12

#define HC_SB_FILE "hecache.sb"
#define HC_SB_MAGIC "HECACHE\0"	/* 8 bytes */
#define HC_SB_MAJOR 1
#define HC_SB_MINOR 0
#define HC_SB_COPY_SIZE 4096u

struct hc_sb_disk {
	uint8_t magic[8];		/* HC_SB_MAGIC */
	uint16_t major;			/* incompatible changes */
	uint16_t minor;			/* compatible additions */
	uint32_t block_size;		/* HC_BLOCK_SIZE */
	uint8_t uuid[16];		/* random, set at format */
	uint64_t generation;		/* +1 at every write; newest valid copy wins */
	uint64_t created;		/* seconds since the epoch */
	uint64_t mounted;		/* last mount, seconds since the epoch */
	uint32_t flags;			/* HC_SB_F_* */
	uint32_t reserved0;
	uint8_t reserved[192];		/* zero; room for later minor versions */
	uint64_t checksum;		/* XXH64(seed 0) of all bytes above */
} __attribute__((packed));

_Static_assert(sizeof(struct hc_sb_disk) == 264, "superblock layout changed");

#define HC_SB_F_CLEAN 0x1u		/* unmounted cleanly, caches flushed */

#endif
