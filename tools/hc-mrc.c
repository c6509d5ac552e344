// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hc-mrc: offline miss-ratio curves (DESIGN.md "Miss-ratio curves").
 *
 *   gen      simulates a guest of G pages under exact LRU over a synthetic
 *            access stream and writes its evictions and misses as a trace
 *            file (include/hecache/ctl.h), as hecache-fs would see them;
 *   curve    feeds a trace to the estimator (cache-fs/mrc.c), exact or
 *            SHARDS, and prints the curve;
 *   compare  exact against SHARDS on one trace: mean and max absolute error
 *            of the miss ratio, over K samples (keys rehashed with K salts);
 *   lru      the same simulation checked against Mattson's stack algorithm
 *            on the raw access stream (written here, independently of
 *            mrc.c): Lu & Shen's eviction-ordered stack must give the LRU
 *            misses at G + c pages;
 *   bench    the estimator's cost: exact ns/event with a large stack, and
 *            SHARDS fixed-size memory as the footprint grows.
 *
 * Event order.  On a miss the simulated guest emits MISS of the page read in
 * and then EVICT of the page its LRU pushed out (the order of the LRU stack
 * update: the page joins the top, the page at depth G leaves).  Then a miss
 * at eviction-stack depth d has LRU stack distance exactly G + d + 1 and the
 * curve equals Mattson's at every c.  --evict-first emits the write-out
 * first (what a guest with exactly G pages must do physically); the victim
 * is then on the stack above the page read, and the curve is Mattson's
 * shifted by one page: misses(c) = LRU misses at G + c - 1 for c >= 1.
 *
 * Limits: at most 2^32 - 2 pages and accesses in gen/lru; the synthetic
 * trace has one volume (0), domain "synthetic", t_ns = access number.
 *
 * Exit status: 0 ok, 1 bad input or failure, 2 usage error.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "gen.h"
#include "hecache/ctl.h"
#include "mrc.h"
#include "util.h"

#define NIL UINT32_MAX

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hc-mrc gen   GENOPTS -o TRACE\n"
		"       hc-mrc curve TRACE [--mode exact|shards] [--rate R] [--sample-max N]\n"
		"                    [--adjust scale|first]\n"
		"                    [--step PAGES] [--max PAGES] [--csv]\n"
		"       hc-mrc compare TRACE [--rate R] [--sample-max N] [--salt S] [--samples K]\n"
		"                    [--adjust scale|first]  (SHARDS level correction, mrc.h)\n"
		"                    [--step PAGES] [--max PAGES] [--csv]\n"
		"       hc-mrc lru   GENOPTS [--step PAGES] [--max PAGES] [--csv]\n"
		"       hc-mrc bench [--tracked N] [--events N] [--footprints N,N,...]\n"
		"                    [--sample-max N] [--rate R]\n"
		"GENOPTS: --pattern uniform|zipf|scanhot --pages W --guest G --accesses N\n"
		"         [--seed S] [--zipf-theta T (0.99)] [--hot-frac F (0.1)]\n"
		"         [--hot-prob P (0.5)] [--evict-first]\n"
		"  gen: a guest of G pages under exact LRU over N accesses to W > G pages;\n"
		"  every miss is a MISS record, every page its LRU pushes out an EVICT.\n"
		"  curve: predicted misses with c extra pages; miss ratio = misses(c) /\n"
		"  miss events.  --max defaults to the distinct evicted blocks, --step to\n"
		"  max/50.  compare: exact vs SHARDS (default rate 0.01) over c in [0, where\n"
		"  the exact curve flattens], 200 points; K samples rehash the keys with\n"
		"  salts S..S+K-1 (salt 0: the keys as they are).  lru: checks the curve\n"
		"  against Mattson's LRU stack algorithm at G + c pages, every c.\n"
		"  bench: exact ns/event with ~N blocks on the stack; SHARDS fixed-size\n"
		"  memory at each footprint.\n"
		"Exit status: 0 ok, 1 bad input or failure, 2 usage error.\n");
}

/* After getopt_long returned '?' or ':' (opterr is 0: one line of ours). */
static void bad_option(const char *cmd, char **argv) __attribute__((noreturn));
static void bad_option(const char *cmd, char **argv)
{
	hc_cli_die_usage("%s: unknown option or missing argument: '%s'", cmd, argv[optind - 1]);
}

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p)
		hc_cli_die("out of memory (%zu x %zu bytes)", n, size);
	return p;
}

/* Faults every page of p in (a memset of zeros after calloc may be elided). */
static void touch(void *p, size_t n)
{
	for (size_t i = 0; i < n; i += 4096)
		((volatile uint8_t *)p)[i] = 0;
}

/* --- access streams and the simulated guest ----------------------------- */

struct gen_opts {
	enum hc_gen_pattern pattern;
	uint64_t pages, guest, accesses, seed;
	double theta, hot_frac, hot_prob;
	int evict_first;
};

struct sim {
	struct gen_opts o;
	struct hc_gen gen;	/* the access stream */
	/* the guest: exact LRU of o.guest pages, a list indexed by page */
	uint32_t *prev, *next;
	uint8_t *resident;
	uint32_t head, tail;	/* MRU, LRU */
	uint64_t size;
	uint64_t t;		/* accesses made */
	uint64_t misses, evictions;
};

struct sink {
	void (*event)(void *ctx, uint64_t t, uint32_t op, uint64_t block);
	void (*access)(void *ctx, uint64_t t, uint64_t page);	/* may be NULL */
	void *ctx;
};

static void sim_init(struct sim *s, const struct gen_opts *o)
{
	memset(s, 0, sizeof(*s));
	s->o = *o;
	uint64_t w = o->pages;
	s->gen.pattern = o->pattern;
	s->gen.pages = w;
	s->gen.theta = o->theta;
	s->gen.hot_frac = o->hot_frac;
	s->gen.hot_prob = o->hot_prob;
	int err = hc_gen_init(&s->gen, o->seed);
	if (err)
		hc_cli_die("%s stream of %" PRIu64 " pages: %s", hc_gen_pattern_name(o->pattern), w,
			   strerror(-err));
	s->prev = xcalloc(w, sizeof(*s->prev));
	s->next = xcalloc(w, sizeof(*s->next));
	s->resident = xcalloc(w, 1);
	/* touch everything now: bench measures RSS around the estimator */
	memset(s->prev, 0xff, w * sizeof(*s->prev));
	memset(s->next, 0xff, w * sizeof(*s->next));
	touch(s->resident, w);
	s->head = s->tail = NIL;
}

