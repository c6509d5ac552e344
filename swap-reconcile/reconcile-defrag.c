// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * reconcile-defrag: restores the on-disk locality that indirections cost
 * (DESIGN.md "reconcile-defrag", reconcile-defrag(8)).  This is the offline
 * half: with the daemon stopped it takes the backing directory's lock,
 * opens the journal, and applies policy home (defrag.h) to the chosen
 * volumes -- every indirected block copied back to its home offset and its
 * entry dropped -- in passes until a pass moves nothing (a block kept
 * because another volume's entry targets its home block may move once that
 * volume has gone home).  It prints the locality before and after.
 * --online is parsed and refused (not implemented yet); policy swap too.
 * Exit codes: 0 done, 1 error or refused or interrupted, 2 usage.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cli.h"
#include "defrag.h"
#include "hecache/errors.h"
#include "hecache/format.h"
#include "journal.h"
#include "log.h"
#include "sb.h"
#include "util.h"

#define PROG "reconcile-defrag"
#define VID_XATTR "user.hecache.vid"

struct vol {
	char *dom, *name, *label;	/* label: DOMAIN/NAME */
	uint32_t vid;			/* 0: none (never served with swap-reconcile) */
	int fd;				/* -1 until opened; read-write when chosen */
	int chosen;
	uint64_t size;
	struct hc_defrag_locality before, after;
	struct hc_defrag_result done;	/* summed over passes; kept_* of the last pass */
	uint64_t ns;
};

struct opts {
	const char *offline, *online, *policy;
	double rate;			/* MiB/s, 0: unlimited */
	int json, dry_run;
};

