// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hecache-agent: the guest side of hecache (doc/hecache-agent.8).  It runs
 * in a VM, or beside a workload in a memory cgroup standing in for a VM,
 * registers its domain with hecache-fs over the control protocol
 * (doc/ctl-protocol.md, "Agents"), reports the memory size, swap use and
 * swap counters every interval, and applies the set_memory requests the
 * daemon pushes to the managed memory cgroup (v1 memory.limit_in_bytes, v2
 * memory.max).  "run" makes that cgroup, runs a command in it and removes
 * it when the command ends.
 *
 * One thread, one poll() loop over a signalfd (SIGCHLD, SIGINT, SIGTERM)
 * and the link to the daemon: the Unix socket, or a character device (serial
 * port, virtio-serial port) carrying the same lines.  The link is up
 * (registering or registered) or down; while down the agent tries again
 * every second, logging one line when it goes down and one when it is back,
 * and the workload keeps running.  A serial link cannot see the daemon
 * restart behind it: a report refused there with EINVAL (not registered)
 * makes the agent register again.
 *
 * Limits: swap use and the swap counters are the machine's (/proc/meminfo,
 * /proc/vmstat), also for a cgroup (v1 memory.stat has no swap-in count);
 * no balloon driver is driven.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "../tools/ctlclient.h"
#include "hecache/ctl.h"
#include "util.h"

#define RETRY_MS 1000			/* reconnect period while the link is down */
#define CG_V1_ROOT "/sys/fs/cgroup/memory"
#define CG_V2_ROOT "/sys/fs/cgroup"
#define CG_NO_LIMIT (1ull << 62)	/* a limit this large means none (v1 prints 2^63 - 4096) */
#define CG_REMOVE_TRIES 100		/* 10 s at 0.1 s */
#define WHY_LEN 512			/* a one-line reason */
#define EXIT_USAGE 2
#define EXIT_AGENT 125			/* run: the agent failed before CMD could start */

/* ---- logging ------------------------------------------------------------ */

static int verbose;

static void vsay(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static void vsay(const char *fmt, va_list ap)
{
	char line[1024];
	vsnprintf(line, sizeof(line), fmt, ap);
	fprintf(stderr, "hecache-agent: %s\n", line);
}

/* Errors and the link going down or coming back: always logged. */
static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

/* Ordinary events: logged with -v. */
static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
}

/* ---- options ------------------------------------------------------------ */

struct opts {
	const char *sock, *mount, *backing, *device;	/* the daemon: at most one */
	const char *domain;
	const char *cgroup;	/* report: an existing cgroup to manage */
	uint64_t memory;	/* --memory, 0 when not given */
	int interval_ms;
	char **cmd;		/* run: the command and its arguments; NULL for report */
};

static void usage(void)
{
	printf("Usage: hecache-agent [-S SOCKET | -m MOUNT | -b BACKING | --device PATH]\n"
	       "                     --domain NAME [--interval SECS] [--cgroup PATH]\n"
	       "                     [--memory SIZE] [-v] report\n"
	       "       hecache-agent [...] --domain NAME --memory SIZE run [--] CMD [ARGS...]\n"
	       "\n"
	       "  -S, --socket PATH   the daemon's control socket\n"
	       "  -m, --mount DIR     the hecache-fs mount (its BACKING/ctl.sock)\n"
	       "  -b, --backing DIR   the backing directory (DIR/ctl.sock)\n"
	       "      --device PATH   a serial or virtio-serial port to the daemon\n"
	       "      --domain NAME   the domain (VM) this agent speaks for\n"
	       "      --interval SECS seconds between reports (default 5)\n"
	       "      --cgroup PATH   report: the memory cgroup to manage\n"
	       "      --memory SIZE   the memory limit (run: required)\n"
	       "  -v, --verbose       log every event\n"
	       "\n"
	       "report: report and apply set-memory until SIGINT or SIGTERM.\n"
	       "run: run CMD in a new memory cgroup; exit with its status.\n");
}

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void usage_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	exit(EXIT_USAGE);
}

