/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Helpers shared by the Check unit tests (t_*): temporary directories under
 * /var/tmp (a disk file system: the code under test opens files O_DIRECT,
 * which tmpfs refuses), a deterministic data pattern that any byte range can
 * be regenerated from, random data, aligned buffers, whole-file reads and
 * directory listings.  Directories come in two levels so that nothing is
 * left behind even when a forked test dies: t_base (one per TCase, made and
 * removed by the parent through an unchecked fixture) holds t_dir (one per
 * test, made by a checked fixture in the forked child).
 * Helpers report failures through ck_assert, so call them from the test's
 * own thread only.
 */
#ifndef HC_T_HELPERS_H
#define HC_T_HELPERS_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Per-TCase base directory (parent process) and per-test directory. */
extern char *t_base;
extern char *t_dir;

void t_base_setup(void);
void t_base_teardown(void);
void t_dir_setup(void);
void t_dir_teardown(void);
/* Adds both fixtures and a timeout (seconds) to tc. */
void t_tcase_fixtures(TCase *tc, double timeout);

/* mkdtemp of parent/hc-unit-<tag>-XXXXXX; returns a malloc'd path. */
char *t_mkdtemp(const char *parent, const char *tag);
/* Removes path and everything under it; returns 0 or -errno. */
int t_rmtree(const char *path);
/* dir + "/" + name, malloc'd. */
char *t_path(const char *dir, const char *name);

/* splitmix64 step: a fast, reproducible random stream. */
uint64_t t_rand(uint64_t *state);
/* Random in [0, n). */
uint64_t t_rand_below(uint64_t *state, uint64_t n);
void t_fill_random(void *buf, size_t len, uint64_t *state);

/*
 * The pattern: byte p of stream `seed` is a function of (seed, p) alone, so
 * buf[0..len) holds bytes [off, off+len) of the stream and any part of it
 * can be checked on its own.
 */
void t_pattern(void *buf, size_t len, uint64_t seed, uint64_t off);
/* -1 when buf holds that part of the stream, else the first bad index. */
ssize_t t_pattern_check(const void *buf, size_t len, uint64_t seed, uint64_t off);
/* -1 when equal, else the first differing index. */
ssize_t t_memdiff(const void *a, const void *b, size_t len);
/* -1 when every byte is c, else the first other index. */
ssize_t t_memchk(const void *buf, int c, size_t len);

/* Zeroed buffer aligned for O_DIRECT (4096); free() it. */
void *t_alloc_aligned(size_t len);

/* Opens with O_DIRECT, without it when the file system refuses. */
int t_open_direct(const char *path, int flags, mode_t mode);
/* Writes or asserts. */
void t_pwrite_all(int fd, const void *buf, size_t len, off_t off);
/* Reads up to len bytes (stops at end of file); returns the count. */
size_t t_pread_all(int fd, void *buf, size_t len, off_t off);
/* Whole file through a fresh buffered descriptor; *len gets its size. */
void *t_read_file(const char *path, size_t *len);
/* Creates or replaces path with buf. */
void t_write_file(const char *path, const void *buf, size_t len);
/* Size of path, or -1 when it does not exist. */
off_t t_file_size(const char *path);
/* Sorted "name type size mtime" lines of dir's entries, malloc'd. */
char *t_dir_listing(const char *dir);

struct hc_fs;
struct hc_volume;
/*
 * Reads through the volume layer (hc_vol_read, waiting for its done());
 * returns the byte count, -errno, or -EPROTO when done() did not run exactly
 * once.  No ck_assert: callable from any thread.
 */
ssize_t t_vol_read(struct hc_fs *fs, struct hc_volume *v, uint64_t off, void *buf, size_t size);
/* The same with hc_vol_read()'s dst; *in_place: the reply pointed into dst. */
ssize_t t_vol_read_dst(struct hc_fs *fs, struct hc_volume *v, uint64_t off, void *buf,
		       size_t size, void *dst, size_t dst_len, int *in_place);

/* Monotonic milliseconds (deadlines of bounded stress loops). */
uint64_t t_now_ms(void);

/* Runs every test of s (CK_NORMAL); returns the exit status for main. */
int t_run_suite(Suite *s);

#endif