struct state {
	struct opts o;
	struct hc_backing *b;
	struct hc_journal *j;
	struct vol *v;
	size_t nv;
	/* progress and rate limit, over the whole run */
	int bar;			/* draw a progress bar (stderr is a terminal) */
	uint64_t t0, last_draw;
	uint64_t todo;			/* entries of the chosen volumes at the start */
	uint64_t base_blocks, base_bytes;	/* of the passes over earlier volumes */
	const char *cur;		/* volume in progress */
	unsigned pass;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void usage(void)
{
	printf("Usage: " PROG " --offline BACKING [--policy home] [--rate MiB/s] [--dry-run]\n"
	       "                        [--json] [DOMAIN/VOLUME...]\n"
	       "       " PROG " --online SOCKET ...   (not available yet)\n"
	       "Copies indirected blocks back to their volumes' home offsets and drops the\n"
	       "indirections (policy home), with hecache-fs stopped; prints the locality\n"
	       "(indirections, runs, mean physical jump) before and after.  No VOLUME: all.\n"
	       "\n"
	       "  --offline BACKING  work on the backing directory BACKING (daemon stopped)\n"
	       "  --online SOCKET    through a running daemon (not available yet)\n"
	       "  --policy home      copy blocks back home (the default and only policy)\n"
	       "  --rate R           at most R MiB/s moved (fractions allowed; default unlimited)\n"
	       "  --dry-run          report what would move; change nothing\n"
	       "  --json             the report as JSON\n"
	       "  -h, --help         this help\n"
	       "  --version          the version\n"
	       "Exit status: 0 done, 1 error (or refused, or interrupted), 2 usage error.\n");
}

/* --- the backing directory's volumes --------------------------------------------------- */

static void *xcalloc(size_t n, size_t sz)
{
	void *p = calloc(n ? n : 1, sz);
	if (!p)
		hc_cli_die("out of memory");
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		hc_cli_die("out of memory");
	return p;
}

static int cmp_vol(const void *a, const void *b)
{
	const struct vol *x = a, *y = b;
	int c = strcmp(x->dom, y->dom);
	return c ? c : strcmp(x->name, y->name);
}

/* The volume id of the home file dfd/name: 0 with *vid (0: none), or -errno. */
static int read_vid(int dfd, const char *name, uint32_t *vid)
{
	*vid = 0;
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	char buf[16];
	ssize_t n = fgetxattr(fd, VID_XATTR, buf, sizeof(buf) - 1);
	int err = n < 0 ? -errno : 0;
	close(fd);
	if (err == -ENODATA || err == -ENOTSUP)
		return 0;
	if (err)
		return err;
	buf[n] = 0;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(buf, &end, 10);
	if (errno || end == buf || *end || buf[0] == '-' || v == 0 || v > HC_PHYS_VOL_MAX)
		return -HC_ECORRUPT;
	*vid = (uint32_t)v;
	return 0;
}

/* Every regular file in every directory of the backing directory (as the daemon serves). */
static void scan(struct state *s)
{
	const char *path = s->b->path;
	int rfd = openat(s->b->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *root = rfd < 0 ? NULL : fdopendir(rfd);
	if (!root)
		hc_cli_die("%s: %s", path, strerror(errno));
	size_t cap = 0;
	struct dirent *de;
	while ((de = readdir(root))) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    fstatat(s->b->dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode))
			continue;
		int dfd = openat(s->b->dirfd, de->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *dom = dfd < 0 ? NULL : fdopendir(dfd);
		if (!dom)
			hc_cli_die("%s/%s: %s", path, de->d_name, strerror(errno));
		struct dirent *ve;
		while ((ve = readdir(dom))) {
			if (fstatat(dirfd(dom), ve->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			    !S_ISREG(st.st_mode))
				continue;	/* not served by the daemon either */
			uint32_t vid;
			int err = read_vid(dirfd(dom), ve->d_name, &vid);
			if (err)
				hc_cli_die("%s/%s/%s: %s", path, de->d_name, ve->d_name,
					   err == -HC_ECORRUPT ? "bad volume id (" VID_XATTR ")"
							       : strerror(-err));
			if (s->nv == cap) {
				cap = cap ? 2 * cap : 16;
				s->v = realloc(s->v, cap * sizeof(*s->v));
				if (!s->v)
					hc_cli_die("out of memory");
			}
			struct vol *v = &s->v[s->nv++];
			memset(v, 0, sizeof(*v));
			v->dom = xstrdup(de->d_name);
			v->name = xstrdup(ve->d_name);
			v->label = xcalloc(strlen(v->dom) + strlen(v->name) + 2, 1);
			sprintf(v->label, "%s/%s", v->dom, v->name);
			v->vid = vid;
			v->fd = -1;
			v->size = (uint64_t)st.st_size;
		}
		closedir(dom);
	}
	closedir(root);
	if (s->nv)
		qsort(s->v, s->nv, sizeof(*s->v), cmp_vol);
	for (size_t i = 0; i < s->nv; i++)
		for (size_t k = i + 1; k < s->nv && s->v[i].vid; k++)
			if (s->v[k].vid == s->v[i].vid)
				hc_cli_die("%s: %s and %s carry the same volume id %" PRIu32 " ("
					   VID_XATTR "; a copied home file?); hecache-fs refuses "
					   "this directory too", path, s->v[i].label, s->v[k].label,
					   s->v[i].vid);
}

static struct vol *find_label(struct state *s, const char *label)
{
	for (size_t i = 0; i < s->nv; i++)
		if (!strcmp(s->v[i].label, label))
			return &s->v[i];
	return NULL;
}

static int valid_label(const char *a)
{
	const char *slash = strchr(a, '/');
	return slash && slash != a && slash[1] && !strchr(slash + 1, '/') &&
	       strncmp(a, "../", 3) && strncmp(a, "./", 2) && strcmp(slash, "/.") &&
	       strcmp(slash, "/..");
}

static void choose(struct state *s, char **args, int n)
{
	for (int i = 0; i < n; i++)
		if (!valid_label(args[i]))
			hc_cli_die_usage("'%s': name a volume as DOMAIN/VOLUME", args[i]);
	for (int i = 0; i < n; i++) {
		struct vol *v = find_label(s, args[i]);
		if (!v)
			hc_cli_die("%s/%s: no such volume (a regular file in a domain directory)",
				   s->b->path, args[i]);
		v->chosen = 1;
	}
	if (!n)
		for (size_t i = 0; i < s->nv; i++)
			s->v[i].chosen = 1;
}

/* defrag.h's file_fd: volume ids and overflow.dat, opened on first use. */
static int ovf_fd = -1;

static int file_fd(void *arg, uint32_t file)
{
	struct state *s = arg;
	if (file == HC_PHYS_OVERFLOW) {
		if (ovf_fd < 0)
			ovf_fd = openat(s->b->dirfd, "overflow.dat", O_RDWR | O_CLOEXEC);
		return ovf_fd < 0 ? -errno : ovf_fd;
	}
	for (size_t i = 0; i < s->nv; i++) {
		struct vol *v = &s->v[i];
		if (v->vid != file)
			continue;
		if (v->fd < 0) {
			int mode = v->chosen && !s->o.dry_run ? O_RDWR : O_RDONLY;
			int dfd = openat(s->b->dirfd, v->dom, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			v->fd = dfd < 0 ? -1 : openat(dfd, v->name, mode | O_CLOEXEC | O_NOFOLLOW);
			int err = errno;
			if (dfd >= 0)
				close(dfd);
			if (v->fd < 0)
				return -err;
		}
		return v->fd;
	}
	return -ENOENT;
}

/* --- progress and rate ------------------------------------------------------------------ */

static void draw(struct state *s, uint64_t blocks, uint64_t bytes, int last)
{
	uint64_t now = hc_now_ns();
	if (!last && now - s->last_draw < 100000000ull)
		return;
	s->last_draw = now;
	double secs = (double)(now - s->t0) / 1e9;
	double frac = s->todo ? (double)blocks / (double)s->todo : 1.0;
	if (frac > 1.0)
		frac = 1.0;
	char bar[31];
	int full = (int)(frac * 30);
	for (int i = 0; i < 30; i++)
		bar[i] = i < full ? '#' : '.';
	bar[30] = 0;
	char sz[32];
	fprintf(stderr, "\r[%s] %3d%% %s %.1f MiB/s pass %u %-24.24s%s", bar, (int)(frac * 100),
		hc_format_size(bytes, sz, sizeof(sz)),
		secs > 0 ? (double)bytes / 1048576.0 / secs : 0.0, s->pass, s->cur ? s->cur : "",
		last ? "\n" : "");
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };
	while (!stop && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int batch_done(void *arg, const struct hc_defrag_result *r)
{
	struct state *s = arg;
	/* pass 1 visits every entry once; later passes move blocks it counted as kept */
	uint64_t blocks = s->base_blocks;
	if (s->pass == 1)
		blocks += r->moved + r->zeroed + r->kept_shared + r->kept_eof;
	uint64_t bytes = s->base_bytes + r->bytes;
	if (s->o.rate > 0) {
		uint64_t due = s->t0 + (uint64_t)((double)bytes / (s->o.rate * 1048576.0) * 1e9);
		uint64_t now = hc_now_ns();
		if (due > now)
			sleep_ns(due - now);
	}
	if (s->bar)
		draw(s, blocks, bytes, 0);
	return stop;
}

/* --- the work ---------------------------------------------------------------------------- */

static uint64_t nblocks(uint64_t size)
{
	return (size + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE;
}

static void locality(struct state *s, struct vol *v, struct hc_defrag_locality *out)
{
	struct hc_imap *m = NULL;
	if (s->j && v->vid && hc_journal_imap(s->j, v->vid, &m))
		hc_cli_die("out of memory");
	hc_defrag_locality(m, v->vid, nblocks(v->size), out);
}

/* Passes of policy home until one moves nothing; 0, or -EINTR when stopped. */
static int defrag(struct state *s)
{
	uint32_t batch = HC_DEFRAG_BATCH;
	if (s->o.rate > 0) {
		/* about ten commits a second, so a stop or a crash loses little */
		double b = s->o.rate * 1048576.0 / 10 / HC_BLOCK_SIZE;
		batch = b < 1 ? 1 : b > HC_DEFRAG_BATCH ? HC_DEFRAG_BATCH : (uint32_t)b;
	}
	struct hc_defrag_home_opts ho = { .batch_blocks = batch, .dry_run = s->o.dry_run };
	struct hc_defrag_io io = { .file_fd = file_fd, .batch_done = batch_done, .arg = s };
	for (s->pass = 1;; s->pass++) {
		uint64_t moved = 0, kept = 0;
		for (size_t i = 0; i < s->nv; i++) {
			struct vol *v = &s->v[i];
			if (!v->chosen || !v->vid || !v->before.entries)
				continue;
			if (s->pass > 1 && !v->done.kept_shared)
				continue;
			int fd = file_fd(s, v->vid);
			if (fd < 0)
				hc_cli_die("%s/%s: %s", s->b->path, v->label, strerror(-fd));
			struct hc_defrag_result r;
			char msg[512];
			s->cur = v->label;
			uint64_t t = hc_now_ns();
			int err = hc_defrag_home(s->j, v->vid, fd, v->size, &ho, &io, &r, msg,
						 sizeof(msg));
			v->ns += hc_now_ns() - t;
			v->done.moved += r.moved;
			v->done.zeroed += r.zeroed;
			v->done.bytes += r.bytes;
			v->done.ovf_freed += r.ovf_freed;
			v->done.batches += r.batches;
			v->done.kept_shared = r.kept_shared;
			v->done.kept_eof = r.kept_eof;
			if (s->pass == 1)
				s->base_blocks += r.moved + r.zeroed + r.kept_shared + r.kept_eof;
			s->base_bytes += r.bytes;
			moved += r.moved + r.zeroed;
			kept += r.kept_shared;
			if (err == -EINTR)
				return err;
			if (err) {
				if (s->bar)
					fputc('\n', stderr);
				hc_cli_die("%s/%s: %s", s->b->path, v->label, msg);
			}
		}
		if (s->o.dry_run || !moved || !kept)
			return 0;
	}
}

/* --- the report ---------------------------------------------------------------------------- */

static struct json_object *jloc(const struct hc_defrag_locality *l)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "blocks", json_object_new_uint64(l->blocks));
	json_object_object_add(o, "indirections", json_object_new_uint64(l->entries));
	json_object_object_add(o, "zero", json_object_new_uint64(l->zero));
	json_object_object_add(o, "runs", json_object_new_uint64(l->runs));
	json_object_object_add(o, "pairs", json_object_new_uint64(l->pairs));
	json_object_object_add(o, "jump_sum", json_object_new_uint64(l->jump_sum));
	json_object_object_add(o, "mean_jump", json_object_new_double(hc_defrag_mean_jump(l)));
	return o;
}

static struct json_object *jrow(const char *label, const struct hc_defrag_locality *before,
				const struct hc_defrag_locality *after,
				const struct hc_defrag_result *r, uint64_t ns)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "volume", json_object_new_string(label));
	json_object_object_add(o, "before", jloc(before));
	json_object_object_add(o, "after", jloc(after));
	json_object_object_add(o, "moved_blocks", json_object_new_uint64(r->moved));
	json_object_object_add(o, "zeroed_blocks", json_object_new_uint64(r->zeroed));
	json_object_object_add(o, "bytes_moved", json_object_new_uint64(r->bytes));
	json_object_object_add(o, "kept_blocks",
			       json_object_new_uint64(r->kept_shared + r->kept_eof));
	json_object_object_add(o, "kept_shared", json_object_new_uint64(r->kept_shared));
	json_object_object_add(o, "kept_past_end", json_object_new_uint64(r->kept_eof));
	json_object_object_add(o, "overflow_freed_blocks", json_object_new_uint64(r->ovf_freed));
	json_object_object_add(o, "seconds", json_object_new_double((double)ns / 1e9));
	return o;
}

/* A text table: rows of cells, printed with columns as wide as their widest cell. */
#define NCOL 7
struct table {
	char *(*cell)[NCOL];
	size_t n, cap;
};

/* Adds a row of malloc'ed cells, which the table owns. */
static void tadd(struct table *t, char **row)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? 2 * t->cap : 16;
		t->cell = realloc(t->cell, t->cap * sizeof(*t->cell));
		if (!t->cell)
			hc_cli_die("out of memory");
	}
	for (int c = 0; c < NCOL; c++)
		t->cell[t->n][c] = row[c];
	t->n++;
}

