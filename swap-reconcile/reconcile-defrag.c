// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * reconcile-defrag: restores the on-disk locality that indirections cost
 * (DESIGN.md "reconcile-defrag", reconcile-defrag(8)).
 *
 * Offline (--offline BACKING), with the daemon stopped: it takes the
 * backing directory's lock, opens the journal, and applies a policy of
 * defrag.h to the chosen volumes.  Policy home copies every indirected
 * block back to its home offset and drops its entry, in passes until a
 * pass moves nothing (a block kept because another volume's entry targets
 * its home block may move once that volume has gone home).  Policy swap
 * relocates the targets of scattered runs of entries into consecutive
 * overflow.dat blocks, in one pass.
 *
 * Online (--online SOCKET): a client of the daemon's defrag job
 * (doc/ctl-protocol.md, defrag_start / defrag_status / defrag_cancel),
 * which runs the same engine inside hecache-fs (cache-fs/odefrag.c); it
 * polls the job's status, cancels it on SIGINT/SIGTERM, and prints the same
 * report as offline from the job's final status.
 *
 * Either way it prints the locality before and after.  Exit codes: 0 done,
 * 1 error or refused or interrupted (or the job failed or was cancelled),
 * 2 usage, 3 daemon unreachable (--online).
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
#include "ctlclient.h"
#include "defrag.h"
#include "hecache/errors.h"
#include "hecache/format.h"
#include "journal.h"
#include "log.h"
#include "odefrag.h"
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
	int no_after;			/* online: the job did not report after */
	struct hc_defrag_result done;	/* summed over passes; kept_* of the last pass */
	uint64_t plan;			/* swap, progress bar: blocks it will relocate */
	uint64_t ns;
	char *state;			/* online: the volume's state in the job */
};

struct opts {
	const char *offline, *online, *policy;
	double rate;			/* MiB/s, 0: unlimited */
	int rate_set;			/* --rate given (online: else the daemon's default) */
	int json, dry_run;
	int swap;			/* policy swap */
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
	uint64_t bar_todo;		/* the progress bar's 100%: todo, or swap's plan */
	uint64_t base_blocks, base_bytes;	/* of the passes over earlier volumes */
	const char *cur;		/* volume in progress */
	unsigned pass;
	/* online */
	const char *state;		/* the job's final state */
	const char *message;		/* of a failed job */
	int resumed;
	double job_rate;
};

static volatile sig_atomic_t stop;	/* signals received */

static void on_signal(int sig)
{
	(void)sig;
	stop++;
}

