/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * A domain's miss-ratio curve and event trace (DESIGN.md "Miss-ratio
 * curves"): the volume layer reports every block the guest writes out
 * (eviction) and reads in (miss); this feeds the domain's hc_mrc and, while
 * `hectl trace` runs, appends the events to a trace file (include/hecache/
 * ctl.h).  One mutex per domain, taken once per request.
 *
 * A trace is a study mode: its buffer (4096 records) is written out under the
 * domain's mutex when full, so guest I/O of that domain waits for that write.
 */
#ifndef HC_DMRC_H
#define HC_DMRC_H

#include <stddef.h>
#include <stdint.h>

#include "mrc.h"

struct hc_dmrc;

/* Creates a domain's tracker; cfg NULL = no curve (trace still possible). */
int hc_dmrc_create(const struct hc_mrc_config *cfg, struct hc_dmrc **out)
	__attribute__((warn_unused_result));
void hc_dmrc_destroy(struct hc_dmrc *d);

/* op: HC_TRACE_EVICT or HC_TRACE_MISS, for blocks [blk, blk+n) of volume vol. */
void hc_dmrc_event(struct hc_dmrc *d, unsigned op, uint32_t vol, uint64_t blk, uint64_t n);

/*
 * Starts recording into a new file path (O_EXCL) for domain name.
 * Returns 0, -EBUSY (a trace runs), -errno of open or of writing the header.
 */
int hc_dmrc_trace_start(struct hc_dmrc *d, const char *path, const char *domain);
/*
 * Stops: writes the rest, syncs and closes.  *records = records written.
 * Returns 0, -ENOENT (no trace) or the first write error of the trace.
 */
int hc_dmrc_trace_stop(struct hc_dmrc *d, uint64_t *records, char *path, size_t pathlen);

/* 1 when d has a curve. */
int hc_dmrc_enabled(const struct hc_dmrc *d);
/* hc_mrc_stats and hc_mrc_curve under the domain's mutex; 0 points when disabled. */
void hc_dmrc_stats(struct hc_dmrc *d, struct hc_mrc_stats *out);
size_t hc_dmrc_curve(struct hc_dmrc *d, uint64_t step_pages, size_t n, double *misses_out);
void hc_dmrc_reset(struct hc_dmrc *d);

#endif
