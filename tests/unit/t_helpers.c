// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Shared helpers of the Check unit tests (t_helpers.h): temporary
 * directories, data patterns, aligned buffers and small file utilities.
 * Not thread safe where they assert; stress threads record their errors and
 * let the test's thread report them.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "t_helpers.h"
#include "util.h"
#include "volume.h"

char *t_base;
char *t_dir;

char *t_mkdtemp(const char *parent, const char *tag)
{
	char *p;
	ck_assert_int_gt(asprintf(&p, "%s/hc-unit-%s-XXXXXX", parent, tag), 0);
	ck_assert_msg(mkdtemp(p) != NULL, "mkdtemp %s: %s", p, strerror(errno));
	return p;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (remove(path) < 0 && errno != ENOENT)
		return errno;
	return 0;
}

int t_rmtree(const char *path)
{
	int r = nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	if (r < 0)
		return errno == ENOENT ? 0 : -errno;
	return -r;
}

void t_base_setup(void)
{
	const char *parent = getenv("HC_UNIT_TMPDIR");
	t_base = t_mkdtemp(parent && *parent ? parent : "/var/tmp", "base");
}

void t_base_teardown(void)
{
	if (!t_base)
		return;
	t_rmtree(t_base);
	free(t_base);
	t_base = NULL;
}

void t_dir_setup(void)
{
	ck_assert_ptr_nonnull(t_base);
	t_dir = t_mkdtemp(t_base, "test");
}

void t_dir_teardown(void)
{
	if (!t_dir)
		return;
	t_rmtree(t_dir);
	free(t_dir);
	t_dir = NULL;
}

void t_tcase_fixtures(TCase *tc, double timeout)
{
	tcase_add_unchecked_fixture(tc, t_base_setup, t_base_teardown);
	tcase_add_checked_fixture(tc, t_dir_setup, t_dir_teardown);
	tcase_set_timeout(tc, timeout);
}

char *t_path(const char *dir, const char *name)
{
	char *p;
	ck_assert_int_gt(asprintf(&p, "%s/%s", dir, name), 0);
	return p;
}

uint64_t t_rand(uint64_t *state)
{
	return hc_mix64(*state += 0x9E3779B97F4A7C15ull);	/* splitmix64 */
}

uint64_t t_rand_below(uint64_t *state, uint64_t n)
{
	return n ? t_rand(state) % n : 0;
}

void t_fill_random(void *buf, size_t len, uint64_t *state)
{
	unsigned char *p = buf;
	while (len) {
		uint64_t w = t_rand(state);
		size_t k = len < 8 ? len : 8;
		memcpy(p, &w, k);
		p += k;
		len -= k;
	}
}

/* The 8 bytes of the stream at word index w. */
static uint64_t pattern_word(uint64_t seed, uint64_t w)
{
	uint64_t s = seed * 0xD1342543DE82EF95ull + w;
	return t_rand(&s);
}

static unsigned char pattern_byte(uint64_t seed, uint64_t p)
{
	return (unsigned char)(pattern_word(seed, p / 8) >> (8 * (p % 8)));
}

void t_pattern(void *buf, size_t len, uint64_t seed, uint64_t off)
{
	unsigned char *b = buf;
	size_t i = 0;
	while (i < len && (off + i) % 8)
		b[i] = pattern_byte(seed, off + i), i++;
	for (; i + 8 <= len; i += 8) {
		uint64_t w = pattern_word(seed, (off + i) / 8);
		for (unsigned k = 0; k < 8; k++)
			b[i + k] = (unsigned char)(w >> (8 * k));
	}
	for (; i < len; i++)
		b[i] = pattern_byte(seed, off + i);
}

ssize_t t_pattern_check(const void *buf, size_t len, uint64_t seed, uint64_t off)
{
	const unsigned char *b = buf;
	for (size_t i = 0; i < len; i++)
		if (b[i] != pattern_byte(seed, off + i))
			return (ssize_t)i;
	return -1;
}

ssize_t t_memdiff(const void *a, const void *b, size_t len)
{
	const unsigned char *x = a, *y = b;
	if (!memcmp(x, y, len))
		return -1;
	for (size_t i = 0; i < len; i++)
		if (x[i] != y[i])
			return (ssize_t)i;
	return -1;
}

ssize_t t_memchk(const void *buf, int c, size_t len)
{
	const unsigned char *b = buf;
	for (size_t i = 0; i < len; i++)
		if (b[i] != (unsigned char)c)
			return (ssize_t)i;
	return -1;
}

void *t_alloc_aligned(size_t len)
{
	void *p = NULL;
	ck_assert_int_eq(posix_memalign(&p, 4096, len ? len : 1), 0);
	memset(p, 0, len);
	return p;
}