static void sim_free(struct sim *s)
{
	hc_gen_free(&s->gen);
	free(s->prev);
	free(s->next);
	free(s->resident);
}

static void lru_unlink(struct sim *s, uint32_t p)
{
	if (s->prev[p] != NIL)
		s->next[s->prev[p]] = s->next[p];
	else
		s->head = s->next[p];
	if (s->next[p] != NIL)
		s->prev[s->next[p]] = s->prev[p];
	else
		s->tail = s->prev[p];
}

static void lru_push(struct sim *s, uint32_t p)
{
	s->prev[p] = NIL;
	s->next[p] = s->head;
	if (s->head != NIL)
		s->prev[s->head] = p;
	else
		s->tail = p;
	s->head = p;
}

/* One access of the stream: updates the guest, reports its events. */
static void sim_step(struct sim *s, const struct sink *k)
{
	uint64_t t = s->t++;
	uint32_t p = (uint32_t)hc_gen_next(&s->gen);
	if (k->access)
		k->access(k->ctx, t, p);
	if (s->resident[p]) {
		lru_unlink(s, p);
		lru_push(s, p);
		return;
	}
	uint32_t victim = NIL;
	if (s->size == s->o.guest) {
		victim = s->tail;
		lru_unlink(s, victim);
		s->resident[victim] = 0;
		s->size--;
		s->evictions++;
	}
	s->misses++;
	if (victim != NIL && s->o.evict_first)
		k->event(k->ctx, t, HC_TRACE_EVICT, victim);
	k->event(k->ctx, t, HC_TRACE_MISS, p);
	if (victim != NIL && !s->o.evict_first)
		k->event(k->ctx, t, HC_TRACE_EVICT, victim);
	lru_push(s, p);
	s->resident[p] = 1;
	s->size++;
}

enum {
	OPT_PATTERN = 256, OPT_PAGES, OPT_GUEST, OPT_ACCESSES, OPT_SEED, OPT_THETA,
	OPT_HOT_FRAC, OPT_HOT_PROB, OPT_EVICT_FIRST, OPT_MODE, OPT_RATE, OPT_SAMPLE_MAX, OPT_ADJUST,
	OPT_STEP, OPT_MAX, OPT_CSV, OPT_SALT, OPT_SAMPLES, OPT_TRACKED, OPT_EVENTS, OPT_FOOTPRINTS,
	OPT_HELP,
};

#define GEN_LONGOPTS                                                                  \
	{ "pattern", required_argument, NULL, OPT_PATTERN },                          \
	{ "pages", required_argument, NULL, OPT_PAGES },                              \
	{ "guest", required_argument, NULL, OPT_GUEST },                              \
	{ "accesses", required_argument, NULL, OPT_ACCESSES },                        \
	{ "seed", required_argument, NULL, OPT_SEED },                                \
	{ "zipf-theta", required_argument, NULL, OPT_THETA },                         \
	{ "hot-frac", required_argument, NULL, OPT_HOT_FRAC },                        \
	{ "hot-prob", required_argument, NULL, OPT_HOT_PROB },                        \
	{ "evict-first", no_argument, NULL, OPT_EVICT_FIRST }

static void gen_defaults(struct gen_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->seed = 1;
	o->pattern = HC_GEN_NONE;
	o->theta = HC_GEN_ZIPF_THETA;
	o->hot_frac = HC_GEN_HOT_FRAC;
	o->hot_prob = HC_GEN_HOT_PROB;
}

/* Returns 1 if c was a generator option. */
static int gen_option(struct gen_opts *o, int c, const char *arg)
{
	switch (c) {
	case OPT_PATTERN:
		if (hc_gen_pattern_parse(arg, &o->pattern))
			hc_cli_die_usage("--pattern: uniform, zipf or scanhot, not '%s'", arg);
		return 1;
	case OPT_PAGES:
		o->pages = hc_cli_parse_u64("--pages", arg);
		return 1;
	case OPT_GUEST:
		o->guest = hc_cli_parse_u64("--guest", arg);
		return 1;
	case OPT_ACCESSES:
		o->accesses = hc_cli_parse_u64("--accesses", arg);
		return 1;
	case OPT_SEED:
		o->seed = hc_cli_parse_u64("--seed", arg);
		return 1;
	case OPT_THETA:
		o->theta = hc_cli_parse_double("--zipf-theta", arg);
		return 1;
	case OPT_HOT_FRAC:
		o->hot_frac = hc_cli_parse_double("--hot-frac", arg);
		return 1;
	case OPT_HOT_PROB:
		o->hot_prob = hc_cli_parse_double("--hot-prob", arg);
		return 1;
	case OPT_EVICT_FIRST:
		o->evict_first = 1;
		return 1;
	}
	return 0;
}

static void gen_check(const struct gen_opts *o)
{
	if (o->pattern == HC_GEN_NONE)
		hc_cli_die_usage("--pattern is required");
	if (!o->pages || !o->guest || !o->accesses)
		hc_cli_die_usage("--pages, --guest and --accesses are required and positive");
	if (o->guest >= o->pages)
		hc_cli_die_usage("--guest (%" PRIu64 ") must be smaller than --pages (%" PRIu64 ")",
				 o->guest, o->pages);
	if (o->pages > UINT32_MAX - 1 || o->accesses > UINT32_MAX - 1)
		hc_cli_die_usage("--pages and --accesses must be below 2^32 - 1");
	if (o->pattern == HC_GEN_ZIPF && !(o->theta > 0 && o->theta <= 10))
		hc_cli_die_usage("--zipf-theta must be in (0, 10]");
	if (o->pattern == HC_GEN_SCANHOT &&
	    (!(o->hot_frac > 0 && o->hot_frac < 1) || !(o->hot_prob >= 0 && o->hot_prob <= 1)))
		hc_cli_die_usage("--hot-frac must be in (0, 1), --hot-prob in [0, 1]");
}

/* --- trace files -------------------------------------------------------- */

#define RBUF 8192

struct trace_writer {
	const char *path;
	FILE *f;
	struct hc_trace_rec buf[RBUF];
	size_t n;
	uint64_t records;
};