static void usage(void)
{
	printf("Usage: " PROG " --offline BACKING [--policy home|swap] [--rate MiB/s]\n"
	       "                        [--dry-run] [--json] [DOMAIN/VOLUME...]\n"
	       "       " PROG " --online SOCKET [--policy home|swap] [--rate MiB/s] [--json]\n"
	       "                        [DOMAIN/VOLUME...]\n"
	       "Restores the locality that indirections cost: policy home copies indirected\n"
	       "blocks back to their volumes' home offsets and drops the indirections; policy\n"
	       "swap relocates the targets of logically consecutive indirections into\n"
	       "consecutive overflow.dat blocks.  Prints the locality (indirections, runs,\n"
	       "mean physical jump) before and after.  No VOLUME: all.\n"
	       "\n"
	       "  --offline BACKING  work on the backing directory BACKING (daemon stopped)\n"
	       "  --online SOCKET    through the running daemon's control socket\n"
	       "                     (BACKING/ctl.sock); SIGINT cancels the job\n"
	       "  --policy P         home (the default) or swap\n"
	       "  --rate R           at most R MiB/s written (fractions allowed; 0 unlimited;\n"
	       "                     default: offline unlimited, online the daemon's, 32)\n"
	       "  --dry-run          report what would move; change nothing (offline only)\n"
	       "  --json             the report as JSON\n"
	       "  -h, --help         this help\n"
	       "  --version          the version\n"
	       "Exit status: 0 done, 1 error (or refused, interrupted, cancelled, failed),\n"
	       "2 usage error, 3 daemon unreachable (--online).\n");
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
			/* swap writes only overflow.dat */
			int mode = v->chosen && !s->o.dry_run && !s->o.swap ? O_RDWR : O_RDONLY;
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

/*
 * The progress bar: blocks of todo, bytes written in secs, and what is
 * going on (pass and volume).
 */
static void draw(struct state *s, uint64_t blocks, uint64_t todo, uint64_t bytes, double secs,
		 const char *what, int last)
{
	uint64_t now = hc_now_ns();
	if (!last && now - s->last_draw < 100000000ull)
		return;
	s->last_draw = now;
	double frac = todo ? (double)blocks / (double)todo : 1.0;
	if (frac > 1.0)
		frac = 1.0;
	char bar[31];
	int full = (int)(frac * 30);
	for (int i = 0; i < 30; i++)
		bar[i] = i < full ? '#' : '.';
	bar[30] = 0;
	char sz[32];
	fprintf(stderr, "\r[%s] %3d%% %s %.1f MiB/s %-32.32s%s", bar, (int)(frac * 100),
		hc_format_size(bytes, sz, sizeof(sz)),
		secs > 0 ? (double)bytes / 1048576.0 / secs : 0.0, what, last ? "\n" : "");
}

/* The offline bar: time since the start, the pass and the volume. */
static void draw_offline(struct state *s, uint64_t blocks, uint64_t bytes, int last)
{
	char what[64];
	snprintf(what, sizeof(what), "pass %u %s", s->pass, s->cur ? s->cur : "");
	draw(s, blocks, s->bar_todo, bytes, (double)(hc_now_ns() - s->t0) / 1e9, what, last);
}

/* Sleeps ns, or until a signal comes after the first `seen`. */
static void nap(uint64_t ns, sig_atomic_t seen)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull),
			       .tv_nsec = (long)(ns % 1000000000ull) };
	while (stop == seen && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int batch_done(void *arg, const struct hc_defrag_result *r)
{
	struct state *s = arg;
	/* pass 1 visits every entry once; later passes move blocks it counted as kept;
	 * swap counts the blocks it relocates, of its plan */
	uint64_t blocks = s->base_blocks;
	if (s->o.swap)
		blocks += r->relocated;
	else if (s->pass == 1)
		blocks += r->moved + r->zeroed + r->kept_shared + r->kept_eof;
	uint64_t bytes = s->base_bytes + r->bytes;
	if (s->o.rate > 0) {
		uint64_t due = s->t0 + (uint64_t)((double)bytes / (s->o.rate * 1048576.0) * 1e9);
		uint64_t now = hc_now_ns();
		if (due > now)
			nap(due - now, 0);
	}
	if (s->bar)
		draw_offline(s, blocks, bytes, 0);
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

/* Swap's progress bar counts relocated blocks: how many of them there will be. */
static void plan(struct state *s)
{
	struct hc_defrag_home_opts ho = { .dry_run = 1 };
	struct hc_defrag_io io = { .file_fd = file_fd, .arg = s };
	s->bar_todo = 0;
	for (size_t i = 0; i < s->nv; i++) {
		struct vol *v = &s->v[i];
		struct hc_defrag_result r;
		char msg[512];
		if (!v->chosen || !v->vid || !v->before.entries)
			continue;
		if (hc_defrag_swap(s->j, v->vid, v->size, &ho, &io, &r, msg, sizeof(msg)) == 0)
			s->bar_todo += r.relocated;
	}
	s->bar = s->bar_todo > 0;
}

/*
 * Passes of policy home until one moves nothing, or one pass of policy
 * swap; 0, or -EINTR when stopped.
 */
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
			struct hc_defrag_result r;
			char msg[512];
			s->cur = v->label;
			uint64_t t = hc_now_ns();
			int err;
			if (s->o.swap) {
				err = hc_defrag_swap(s->j, v->vid, v->size, &ho, &io, &r, msg,
						     sizeof(msg));
			} else {
				int fd = file_fd(s, v->vid);
				if (fd < 0)
					hc_cli_die("%s/%s: %s", s->b->path, v->label,
						   strerror(-fd));
				err = hc_defrag_home(s->j, v->vid, fd, v->size, &ho, &io, &r, msg,
						     sizeof(msg));
			}
			v->ns += hc_now_ns() - t;
			hc_defrag_result_add(&v->done, &r);
			if (s->o.swap)
				s->base_blocks += r.relocated;
			else if (s->pass == 1)
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
		if (s->o.swap || s->o.dry_run || !moved || !kept)
			return 0;
	}
}

/* --- the report ---------------------------------------------------------------------------- */