static void tprint(struct table *t)
{
	size_t w[NCOL] = { 0 };
	for (size_t r = 0; r < t->n; r++)
		for (int c = 0; c < NCOL; c++)
			if (strlen(t->cell[r][c]) > w[c])
				w[c] = strlen(t->cell[r][c]);
	for (size_t r = 0; r < t->n; r++) {
		for (int c = 0; c < NCOL; c++)
			printf(c == 0 ? "%-*s" : "  %*s", (int)w[c], t->cell[r][c]);
		putchar('\n');
	}
}

static void tfree(struct table *t)
{
	for (size_t r = 0; r < t->n; r++)
		for (int c = 0; c < NCOL; c++)
			free(t->cell[r][c]);
	free(t->cell);
}

static char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *strf(const char *fmt, ...)
{
	va_list ap;
	char *p;
	va_start(ap, fmt);
	if (vasprintf(&p, fmt, ap) < 0)
		hc_cli_die("out of memory");
	va_end(ap);
	return p;
}

static void trow(struct table *t, int dry, const char *label,
		 const struct hc_defrag_locality *b, const struct hc_defrag_locality *a,
		 const struct hc_defrag_result *r, uint64_t ns)
{
	char sz[32];
	char *row[NCOL];
	row[0] = xstrdup(label);
	if (dry) {
		row[1] = strf("%" PRIu64, b->entries);
		row[2] = strf("%" PRIu64, b->runs);
		row[3] = strf("%.2f", hc_defrag_mean_jump(b));
	} else {
		row[1] = strf("%" PRIu64 " -> %" PRIu64, b->entries, a->entries);
		row[2] = strf("%" PRIu64 " -> %" PRIu64, b->runs, a->runs);
		row[3] = strf("%.2f -> %.2f", hc_defrag_mean_jump(b), hc_defrag_mean_jump(a));
	}
	row[4] = xstrdup(hc_format_size(r->bytes, sz, sizeof(sz)));
	row[5] = strf("%" PRIu64, r->kept_shared + r->kept_eof);
	row[6] = strf("%.2f s", (double)ns / 1e9);
	tadd(t, row);
}

