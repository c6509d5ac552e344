// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hecache-fs: options, checks, mount, signals.  Every check that can refuse
 * the command line runs before the backing directory is touched, so a bad
 * invocation changes nothing (I7).  The daemon serves swap of the machine it
 * runs on, so it locks its memory and marks itself an I/O flusher (I6) before
 * starting any thread.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "fs_ops.h"
#include "furing.h"
#include "hecache/ctl.h"
#include "hecache/errors.h"
#include "ioeng.h"
#include "log.h"
#include "odefrag.h"
#include "sb.h"
#include "util.h"
#include "volume.h"

#ifndef PR_SET_IO_FLUSHER
#define PR_SET_IO_FLUSHER 57
#endif

#define DEFAULT_CACHE "256M"
#define DEFAULT_GHOST "1G"
#define SAMPLE_MAX 32768	/* SHARDS fixed-size budget per domain (~6 MiB) */

struct options {
	char *cache;
	char *io;
	char *mrc;
	char *ghost;
	char *dedup;
	int writethrough;
	int no_fuse_uring;
	int foreground;
	int single;
	int debug;
	int help;
	int version;
	char *backing;
	char *mountpoint;
	int extra_args;
};

enum { KEY_FG, KEY_DEBUG, KEY_SINGLE, KEY_HELP, KEY_VERSION };

#define OPT(t, p) { t, offsetof(struct options, p), 1 }
static const struct fuse_opt spec[] = {
	{ "cache=%s", offsetof(struct options, cache), 0 },
	{ "io=%s", offsetof(struct options, io), 0 },
	{ "mrc=%s", offsetof(struct options, mrc), 0 },
	{ "ghost=%s", offsetof(struct options, ghost), 0 },
	{ "dedup=%s", offsetof(struct options, dedup), 0 },
	OPT("writethrough", writethrough),
	OPT("no_fuse_uring", no_fuse_uring),
	FUSE_OPT_KEY("-f", KEY_FG),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-s", KEY_SINGLE),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *o = data;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!o->backing)
			o->backing = strdup(arg);
		else if (!o->mountpoint)
			o->mountpoint = strdup(arg);
		else
			o->extra_args = 1;
		return 0;
	case KEY_FG:
		o->foreground = 1;
		return 0;
	case KEY_DEBUG:
		o->debug = o->foreground = 1;
		return 1;	/* libfuse prints requests with -d */
	case KEY_SINGLE:
		o->single = 1;
		return 0;
	case KEY_HELP:
		o->help = 1;
		return 0;
	case KEY_VERSION:
		o->version = 1;
		return 0;
	default:
		return 1;	/* FUSE mount options: libfuse checks them */
	}
}

static void usage(const char *prog)
{
	printf("usage: %s BACKING MOUNTPOINT [options]\n"
	       "\n"
	       "Serves the volumes kept in BACKING through an exclusive RAM cache.\n"
	       "An empty BACKING is formatted; domains are directories in the mount,\n"
	       "volumes are files in a domain.\n"
	       "\n"
	       "options:\n"
	       "    -o cache=SIZE       cache size (K, M, G suffixes; default %s)\n"
	       "    -o io=ENGINE        uring (default), aio or sync\n"
	       "    -o writethrough     write every block to storage before replying\n"
	       "    -o no_fuse_uring    take requests through /dev/fuse even when the kernel\n"
	       "                        offers FUSE over io_uring (fuse.enable_uring=1)\n"
	       "    -o mrc=MODE         miss-ratio curves: sampled (default), exact or off\n"
	       "    -o ghost=SIZE       how far past a domain's memory curves reach (default %s)\n"
	       "    -o dedup=SCOPE      share identical blocks within a domain (default),\n"
	       "                        across all domains (all) or not at all (off)\n"
	       "    -o allow_other      let other users in (default when run as root)\n"
	       "    -f                  stay in the foreground\n"
	       "    -d, -o debug        foreground, print every request\n"
	       "    -s                  single-threaded\n"
	       "    -h, --help          this text\n"
	       "    -V, --version       print the version\n"
	       "\n"
	       "Control:  hectl -m MOUNTPOINT status (socket BACKING/ctl.sock)\n"
	       "Counters: getfattr -n user.hecache.stats MOUNTPOINT\n"
	       "fstab:    hecache-fs#BACKING MOUNTPOINT fuse3 cache=256M 0 0\n"
	       "See hecache-fs(8).\n", prog, DEFAULT_CACHE, DEFAULT_GHOST);
}

static void free_options(struct options *o)
{
	free(o->cache);
	free(o->io);
	free(o->mrc);
	free(o->ghost);
	free(o->dedup);
	free(o->backing);
	free(o->mountpoint);
}

