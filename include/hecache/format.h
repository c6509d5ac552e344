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

/*
 * Metadata of swap-reconcile (doc/format.md "meta.log", "meta.ckpt"):
 * physical addresses, the journal record and the checkpoint header.
 * Encoded and decoded only in swap-reconcile/journal.c.
 */

/* A physical address is (file id, block).  File ids are volumes' stable ids,
 * except for these two reserved values. */
#define HC_PHYS_OVERFLOW 0xFFFFFFFFu	/* overflow.dat */
#define HC_PHYS_ZERO 0xFFFFFFFEu	/* the ZERO address (block 0): reads as zeros */
#define HC_PHYS_VOL_MAX 0xFFFFFFFDu	/* largest volume id */
#define HC_PHYS_BLOCK_BITS 40
#define HC_PHYS_BLOCK_MAX ((1ull << HC_PHYS_BLOCK_BITS) - 1)	/* 4 PiB per file */

#define HC_META_MAJOR 1
#define HC_META_MINOR 0

#define HC_JOURNAL_FILE "meta.log"
#define HC_JREC_MAGIC 0x524A4348u	/* "HCJR" as bytes on disk */

enum {
	HC_JREC_MAP_SET = 1,	/* (vol, lblk) -> (file, arg); implied refcounts */
	HC_JREC_MAP_CLEAR = 2,	/* drop (vol, lblk .. lblk+arg-1): back home */
};

/* One journal record: 64 bytes, never straddling a 4 KiB page. */
struct hc_jrec_disk {
	uint32_t magic;		/* HC_JREC_MAGIC */
	uint16_t major;		/* HC_META_MAJOR */
	uint8_t type;		/* HC_JREC_* */
	uint8_t flags;		/* 0 */
	uint64_t seq;		/* 1, 2, 3, ... without gaps */
	uint32_t batch;		/* seq minus the seq of its commit's first record */
	uint32_t vol;		/* volume id */
	uint64_t lblk;		/* logical block */
	uint64_t arg;		/* MAP_SET: physical block; MAP_CLEAR: block count */
	uint32_t file;		/* MAP_SET: physical file id; MAP_CLEAR: 0 */
	uint32_t reserved0;	/* 0 */
	uint64_t reserved1;	/* 0 */
	uint64_t checksum;	/* XXH64(seed 0) of bytes 0-55 */
} __attribute__((packed));

_Static_assert(sizeof(struct hc_jrec_disk) == 64, "journal record layout changed");

#define HC_CKPT_FILE "meta.ckpt"
#define HC_CKPT_TMP "meta.ckpt.tmp"
#define HC_CKPT_MAGIC "HCCKPT\0\0"	/* 8 bytes */
#define HC_CKPT_CHUNK (1u << 20)	/* body checksummed per MiB */

/* Header of meta.ckpt; the body follows (doc/format.md). */
struct hc_ckpt_disk {
	uint8_t magic[8];	/* HC_CKPT_MAGIC */
	uint16_t major;		/* HC_META_MAJOR */
	uint16_t minor;		/* HC_META_MINOR */
	uint32_t block_size;	/* HC_BLOCK_SIZE */
	uint64_t seq;		/* the state holds every record up to this one */
	uint64_t nvols;		/* volume sections */
	uint64_t nmap;		/* map entries, all volumes */
	uint64_t nrc;		/* refcount entries */
	uint64_t novf;		/* allocated overflow extents */
	uint64_t ovf_hwm;	/* overflow high-water mark, blocks */
	uint64_t body_bytes;	/* body payload (checksums excluded) */
	uint8_t reserved[48];	/* 0 */
	uint64_t checksum;	/* XXH64(seed 0) of bytes 0-119 */
} __attribute__((packed));

_Static_assert(sizeof(struct hc_ckpt_disk) == 128, "checkpoint header layout changed");

/* Body items (all little-endian, packed). */
struct hc_ckpt_vol_disk {
	uint32_t vol;
	uint32_t reserved;	/* 0 */
	uint64_t nentries;	/* hc_ckpt_map_disk items that follow */
} __attribute__((packed));
struct hc_ckpt_map_disk {
	uint64_t lblk;		/* strictly increasing within a volume */
	uint64_t block;
	uint32_t file;
	uint32_t reserved;	/* 0 */
} __attribute__((packed));
struct hc_ckpt_rc_disk {
	uint64_t block;
	uint32_t file;
	uint32_t count;
} __attribute__((packed));
struct hc_ckpt_ext_disk {
	uint64_t start;
	uint64_t len;
} __attribute__((packed));

_Static_assert(sizeof(struct hc_ckpt_vol_disk) == 16, "checkpoint layout changed");
_Static_assert(sizeof(struct hc_ckpt_map_disk) == 24, "checkpoint layout changed");
_Static_assert(sizeof(struct hc_ckpt_rc_disk) == 16, "checkpoint layout changed");
_Static_assert(sizeof(struct hc_ckpt_ext_disk) == 16, "checkpoint layout changed");

#endif
