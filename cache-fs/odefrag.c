// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Online reconcile-defrag (odefrag.h): the job thread, its rate limit and
 * its yielding, the job file, and the status the control socket reports.
 *
 * DOC: why online is safe.  The engine (swap-reconcile/defrag.c) forms,
 * copies, syncs and drops each batch between its begin and end hooks; here
 * they take and release the volume's rlock, which every other writer of
 * the volume's home file and map holds (write-back runs, discard,
 * truncate, unlink, copy_file_range; reconcile.c).  So, during a batch:
 *   - a home block found unshared (count 0) stays unshared: a dedup that
 *     would share it compares its bytes under the same rlock;
 *   - no write-back writes the home block or changes the entry between
 *     the copy and the drop, so the bytes copied home are the entry's;
 *   - an asynchronous write-back run still in flight (it holds no rlock)
 *     covers only blocks without entries when it was classified, and its
 *     blocks are skipped anyway (hc_rc_in_flight);
 *   - readers are kept out only while entries are dropped (maplock): a
 *     reader that resolved a block through its entry reads the target,
 *     which still holds the same bytes; one that finds no entry reads the
 *     home block, already synced.
 * Policy swap writes only overflow blocks it reserved (under ovf_lock, so
 * no dedup compare sees them before an entry points at them; their owner
 * is the volume's domain, I2) and re-points entries under the maplock.
 * Freed overflow blocks are punched under ovf_lock after the commit that
 * freed them, checked free under that lock, so no allocation can hand one
 * out and write it before the punch.  Blocks dirty in the cache need
 * nothing: their write-back comes later and writes over whatever defrag
 * left (it runs under the rlock too).
 *
 * DOC: sharing the disk with the guests.  A batch is at most ONLINE_BATCH
 * blocks (fewer at low rates: about ten batches a second), so a write-back
 * of the volume waits for one batch at most (a few ms: its reads, one
 * fdatasync of the home file, one journal commit).  Between batches the
 * job sleeps for the rate limit (bytes written home or to overflow.dat),
 * and, when guests issued reads or writes since the last batch, until they
 * have been quiet for QUIET_MS, at most YIELD_MAX_MS, so under constant
 * guest load the job still advances a batch per YIELD_MAX_MS.
 *
 * Limits: one job at a time; policy home makes up to MAX_PASSES passes
 * over a volume (a block kept because another volume's entry targets its
 * home block may go home once that volume has); entries created behind
 * the job's cursor while it runs are left for the next job.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "defrag.h"
#include "hecache/ctl.h"
#include "log.h"
#include "odefrag.h"
#include "util.h"
#include "volume.h"

#define ONLINE_BATCH 64u	/* blocks per batch at most */
#define QUIET_MS 2
#define YIELD_MAX_MS 50
#define MAX_PASSES 4
#define JOB_TMP HC_DEFRAG_JOB_FILE ".tmp"

enum { J_IDLE, J_RUNNING, J_DONE, J_CANCELLED, J_FAILED };
enum { V_PENDING, V_RUNNING, V_DONE, V_FAILED, V_GONE, V_STOPPED };

static const char *const job_states[] = { "idle", "running", "done", "cancelled", "failed" };
static const char *const vol_states[] = { "pending", "running", "done", "failed", "gone",
					      "stopped" };
static const char *const policies[] = { "home", "swap" };

struct jvol {
	char *label;			/* DOMAIN/NAME */
	int state;			/* V_* */
	int has_after;
	struct hc_defrag_locality before, after;
	struct hc_defrag_result r;	/* summed over passes; kept_* of the last */
	uint64_t ns;
};

struct hc_odefrag {
	struct hc_fs *fs;
	pthread_mutex_t lock;		/* everything below */
	pthread_cond_t cond;		/* cancel/stop wake the job's sleeps */
	pthread_t thread;
	int joinable;			/* thread started, not joined */
	int state;			/* J_* */
	int cancel, stop;		/* requests: cancel (drop the job), stop (unmount) */
	int policy, resumed;
	double rate;			/* MiB/s, 0: unlimited */
	struct jvol *v;
	size_t nv;
	uint64_t t0, t1;		/* start, end (0: running) */
	uint64_t todo, done_base, done_cur;	/* entries: all, finished passes, this pass */
	uint64_t bytes_base, bytes_cur;		/* bytes written, likewise */
	uint64_t guest_ops;		/* fs->guest_ops after the last batch */
	char msg[512];
};

int hc_odefrag_create(struct hc_fs *fs, struct hc_odefrag **out)
{
	struct hc_odefrag *od = calloc(1, sizeof(*od));
	if (!od)
		return -ENOMEM;
	od->fs = fs;
	pthread_mutex_init(&od->lock, NULL);
	pthread_cond_init(&od->cond, NULL);
	*out = od;
	return 0;
}

static void free_vols(struct hc_odefrag *od)
{
	for (size_t i = 0; i < od->nv; i++)
		free(od->v[i].label);
	free(od->v);
	od->v = NULL;
	od->nv = 0;
}

/* Joins a finished or stopping thread.  lock not held. */
static void join(struct hc_odefrag *od)
{
	if (od->joinable) {
		pthread_join(od->thread, NULL);
		od->joinable = 0;
	}
}

void hc_odefrag_destroy(struct hc_odefrag *od)
{
	if (!od)
		return;
	pthread_mutex_lock(&od->lock);
	od->stop = 1;
	pthread_cond_broadcast(&od->cond);
	pthread_mutex_unlock(&od->lock);
	join(od);
	free_vols(od);
	pthread_cond_destroy(&od->cond);
	pthread_mutex_destroy(&od->lock);
	free(od);
}

/* --- the job file ------------------------------------------------------------------ */

/* Writes BACKING/defrag.job for the job in od (lock held); 0 or -errno. */
static int save_job(struct hc_odefrag *od)
{
	struct json_object *o = json_object_new_object(), *a = json_object_new_array();
	json_object_object_add(o, "policy", json_object_new_string(policies[od->policy]));
	json_object_object_add(o, "rate", json_object_new_double(od->rate));
	for (size_t i = 0; i < od->nv; i++)
		json_object_array_add(a, json_object_new_string(od->v[i].label));
	json_object_object_add(o, "volumes", a);
	const char *s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	int dirfd = od->fs->b->dirfd, err = 0;
	int fd = openat(dirfd, JOB_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		err = -errno;
	if (!err)
		err = hc_pwrite_all(fd, s, strlen(s), 0);
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (fd >= 0)
		close(fd);
	if (!err && renameat(dirfd, JOB_TMP, dirfd, HC_DEFRAG_JOB_FILE) < 0)
		err = -errno;
	if (!err)
		fsync(dirfd);
	json_object_put(o);
	return err;
}

static void drop_job(struct hc_odefrag *od)
{
	int dirfd = od->fs->b->dirfd;
	if (unlinkat(dirfd, HC_DEFRAG_JOB_FILE, 0) == 0)
		fsync(dirfd);
	else if (errno != ENOENT)
		hc_log(LOG_WARNING, "%s/%s: cannot remove: %s", od->fs->b->path,
		       HC_DEFRAG_JOB_FILE, strerror(errno));
}

/* --- one volume ---------------------------------------------------------------------- */

struct run {
	struct hc_fs *fs;
	struct hc_odefrag *od;		/* NULL: hc_odefrag_unshare() */
	struct hc_volume *v;
	struct jvol *jv;
	int home_fd;			/* a descriptor of v's home file without O_DIRECT */
	uint64_t batch_t0;
};

static int file_fd(void *arg, uint32_t file)
{
	struct run *x = arg;
	struct hc_fs *fs = x->fs;
	if (file == HC_PHYS_OVERFLOW)
		return fs->ovf_fd;
	if (file == x->v->vid)
		return x->home_fd;
	/* Listed while one of v's entries (v's rlock held) points into it. */
	struct hc_volume *t = hc_ns_find_vid(fs, file);
	return t ? t->cv.fd : -ENOENT;
}

static int begin(void *arg, uint64_t *size)
{
	struct run *x = arg;
	pthread_mutex_lock(&x->v->rlock);
	if (!x->v->map || hc_ns_find_vid(x->fs, x->v->vid) != x->v) {
		pthread_mutex_unlock(&x->v->rlock);
		return 1;	/* unlinked or replaced meanwhile */
	}
	*size = hc_vol_size(x->v);
	return 0;
}

static void end(void *arg)
{
	struct run *x = arg;
	pthread_mutex_unlock(&x->v->rlock);
}

static void hold(void *arg, int what, int on)
{
	struct run *x = arg;
	if (what == HC_DEFRAG_HOLD_MAP) {
		if (on)
			pthread_rwlock_wrlock(&x->v->maplock);
		else
			pthread_rwlock_unlock(&x->v->maplock);
	} else if (on) {
		pthread_mutex_lock(&x->fs->ovf_lock);
	} else {
		pthread_mutex_unlock(&x->fs->ovf_lock);
	}
}

static int skip(void *arg, uint64_t lblk)
{
	struct run *x = arg;
	return hc_rc_in_flight(x->v, lblk);
}

/* Policy swap's new overflow blocks hold v's data: its domain's (I2). */
static void allocated(void *arg, uint64_t start, uint64_t n)
{
	struct run *x = arg;
	hc_rc_ovf_owner(x->fs, start, n, x->v);
}

/* Sleeps until deadline (hc_now_ns) unless stopped; lock held. */
static void sleep_until(struct hc_odefrag *od, uint64_t deadline)
{
	while (!od->cancel && !od->stop) {
		uint64_t now = hc_now_ns();
		if (now >= deadline)
			return;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t t = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec +
			     (deadline - now);
		ts.tv_sec = (time_t)(t / 1000000000ull);
		ts.tv_nsec = (long)(t % 1000000000ull);
		pthread_cond_timedwait(&od->cond, &od->lock, &ts);
	}
}

static uint64_t visited(const struct hc_defrag_result *r)
{
	return r->moved + r->zeroed + r->relocated + r->kept_shared + r->kept_eof + r->kept_busy;
}

/* After each batch: progress, rate limit, yielding.  Non-zero stops the pass. */
static int batch_done(void *arg, const struct hc_defrag_result *r)
{
	struct run *x = arg;
	struct hc_odefrag *od = x->od;
	pthread_mutex_lock(&od->lock);
	od->done_cur = visited(r);
	od->bytes_cur = r->bytes;
	if (od->rate > 0) {
		double bytes = (double)(od->bytes_base + od->bytes_cur);
		sleep_until(od, od->t0 + (uint64_t)(bytes / (od->rate * 1048576.0) * 1e9));
	}
	/* Guests were busy since the last batch: wait for a quiet moment. */
	uint64_t limit = hc_now_ns() + YIELD_MAX_MS * 1000000ull;
	for (;;) {
		uint64_t ops = __atomic_load_n(&od->fs->guest_ops, __ATOMIC_RELAXED);
		if (ops == od->guest_ops || hc_now_ns() >= limit || od->cancel || od->stop) {
			od->guest_ops = ops;
			break;
		}
		od->guest_ops = ops;
		sleep_until(od, hc_now_ns() + QUIET_MS * 1000000ull);
	}
	int quit = od->cancel || od->stop;
	pthread_mutex_unlock(&od->lock);
	return quit;
}

static uint64_t nblocks(uint64_t size)
{
	return (size + HC_BLOCK_SIZE - 1) / HC_BLOCK_SIZE;
}

static void locality(struct hc_volume *v, struct hc_defrag_locality *out)
{
	pthread_mutex_lock(&v->rlock);
	hc_defrag_locality(v->map, v->vid, nblocks(hc_vol_size(v)), out);
	pthread_mutex_unlock(&v->rlock);
}

/* Looks up and pins DOMAIN/NAME; 0 or -ENOENT. */
static int find_volume(struct hc_fs *fs, const char *label, struct hc_node **dn,
		       struct hc_volume **out)
{
	const char *slash = strchr(label, '/');
	char dom[NAME_MAX + 1];
	if (!slash || (size_t)(slash - label) > NAME_MAX)
		return -ENOENT;
	memcpy(dom, label, (size_t)(slash - label));
	dom[slash - label] = 0;
	struct hc_node *d, *n;
	if (hc_ns_lookup(fs, &fs->root, dom, &d))
		return -ENOENT;
	if (d->type != HC_NODE_DOMAIN || hc_ns_lookup(fs, d, slash + 1, &n)) {
		hc_ns_forget(fs, d, 1);
		return -ENOENT;
	}
	if (n->type != HC_NODE_VOLUME) {
		hc_ns_forget(fs, n, 1);
		hc_ns_forget(fs, d, 1);
		return -ENOENT;
	}
	*dn = d;
	*out = (struct hc_volume *)n;
	return 0;
}

/* A descriptor of v's home file the engine can write partial blocks through. */
static int open_home(struct hc_volume *v, int *fd)
{
	*fd = v->cv.fd;
	if (!v->direct)
		return 0;
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", v->cv.fd);
	*fd = open(path, O_RDWR | O_CLOEXEC);
	return *fd < 0 ? -errno : 0;
}

/* Runs the job's policy over one volume; 0, -EINTR (stopped) or -errno (od->msg). */
static int do_volume(struct hc_odefrag *od, struct jvol *jv)
{
	struct hc_fs *fs = od->fs;
	struct hc_node *dn;
	struct hc_volume *v;
	int gone = find_volume(fs, jv->label, &dn, &v) != 0;
	if (!gone && !v->map) {
		hc_ns_forget(fs, &v->node, 1);
		hc_ns_forget(fs, dn, 1);
		gone = 1;
	}
	if (gone) {
		pthread_mutex_lock(&od->lock);
		jv->state = V_GONE;
		pthread_mutex_unlock(&od->lock);
		return 0;
	}
	struct hc_defrag_locality before;
	locality(v, &before);
	struct run x = { .fs = fs, .od = od, .v = v, .jv = jv };
	int err = open_home(v, &x.home_fd);
	pthread_mutex_lock(&od->lock);
	jv->before = before;
	jv->state = V_RUNNING;
	pthread_mutex_unlock(&od->lock);
	uint32_t batch = ONLINE_BATCH;
	if (od->rate > 0) {
		double b = od->rate * 1048576.0 / 10 / HC_BLOCK_SIZE;
		batch = b < 1 ? 1 : b > ONLINE_BATCH ? ONLINE_BATCH : (uint32_t)b;
	}
	struct hc_defrag_home_opts o = { .batch_blocks = batch };
	struct hc_defrag_io io = { .file_fd = file_fd, .batch_done = batch_done, .begin = begin,
				   .end = end, .hold = hold, .skip = skip,
				   .allocated = allocated, .arg = &x };
	uint64_t t = hc_now_ns();
	char msg[sizeof(od->msg) - NAME_MAX * 2];
	msg[0] = 0;
	for (int pass = 1; !err && pass <= MAX_PASSES; pass++) {
		struct hc_defrag_result r;
		if (od->policy == HC_ODEFRAG_SWAP)
			err = hc_defrag_swap(fs->j, v->vid, hc_vol_size(v), &o, &io, &r, msg,
					     sizeof(msg));
		else
			err = hc_defrag_home(fs->j, v->vid, x.home_fd, hc_vol_size(v), &o, &io, &r,
					     msg, sizeof(msg));
		pthread_mutex_lock(&od->lock);
		hc_defrag_result_add(&jv->r, &r);
		if (pass == 1)
			od->done_base += visited(&r);
		/* swap counts only what it moved: the rest of the entries were seen too */
		if (pass == 1 && od->policy == HC_ODEFRAG_SWAP && !err && before.entries > visited(&r))
			od->done_base += before.entries - visited(&r);
		od->done_cur = 0;
		od->bytes_base += r.bytes;
		od->bytes_cur = 0;
		pthread_mutex_unlock(&od->lock);
		if (od->policy == HC_ODEFRAG_SWAP || !r.kept_shared || !(r.moved + r.zeroed))
			break;
	}
	uint64_t ns = hc_now_ns() - t;
	struct hc_defrag_locality after;
	locality(v, &after);
	pthread_mutex_lock(&od->lock);
	jv->ns = ns;	/* od->lock: defrag_status reads it */
	jv->after = after;
	jv->has_after = 1;
	jv->state = err == -EINTR ? V_STOPPED : err ? V_FAILED : V_DONE;
	if (err && err != -EINTR)
		snprintf(od->msg, sizeof(od->msg), "%s: %s", jv->label,
			 msg[0] ? msg : strerror(-err));
	pthread_mutex_unlock(&od->lock);
	if (x.home_fd != v->cv.fd && x.home_fd >= 0)
		close(x.home_fd);
	hc_ns_forget(fs, &v->node, 1);
	hc_ns_forget(fs, dn, 1);
	return err;
}

/* --- unsharing blocks a truncate cuts --------------------------------------------- */

struct unshare {
	struct run x;			/* first: the hooks above take it */
	uint32_t tvid;
	uint64_t from;
};

/* As skip(), and only entries pointing at home blocks from `from` on of volume tvid. */
static int skip_unshare(void *arg, uint64_t lblk)
{
	struct unshare *u = arg;
	struct hc_phys p;
	if (skip(&u->x, lblk) || hc_imap_lookup(u->x.v->map, lblk, &p))
		return 1;
	return p.file != u->tvid || p.block < u->from;
}

int hc_odefrag_unshare(struct hc_fs *fs, struct hc_volume *t, uint64_t from)
{
	if (!fs->j)
		return 0;
	/* Every listed volume with a map may point into t (dedup=all: any domain). */
	pthread_mutex_lock(&fs->ns_lock);
	size_t n = 0, cap = 0;
	for (struct hc_domain *d = fs->domains; d; d = d->next)
		for (struct hc_volume *w = d->vols; w; w = w->next)
			cap++;
	struct hc_volume **ws = cap ? calloc(cap, sizeof(*ws)) : NULL;
	for (struct hc_domain *d = fs->domains; ws && d; d = d->next)
		for (struct hc_volume *w = d->vols; w && n < cap; w = w->next)
			if (w->map && !w->unlinked) {
				w->node.nlookup++;	/* kept until hc_ns_forget below */
				ws[n++] = w;
			}
	pthread_mutex_unlock(&fs->ns_lock);
	if (cap && !ws)
		return -ENOMEM;
	int err = 0;
	uint64_t moved = 0, t0 = hc_now_ns();
	for (size_t i = 0; i < n; i++) {
		struct hc_volume *w = ws[i];
		struct unshare u = { .x = { .fs = fs, .v = w, .home_fd = -1 }, .tvid = t->vid,
				     .from = from };
		if (!err)
			err = open_home(w, &u.x.home_fd);
		if (!err) {
			struct hc_defrag_home_opts o = { .batch_blocks = HC_DEFRAG_BATCH };
			struct hc_defrag_io io = { .file_fd = file_fd, .begin = begin, .end = end,
						   .hold = hold, .skip = skip_unshare,
						   .allocated = allocated, .arg = &u };
			struct hc_defrag_result r;
			char msg[256] = "";
			/*
			 * Home first (locality back); an entry whose own home
			 * block is shared cannot go there (I3): it gets a new
			 * overflow.dat block instead.
			 */
			err = hc_defrag_home(fs->j, w->vid, u.x.home_fd, hc_vol_size(w), &o, &io, &r,
					     msg, sizeof(msg));
			moved += r.moved + r.zeroed;
			o.every = 1;
			if (!err)
				err = hc_defrag_swap(fs->j, w->vid, hc_vol_size(w), &o, &io, &r, msg,
						     sizeof(msg));
			moved += r.relocated;
			if (err)
				hc_log(LOG_ERR, "%s/%s: copying blocks of %s/%s home for a truncate: %s",
				       w->dom->name, w->name, t->dom->name, t->name,
				       msg[0] ? msg : strerror(-err));
		}
		if (u.x.home_fd >= 0 && u.x.home_fd != w->cv.fd)
			close(u.x.home_fd);
		hc_ns_forget(fs, &w->node, 1);
	}
	free(ws);
	if (moved)
		hc_log(LOG_INFO, "truncate of %s/%s: %" PRIu64 " blocks it held for other entries "
		       "copied to them first (%.1f s)", t->dom->name, t->name, moved,
		       (double)(hc_now_ns() - t0) / 1e9);
	return err;
}

static void *job_main(void *arg)
{
	struct hc_odefrag *od = arg;
	int err = 0;
	for (size_t i = 0; i < od->nv && !err; i++)
		err = do_volume(od, &od->v[i]);
	pthread_mutex_lock(&od->lock);
	od->t1 = hc_now_ns();
	int stopped = err == -EINTR && !od->cancel;	/* by unmount: resumes */
	od->state = err == -EINTR ? J_CANCELLED : err ? J_FAILED : J_DONE;
	if (stopped)
		snprintf(od->msg, sizeof(od->msg), "stopped by unmount; resumes at the next mount");
	pthread_mutex_unlock(&od->lock);
	if (!stopped)
		drop_job(od);	/* done, cancelled or failed: nothing to resume */
	hc_log(err && err != -EINTR ? LOG_ERR : LOG_INFO, "online defrag (%s): %s%s%s",
	       policies[od->policy], job_states[od->state], od->msg[0] ? ": " : "", od->msg);
	return NULL;
}

/* --- control ------------------------------------------------------------------------- */

static int add_label(struct hc_odefrag *od, const char *label)
{
	for (size_t i = 0; i < od->nv; i++)
		if (!strcmp(od->v[i].label, label))
			return 0;	/* named twice */
	struct jvol *t = realloc(od->v, (od->nv + 1) * sizeof(*t));
	if (!t)
		return -ENOMEM;
	od->v = t;
	memset(&t[od->nv], 0, sizeof(*t));
	if (!(t[od->nv].label = strdup(label)))
		return -ENOMEM;
	od->nv++;
	return 0;
}

/* Every volume with map entries; lock held (ns_lock nests inside it). */
static int add_all(struct hc_odefrag *od)
{
	struct hc_fs *fs = od->fs;
	int err = 0;
	pthread_mutex_lock(&fs->ns_lock);
	for (struct hc_domain *d = fs->domains; d && !err; d = d->next)
		for (struct hc_volume *v = d->vols; v && !err; v = v->next) {
			if (!v->map || !hc_imap_count(v->map))
				continue;
			char label[2 * NAME_MAX + 2];
			snprintf(label, sizeof(label), "%s/%s", d->name, v->name);
			err = add_label(od, label);
		}
	pthread_mutex_unlock(&fs->ns_lock);
	return err;
}

int hc_odefrag_start(struct hc_odefrag *od, int policy, double rate, const char *const *volumes,
		     size_t n, char *msg, size_t msglen)
{
	struct hc_fs *fs = od->fs;
	msg[0] = 0;
	if (policy != HC_ODEFRAG_HOME && policy != HC_ODEFRAG_SWAP) {
		snprintf(msg, msglen, "unknown policy");
		return -EINVAL;
	}
	if (!(rate >= 0) || rate > 1e6) {
		snprintf(msg, msglen, "rate must be between 0 (unlimited) and 1000000 MiB/s");
		return -EINVAL;
	}
	if (!fs->j) {
		snprintf(msg, msglen, "swap-reconcile is off: there are no maps to defragment");
		return -EOPNOTSUPP;
	}
	pthread_mutex_lock(&od->lock);
	if (od->state == J_RUNNING) {
		pthread_mutex_unlock(&od->lock);
		snprintf(msg, msglen, "a defrag job is running (defrag_cancel stops it)");
		return -EBUSY;
	}
	pthread_mutex_unlock(&od->lock);
	join(od);	/* the previous job's thread has finished */
	pthread_mutex_lock(&od->lock);
	free_vols(od);
	int err = 0;
	for (size_t i = 0; i < n && !err; i++) {
		struct hc_node *dn;
		struct hc_volume *v;
		if (find_volume(fs, volumes[i], &dn, &v)) {
			snprintf(msg, msglen, "volume %s: not found (DOMAIN/NAME)", volumes[i]);
			err = -ENOENT;
			break;
		}
		hc_ns_forget(fs, &v->node, 1);
		hc_ns_forget(fs, dn, 1);
		err = add_label(od, volumes[i]);
	}
	if (!err && !n)
		err = add_all(od);
	if (err) {
		if (err == -ENOMEM)
			snprintf(msg, msglen, "out of memory");
		free_vols(od);
		pthread_mutex_unlock(&od->lock);
		return err;
	}
	od->policy = policy;
	od->rate = rate;
	od->cancel = od->stop = 0;
	od->resumed = 0;
	od->msg[0] = 0;
	od->todo = od->done_base = od->done_cur = od->bytes_base = od->bytes_cur = 0;
	for (size_t i = 0; i < od->nv; i++) {
		struct hc_node *dn;
		struct hc_volume *v;
		if (find_volume(fs, od->v[i].label, &dn, &v))
			continue;
		if (v->map) {
			pthread_rwlock_rdlock(&v->maplock);
			od->todo += hc_imap_count(v->map);
			pthread_rwlock_unlock(&v->maplock);
		}
		hc_ns_forget(fs, &v->node, 1);
		hc_ns_forget(fs, dn, 1);
	}
	err = save_job(od);
	if (err) {
		snprintf(msg, msglen, "%s/%s: cannot write: %s", fs->b->path, HC_DEFRAG_JOB_FILE,
			 strerror(-err));
		free_vols(od);
		pthread_mutex_unlock(&od->lock);
		return err;
	}
	od->t0 = hc_now_ns();
	od->t1 = 0;
	od->guest_ops = __atomic_load_n(&fs->guest_ops, __ATOMIC_RELAXED);
	od->state = J_RUNNING;
	err = -pthread_create(&od->thread, NULL, job_main, od);
	if (err) {
		od->state = J_FAILED;
		snprintf(msg, msglen, "cannot start the job's thread: %s", strerror(-err));
		snprintf(od->msg, sizeof(od->msg), "%s", msg);
	} else {
		od->joinable = 1;
	}
	pthread_mutex_unlock(&od->lock);
	if (!err)
		hc_log(LOG_INFO, "online defrag (%s, %g MiB/s): %zu volume%s", policies[policy],
		       rate, od->nv, od->nv == 1 ? "" : "s");
	return err;
}

void hc_odefrag_resume(struct hc_odefrag *od)
{
	struct hc_fs *fs = od->fs;
	int fd = openat(fs->b->dirfd, HC_DEFRAG_JOB_FILE, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != ENOENT)
			hc_log(LOG_ERR, "%s/%s: %s", fs->b->path, HC_DEFRAG_JOB_FILE,
			       strerror(errno));
		return;
	}
	char buf[65536];
	ssize_t got = hc_pread_full(fd, buf, sizeof(buf) - 1, 0);
	close(fd);
	buf[got > 0 ? got : 0] = 0;
	struct json_object *o = json_tokener_parse(buf), *x;
	const char *labels[1024];
	size_t n = 0;
	int policy = -1;
	double rate = HC_ODEFRAG_RATE;
	if (o && json_object_object_get_ex(o, "policy", &x))
		policy = !strcmp(json_object_get_string(x), "home") ? HC_ODEFRAG_HOME
			 : !strcmp(json_object_get_string(x), "swap") ? HC_ODEFRAG_SWAP : -1;
	if (o && json_object_object_get_ex(o, "rate", &x))
		rate = json_object_get_double(x);
	if (o && json_object_object_get_ex(o, "volumes", &x) &&
	    json_object_is_type(x, json_type_array))
		for (size_t i = 0; i < json_object_array_length(x) && n < 1024; i++)
			labels[n++] = json_object_get_string(json_object_array_get_idx(x, i));
	char msg[512];
	int err = policy < 0 ? -EINVAL : 0;
	if (err)
		snprintf(msg, sizeof(msg), "not a job description (remove it to forget the job)");
	/* Volumes gone since are skipped, not refused. */
	size_t k = 0;
	for (size_t i = 0; i < n && !err; i++) {
		struct hc_node *dn;
		struct hc_volume *v;
		if (!labels[i] || find_volume(fs, labels[i], &dn, &v))
			continue;
		hc_ns_forget(fs, &v->node, 1);
		hc_ns_forget(fs, dn, 1);
		labels[k++] = labels[i];
	}
	if (!err && n && !k) {
		hc_log(LOG_NOTICE, "online defrag: the volumes of the unfinished job are gone");
		json_object_put(o);
		drop_job(od);
		return;
	}
	if (!err)
		err = hc_odefrag_start(od, policy, rate, labels, k, msg, sizeof(msg));
	json_object_put(o);
	if (err) {
		hc_log(LOG_ERR, "%s/%s: cannot resume the online defrag: %s", fs->b->path,
		       HC_DEFRAG_JOB_FILE, msg);
		return;
	}
	pthread_mutex_lock(&od->lock);
	od->resumed = 1;
	pthread_mutex_unlock(&od->lock);
	hc_log(LOG_NOTICE, "online defrag: resumed the job left unfinished");
}

int hc_odefrag_cancel(struct hc_odefrag *od)
{
	pthread_mutex_lock(&od->lock);
	int running = od->state == J_RUNNING;
	if (running) {
		od->cancel = 1;
		pthread_cond_broadcast(&od->cond);
	}
	pthread_mutex_unlock(&od->lock);
	return running ? 0 : -ENOENT;
}

/* --- status -------------------------------------------------------------------------- */

static void add_u64(struct json_object *o, const char *k, uint64_t x)
{
	json_object_object_add(o, k, json_object_new_uint64(x));
}

struct json_object *hc_odefrag_locality_json(const struct hc_defrag_locality *l)
{
	struct json_object *o = json_object_new_object();
	add_u64(o, "blocks", l->blocks);
	add_u64(o, "indirections", l->entries);
	add_u64(o, "zero", l->zero);
	add_u64(o, "runs", l->runs);
	add_u64(o, "pairs", l->pairs);
	add_u64(o, "jump_sum", l->jump_sum);
	json_object_object_add(o, "mean_jump", json_object_new_double(hc_defrag_mean_jump(l)));
	return o;
}

void hc_odefrag_status(struct hc_odefrag *od, struct json_object *out)
{
	pthread_mutex_lock(&od->lock);
	json_object_object_add(out, "state", json_object_new_string(job_states[od->state]));
	json_object_object_add(out, "policy", json_object_new_string(policies[od->policy]));
	json_object_object_add(out, "rate", json_object_new_double(od->rate));
	json_object_object_add(out, "resumed", json_object_new_boolean(od->resumed));
	uint64_t end = od->t1 ? od->t1 : od->state == J_RUNNING ? hc_now_ns() : od->t0;
	add_u64(out, "elapsed_ns", end - od->t0);
	add_u64(out, "todo_blocks", od->todo);
	add_u64(out, "done_blocks", od->done_base + od->done_cur);
	add_u64(out, "bytes", od->bytes_base + od->bytes_cur);
	if (od->msg[0])
		json_object_object_add(out, "message", json_object_new_string(od->msg));
	struct json_object *a = json_object_new_array();
	for (size_t i = 0; i < od->nv; i++) {
		const struct jvol *jv = &od->v[i];
		struct json_object *o = json_object_new_object();
		json_object_object_add(o, "volume", json_object_new_string(jv->label));
		json_object_object_add(o, "state", json_object_new_string(vol_states[jv->state]));
		json_object_object_add(o, "before", jv->state == V_PENDING || jv->state == V_GONE
							    ? NULL : hc_odefrag_locality_json(&jv->before));
		json_object_object_add(o, "after",
				       jv->has_after ? hc_odefrag_locality_json(&jv->after) : NULL);
		add_u64(o, "moved", jv->r.moved);
		add_u64(o, "zeroed", jv->r.zeroed);
		add_u64(o, "relocated", jv->r.relocated);
		add_u64(o, "bytes", jv->r.bytes);
		add_u64(o, "kept_shared", jv->r.kept_shared);
		add_u64(o, "kept_eof", jv->r.kept_eof);
		add_u64(o, "kept_busy", jv->r.kept_busy);
		add_u64(o, "ovf_freed", jv->r.ovf_freed);
		add_u64(o, "batches", jv->r.batches);
		add_u64(o, "ns", jv->ns);
		json_object_array_add(a, o);
	}
	json_object_object_add(out, "volumes", a);
	pthread_mutex_unlock(&od->lock);
}