static void tw_flush(struct trace_writer *w)
{
	if (w->n && fwrite(w->buf, sizeof(w->buf[0]), w->n, w->f) != w->n)
		hc_cli_die("%s: write: %s", w->path, strerror(errno));
	w->n = 0;
}

static void tw_event(void *ctx, uint64_t t, uint32_t op, uint64_t block)
{
	struct trace_writer *w = ctx;
	w->buf[w->n++] = (struct hc_trace_rec){ .t_ns = htole64(t), .op = htole32(op),
						.vol = htole32(0), .block = htole64(block) };
	w->records++;
	if (w->n == RBUF)
		tw_flush(w);
}

struct trace {
	const char *path;
	FILE *f;
	char domain[sizeof(((struct hc_trace_header *)0)->domain)];
	uint64_t start_ns;
	uint64_t off;		/* file offset of buf[0] */
	struct hc_trace_rec buf[RBUF];
	size_t n, i;
};

static void trace_open(struct trace *t, const char *path)
{
	struct hc_trace_header h;
	memset(t, 0, sizeof(*t));
	t->path = path;
	t->f = fopen(path, "rb");
	if (!t->f)
		hc_cli_die("%s: %s", path, strerror(errno));
	size_t got = fread(&h, 1, sizeof(h), t->f);
	if (ferror(t->f))
		hc_cli_die("%s: offset 0: read: %s", path, strerror(errno));
	if (got < sizeof(h.magic) || memcmp(h.magic, HC_TRACE_MAGIC, sizeof(h.magic)))
		hc_cli_die("%s: offset 0: bad magic (not an hecache trace)", path);
	if (got < sizeof(h))
		hc_cli_die("%s: offset %zu: truncated header (%zu of %zu bytes)", path, got, got,
			   sizeof(h));
	if (le32toh(h.version) != HC_TRACE_VERSION)
		hc_cli_die("%s: offset 8: unsupported version %" PRIu32 " (expected %d)", path,
			   le32toh(h.version), HC_TRACE_VERSION);
	if (le32toh(h.record_size) != sizeof(struct hc_trace_rec))
		hc_cli_die("%s: offset 12: record size %" PRIu32 " (expected %zu)", path,
			   le32toh(h.record_size), sizeof(struct hc_trace_rec));
	if (!memchr(h.domain, 0, sizeof(h.domain)))
		hc_cli_die("%s: offset 24: domain name not NUL-terminated", path);
	memcpy(t->domain, h.domain, sizeof(t->domain));
	t->start_ns = le64toh(h.start_ns);
	t->off = sizeof(h);
}

static void trace_rewind(struct trace *t)
{
	if (fseek(t->f, sizeof(struct hc_trace_header), SEEK_SET))
		hc_cli_die("%s: seek: %s", t->path, strerror(errno));
	t->off = sizeof(struct hc_trace_header);
	t->n = t->i = 0;
}

/* Next record: 1, or 0 at the end; dies on a bad or truncated record. */
static int trace_next(struct trace *t, uint32_t *op, uint64_t *key)
{
	if (t->i == t->n) {
		t->off += t->n * sizeof(t->buf[0]);
		t->i = 0;
		size_t got = fread(t->buf, 1, sizeof(t->buf), t->f);
		if (ferror(t->f))
			hc_cli_die("%s: offset %" PRIu64 ": read: %s", t->path, t->off,
				   strerror(errno));
		t->n = got / sizeof(t->buf[0]);
		if (got % sizeof(t->buf[0]) && feof(t->f))
			hc_cli_die("%s: offset %" PRIu64 ": truncated record (%zu of %zu bytes)",
				   t->path, t->off + t->n * sizeof(t->buf[0]),
				   got % sizeof(t->buf[0]), sizeof(t->buf[0]));
		if (!t->n)
			return 0;
	}
	const struct hc_trace_rec *r = &t->buf[t->i++];
	*op = le32toh(r->op);
	if (*op != HC_TRACE_EVICT && *op != HC_TRACE_MISS)
		hc_cli_die("%s: offset %" PRIu64 ": bad record op %" PRIu32, t->path,
			   t->off + (t->i - 1) * sizeof(t->buf[0]) + 8, *op);
	*key = HC_MRC_KEY(le32toh(r->vol), le64toh(r->block));
	return 1;
}

static void trace_close(struct trace *t)
{
	fclose(t->f);
}

/* --- a set of keys (distinct blocks) -------------------------------------- */

struct kset {
	uint64_t *keys;
	uint8_t *flags;		/* 0 empty, else KS_SEEN | KS_EVICTED */
	uint64_t mask, n, evicted;
};
#define KS_SEEN 1u
#define KS_EVICTED 2u

static void kset_init(struct kset *s, uint64_t size)
{
	s->mask = size - 1;
	s->n = s->evicted = 0;
	s->keys = xcalloc(size, sizeof(*s->keys));
	s->flags = xcalloc(size, 1);
}

static uint8_t *kset_slot(struct kset *s, uint64_t key)
{
	for (uint64_t i = hc_mix64(key) & s->mask;; i = (i + 1) & s->mask) {
		if (!s->flags[i]) {
			s->keys[i] = key;
			return &s->flags[i];
		}
		if (s->keys[i] == key)
			return &s->flags[i];
	}
}

static void kset_add(struct kset *s, uint64_t key, uint8_t flag)
{
	if (2 * (s->n + 1) > s->mask + 1) {
		struct kset g;
		kset_init(&g, 2 * (s->mask + 1));
		for (uint64_t i = 0; i <= s->mask; i++)
			if (s->flags[i])
				*kset_slot(&g, s->keys[i]) = s->flags[i];
		g.n = s->n;
		g.evicted = s->evicted;
		free(s->keys);
		free(s->flags);
		*s = g;
	}
	uint8_t *f = kset_slot(s, key);
	if (!*f)
		s->n++;
	if (flag == KS_EVICTED && !(*f & KS_EVICTED))
		s->evicted++;
	*f |= KS_SEEN | flag;
}

static void kset_free(struct kset *s)
{
	free(s->keys);
	free(s->flags);
}

struct trace_info {
	uint64_t records, evictions, misses, distinct, distinct_evicted;
};

