/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The control protocol between hecache-fs and its clients (hectl,
 * hecache-agent, reconcile-defrag): one JSON object per line over the Unix
 * socket BACKING/ctl.sock.  doc/ctl-protocol.md is the full description:
 * every request, its arguments and the members of its reply.
 *
 * Request: {"v":1,"op":"stats","domain":"vm1","id":7}   ("id" is echoed)
 * Reply:   {"v":1,"ok":true,"id":7,...}
 * Error:   {"v":1,"ok":false,"id":7,"error":"ENOENT","message":"domain vm9: not found"}
 */
#ifndef HECACHE_CTL_H
#define HECACHE_CTL_H

#include <stdint.h>

#define HC_CTL_PROTOCOL 1		/* "v" of requests and replies */
#define HC_CTL_SOCK "ctl.sock"		/* in the backing directory */
#define HC_DEFRAG_JOB_FILE "defrag.job"	/* likewise: an unfinished online defrag job */
#define HC_CTL_MAX_LINE 65536		/* longest request line, newline included */
#define HC_CTL_MAX_DEPTH 8		/* deepest JSON nesting accepted */
#define HC_CTL_MAX_CONN 64		/* connections served at once */
#define HC_CTL_MAX_DEFRAG_VOLS 1024	/* volumes named in one defrag_start */

/* Trace files (hectl trace): header then fixed records, little-endian. */
#define HC_TRACE_MAGIC "HCTRACE1"	/* 8 bytes, no NUL */
#define HC_TRACE_VERSION 1

struct hc_trace_header {
	char magic[8];			/* HC_TRACE_MAGIC */
	uint32_t version;		/* HC_TRACE_VERSION */
	uint32_t record_size;		/* sizeof(struct hc_trace_rec) */
	uint64_t start_ns;		/* CLOCK_REALTIME of the first record's t=0 */
	char domain[232];		/* NUL-terminated */
};
_Static_assert(sizeof(struct hc_trace_header) == 256, "trace header is 256 bytes");

enum { HC_TRACE_EVICT = 0, HC_TRACE_MISS = 1 };

struct hc_trace_rec {
	uint64_t t_ns;			/* since start_ns */
	uint32_t op;			/* HC_TRACE_EVICT or HC_TRACE_MISS */
	uint32_t vol;			/* volume id, stable for one mount */
	uint64_t block;			/* block number in the volume */
};
_Static_assert(sizeof(struct hc_trace_rec) == 24, "trace record is 24 bytes");

/* The MRC key of a block: volume id and block number (trace and daemon agree). */
#define HC_MRC_KEY(vol, block) (((uint64_t)(vol) << 40) | ((uint64_t)(block) & ((1ull << 40) - 1)))

#endif
