// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hedp: the double-paging benchmark (Tesseract, VEE 2014; DESIGN.md "tools").
 *
 * Two pagers over two volumes of one domain directory.  The guest has G
 * guest-physical frames and an exact LRU over its W > G virtual pages; its
 * swap is GSWAP, slot v for virtual page v.  The hypervisor gives the guest
 * only H < G host pages and runs its own exact LRU over the guest's frames;
 * its swap is HSWAP, slot f for frame f.  A deterministic stream of N
 * accesses (tools/gen.c, the generators hc-mrc uses: uniform, zipf,
 * scanhot; same seed, same pages, so `hc-mrc lru` with the same options
 * predicts the guest's faults exactly) reads and writes one virtual page
 * each: it checks the page holds (page id, version) and writes version + 1.
 *
 * Double paging: the guest evicts virtual page u from frame f while the
 * hypervisor has f swapped out.  To write u to GSWAP the guest must read the
 * frame, so the hypervisor first brings it back from HSWAP:
 *   plain      pread HSWAP[f] into a host page (evicting another frame),
 *              pwrite it to GSWAP[u];
 *   dedup      the same calls (an unaware VMM); removing the write is
 *              hecache's content dedup's job, hedp only labels the run;
 *   reference  the VMM knows: copy_file_range(HSWAP[f] -> GSWAP[u]), no
 *              read or write by the process, f stays swapped out.  If the
 *              call fails with EOPNOTSUPP, EXDEV, ENOSYS or EINVAL, hedp
 *              reads and writes the block through a bounce buffer and counts
 *              a fallback.  A call that succeeds may still have been a copy:
 *              the kernel emulates copy_file_range with a splice read and
 *              write on file systems that cannot share blocks (ext4, FUSE
 *              when the daemon has no copy_file_range).  hedp cannot see
 *              that; on hecache-fs the daemon's counters can (below).
 * Then the guest fills frame f with the faulting page (a read from GSWAP,
 * or a first touch): the VMM sees the whole frame overwritten, so a frame
 * the hypervisor had swapped out gets a host page without a swap-in.  Every
 * access writes its page, so every eviction of either pager writes.
 *
 * I/O: one 4 KiB block per call, queue depth 1, O_DIRECT unless --buffered,
 * from 4 KiB-aligned buffers.  Every block read is checked against the
 * (page id, version) it must hold; the first wrong one ends the run with
 * exit 1 and a line naming the volume, block, page and versions.
 *
 * On hecache-fs the domain directory has the user.hecache.stats xattr;
 * hedp reads it before and after the run and prints the differences next to
 * its own counts (the front end: hits + misses = blocks read, admissions =
 * blocks written; the storage behind the cache: read_bytes, written_bytes).
 * Blocks the daemon saw beyond what hedp issued are copy_file_range calls
 * the kernel emulated.  hedp also marks the volumes it creates there as kind
 * swap.
 *
 * Limits: W < 2^32 - 1; the whole host allocation (H pages) and a few
 * arrays of W and G entries stay in memory; static swap slots (no slot
 * allocator, so no swap fragmentation); no guest page cache or clean pages.
 *
 * Exit status: 0 ok, 1 wrong data or an I/O error, 2 usage error.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cli.h"
#include "gen.h"
#include "util.h"

#define BLOCK 4096u
#define WORDS (BLOCK / sizeof(uint64_t))
#define NIL UINT32_MAX
#define STATS_XATTR "user.hecache.stats"
#define KIND_XATTR "user.hecache.kind"

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		hc_cli_die("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

/* --- an exact LRU over the indices [0, cap): a doubly linked list ------- */

struct lru {
	uint32_t *prev, *next;
	uint32_t head, tail;	/* MRU, LRU */
	uint64_t n;
};

static void lru_init(struct lru *l, uint64_t cap)
{
	l->prev = xcalloc(cap, sizeof(*l->prev));
	l->next = xcalloc(cap, sizeof(*l->next));
	l->head = l->tail = NIL;
	l->n = 0;
}

static void lru_unlink(struct lru *l, uint32_t x)
{
	if (l->prev[x] != NIL)
		l->next[l->prev[x]] = l->next[x];
	else
		l->head = l->next[x];
	if (l->next[x] != NIL)
		l->prev[l->next[x]] = l->prev[x];
	else
		l->tail = l->prev[x];
	l->n--;
}

static void lru_push(struct lru *l, uint32_t x)
{
	l->prev[x] = NIL;
	l->next[x] = l->head;
	if (l->head != NIL)
		l->prev[l->head] = x;
	else
		l->tail = x;
	l->head = x;
	l->n++;
}

static void lru_touch(struct lru *l, uint32_t x)
{
	if (l->head != x) {
		lru_unlink(l, x);
		lru_push(l, x);
	}
}

/* --- latency: a log-linear histogram, 64 steps per power of two (1.6%) --- */

#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define NBUCKETS (SUB + (64 - SUB_BITS) * SUB)

struct hist {
	uint64_t count[NBUCKETS];
	uint64_t n, max;
};

static unsigned bucket_of(uint64_t v)
{
	if (v < SUB)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);	/* >= SUB_BITS */
	return SUB + (e - SUB_BITS) * SUB + (unsigned)((v >> (e - SUB_BITS)) & (SUB - 1));
}

/* The middle of bucket b. */
static double bucket_mid(unsigned b)
{
	if (b < SUB)
		return b;
	unsigned e = (b - SUB) / SUB + SUB_BITS, sub = (b - SUB) % SUB;
	double width = (double)(1ull << (e - SUB_BITS));
	return ((double)SUB + sub) * width + width / 2;
}

static void hist_add(struct hist *h, uint64_t v)
{
	h->count[bucket_of(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

/* The p-quantile (0 < p <= 1): the first bucket holding the ceil(p n)-th value. */
static double hist_quantile(const struct hist *h, double p)
{
	if (!h->n)
		return 0;
	uint64_t rank = (uint64_t)(p * (double)h->n);
	if ((double)rank < p * (double)h->n)
		rank++;
	if (!rank)
		rank = 1;
	uint64_t seen = 0;
	for (unsigned b = 0; b < NBUCKETS; b++) {
		seen += h->count[b];
		if (seen >= rank) {
			double m = bucket_mid(b);
			return m > (double)h->max ? (double)h->max : m;
		}
	}
	return (double)h->max;
}

/* --- volumes ------------------------------------------------------------ */

struct vol {
	const char *label;	/* "gswap" or "hswap" */
	const char *name;
	char *path;
	int fd;
	uint64_t reads, read_bytes, writes, written_bytes;
};

/* Opens (creating if missing) DIR/NAME with at least `blocks` blocks. */
static void vol_open(struct vol *v, const char *dir, uint64_t blocks, int direct, int hecache)
{
	size_t len = strlen(dir) + strlen(v->name) + 2;
	v->path = xcalloc(len, 1);
	snprintf(v->path, len, "%s/%s", dir, v->name);
	int created = 1;
	v->fd = open(v->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (v->fd < 0 && errno == EEXIST) {
		created = 0;
		v->fd = open(v->path, O_RDWR | O_CLOEXEC);
	}
	if (v->fd < 0)
		hc_cli_die("%s: open: %s", v->path, strerror(errno));
	if (created && hecache && fsetxattr(v->fd, KIND_XATTR, "swap", 4, 0) < 0)
		fprintf(stderr, "%s: %s: could not mark as kind swap: %s\n", hc_cli_name(), v->path,
			strerror(errno));
	struct stat st;
	if (fstat(v->fd, &st) < 0)
		hc_cli_die("%s: fstat: %s", v->path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		hc_cli_die("%s: not a regular file", v->path);
	if ((uint64_t)st.st_size < blocks * BLOCK && ftruncate(v->fd, (off_t)(blocks * BLOCK)) < 0)
		hc_cli_die("%s: ftruncate to %" PRIu64 " bytes: %s", v->path, blocks * BLOCK,
			   strerror(errno));
	if (direct) {
		/* reopen: O_DIRECT cannot be set on a created file everywhere */
		int fd = open(v->path, O_RDWR | O_DIRECT | O_CLOEXEC);
		if (fd < 0)
			hc_cli_die("%s: open with O_DIRECT: %s%s", v->path, strerror(errno),
				   errno == EINVAL ? " (use --buffered on this file system)" : "");
		close(v->fd);
		v->fd = fd;
	}
}

static void vol_read(struct vol *v, void *buf, uint64_t block)
{
	ssize_t n;
	do
		n = pread(v->fd, buf, BLOCK, (off_t)(block * BLOCK));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		hc_cli_die("%s: read of block %" PRIu64 ": %s", v->path, block, strerror(errno));
	if (n != BLOCK)
		hc_cli_die("%s: short read of block %" PRIu64 ": %zd bytes", v->path, block, n);
	v->reads++;
	v->read_bytes += BLOCK;
}

static void vol_write(struct vol *v, const void *buf, uint64_t block)
{
	ssize_t n;
	do
		n = pwrite(v->fd, buf, BLOCK, (off_t)(block * BLOCK));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		hc_cli_die("%s: write of block %" PRIu64 ": %s", v->path, block, strerror(errno));
	if (n != BLOCK)
		hc_cli_die("%s: short write of block %" PRIu64 ": %zd bytes", v->path, block, n);
	v->writes++;
	v->written_bytes += BLOCK;
}

/* --- the daemon's counters (hecache-fs only) ---------------------------- */

static const char *const dkeys[] = { "hits",	"misses",     "admissions",    "writebacks",
				     "discards", "read_bytes", "written_bytes" };
#define NDKEYS (sizeof(dkeys) / sizeof(dkeys[0]))

/*
 * Reads DIR's user.hecache.stats: the line "domain NAME k v k v ...".
 * Returns 0 when DIR is not on hecache-fs (no such xattr), 1 with d filled.
 */
static int daemon_stats(const char *dir, uint64_t d[NDKEYS])
{
	char buf[65536];
	ssize_t n = getxattr(dir, STATS_XATTR, buf, sizeof(buf) - 1);
	if (n < 0)
		return 0;
	buf[n] = 0;
	char *line = strstr(buf, "domain ");
	if (line != buf)
		return 0;	/* the mount root (totals), not a domain */
	char *eol = strchr(line, '\n');
	if (eol)
		*eol = 0;
	memset(d, 0, NDKEYS * sizeof(d[0]));
	char *save = NULL, *prev = NULL;
	for (char *tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		for (size_t k = 0; prev && k < NDKEYS; k++)
			if (!strcmp(prev, dkeys[k]))
				d[k] = strtoull(tok, NULL, 10);
		prev = tok;
	}
	return 1;
}

/* --- the two pagers ----------------------------------------------------- */

enum mode { MODE_PLAIN, MODE_DEDUP, MODE_REFERENCE };
static const char *const mode_names[] = { "plain", "dedup", "reference" };

struct dp {
	enum mode mode;
	uint64_t seed, w, g, h, accesses;
	struct vol gswap, hswap;
	/* guest: virtual pages [0, w), frames [0, g) */
	uint32_t *vframe;	/* page -> its frame, NIL when not resident */
	uint32_t *version;	/* page -> times written */
	uint8_t *touched;	/* page -> accessed before (so in GSWAP when not resident) */
	uint32_t *fpage;	/* frame -> the page it holds, NIL never used */
	uint64_t frames_used;	/* frames [0, frames_used) have been handed out */
	struct lru glru;	/* over pages */
	/* hypervisor: host pages [0, h) back frames */
	uint32_t *fslot;	/* frame -> host page, NIL when swapped out (or never used) */
	uint64_t slots_used;
	struct lru hlru;	/* over frames */
	uint8_t *mem;		/* h blocks of host memory */
	uint8_t *bounce;	/* reference fallback */
	uint64_t now;		/* access number, for messages */
	/* counters */
	uint64_t guest_faults, cold, guest_swapins, guest_swapouts;
	uint64_t hyp_faults, hyp_swapins, hyp_swapouts, double_paged;
	uint64_t cfr_calls, cfr_ok, cfr_bytes, cfr_fallbacks;
	int cfr_errno;		/* errno of the last fallback */
	uint64_t check_reads;	/* --check-end reads (not in the volume counters) */
	uint64_t corrupt_at;	/* HEDP_TEST_CORRUPT: flip a bit of this block read (1-based) */
	uint64_t block_reads;
	struct hist lat;
};

/* Word w of page p at version v: the id and version first, then noise. */
static inline uint64_t word(uint64_t seed, uint32_t p, uint32_t v, unsigned w)
{
	if (w == 0)
		return 0x6865647000000000ull | p;	/* "hedp" | page */
	if (w == 1)
		return v;
	return hc_mix64(seed ^ ((uint64_t)p << 32) ^ v) + w * 0x9E3779B97F4A7C15ull;
}

static void fill(const struct dp *s, uint8_t *buf, uint32_t p)
{
	uint64_t *b = (uint64_t *)buf;
	uint32_t v = s->version[p];
	for (unsigned w = 0; w < WORDS; w++)
		b[w] = word(s->seed, p, v, w);
}

/* Checks that buf holds page p at its current version; exit 1 naming it if not. */
static void check(struct dp *s, uint8_t *buf, uint32_t p, const char *where, uint64_t block)
{
	const uint64_t *b = (const uint64_t *)buf;
	if (strcmp(where, "host memory") && ++s->block_reads == s->corrupt_at)
		buf[BLOCK - 1] ^= 1;	/* the test of the check itself */
	uint32_t v = s->version[p];
	for (unsigned w = 0; w < WORDS; w++) {
		if (b[w] == word(s->seed, p, v, w))
			continue;
		char holds[96];
		if ((b[0] >> 32) == 0x68656470u)
			snprintf(holds, sizeof(holds), "page %" PRIu64 " version %" PRIu64
				 " (word %u differs)",
				 b[0] & 0xffffffffu, b[1], w);
		else
			snprintf(holds, sizeof(holds), "no page (word 0 is %#" PRIx64 ")", b[0]);
		hc_cli_die("access %" PRIu64 ": page %" PRIu32 " version %" PRIu32
			   " expected in %s %s %" PRIu64 ", it holds %s",
			   s->now, p, v, where, strcmp(where, "host memory") ? "block" : "slot",
			   block, holds);
	}
}

/*
 * A host page for frame f (not host-resident): a free one, or the one of
 * the hypervisor's LRU frame, written to HSWAP first (every frame is dirty).
 */
static uint32_t host_page(struct dp *s, uint32_t f)
{
	uint32_t slot;
	if (s->slots_used < s->h) {
		slot = (uint32_t)s->slots_used++;
	} else {
		uint32_t x = s->hlru.tail;
		lru_unlink(&s->hlru, x);
		slot = s->fslot[x];
		s->fslot[x] = NIL;
		vol_write(&s->hswap, s->mem + (uint64_t)slot * BLOCK, x);
		s->hyp_swapouts++;
	}
	s->fslot[f] = slot;
	lru_push(&s->hlru, f);
	return slot;
}

/* Hypervisor swap-in of frame f (swapped out, holding a page): its host page. */
static uint8_t *hyp_swapin(struct dp *s, uint32_t f)
{
	uint8_t *buf = s->mem + (uint64_t)host_page(s, f) * BLOCK;
	vol_read(&s->hswap, buf, f);
	check(s, buf, s->fpage[f], s->hswap.path, f);
	s->hyp_swapins++;
	return buf;
}

/* copy_file_range of one block; 0 done, or the errno that asks for a fallback. */
static int cfr_block(struct dp *s, uint64_t src, uint64_t dst)
{
	loff_t in = (loff_t)(src * BLOCK), out = (loff_t)(dst * BLOCK);
	size_t left = BLOCK;
	while (left) {
		s->cfr_calls++;
		ssize_t n = copy_file_range(s->hswap.fd, &in, s->gswap.fd, &out, left, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && left == BLOCK &&
		    (errno == EOPNOTSUPP || errno == EXDEV || errno == ENOSYS || errno == EINVAL))
			return errno;
		if (n < 0)
			hc_cli_die("copy_file_range %s block %" PRIu64 " -> %s block %" PRIu64
				   ": %s",
				   s->hswap.path, src, s->gswap.path, dst, strerror(errno));
		if (n == 0)
			hc_cli_die("copy_file_range %s block %" PRIu64 " -> %s block %" PRIu64
				   ": copied nothing (end of file?)",
				   s->hswap.path, src, s->gswap.path, dst);
		left -= (size_t)n;
	}
	s->cfr_ok++;
	s->cfr_bytes += BLOCK;
	return 0;
}

/* The guest writes page u, held in frame f, to GSWAP. */
static void guest_swapout(struct dp *s, uint32_t u, uint32_t f)
{
	s->guest_swapouts++;
	if (s->fslot[f] != NIL) {
		vol_write(&s->gswap, s->mem + (uint64_t)s->fslot[f] * BLOCK, u);
		return;
	}
	/* double paging: the frame is in HSWAP */
	s->double_paged++;
	if (s->mode == MODE_REFERENCE) {
		int err = cfr_block(s, f, u);
		if (!err)
			return;
		s->cfr_fallbacks++;
		s->cfr_errno = err;
		vol_read(&s->hswap, s->bounce, f);
		check(s, s->bounce, u, s->hswap.path, f);
		vol_write(&s->gswap, s->bounce, u);
		return;
	}
	uint8_t *buf = hyp_swapin(s, f);
	vol_write(&s->gswap, buf, u);
}

static void access_page(struct dp *s, uint32_t v)
{
	uint32_t f = s->vframe[v];
	uint8_t *buf;
	if (f != NIL) {
		if (s->fslot[f] == NIL) {
			s->hyp_faults++;
			buf = hyp_swapin(s, f);
		} else {
			lru_touch(&s->hlru, f);
			buf = s->mem + (uint64_t)s->fslot[f] * BLOCK;
		}
		lru_touch(&s->glru, v);
	} else {
		s->guest_faults++;
		if (s->frames_used < s->g) {
			f = (uint32_t)s->frames_used++;
		} else {
			uint32_t u = s->glru.tail;
			lru_unlink(&s->glru, u);
			f = s->vframe[u];
			s->vframe[u] = NIL;
			guest_swapout(s, u, f);
		}
		/* the frame is overwritten whole: a host page, no swap-in */
		if (s->fslot[f] == NIL)
			buf = s->mem + (uint64_t)host_page(s, f) * BLOCK;
		else {
			lru_touch(&s->hlru, f);
			buf = s->mem + (uint64_t)s->fslot[f] * BLOCK;
		}
		s->fpage[f] = v;
		s->vframe[v] = f;
		if (s->touched[v]) {
			vol_read(&s->gswap, buf, v);
			check(s, buf, v, s->gswap.path, v);
			s->guest_swapins++;
		} else {
			s->touched[v] = 1;
			s->cold++;
			fill(s, buf, v);
		}
		lru_push(&s->glru, v);
	}
	check(s, buf, v, "host memory", (uint64_t)(buf - s->mem) / BLOCK);
	s->version[v]++;
	fill(s, buf, v);
}

/*
 * --check-end: reads back every page that is not in host memory (from GSWAP
 * or, through its frame, HSWAP) and checks it, so that blocks written by
 * copy_file_range and never read again are checked too.
 */
static void check_end(struct dp *s)
{
	for (uint32_t v = 0; v < s->w; v++) {
		uint32_t f = s->vframe[v];
		if (!s->touched[v] || (f != NIL && s->fslot[f] != NIL))
			continue;
		struct vol *vol = f == NIL ? &s->gswap : &s->hswap;
		uint64_t block = f == NIL ? v : f;
		vol_read(vol, s->bounce, block);
		vol->reads--;	/* counted apart */
		vol->read_bytes -= BLOCK;
		check(s, s->bounce, v, vol->path, block);
		s->check_reads++;
	}
}

/* --- output ------------------------------------------------------------- */

/* A JSON string (quotes, backslashes and control characters escaped). */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* A CSV field: quoted when it holds a comma, quote or newline. */
static void csv_str(FILE *f, const char *s)
{
	if (!strpbrk(s, ",\"\n\r")) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

struct result {
	const struct dp *s;
	const struct hc_gen *gen;
	const char *dir, *label;
	int direct, have_daemon;
	double secs, p50, p99, max;	/* seconds; latencies in µs */
	uint64_t d[NDKEYS];		/* daemon deltas */
	int64_t extra_reads, extra_writes;	/* daemon blocks beyond hedp's calls */
};

static double rate(const struct result *r)
{
	return r->secs > 0 ? (double)r->s->accesses / r->secs : 0;
}

static void print_human(const struct result *r)
{
	const struct dp *s = r->s;
	char b1[32], b2[32];
	printf("hedp %s: %s", mode_names[s->mode], hc_gen_pattern_name(r->gen->pattern));
	if (r->gen->pattern == HC_GEN_ZIPF)
		printf(" (theta %g)", r->gen->theta);
	else if (r->gen->pattern == HC_GEN_SCANHOT)
		printf(" (hot %" PRIu64 " pages, p %g)", r->gen->hot, r->gen->hot_prob);
	printf(", W %" PRIu64 " pages, G %" PRIu64 ", H %" PRIu64 ", seed %" PRIu64 ", %s, %s\n",
	       s->w, s->g, s->h, s->seed, r->direct ? "O_DIRECT" : "buffered", r->dir);
	printf("  accesses         %" PRIu64 " in %.3f s: %.0f accesses/s\n", s->accesses, r->secs,
	       rate(r));
	printf("  latency          p50 %.1f us, p99 %.1f us, max %.1f us\n", r->p50, r->p99,
	       r->max);
	printf("  guest            faults %" PRIu64 " (cold %" PRIu64 "), swap-ins %" PRIu64
	       ", swap-outs %" PRIu64 "\n",
	       s->guest_faults, s->cold, s->guest_swapins, s->guest_swapouts);
	printf("  hypervisor       faults %" PRIu64 ", swap-ins %" PRIu64 ", swap-outs %" PRIu64
	       "\n",
	       s->hyp_faults, s->hyp_swapins, s->hyp_swapouts);
	printf("  double-paged     %" PRIu64 " pages%s\n", s->double_paged,
	       s->mode == MODE_REFERENCE ? " (copy_file_range HSWAP -> GSWAP)"
					 : " (read from HSWAP, written to GSWAP)");
	const struct vol *vs[2] = { &s->gswap, &s->hswap };
	for (int i = 0; i < 2; i++)
		printf("  %-16s reads %" PRIu64 " (%s), writes %" PRIu64 " (%s)\n", vs[i]->name,
		       vs[i]->reads, hc_format_size(vs[i]->read_bytes, b1, sizeof(b1)),
		       vs[i]->writes, hc_format_size(vs[i]->written_bytes, b2, sizeof(b2)));
	if (s->mode == MODE_REFERENCE) {
		printf("  copy_file_range  calls %" PRIu64 ", ok %" PRIu64 " (%s), fallbacks %" PRIu64,
		       s->cfr_calls, s->cfr_ok, hc_format_size(s->cfr_bytes, b1, sizeof(b1)),
		       s->cfr_fallbacks);
		if (s->cfr_fallbacks)
			printf(" (%s: read + write instead)", strerror(s->cfr_errno));
		printf("\n");
	}
	if (r->have_daemon) {
		printf("  daemon (domain)  hits %" PRIu64 ", misses %" PRIu64 ", admissions %" PRIu64
		       ", writebacks %" PRIu64 ", discards %" PRIu64 ", storage read %s, written %s\n",
		       r->d[0], r->d[1], r->d[2], r->d[3], r->d[4],
		       hc_format_size(r->d[5], b1, sizeof(b1)), hc_format_size(r->d[6], b2, sizeof(b2)));
		if (r->extra_reads || r->extra_writes)
			printf("  daemon beyond    %" PRId64 " block reads, %" PRId64
			       " block writes hedp did not issue%s\n",
			       r->extra_reads, r->extra_writes,
			       s->cfr_ok ? ": copy_file_range emulated by the kernel (a copy, "
					   "not a reference)"
					 : ": other I/O in the domain?");
	}
	if (s->check_reads)
		printf("  end check        %" PRIu64 " swapped-out pages read back\n", s->check_reads);
	printf("  verify           ok\n");
}

static void print_json(const struct result *r)
{
	const struct dp *s = r->s;
	printf("{\"mode\":\"%s\",\"pattern\":\"%s\",\"zipf_theta\":%g,\"hot_pages\":%" PRIu64
	       ",\"hot_prob\":%g,\"seed\":%" PRIu64 ",\"pages\":%" PRIu64
	       ",\"guest_pages\":%" PRIu64 ",\"host_pages\":%" PRIu64 ",\"direct\":%s,\"dir\":",
	       mode_names[s->mode], hc_gen_pattern_name(r->gen->pattern), r->gen->theta, r->gen->hot,
	       r->gen->hot_prob, s->seed, s->w, s->g, s->h, r->direct ? "true" : "false");
	json_str(stdout, r->dir);
	printf(",\"label\":");
	json_str(stdout, r->label);
	printf(",\"accesses\":%" PRIu64 ",\"seconds\":%.6f,\"accesses_per_s\":%.1f"
	       ",\"latency_us\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}",
	       s->accesses, r->secs, rate(r), r->p50, r->p99, r->max);
	printf(",\"guest_faults\":%" PRIu64 ",\"guest_cold\":%" PRIu64 ",\"guest_swapins\":%" PRIu64
	       ",\"guest_swapouts\":%" PRIu64 ",\"hyp_faults\":%" PRIu64 ",\"hyp_swapins\":%" PRIu64
	       ",\"hyp_swapouts\":%" PRIu64 ",\"double_paged\":%" PRIu64,
	       s->guest_faults, s->cold, s->guest_swapins, s->guest_swapouts, s->hyp_faults,
	       s->hyp_swapins, s->hyp_swapouts, s->double_paged);
	const struct vol *vs[2] = { &s->gswap, &s->hswap };
	for (int i = 0; i < 2; i++) {
		printf(",\"%s\":{\"name\":", vs[i]->label);
		json_str(stdout, vs[i]->name);
		printf(",\"reads\":%" PRIu64 ",\"read_bytes\":%" PRIu64 ",\"writes\":%" PRIu64
		       ",\"written_bytes\":%" PRIu64 "}",
		       vs[i]->reads, vs[i]->read_bytes, vs[i]->writes, vs[i]->written_bytes);
	}
	printf(",\"cfr\":{\"calls\":%" PRIu64 ",\"ok\":%" PRIu64 ",\"bytes\":%" PRIu64
	       ",\"fallbacks\":%" PRIu64 ",\"fallback_errno\":",
	       s->cfr_calls, s->cfr_ok, s->cfr_bytes, s->cfr_fallbacks);
	if (s->cfr_fallbacks)
		json_str(stdout, strerror(s->cfr_errno));
	else
		printf("null");
	printf("}");
	printf(",\"daemon\":");
	if (r->have_daemon) {
		printf("{");
		for (size_t k = 0; k < NDKEYS; k++)
			printf("%s\"%s\":%" PRIu64, k ? "," : "", dkeys[k], r->d[k]);
		printf(",\"extra_reads\":%" PRId64 ",\"extra_writes\":%" PRId64 "}", r->extra_reads,
		       r->extra_writes);
	} else {
		printf("null");
	}
	printf(",\"check_reads\":%" PRIu64 ",\"verified\":true}\n", s->check_reads);
}

static void write_csv(const struct result *r, const char *path)
{
	const struct dp *s = r->s;
	FILE *f = fopen(path, "a");
	if (!f)
		hc_cli_die("%s: %s", path, strerror(errno));
	if (ftell(f) == 0) {
		fprintf(f, "label,mode,pattern,zipf_theta,seed,pages,guest_pages,host_pages,"
			   "accesses,direct,seconds,accesses_per_s,lat_p50_us,lat_p99_us,lat_max_us,"
			   "guest_faults,guest_swapins,guest_swapouts,hyp_swapins,hyp_swapouts,"
			   "double_paged,gswap_reads,gswap_read_bytes,gswap_writes,"
			   "gswap_written_bytes,hswap_reads,hswap_read_bytes,hswap_writes,"
			   "hswap_written_bytes,cfr_calls,cfr_ok,cfr_bytes,cfr_fallbacks");
		for (size_t k = 0; k < NDKEYS; k++)
			fprintf(f, ",daemon_%s", dkeys[k]);
		fprintf(f, "\n");
	}
	csv_str(f, r->label);
	fprintf(f, ",%s,%s,%g,%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64
		   ",%d,%.6f,%.1f,%.2f,%.2f,%.2f",
		mode_names[s->mode], hc_gen_pattern_name(r->gen->pattern), r->gen->theta, s->seed, s->w,
		s->g, s->h, s->accesses, r->direct, r->secs, rate(r), r->p50, r->p99, r->max);
	fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64,
		s->guest_faults, s->guest_swapins, s->guest_swapouts, s->hyp_swapins,
		s->hyp_swapouts, s->double_paged);
	const struct vol *vs[2] = { &s->gswap, &s->hswap };
	for (int i = 0; i < 2; i++)
		fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64, vs[i]->reads,
			vs[i]->read_bytes, vs[i]->writes, vs[i]->written_bytes);
	fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64, s->cfr_calls, s->cfr_ok,
		s->cfr_bytes, s->cfr_fallbacks);
	for (size_t k = 0; k < NDKEYS; k++) {
		if (r->have_daemon)
			fprintf(f, ",%" PRIu64, r->d[k]);
		else
			fprintf(f, ",");
	}
	fprintf(f, "\n");
	if (fclose(f))
		hc_cli_die("%s: %s", path, strerror(errno));
}

/* --- main --------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hedp --dir DOMAIN_DIR --mode plain|dedup|reference --guest-pages G\n"
		"            --host-pages H --pages W --accesses N [--pattern uniform|zipf|scanhot]\n"
		"            [--zipf-theta T (0.99)] [--hot-frac F (0.1)] [--hot-prob P (0.5)]\n"
		"            [--seed S (1)] [--buffered] [--check-end] [--csv FILE] [--label TEXT]\n"
		"            [--json] [--gswap NAME (gswap)] [--hswap NAME (hswap)]\n"
		"  A guest of G frames (exact LRU over W > G virtual pages, swap on the volume\n"
		"  DIR/GSWAP, slot = page) under a hypervisor that backs only H < G frames (exact\n"
		"  LRU over frames, swap on DIR/HSWAP, slot = frame).  N accesses, each reads and\n"
		"  writes one page, whose contents (page id, version) are checked whenever read.\n"
		"  Double paging: the guest evicts a page whose frame the hypervisor swapped out.\n"
		"  plain, dedup: the frame is read from HSWAP, then written to GSWAP; reference:\n"
		"  copy_file_range(HSWAP -> GSWAP), counted fallback to read + write when refused.\n"
		"  O_DIRECT, 4 KiB per call, queue depth 1; volumes created (sparse) if missing.\n"
		"  --check-end: read back every swapped-out page at the end (not timed).\n"
		"  --csv appends one line (a header first when FILE is new); --json prints one\n"
		"  JSON object instead of the report.\n"
		"Exit status: 0 ok, 1 wrong data or an I/O error, 2 usage error.\n");
}

enum {
	OPT_DIR = 256, OPT_MODE, OPT_GUEST, OPT_HOST, OPT_PAGES, OPT_ACCESSES, OPT_PATTERN,
	OPT_THETA, OPT_HOT_FRAC, OPT_HOT_PROB, OPT_SEED, OPT_BUFFERED, OPT_CSV, OPT_JSON,
	OPT_GSWAP, OPT_HSWAP, OPT_LABEL, OPT_CHECK_END, OPT_HELP,
};

static void check_name(const char *opt, const char *name)
{
	if (!*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		hc_cli_die_usage("%s: a file name in the domain directory, not '%s'", opt, name);
}

int main(int argc, char **argv)
{
	hc_cli_init("hedp");
	static const struct option lo[] = {
		{ "dir", required_argument, NULL, OPT_DIR },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "guest-pages", required_argument, NULL, OPT_GUEST },
		{ "host-pages", required_argument, NULL, OPT_HOST },
		{ "pages", required_argument, NULL, OPT_PAGES },
		{ "accesses", required_argument, NULL, OPT_ACCESSES },
		{ "pattern", required_argument, NULL, OPT_PATTERN },
		{ "zipf-theta", required_argument, NULL, OPT_THETA },
		{ "hot-frac", required_argument, NULL, OPT_HOT_FRAC },
		{ "hot-prob", required_argument, NULL, OPT_HOT_PROB },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "buffered", no_argument, NULL, OPT_BUFFERED },
		{ "check-end", no_argument, NULL, OPT_CHECK_END },
		{ "csv", required_argument, NULL, OPT_CSV },
		{ "label", required_argument, NULL, OPT_LABEL },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "gswap", required_argument, NULL, OPT_GSWAP },
		{ "hswap", required_argument, NULL, OPT_HSWAP },
		{ "help", no_argument, NULL, OPT_HELP },
		{ 0 },
	};
	struct dp s;
	struct hc_gen gen;
	memset(&s, 0, sizeof(s));
	memset(&gen, 0, sizeof(gen));
	gen.pattern = HC_GEN_UNIFORM;
	gen.theta = HC_GEN_ZIPF_THETA;
	gen.hot_frac = HC_GEN_HOT_FRAC;
	gen.hot_prob = HC_GEN_HOT_PROB;
	s.seed = 1;
	s.mode = (enum mode)-1;
	s.gswap = (struct vol){ .label = "gswap", .name = "gswap", .fd = -1 };
	s.hswap = (struct vol){ .label = "hswap", .name = "hswap", .fd = -1 };
	const char *dir = NULL, *csv = NULL, *label = "";
	int direct = 1, json = 0, want_check = 0, c;

	opterr = 0;	/* our own one-line message */
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case OPT_DIR:
			dir = optarg;
			break;
		case OPT_MODE:
			for (unsigned m = 0; m < 3; m++)
				if (!strcmp(optarg, mode_names[m]))
					s.mode = (enum mode)m;
			if (s.mode == (enum mode)-1)
				hc_cli_die_usage("--mode: plain, dedup or reference, not '%s'", optarg);
			break;
		case OPT_GUEST:
			s.g = hc_cli_parse_u64("--guest-pages", optarg);
			break;
		case OPT_HOST:
			s.h = hc_cli_parse_u64("--host-pages", optarg);
			break;
		case OPT_PAGES:
			s.w = hc_cli_parse_u64("--pages", optarg);
			break;
		case OPT_ACCESSES:
			s.accesses = hc_cli_parse_u64("--accesses", optarg);
			break;
		case OPT_PATTERN:
			if (hc_gen_pattern_parse(optarg, &gen.pattern))
				hc_cli_die_usage("--pattern: uniform, zipf or scanhot, not '%s'", optarg);
			break;
		case OPT_THETA:
			gen.theta = hc_cli_parse_double("--zipf-theta", optarg);
			if (!(gen.theta > 0 && gen.theta <= 10))
				hc_cli_die_usage("--zipf-theta must be in (0, 10]");
			break;
		case OPT_HOT_FRAC:
			gen.hot_frac = hc_cli_parse_double("--hot-frac", optarg);
			if (!(gen.hot_frac > 0 && gen.hot_frac < 1))
				hc_cli_die_usage("--hot-frac must be in (0, 1)");
			break;
		case OPT_HOT_PROB:
			gen.hot_prob = hc_cli_parse_double("--hot-prob", optarg);
			if (!(gen.hot_prob >= 0 && gen.hot_prob <= 1))
				hc_cli_die_usage("--hot-prob must be in [0, 1]");
			break;
		case OPT_SEED:
			s.seed = hc_cli_parse_u64("--seed", optarg);
			break;
		case OPT_BUFFERED:
			direct = 0;
			break;
		case OPT_CHECK_END:
			want_check = 1;
			break;
		case OPT_CSV:
			csv = optarg;
			break;
		case OPT_LABEL:
			label = optarg;
			break;
		case OPT_JSON:
			json = 1;
			break;
		case OPT_GSWAP:
			check_name("--gswap", optarg);
			s.gswap.name = optarg;
			break;
		case OPT_HSWAP:
			check_name("--hswap", optarg);
			s.hswap.name = optarg;
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			hc_cli_die_usage("unknown option or missing argument: '%s'",
					 argv[optind - 1]);
		}
	}
	if (optind != argc)
		hc_cli_die_usage("unexpected argument '%s'", argv[optind]);
	if (!dir)
		hc_cli_die_usage("--dir is required");
	if (s.mode == (enum mode)-1)
		hc_cli_die_usage("--mode is required");
	if (!s.g || !s.h || !s.w || !s.accesses)
		hc_cli_die_usage("--guest-pages, --host-pages, --pages and --accesses"
				 " are required and positive");
	if (s.h >= s.g)
		hc_cli_die_usage("--host-pages (%" PRIu64 ") must be smaller than"
				 " --guest-pages (%" PRIu64 ")",
				 s.h, s.g);
	if (s.g >= s.w)
		hc_cli_die_usage("--guest-pages (%" PRIu64 ") must be smaller than"
				 " --pages (%" PRIu64 ")",
				 s.g, s.w);
	if (s.w > UINT32_MAX - 1)
		hc_cli_die_usage("--pages must be below 2^32 - 1");
	if (!strcmp(s.gswap.name, s.hswap.name))
		hc_cli_die_usage("--gswap and --hswap name the same file '%s'", s.gswap.name);
	struct stat st;
	if (stat(dir, &st) < 0)
		hc_cli_die_usage("--dir %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		hc_cli_die_usage("--dir %s: not a directory", dir);

	uint64_t d0[NDKEYS], d1[NDKEYS];
	int have_daemon = daemon_stats(dir, d0);
	vol_open(&s.gswap, dir, s.w, direct, have_daemon);
	vol_open(&s.hswap, dir, s.g, direct, have_daemon);

	s.vframe = xcalloc(s.w, sizeof(*s.vframe));
	memset(s.vframe, 0xff, s.w * sizeof(*s.vframe));
	s.version = xcalloc(s.w, sizeof(*s.version));
	s.touched = xcalloc(s.w, 1);
	s.fpage = xcalloc(s.g, sizeof(*s.fpage));
	memset(s.fpage, 0xff, s.g * sizeof(*s.fpage));
	s.fslot = xcalloc(s.g, sizeof(*s.fslot));
	memset(s.fslot, 0xff, s.g * sizeof(*s.fslot));
	lru_init(&s.glru, s.w);
	lru_init(&s.hlru, s.g);
	void *mem;
	int err = posix_memalign(&mem, BLOCK, (s.h + 1) * BLOCK);
	if (err)
		hc_cli_die("host memory of %" PRIu64 " pages: %s", s.h, strerror(err));
	s.mem = mem;
	s.bounce = s.mem + s.h * BLOCK;
	gen.pages = s.w;
	err = hc_gen_init(&gen, s.seed);
	if (err)
		hc_cli_die("%s stream of %" PRIu64 " pages: %s", hc_gen_pattern_name(gen.pattern),
			   s.w, strerror(-err));
	const char *corrupt = getenv("HEDP_TEST_CORRUPT");
	if (corrupt)
		s.corrupt_at = hc_cli_parse_u64("HEDP_TEST_CORRUPT", corrupt);

	uint64_t t0 = hc_now_ns(), prev = t0;
	for (s.now = 0; s.now < s.accesses; s.now++) {
		access_page(&s, (uint32_t)hc_gen_next(&gen));
		uint64_t t = hc_now_ns();
		hist_add(&s.lat, t - prev);
		prev = t;
	}
	struct result r = { .s = &s, .gen = &gen, .dir = dir, .label = label, .direct = direct };
	r.secs = (double)(prev - t0) / 1e9;
	if (want_check)
		check_end(&s);
	if (have_daemon && daemon_stats(dir, d1)) {
		r.have_daemon = 1;
		for (size_t k = 0; k < NDKEYS; k++)
			r.d[k] = d1[k] - d0[k];
		uint64_t reads = s.gswap.reads + s.hswap.reads + s.check_reads;
		uint64_t writes = s.gswap.writes + s.hswap.writes;
		r.extra_reads = (int64_t)(r.d[0] + r.d[1]) - (int64_t)reads;
		r.extra_writes = (int64_t)r.d[2] - (int64_t)writes;
	}
	r.p50 = hist_quantile(&s.lat, 0.50) / 1e3;
	r.p99 = hist_quantile(&s.lat, 0.99) / 1e3;
	r.max = (double)s.lat.max / 1e3;
	if (json)
		print_json(&r);
	else
		print_human(&r);
	if (csv)
		write_csv(&r, csv);
	if (fflush(stdout) || ferror(stdout))
		hc_cli_die("stdout: %s", strerror(errno));
	close(s.gswap.fd);
	close(s.hswap.fd);
	free(s.gswap.path);
	free(s.hswap.path);
	hc_gen_free(&gen);
	free(s.vframe);
	free(s.version);
	free(s.touched);
	free(s.fpage);
	free(s.fslot);
	free(s.glru.prev);
	free(s.glru.next);
	free(s.hlru.prev);
	free(s.hlru.next);
	free(mem);
	return 0;
}