static void trace_scan(struct trace *t, struct trace_info *ti)
{
	struct kset s;
	uint32_t op;
	uint64_t key;
	memset(ti, 0, sizeof(*ti));
	kset_init(&s, 1024);
	while (trace_next(t, &op, &key)) {
		ti->records++;
		if (op == HC_TRACE_EVICT)
			ti->evictions++;
		else
			ti->misses++;
		kset_add(&s, key, op == HC_TRACE_EVICT ? KS_EVICTED : 0);
	}
	ti->distinct = s.n;
	ti->distinct_evicted = s.evicted;
	kset_free(&s);
	trace_rewind(t);
}

/* --- estimator helpers ---------------------------------------------------- */

/* The sampled curve's level correction (--adjust); the daemon's is scale. */
static int adjust = HC_MRC_ADJ_SCALE;

static struct hc_mrc *mrc_new(int sampled, double rate, uint64_t sample_max, uint64_t max_tracked,
			      uint32_t bucket)
{
	struct hc_mrc_config cfg = { .sampled = sampled, .rate = rate, .sample_max = sample_max,
				     .max_tracked = max_tracked ? max_tracked : 1,
				     .bucket_blocks = bucket, .adjust = adjust };
	struct hc_mrc *m;
	int rc = hc_mrc_create(&cfg, &m);
	if (rc)
		hc_cli_die("hc_mrc_create (sampled %d, rate %g, sample_max %" PRIu64
			   ", max_tracked %" PRIu64 "): %s",
			   sampled, rate, sample_max, max_tracked, strerror(-rc));
	return m;
}

static inline void mrc_feed(struct hc_mrc *m, uint32_t op, uint64_t key)
{
	if (op == HC_TRACE_EVICT)
		hc_mrc_evict(m, key);
	else
		hc_mrc_miss(m, key);
}

/* Points c = 0, step, ... <= max: returns their number, the curve in *out. */
static size_t mrc_points(const struct hc_mrc *m, uint64_t step, uint64_t max, double **out)
{
	size_t n = (size_t)(max / step) + 1;
	*out = xcalloc(n, sizeof(**out));
	size_t got = hc_mrc_curve(m, step, n, *out);
	if (got != n)
		hc_cli_die("hc_mrc_curve: %zu points of %zu (step %" PRIu64 ", max %" PRIu64 ")",
			   got, n, step, max);
	return n;
}

struct curve_opts {
	int sampled;
	double rate;
	uint64_t sample_max, step, max, salt, samples;
	int csv;
};

static uint64_t default_step(uint64_t max, uint64_t points)
{
	uint64_t s = (max + points - 1) / points;
	return s ? s : 1;
}

static double ratio(double misses, uint64_t total)
{
	return total ? misses / (double)total : 0;
}

/* --- gen ------------------------------------------------------------------ */

static int cmd_gen(int argc, char **argv)
{
	static const struct option lo[] = {
		GEN_LONGOPTS,
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, OPT_HELP },
		{ 0 },
	};
	struct gen_opts o;
	const char *out = NULL;
	int c;
	gen_defaults(&o);
	while ((c = getopt_long(argc, argv, "o:", lo, NULL)) != -1) {
		if (gen_option(&o, c, optarg))
			continue;
		if (c == 'o')
			out = optarg;
		else if (c == OPT_HELP) {
			usage(stdout);
			return 0;
		} else
			bad_option("gen", argv);
	}
	if (optind != argc)
		hc_cli_die_usage("gen: unexpected argument '%s'", argv[optind]);
	gen_check(&o);
	if (!out)
		hc_cli_die_usage("gen: -o TRACE is required");

	static struct trace_writer w;
	w.path = out;
	w.f = fopen(out, "wb");
	if (!w.f)
		hc_cli_die("%s: %s", out, strerror(errno));
	struct hc_trace_header h;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, HC_TRACE_MAGIC, sizeof(h.magic));
	h.version = htole32(HC_TRACE_VERSION);
	h.record_size = htole32(sizeof(struct hc_trace_rec));
	h.start_ns = htole64(0);
	strcpy(h.domain, "synthetic");
	if (fwrite(&h, sizeof(h), 1, w.f) != 1)
		hc_cli_die("%s: write: %s", out, strerror(errno));

	struct sim s;
	struct sink k = { .event = tw_event, .ctx = &w };
	sim_init(&s, &o);
	for (uint64_t i = 0; i < o.accesses; i++)
		sim_step(&s, &k);
	tw_flush(&w);
	if (fclose(w.f))
		hc_cli_die("%s: write: %s", out, strerror(errno));
	printf("gen pattern=%s pages=%" PRIu64 " guest=%" PRIu64 " accesses=%" PRIu64
	       " seed=%" PRIu64 " misses=%" PRIu64 " evictions=%" PRIu64 " records=%" PRIu64
	       " miss_ratio=%.6f order=%s\n",
	       hc_gen_pattern_name(o.pattern), o.pages, o.guest, o.accesses, o.seed, s.misses,
	       s.evictions, w.records, (double)s.misses / (double)o.accesses,
	       o.evict_first ? "evict-first" : "miss-first");
	sim_free(&s);
	return 0;
}

/* --- curve and compare ---------------------------------------------------- */