/* One row of the report; after NULL: not known (online, the job did not get there). */
static struct json_object *jrow(const char *label, const char *state,
				const struct hc_defrag_locality *before,
				const struct hc_defrag_locality *after,
				const struct hc_defrag_result *r, uint64_t ns)
{
	struct json_object *o = json_object_new_object();
	json_object_object_add(o, "volume", json_object_new_string(label));
	if (state)
		json_object_object_add(o, "state", json_object_new_string(state));
	json_object_object_add(o, "before", hc_odefrag_locality_json(before));
	json_object_object_add(o, "after", after ? hc_odefrag_locality_json(after) : NULL);
	json_object_object_add(o, "moved_blocks", json_object_new_uint64(r->moved));
	json_object_object_add(o, "zeroed_blocks", json_object_new_uint64(r->zeroed));
	json_object_object_add(o, "relocated_blocks", json_object_new_uint64(r->relocated));
	json_object_object_add(o, "bytes_moved", json_object_new_uint64(r->bytes));
	json_object_object_add(o, "kept_blocks", json_object_new_uint64(r->kept_shared +
									r->kept_eof +
									r->kept_busy));
	json_object_object_add(o, "kept_shared", json_object_new_uint64(r->kept_shared));
	json_object_object_add(o, "kept_past_end", json_object_new_uint64(r->kept_eof));
	json_object_object_add(o, "kept_busy", json_object_new_uint64(r->kept_busy));
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
	} else if (!a) {
		row[1] = strf("%" PRIu64 " -> -", b->entries);
		row[2] = strf("%" PRIu64 " -> -", b->runs);
		row[3] = strf("%.2f -> -", hc_defrag_mean_jump(b));
	} else {
		row[1] = strf("%" PRIu64 " -> %" PRIu64, b->entries, a->entries);
		row[2] = strf("%" PRIu64 " -> %" PRIu64, b->runs, a->runs);
		row[3] = strf("%.2f -> %.2f", hc_defrag_mean_jump(b), hc_defrag_mean_jump(a));
	}
	row[4] = xstrdup(hc_format_size(r->bytes, sz, sizeof(sz)));
	row[5] = strf("%" PRIu64, r->kept_shared + r->kept_eof + r->kept_busy);
	row[6] = strf("%.2f s", (double)ns / 1e9);
	tadd(t, row);
}

/* The line under the table. */
static void summary(struct state *s, const struct hc_defrag_locality *tb,
		    const struct hc_defrag_result *tr, uint64_t ns, int interrupted)
{
	char sz[32], busy[64] = "", passes[32] = "", end[64] = "";
	hc_format_size(tr->bytes, sz, sizeof(sz));
	if (tr->kept_busy)
		snprintf(busy, sizeof(busy), ", %" PRIu64 " kept (being written)", tr->kept_busy);
	if (!s->o.online)
		snprintf(passes, sizeof(passes), "%u pass%s, ", s->pass, s->pass == 1 ? "" : "es");
	if (s->state && strcmp(s->state, "done"))
		snprintf(end, sizeof(end), "; %s", s->state);
	else if (interrupted)
		snprintf(end, sizeof(end), "; interrupted");
	if (!tb->entries)
		printf("nothing to do: no indirections in the chosen volumes\n");
	else if (s->o.dry_run && s->o.swap)
		printf("dry run: %" PRIu64 " blocks would be relocated (%s), %" PRIu64
		       " kept (past the end of the volume); nothing written\n", tr->relocated, sz,
		       tr->kept_eof);
	else if (s->o.dry_run)
		printf("dry run: %" PRIu64 " blocks would go home (%" PRIu64 " copied, %" PRIu64
		       " ZERO punched), %" PRIu64 " kept (home block shared), %" PRIu64
		       " kept (past the end of the volume); nothing written\n",
		       tr->moved + tr->zeroed, tr->moved, tr->zeroed, tr->kept_shared,
		       tr->kept_eof);
	else if (s->o.swap)
		printf("%" PRIu64 " blocks relocated (%s written to overflow.dat), %" PRIu64
		       " kept (past the end of the volume)%s; overflow.dat: %" PRIu64
		       " blocks freed; %s%.2f s%s\n", tr->relocated, sz, tr->kept_eof, busy,
		       tr->ovf_freed, passes, (double)ns / 1e9, end);
	else
		printf("%" PRIu64 " blocks sent home (%" PRIu64 " copied, %s; %" PRIu64
		       " ZERO punched), %" PRIu64 " kept (home block shared), %" PRIu64
		       " kept (past the end of the volume)%s; overflow.dat: %" PRIu64
		       " blocks freed; %s%.2f s%s\n", tr->moved + tr->zeroed, tr->moved, sz,
		       tr->zeroed, tr->kept_shared, tr->kept_eof, busy, tr->ovf_freed, passes,
		       (double)ns / 1e9, end);
}