static void report(struct state *s, uint64_t ns, int interrupted)
{
	struct hc_defrag_locality tb = { 0 }, ta = { 0 };
	struct hc_defrag_result tr = { 0 };
	uint64_t tns = 0;
	struct json_object *vols = json_object_new_array();
	int dry = s->o.dry_run;
	struct table t = { .cell = NULL };
	const char *head[NCOL] = { "VOLUME", "INDIRECTIONS", "RUNS", "MEAN JUMP",
				   dry ? "WOULD MOVE" : "MOVED", dry ? "WOULD KEEP" : "KEPT",
				   "TIME" };
	char *row[NCOL];
	for (int c = 0; c < NCOL; c++)
		row[c] = xstrdup(head[c]);
	tadd(&t, row);
	for (size_t i = 0; i < s->nv; i++) {
		struct vol *v = &s->v[i];
		if (!v->chosen)
			continue;
		hc_defrag_locality_add(&tb, &v->before);
		hc_defrag_locality_add(&ta, &v->after);
		tr.moved += v->done.moved;
		tr.zeroed += v->done.zeroed;
		tr.bytes += v->done.bytes;
		tr.kept_shared += v->done.kept_shared;
		tr.kept_eof += v->done.kept_eof;
		tr.ovf_freed += v->done.ovf_freed;
		tns += v->ns;
		json_object_array_add(vols, jrow(v->label, &v->before, &v->after, &v->done, v->ns));
		trow(&t, dry, v->label, &v->before, &v->after, &v->done, v->ns);
	}
	trow(&t, dry, "total", &tb, &ta, &tr, tns);
	if (s->o.json) {
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "backing", json_object_new_string(s->b->path));
		json_object_object_add(o, "policy", json_object_new_string("home"));
		json_object_object_add(o, "dry_run", json_object_new_boolean(dry));
		json_object_object_add(o, "interrupted", json_object_new_boolean(interrupted));
		json_object_object_add(o, "passes", json_object_new_uint64(s->pass));
		json_object_object_add(o, "volumes", vols);
		json_object_object_add(o, "total", jrow("total", &tb, &ta, &tr, tns));
		json_object_object_add(o, "seconds", json_object_new_double((double)ns / 1e9));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		tfree(&t);
		return;
	}
	json_object_put(vols);
	tprint(&t);
	char sz[32];
	if (!tb.entries)
		printf("nothing to do: no indirections in the chosen volumes\n");
	else if (dry)
		printf("dry run: %" PRIu64 " blocks would go home (%" PRIu64 " copied, %" PRIu64
		       " ZERO punched), %" PRIu64 " kept (home block shared), %" PRIu64
		       " kept (past the end of the volume); nothing written\n",
		       tr.moved + tr.zeroed, tr.moved, tr.zeroed, tr.kept_shared, tr.kept_eof);
	else
		printf("%" PRIu64 " blocks sent home (%" PRIu64 " copied, %s; %" PRIu64
		       " ZERO punched), %" PRIu64 " kept (home block shared), %" PRIu64
		       " kept (past the end of the volume); overflow.dat: %" PRIu64
		       " blocks freed; %u pass%s, %.2f s%s\n", tr.moved + tr.zeroed, tr.moved,
		       hc_format_size(tr.bytes, sz, sizeof(sz)), tr.zeroed, tr.kept_shared,
		       tr.kept_eof, tr.ovf_freed, s->pass, s->pass == 1 ? "" : "es",
		       (double)ns / 1e9, interrupted ? "; interrupted" : "");
	tfree(&t);
}