static int curve_args(int argc, char **argv, const char *cmd, struct curve_opts *co,
		      const char **path)
{
	static const struct option lo[] = {
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "sample-max", required_argument, NULL, OPT_SAMPLE_MAX },
		{ "adjust", required_argument, NULL, OPT_ADJUST },
		{ "salt", required_argument, NULL, OPT_SALT },
		{ "samples", required_argument, NULL, OPT_SAMPLES },
		{ "step", required_argument, NULL, OPT_STEP },
		{ "max", required_argument, NULL, OPT_MAX },
		{ "csv", no_argument, NULL, OPT_CSV },
		{ "help", no_argument, NULL, OPT_HELP },
		{ 0 },
	};
	int c, compare = !strcmp(cmd, "compare");
	co->rate = compare ? 0.01 : 0;
	co->sampled = compare;
	co->samples = 1;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case OPT_MODE:
			if (compare)
				hc_cli_die_usage("compare: --mode is not an option (exact vs shards)");
			if (!strcmp(optarg, "exact"))
				co->sampled = 0;
			else if (!strcmp(optarg, "shards"))
				co->sampled = 1;
			else
				hc_cli_die_usage("--mode: exact or shards, not '%s'", optarg);
			break;
		case OPT_RATE:
			co->rate = hc_cli_parse_double("--rate", optarg);
			if (!(co->rate > 0 && co->rate <= 1))
				hc_cli_die_usage("--rate must be in (0, 1]");
			break;
		case OPT_SAMPLE_MAX:
			co->sample_max = hc_cli_parse_u64("--sample-max", optarg);
			if (co->sample_max && co->sample_max < 64)
				hc_cli_die_usage("--sample-max must be 0 or at least 64");
			break;
		case OPT_ADJUST:
			if (!strcmp(optarg, "scale"))
				adjust = HC_MRC_ADJ_SCALE;
			else if (!strcmp(optarg, "first"))
				adjust = HC_MRC_ADJ_FIRST;
			else
				hc_cli_die_usage("--adjust: scale or first, not '%s'", optarg);
			break;
		case OPT_SALT:
			if (!compare)
				hc_cli_die_usage("%s: --salt is a compare option", cmd);
			co->salt = hc_cli_parse_u64("--salt", optarg);
			break;
		case OPT_SAMPLES:
			if (!compare)
				hc_cli_die_usage("%s: --samples is a compare option", cmd);
			co->samples = hc_cli_parse_u64("--samples", optarg);
			if (!co->samples || co->samples > 64)
				hc_cli_die_usage("--samples must be in 1..64");
			break;
		case OPT_STEP:
			co->step = hc_cli_parse_u64("--step", optarg);
			if (!co->step)
				hc_cli_die_usage("--step must be positive");
			break;
		case OPT_MAX:
			co->max = hc_cli_parse_u64("--max", optarg);
			break;
		case OPT_CSV:
			co->csv = 1;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		default:
			bad_option(cmd, argv);
		}
	}
	if (optind + 1 != argc)
		hc_cli_die_usage("%s: exactly one TRACE expected", cmd);
	if (co->rate == 0)
		co->rate = co->sampled ? 0.01 : 1;
	if (!co->sampled && (co->sample_max || co->rate != 1))
		hc_cli_die_usage("%s: --rate and --sample-max need --mode shards", cmd);
	*path = argv[optind];
	return 0;
}

static uint64_t curve_range(struct curve_opts *co, const struct trace_info *ti, uint64_t points)
{
	if (!co->max)
		co->max = ti->distinct_evicted ? ti->distinct_evicted : 1;
	if (!co->step)
		co->step = default_step(co->max, points);
	/* exact mode never drops an entry: the stack holds at most every distinct block */
	return HC_MAX(ti->distinct, co->max);
}

static void print_summary(FILE *f, const char *path, const struct trace *t,
			  const struct trace_info *ti)
{
	fprintf(f,
		"# %s: domain %s, %" PRIu64 " records: %" PRIu64 " evictions, %" PRIu64
		" misses; %" PRIu64 " distinct blocks, %" PRIu64 " evicted\n",
		path, t->domain, ti->records, ti->evictions, ti->misses, ti->distinct,
		ti->distinct_evicted);
}

static void print_stats(FILE *f, const char *label, const struct hc_mrc *m)
{
	struct hc_mrc_stats st;
	hc_mrc_stats(m, &st);
	fprintf(f,
		"# %s: cold %.0f (misses of blocks never evicted, or beyond the range), "
		"silent %.0f (re-reads with no eviction between), measured %.0f, rate %g\n",
		label, st.cold, st.silent, st.hist_total, st.rate);
}

static int cmd_curve(int argc, char **argv)
{
	struct curve_opts co = { 0 };
	const char *path;
	curve_args(argc, argv, "curve", &co, &path);
	static struct trace t;
	struct trace_info ti;
	trace_open(&t, path);
	trace_scan(&t, &ti);
	uint64_t max_tracked = curve_range(&co, &ti, 50);
	struct hc_mrc *m = mrc_new(co.sampled, co.rate, co.sample_max, max_tracked, 1);
	uint32_t op;
	uint64_t key;
	while (trace_next(&t, &op, &key))
		mrc_feed(m, op, key);
	trace_close(&t);

	double *pts;
	size_t n = mrc_points(m, co.step, co.max, &pts);
	FILE *info = co.csv ? stderr : stdout;
	print_summary(info, path, &t, &ti);
	fprintf(info, "# mode %s, rate %g, sample_max %" PRIu64 ", max_tracked %" PRIu64 "\n",
		co.sampled ? "shards" : "exact", co.rate, co.sample_max, max_tracked);
	print_stats(info, co.sampled ? "shards" : "exact", m);
	if (co.csv)
		printf("extra_pages,misses,miss_ratio\n");
	else
		printf("%12s %14s %10s\n", "extra_pages", "misses", "miss_ratio");
	for (size_t i = 0; i < n; i++) {
		uint64_t c = i * co.step;
		if (co.csv)
			printf("%" PRIu64 ",%.1f,%.6f\n", c, pts[i], ratio(pts[i], ti.misses));
		else
			printf("%12" PRIu64 " %14.1f %10.6f\n", c, pts[i], ratio(pts[i], ti.misses));
	}
	free(pts);
	hc_mrc_destroy(m);
	return 0;
}

static uint64_t salted(uint64_t key, uint64_t salt)
{
	/*
	 * A bijection of the keys, so the exact curve is unchanged; salts
	 * move the keys to disjoint ranges first (a plain key ^ salt would
	 * permute the same small block numbers: the same sample again).
	 */
	return salt ? hc_mix64(key + salt * 0x9E3779B97F4A7C15ull) : key;
}