/* A domain name is one path component of at most 255 bytes. */
static int valid_name(const char *s)
{
	return *s && strlen(s) <= 255 && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static int parse_interval(const char *s)
{
	char *end;
	errno = 0;
	double secs = strtod(s, &end);
	if (errno || end == s || *end || !(secs >= 0.001 && secs <= 86400))
		usage_error("--interval %s: not a number of seconds between 0.001 and 86400", s);
	return (int)(secs * 1000 + 0.5);
}

enum { OPT_DEVICE = 256, OPT_DOMAIN, OPT_INTERVAL, OPT_CGROUP, OPT_MEMORY, OPT_VERSION };

static const struct option longopts[] = {
	{ "socket", required_argument, NULL, 'S' },
	{ "mount", required_argument, NULL, 'm' },
	{ "backing", required_argument, NULL, 'b' },
	{ "device", required_argument, NULL, OPT_DEVICE },
	{ "domain", required_argument, NULL, OPT_DOMAIN },
	{ "interval", required_argument, NULL, OPT_INTERVAL },
	{ "cgroup", required_argument, NULL, OPT_CGROUP },
	{ "memory", required_argument, NULL, OPT_MEMORY },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

static void parse_option(int c, struct opts *o, char **argv)
{
	switch (c) {
	case 'S': o->sock = optarg; break;
	case 'm': o->mount = optarg; break;
	case 'b': o->backing = optarg; break;
	case OPT_DEVICE: o->device = optarg; break;
	case OPT_DOMAIN: o->domain = optarg; break;
	case OPT_CGROUP: o->cgroup = optarg; break;
	case OPT_INTERVAL: o->interval_ms = parse_interval(optarg); break;
	case 'v': verbose = 1; break;
	case OPT_MEMORY:
		if (hc_parse_size(optarg, &o->memory) || !o->memory)
			usage_error("--memory %s: not a size (such as 64M or 1G)", optarg);
		break;
	case 'h':
		usage();
		exit(0);
	case OPT_VERSION:
		printf("hecache-agent %s\n", PACKAGE_VERSION);
		exit(0);
	case ':':
		usage_error("option %s needs an argument", argv[optind - 1]);
	default:
		if (optopt)
			usage_error("unknown option -%c", optopt);
		usage_error("unknown option %s", argv[optind - 1]);
	}
}

/* Checks what the options say together, once all are read. */
static void check_opts(const struct opts *o, const char *mode)
{
	if (!!o->sock + !!o->mount + !!o->backing + !!o->device > 1)
		usage_error("use only one of -S, -m, -b and --device");
	if (!o->domain)
		usage_error("--domain NAME is required");
	if (!valid_name(o->domain))
		usage_error("--domain %s: not a single path component of at most 255 bytes",
			    o->domain);
	if (!mode)
		usage_error("no mode: say report or run -- CMD");
	if (o->cmd && !o->memory)
		usage_error("run needs --memory SIZE (the limit of its memory cgroup)");
	if (o->cmd && o->cgroup)
		usage_error("--cgroup is for report; run makes its own cgroup");
}

/*
 * Options may come before and after the mode word; run's command starts at
 * the first word that is not an option, or after "--".
 */
static void parse_opts(int argc, char **argv, struct opts *o)
{
	const char *mode = NULL;
	*o = (struct opts){ .interval_ms = 5000 };
	opterr = 0;
	for (;;) {
		int c = getopt_long(argc, argv, "+:S:m:b:vh", longopts, NULL);
		if (c != -1) {
			parse_option(c, o, argv);
			continue;
		}
		if (mode || optind >= argc)
			break;
		mode = argv[optind++];
		if (strcmp(mode, "report") && strcmp(mode, "run"))
			usage_error("unknown mode %s (report or run)", mode);
	}
	if (mode && !strcmp(mode, "run")) {
		if (optind >= argc)
			usage_error("run needs a command: run -- CMD [ARGS...]");
		o->cmd = argv + optind;
	} else if (optind < argc) {
		usage_error("unexpected argument %s", argv[optind]);
	}
	check_opts(o, mode);
}

/* ---- small files -------------------------------------------------------- */

static int join(char *out, size_t len, const char *dir, const char *name)
{
	return (size_t)snprintf(out, len, "%s/%s", dir, name) < len ? 0 : -ENAMETOOLONG;
}

/* Reads dir/name (a small text file) into buf, NUL-terminated; 0 or -errno. */
static int read_text(const char *dir, const char *name, char *buf, size_t len)
{
	char path[PATH_MAX];
	int err = join(path, sizeof(path), dir, name);
	if (err)
		return err;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = read(fd, buf, len - 1);
	err = n < 0 ? -errno : 0;
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return err;
}

/* Writes text to dir/name in one write(2), as cgroup files want; 0 or -errno. */
static int write_text(const char *dir, const char *name, const char *text)
{
	char path[PATH_MAX];
	int err = join(path, sizeof(path), dir, name);
	if (err)
		return err;
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	size_t n = strlen(text);
	ssize_t w = write(fd, text, n);
	err = w < 0 ? -errno : (size_t)w == n ? 0 : -EIO;
	if (close(fd) && !err)
		err = -errno;
	return err;
}

/* Does the space-separated list hold word? */
static int has_word(const char *list, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ' ') && (!p[n] || p[n] == ' ' || p[n] == '\n'))
			return 1;
	return 0;
}

