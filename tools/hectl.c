// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hectl: the operator's tool for hecache-fs.  Each subcommand is one request
 * of the control protocol (doc/ctl-protocol.md) on BACKING/ctl.sock; the
 * reply is printed as a table, or with --json as the reply object itself.
 * Two subcommands work from the backing directory alone while the daemon is
 * down: map (the volume's entries in the swap-reconcile journal, and
 * SEEK_DATA/SEEK_HOLE on the home file between them) and fsck (superblock,
 * namespace, journal and maps; --repair).  defrag is reserved for
 * reconcile-defrag's online mode.
 * Exit codes: 0 ok, 1 error (from the daemon, or found locally), 2 usage,
 * 3 daemon unreachable.  Any failure ends the process from where it is seen
 * (a short-lived tool: the kernel closes the socket and frees the memory).
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctlclient.h"
#include "journal.h"
#include "hecache/ctl.h"
#include "hecache/errors.h"
#include "hecache/format.h"
#include "log.h"
#include "sb.h"
#include "util.h"

extern char **environ;

enum { X_ERROR = 1, X_USAGE = 2, X_NODAEMON = 3 };

/* Options after the subcommand; a command accepts those in its mask. */
enum {
	OPT_BYTES = 1, OPT_PROM, OPT_KIND, OPT_RANGE, OPT_STEP, OPT_POINTS, OPT_CSV,
	OPT_PLOT, OPT_TOL, OPT_MAX, OPT_APPLY, OPT_JSON, OPT_REPAIR, OPT_POLICY, OPT_RATE, NOPT
};
#define F(o) (1u << (o))

/* In the order of the OPT_* values: option o is sub_options[o - 1]. */
static const struct option sub_options[] = {
	{ "bytes", no_argument, NULL, OPT_BYTES },
	{ "prometheus", no_argument, NULL, OPT_PROM },
	{ "kind", required_argument, NULL, OPT_KIND },
	{ "range", required_argument, NULL, OPT_RANGE },
	{ "step", required_argument, NULL, OPT_STEP },
	{ "points", required_argument, NULL, OPT_POINTS },
	{ "csv", no_argument, NULL, OPT_CSV },
	{ "plot", required_argument, NULL, OPT_PLOT },
	{ "tolerance", required_argument, NULL, OPT_TOL },
	{ "max", required_argument, NULL, OPT_MAX },
	{ "apply", no_argument, NULL, OPT_APPLY },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "repair", no_argument, NULL, OPT_REPAIR },
	{ "policy", required_argument, NULL, OPT_POLICY },
	{ "rate", required_argument, NULL, OPT_RATE },
	{ "help", no_argument, NULL, 'h' },
	{ 0 }
};

/* Per-subcommand help of each option, indexed like sub_options' values. */
static const char *const sub_option_help[NOPT] = {
	[OPT_BYTES] = "--bytes          sizes as integers (bytes)",
	[OPT_PROM] = "--prometheus     Prometheus text exposition format",
	[OPT_KIND] = "--kind KIND      disk, swap or ram (default disk)",
	[OPT_RANGE] = "--range A-B      blocks A (included) to B (excluded); A- to the end",
	[OPT_STEP] = "--step SIZE      distance between curve points (default 4M)",
	[OPT_POINTS] = "--points N       number of curve points (default: up to the ghost reach)",
	[OPT_CSV] = "--csv            CSV lines extra_bytes,memory_bytes,misses",
	[OPT_PLOT] = "--plot FILE.png  plot the curve with gnuplot into FILE.png",
	[OPT_TOL] = "--tolerance T    accepted excess of misses over those at --max (default 0.05)",
	[OPT_MAX] = "--max SIZE       most extra memory considered (default: the ghost reach)",
	[OPT_APPLY] = "--apply          then set the domain's memory to the recommendation",
	[OPT_REPAIR] = "--repair         fix what needs no guess about data, then check again",
	[OPT_POLICY] = "--policy P       home (copy blocks back home) or swap (default home)",
	[OPT_RATE] = "--rate MB        MiB/s written at most, 0 unlimited (default 32)",
};

struct ctx;

struct cmd {
	const char *name, *sub;		/* "volume", "create"; sub NULL for one word */
	const char *synopsis;		/* what follows the name */
	int min, max;			/* positional arguments */
	unsigned opts;			/* F(OPT_*) accepted */
	/* Either run, or build (the request) and show (the reply, 0 or exit code). */
	int (*run)(struct ctx *c);
	struct json_object *(*build)(struct ctx *c);
	int (*show)(struct ctx *c, struct json_object *reply);
	const char *done;		/* what show_done says after the first argument */
	const char *help;
};

struct ctx {
	const char *sock, *backing, *mount;	/* global options */
	int json;
	unsigned set;				/* F(OPT_*) given */
	const char *val[NOPT];			/* their arguments */
	char **arg;				/* positional arguments */
	int narg;
	const struct cmd *cmd;
	const char *group;			/* "volume" while its subcommand is unknown */
	char path[PATH_MAX];			/* the control socket, once found */
	int fd;					/* connection, -1 until connected */
};

/* --- messages and exits --------------------------------------------------- */

static __attribute__((noreturn, format(printf, 2, 3))) void usage_error(const struct ctx *c,
								       const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("hectl: ", stderr);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (c && c->cmd)
		fprintf(stderr, "\ntry hectl %s%s%s --help\n", c->cmd->name, c->cmd->sub ? " " : "",
			c->cmd->sub ? c->cmd->sub : "");
	else if (c && c->group)
		fprintf(stderr, "\ntry hectl %s --help\n", c->group);
	else
		fputs("\ntry hectl --help\n", stderr);
	exit(X_USAGE);
}

static const char *errname(int err)
{
	static const char *const hc[] = { "HC_ECORRUPT", "HC_EVERSION", "HC_ENOTHC", "HC_ELOCKED" };
	if (err > HC_ERROR_BASE && err <= HC_ERROR_LAST)
		return hc[err - HC_ERROR_BASE - 1];
	const char *s = strerrorname_np(err);
	return s ? s : "EIO";
}

/* A reply without its protocol members "v" and "ok". */
static struct json_object *strip(struct json_object *o)
{
	json_object_object_del(o, "v");
	json_object_object_del(o, "ok");
	return o;
}

static void emit(struct json_object *o)
{
	strip(o);
	puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* One line "hectl: MESSAGE" (and with --json the error object) and exit. */
static __attribute__((noreturn, format(printf, 4, 5))) void fail(const struct ctx *c, int code,
								 int err, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "hectl: %s\n", msg);
	if (c->json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "error", json_object_new_string(errname(err)));
		json_object_object_add(o, "message", json_object_new_string(msg));
		emit(o);
	}
	exit(code);
}

static void oom(void)
{
	fputs("hectl: out of memory\n", stderr);
	exit(X_ERROR);
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d)
		oom();
	return d;
}

/* --- text formatting: rotating buffers, valid for the next 15 calls ------ */

static char *ring(void)
{
	static char buf[16][1024];
	static unsigned i;
	return buf[i++ % 16];
}

static __attribute__((format(printf, 1, 2))) const char *fmt(const char *f, ...)
{
	char *s = ring();
	va_list ap;
	va_start(ap, f);
	vsnprintf(s, 1024, f, ap);
	va_end(ap);
	return s;
}

static const char *u64s(uint64_t v)
{
	return fmt("%" PRIu64, v);
}

/* A size: "256.0 MiB", or the integer with --bytes. */
static const char *sz(const struct ctx *c, uint64_t bytes)
{
	return c->set & F(OPT_BYTES) ? u64s(bytes) : hc_format_size(bytes, ring(), 1024);
}

static const char *pct(double ratio)
{
	return fmt("%.1f%%", ratio * 100);
}

static const char *duration(uint64_t s)
{
	if (s >= 86400)
		return fmt("%" PRIu64 "d %02u:%02u:%02u", s / 86400, (unsigned)(s % 86400 / 3600),
			   (unsigned)(s % 3600 / 60), (unsigned)(s % 60));
	return fmt("%02u:%02u:%02u", (unsigned)(s / 3600), (unsigned)(s % 3600 / 60),
		   (unsigned)(s % 60));
}