static void report(struct state *s, uint64_t ns, int interrupted)
{
	struct hc_defrag_locality tb = { 0 }, ta = { 0 };
	struct hc_defrag_result tr = { 0 };
	uint64_t tns = 0;
	int no_after = 0;
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
		no_after |= v->no_after;
		tr.moved += v->done.moved;
		tr.zeroed += v->done.zeroed;
		tr.relocated += v->done.relocated;
		tr.bytes += v->done.bytes;
		tr.kept_shared += v->done.kept_shared;
		tr.kept_eof += v->done.kept_eof;
		tr.kept_busy += v->done.kept_busy;
		tr.ovf_freed += v->done.ovf_freed;
		tns += v->ns;
		const struct hc_defrag_locality *after = v->no_after ? NULL : &v->after;
		json_object_array_add(vols, jrow(v->label, v->state, &v->before, after, &v->done,
						 v->ns));
		/* online, a volume the job did not finish says so */
		char *label = v->state && strcmp(v->state, "done") ?
			      strf("%s (%s)", v->label, v->state) : xstrdup(v->label);
		trow(&t, dry, label, &v->before, after, &v->done, v->ns);
		free(label);
	}
	trow(&t, dry, "total", &tb, no_after ? NULL : &ta, &tr, tns);
	if (s->o.json) {
		struct json_object *o = json_object_new_object();
		if (s->o.online) {
			json_object_object_add(o, "socket", json_object_new_string(s->o.online));
			json_object_object_add(o, "state", json_object_new_string(s->state));
			if (s->message)
				json_object_object_add(o, "message",
						       json_object_new_string(s->message));
			json_object_object_add(o, "resumed", json_object_new_boolean(s->resumed));
			json_object_object_add(o, "rate", json_object_new_double(s->job_rate));
		} else {
			json_object_object_add(o, "backing", json_object_new_string(s->b->path));
		}
		json_object_object_add(o, "policy", json_object_new_string(s->o.policy));
		json_object_object_add(o, "dry_run", json_object_new_boolean(dry));
		json_object_object_add(o, "interrupted", json_object_new_boolean(interrupted));
		if (!s->o.online)
			json_object_object_add(o, "passes", json_object_new_uint64(s->pass));
		json_object_object_add(o, "volumes", vols);
		json_object_object_add(o, "total", jrow("total", NULL, &tb, no_after ? NULL : &ta,
							&tr, tns));
		json_object_object_add(o, "seconds", json_object_new_double((double)ns / 1e9));
		puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
		tfree(&t);
		return;
	}
	json_object_put(vols);
	tprint(&t);
	summary(s, &tb, &tr, ns, interrupted);
	tfree(&t);
}

/* --- online: a client of the daemon's defrag job ----------------------------------------- */

#define X_NODAEMON 3			/* exit status: the daemon is unreachable (as hectl) */
#define POLL_NS 200000000ull		/* defrag_status every 200 ms */

static struct json_object *jget(struct json_object *o, const char *k)
{
	struct json_object *v = NULL;
	return o && json_object_object_get_ex(o, k, &v) ? v : NULL;
}

static uint64_t ju64(struct json_object *o, const char *k)
{
	struct json_object *v = jget(o, k);
	return v && (json_object_is_type(v, json_type_int) ||
		     json_object_is_type(v, json_type_double)) ? json_object_get_uint64(v) : 0;
}