static uint64_t phys_memory(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	return pages > 0 && psz > 0 ? (uint64_t)pages * (uint64_t)psz : UINT64_MAX;
}

/* -o mrc= and -o ghost= into cfg; *on = 0 for mrc=off.  0 or -1 after one error line. */
static int check_mrc(struct options *o, struct hc_mrc_config *cfg, int *on)
{
	const char *mode = o->mrc ? o->mrc : "sampled";
	const char *ghost = o->ghost ? o->ghost : DEFAULT_GHOST;
	uint64_t bytes;
	memset(cfg, 0, sizeof(*cfg));
	*on = strcmp(mode, "off") != 0;
	if (*on && strcmp(mode, "exact") && strcmp(mode, "sampled")) {
		hc_log(LOG_ERR, "unknown mrc mode '%s' (use mrc=sampled, mrc=exact or mrc=off)", mode);
		return -1;
	}
	if (hc_parse_size(ghost, &bytes) || bytes < 64 * HC_BLOCK_SIZE ||
	    bytes / HC_BLOCK_SIZE > HC_MRC_MAX_TRACKED) {
		hc_log(LOG_ERR, "invalid ghost size '%s' (use a size from 256K to 4T)", ghost);
		return -1;
	}
	cfg->sampled = !strcmp(mode, "sampled");
	cfg->rate = 1.0;	/* SHARDS fixed size: exact until the budget fills */
	cfg->sample_max = SAMPLE_MAX;
	cfg->adjust = HC_MRC_ADJ_SCALE;	/* a VM's hot set hits in its memory */
	cfg->max_tracked = bytes / HC_BLOCK_SIZE;
	/* At most 256K histogram buckets (2 MiB) per domain. */
	cfg->bucket_blocks = (uint32_t)((cfg->max_tracked + 262143) / 262144);
	return 0;
}

