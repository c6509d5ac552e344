/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Logging: one sink for hecache and libfuse.  Messages go to stderr while the
 * daemon is in the foreground and to syslog once it has detached.  The
 * rate-limited variant is for hot paths (at most one line per second per call
 * site); hc_debug() compiles out unless HC_DEBUG is defined.
 */
#ifndef HC_LOG_H
#define HC_LOG_H

#include <syslog.h>
#include <time.h>

void hc_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Where messages go: 0 = stderr (default), 1 = syslog. */
void hc_log_use_syslog(int on);
/* Lowest priority printed (LOG_INFO by default; LOG_DEBUG with -d). */
void hc_log_set_level(int level);
/* Installs hc_log as libfuse's log function. */
void hc_log_install_fuse(void);

#define hc_log_ratelimited(level, ...)                                       \
	do {                                                                 \
		static time_t hc_rl_last_;                                   \
		time_t hc_rl_now_ = time(NULL);                              \
		if (hc_rl_now_ != __atomic_load_n(&hc_rl_last_, __ATOMIC_RELAXED)) { \
			__atomic_store_n(&hc_rl_last_, hc_rl_now_, __ATOMIC_RELAXED); \
			hc_log(level, __VA_ARGS__);                          \
		}                                                            \
	} while (0)

#ifdef HC_DEBUG
#define hc_debug(...) hc_log(LOG_DEBUG, __VA_ARGS__)
#else
#define hc_debug(...) do { } while (0)
#endif

#endif