static int cmd_compare(int argc, char **argv)
{
	struct curve_opts co = { 0 };
	const char *path;
	curve_args(argc, argv, "compare", &co, &path);
	static struct trace t;
	struct trace_info ti;
	trace_open(&t, path);
	trace_scan(&t, &ti);
	uint64_t want_max = co.max, want_step = co.step;
	uint64_t max_tracked = curve_range(&co, &ti, 200);
	uint64_t k = co.samples;
	struct hc_mrc *ex = mrc_new(0, 1, 0, max_tracked, 1);
	struct hc_mrc **sh = xcalloc(k, sizeof(*sh));
	for (uint64_t j = 0; j < k; j++)
		sh[j] = mrc_new(1, co.rate, co.sample_max, max_tracked, 1);
	uint32_t op;
	uint64_t key;
	while (trace_next(&t, &op, &key)) {
		mrc_feed(ex, op, key);
		for (uint64_t j = 0; j < k; j++)
			mrc_feed(sh[j], op, salted(key, co.salt + j));
	}
	trace_close(&t);

	if (!want_max) {
		/*
		 * Where the exact curve flattens: beyond, both curves are flat
		 * and a long tail would only dilute the mean error.
		 */
		double *all;
		size_t na = mrc_points(ex, 1, max_tracked, &all);
		uint64_t flat = na - 1;
		while (flat && all[flat - 1] == all[na - 1])
			flat--;
		co.max = flat ? flat : 1;
		free(all);
		if (!want_step)
			co.step = default_step(co.max, 200);
	}
	double *pe;
	size_t n = mrc_points(ex, co.step, co.max, &pe);
	FILE *info = co.csv ? stderr : stdout;
	print_summary(info, path, &t, &ti);
	print_stats(info, "exact", ex);
	if (co.csv)
		printf("salt,extra_pages,exact,shards,abs_err\n");
	double mae_sum = 0, mae_max = 0, err_max = 0;
	for (uint64_t j = 0; j < k; j++) {
		double *ps;
		mrc_points(sh[j], co.step, co.max, &ps);
		struct hc_mrc_stats st;
		hc_mrc_stats(sh[j], &st);
		double sum = 0, worst = 0;
		uint64_t worst_c = 0;
		for (size_t i = 0; i < n; i++) {
			double re = ratio(pe[i], ti.misses), rs = ratio(ps[i], ti.misses);
			double e = re > rs ? re - rs : rs - re;
			sum += e;
			if (e > worst) {
				worst = e;
				worst_c = i * co.step;
			}
			if (co.csv)
				printf("%" PRIu64 ",%" PRIu64 ",%.6f,%.6f,%.6f\n", co.salt + j,
				       i * co.step, re, rs, e);
		}
		char label[64];
		snprintf(label, sizeof(label), "shards salt %" PRIu64, co.salt + j);
		print_stats(info, label, sh[j]);
		fprintf(info,
			"compare salt=%" PRIu64 " rate=%g sample_max=%" PRIu64 " final_rate=%g"
			" sampled_blocks=%" PRIu64 " points=%zu step=%" PRIu64 " max=%" PRIu64
			" mae=%.6f max_err=%.6f at=%" PRIu64 "\n",
			co.salt + j, co.rate, co.sample_max, st.rate, st.tracked + st.read_tracked,
			n, co.step, co.max, sum / (double)n, worst, worst_c);
		mae_sum += sum / (double)n;
		mae_max = HC_MAX(mae_max, sum / (double)n);
		err_max = HC_MAX(err_max, worst);
		free(ps);
		hc_mrc_destroy(sh[j]);
	}
	fprintf(info, "compare samples=%" PRIu64 " mae_mean=%.6f mae_max=%.6f max_err=%.6f\n", k,
		mae_sum / (double)k, mae_max, err_max);
	free(pe);
	free(sh);
	hc_mrc_destroy(ex);
	return 0;
}

/* --- lru: Mattson's stack algorithm, independently of mrc.c ---------------- */

/*
 * Stack distance of an access = distinct pages accessed since the previous
 * access of the same page, itself included (1 = re-access of the MRU page);
 * it hits in an LRU memory of M pages iff distance <= M.  A Fenwick tree
 * over access times holds a 1 at each page's latest access, so the distance
 * of an access at time t to a page last accessed at time l is the sum over
 * (l, t) plus one.  O(log N) per access.
 */
struct mattson {
	uint64_t n;		/* tree over times 1..n */
	uint32_t *bit;
	uint32_t *last;		/* per page: time of its latest access, 0 = never */
	uint64_t *hist;		/* [d] accesses at distance d, 1..pages */
	uint64_t cold;
};

static void mt_add(struct mattson *mt, uint64_t i, uint32_t d)
{
	for (; i <= mt->n; i += i & (~i + 1))
		mt->bit[i] += d;
}

static uint64_t mt_sum(const struct mattson *mt, uint64_t i)
{
	uint64_t s = 0;
	for (; i; i &= i - 1)
		s += mt->bit[i];
	return s;
}

static void mt_access(void *ctx, uint64_t t0, uint64_t page)
{
	struct mattson *mt = ctx;
	uint64_t t = t0 + 1, l = mt->last[page];
	if (!l) {
		mt->cold++;
	} else {
		mt->hist[mt_sum(mt, t - 1) - mt_sum(mt, l) + 1]++;
		mt_add(mt, l, (uint32_t)-1);
	}
	mt_add(mt, t, 1);
	mt->last[page] = (uint32_t)t;
}

static void mrc_event(void *ctx, uint64_t t, uint32_t op, uint64_t block)
{
	mrc_feed(ctx, op, HC_MRC_KEY(0, block));
}

struct both {
	struct mattson *mt;
	struct hc_mrc *m;
};

static void both_access(void *ctx, uint64_t t, uint64_t page)
{
	mt_access(((struct both *)ctx)->mt, t, page);
}

static void both_event(void *ctx, uint64_t t, uint32_t op, uint64_t block)
{
	mrc_event(((struct both *)ctx)->m, t, op, block);
}