/* --- main --------------------------------------------------------------------------------- */

enum { O_OFFLINE = 256, O_ONLINE, O_POLICY, O_RATE, O_JSON, O_DRY, O_VERSION };

static void parse(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "offline", required_argument, NULL, O_OFFLINE },
		{ "online", required_argument, NULL, O_ONLINE },
		{ "policy", required_argument, NULL, O_POLICY },
		{ "rate", required_argument, NULL, O_RATE },
		{ "json", no_argument, NULL, O_JSON },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, O_VERSION },
		{ 0 }
	};
	int c;
	o->policy = "home";
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", lo, NULL)) != -1) {
		switch (c) {
		case O_OFFLINE: o->offline = optarg; break;
		case O_ONLINE: o->online = optarg; break;
		case O_POLICY: o->policy = optarg; break;
		case O_RATE:
			o->rate = hc_cli_parse_double("--rate", optarg);
			if (o->rate < 0)
				hc_cli_die_usage("--rate: not a non-negative number: '%s'", optarg);
			break;
		case O_JSON: o->json = 1; break;
		case O_DRY: o->dry_run = 1; break;
		case 'h': usage(); exit(0);
		case O_VERSION: printf(PROG " %s\n", PACKAGE_VERSION); exit(0);
		case ':': hc_cli_die_usage("%s needs an argument", argv[optind - 1]);
		default: hc_cli_die_usage("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (o->offline && o->online)
		hc_cli_die_usage("--offline and --online: one or the other");
	if (!o->offline && !o->online)
		hc_cli_die_usage("say where: --offline BACKING (daemon stopped) or --online "
				 "SOCKET");
	if (strcmp(o->policy, "home") && strcmp(o->policy, "swap"))
		hc_cli_die_usage("--policy: expected home, not '%s'", o->policy);
	if (o->online)
		hc_cli_die("online defrag is not available yet; stop the daemon and use --offline");
	if (!strcmp(o->policy, "swap"))
		hc_cli_die("policy swap is not available yet; use --policy home");
}

int main(int argc, char **argv)
{
	hc_cli_init(PROG);
	struct state s = { .o = { 0 } };
	parse(argc, argv, &s.o);
	const char *dir = s.o.offline;
	char msg[PATH_MAX + 256];
	hc_log_set_level(LOG_WARNING);
	int err = hc_backing_open(dir, 0, &s.b, msg, sizeof(msg));
	if (err == -HC_ELOCKED)
		hc_cli_die("%s is in use by a running hecache-fs; --offline works only with the "
			   "daemon stopped (unmount first)", dir);
	if (err)
		hc_cli_die("%s", msg);
	if (!(s.b->sb.flags & HC_SB_F_CLEAN))
		fprintf(stderr, PROG ": warning: %s/%s is not marked clean (hecache-fs did not "
			"stop cleanly); working on what reached the disk\n", dir, HC_SB_FILE);
	scan(&s);
	choose(&s, argv + optind, argc - optind);

	struct stat st;
	if (fstatat(s.b->dirfd, HC_JOURNAL_FILE, &st, 0) == 0 ||
	    fstatat(s.b->dirfd, HC_CKPT_FILE, &st, 0) == 0) {
		struct hc_journal_opts jo = { .name = dir };
		err = hc_journal_open(s.b->dirfd, &jo, &s.j, msg, sizeof(msg));
		if (err)
			hc_cli_die("%s", msg);
	}	/* else never served with swap-reconcile: no maps, nothing to do */
	for (size_t i = 0; i < s.nv; i++)
		if (s.v[i].chosen) {
			locality(&s, &s.v[i], &s.v[i].before);
			s.todo += s.v[i].before.entries;
		}

	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	s.bar = isatty(STDERR_FILENO) && s.todo && !s.o.dry_run;
	s.t0 = hc_now_ns();
	struct hc_journal_stats js0, js1;
	if (s.j)
		hc_journal_stats(s.j, &js0);
	int interrupted = 0;
	if (s.j && s.todo)
		interrupted = defrag(&s) == -EINTR;
	if (s.bar)
		draw(&s, s.base_blocks, s.base_bytes, 1);
	if (s.j && !s.o.dry_run) {
		hc_journal_stats(s.j, &js1);
		if ((err = hc_journal_commit(s.j)))
			hc_cli_die("%s: committing the journal: %s", dir, strerror(-err));
		if ((js1.seq != js0.seq || js1.log_bytes) && (err = hc_journal_checkpoint(s.j)))
			hc_cli_die("%s: checkpointing the journal: %s", dir, strerror(-err));
	}
	for (size_t i = 0; i < s.nv; i++)
		if (s.v[i].chosen)
			locality(&s, &s.v[i], &s.v[i].after);
	report(&s, hc_now_ns() - s.t0, interrupted);
	if (interrupted)
		fprintf(stderr, PROG ": interrupted; what was done is durable, run again to "
			"continue\n");

	hc_journal_close(s.j);
	for (size_t i = 0; i < s.nv; i++) {
		if (s.v[i].fd >= 0)
			close(s.v[i].fd);
		free(s.v[i].dom);
		free(s.v[i].name);
		free(s.v[i].label);
	}
	free(s.v);
	if (ovf_fd >= 0)
		close(ovf_fd);
	hc_backing_close(s.b);
	return interrupted ? 1 : 0;
}