struct field {
	const char *key;
	uint64_t *val;
};

/*
 * Reads "key value" or "key: value [kB]" lines of a /proc file into the
 * fields named.  0 when all were found, else -errno or -ENOENT.
 */
static int read_fields(const char *path, const struct field *f, size_t nf)
{
	FILE *fp = fopen(path, "re");
	if (!fp)
		return -errno;
	char line[256];
	size_t found = 0;
	while (found < nf && fgets(line, sizeof(line), fp)) {
		for (size_t i = 0; i < nf; i++) {
			size_t k = strlen(f[i].key);
			if (!strncmp(line, f[i].key, k) && (line[k] == ':' || line[k] == ' ')) {
				*f[i].val = strtoull(line + k + 1, NULL, 10);
				found++;
				break;
			}
		}
	}
	fclose(fp);
	return found == nf ? 0 : -ENOENT;
}

/* ---- the managed memory cgroup ------------------------------------------ */

struct cgroup {
	char dir[PATH_MAX];	/* empty: no managed cgroup */
	int version;		/* 1 or 2 */
	int made;		/* made by run: removed at exit */
};

static const char *cg_limit_file(const struct cgroup *cg)
{
	return cg->version == 1 ? "memory.limit_in_bytes" : "memory.max";
}

/* The version of the memory cgroup at dir (by its limit file), 0 for none. */
static int cg_version_of(const char *dir)
{
	char path[PATH_MAX];
	if (!join(path, sizeof(path), dir, "memory.limit_in_bytes") && !access(path, F_OK))
		return 1;
	if (!join(path, sizeof(path), dir, "memory.max") && !access(path, F_OK))
		return 2;
	return 0;
}

/* The limit in bytes, 0 when there is none ("max", or v1's huge value). */
static int cg_get_limit(const struct cgroup *cg, uint64_t *bytes)
{
	char text[64];
	int err = read_text(cg->dir, cg_limit_file(cg), text, sizeof(text));
	if (err)
		return err;
	uint64_t v = strtoull(text, NULL, 10);
	*bytes = !strncmp(text, "max", 3) || v >= CG_NO_LIMIT ? 0 : v;
	return 0;
}

/* Sets the limit; on failure writes one line to err and returns -errno. */
static int cg_set_limit(const struct cgroup *cg, uint64_t bytes, char *err, size_t errlen)
{
	char num[32];
	snprintf(num, sizeof(num), "%llu", (unsigned long long)bytes);
	int e = write_text(cg->dir, cg_limit_file(cg), num);
	if (e)
		snprintf(err, errlen, "%s/%s = %s: %s%s", cg->dir, cg_limit_file(cg), num,
			 strerror(-e),
			 e == -EBUSY ? " (the cgroup uses more and could not be reclaimed below it)"
				     : "");
	return e;
}

