// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hc_log: the single log sink (see log.h).  Also hc_strerror(), which names
 * both errno values and the HC_E* codes of include/hecache/errors.h.
 */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <fuse_log.h>

#include "hecache/errors.h"
#include "log.h"

static int use_syslog;
static int min_level = LOG_INFO;

void hc_log_use_syslog(int on)
{
	use_syslog = on;
	if (on)
		openlog("hecache-fs", LOG_PID, LOG_DAEMON);
}

void hc_log_set_level(int level)
{
	min_level = level;
}

static void vlog(int level, const char *fmt, va_list ap)
{
	if (level > min_level)
		return;
	if (use_syslog) {
		vsyslog(level, fmt, ap);
		return;
	}
	char line[1024];
	int n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	size_t len = strlen(line);
	/* One line per message, newline added when missing. */
	fprintf(stderr, "hecache-fs: %s%s", line,
		len && line[len - 1] == '\n' ? "" : "\n");
}

void hc_log(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vlog(level, fmt, ap);
	va_end(ap);
}

/*
 * libfuse sometimes builds one message from several calls (an unknown
 * option is reported in three pieces); pieces are joined until a newline so
 * that every message stays one line.
 */
static void fuse_sink(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static __thread char pending[1024];
	static __thread size_t used;
	int n = vsnprintf(pending + used, sizeof(pending) - used, fmt, ap);
	if (n < 0)
		return;
	used += (size_t)n;
	if (used >= sizeof(pending) - 1)
		used = sizeof(pending) - 1;
	if (used && pending[used - 1] != '\n' && used < sizeof(pending) - 1)
		return;
	hc_log((int)level, "%s", pending);
	used = 0;
	pending[0] = 0;
}

void hc_log_install_fuse(void)
{
	fuse_set_log_func(fuse_sink);
}

const char *hc_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case HC_ECORRUPT:
		return "corrupt metadata (bad magic or checksum)";
	case HC_EVERSION:
		return "on-disk format is newer than this program";
	case HC_ENOTHC:
		return "not a hecache backing directory";
	case HC_ELOCKED:
		return "backing directory is in use by another hecache process";
	default:
		return strerror(err);
	}
}
