/* SPDX-License-Identifier: GPL-2.0-or-later */
/* Small helpers shared by the daemon and the tools: sizes, clocks, whole I/O. */
#ifndef HC_UTIL_H
#define HC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * Parses "4096", "64K", "256M", "1G", "1T" (binary multiples, optional
 * trailing "B" or "iB").  Returns 0 and stores the byte count, or -EINVAL
 * for anything else (empty, negative, junk after the suffix, overflow).
 */
int hc_parse_size(const char *s, uint64_t *out);
/* Formats bytes as "256 MiB"-style text into buf; returns buf. */
char *hc_format_size(uint64_t bytes, char *buf, size_t len);
/* Monotonic clock in nanoseconds. */
uint64_t hc_now_ns(void);
/*
 * pwrite of all len bytes at off, through short writes and EINTR.  0,
 * -errno, or -EIO when the file takes nothing.
 */
int hc_pwrite_all(int fd, const void *buf, size_t len, off_t off);
/*
 * pread of len bytes at off, through short reads and EINTR; bytes past the
 * end of the file read as zeros.  The count read from the file, or -errno.
 */
ssize_t hc_pread_full(int fd, void *buf, size_t len, off_t off);

/* splitmix64's finalizer: a cheap, well-mixed 64-bit hash of x. */
static inline uint64_t hc_mix64(uint64_t x)
{
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

#define HC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define HC_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