static const char *when(uint64_t epoch)
{
	time_t t = (time_t)epoch;
	struct tm tm;
	char *s = ring();
	if (!localtime_r(&t, &tm) || !strftime(s, 1024, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(s, 1024, "%" PRIu64, epoch);
	return s;
}

/* --- the one table printer ------------------------------------------------- */

/* Cells are copied; align has one 'l' or 'r' per column. */
struct table {
	const char *align;
	size_t nrow, cap;
	char **cell;
};

static void tadd(struct table *t, const char *const *cells)
{
	size_t n = strlen(t->align);
	if (t->nrow == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->cell = realloc(t->cell, t->cap * n * sizeof(*t->cell));
		if (!t->cell)
			oom();
	}
	for (size_t i = 0; i < n; i++)
		t->cell[t->nrow * n + i] = xstrdup(cells[i] ? cells[i] : "-");
	t->nrow++;
}

static void trow(struct table *t, ...)
{
	const char *cells[16];
	size_t n = strlen(t->align);
	va_list ap;
	va_start(ap, t);
	for (size_t i = 0; i < n && i < 16; i++)
		cells[i] = va_arg(ap, const char *);
	va_end(ap);
	tadd(t, cells);
}

/* Prints the rows in aligned columns, two spaces apart, and frees them. */
static void tprint(struct table *t)
{
	size_t n = strlen(t->align), w[16] = { 0 };
	for (size_t r = 0; r < t->nrow; r++)
		for (size_t i = 0; i < n; i++)
			w[i] = HC_MAX(w[i], strlen(t->cell[r * n + i]));
	for (size_t r = 0; r < t->nrow; r++) {
		for (size_t i = 0; i < n; i++) {
			const char *s = t->cell[r * n + i];
			int pad = (int)(w[i] - strlen(s));
			const char *sep = i + 1 < n ? "  " : "\n";
			if (t->align[i] == 'r')
				printf("%*s%s%s", pad, "", s, sep);
			else
				printf("%s%*s%s", s, i + 1 < n ? pad : 0, "", sep);
			free(t->cell[r * n + i]);
		}
	}
	free(t->cell);
	t->cell = NULL;
	t->nrow = t->cap = 0;
}

/* --- JSON access (missing members read as 0, "-" or NULL) ----------------- */

static struct json_object *jget(struct json_object *o, const char *k)
{
	struct json_object *v = NULL;
	if (o)
		json_object_object_get_ex(o, k, &v);
	return v;
}

static uint64_t ju(struct json_object *o, const char *k)
{
	return json_object_get_uint64(jget(o, k));
}

static const char *js(struct json_object *o, const char *k)
{
	const char *s = json_object_get_string(jget(o, k));
	return s ? s : "-";
}

static double jd(struct json_object *o, const char *k)
{
	return json_object_get_double(jget(o, k));
}

/* A count that may be an estimate (a double in sampled mode), rounded. */
static const char *jcount(struct json_object *o, const char *k)
{
	return fmt("%.0f", jd(o, k));
}

static size_t jlen(struct json_object *o, const char *k)
{
	struct json_object *a = jget(o, k);
	return json_object_is_type(a, json_type_array) ? json_object_array_length(a) : 0;
}

static struct json_object *jat(struct json_object *o, const char *k, size_t i)
{
	return json_object_array_get_idx(jget(o, k), i);
}

/* A size member that may be null (M unknown) or 0 (unknown in domain_list). */
static const char *jsz_or_dash(const struct ctx *c, struct json_object *o, const char *k)
{
	uint64_t v = ju(o, k);
	return v ? sz(c, v) : "-";
}

/* --- requests --------------------------------------------------------------- */

static struct json_object *req_new(const char *op)
{
	struct json_object *r = json_object_new_object();
	if (!r)
		oom();
	json_object_object_add(r, "op", json_object_new_string(op));
	return r;
}

static void req_str(struct json_object *r, const char *k, const char *v)
{
	json_object_object_add(r, k, json_object_new_string(v));
}

static void req_u64(struct json_object *r, const char *k, uint64_t v)
{
	json_object_object_add(r, k, json_object_new_uint64(v));
}

static int valid_name(const char *s)
{
	return *s && strlen(s) <= NAME_MAX && strcmp(s, ".") && strcmp(s, "..") && !strchr(s, '/');
}

static const char *name_arg(const struct ctx *c, const char *s)
{
	if (!valid_name(s))
		usage_error(c, "bad domain name '%s'", s);
	return s;
}

/* Splits DOMAIN/VOLUME into dom (a copy) and vol. */
static void split_dv(const struct ctx *c, const char *s, char **dom, const char **vol)
{
	const char *slash = strchr(s, '/');
	if (!slash)
		usage_error(c, "'%s': expected DOMAIN/VOLUME", s);
	*dom = strndup(s, (size_t)(slash - s));
	if (!*dom)
		oom();
	*vol = slash + 1;
	if (!valid_name(*dom) || !valid_name(*vol))
		usage_error(c, "'%s': expected DOMAIN/VOLUME, each a plain name", s);
}

/* A request naming the domain (and, with a '/' wanted, the volume) of arg 0. */
static struct json_object *req_target(struct ctx *c, const char *op, int with_volume)
{
	struct json_object *r = req_new(op);
	if (!with_volume) {
		req_str(r, "domain", name_arg(c, c->arg[0]));
		return r;
	}
	char *dom;
	const char *vol;
	split_dv(c, c->arg[0], &dom, &vol);
	req_str(r, "domain", dom);
	req_str(r, "volume", vol);
	free(dom);
	return r;
}

/* The optional DOMAIN argument of stats, volume list and flush. */
static struct json_object *req_maybe_domain(struct ctx *c, const char *op)
{
	return c->narg ? req_target(c, op, 0) : req_new(op);
}

static uint64_t size_arg(const struct ctx *c, const char *what, const char *s)
{
	uint64_t v;
	if (hc_parse_size(s, &v))
		usage_error(c, "%s: bad size '%s' (examples: 4096, 64K, 256M, 1G)", what, s);
	return v;
}

static uint64_t count_arg(const struct ctx *c, const char *what, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (!*s || *s == '-' || *end || errno)
		usage_error(c, "%s: bad number '%s'", what, s);
	return v;
}

/* --- talking to the daemon ------------------------------------------------- */

/* Finds and connects to the socket: 0, or -errno with msg set. */
static int try_connect(struct ctx *c, char *msg, size_t len)
{
	if (c->fd >= 0)
		return 0;
	if (hc_ctl_find(c->sock, c->backing, c->mount, c->path, sizeof(c->path), msg, len))
		return -ENODEV;
	c->fd = hc_ctl_connect(c->path);
	if (c->fd >= 0)
		return 0;
	int err = c->fd;
	snprintf(msg, len, "cannot connect to %s: %s", c->path, strerror(-err));
	return err;
}

/* Sends req (consumed) and returns the reply; exits on any failure. */
static struct json_object *call(struct ctx *c, struct json_object *req)
{
	char msg[PATH_MAX + 128];
	int err = try_connect(c, msg, sizeof(msg));
	if (err)
		fail(c, X_NODAEMON, -err, "%s", msg);
	struct json_object *reply = NULL;
	err = hc_ctl_call(c->fd, req, &reply);
	json_object_put(req);
	if (err == -EPROTO)
		fail(c, X_ERROR, -err, "%s: the daemon's reply is not a JSON object", c->path);
	if (err)
		fail(c, X_NODAEMON, -err, "%s: %s", c->path, strerror(-err));
	if (!json_object_get_boolean(jget(reply, "ok"))) {
		char text[1024];
		fprintf(stderr, "hectl: %s\n", hc_ctl_errtext(reply, text, sizeof(text)));
		if (c->json)
			emit(reply);
		exit(X_ERROR);
	}
	return reply;
}

/* Prints the reply (as JSON, or with show) and frees it. */
static int present(struct ctx *c, struct json_object *reply,
		   int (*show)(struct ctx *, struct json_object *))
{
	int rc = 0;
	if (c->json)
		emit(reply);
	else
		rc = show(c, reply);
	json_object_put(reply);
	return rc;
}

static int run_request(struct ctx *c)
{
	return present(c, call(c, c->cmd->build(c)), c->cmd->show);
}

/* "vm1/disk: created with size 10G" */
static int show_done(struct ctx *c, struct json_object *reply)
{
	printf("%s: %s", c->arg[0], c->cmd->done);
	for (int i = 1; i < c->narg; i++)
		printf(" %s", c->arg[i]);
	putchar('\n');
	return 0;
}

/* --- status ------------------------------------------------------------------ */

static struct json_object *build_status(struct ctx *c)
{
	return req_new("status");
}

static const char *blocks_text(const struct ctx *c, uint64_t blocks)
{
	return fmt("%" PRIu64 " blocks (%s)", blocks, sz(c, blocks * HC_BLOCK_SIZE));
}

static int show_status(struct ctx *c, struct json_object *r)
{
	struct json_object *cache = jget(r, "cache"), *mrc = jget(r, "mrc");
	struct table t = { .align = "ll" };
	trow(&t, "version", fmt("%s (protocol %" PRIu64 ")", js(r, "version"), ju(r, "protocol")));
	trow(&t, "pid", u64s(ju(r, "pid")));
	trow(&t, "backing", js(r, "backing"));
	trow(&t, "mountpoint", js(r, "mountpoint"));
	trow(&t, "uptime", duration(ju(r, "uptime_s")));
	trow(&t, "io engine",
	     jget(r, "io_inline_reads")
		     ? fmt("%s (%" PRIu64 " reads run inline)", js(r, "io_engine"), ju(r, "io_inline_reads"))
		     : js(r, "io_engine"));
	trow(&t, "write policy",
	     json_object_get_boolean(jget(r, "writethrough")) ? "write-through" : "write-back");
	trow(&t, "cache", blocks_text(c, ju(cache, "blocks")));
	trow(&t, "cached", blocks_text(c, ju(cache, "cached_blocks")));
	trow(&t, "dirty", blocks_text(c, ju(cache, "dirty_blocks")));
	if (jget(cache, "taken_blocks"))
		trow(&t, "of which taken", fmt("%s (read back, not yet written)",
					       blocks_text(c, ju(cache, "taken_blocks"))));
	if (jget(cache, "writeahead_blocks"))
		trow(&t, "write-ahead", fmt("%s (written back early below this)",
					    blocks_text(c, ju(cache, "writeahead_blocks"))));
	trow(&t, "mrc", fmt("%s, ghost reach %s", js(mrc, "mode"), sz(c, ju(mrc, "ghost_bytes"))));
	trow(&t, "domains", u64s(ju(r, "domains")));
	trow(&t, "volumes", u64s(ju(r, "volumes")));
	trow(&t, "agents", u64s(ju(r, "agents")));
	struct json_object *rq = jget(r, "fuse_requests");
	if (rq)
		trow(&t, "FUSE requests",
		     fmt("%" PRIu64 " (read %" PRIu64 ", write %" PRIu64 ", copy_file_range %" PRIu64
			 ", getxattr %" PRIu64 ", other %" PRIu64 ")",
			 ju(rq, "total"), ju(rq, "read"), ju(rq, "write"), ju(rq, "copy_file_range"),
			 ju(rq, "getxattr"),
			 ju(rq, "total") - ju(rq, "read") - ju(rq, "write") -
				 ju(rq, "copy_file_range") - ju(rq, "getxattr")));
	struct json_object *kp = jget(r, "fuse_killpriv_v2");
	if (kp)
		trow(&t, "privilege killing",
		     json_object_get_boolean(kp)
			     ? "by hecache-fs (no getxattr before copy_file_range or fallocate)"
			     : "by the kernel (a getxattr before each copy_file_range and fallocate)");
	if (jget(r, "fuse_uring_queues")) {
		uint64_t nq = ju(r, "fuse_uring_queues");
		trow(&t, "requests through",
		     nq ? fmt("io_uring, %" PRIu64 " queues (one per CPU), %" PRIu64 " answered",
			      nq, ju(r, "fuse_uring_replies"))
			: "/dev/fuse");
	}
	tprint(&t);
	return 0;
}

/* --- stats ------------------------------------------------------------------- */

/* kind: 'c' counter (blocks), 'b' counter (bytes), 'g' gauge (blocks), 'r' ratio */
static const struct counter {
	const char *key, *head, *help;
	char kind;
} counters[] = {
	{ "hits", "HITS", "Guest reads served from the cache (blocks).", 'c' },
	{ "misses", "MISSES", "Guest reads served from storage (blocks).", 'c' },
	{ "hit_ratio", "HIT%", "hits / (hits + misses), 0 when none.", 'r' },
	{ "admissions", "ADMITTED", "Blocks that entered the cache.", 'c' },
	{ "writebacks", "WRITEBACKS", "Blocks written back to storage.", 'c' },
	{ "discards", "DISCARDS", "Blocks discarded.", 'c' },
	{ "read_bytes", "READ", "Bytes read from storage.", 'b' },
	{ "written_bytes", "WRITTEN", "Bytes written to storage.", 'b' },
	{ "zero_blocks", "ZERO", "Written-back blocks of zeros, stored as ZERO entries.", 'c' },
	{ "dedup_blocks", "DEDUP", "Written-back blocks shared with a stored identical block.", 'c' },
	{ "cow_blocks", "COW", "Written-back blocks copied on write to overflow.dat.", 'c' },
	{ "ref_blocks", "REFS", "Blocks copy_file_range'd as references.", 'c' },
	{ "cached_blocks", "CACHED", "Blocks in the cache.", 'g' },
	{ "dirty_blocks", "DIRTY", "Dirty blocks in the cache.", 'g' },
};
#define NCOUNTERS (sizeof(counters) / sizeof(counters[0]))

static struct json_object *build_stats(struct ctx *c)
{
	if (c->json && (c->set & F(OPT_PROM)))
		usage_error(c, "--json and --prometheus exclude each other");
	return req_maybe_domain(c, "stats");
}

static const char *counter_text(const struct ctx *c, const struct counter *k,
				struct json_object *o)
{
	switch (k->kind) {
	case 'r':
		return pct(jd(o, k->key));
	case 'b':
		return sz(c, ju(o, k->key));
	case 'g':
		return sz(c, ju(o, k->key) * HC_BLOCK_SIZE);
	default:
		return u64s(ju(o, k->key));
	}
}

static void stats_row(const struct ctx *c, struct table *t, const char *name,
		      struct json_object *o)
{
	const char *cells[1 + NCOUNTERS] = { name };
	for (size_t i = 0; i < NCOUNTERS; i++)
		cells[1 + i] = o ? counter_text(c, &counters[i], o) : counters[i].head;
	tadd(t, cells);
}

/* A label value with \, " and newline escaped (Prometheus text format). */
static const char *label_escape(const char *s)
{
	char *d = ring(), *p = d;
	for (; *s && p < d + 1020; s++) {
		if (*s == '\\' || *s == '"' || *s == '\n')
			*p++ = '\\';
		*p++ = *s == '\n' ? 'n' : *s;
	}
	*p = 0;
	return d;
}

static const char *prom_value(const struct counter *k, struct json_object *o)
{
	if (k->kind == 'r')
		return fmt("%.6g", jd(o, k->key));
	return u64s(ju(o, k->key));
}

static void show_prometheus(struct json_object *r)
{
	for (size_t i = 0; i < NCOUNTERS; i++) {
		const struct counter *k = &counters[i];
		int counter = k->kind == 'c' || k->kind == 'b';
		char name[64];
		snprintf(name, sizeof(name), "hecache_%s%s", k->key, counter ? "_total" : "");
		printf("# HELP %s %s\n# TYPE %s %s\n", name, k->help, name,
		       counter ? "counter" : "gauge");
		for (size_t d = 0; d < jlen(r, "domains"); d++) {
			struct json_object *o = jat(r, "domains", d);
			printf("%s{domain=\"%s\"} %s\n", name, label_escape(js(o, "name")),
			       prom_value(k, o));
		}
		printf("%s %s\n", name, prom_value(k, jget(r, "total")));
	}
}

static int show_stats(struct ctx *c, struct json_object *r)
{
	if (c->set & F(OPT_PROM)) {
		show_prometheus(r);
		return 0;
	}
	struct table t = { .align = "lrrrrrrrrrr" };
	stats_row(c, &t, "DOMAIN", NULL);
	for (size_t d = 0; d < jlen(r, "domains"); d++)
		stats_row(c, &t, js(jat(r, "domains", d), "name"), jat(r, "domains", d));
	stats_row(c, &t, "total", jget(r, "total"));
	tprint(&t);
	return 0;
}

/* --- volumes and domains ------------------------------------------------------ */

static struct json_object *build_volume_list(struct ctx *c)
{
	return req_maybe_domain(c, "volume_list");
}

static int show_volume_list(struct ctx *c, struct json_object *r)
{
	struct table t = { .align = "lllrrr" };
	trow(&t, "DOMAIN", "VOLUME", "KIND", "SIZE", "ALLOCATED", "OPEN");
	for (size_t i = 0; i < jlen(r, "volumes"); i++) {
		struct json_object *v = jat(r, "volumes", i);
		trow(&t, js(v, "domain"), js(v, "name"), js(v, "kind"), sz(c, ju(v, "size")),
		     sz(c, ju(v, "allocated_bytes")), u64s(ju(v, "open")));
	}
	tprint(&t);
	return 0;
}

static const char *kind_arg(const struct ctx *c, const char *s)
{
	if (strcmp(s, "disk") && strcmp(s, "swap") && strcmp(s, "ram"))
		usage_error(c, "bad kind '%s' (disk, swap or ram)", s);
	return s;
}

static struct json_object *build_volume_create(struct ctx *c)
{
	struct json_object *r = req_target(c, "volume_create", 1);
	req_u64(r, "size", size_arg(c, "SIZE", c->arg[1]));
	if (c->set & F(OPT_KIND))
		req_str(r, "kind", kind_arg(c, c->val[OPT_KIND]));
	return r;
}

static struct json_object *build_volume_resize(struct ctx *c)
{
	struct json_object *r = req_target(c, "volume_resize", 1);
	req_u64(r, "size", size_arg(c, "SIZE", c->arg[1]));
	return r;
}

static struct json_object *build_volume_delete(struct ctx *c)
{
	return req_target(c, "volume_delete", 1);
}

static struct json_object *build_volume_set_kind(struct ctx *c)
{
	struct json_object *r = req_target(c, "volume_set_kind", 1);
	req_str(r, "kind", kind_arg(c, c->arg[1]));
	return r;
}

static struct json_object *build_domain_list(struct ctx *c)
{
	return req_new("domain_list");
}

static int show_domain_list(struct ctx *c, struct json_object *r)
{
	struct table t = { .align = "lrrllr" };
	trow(&t, "DOMAIN", "VOLUMES", "MEMORY", "SET BY", "AGENT", "SWAP USED");
	for (size_t i = 0; i < jlen(r, "domains"); i++) {
		struct json_object *d = jat(r, "domains", i), *rep = jget(d, "agent_report");
		trow(&t, js(d, "name"), u64s(ju(d, "volumes")), jsz_or_dash(c, d, "memory_bytes"),
		     js(d, "memory_source"),
		     json_object_get_boolean(jget(d, "agent")) ? "connected" : "-",
		     jget(rep, "swap_used_bytes") ? sz(c, ju(rep, "swap_used_bytes")) : "-");
	}
	tprint(&t);
	return 0;
}

static struct json_object *build_domain_create(struct ctx *c)
{
	return req_target(c, "domain_create", 0);
}

static struct json_object *build_set_memory(struct ctx *c)
{
	struct json_object *r = req_target(c, "domain_set_memory", 0);
	req_u64(r, "bytes", size_arg(c, "SIZE", c->arg[1]));
	return r;
}

static const char *set_memory_text(const struct ctx *c, struct json_object *r)
{
	return fmt("memory %s, %s", sz(c, ju(r, "memory_bytes")),
		   json_object_get_boolean(jget(r, "sent_to_agent")) ? "sent to its agent"
								     : "no agent connected");
}

static int show_set_memory(struct ctx *c, struct json_object *r)
{
	printf("%s: %s\n", c->arg[0], set_memory_text(c, r));
	return 0;
}

/* --- map, online and offline -------------------------------------------------- */

/* --range A-B or A-: start and end (0 = to the end) in blocks. */
static void range_arg(const struct ctx *c, uint64_t *start, uint64_t *end)
{
	const char *s = c->val[OPT_RANGE], *dash = strchr(s, '-');
	if (!dash || dash == s)
		usage_error(c, "--range %s: expected A-B or A- (blocks)", s);
	char *a = strndup(s, (size_t)(dash - s));
	if (!a)
		oom();
	*start = count_arg(c, "--range", a);
	*end = dash[1] ? count_arg(c, "--range", dash + 1) : 0;
	free(a);
	if (*end && *end <= *start)
		usage_error(c, "--range %s: empty range (B is excluded)", s);
}

static struct json_object *build_map(struct ctx *c)
{
	struct json_object *r = req_target(c, "map", 1);
	if (c->set & F(OPT_RANGE)) {
		uint64_t start, end;
		range_arg(c, &start, &end);
		req_u64(r, "start", start);
		if (end)
			req_u64(r, "end", end);
	}
	return r;
}

/* Appends blocks [from, to) of target to the extents, merging with the last. */
static void add_extent(struct json_object *ext, uint64_t from, uint64_t to, const char *target)
{
	if (to <= from)
		return;
	size_t n = json_object_array_length(ext);
	struct json_object *last = n ? json_object_array_get_idx(ext, n - 1) : NULL;
	if (last && !strcmp(js(last, "target"), target) &&
	    ju(last, "start") + ju(last, "count") == from) {
		req_u64(last, "count", ju(last, "count") + to - from);
		return;
	}
	struct json_object *e = json_object_new_object();
	req_u64(e, "start", from);
	req_u64(e, "count", to - from);
	req_str(e, "target", target);
	json_object_array_add(ext, e);
}

/* Extents of blocks [start, end) of the home file fd, of size bytes. */
static int scan_home(int fd, uint64_t size, uint64_t start, uint64_t end, struct json_object *ext)
{
	uint64_t lim = HC_MIN(end * HC_BLOCK_SIZE, size), next = start;
	off_t off = (off_t)(start * HC_BLOCK_SIZE);
	while ((uint64_t)off < lim) {
		off_t data = lseek(fd, off, SEEK_DATA);
		if (data < 0 && errno != ENXIO)
			return -errno;
		if (data < 0 || (uint64_t)data >= lim)
			break;
		off_t hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		uint64_t first = (uint64_t)data / HC_BLOCK_SIZE;
		uint64_t past = HC_MIN(((uint64_t)hole + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE, end);
		add_extent(ext, next, first, "hole");
		add_extent(ext, HC_MAX(first, next), past, "home");
		next = HC_MAX(next, past);
		off = hole;
	}
	add_extent(ext, next, end, "hole");
	return 0;
}

struct vid_find {
	uint32_t vid;
	const char *name;
};

static int match_vid(void *arg, const char *dom, const char *vol, uint32_t vid)
{
	struct vid_find *f = arg;
	if (vid != f->vid)
		return 0;
	f->name = fmt("%s/%s", dom, vol);
	return 1;
}

static void each_home(int rfd, int (*fn)(void *, const char *, const char *, uint32_t), void *arg);

/* DOMAIN/VOLUME of the home file with volume id vid, or "volume#vid". */
static const char *vid_name(int rfd, uint32_t vid)
{
	struct vid_find f = { vid, NULL };
	each_home(rfd, match_vid, &f);
	return f.name ? f.name : fmt("volume#%u", vid);
}

/*
 * Extents of [start, end) of the volume with id vid, its home file fd of
 * size bytes: map entries from the journal (runs of consecutive targets),
 * home/hole between them.
 */
static int scan_mapped(struct ctx *c, struct hc_backing *b, uint32_t vid, int fd,
		       uint64_t size, uint64_t start, uint64_t end, struct json_object *ext)
{
	char msg[PATH_MAX + 256];
	struct hc_journal *j;
	struct hc_journal_opts o = { .name = b->path };
	int err = hc_journal_open(b->dirfd, &o, &j, msg, sizeof(msg));
	if (err)
		fail(c, X_ERROR, -err, "%s", msg);
	struct hc_imap *m;
	err = hc_journal_imap(j, vid, &m);
	uint64_t pos = start, l;
	struct hc_phys p;
	while (!err && hc_imap_next(m, pos, &l, &p) == 0 && l < end) {
		err = scan_home(fd, size, pos, l, ext);
		uint64_t n = 1;
		struct hc_phys q;
		uint64_t l2;
		while (l + n < end && hc_imap_next(m, l + n, &l2, &q) == 0 && l2 == l + n &&
		       q.file == p.file && (hc_phys_is_zero(&p) || q.block == p.block + n))
			n++;
		struct json_object *e = json_object_new_object();
		req_u64(e, "start", l);
		req_u64(e, "count", n);
		if (hc_phys_is_zero(&p)) {
			req_str(e, "target", "zero");
		} else {
			req_str(e, "target", p.file == HC_PHYS_OVERFLOW ? "overflow"
					     : vid_name(b->dirfd, p.file));
			req_u64(e, "target_block", p.block);
			req_u64(e, "refcount", hc_refcount_get(hc_journal_refcount(j), &p));
		}
		json_object_array_add(ext, e);
		pos = l + n;
	}
	if (!err && pos < end)
		err = scan_home(fd, size, pos, end, ext);
	hc_journal_close(j);
	return err;
}

/* The reply map would give, from BACKING/DOMAIN/VOLUME. */
static struct json_object *offline_map(struct ctx *c)
{
	char *dom, path[PATH_MAX];
	const char *vol;
	split_dv(c, c->arg[0], &dom, &vol);
	snprintf(path, sizeof(path), "%s/%s/%s", c->backing, dom, vol);
	free(dom);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		fail(c, X_ERROR, errno, "%s: %s", path, strerror(errno));
	uint64_t size = (uint64_t)st.st_size, blocks = (size + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE;
	uint64_t start = 0, end = 0;
	if (c->set & F(OPT_RANGE))
		range_arg(c, &start, &end);
	end = end ? HC_MIN(end, blocks) : blocks;
	if (start > end)	/* as the daemon answers */
		fail(c, X_ERROR, EINVAL, "start %" PRIu64 " is past end %" PRIu64, start, end);
	struct json_object *r = json_object_new_object(), *ext = json_object_new_array();
	/* With swap-reconcile metadata, the volume's map entries too. */
	char buf[16];
	ssize_t n = fgetxattr(fd, "user.hecache.vid", buf, sizeof(buf) - 1);
	struct stat ms;
	char mp[PATH_MAX], lp[PATH_MAX];
	snprintf(mp, sizeof(mp), "%s/%s", c->backing, HC_CKPT_FILE);
	snprintf(lp, sizeof(lp), "%s/%s", c->backing, HC_JOURNAL_FILE);
	int err;
	if (n > 0 && (stat(mp, &ms) == 0 || stat(lp, &ms) == 0)) {
		char msg[PATH_MAX + 256];
		struct hc_backing *b;
		hc_log_set_level(LOG_ERR);
		err = hc_backing_open(c->backing, 0, &b, msg, sizeof(msg));
		if (err)
			fail(c, X_ERROR, -err, "map: %s%s", msg,
			     err == -HC_ELOCKED ? " (a daemon serves it: ask it, hectl -m)" : "");
		buf[n] = 0;
		err = scan_mapped(c, b, (uint32_t)strtoul(buf, NULL, 10), fd, size, start, end, ext);
		hc_backing_close(b);
	} else {
		err = scan_home(fd, size, start, end, ext);
	}
	close(fd);
	if (err)
		fail(c, X_ERROR, -err, "%s: %s", path, strerror(-err));
	req_u64(r, "size", size);
	json_object_object_add(r, "extents", ext);
	json_object_object_add(r, "offline", json_object_new_boolean(1));
	req_str(r, "home", path);
	return r;
}

static const char *target_text(struct json_object *e)
{
	const char *t = js(e, "target");
	if (!jget(e, "target_block"))
		return t;
	return fmt("%s@%" PRIu64 " (refcount %" PRIu64 ")", t, ju(e, "target_block"),
		   ju(e, "refcount"));
}

static int show_map(struct ctx *c, struct json_object *r)
{
	uint64_t size = ju(r, "size");
	printf("%s: %s, %" PRIu64 " blocks%s%s%s\n", c->arg[0], sz(c, size),
	       (size + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE, jget(r, "offline") ? " (offline: " : "",
	       jget(r, "offline") ? js(r, "home") : "", jget(r, "offline") ? ")" : "");
	struct table t = { .align = "rrrrl" };
	trow(&t, "START", "END", "COUNT", "SIZE", "TARGET");
	for (size_t i = 0; i < jlen(r, "extents"); i++) {
		struct json_object *e = jat(r, "extents", i);
		uint64_t start = ju(e, "start"), count = ju(e, "count");
		trow(&t, u64s(start), u64s(start + count), u64s(count),
		     sz(c, count * HC_BLOCK_SIZE), target_text(e));
	}
	tprint(&t);
	return 0;
}

static int daemon_down(int err)
{
	return err == -ENOENT || err == -ECONNREFUSED;
}

static int run_map(struct ctx *c)
{
	char msg[PATH_MAX + 128];
	int err = try_connect(c, msg, sizeof(msg));
	if (err && c->backing && !c->sock && daemon_down(err))
		return present(c, offline_map(c), show_map);
	return run_request(c);
}

/* --- mrc and recommend ---------------------------------------------------------- */

static struct json_object *build_mrc(struct ctx *c)
{
	struct json_object *r = req_target(c, "mrc", 0);
	if (c->set & F(OPT_STEP))
		req_u64(r, "step", size_arg(c, "--step", c->val[OPT_STEP]));
	if (c->set & F(OPT_POINTS))
		req_u64(r, "points", count_arg(c, "--points", c->val[OPT_POINTS]));
	return r;
}

static void write_csv(FILE *f, struct json_object *r)
{
	fputs("extra_bytes,memory_bytes,misses\n", f);
	for (size_t i = 0; i < jlen(r, "curve"); i++) {
		struct json_object *p = jat(r, "curve", i);
		fprintf(f, "%" PRIu64 ",%s,%s\n", ju(p, "extra_bytes"),
			jget(p, "memory_bytes") ? u64s(ju(p, "memory_bytes")) : "",
			json_object_to_json_string(jget(p, "misses")));
	}
}

/* m(0): the curve's point at c = 0, else the misses seen. */
static double misses_now(struct json_object *r)
{
	for (size_t i = 0; i < jlen(r, "curve"); i++)
		if (ju(jat(r, "curve", i), "extra_bytes") == 0)
			return jd(jat(r, "curve", i), "misses");
	return jd(r, "misses");
}

static int show_mrc(struct ctx *c, struct json_object *r)
{
	if (c->set & F(OPT_CSV)) {
		write_csv(stdout, r);
		return 0;
	}
	if (c->set & F(OPT_PLOT))
		return 0;
	printf("%s: mode %s (rate %g), memory %s\n", js(r, "domain"), js(r, "mode"), jd(r, "rate"),
	       ju(r, "memory_bytes") ? sz(c, ju(r, "memory_bytes")) : "unknown");
	printf("%s misses (%s cold, %s silent), %s evictions, %s blocks tracked\n",
	       jcount(r, "misses"), jcount(r, "cold"), jcount(r, "silent"), jcount(r, "evictions"),
	       jcount(r, "tracked_blocks"));
	double m0 = misses_now(r);
	struct table t = { .align = "rrrr" };
	trow(&t, "EXTRA", "MEMORY", "MISSES", "VS m(0)");
	for (size_t i = 0; i < jlen(r, "curve"); i++) {
		struct json_object *p = jat(r, "curve", i);
		trow(&t, sz(c, ju(p, "extra_bytes")), jsz_or_dash(c, p, "memory_bytes"),
		     jcount(p, "misses"), m0 > 0 ? pct(jd(p, "misses") / m0) : "-");
	}
	tprint(&t);
	return 0;
}

/* A temporary file in $TMPDIR: its name into path, its stream returned. */
static FILE *temp_file(const struct ctx *c, char *path, size_t len, const char *suffix)
{
	const char *dir = getenv("TMPDIR");
	snprintf(path, len, "%s/hectl-XXXXXX%s", dir && *dir ? dir : "/tmp", suffix);
	int fd = mkstemps(path, (int)strlen(suffix));
	FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
	if (!f)
		fail(c, X_ERROR, errno, "%s: %s", path, strerror(errno));
	return f;
}

/* A string for a gnuplot script: single quotes, '' for a quote. */
static void gp_string(FILE *f, const char *s)
{
	fputc('\'', f);
	for (; *s; s++)
		fputs(*s == '\'' ? "''" : (char[]){ *s, 0 }, f);
	fputc('\'', f);
}

static void write_gnuplot(FILE *f, const struct ctx *c, const char *csv, int have_m)
{
	fputs("if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {\n"
	      "  set terminal pngcairo size 900,560\n"
	      "} else {\n"
	      "  set terminal png size 900,560\n"
	      "}\nset output ", f);
	gp_string(f, c->val[OPT_PLOT]);
	fputs("\nset title ", f);
	gp_string(f, fmt("hecache miss-ratio curve of %s", c->arg[0]));
	fprintf(f, "\nset xlabel '%s (MiB)'\nset ylabel 'predicted misses'\n"
		"set datafile separator ','\nset key autotitle columnhead\nset grid\n"
		"set yrange [0:*]\nplot ", have_m ? "memory" : "extra memory");
	gp_string(f, csv);
	fprintf(f, " using ($%d/1048576):3 with linespoints title 'predicted misses'\n",
		have_m ? 2 : 1);
}

/* Runs gnuplot on script; 0, or the error with why filled in. */
static int gnuplot(const char *script, char *why, size_t len)
{
	char prog[] = "gnuplot", *arg = (char *)script;
	char *argv[] = { prog, arg, NULL };
	pid_t pid;
	int err = posix_spawnp(&pid, prog, NULL, NULL, argv, environ), st;
	if (err) {
		snprintf(why, len, "%s", err == ENOENT ? "gnuplot not found: apt-get install "
							 "gnuplot-nox" : strerror(err));
		return err;
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	snprintf(why, len, "gnuplot failed (status %d)", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	return EIO;
}

static void plot(struct ctx *c, struct json_object *r)
{
	char csv[PATH_MAX], script[PATH_MAX], why[256];
	FILE *f = temp_file(c, csv, sizeof(csv), ".csv");
	write_csv(f, r);
	fclose(f);
	f = temp_file(c, script, sizeof(script), ".gp");
	write_gnuplot(f, c, csv, ju(jat(r, "curve", 0), "memory_bytes") != 0);
	fclose(f);
	int err = gnuplot(script, why, sizeof(why));
	unlink(csv);
	unlink(script);
	if (err)
		fail(c, X_ERROR, err, "%s", why);
	if (!c->json && !(c->set & F(OPT_CSV)))
		printf("%s: %zu points plotted into %s\n", c->arg[0], jlen(r, "curve"),
		       c->val[OPT_PLOT]);
}

static int run_mrc(struct ctx *c)
{
	struct json_object *r = call(c, build_mrc(c));
	if (c->set & F(OPT_PLOT))
		plot(c, r);
	return present(c, r, show_mrc);
}

static struct json_object *build_recommend(struct ctx *c)
{
	struct json_object *r = req_target(c, "recommend", 0);
	if (c->set & F(OPT_TOL)) {
		char *end;
		double t = strtod(c->val[OPT_TOL], &end);
		if (*end || end == c->val[OPT_TOL] || !isfinite(t) || t < 0)
			usage_error(c, "--tolerance %s: expected a number >= 0, e.g. 0.05",
				    c->val[OPT_TOL]);
		json_object_object_add(r, "tolerance", json_object_new_double(t));
	}
	if (c->set & F(OPT_MAX))
		req_u64(r, "max", size_arg(c, "--max", c->val[OPT_MAX]));
	if (c->set & F(OPT_STEP))
		req_u64(r, "step", size_arg(c, "--step", c->val[OPT_STEP]));
	return r;
}

static int show_recommend(struct ctx *c, struct json_object *r)
{
	double now = jd(r, "misses_now"), rec = jd(r, "predicted_misses");
	struct table t = { .align = "ll" };
	trow(&t, "domain", c->arg[0]);
	trow(&t, "extra memory", fmt("+%s", sz(c, ju(r, "extra_bytes"))));
	trow(&t, "memory", jget(r, "memory_bytes") ? sz(c, ju(r, "memory_bytes"))
						   : "unknown (hectl domain set-memory)");
	trow(&t, "predicted misses",
	     fmt("%.0f (%s of m(0) = %.0f)", rec, now > 0 ? pct(rec / now) : "-", now));
	trow(&t, "at the max",
	     fmt("+%s: %s misses", sz(c, ju(r, "max_extra_bytes")), jcount(r, "misses_at_max")));
	trow(&t, "tolerance", pct(jd(r, "tolerance")));
	if (jget(r, "applied"))
		trow(&t, "applied", set_memory_text(c, jget(r, "applied")));
	tprint(&t);
	return 0;
}

static int run_recommend(struct ctx *c)
{
	struct json_object *r = call(c, build_recommend(c));
	if (!(c->set & F(OPT_APPLY)))
		return present(c, r, show_recommend);
	if (!jget(r, "memory_bytes"))
		usage_error(c, "recommend --apply: the memory size of %s is unknown; set it first "
			    "with hectl domain set-memory %s SIZE (or run hecache-agent)",
			    c->arg[0], c->arg[0]);
	struct json_object *set = req_target(c, "domain_set_memory", 0);
	req_u64(set, "bytes", ju(r, "memory_bytes"));
	json_object_object_add(r, "applied", strip(call(c, set)));
	return present(c, r, show_recommend);
}

static struct json_object *build_mrc_reset(struct ctx *c)
{
	return req_target(c, "mrc_reset", 0);
}

/* --- trace, flush, cache, defrag ------------------------------------------------- */

/* FILE with its directory made absolute (the daemon has another cwd). */
static void abs_path(const struct ctx *c, const char *file, char *out, size_t len)
{
	char *d = xstrdup(file), *b = xstrdup(file), dir[PATH_MAX];
	const char *base = basename(b);
	if (!strcmp(base, "/") || !strcmp(base, ".") || !strcmp(base, "..") ||
	    file[strlen(file) - 1] == '/')
		usage_error(c, "trace start: '%s' does not name a file", file);
	if (!realpath(dirname(d), dir))
		fail(c, X_ERROR, errno, "%s: %s", file, strerror(errno));
	if ((size_t)snprintf(out, len, "%s/%s", strcmp(dir, "/") ? dir : "", base) >= len)
		fail(c, X_ERROR, ENAMETOOLONG, "%s: %s", file, strerror(ENAMETOOLONG));
	free(d);
	free(b);
}

static struct json_object *build_trace(struct ctx *c)
{
	const char *verb = c->arg[1];
	int start = !strcmp(verb, "start");
	if ((!start && strcmp(verb, "stop")) || c->narg != (start ? 3 : 2))
		usage_error(c, "trace: expected DOMAIN start FILE or DOMAIN stop");
	struct json_object *r = req_target(c, start ? "trace_start" : "trace_stop", 0);
	if (start) {
		char path[PATH_MAX];
		abs_path(c, c->arg[2], path, sizeof(path));
		req_str(r, "path", path);
	}
	return r;
}

static int show_trace(struct ctx *c, struct json_object *r)
{
	if (!strcmp(c->arg[1], "start"))
		printf("%s: tracing evictions and misses to %s\n", c->arg[0],
		       jget(r, "path") ? js(r, "path") : c->arg[2]);
	else
		printf("%s: trace stopped, %" PRIu64 " records in %s\n", c->arg[0],
		       ju(r, "records"), js(r, "path"));
	return 0;
}

static struct json_object *build_flush(struct ctx *c)
{
	return req_maybe_domain(c, "flush");
}

static int show_flush(struct ctx *c, struct json_object *r)
{
	uint64_t n = ju(r, "flushed_blocks");
	printf("%s: %" PRIu64 " blocks (%s) written back\n", c->narg ? c->arg[0] : "all domains",
	       n, sz(c, n * HC_BLOCK_SIZE));
	return 0;
}

static struct json_object *build_cache_resize(struct ctx *c)
{
	struct json_object *r = req_new("cache_resize");
	req_u64(r, "bytes", size_arg(c, "SIZE", c->arg[0]));
	return r;
}

static int show_cache_resize(struct ctx *c, struct json_object *r)
{
	printf("cache: %s in use, of a %s pool\n", sz(c, ju(r, "bytes")), sz(c, ju(r, "max_bytes")));
	return 0;
}

static struct json_object *build_defrag_start(struct ctx *c)
{
	struct json_object *r = req_new("defrag_start");
	if (c->set & F(OPT_POLICY)) {
		const char *p = c->val[OPT_POLICY];
		if (strcmp(p, "home") && strcmp(p, "swap"))
			usage_error(c, "bad policy '%s' (home or swap)", p);
		req_str(r, "policy", p);
	}
	if (c->set & F(OPT_RATE)) {
		char *end;
		double x = strtod(c->val[OPT_RATE], &end);
		if (*end || end == c->val[OPT_RATE] || !isfinite(x) || x < 0)
			usage_error(c, "bad --rate '%s' (MiB/s, 0: unlimited)", c->val[OPT_RATE]);
		json_object_object_add(r, "rate", json_object_new_double(x));
	}
	if (c->narg) {
		struct json_object *a = json_object_new_array();
		for (int i = 0; i < c->narg; i++) {
			if (!strchr(c->arg[i], '/'))
				usage_error(c, "volume '%s': expected DOMAIN/VOLUME", c->arg[i]);
			json_object_array_add(a, json_object_new_string(c->arg[i]));
		}
		json_object_object_add(r, "volumes", a);
	}
	return r;
}

static struct json_object *build_defrag_status(struct ctx *c)
{
	(void)c;
	return req_new("defrag_status");
}

static struct json_object *build_defrag_cancel(struct ctx *c)
{
	(void)c;
	return req_new("defrag_cancel");
}

/* "a -> b" of a locality member; "-" where a side is missing. */
static const char *loc_pair(struct json_object *v, const char *k, int dbl)
{
	struct json_object *b = jget(v, "before"), *a = jget(v, "after");
	const char *x = !b ? "-" : dbl ? fmt("%.1f", jd(b, k)) : u64s(ju(b, k));
	const char *y = !a ? "-" : dbl ? fmt("%.1f", jd(a, k)) : u64s(ju(a, k));
	return fmt("%s -> %s", x, y);
}

static int show_defrag(struct ctx *c, struct json_object *r)
{
	double secs = (double)ju(r, "elapsed_ns") / 1e9;
	double rate = jd(r, "rate");
	printf("defrag: %s, policy %s, rate %s%s, %.1f s, %" PRIu64 " of %" PRIu64
	       " entries visited, %s written%s\n",
	       js(r, "state"), js(r, "policy"), rate > 0 ? fmt("%g MiB/s", rate) : "unlimited",
	       json_object_get_boolean(jget(r, "resumed")) ? " (resumed at mount)" : "", secs,
	       ju(r, "done_blocks"), ju(r, "todo_blocks"), sz(c, ju(r, "bytes")),
	       jget(r, "message") ? fmt(": %s", js(r, "message")) : "");
	if (!jlen(r, "volumes"))
		return 0;
	struct table t = { .align = "llrrrrrr" };
	trow(&t, "VOLUME", "STATE", "INDIRECTIONS", "RUNS", "MEAN JUMP", "MOVED", "WRITTEN",
	     "KEPT");
	for (size_t i = 0; i < jlen(r, "volumes"); i++) {
		struct json_object *v = jat(r, "volumes", i);
		trow(&t, js(v, "volume"), js(v, "state"), loc_pair(v, "indirections", 0),
		     loc_pair(v, "runs", 0), loc_pair(v, "mean_jump", 1),
		     u64s(ju(v, "moved") + ju(v, "zeroed") + ju(v, "relocated")),
		     sz(c, ju(v, "bytes")),
		     u64s(ju(v, "kept_shared") + ju(v, "kept_eof") + ju(v, "kept_busy")));
	}
	tprint(&t);
	return 0;
}

/* --- fsck (offline) ----------------------------------------------------------------- */

static const char *file_type(mode_t m)
{
	return S_ISDIR(m) ? "directory" : S_ISREG(m) ? "regular file" : S_ISLNK(m) ? "symbolic link"
	       : S_ISSOCK(m) ? "socket" : S_ISFIFO(m) ? "fifo" : S_ISCHR(m) ? "character device"
	       : S_ISBLK(m) ? "block device" : "unknown file type";
}

/* Appends one formatted line to the array rep[key] ("problems", "repairs"). */
static void report_line(struct json_object *rep, const char *key, const char *fmt_, va_list ap)
{
	char line[PATH_MAX + 256];
	vsnprintf(line, sizeof(line), fmt_, ap);
	json_object_array_add(jget(rep, key), json_object_new_string(line));
}

static void problem(struct json_object *rep, const char *fmt_, ...)
	__attribute__((format(printf, 2, 3)));
static void problem(struct json_object *rep, const char *fmt_, ...)
{
	va_list ap;
	va_start(ap, fmt_);
	report_line(rep, "problems", fmt_, ap);
	va_end(ap);
}

/* Both superblock copies, each decoded on its own. */
static struct json_object *fsck_copies(struct hc_backing *b, struct json_object *rep)
{
	struct json_object *copies = json_object_new_array();
	for (unsigned i = 0; i < 2; i++) {
		char buf[HC_SB_COPY_SIZE];
		struct hc_sb_info info;
		ssize_t n = pread(b->sbfd, buf, sizeof(buf), (off_t)i * HC_SB_COPY_SIZE);
		int err = n < (ssize_t)sizeof(struct hc_sb_disk) ? -HC_ECORRUPT
				: hc_sb_decode((struct hc_sb_disk *)buf, &info);
		struct json_object *o = json_object_new_object();
		req_u64(o, "offset", i * HC_SB_COPY_SIZE);
		req_str(o, "status", err ? hc_strerror(-err) : "valid");
		if (!err)
			req_u64(o, "generation", info.generation);
		else
			problem(rep, "%s/%s: copy at offset %u: %s", b->path, HC_SB_FILE,
				i * HC_SB_COPY_SIZE, hc_strerror(-err));
		json_object_array_add(copies, o);
	}
	return copies;
}

static struct json_object *fsck_superblock(struct hc_backing *b, struct json_object *rep)
{
	const struct hc_sb_info *s = &b->sb;
	const uint8_t *u = s->uuid;
	struct json_object *o = json_object_new_object();
	req_u64(o, "copy", (uint64_t)b->copy);
	req_str(o, "version", fmt("%u.%u", s->major, s->minor));
	req_str(o, "uuid", fmt("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
			       "%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3], u[4], u[5], u[6],
			       u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]));
	req_u64(o, "generation", s->generation);
	req_u64(o, "created", s->created);
	req_u64(o, "mounted", s->mounted);
	json_object_object_add(o, "clean", json_object_new_boolean(s->flags & HC_SB_F_CLEAN));
	json_object_object_add(o, "copies", fsck_copies(b, rep));
	if (!(s->flags & HC_SB_F_CLEAN))
		problem(rep, "%s/%s: not marked clean: hecache-fs did not stop cleanly, dirty "
			"cached blocks may not have reached storage", b->path, HC_SB_FILE);
	return o;
}

/* Calls fn for each entry of directory fd but . and .. (fd is consumed). */
static int each_entry(int fd, void (*fn)(struct hc_backing *, int, const char *, const char *,
					 struct json_object *),
		      struct hc_backing *b, const char *dom, struct json_object *rep)
{
	DIR *d = fd < 0 ? NULL : fdopendir(fd);
	if (!d)
		return -errno;
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			fn(b, dirfd(d), dom, de->d_name, rep);
	closedir(d);
	return 0;
}

static void fsck_volume(struct hc_backing *b, int dfd, const char *dom, const char *name,
			struct json_object *rep)
{
	struct stat st;
	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		problem(rep, "%s/%s/%s: %s", b->path, dom, name, strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		problem(rep, "%s/%s/%s: %s, not a volume (not served)", b->path, dom, name,
			file_type(st.st_mode));
		return;
	}
	struct json_object *v = json_object_new_object();
	req_str(v, "domain", dom);
	req_str(v, "name", name);
	req_u64(v, "size", (uint64_t)st.st_size);
	req_u64(v, "allocated_bytes", (uint64_t)st.st_blocks * 512);
	json_object_array_add(jget(rep, "volumes"), v);
}

static int meta_file(const char *name)
{
	return !strcmp(name, HC_SB_FILE) || !strcmp(name, HC_CTL_SOCK) ||
	       !strncmp(name, "hecache.", 8) || !strcmp(name, HC_JOURNAL_FILE) ||
	       !strcmp(name, HC_CKPT_FILE) || !strcmp(name, HC_CKPT_TMP) ||
	       !strcmp(name, "overflow.dat") || !strcmp(name, HC_DEFRAG_JOB_FILE) ||
	       !strcmp(name, HC_DEFRAG_JOB_FILE ".tmp");
}

static void fsck_root_entry(struct hc_backing *b, int rfd, const char *unused, const char *name,
			    struct json_object *rep)
{
	struct stat st;
	if (meta_file(name))
		return;
	if (fstatat(rfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		problem(rep, "%s/%s: %s", b->path, name, strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		problem(rep, "%s/%s: %s, not a domain (not served)", b->path, name,
			file_type(st.st_mode));
		return;
	}
	req_u64(rep, "domains", ju(rep, "domains") + 1);
	int err = each_entry(openat(rfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC), fsck_volume, b,
			     name, rep);
	if (err)
		problem(rep, "%s/%s: %s", b->path, name, strerror(-err));
}

static __attribute__((noreturn)) void fsck_busy(const struct ctx *c, const char *dir)
{
	fail(c, X_ERROR, EBUSY, "fsck: %s is in use by a running hecache-fs; fsck works offline "
	     "only (unmount first)", dir);
}

struct vidset {
	uint32_t *v;
	size_t n, cap;
};

static int vid_known(const struct vidset *s, uint32_t vid)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->v[i] == vid)
			return 1;
	return 0;
}

/*
 * Calls fn(arg, domain, volume, vid) for each home file (a regular file in
 * a domain) with a volume id (user.hecache.vid), until fn returns non-zero.
 */
static void each_home(int rfd, int (*fn)(void *, const char *, const char *, uint32_t), void *arg)
{
	int scan = openat(rfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *root = scan < 0 ? NULL : fdopendir(scan);
	struct dirent *de;
	int stop = 0;
	while (!stop && root && (de = readdir(root))) {
		if (de->d_name[0] == '.')
			continue;
		int dfd = openat(rfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *dom = dfd < 0 ? NULL : fdopendir(dfd);
		struct dirent *ve;
		while (!stop && dom && (ve = readdir(dom))) {
			struct stat st;
			if (fstatat(dirfd(dom), ve->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;	/* a FIFO would block the open */
			int fd = openat(dirfd(dom), ve->d_name,
					O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
			char buf[16];
			ssize_t n = fd < 0 ? -1 : fgetxattr(fd, "user.hecache.vid", buf, sizeof(buf) - 1);
			if (fd >= 0)
				close(fd);
			if (n <= 0)
				continue;
			buf[n] = 0;
			stop = fn(arg, de->d_name, ve->d_name, (uint32_t)strtoul(buf, NULL, 10));
		}
		if (dom)
			closedir(dom);
	}
	if (root)
		closedir(root);
}

static int add_vid(void *arg, const char *dom, const char *vol, uint32_t vid)
{
	struct vidset *s = arg;
	(void)dom;
	(void)vol;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 64;
		s->v = realloc(s->v, s->cap * sizeof(*s->v));
		if (!s->v)
			oom();
	}
	s->v[s->n++] = vid;
	return 0;
}

/* Volume ids of every home file (user.hecache.vid). */
static void collect_vids(int rfd, struct vidset *s)
{
	each_home(rfd, add_vid, s);
}

struct missing_arg {
	struct vidset *s;
	struct json_object *rep;
	const char *path;
};

static int check_target(void *arg, const struct hc_phys *p, uint32_t count)
{
	struct missing_arg *a = arg;
	if (p->file <= HC_PHYS_VOL_MAX && !vid_known(a->s, p->file)) {
		problem(a->rep, "%s: %u map entries point at block %" PRIu64
			" of volume id %u, which no home file has", a->path, count, p->block, p->file);
		return 1;
	}
	return 0;
}

static void repaired(struct json_object *rep, const char *fmt_, ...)
	__attribute__((format(printf, 2, 3)));

/* swap-reconcile's metadata: the journal opens, cross-checks, targets exist. */
static void fsck_journal(struct hc_backing *b, struct json_object *rep)
{
	struct stat st;
	if (fstatat(b->dirfd, HC_JOURNAL_FILE, &st, 0) < 0 &&
	    fstatat(b->dirfd, HC_CKPT_FILE, &st, 0) < 0)
		return;	/* never served with indirections */
	char msg[PATH_MAX + 256];
	struct hc_journal *j;
	struct hc_journal_opts o = { .name = b->path };
	int err = hc_journal_open(b->dirfd, &o, &j, msg, sizeof(msg));
	if (err) {
		problem(rep, "%s", msg);
		return;
	}
	err = hc_journal_verify(j, msg, sizeof(msg));
	if (err)
		problem(rep, "%s: metadata: %s", b->path, msg);
	struct vidset s = { 0 };
	collect_vids(b->dirfd, &s);
	struct missing_arg a = { &s, rep, b->path };
	hc_refcount_walk(hc_journal_refcount(j), check_target, &a);
	free(s.v);
	struct hc_journal_stats js;
	hc_journal_stats(j, &js);
	struct json_object *o2 = json_object_new_object();
	req_u64(o2, "entries", js.entries);
	req_u64(o2, "maps", js.nvols);
	req_u64(o2, "seq", js.seq);
	req_u64(o2, "replayed", js.replayed);
	if (js.torn_bytes)
		repaired(rep, "%s/%s: torn tail of %" PRIu64 " bytes cut (the commit a crash "
			 "interrupted; never acknowledged)", b->path, HC_JOURNAL_FILE, js.torn_bytes);
	json_object_object_add(rep, "metadata", o2);
	hc_journal_close(j);
}

static void repair_backing(struct hc_backing *b, struct json_object *rep);

/*
 * The report of fsck (after the repairs with repair set); exits when the
 * directory cannot be opened.
 */
static struct json_object *fsck_report(struct ctx *c, const char *dir, int repair)
{
	char msg[PATH_MAX + 256];
	struct hc_backing *b;
	hc_log_set_level(LOG_ERR);	/* a bad copy is reported below, not logged */
	int err = hc_backing_open(dir, 0, &b, msg, sizeof(msg));
	if (err == -HC_ELOCKED)
		fsck_busy(c, dir);
	if (err)
		fail(c, X_ERROR, -err, "fsck: %s", msg);
	struct json_object *rep = json_object_new_object();
	req_str(rep, "backing", dir);
	json_object_object_add(rep, "problems", json_object_new_array());
	json_object_object_add(rep, "repairs", json_object_new_array());
	if (repair)
		repair_backing(b, rep);
	json_object_object_add(rep, "volumes", json_object_new_array());
	req_u64(rep, "domains", 0);
	json_object_object_add(rep, "superblock", fsck_superblock(b, rep));
	err = each_entry(openat(b->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), fsck_root_entry,
			 b, NULL, rep);
	if (err)
		problem(rep, "%s: %s", dir, strerror(-err));
	fsck_journal(b, rep);
	hc_backing_close(b);
	return rep;
}

static void show_superblock(struct json_object *r)
{
	struct json_object *s = jget(r, "superblock");
	struct table t = { .align = "ll" };
	trow(&t, "backing", js(r, "backing"));
	trow(&t, "superblock",
	     fmt("%s copy %" PRIu64 ", version %s, generation %" PRIu64, HC_SB_FILE, ju(s, "copy"),
		 js(s, "version"), ju(s, "generation")));
	for (size_t i = 0; i < jlen(s, "copies"); i++) {
		struct json_object *o = jat(s, "copies", i);
		const char *gen = jget(o, "generation") ? u64s(ju(o, "generation")) : NULL;
		trow(&t, fmt("copy %zu", i), fmt("offset %" PRIu64 ": %s%s%s", ju(o, "offset"),
						  js(o, "status"), gen ? ", generation " : "",
						  gen ? gen : ""));
	}
	trow(&t, "uuid", js(s, "uuid"));
	trow(&t, "created", when(ju(s, "created")));
	trow(&t, "last written", when(ju(s, "mounted")));
	trow(&t, "clean", json_object_get_boolean(jget(s, "clean")) ? "yes" : "no");
	trow(&t, "domains", u64s(ju(r, "domains")));
	tprint(&t);
}

static int show_fsck(struct ctx *c, struct json_object *r)
{
	struct table t = { .align = "llrr" };
	show_superblock(r);
	trow(&t, "DOMAIN", "VOLUME", "SIZE", "ALLOCATED");
	for (size_t i = 0; i < jlen(r, "volumes"); i++) {
		struct json_object *v = jat(r, "volumes", i);
		trow(&t, js(v, "domain"), js(v, "name"), sz(c, ju(v, "size")),
		     sz(c, ju(v, "allocated_bytes")));
	}
	putchar('\n');
	tprint(&t);
	for (size_t i = 0; i < jlen(r, "repairs"); i++)
		printf("repaired: %s\n", json_object_get_string(jat(r, "repairs", i)));
	for (size_t i = 0; i < jlen(r, "problems"); i++)
		printf("problem: %s\n", json_object_get_string(jat(r, "problems", i)));
	printf("%zu problem%s found\n", jlen(r, "problems"), jlen(r, "problems") == 1 ? "" : "s");
	return 0;
}

/*
 * --repair: only what needs no guess about any block's data.  A bad
 * superblock copy is rewritten from the good one; overflow.dat blocks no
 * map entry points at are punched and the file is cut after the last
 * referenced one; the next-volume-id counter is moved past every id in use.
 * (Opening the journal, which plain fsck does too, already cut a torn tail
 * and removed an interrupted checkpoint's meta.ckpt.tmp.)  Never
 * repaired, only reported: a corrupt journal record or checkpoint (the maps
 * after it are unknown: cutting there would send blocks back to stale home
 * data), map entries pointing at a volume id no home file has, two home
 * files with one id.  Each action is one line in "repairs".
 */
static void repaired(struct json_object *rep, const char *fmt_, ...)
	__attribute__((format(printf, 2, 3)));
static void repaired(struct json_object *rep, const char *fmt_, ...)
{
	va_list ap;
	va_start(ap, fmt_);
	report_line(rep, "repairs", fmt_, ap);
	va_end(ap);
}

struct ovf_refs {
	uint64_t *b;
	size_t n, cap;
};

static int collect_ovf(void *arg, const struct hc_phys *p, uint32_t count)
{
	struct ovf_refs *o = arg;
	if (p->file != HC_PHYS_OVERFLOW || !count)
		return 0;
	if (o->n == o->cap) {
		o->cap = o->cap ? 2 * o->cap : 256;
		o->b = realloc(o->b, o->cap * sizeof(*o->b));
		if (!o->b)
			oom();
	}
	o->b[o->n++] = p->block;
	return 0;
}

static int cmp_block(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Punches overflow.dat's unreferenced blocks; j is open. */
static void repair_overflow(struct hc_backing *b, struct hc_journal *j, struct json_object *rep)
{
	int fd = openat(b->dirfd, "overflow.dat", O_RDWR | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return;
	}
	struct ovf_refs o = { 0 };
	hc_refcount_walk(hc_journal_refcount(j), collect_ovf, &o);
	qsort(o.b, o.n, sizeof(*o.b), cmp_block);
	uint64_t end = o.n ? o.b[o.n - 1] + 1 : 0, before = (uint64_t)st.st_blocks * 512;
	int err = 0;
	uint64_t from = 0;
	for (size_t i = 0; i <= o.n && !err; i++) {
		uint64_t stop = i < o.n ? o.b[i] : end;
		if (stop > from &&
		    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(from * HC_BLOCK_SIZE), (off_t)((stop - from) * HC_BLOCK_SIZE)) < 0)
			err = errno;
		from = stop + 1;
	}
	if (!err && (uint64_t)st.st_size > end * HC_BLOCK_SIZE &&
	    ftruncate(fd, (off_t)(end * HC_BLOCK_SIZE)) < 0)
		err = errno;
	if (!err && fsync(fd) < 0)
		err = errno;
	if (err)
		problem(rep, "%s/overflow.dat: cannot punch unreferenced blocks: %s", b->path,
			strerror(err));
	else if (fstat(fd, &st) == 0 && (uint64_t)st.st_blocks * 512 < before)
		repaired(rep, "%s/overflow.dat: %" PRIu64 " bytes of unreferenced blocks freed "
			 "(%zu blocks referenced)", b->path, before - (uint64_t)st.st_blocks * 512,
			 o.n);
	free(o.b);
	close(fd);
}

static void repair_backing(struct hc_backing *b, struct json_object *rep)
{
	/* The superblock copy that does not decode, from the one in use. */
	for (unsigned i = 0; i < 2; i++) {
		char buf[HC_SB_COPY_SIZE];
		struct hc_sb_info info;
		ssize_t n = pread(b->sbfd, buf, sizeof(buf), (off_t)i * HC_SB_COPY_SIZE);
		if (n >= (ssize_t)sizeof(struct hc_sb_disk) &&
		    !hc_sb_decode((struct hc_sb_disk *)buf, &info))
			continue;
		if (i == (unsigned)b->copy)
			break;	/* cannot happen: the copy in use decoded */
		int err = hc_backing_write_sb(b, b->sb.flags);
		if (err)
			problem(rep, "%s/%s: cannot rewrite copy %u: %s", b->path, HC_SB_FILE, i,
				strerror(-err));
		else
			repaired(rep, "%s/%s: copy at offset %u rewritten from the valid copy "
				 "(generation %" PRIu64 ")", b->path, HC_SB_FILE,
				 i * HC_SB_COPY_SIZE, b->sb.generation);
		break;
	}
	/* The id counter past every id in use (ids are never reused). */
	struct vidset s = { 0 };
	collect_vids(b->dirfd, &s);
	uint32_t max = 0;
	for (size_t i = 0; i < s.n; i++)
		max = s.v[i] > max ? s.v[i] : max;
	free(s.v);
	char buf[16];
	ssize_t n = fgetxattr(b->dirfd, "user.hecache.next_vid", buf, sizeof(buf) - 1);
	unsigned long next = 0;
	if (n > 0) {
		buf[n] = 0;
		next = strtoul(buf, NULL, 10);
	}
	if (max && (n <= 0 || next <= max)) {
		int len = snprintf(buf, sizeof(buf), "%u", max + 1);
		if (fsetxattr(b->dirfd, "user.hecache.next_vid", buf, (size_t)len, 0) < 0 ||
		    fsync(b->dirfd) < 0)
			problem(rep, "%s: cannot set user.hecache.next_vid: %s", b->path,
				strerror(errno));
		else
			repaired(rep, "%s: next volume id set to %u (past every id in use)", b->path,
				 max + 1);
	}
	struct stat st;
	if (fstatat(b->dirfd, HC_JOURNAL_FILE, &st, 0) < 0 &&
	    fstatat(b->dirfd, HC_CKPT_FILE, &st, 0) < 0)
		return;
	char msg[PATH_MAX + 256];
	struct hc_journal *j;
	struct hc_journal_opts o = { .name = b->path };
	if (hc_journal_open(b->dirfd, &o, &j, msg, sizeof(msg)))
		return;	/* reported by the check; nothing here can be fixed without a guess */
	repair_overflow(b, j, rep);
	hc_journal_close(j);
}

static int run_fsck(struct ctx *c)
{
	const char *dir = c->narg ? c->arg[0] : c->backing;
	if (!dir)
		usage_error(c, "fsck: name the backing directory (hectl -b DIR fsck, or hectl "
			    "fsck DIR)");
	char sock[PATH_MAX];
	snprintf(sock, sizeof(sock), "%s/%s", dir, HC_CTL_SOCK);
	int fd = hc_ctl_connect(sock);
	if (fd >= 0)
		fsck_busy(c, dir);
	struct json_object *rep = fsck_report(c, dir, !!(c->set & F(OPT_REPAIR)));
	int bad = jlen(rep, "problems") > 0;
	present(c, rep, show_fsck);
	return bad ? X_ERROR : 0;
}

/* --- the commands ---------------------------------------------------------------------- */

#define SIZES F(OPT_BYTES)

static const struct cmd cmds[] = {
	{ "status", NULL, "", 0, 0, SIZES, NULL, build_status, show_status, NULL,
	  "The daemon: version, backing directory, mount point, uptime, I/O engine, cache "
	  "size and use, MRC mode, counts of domains, volumes and connected agents." },
	{ "stats", NULL, "[DOMAIN] [--prometheus] [--bytes]", 0, 1, SIZES | F(OPT_PROM), NULL,
	  build_stats, show_stats, NULL,
	  "Counters of every domain (or of DOMAIN) and their total: hits, misses, hit ratio, "
	  "admissions, write-backs, discards (blocks), bytes read from and written to storage, "
	  "cached and dirty data. --prometheus prints them in the Prometheus text format "
	  "(hecache_hits_total{domain=\"vm1\"} ..., the total without label)." },
	{ "volume", "list", "[DOMAIN] [--bytes]", 0, 1, SIZES, NULL, build_volume_list,
	  show_volume_list, NULL, "Volumes of every domain (or of DOMAIN): kind, size, "
	  "allocated bytes of the home file, open count." },
	{ "volume", "create", "DOMAIN/VOLUME SIZE [--kind disk|swap|ram]", 2, 2, F(OPT_KIND), NULL,
	  build_volume_create, show_done, "created with size",
	  "Creates a volume of SIZE bytes (suffixes K, M, G, T), and its domain if needed." },
	{ "volume", "resize", "DOMAIN/VOLUME SIZE", 2, 2, 0, NULL, build_volume_resize, show_done,
	  "resized to", "Grows or shrinks a volume to SIZE bytes." },
	{ "volume", "delete", "DOMAIN/VOLUME", 1, 1, 0, NULL, build_volume_delete, show_done,
	  "deleted", "Deletes a volume and its home file (EBUSY while it is open)." },
	{ "volume", "set-kind", "DOMAIN/VOLUME KIND", 2, 2, 0, NULL, build_volume_set_kind,
	  show_done, "kind set to", "Sets a volume's kind: disk, swap or ram." },
	{ "domain", "list", "[--bytes]", 0, 0, SIZES, NULL, build_domain_list, show_domain_list,
	  NULL, "Domains: volume count, memory size M and who set it, agent connection and "
	  "the swap use the agent last reported." },
	{ "domain", "create", "DOMAIN", 1, 1, 0, NULL, build_domain_create, show_done, "created",
	  "Creates an empty domain." },
	{ "domain", "set-memory", "DOMAIN SIZE", 2, 2, SIZES, NULL, build_set_memory,
	  show_set_memory, NULL, "Sets the domain's memory size M (the origin of its miss-ratio "
	  "curve); a connected agent is told to apply it." },
	{ "map", NULL, "DOMAIN/VOLUME [--range A-B] [--bytes]", 1, 1, SIZES | F(OPT_RANGE), run_map,
	  build_map, show_map, NULL,
	  "Where each block of a volume is: extents of START (first block), END (first block "
	  "after), COUNT blocks of 4 KiB and their TARGET (home: in the home file, hole: never "
	  "written or discarded). With -b BACKING and no daemon running, the home file is read "
	  "directly (SEEK_DATA/SEEK_HOLE)." },
	{ "mrc", NULL, "DOMAIN [--step SIZE] [--points N] [--csv] [--plot FILE.png]", 1, 1,
	  SIZES | F(OPT_STEP) | F(OPT_POINTS) | F(OPT_CSV) | F(OPT_PLOT), run_mrc, NULL, NULL, NULL,
	  "The domain's miss-ratio curve: predicted misses with c more bytes of memory "
	  "(EXTRA), the memory M + c when M is known, and the ratio to the misses at c = 0. "
	  "--plot needs gnuplot." },
	{ "mrc-reset", NULL, "DOMAIN", 1, 1, 0, NULL, build_mrc_reset, show_done,
	  "miss-ratio curve and events forgotten", "Forgets the domain's events and curve." },
	{ "recommend", NULL, "DOMAIN [--tolerance T] [--max SIZE] [--step SIZE] [--apply]", 1, 1,
	  SIZES | F(OPT_TOL) | F(OPT_MAX) | F(OPT_STEP) | F(OPT_APPLY), run_recommend, NULL, NULL,
	  NULL, "The smallest extra memory (a multiple of --step) whose predicted misses are "
	  "within the tolerance of those at --max extra memory. --apply then sets the domain's "
	  "memory to it (M must be known)." },
	{ "trace", NULL, "DOMAIN start FILE | DOMAIN stop", 2, 3, 0, NULL, build_trace, show_trace,
	  NULL, "Records the domain's evictions and misses into the new file FILE (a 256-byte "
	  "header, then 24-byte records; see hc-mrc), until stopped." },
	{ "flush", NULL, "[DOMAIN] [--bytes]", 0, 1, SIZES, NULL, build_flush, show_flush, NULL,
	  "Writes back every dirty block (of DOMAIN, or all) and syncs." },
	{ "cache", "resize", "SIZE", 1, 1, 0, NULL, build_cache_resize, show_cache_resize, NULL,
	  "Asks to resize the cache. Not supported by protocol 1: remount with -o cache=SIZE." },
	{ "defrag", "start", "[DOMAIN/VOLUME...] [--policy home|swap] [--rate MB] [--bytes]", 0,
	  HC_CTL_MAX_DEFRAG_VOLS, SIZES | F(OPT_POLICY) | F(OPT_RATE), NULL, build_defrag_start,
	  show_defrag, NULL,
	  "Starts an online reconcile-defrag job in the daemon (every volume with indirections "
	  "when none is named) and returns; the job survives a restart (reconcile-defrag(8))." },
	{ "defrag", "status", "[--bytes]", 0, 0, SIZES, NULL, build_defrag_status, show_defrag, NULL,
	  "The online defrag job: state, progress, locality before -> after per volume." },
	{ "defrag", "cancel", "", 0, 0, 0, NULL, build_defrag_cancel, show_defrag, NULL,
	  "Stops the online defrag job after its current batch (what it did stays)." },
	{ "fsck", NULL, "[BACKING] [--repair] [--bytes]", 0, 1, SIZES | F(OPT_REPAIR), run_fsck, NULL, NULL, NULL,
	  "Checks a backing directory while no daemon uses it: both superblock copies, the "
	  "clean flag, domains and volumes. Exit 1 when a problem is found." },
};
#define NCMDS (sizeof(cmds) / sizeof(cmds[0]))

static void print_synopsis(FILE *f, const struct cmd *cmd)
{
	fprintf(f, "  hectl [OPTIONS] %s%s%s%s%s\n", cmd->name, cmd->sub ? " " : "",
		cmd->sub ? cmd->sub : "", *cmd->synopsis ? " " : "", cmd->synopsis);
}

static void print_help(FILE *f)
{
	fputs("usage: hectl [OPTIONS] SUBCOMMAND [ARGS]\n"
	      "Controls a running hecache-fs through its control socket.\n\n"
	      "options:\n"
	      "  -S, --socket PATH      the control socket\n"
	      "  -b, --backing DIR      the backing directory (DIR/ctl.sock; offline map, fsck)\n"
	      "  -m, --mount DIR        the mount point of the hecache-fs to talk to\n"
	      "      --json             print the daemon's reply as JSON\n"
	      "  -h, --help             this help (hectl SUBCOMMAND --help: its own)\n"
	      "  -V, --version          version\n\n"
	      "subcommands:\n", f);
	for (size_t i = 0; i < NCMDS; i++)
		print_synopsis(f, &cmds[i]);
	fputs("\nexit status: 0 ok, 1 error, 2 usage error, 3 daemon unreachable\n"
	      "sizes take K, M, G, T suffixes (binary); see hectl(8)\n", f);
}

static void print_cmd_help(const struct cmd *cmd)
{
	fputs("usage:\n", stdout);
	print_synopsis(stdout, cmd);
	printf("\n%s\n", cmd->help);
	if (cmd->opts)
		puts("\noptions:");
	for (int o = 1; o < NOPT; o++)
		if (cmd->opts & F(o))
			printf("  %s\n", sub_option_help[o]);
}

/* --- argument parsing ------------------------------------------------------------------ */

static void parse_global(struct ctx *c, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "backing", required_argument, NULL, 'b' },
		{ "mount", required_argument, NULL, 'm' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	int o;
	opterr = 0;
	while ((o = getopt_long(argc, argv, "+S:b:m:hV", lo, NULL)) != -1) {
		switch (o) {
		case 'S': c->sock = optarg; break;
		case 'b': c->backing = optarg; break;
		case 'm': c->mount = optarg; break;
		case 'j': c->json = 1; break;
		case 'h': print_help(stdout); exit(0);
		case 'V':
			printf("hectl (%s), control protocol %d\n", PACKAGE_STRING,
			       HC_CTL_PROTOCOL);
			exit(0);
		default:
			usage_error(NULL, "bad option '%s'", argv[optind - 1]);
		}
	}
}

/* The command named by argv (one or two words); *used set to the words taken. */
static const struct cmd *find_cmd(struct ctx *c, int argc, char **argv, int *used)
{
	const struct cmd *group = NULL;
	for (size_t i = 0; i < NCMDS; i++) {
		if (strcmp(cmds[i].name, argv[0]))
			continue;
		group = group ? group : &cmds[i];
		*used = cmds[i].sub ? 2 : 1;
		if (!cmds[i].sub || (argc > 1 && !strcmp(cmds[i].sub, argv[1])))
			return &cmds[i];
	}
	if (!group)
		usage_error(c, "unknown subcommand '%s'", argv[0]);
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		for (const struct cmd *k = group; k < cmds + NCMDS && !strcmp(k->name, group->name);
		     k++)
			print_synopsis(stdout, k);
		exit(0);
	}
	c->group = group->name;
	usage_error(c, "%s: %s subcommand%s%s", argv[0], argc > 1 ? "unknown" : "missing",
		    argc > 1 ? " " : "", argc > 1 ? argv[1] : "");
}

/* The command's options and positional arguments; argv[0] is its last word. */
static void parse_cmd(struct ctx *c, int argc, char **argv)
{
	int o;
	optind = 0;
	while ((o = getopt_long(argc, argv, "h", sub_options, NULL)) != -1) {
		if (o == 'h') {
			print_cmd_help(c->cmd);
			exit(0);
		}
		if (o == OPT_JSON) {
			c->json = 1;
			continue;
		}
		if (o == '?')
			usage_error(c, "%s: bad option, or option without its argument: '%s'",
				    c->cmd->name, argv[optind - 1]);
		if (!(c->cmd->opts & F(o)))
			usage_error(c, "%s: option --%s does not apply", c->cmd->name,
				    sub_options[o - 1].name);
		c->set |= F(o);
		c->val[o] = optarg;
	}
	c->arg = argv + optind;
	c->narg = argc - optind;
	if (c->narg < c->cmd->min)
		usage_error(c, "%s: missing argument (%s)", c->cmd->name, c->cmd->synopsis);
	if (c->narg > c->cmd->max)
		usage_error(c, "%s: too many arguments", c->cmd->name);
}

int main(int argc, char **argv)
{
	struct ctx c = { .fd = -1 };
	parse_global(&c, argc, argv);
	argc -= optind;
	argv += optind;
	if (argc < 1)
		usage_error(&c, "no subcommand");
	int used;
	c.cmd = find_cmd(&c, argc, argv, &used);
	parse_cmd(&c, argc - used + 1, argv + used - 1);
	int rc = c.cmd->run ? c.cmd->run(&c) : run_request(&c);
	if (c.fd >= 0)
		close(c.fd);
	return rc;
}