/* Checks everything on the command line; 0 or -1 after one error line. */
static int check_options(struct options *o, uint64_t *cache_bytes)
{
	char a[32], b[32];
	if (!o->backing || !o->mountpoint) {
		hc_log(LOG_ERR, "missing %s (usage: hecache-fs BACKING MOUNTPOINT [options])",
		       o->backing ? "MOUNTPOINT" : "BACKING and MOUNTPOINT");
		return -1;
	}
	if (o->extra_args) {
		hc_log(LOG_ERR, "too many arguments (usage: hecache-fs BACKING MOUNTPOINT [options])");
		return -1;
	}
	const char *cache = o->cache ? o->cache : DEFAULT_CACHE;
	if (hc_parse_size(cache, cache_bytes)) {
		hc_log(LOG_ERR, "invalid cache size '%s' (use a size like 256M or 2G)", cache);
		return -1;
	}
	if (*cache_bytes < 64 * 1024) {
		hc_log(LOG_ERR, "cache=%s is too small (at least 64K)", cache);
		return -1;
	}
	uint64_t mem = phys_memory();
	if (*cache_bytes > mem) {
		hc_log(LOG_ERR, "cache=%s (%s) is larger than this machine's memory (%s)", cache,
		       hc_format_size(*cache_bytes, a, sizeof(a)), hc_format_size(mem, b, sizeof(b)));
		return -1;
	}
	const char *io = o->io ? o->io : "uring";
	if (strcmp(io, "uring") && strcmp(io, "aio") && strcmp(io, "sync")) {
		hc_log(LOG_ERR, "unknown io engine '%s' (use io=uring, io=aio or io=sync)", io);
		return -1;
	}
	struct stat st;
	if (stat(o->mountpoint, &st) < 0) {
		hc_log(LOG_ERR, "mountpoint %s: %s", o->mountpoint, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		hc_log(LOG_ERR, "mountpoint %s: not a directory", o->mountpoint);
		return -1;
	}
	if (stat(o->backing, &st) < 0) {
		hc_log(LOG_ERR, "backing directory %s: %s", o->backing, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		hc_log(LOG_ERR, "backing directory %s: not a directory", o->backing);
		return -1;
	}
	return 0;
}

static void inval_entry(void *arg, uint64_t parent, const char *name)
{
	fuse_lowlevel_notify_inval_entry(arg, parent, name, strlen(name));
}

static void inval_inode(void *arg, uint64_t ino)
{
	fuse_lowlevel_notify_inval_inode(arg, ino, 0, 0);
}

/*
 * Background mode forks before any thread or io_uring/AIO context exists
 * (neither survives fork).  The parent waits for the child to report that
 * the mount is up, so setup errors still reach the terminal and give a
 * non-zero exit.  Returns the pipe's write end in the child, -1 in the
 * foreground; the parent never returns.
 */
static int daemon_fork(int foreground)
{
	if (foreground)
		return -1;
	int p[2];
	if (pipe(p) < 0) {
		hc_log(LOG_ERR, "pipe: %s", strerror(errno));
		exit(1);
	}
	pid_t pid = fork();
	if (pid < 0) {
		hc_log(LOG_ERR, "fork: %s", strerror(errno));
		exit(1);
	}
	if (pid > 0) {
		close(p[1]);
		char status = 1;
		if (read(p[0], &status, 1) != 1)
			status = 1;
		_exit(status);
	}
	close(p[0]);
	return p[1];
}

/* Child: detaches and tells the waiting parent how setup went. */
static void daemon_ready(int fd, char status)
{
	if (fd < 0)
		return;
	if (status == 0) {
		setsid();
		if (chdir("/") < 0)
			hc_log(LOG_WARNING, "chdir /: %s", strerror(errno));
		int null = open("/dev/null", O_RDWR);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 1);
			dup2(null, 2);
			if (null > 2)
				close(null);
		}
		hc_log_use_syslog(1);
	}
	if (write(fd, &status, 1) != 1)
		hc_log(LOG_WARNING, "cannot report start-up to the parent");
	close(fd);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options o;
	memset(&o, 0, sizeof(o));
	int ret = 1, mounted = 0;
	struct hc_ctl *ctl = NULL;
	char msg[512];
	hc_log_install_fuse();

	if (fuse_opt_parse(&args, &o, spec, opt_proc) < 0)
		goto out_args;
	if (o.help) {
		usage(argv[0]);
		ret = 0;
		goto out_args;
	}
	if (o.version) {
		printf("hecache-fs %s (libfuse %s)\n", PACKAGE_VERSION, fuse_pkgversion());
		ret = 0;
		goto out_args;
	}
	if (o.debug)
		hc_log_set_level(LOG_DEBUG);
	uint64_t cache_bytes;
	struct hc_mrc_config mrc;
	int mrc_on;
	if (check_options(&o, &cache_bytes) || check_mrc(&o, &mrc, &mrc_on))
		goto out_args;
	int dedup = HC_DEDUP_DOMAIN;
	if (o.dedup) {
		if (!strcmp(o.dedup, "off"))
			dedup = HC_DEDUP_OFF;
		else if (!strcmp(o.dedup, "all"))
			dedup = HC_DEDUP_ALL;
		else if (strcmp(o.dedup, "domain")) {
			hc_log(LOG_ERR, "unknown dedup scope '%s' (use dedup=domain, dedup=all or dedup=off)",
			       o.dedup);
			goto out_args;
		}
	}

	/* Other users (QEMU as libvirt-qemu) need the mount; the kernel checks modes. */
	fuse_opt_add_arg(&args, "-odefault_permissions");
	if (geteuid() == 0)
		fuse_opt_add_arg(&args, "-oallow_other");
	char fsname[PATH_MAX + 16];
	snprintf(fsname, sizeof(fsname), "-ofsname=%s", o.backing);
	fuse_opt_add_arg(&args, fsname);
	fuse_opt_add_arg(&args, "-osubtype=hecache-fs");

	struct hc_daemon daemon = { 0 };
	struct hc_furing *furing = NULL;
	/* Validates the remaining (FUSE) options before anything is touched. */
	struct fuse_session *se = fuse_session_new(&args, &hc_fs_ops, sizeof(hc_fs_ops), &daemon);
	if (!se)
		goto out_args;

	int ready_fd = daemon_fork(o.foreground);

	/* I6: inherited by every thread created from here on. */
	if (prctl(PR_SET_IO_FLUSHER, 1, 0, 0, 0) < 0)
		hc_log(LOG_WARNING, "PR_SET_IO_FLUSHER: %s (serving this machine's swap may deadlock)",
		       strerror(errno));

	/* Everything that can fail without touching BACKING goes first. */
	struct hc_ioeng *eng;
	int err = hc_ioeng_create(o.io ? o.io : "uring", 256, !o.io, &eng);
	if (err) {
		hc_log(LOG_ERR, "io engine %s: %s", o.io ? o.io : "uring", strerror(-err));
		goto out_session;
	}
	struct hc_backing *b;
	err = hc_backing_open(o.backing, 1, &b, msg, sizeof(msg));
	if (err) {
		hc_log(LOG_ERR, "%s", msg);
		goto out_eng;
	}
	err = hc_fs_create(b, eng, cache_bytes, o.writethrough, mrc_on ? &mrc : NULL, &daemon.fs,
			   msg, sizeof(msg));
	if (err) {
		hc_log(LOG_ERR, "%s", msg);
		goto out_unformat;
	}
	daemon.fs->dedup = dedup;
	err = hc_odefrag_create(daemon.fs, &daemon.fs->od);
	if (err) {
		hc_log(LOG_ERR, "cannot create the online defrag job: %s", strerror(-err));
		goto out_fs;
	}
	if (b->formatted)
		hc_log(LOG_INFO, "formatted empty backing directory %s", o.backing);
	if (mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
		hc_log(LOG_WARNING, "mlockall: %s (the daemon may be paged out)", strerror(errno));

	/* Before the mount, so the socket is there once the mount is visible. */
	struct hc_ctl_info ci = {
		.fs = daemon.fs, .backing = o.backing, .mountpoint = o.mountpoint,
		.io_engine = hc_ioeng_name(eng), .mrc_mode = o.mrc ? o.mrc : "sampled",
		.ghost_bytes = mrc.max_tracked * HC_BLOCK_SIZE, .owner = getuid(),
		.inval_entry = inval_entry, .inval_inode = inval_inode, .arg = se,
	};
	err = hc_ctl_create(&ci, &ctl);
	if (!err)
		err = hc_ctl_listen(ctl, b->dirfd);
	if (err) {
		hc_log(LOG_ERR, "%s/%s: cannot serve the control socket: %s", o.backing,
		       HC_CTL_SOCK, strerror(-err));
		goto out_fs;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out_fs;
	if (fuse_session_mount(se, o.mountpoint) != 0)
		goto out_signals;
	mounted = 1;
	if (!o.single && !o.no_fuse_uring) {
		err = hc_furing_create(se, fuse_session_fd(se), &furing);
		if (err) {
			hc_log(LOG_WARNING, "FUSE over io_uring: %s (requests come through /dev/fuse)",
			       err == -E2BIG ? "more than 64 possible CPUs" : strerror(-err));
			furing = NULL;
		}
	}
	err = hc_fs_ops_attach_io(se, furing);
	if (err)
		hc_log(LOG_WARNING, "FUSE session I/O hooks: %s (each copy_file_range will cost a "
		       "getxattr too)", strerror(-err));
	err = hc_backing_write_sb(b, 0);
	if (err) {
		hc_log(LOG_ERR, "%s/%s: cannot write the superblock: %s", o.backing, HC_SB_FILE,
		       strerror(-err));
		goto out_unmount;
	}
	char sz[32];
	hc_log(LOG_INFO, "serving %s on %s: cache %s, io engine %s%s", o.backing, o.mountpoint,
	       hc_format_size(hc_cache_blocks(daemon.fs->cache) * HC_BLOCK_SIZE, sz, sizeof(sz)),
	       hc_ioeng_name(eng), o.writethrough ? ", write-through" : "");
	daemon_ready(ready_fd, 0);
	ready_fd = -1;
	hc_odefrag_resume(daemon.fs->od);

	if (o.single) {
		ret = fuse_session_loop(se);
	} else {
		struct fuse_loop_config *cfg = fuse_loop_cfg_create();
		fuse_loop_cfg_set_clone_fd(cfg, 0);
		fuse_loop_cfg_set_idle_threads(cfg, 16);
		fuse_loop_cfg_set_max_threads(cfg, 64);
		ret = fuse_session_loop_mt(se, cfg);
		fuse_loop_cfg_destroy(cfg);
	}
	ret = ret ? 1 : 0;

out_unmount:
	/* Before the unmount: a stopped ring cannot leave a request unanswered. */
	hc_furing_stop(furing);
	fuse_session_unmount(se);
out_signals:
	fuse_remove_signal_handlers(se);
out_fs:
	hc_ctl_destroy(ctl);
	/* Stopped after its batch; an unfinished job resumes at the next mount. */
	hc_odefrag_destroy(daemon.fs->od);
	daemon.fs->od = NULL;
	if (hc_fs_flush_all(daemon.fs) == 0 && ret == 0) {
		err = hc_backing_write_sb(b, HC_SB_F_CLEAN);
		if (err)
			hc_log(LOG_ERR, "%s/%s: cannot mark clean: %s", o.backing, HC_SB_FILE,
			       strerror(-err));
	} else {
		ret = 1;
	}
	hc_fs_destroy(daemon.fs);	/* waits for replies in flight */
	daemon.fs = NULL;
	hc_furing_destroy(furing);
	furing = NULL;
	if (mounted)
		goto out_backing;
out_unformat:
	/* A refused start leaves BACKING as it was: drop what formatting made. */
	if (b->formatted && unlinkat(b->dirfd, HC_SB_FILE, 0) < 0)
		hc_log(LOG_WARNING, "%s/%s: cannot remove: %s", o.backing, HC_SB_FILE,
		       strerror(errno));
out_backing:
	hc_backing_close(b);
out_eng:
	hc_ioeng_destroy(eng);
out_session:
	fuse_session_destroy(se);
	daemon_ready(ready_fd, 1);
out_args:
	fuse_opt_free_args(&args);
	free_options(&o);
	return ret;
}