/* Manages the existing cgroup at path (report --cgroup). */
static int cg_open(struct cgroup *cg, const char *path)
{
	if (strlen(path) >= sizeof(cg->dir) || !(cg->version = cg_version_of(path))) {
		say("%s: not a memory cgroup (no memory.limit_in_bytes or memory.max)", path);
		return -ENOENT;
	}
	strcpy(cg->dir, path);
	return 0;
}

/* v2: the memory controller must be on in the parent's subtree_control. */
static int cg_v2_enable_memory(void)
{
	char text[256];
	int err = read_text(CG_V2_ROOT, "cgroup.subtree_control", text, sizeof(text));
	if (!err && !has_word(text, "memory"))
		err = write_text(CG_V2_ROOT, "cgroup.subtree_control", "+memory");
	if (err)
		say("%s/cgroup.subtree_control: cannot enable memory: %s", CG_V2_ROOT,
		    strerror(-err));
	return err;
}

/* Which hierarchy to make a cgroup in: 1, 2, or 0 when none has memory. */
static int cg_machine_version(void)
{
	char text[256];
	if (cg_version_of(CG_V1_ROOT) == 1)
		return 1;
	if (!read_text(CG_V2_ROOT, "cgroup.controllers", text, sizeof(text)) &&
	    has_word(text, "memory"))
		return 2;
	return 0;
}

/* Makes hecache-agent-DOMAIN-PID with the limit (run).  0 or -errno, logged. */
static int cg_create(struct cgroup *cg, const char *domain, uint64_t limit)
{
	char err[PATH_MAX + 128];
	cg->version = cg_machine_version();
	if (!cg->version) {
		say("no memory cgroup controller (v1 at %s or v2 at %s)", CG_V1_ROOT, CG_V2_ROOT);
		return -ENOENT;
	}
	if (cg->version == 2 && cg_v2_enable_memory())
		return -EIO;
	if ((size_t)snprintf(cg->dir, sizeof(cg->dir), "%s/hecache-agent-%s-%d",
			     cg->version == 1 ? CG_V1_ROOT : CG_V2_ROOT, domain,
			     (int)getpid()) >= sizeof(cg->dir)) {
		say("the cgroup name for domain %s is too long", domain);
		return -ENAMETOOLONG;
	}
	if (mkdir(cg->dir, 0755)) {
		int e = -errno;
		say("mkdir %s: %s", cg->dir, strerror(errno));
		return e;
	}
	int e = cg_set_limit(cg, limit, err, sizeof(err));
	if (e) {
		say("%s", err);
		rmdir(cg->dir);
		return e;
	}
	cg->made = 1;
	return 0;
}

/*
 * Kills what CMD left in the cgroup, waits until it is empty and removes
 * it.  0, or -errno after a message.
 */
static int cg_remove(struct cgroup *cg)
{
	char pids[4096];
	int err = 0;
	for (int i = 0; i < CG_REMOVE_TRIES; i++) {
		err = read_text(cg->dir, "cgroup.procs", pids, sizeof(pids));
		for (char *p = pids, *end; !err && *p; p = end) {
			long pid = strtol(p, &end, 10);
			if (end == p)
				break;
			if (pid > 0)
				kill((pid_t)pid, SIGKILL);
		}
		if (!rmdir(cg->dir))
			return 0;
		err = -errno;
		if (errno != EBUSY)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 100000000 }, NULL);
	}
	say("cannot remove the cgroup %s: %s", cg->dir, strerror(-err));
	return err;
}

/* ---- what the agent reports ---------------------------------------------- */

struct sample {
	uint64_t memory, swap_total, swap_used, pswpin, pswpout;
};