static int cmd_lru(int argc, char **argv)
{
	static const struct option lo[] = {
		GEN_LONGOPTS,
		{ "step", required_argument, NULL, OPT_STEP },
		{ "max", required_argument, NULL, OPT_MAX },
		{ "csv", no_argument, NULL, OPT_CSV },
		{ "help", no_argument, NULL, OPT_HELP },
		{ 0 },
	};
	struct gen_opts o;
	uint64_t step = 0, max = 0;
	int csv = 0, c;
	gen_defaults(&o);
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (gen_option(&o, c, optarg))
			continue;
		switch (c) {
		case OPT_STEP:
			step = hc_cli_parse_u64("--step", optarg);
			if (!step)
				hc_cli_die_usage("--step must be positive");
			break;
		case OPT_MAX:
			max = hc_cli_parse_u64("--max", optarg);
			break;
		case OPT_CSV:
			csv = 1;
			break;
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			bad_option("lru", argv);
		}
	}
	if (optind != argc)
		hc_cli_die_usage("lru: unexpected argument '%s'", argv[optind]);
	gen_check(&o);
	uint64_t w = o.pages, g = o.guest;
	if (!max || max > w - g)
		max = w - g;	/* beyond, every miss is cold */
	if (!step)
		step = default_step(max, 50);

	struct mattson mt = { .n = o.accesses };
	mt.bit = xcalloc(o.accesses + 1, sizeof(*mt.bit));
	mt.last = xcalloc(w, sizeof(*mt.last));
	mt.hist = xcalloc(w + 1, sizeof(*mt.hist));
	struct both b = { .mt = &mt, .m = mrc_new(0, 1, 0, w, 1) };
	struct sink k = { .event = both_event, .access = both_access, .ctx = &b };
	struct sim s;
	sim_init(&s, &o);
	for (uint64_t i = 0; i < o.accesses; i++)
		sim_step(&s, &k);

	/* LRU misses at M pages: cold + accesses at distance > M; tail[d] = sum over > d */
	uint64_t *tail = xcalloc(w + 1, sizeof(*tail));
	for (uint64_t d = w; d-- > 0;)
		tail[d] = tail[d + 1] + mt.hist[d + 1];
	if (mt.cold + tail[g] != s.misses)
		hc_cli_die("lru: the simulated guest missed %" PRIu64
			   " times, Mattson says %" PRIu64 " at %" PRIu64 " pages",
			   s.misses, mt.cold + tail[g], g);

	/* the eviction-stack curve at every c in [0, max] */
	double *pts;
	size_t n = mrc_points(b.m, 1, max, &pts);
	double worst = 0, worst_shift = 0;
	uint64_t worst_c = 0, worst_cs = 0;
	for (size_t i = 0; i < n; i++) {
		double lru = (double)(mt.cold + tail[g + i]);
		double e = pts[i] > lru ? pts[i] - lru : lru - pts[i];
		if (e > worst) {
			worst = e;
			worst_c = i;
		}
		if (i) {	/* evict-first: misses(c) = LRU at G + c - 1 */
			double l1 = (double)(mt.cold + tail[g + i - 1]);
			double e1 = pts[i] > l1 ? pts[i] - l1 : l1 - pts[i];
			if (e1 > worst_shift) {
				worst_shift = e1;
				worst_cs = i;
			}
		}
	}
	FILE *info = csv ? stderr : stdout;
	fprintf(info,
		"# lru %s: %" PRIu64 " pages, guest %" PRIu64 ", %" PRIu64
		" accesses, %" PRIu64 " misses (%" PRIu64 " cold), order %s\n",
		hc_gen_pattern_name(o.pattern), w, g, o.accesses, s.misses, mt.cold,
		o.evict_first ? "evict-first" : "miss-first");
	print_stats(info, "eviction stack", b.m);
	if (csv)
		printf("extra_pages,lru_misses,stack_misses,lru_ratio,stack_ratio,diff\n");
	else
		printf("%12s %12s %14s %10s %10s %10s\n", "extra_pages", "lru_misses",
		       "stack_misses", "lru_ratio", "stack_ratio", "diff");
	double na = (double)o.accesses;
	for (size_t i = 0; i < n; i += step) {
		double lru = (double)(mt.cold + tail[g + i]);
		printf(csv ? "%zu,%.0f,%.0f,%.6f,%.6f,%.6f\n"
			   : "%12zu %12.0f %14.0f %10.6f %10.6f %10.6f\n",
		       i, lru, pts[i], lru / na, pts[i] / na, (pts[i] - lru) / na);
	}
	fprintf(info,
		"lru pattern=%s points=%zu max_abs_diff_misses=%.0f at=%" PRIu64
		" max_abs_diff_ratio=%.9f shifted_max_abs_diff_misses=%.0f at=%" PRIu64 "\n",
		hc_gen_pattern_name(o.pattern), n, worst, worst_c, worst / na, worst_shift,
		worst_cs);
	free(pts);
	free(tail);
	hc_mrc_destroy(b.m);
	sim_free(&s);
	free(mt.bit);
	free(mt.last);
	free(mt.hist);
	return 0;
}

/* --- bench ---------------------------------------------------------------- */

struct evbuf {
	uint64_t *ev;		/* block << 1 | op */
	size_t n, cap;
};

static void evbuf_event(void *ctx, uint64_t t, uint32_t op, uint64_t block)
{
	struct evbuf *b = ctx;
	b->ev[b->n++] = HC_MRC_KEY(0, block) << 1 | op;
}