int t_open_direct(const char *path, int flags, mode_t mode)
{
	int fd = open(path, flags | O_DIRECT | O_CLOEXEC, mode);
	if (fd < 0 && errno == EINVAL)
		fd = open(path, flags | O_CLOEXEC, mode);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	return fd;
}

void t_pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_msg(n > 0, "pwrite at %lld: %s", (long long)off,
			      n < 0 ? strerror(errno) : "no progress");
		p += n;
		off += n;
		len -= (size_t)n;
	}
}

size_t t_pread_all(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;
	size_t got = 0;
	while (got < len) {
		ssize_t n = pread(fd, p + got, len - got, off + (off_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_msg(n >= 0, "pread at %lld: %s", (long long)(off + (off_t)got),
			      strerror(errno));
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return got;
}

void *t_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	struct stat st;
	ck_assert_int_eq(fstat(fd, &st), 0);
	size_t size = (size_t)st.st_size;
	void *buf = malloc(size ? size : 1);
	ck_assert_ptr_nonnull(buf);
	size_t got = t_pread_all(fd, buf, size, 0);
	ck_assert_uint_eq(got, size);
	close(fd);
	*len = size;
	return buf;
}

void t_write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	t_pwrite_all(fd, buf, len, 0);
	ck_assert_int_eq(close(fd), 0);
}

off_t t_file_size(const char *path)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -1;
	return st.st_size;
}

static int not_dots(const struct dirent *de)
{
	return strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
}

char *t_dir_listing(const char *dir)
{
	struct dirent **ents;
	int n = scandir(dir, &ents, not_dots, alphasort);
	ck_assert_msg(n >= 0, "scandir %s: %s", dir, strerror(errno));
	char *out = NULL;
	size_t outlen = 0;
	FILE *f = open_memstream(&out, &outlen);
	ck_assert_ptr_nonnull(f);
	for (int i = 0; i < n; i++) {
		char *p = t_path(dir, ents[i]->d_name);
		struct stat st;
		ck_assert_int_eq(lstat(p, &st), 0);
		fprintf(f, "%s %o %lld %lld.%09ld\n", ents[i]->d_name, (unsigned)st.st_mode,
			(long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
		free(p);
		free(ents[i]);
	}
	free(ents);
	fclose(f);
	return out;
}

uint64_t t_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int t_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* --- volume layer ------------------------------------------------------ */

struct rwait {
	sem_t sem;
	int calls;	/* atomic */
	int err;
	char *out;
	size_t cap;
	size_t len;
	const char *dst;	/* hc_vol_read's dst, if any */
	int in_place;		/* the reply's iovecs are dst, contiguous */
};

static void rdone(struct hc_rreq *r)
{
	struct rwait *w = r->priv;
	w->err = r->err;
	w->len = 0;
	w->in_place = w->dst && r->iovcnt > 0 && r->iov[0].iov_base == w->dst;
	for (int k = 1; k < r->iovcnt && w->in_place; k++)
		w->in_place = r->iov[k].iov_base ==
			      (char *)r->iov[k - 1].iov_base + r->iov[k - 1].iov_len;
	if (!r->err) {
		for (int k = 0; k < r->iovcnt; k++) {
			size_t l = r->iov[k].iov_len;
			if (w->len + l > w->cap) {
				w->err = -EOVERFLOW;	/* more than asked for */
				break;
			}
			memcpy(w->out + w->len, r->iov[k].iov_base, l);
			w->len += l;
		}
	}
	hc_rreq_release(r);
	__atomic_fetch_add(&w->calls, 1, __ATOMIC_ACQ_REL);
	sem_post(&w->sem);
}

ssize_t t_vol_read(struct hc_fs *fs, struct hc_volume *v, uint64_t off, void *buf, size_t size)
{
	return t_vol_read_dst(fs, v, off, buf, size, NULL, 0, NULL);
}

ssize_t t_vol_read_dst(struct hc_fs *fs, struct hc_volume *v, uint64_t off, void *buf,
		       size_t size, void *dst, size_t dst_len, int *in_place)
{
	struct rwait w;
	memset(&w, 0, sizeof(w));
	sem_init(&w.sem, 0, 0);
	w.out = buf;
	w.cap = size;
	w.dst = dst;
	int r = hc_vol_read(fs, v, off, size, rdone, &w, dst, dst_len);
	if (r) {
		sem_destroy(&w.sem);
		return r;
	}
	while (sem_wait(&w.sem) < 0 && errno == EINTR)
		;
	sem_destroy(&w.sem);
	if (__atomic_load_n(&w.calls, __ATOMIC_ACQUIRE) != 1)
		return -EPROTO;
	if (in_place)
		*in_place = w.in_place;
	return w.err ? w.err : (ssize_t)w.len;
}