/*
 * Memory: the cgroup's limit, MemTotal when it has none; without a cgroup
 * --memory, else MemTotal.  Swap and its counters: the machine's.
 */
static int take_sample(const struct cgroup *cg, uint64_t memory, struct sample *s)
{
	uint64_t mem_kb = 0, swap_kb = 0, free_kb = 0;
	const struct field meminfo[] = {
		{ "MemTotal", &mem_kb }, { "SwapTotal", &swap_kb }, { "SwapFree", &free_kb },
	};
	const struct field vmstat[] = { { "pswpin", &s->pswpin }, { "pswpout", &s->pswpout } };
	int err = read_fields("/proc/meminfo", meminfo, 3);
	if (!err)
		err = read_fields("/proc/vmstat", vmstat, 2);
	if (!err && cg->dir[0])
		err = cg_get_limit(cg, &memory);
	if (err)
		return err;
	s->memory = memory ? memory : mem_kb << 10;
	s->swap_total = swap_kb << 10;
	s->swap_used = (swap_kb - HC_MIN(swap_kb, free_kb)) << 10;
	return 0;
}

/* ---- the link to the daemon ----------------------------------------------- */

struct linebuf {
	char buf[HC_CTL_MAX_LINE];
	size_t len;
	int skipping;		/* dropping the rest of an overlong line */
};

struct agent {
	const struct opts *o;
	struct cgroup cg;
	int fd;			/* the link, -1 while down */
	char where[PATH_MAX];	/* the socket or device, for messages */
	struct linebuf in;
	int registering;	/* agent_register sent, its reply not read yet */
	int down_logged;	/* said the link is down; say when it is back */
	char down_why[WHY_LEN];	/* what we said */
	char report_err[256];	/* the last refusal of a report we logged */
	uint64_t next_tick_ns;	/* next report, or next connection attempt */
	int sigfd;
	pid_t child;		/* run: CMD, 0 once reaped */
	int status;		/* run: CMD's wait status */
};

static void schedule(struct agent *a, int ms)
{
	a->next_tick_ns = hc_now_ns() + (uint64_t)ms * 1000000;
}

/*
 * Logs the first failure of a run of them; later ones are silent, but for
 * a refusal by the daemon (loud) that says something new.
 */
static void went_down(struct agent *a, const char *why, int loud)
{
	if (!a->down_logged || (loud && strcmp(why, a->down_why)))
		say("%s: %s; trying again every second", a->where, why);
	if (!a->down_logged || loud)
		snprintf(a->down_why, sizeof(a->down_why), "%s", why);
	a->down_logged = 1;
	schedule(a, RETRY_MS);
}

static void link_down(struct agent *a, const char *why, int loud)
{
	close(a->fd);
	a->fd = -1;
	a->in.len = 0;
	a->in.skipping = 0;
	a->registering = 0;
	went_down(a, why, loud);
}

/* Sends msg (consumed) on the link; a failure takes the link down. */
static void link_send(struct agent *a, struct json_object *msg)
{
	int err = a->fd >= 0 ? hc_ctl_send(a->fd, msg) : 0;
	json_object_put(msg);
	if (err)
		link_down(a, strerror(-err), 0);
}

static struct json_object *request(const char *op)
{
	struct json_object *m = json_object_new_object();
	json_object_object_add(m, "op", json_object_new_string(op));
	json_object_object_add(m, "id", json_object_new_string(op));
	return m;
}

static void add_u64(struct json_object *m, const char *key, uint64_t v)
{
	json_object_object_add(m, key, json_object_new_int64((int64_t)v));
}

/* agent_report; applied (0: none) and error (NULL: none) answer a set_memory. */
static void send_report(struct agent *a, uint64_t applied, const char *error)
{
	struct sample s;
	int err = take_sample(&a->cg, a->o->memory, &s);
	if (err) {
		say("cannot read the memory figures: %s", strerror(-err));
		return;
	}
	struct json_object *m = request("agent_report");
	add_u64(m, "memory_bytes", s.memory);
	add_u64(m, "swap_total_bytes", s.swap_total);
	add_u64(m, "swap_used_bytes", s.swap_used);
	add_u64(m, "pswpin", s.pswpin);
	add_u64(m, "pswpout", s.pswpout);
	if (applied)
		add_u64(m, "applied_bytes", applied);
	if (error)
		json_object_object_add(m, "error", json_object_new_string(error));
	link_send(a, m);
}