static uint64_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long long size = 0, res = 0;
	if (f) {
		if (fscanf(f, "%llu %llu", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return res * (uint64_t)sysconf(_SC_PAGESIZE);
}

static uint64_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

/*
 * Runs the simulated guest for `warm` accesses feeding m untimed, then
 * `events` events timed in batches (generated untimed into a buffer).
 * Returns the ns per event.
 */
static double bench_feed(struct sim *s, struct hc_mrc *m, struct evbuf *bp, uint64_t warm,
			 uint64_t events)
{
	struct sink direct = { .event = mrc_event, .ctx = m };
	for (uint64_t i = 0; i < warm; i++)
		sim_step(s, &direct);
	struct evbuf b = *bp;
	struct sink k = { .event = evbuf_event, .ctx = &b };
	uint64_t done = 0, ns = 0;
	while (done < events) {
		b.n = 0;
		while (b.n + 2 <= b.cap && done + b.n < events)
			sim_step(s, &k);
		uint64_t t0 = hc_now_ns();
		for (size_t i = 0; i < b.n; i++)
			mrc_feed(m, (uint32_t)(b.ev[i] & 1), b.ev[i] >> 1);
		ns += hc_now_ns() - t0;
		done += b.n;
	}
	return (double)ns / (double)done;
}

static int cmd_bench(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "tracked", required_argument, NULL, OPT_TRACKED },
		{ "events", required_argument, NULL, OPT_EVENTS },
		{ "footprints", required_argument, NULL, OPT_FOOTPRINTS },
		{ "sample-max", required_argument, NULL, OPT_SAMPLE_MAX },
		{ "rate", required_argument, NULL, OPT_RATE },
		{ "seed", required_argument, NULL, OPT_SEED },
		{ "help", no_argument, NULL, OPT_HELP },
		{ 0 },
	};
	uint64_t tracked = 1000000, events = 4000000, sample_max = 8192, seed = 1;
	uint64_t fp[16];
	size_t nfp = 3;
	double rate = 0.01;
	int c;
	fp[0] = 100000;
	fp[1] = 1000000;
	fp[2] = 10000000;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case OPT_TRACKED:
			tracked = hc_cli_parse_u64("--tracked", optarg);
			break;
		case OPT_EVENTS:
			events = hc_cli_parse_u64("--events", optarg);
			break;
		case OPT_SAMPLE_MAX:
			sample_max = hc_cli_parse_u64("--sample-max", optarg);
			if (sample_max < 64)
				hc_cli_die_usage("--sample-max must be at least 64");
			break;
		case OPT_RATE:
			rate = hc_cli_parse_double("--rate", optarg);
			if (!(rate > 0 && rate <= 1))
				hc_cli_die_usage("--rate must be in (0, 1]");
			break;
		case OPT_SEED:
			seed = hc_cli_parse_u64("--seed", optarg);
			break;
		case OPT_FOOTPRINTS: {
			char *dup = strdup(optarg), *save = NULL, *tok;
			if (!dup)
				hc_cli_die("out of memory");
			nfp = 0;
			for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
				if (nfp == sizeof(fp) / sizeof(fp[0]))
					hc_cli_die_usage("--footprints: at most 16");
				fp[nfp] = hc_cli_parse_u64("--footprints", tok);
				if (fp[nfp] < 8)
					hc_cli_die_usage("--footprints: at least 8 pages each");
				nfp++;
			}
			free(dup);
			if (!nfp)
				hc_cli_die_usage("--footprints: a comma-separated list of page counts");
			break;
		}
		case OPT_HELP:
			usage(stdout);
			return 0;
		default:
			bad_option("bench", argv);
		}
	}
	if (optind != argc)
		hc_cli_die_usage("bench: unexpected argument '%s'", argv[optind]);
	if (tracked < 8 || !events)
		hc_cli_die_usage("bench: --tracked at least 8, --events positive");
	/*
	 * A fixed mmap threshold: every large array is a fresh mapping, so the
	 * RSS growth shows what the estimator touches (a dynamic threshold
	 * would recycle the previous run's freed heap instead).
	 */
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
	struct evbuf b = { .cap = 1u << 20 };
	b.ev = xcalloc(b.cap, sizeof(*b.ev));
	touch(b.ev, b.cap * sizeof(*b.ev));

	/*
	 * Exact: uniform accesses over W = 4/3 tracked pages with a guest of
	 * W/4, so the eviction stack holds about `tracked` blocks and the
	 * guest's pages are READ entries; warmed up for 4 W accesses.
	 */
	struct gen_opts o;
	gen_defaults(&o);
	o.pattern = HC_GEN_UNIFORM;
	o.seed = seed;
	o.pages = tracked * 4 / 3;
	o.guest = o.pages / 4;
	printf("# exact mode, uniform, %" PRIu64 " pages, guest %" PRIu64
	       ", %" PRIu64 " timed events after %" PRIu64 " warm-up accesses\n",
	       o.pages, o.guest, events, 4 * o.pages);
	printf("%-8s %12s %10s %10s %10s %14s %12s\n", "mode", "max_tracked", "stack", "read",
	       "ns/event", "alloc_bytes", "bytes/page");
	for (int sampled = 0; sampled < 2; sampled++) {
		struct sim s;
		sim_init(&s, &o);
		uint64_t h0 = heap_bytes();
		struct hc_mrc *m = mrc_new(sampled, sampled ? rate : 1, 0, o.pages, 1);
		uint64_t alloc = heap_bytes() - h0;
		double ns = bench_feed(&s, m, &b, 4 * o.pages, events);
		struct hc_mrc_stats st;
		hc_mrc_stats(m, &st);
		printf("%-8s %12" PRIu64 " %10" PRIu64 " %10" PRIu64 " %10.1f %14" PRIu64
		       " %12.1f\n",
		       sampled ? "shards" : "exact", o.pages, st.tracked, st.read_tracked, ns, alloc,
		       (double)alloc / (double)o.pages);
		hc_mrc_destroy(m);
		sim_free(&s);
	}

	/*
	 * SHARDS fixed size: the same workload shape at growing footprints;
	 * max_tracked = W and 1024 histogram buckets (the curve's resolution is
	 * relative), so only sample_max sets the memory.
	 */
	printf("\n# shards fixed size: sample_max %" PRIu64 ", initial rate %g, uniform,"
	       " guest W/4, 3 W accesses, 1024 buckets\n",
	       sample_max, rate);
	printf("%12s %12s %10s %10s %14s %14s %10s\n", "footprint", "bucket", "final_rate",
	       "samples", "alloc_bytes", "rss_delta", "ns/event");
	for (size_t i = 0; i < nfp; i++) {
		o.pages = fp[i];
		o.guest = o.pages / 4;
		struct sim s;
		sim_init(&s, &o);
		uint32_t bucket = (uint32_t)HC_MAX(1, o.pages / 1024);
		uint64_t r0 = rss_bytes(), h0 = heap_bytes();
		struct hc_mrc *m = mrc_new(1, rate, sample_max, o.pages, bucket);
		uint64_t alloc = heap_bytes() - h0;
		double ns = bench_feed(&s, m, &b, o.pages, 2 * o.pages);
		uint64_t r1 = rss_bytes();
		struct hc_mrc_stats st;
		hc_mrc_stats(m, &st);
		printf("%12" PRIu64 " %12" PRIu32 " %10g %10" PRIu64 " %14" PRIu64 " %14" PRId64
		       " %10.1f\n",
		       o.pages, bucket, st.rate, st.tracked + st.read_tracked, alloc,
		       (int64_t)(r1 - r0), ns);
		hc_mrc_destroy(m);
		sim_free(&s);
	}
	free(b.ev);
	return 0;
}

int main(int argc, char **argv)
{
	hc_cli_init("hc-mrc");
	if (argc < 2)
		hc_cli_die_usage("a command is required: gen, curve, compare, lru or bench");
	const char *cmd = argv[1];
	if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
	static const struct {
		const char *name;
		int (*fn)(int, char **);
	} cmds[] = {
		{ "gen", cmd_gen },	    { "curve", cmd_curve }, { "compare", cmd_compare },
		{ "lru", cmd_lru },	    { "bench", cmd_bench },
	};
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if (!strcmp(cmd, cmds[i].name)) {
			opterr = 0;	/* our own one-line message */
			optind = 1;
			return cmds[i].fn(argc - 1, argv + 1);
		}
	}
	hc_cli_die_usage("unknown command '%s'", cmd);
}