static const char *jstr(struct json_object *o, const char *k)
{
	struct json_object *v = jget(o, k);
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* A LOC object of the status into l; 0, or -1 when o is not an object (null). */
static int unloc(struct json_object *o, struct hc_defrag_locality *l)
{
	memset(l, 0, sizeof(*l));
	if (!json_object_is_type(o, json_type_object))
		return -1;
	l->blocks = ju64(o, "blocks");
	l->entries = ju64(o, "indirections");
	l->zero = ju64(o, "zero");
	l->runs = ju64(o, "runs");
	l->pairs = ju64(o, "pairs");
	l->jump_sum = ju64(o, "jump_sum");
	return 0;
}

static struct json_object *request(const char *op)
{
	struct json_object *r = json_object_new_object();
	json_object_object_add(r, "op", json_object_new_string(op));
	return r;
}

/* Ends the progress bar's line before a message. */
static void bar_break(struct state *s)
{
	if (s->bar && s->last_draw)
		fputc('\n', stderr);
	s->bar = 0;
}

/* Sends req (consumed) over fd; the reply.  Exits 3 when the daemon is gone. */
static struct json_object *call(struct state *s, int fd, struct json_object *req)
{
	struct json_object *reply = NULL;
	int err = hc_ctl_call(fd, req, &reply);
	json_object_put(req);
	if (err)
		bar_break(s);
	if (err == -EPROTO)
		hc_cli_die("%s: the daemon's reply is not a JSON object", s->o.online);
	if (err == -ECONNRESET) {
		fprintf(stderr, PROG ": %s: the daemon closed the connection\n", s->o.online);
		exit(X_NODAEMON);
	}
	if (err) {
		fprintf(stderr, PROG ": %s: %s\n", s->o.online, strerror(-err));
		exit(X_NODAEMON);
	}
	return reply;
}

/* Exits 1 with the reply's error when it is not ok. */
static void check_ok(struct state *s, struct json_object *reply, const char *op)
{
	if (json_object_get_boolean(jget(reply, "ok")))
		return;
	char text[1024];
	bar_break(s);
	const char *e = jstr(reply, "error");
	if (e && !strcmp(e, "EBUSY") && !strcmp(op, "defrag_start"))
		hc_cli_die("a defrag job is running already in the daemon at %s (%s); wait for "
			   "it to end, or cancel it", s->o.online,
			   hc_ctl_errtext(reply, text, sizeof(text)));
	hc_cli_die("%s: %s refused: %s", s->o.online, op,
		   hc_ctl_errtext(reply, text, sizeof(text)));
}

static int final_state(const char *st)
{
	return !strcmp(st, "done") || !strcmp(st, "cancelled") || !strcmp(st, "failed");
}

/* The running volume of a status, for the progress bar. */
static const char *running(struct json_object *status)
{
	struct json_object *vols = jget(status, "volumes");
	size_t n = json_object_is_type(vols, json_type_array) ? json_object_array_length(vols) : 0;
	for (size_t i = 0; i < n; i++) {
		struct json_object *v = json_object_array_get_idx(vols, i);
		const char *st = jstr(v, "state"), *name = jstr(v, "volume");
		if (st && name && !strcmp(st, "running"))
			return name;
	}
	return "";
}

/* The final status into s's volumes and job members, for report(). */
static void take_status(struct state *s, struct json_object *status)
{
	struct json_object *vols = jget(status, "volumes");
	size_t n = json_object_is_type(vols, json_type_array) ? json_object_array_length(vols) : 0;
	s->v = xcalloc(n, sizeof(*s->v));
	for (size_t i = 0; i < n; i++) {
		struct json_object *o = json_object_array_get_idx(vols, i);
		const char *label = jstr(o, "volume"), *st = jstr(o, "state");
		struct vol *v = &s->v[s->nv++];
		v->label = xstrdup(label ? label : "?");
		v->state = xstrdup(st ? st : "?");
		v->fd = -1;
		v->chosen = 1;
		unloc(jget(o, "before"), &v->before);
		v->no_after = unloc(jget(o, "after"), &v->after) < 0;
		v->done.moved = ju64(o, "moved");
		v->done.zeroed = ju64(o, "zeroed");
		v->done.relocated = ju64(o, "relocated");
		v->done.bytes = ju64(o, "bytes");
		v->done.kept_shared = ju64(o, "kept_shared");
		v->done.kept_eof = ju64(o, "kept_eof");
		v->done.kept_busy = ju64(o, "kept_busy");
		v->done.ovf_freed = ju64(o, "ovf_freed");
		v->done.batches = ju64(o, "batches");
		v->ns = ju64(o, "ns");
	}
	const char *policy = jstr(status, "policy");
	if (policy && (!strcmp(policy, "home") || !strcmp(policy, "swap"))) {
		s->o.policy = !strcmp(policy, "home") ? "home" : "swap";
		s->o.swap = !strcmp(policy, "swap");
	}
	const char *m = jstr(status, "message");
	s->message = m ? xstrdup(m) : NULL;
	s->resumed = json_object_get_boolean(jget(status, "resumed"));
	s->job_rate = json_object_get_double(jget(status, "rate"));
}

/*
 * --online: starts the daemon's job, polls it to its end (cancelling it on
 * SIGINT/SIGTERM), reports.  Returns the exit status.
 */
static int online(struct state *s, char **args, int n)
{
	const char *sock = s->o.online;
	for (int i = 0; i < n; i++)
		if (!valid_label(args[i]))
			hc_cli_die_usage("'%s': name a volume as DOMAIN/VOLUME", args[i]);
	int fd = hc_ctl_connect(sock);
	if (fd < 0) {
		fprintf(stderr, PROG ": cannot connect to %s: %s\n", sock, strerror(-fd));
		return X_NODAEMON;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	struct json_object *req = request("defrag_start");
	json_object_object_add(req, "policy", json_object_new_string(s->o.policy));
	if (s->o.rate_set)
		json_object_object_add(req, "rate", json_object_new_double(s->o.rate));
	if (n) {
		struct json_object *vols = json_object_new_array();
		for (int i = 0; i < n; i++)
			json_object_array_add(vols, json_object_new_string(args[i]));
		json_object_object_add(req, "volumes", vols);
	}
	struct json_object *status = call(s, fd, req);
	check_ok(s, status, "defrag_start");
	s->t0 = hc_now_ns();
	s->bar = isatty(STDERR_FILENO);
	sig_atomic_t seen = 0;	/* signals acted on */
	const char *st;
	for (;;) {
		st = jstr(status, "state");
		if (!st) {
			bar_break(s);
			hc_cli_die("%s: the daemon's defrag status has no state", sock);
		}
		if (final_state(st))
			break;
		if (!strcmp(st, "idle")) {
			bar_break(s);
			hc_cli_die("%s: the daemon has no defrag job any more (was it restarted?)",
				   sock);
		}
		if (s->bar)
			draw(s, ju64(status, "done_blocks"), ju64(status, "todo_blocks"),
			     ju64(status, "bytes"), (double)ju64(status, "elapsed_ns") / 1e9,
			     running(status), 0);
		if (stop != seen) {
			if (seen) {
				bar_break(s);
				hc_cli_die("not waiting any longer; the daemon stops the job after "
					   "its current batch (status: defrag_status on %s)", sock);
			}
			seen = stop;
			json_object_put(status);
			status = call(s, fd, request("defrag_cancel"));
			check_ok(s, status, "defrag_cancel");
			continue;
		}
		nap(POLL_NS, seen);
		json_object_put(status);
		status = call(s, fd, request("defrag_status"));
		check_ok(s, status, "defrag_status");
	}
	if (s->bar)
		draw(s, ju64(status, "done_blocks"), ju64(status, "todo_blocks"),
		     ju64(status, "bytes"), (double)ju64(status, "elapsed_ns") / 1e9, st, 1);
	s->bar = 0;
	s->state = st;
	take_status(s, status);
	int done = !strcmp(st, "done");
	report(s, ju64(status, "elapsed_ns"), !strcmp(st, "cancelled"));
	fflush(stdout);
	if (!strcmp(st, "failed"))
		fprintf(stderr, PROG ": the defrag job failed: %s\n",
			s->message ? s->message : "(no message)");
	else if (!done && s->message)
		fprintf(stderr, PROG ": the defrag job was cancelled: %s\n", s->message);
	else if (!done)
		fprintf(stderr, PROG ": the defrag job was cancelled%s; what was done is durable, "
			"start it again to continue\n", seen ? "" : " (not by us)");
	/* st points into status */
	s->state = NULL;
	json_object_put(status);
	close(fd);
	for (size_t i = 0; i < s->nv; i++) {
		free(s->v[i].label);
		free(s->v[i].state);
	}
	free(s->v);
	free((char *)s->message);
	return done ? 0 : 1;
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
			o->rate_set = 1;
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
		hc_cli_die_usage("--policy: expected home or swap, not '%s'", o->policy);
	o->swap = !strcmp(o->policy, "swap");
	if (o->online && o->dry_run)
		hc_cli_die_usage("--dry-run works only with --offline (the daemon's job has no dry "
				 "run)");
}

int main(int argc, char **argv)
{
	hc_cli_init(PROG);
	struct state s = { .o = { 0 } };
	parse(argc, argv, &s.o);
	if (s.o.online)
		return online(&s, argv + optind, argc - optind);
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
	s.bar = isatty(STDERR_FILENO) && s.todo && !s.o.dry_run && s.j;
	s.bar_todo = s.todo;
	if (s.bar && s.o.swap)
		plan(&s);
	s.t0 = hc_now_ns();
	struct hc_journal_stats js0, js1;
	if (s.j)
		hc_journal_stats(s.j, &js0);
	int interrupted = 0;
	if (s.j && s.todo)
		interrupted = defrag(&s) == -EINTR;
	if (s.bar)
		draw_offline(&s, s.base_blocks, s.base_bytes, 1);
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