static void send_register(struct agent *a)
{
	struct sample s;
	char host[256] = "";
	gethostname(host, sizeof(host) - 1);
	struct json_object *m = request("agent_register");
	json_object_object_add(m, "domain", json_object_new_string(a->o->domain));
	if (!take_sample(&a->cg, a->o->memory, &s))
		add_u64(m, "memory_bytes", s.memory);
	json_object_object_add(m, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(m, "name", json_object_new_string(host));
	a->registering = 1;
	link_send(a, m);
}

/* Opens the serial or virtio-serial port, raw when it is a tty. */
static int open_device(const char *path, char *why, size_t len)
{
	int fd = open(path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "%s", strerror(errno));
		return -1;
	}
	struct termios t;
	if (isatty(fd) && !tcgetattr(fd, &t)) {
		cfmakeraw(&t);
		if (tcsetattr(fd, TCSANOW, &t) || tcflush(fd, TCIOFLUSH)) {
			snprintf(why, len, "raw mode: %s", strerror(errno));
			close(fd);
			return -1;
		}
	}
	return fd;
}

/* Finds the socket now (a mount may come and go) and connects, non-blocking. */
static int open_socket(struct agent *a, char *why, size_t len)
{
	const struct opts *o = a->o;
	if (hc_ctl_find(o->sock, o->backing, o->mount, a->where, sizeof(a->where), why, len)) {
		snprintf(a->where, sizeof(a->where), "hecache-fs");	/* why names the path */
		return -1;
	}
	int fd = hc_ctl_connect(a->where);
	if (fd < 0) {
		snprintf(why, len, "%s", strerror(-fd));
		return -1;
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* Connects, registers and reports at once; when that fails, again in a second. */
static void link_up(struct agent *a)
{
	char why[WHY_LEN];
	if (a->o->device)
		snprintf(a->where, sizeof(a->where), "%s", a->o->device);
	a->fd = a->o->device ? open_device(a->o->device, why, sizeof(why))
			     : open_socket(a, why, sizeof(why));
	if (a->fd < 0) {
		went_down(a, why, 0);
		return;
	}
	note("connected to %s", a->where);
	send_register(a);
	send_report(a, 0, NULL);
	if (a->fd >= 0)
		schedule(a, a->o->interval_ms);
}

/* ---- what the daemon sends ------------------------------------------------ */

static const char *member_string(struct json_object *m, const char *key)
{
	struct json_object *v;
	return json_object_object_get_ex(m, key, &v) && json_object_is_type(v, json_type_string)
		       ? json_object_get_string(v)
		       : "";
}

static void on_reply(struct agent *a, struct json_object *m)
{
	struct json_object *ok;
	char text[256], why[WHY_LEN];
	json_object_object_get_ex(m, "ok", &ok);
	int good = json_object_get_boolean(ok);
	if (!strcmp(member_string(m, "id"), "agent_register")) {
		a->registering = 0;
		if (!good) {
			snprintf(why, sizeof(why), "registration refused: %s",
				 hc_ctl_errtext(m, text, sizeof(text)));
			link_down(a, why, 1);
		} else if (a->down_logged) {
			say("%s: connected again, domain %s registered", a->where, a->o->domain);
		} else {
			note("domain %s registered", a->o->domain);
		}
		a->down_logged = a->fd < 0;
		return;
	}
	if (good) {
		a->report_err[0] = 0;
		return;
	}
	hc_ctl_errtext(m, text, sizeof(text));
	if (strcmp(text, a->report_err))
		say("%s refused: %s", member_string(m, "id"), text);
	snprintf(a->report_err, sizeof(a->report_err), "%s", text);
	/*
	 * Not registered: over a serial link, the daemon behind it restarted.
	 * Over a socket (closed at a restart) another agent took the domain:
	 * taking it back would start a tug of war.
	 */
	if (a->o->device && !strcmp(member_string(m, "error"), "EINVAL") && !a->registering) {
		a->down_logged = 1;	/* say when registered again */
		send_register(a);
	}
}

/* Applies set_memory to the managed cgroup and answers with a report at once. */
static void on_set_memory(struct agent *a, struct json_object *m)
{
	struct json_object *v;
	char err[PATH_MAX + 128] = "", size[32];
	int64_t bytes = json_object_object_get_ex(m, "bytes", &v) &&
				json_object_is_type(v, json_type_int)
			? json_object_get_int64(v)
			: -1;
	if (bytes <= 0)
		snprintf(err, sizeof(err), "set_memory without a positive bytes");
	else if (!a->cg.dir[0])
		snprintf(err, sizeof(err), "no memory cgroup to apply set-memory to");
	else
		cg_set_limit(&a->cg, (uint64_t)bytes, err, sizeof(err));
	hc_format_size(bytes > 0 ? (uint64_t)bytes : 0, size, sizeof(size));
	if (err[0])
		say("set_memory %s: %s", size, err);
	else
		note("set_memory %s: applied to %s", size, a->cg.dir);
	send_report(a, err[0] ? 0 : (uint64_t)bytes, err[0] ? err : NULL);
}

static void on_line(struct agent *a, const char *line)
{
	struct json_object *m = json_tokener_parse(line);
	if (!m || !json_object_is_type(m, json_type_object))
		say("%s: not a JSON object, ignored: %.80s", a->where, line);
	else if (json_object_object_get_ex(m, "ok", NULL))
		on_reply(a, m);
	else if (!strcmp(member_string(m, "op"), "set_memory"))
		on_set_memory(a, m);
	else
		note("%s: ignored op \"%s\"", a->where, member_string(m, "op"));
	json_object_put(m);
}

/* Reads what the link has (revents: poll's) and handles each complete line. */
static void on_readable(struct agent *a, short revents)
{
	struct linebuf *b = &a->in;
	ssize_t n = read(a->fd, b->buf + b->len, sizeof(b->buf) - b->len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
		if (revents & (POLLHUP | POLLERR))
			link_down(a, "hang-up", 0);
		return;
	}
	if (n <= 0) {
		link_down(a, n ? strerror(errno) : "connection closed", 0);
		return;
	}
	b->len += (size_t)n;
	char *start = b->buf, *nl;
	while ((nl = memchr(start, '\n', b->len - (size_t)(start - b->buf)))) {
		*nl = 0;
		if (!b->skipping)
			on_line(a, start);
		if (a->fd < 0)
			return;		/* the line took the link down */
		b->skipping = 0;
		start = nl + 1;
	}
	b->len -= (size_t)(start - b->buf);
	memmove(b->buf, start, b->len);
	if (b->len == sizeof(b->buf)) {
		say("%s: line longer than %d bytes, skipped", a->where, HC_CTL_MAX_LINE);
		b->skipping = 1;
		b->len = 0;
	}
}

/* ---- the workload and signals ---------------------------------------------- */

/* Blocks the signals the loop reads from a signalfd; old: the mask before. */
static int signals_open(sigset_t *old)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	signal(SIGPIPE, SIG_IGN);	/* a serial link that is a pipe */
	if (sigprocmask(SIG_BLOCK, &set, old))
		return -errno;
	int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* Forks CMD; the child joins the cgroup before exec. */
static pid_t spawn(const struct cgroup *cg, char **cmd, const sigset_t *old)
{
	pid_t pid = fork();
	if (pid)
		return pid < 0 ? -errno : pid;
	char num[24];
	snprintf(num, sizeof(num), "%d", (int)getpid());
	int err = write_text(cg->dir, "cgroup.procs", num);
	if (err) {
		say("%s/cgroup.procs: cannot join: %s", cg->dir, strerror(-err));
		_exit(EXIT_AGENT);
	}
	signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_SETMASK, old, NULL);
	execvp(cmd[0], cmd);
	err = errno;
	say("%s: %s", cmd[0], strerror(err));
	_exit(err == ENOENT ? 127 : 126);
}

/* Handles pending signals; returns 1 when the agent is done. */
static int on_signal(struct agent *a)
{
	struct signalfd_siginfo si;
	while (read(a->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;
		if (sig == SIGCHLD) {
			if (a->child > 0 && waitpid(a->child, &a->status, WNOHANG) == a->child) {
				a->child = 0;
				return 1;
			}
		} else if (a->child > 0) {
			note("forwarding %s to %s", strsignal(sig), a->o->cmd[0]);
			kill(a->child, sig);
		} else {
			note("%s: exiting", strsignal(sig));
			return 1;
		}
	}
	return 0;
}

static int poll_timeout(const struct agent *a)
{
	uint64_t now = hc_now_ns();
	return a->next_tick_ns <= now ? 0 : (int)((a->next_tick_ns - now + 999999) / 1000000);
}

/* The loop: reports, set_memory, reconnection; until done (on_signal). */
static void agent_loop(struct agent *a)
{
	for (;;) {
		struct pollfd p[2] = { { .fd = a->sigfd, .events = POLLIN },
				       { .fd = a->fd, .events = POLLIN } };
		int n = poll(p, a->fd >= 0 ? 2 : 1, poll_timeout(a));
		if (n < 0 && errno != EINTR) {
			say("poll: %s", strerror(errno));
			return;
		}
		if (p[0].revents && on_signal(a))
			return;
		if (a->fd >= 0 && p[1].revents)
			on_readable(a, p[1].revents);
		if (hc_now_ns() < a->next_tick_ns)
			continue;
		if (a->fd < 0) {
			link_up(a);
		} else {
			send_report(a, 0, NULL);
			schedule(a, a->o->interval_ms);
		}
	}
}

/* The managed cgroup: made for run, opened for report --cgroup, or none. */
static int setup_cgroup(struct agent *a)
{
	const struct opts *o = a->o;
	char err[PATH_MAX + 128];
	if (o->cmd)
		return cg_create(&a->cg, o->domain, o->memory);
	if (!o->cgroup)
		return 0;
	int e = cg_open(&a->cg, o->cgroup);
	if (!e && o->memory && (e = cg_set_limit(&a->cg, o->memory, err, sizeof(err))))
		say("%s", err);
	return e;
}

/* run's exit status: CMD's, or 128 + the signal that killed it. */
static int exit_status(int status)
{
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
	struct opts o;
	parse_opts(argc, argv, &o);
	static struct agent a;
	a.o = &o;
	a.fd = -1;
	int fail = o.cmd ? EXIT_AGENT : 1;
	sigset_t old;
	a.sigfd = signals_open(&old);
	if (a.sigfd < 0) {
		say("signalfd: %s", strerror(-a.sigfd));
		return fail;
	}
	if (setup_cgroup(&a))
		return fail;
	if (o.cmd) {
		a.child = spawn(&a.cg, o.cmd, &old);
		if (a.child < 0) {
			say("fork: %s", strerror(-a.child));
			cg_remove(&a.cg);
			return fail;
		}
		note("%s running in %s (pid %d)", o.cmd[0], a.cg.dir, (int)a.child);
	}
	agent_loop(&a);
	if (a.fd >= 0)
		close(a.fd);
	if (!o.cmd)
		return 0;
	if (a.child > 0 && waitpid(a.child, &a.status, WNOHANG) != a.child) {
		kill(a.child, SIGKILL);	/* the loop failed under it */
		waitpid(a.child, &a.status, 0);
	}
	note("%s exited with status %d", o.cmd[0], exit_status(a.status));
	if (cg_remove(&a.cg) && !exit_status(a.status))
		return fail;
	return exit_status(a.status);
}
