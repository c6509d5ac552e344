// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of the I/O engines (ioeng.c and the "uring", "aio" and "sync"
 * engines), each test run once per engine on real files under /var/tmp:
 * vectored writes and reads with several iovecs (O_DIRECT and buffered),
 * fsync/fdatasync, a read past end of file returning a short count, a bad
 * descriptor reported as a negative errno without leaking a slot, a write
 * cut short by RLIMIT_FSIZE continued by the engine and then reported as an
 * error (never as success), and 1000 asynchronous I/Os from four threads on
 * an engine of depth 4: every done() runs exactly once, the depth bound
 * holds and every byte lands where it should.  "Inline when idle": a lone
 * read marked may_inline on an asynchronous engine completes in the
 * submitting thread before submit returns; one not marked, one on an engine
 * switched off, and one while another read is in flight (io_uring: a read
 * from an empty pipe) do not.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <liburing.h>

#include "hecache/format.h"
#include "ioeng.h"
#include "t_helpers.h"

static const char *const engine_names[] = { "uring", "aio", "sync" };
#define NENGINES 3

static struct hc_ioeng *make_engine(int i, unsigned depth)
{
	struct hc_ioeng *e = NULL;
	int r = hc_ioeng_create(engine_names[i], depth, 0, &e);
	ck_assert_msg(r == 0, "engine %s: %s", engine_names[i], strerror(-r));
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(hc_ioeng_name(e), engine_names[i]);
	return e;
}

static int open_file(const char *name, int direct)
{
	char *p = t_path(t_dir, name);
	int fd = direct ? t_open_direct(p, O_RDWR | O_CREAT, 0600)
			: open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	ck_assert_msg(fd >= 0, "open %s: %s", p, strerror(errno));
	free(p);
	return fd;
}

/* Reads the file back through its own buffered descriptor. */
static void *file_bytes(const char *name, size_t *len)
{
	char *p = t_path(t_dir, name);
	void *b = t_read_file(p, len);
	free(p);
	return b;
}

static ssize_t run_io(struct hc_ioeng *e, enum hc_io_op op, int fd, uint64_t off,
		      struct iovec *iov, int iovcnt)
{
	struct hc_io io;
	memset(&io, 0, sizeof(io));
	io.op = op;
	io.fd = fd;
	io.off = off;
	io.iov = iov;
	io.iovcnt = iovcnt;
	io.res = 0x7777;
	ssize_t r = hc_ioeng_run(e, &io);
	if (r >= 0)
		ck_assert_int_eq(io.res, r);
	return r;
}

/* ---- vectored I/O ----------------------------------------------------- */

/* O_DIRECT: three aligned iovecs out, four back in, at a block offset. */
START_TEST(test_io_multi_iovec_direct)
{
	struct hc_ioeng *e = make_engine(_i, 8);
	int fd = open_file("direct", 1);
	const uint64_t off = 2 * HC_BLOCK_SIZE;
	const size_t lens[3] = { 4096, 8192, 4096 };
	const size_t total = 16384;
	struct iovec wiov[3];
	uint64_t pos = 0;
	for (int k = 0; k < 3; k++) {
		wiov[k].iov_base = t_alloc_aligned(lens[k]);
		wiov[k].iov_len = lens[k];
		t_pattern(wiov[k].iov_base, lens[k], 100 + (uint64_t)_i, off + pos);
		pos += lens[k];
	}
	ck_assert_int_eq(run_io(e, HC_IO_WRITE, fd, off, wiov, 3), (ssize_t)total);
	ck_assert_int_eq(run_io(e, HC_IO_FSYNC, fd, 0, NULL, 0), 0);

	size_t len;
	unsigned char *f = file_bytes("direct", &len);
	ck_assert_uint_eq(len, off + total);
	ck_assert_int_eq(t_memchk(f, 0, off), -1);	/* the hole before */
	ck_assert_int_eq(t_pattern_check(f + off, total, 100 + (uint64_t)_i, off), -1);
	free(f);

	struct iovec riov[4];
	for (int k = 0; k < 4; k++) {
		riov[k].iov_base = t_alloc_aligned(4096);
		memset(riov[k].iov_base, 0xcc, 4096);
		riov[k].iov_len = 4096;
	}
	ck_assert_int_eq(run_io(e, HC_IO_READ, fd, off, riov, 4), (ssize_t)total);
	for (int k = 0; k < 4; k++) {
		ssize_t bad = t_pattern_check(riov[k].iov_base, 4096, 100 + (uint64_t)_i,
					      off + (uint64_t)k * 4096);
		ck_assert_msg(bad == -1, "iovec %d differs at byte %zd", k, bad);
	}
	/* A middle part only, across the iovec boundary of the write. */
	ck_assert_int_eq(run_io(e, HC_IO_READ, fd, off + 4096, riov, 2), 8192);
	ck_assert_int_eq(t_pattern_check(riov[0].iov_base, 4096, 100 + (uint64_t)_i, off + 4096),
			 -1);
	ck_assert_int_eq(t_pattern_check(riov[1].iov_base, 4096, 100 + (uint64_t)_i, off + 8192),
			 -1);
	ck_assert_int_eq(run_io(e, HC_IO_FDATASYNC, fd, 0, NULL, 0), 0);
	for (int k = 0; k < 3; k++)
		free(wiov[k].iov_base);
	for (int k = 0; k < 4; k++)
		free(riov[k].iov_base);
	close(fd);
	hc_ioeng_destroy(e);
}
END_TEST

/* Buffered: odd lengths at an odd offset, overwriting part of old data. */
START_TEST(test_io_multi_iovec_buffered)
{
	struct hc_ioeng *e = make_engine(_i, 8);
	int fd = open_file("buffered", 0);
	char old[20000];
	t_pattern(old, sizeof(old), 1, 0);
	t_pwrite_all(fd, old, sizeof(old), 0);

	const uint64_t off = 12345;
	char a[100], b[3000], c[7];
	t_pattern(a, sizeof(a), 2, off);
	t_pattern(b, sizeof(b), 2, off + sizeof(a));
	t_pattern(c, sizeof(c), 2, off + sizeof(a) + sizeof(b));
	struct iovec iov[3] = { { a, sizeof(a) }, { b, sizeof(b) }, { c, sizeof(c) } };
	const size_t total = sizeof(a) + sizeof(b) + sizeof(c);
	ck_assert_int_eq(run_io(e, HC_IO_WRITE, fd, off, iov, 3), (ssize_t)total);
	ck_assert_int_eq(run_io(e, HC_IO_FSYNC, fd, 0, NULL, 0), 0);

	size_t len;
	char *f = file_bytes("buffered", &len);
	ck_assert_uint_eq(len, sizeof(old));
	ck_assert_int_eq(t_memdiff(f, old, off), -1);
	ck_assert_int_eq(t_pattern_check(f + off, total, 2, off), -1);
	ck_assert_int_eq(t_memdiff(f + off + total, old + off + total, sizeof(old) - off - total),
			 -1);
	free(f);

	/* Read back the written range plus a margin, split differently. */
	char r1[1], r2[2000], r3[1200];
	struct iovec riov[3] = { { r1, sizeof(r1) }, { r2, sizeof(r2) }, { r3, sizeof(r3) } };
	ck_assert_int_eq(run_io(e, HC_IO_READ, fd, off - 1, riov, 3), 3201);
	ck_assert_uint_eq((unsigned char)r1[0], (unsigned char)old[off - 1]);
	ck_assert_int_eq(t_pattern_check(r2, sizeof(r2), 2, off), -1);
	ck_assert_int_eq(t_pattern_check(r3, total - sizeof(r2), 2, off + sizeof(r2)), -1);
	ck_assert_int_eq(t_memdiff(r3 + total - sizeof(r2), old + off + total,
				   sizeof(r3) - (total - sizeof(r2))), -1);
	close(fd);
	hc_ioeng_destroy(e);
}
END_TEST

START_TEST(test_io_read_past_eof)
{
	struct hc_ioeng *e = make_engine(_i, 4);
	for (int direct = 0; direct <= 1; direct++) {
		const char *name = direct ? "eof-direct" : "eof";
		char data[6000];
		t_pattern(data, sizeof(data), 5, 0);
		char *p = t_path(t_dir, name);
		t_write_file(p, data, sizeof(data));
		free(p);
		int fd = open_file(name, direct);
		unsigned char *buf = t_alloc_aligned(8192);
		memset(buf, 0xcc, 8192);
		struct iovec iov[2] = { { buf, 4096 }, { buf + 4096, 4096 } };
		ssize_t r = run_io(e, HC_IO_READ, fd, 4096, iov, 2);
		ck_assert_msg(r == 6000 - 4096, "%s: read across EOF gave %zd",
			      direct ? "O_DIRECT" : "buffered", r);
		ck_assert_int_eq(t_pattern_check(buf, (size_t)r, 5, 4096), -1);
		/* Wholly past the end: 0 bytes, and a short read is no error. */
		r = run_io(e, HC_IO_READ, fd, 16384, iov, 2);
		ck_assert_int_eq(r, 0);
		r = run_io(e, HC_IO_READ, fd, 0, iov, 2);
		ck_assert_int_eq(r, 6000);
		ck_assert_int_eq(t_pattern_check(buf, 6000, 5, 0), -1);
		free(buf);
		close(fd);
	}
	hc_ioeng_destroy(e);
}
END_TEST

/* ---- errors ----------------------------------------------------------- */

struct err_ctx {
	int calls;		/* atomic */
	ssize_t res;
	sem_t sem;
};

static void err_done(struct hc_io *io)
{
	struct err_ctx *c = io->priv;
	c->res = io->res;
	__atomic_fetch_add(&c->calls, 1, __ATOMIC_ACQ_REL);
	sem_post(&c->sem);
}

START_TEST(test_io_bad_fd)
{
	const unsigned depth = 4;
	struct hc_ioeng *e = make_engine(_i, depth);
	int fd = open_file("bad", 0);
	ck_assert_int_eq(close(fd), 0);	/* fd is now a closed descriptor */
	char buf[4096];
	memset(buf, 1, sizeof(buf));
	struct iovec iov = { buf, sizeof(buf) };
	static const enum hc_io_op ops[] = { HC_IO_READ, HC_IO_WRITE, HC_IO_FSYNC,
					     HC_IO_FDATASYNC };

	/* Three times the depth: a leaked slot would hang the last ones. */
	for (unsigned round = 0; round < 3 * depth; round++) {
		enum hc_io_op op = ops[round % 4];
		int badfd = round & 1 ? fd : -1;
		ssize_t r = run_io(e, op, badfd, 0, &iov, 1);
		ck_assert_msg(r == -EBADF, "%s op %d on fd %d: %zd, want -EBADF",
			      engine_names[_i], op, badfd, r);

		/* Asynchronously: an error from submit, or one done() with it. */
		struct err_ctx c = { .calls = 0, .res = 0 };
		sem_init(&c.sem, 0, 0);
		struct hc_io io;
		memset(&io, 0, sizeof(io));
		io.op = op;
		io.fd = badfd;
		io.iov = &iov;
		io.iovcnt = 1;
		io.done = err_done;
		io.priv = &c;
		int s = hc_ioeng_submit(e, &io);
		if (s == 0) {
			sem_wait(&c.sem);
			ck_assert_int_eq(c.res, -EBADF);
			ck_assert_int_eq(io.res, -EBADF);
		} else {
			ck_assert_int_eq(s, -EBADF);
		}
		/* A good I/O after it completes, so a stray done() would show. */
		int good = open_file("good", 0);
		ck_assert_int_eq(run_io(e, HC_IO_WRITE, good, round * 4096, &iov, 1), 4096);
		close(good);
		ck_assert_int_eq(__atomic_load_n(&c.calls, __ATOMIC_ACQUIRE), s == 0 ? 1 : 0);
		sem_destroy(&c.sem);
	}
	/* Offsets that the kernel refuses for O_DIRECT: misaligned. */
	int dfd = open_file("direct-bad", 1);
	int fl = fcntl(dfd, F_GETFL);
	if (fl & O_DIRECT) {
		char *ab = t_alloc_aligned(8192);
		struct iovec aiov = { ab + 1, 4096 };	/* misaligned buffer */
		ck_assert_int_eq(run_io(e, HC_IO_WRITE, dfd, 0, &aiov, 1), -EINVAL);
		free(ab);
	}
	close(dfd);
	hc_ioeng_destroy(e);
}
END_TEST

/*
 * RLIMIT_FSIZE cuts a write short; the engine continues it, the rest fails
 * with EFBIG, and the caller sees that error, not a short success.
 */
START_TEST(test_io_short_write_continued)
{
	signal(SIGXFSZ, SIG_IGN);
	struct rlimit rl = { 6000, 6000 };
	ck_assert_int_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
	struct hc_ioeng *e = make_engine(_i, 4);
	int fd = open_file("short", 0);
	char a[5000], b[7288];
	t_pattern(a, sizeof(a), 9, 0);
	t_pattern(b, sizeof(b), 9, sizeof(a));
	struct iovec iov[2] = { { a, sizeof(a) }, { b, sizeof(b) } };
	ssize_t r = run_io(e, HC_IO_WRITE, fd, 0, iov, 2);
	ck_assert_msg(r == -EFBIG, "%s: write over RLIMIT_FSIZE gave %zd", engine_names[_i], r);
	size_t len;
	char *f = file_bytes("short", &len);
	ck_assert_uint_eq(len, 6000);
	ck_assert_int_eq(t_pattern_check(f, len, 9, 0), -1);
	free(f);
	/* Within the limit everything still works. */
	struct iovec one = { a, 1000 };
	ck_assert_int_eq(run_io(e, HC_IO_WRITE, fd, 0, &one, 1), 1000);
	close(fd);
	hc_ioeng_destroy(e);
}
END_TEST

START_TEST(test_create_unknown)
{
	static const char *const bad[] = { "", "nope", "URING", "sync ", "io_uring", "libaio" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		for (int fb = 0; fb <= 1; fb++) {
			struct hc_ioeng *e = (struct hc_ioeng *)&bad;
			ck_assert_int_eq(hc_ioeng_create(bad[i], 8, fb, &e), -EINVAL);
			ck_assert_ptr_eq(e, (struct hc_ioeng *)&bad);	/* untouched */
		}
	}
	hc_ioeng_destroy(NULL);
	/* Every known name works, with and without fallback. */
	for (int i = 0; i < NENGINES; i++) {
		for (int fb = 0; fb <= 1; fb++) {
			struct hc_ioeng *e = NULL;
			ck_assert_int_eq(hc_ioeng_create(engine_names[i], 1, fb, &e), 0);
			ck_assert_str_eq(hc_ioeng_name(e), engine_names[i]);
			hc_ioeng_destroy(e);
		}
	}
}
END_TEST

/* ---- concurrency ------------------------------------------------------ */

#define CONC_THREADS 4
#define CONC_PER_THREAD 250
#define CONC_TOTAL (CONC_THREADS * CONC_PER_THREAD)
#define CONC_DEPTH 4

struct conc {
	struct hc_ioeng *e;
	int fd;
	enum hc_io_op op;
	struct hc_io io[CONC_TOTAL];
	struct iovec iov[CONC_TOTAL];
	unsigned char *buf;	/* CONC_TOTAL blocks */
	int calls[CONC_TOTAL];	/* atomic: done() calls per I/O */
	uint64_t submitted;	/* atomic */
	uint64_t completed;	/* atomic */
	uint64_t max_outstanding;	/* atomic */
	int submit_err;		/* atomic: first error from submit */
	int bad_priv;		/* atomic */
	sem_t all_done;
};

struct conc_arg {
	struct conc *c;
	int t;
};

static void conc_done(struct hc_io *io)
{
	struct conc *c = io->priv;
	__atomic_fetch_add(&c->completed, 1, __ATOMIC_ACQ_REL);
	long k = io - c->io;
	if (k < 0 || k >= CONC_TOTAL)
		__atomic_store_n(&c->bad_priv, 1, __ATOMIC_RELAXED);
	else
		__atomic_fetch_add(&c->calls[k], 1, __ATOMIC_RELAXED);
	sem_post(&c->all_done);
}

static void *conc_thread(void *arg)
{
	struct conc_arg *a = arg;
	struct conc *c = a->c;
	/* Interleave the threads' blocks so neighbours come from different threads. */
	for (int n = 0; n < CONC_PER_THREAD; n++) {
		int k = n * CONC_THREADS + a->t;
		struct hc_io *io = &c->io[k];
		memset(io, 0, sizeof(*io));
		io->op = c->op;
		io->fd = c->fd;
		io->off = (uint64_t)k * HC_BLOCK_SIZE;
		c->iov[k].iov_base = c->buf + (size_t)k * HC_BLOCK_SIZE;
		c->iov[k].iov_len = HC_BLOCK_SIZE;
		io->iov = &c->iov[k];
		io->iovcnt = 1;
		io->done = conc_done;
		io->priv = c;
		int err = hc_ioeng_submit(c->e, io);
		if (err) {
			int zero = 0;
			__atomic_compare_exchange_n(&c->submit_err, &zero, err, 0, __ATOMIC_RELAXED,
						    __ATOMIC_RELAXED);
			sem_post(&c->all_done);
			continue;
		}
		/*
		 * Submitted and not yet done: each such I/O holds a slot, except
		 * one the completion thread has just released and not yet passed
		 * to done() (one completion thread: at most one).
		 */
		uint64_t s = __atomic_add_fetch(&c->submitted, 1, __ATOMIC_ACQ_REL);
		uint64_t d = __atomic_load_n(&c->completed, __ATOMIC_ACQUIRE);
		uint64_t out = s > d ? s - d : 0;
		uint64_t m = __atomic_load_n(&c->max_outstanding, __ATOMIC_RELAXED);
		while (out > m && !__atomic_compare_exchange_n(&c->max_outstanding, &m, out, 0,
							       __ATOMIC_RELAXED, __ATOMIC_RELAXED))
			;
	}
	return NULL;
}

static void conc_round(struct conc *c, enum hc_io_op op, int eng)
{
	c->op = op;
	c->submitted = c->completed = c->max_outstanding = 0;
	memset(c->calls, 0, sizeof(c->calls));
	pthread_t th[CONC_THREADS];
	struct conc_arg args[CONC_THREADS];
	for (int t = 0; t < CONC_THREADS; t++) {
		args[t].c = c;
		args[t].t = t;
		ck_assert_int_eq(pthread_create(&th[t], NULL, conc_thread, &args[t]), 0);
	}
	for (int t = 0; t < CONC_THREADS; t++)
		pthread_join(th[t], NULL);
	for (int k = 0; k < CONC_TOTAL; k++)
		while (sem_wait(&c->all_done) < 0 && errno == EINTR)
			;
	ck_assert_int_eq(__atomic_load_n(&c->submit_err, __ATOMIC_RELAXED), 0);
	ck_assert_int_eq(__atomic_load_n(&c->bad_priv, __ATOMIC_RELAXED), 0);
	ck_assert_uint_eq(__atomic_load_n(&c->submitted, __ATOMIC_ACQUIRE), CONC_TOTAL);
	ck_assert_uint_eq(__atomic_load_n(&c->completed, __ATOMIC_ACQUIRE), CONC_TOTAL);
	for (int k = 0; k < CONC_TOTAL; k++) {
		ck_assert_msg(__atomic_load_n(&c->calls[k], __ATOMIC_RELAXED) == 1,
			      "I/O %d: done() ran %d times", k, c->calls[k]);
		ck_assert_msg(c->io[k].res == HC_BLOCK_SIZE, "I/O %d: res %zd", k, c->io[k].res);
	}
	uint64_t m = __atomic_load_n(&c->max_outstanding, __ATOMIC_RELAXED);
	ck_assert_msg(m <= CONC_DEPTH + 1, "%s: %llu I/Os outstanding with depth %d",
		      engine_names[eng], (unsigned long long)m, CONC_DEPTH);
	/* No done() runs after the last one was counted. */
	int v;
	sem_getvalue(&c->all_done, &v);
	ck_assert_int_eq(v, 0);
}

START_TEST(test_io_concurrent)
{
	struct conc *c = calloc(1, sizeof(*c));
	ck_assert_ptr_nonnull(c);
	c->e = make_engine(_i, CONC_DEPTH);
	c->fd = open_file("conc", 1);
	c->buf = t_alloc_aligned((size_t)CONC_TOTAL * HC_BLOCK_SIZE);
	sem_init(&c->all_done, 0, 0);
	for (int k = 0; k < CONC_TOTAL; k++)
		t_pattern(c->buf + (size_t)k * HC_BLOCK_SIZE, HC_BLOCK_SIZE, 77,
			  (uint64_t)k * HC_BLOCK_SIZE);

	conc_round(c, HC_IO_WRITE, _i);
	struct iovec none;
	ck_assert_int_eq(run_io(c->e, HC_IO_FSYNC, c->fd, 0, &none, 0), 0);

	size_t len;
	unsigned char *f = file_bytes("conc", &len);
	ck_assert_uint_eq(len, (size_t)CONC_TOTAL * HC_BLOCK_SIZE);
	ssize_t bad = t_pattern_check(f, len, 77, 0);
	ck_assert_msg(bad == -1, "file differs at byte %zd (block %zd)", bad, bad / 4096);
	free(f);

	memset(c->buf, 0xcc, (size_t)CONC_TOTAL * HC_BLOCK_SIZE);
	conc_round(c, HC_IO_READ, _i);
	bad = t_pattern_check(c->buf, (size_t)CONC_TOTAL * HC_BLOCK_SIZE, 77, 0);
	ck_assert_msg(bad == -1, "read back differs at byte %zd (block %zd)", bad, bad / 4096);

	sem_destroy(&c->all_done);
	close(c->fd);
	hc_ioeng_destroy(c->e);
	free(c->buf);
	free(c);
}
END_TEST

/* ---- inline when idle ------------------------------------------------- */

struct seen {
	pthread_t thread;
	int ran;
};

static void seen_done(struct hc_io *io)
{
	struct seen *w = io->priv;
	w->thread = pthread_self();
	__atomic_store_n(&w->ran, 1, __ATOMIC_RELEASE);
}

static void prep_read(struct hc_io *io, int fd, struct iovec *iov, struct seen *w)
{
	memset(io, 0, sizeof(*io));
	memset(w, 0, sizeof(*w));
	io->op = HC_IO_READ;
	io->fd = fd;
	io->iov = iov;
	io->iovcnt = 1;
	io->may_inline = 1;
	io->done = seen_done;
	io->priv = w;
}

static void wait_ran(struct seen *w)
{
	for (int i = 0; i < 10000 && !__atomic_load_n(&w->ran, __ATOMIC_ACQUIRE); i++)
		usleep(1000);
	ck_assert_msg(w->ran, "done() never ran");
}

/* Submits a prepared read that must complete on the engine's own thread. */
static void expect_async(struct hc_ioeng *e, struct hc_io *io, struct seen *w, int is_sync,
			 uint64_t inlined)
{
	ck_assert_int_eq(hc_ioeng_submit(e, io), 0);
	wait_ran(w);
	ck_assert_int_eq(io->res, HC_BLOCK_SIZE);
	if (!is_sync) {
		ck_assert(!pthread_equal(w->thread, pthread_self()));
		ck_assert_uint_eq(hc_ioeng_inlined(e), inlined);
	}
}

/* A file NAME holding one block of pattern SEED, written through e; iov: that block. */
static int one_block(struct hc_ioeng *e, const char *name, int seed, struct iovec *iov)
{
	int fd = open_file(name, 1);
	unsigned char *b = t_alloc_aligned(HC_BLOCK_SIZE);
	t_pattern(b, HC_BLOCK_SIZE, seed, 0);
	*iov = (struct iovec){ b, HC_BLOCK_SIZE };
	ck_assert_int_eq(run_io(e, HC_IO_WRITE, fd, 0, iov, 1), HC_BLOCK_SIZE);
	return fd;
}

START_TEST(test_io_inline_when_idle)
{
	struct hc_ioeng *e = make_engine(_i, 8);
	int is_sync = !strcmp(engine_names[_i], "sync");
	struct iovec iov;
	int fd = one_block(e, "inl", 9, &iov);
	unsigned char *b = iov.iov_base;
	ck_assert_uint_eq(hc_ioeng_inlined(e), 0);	/* writes never run inline */

	/* A lone read: done() in this thread, before submit returns. */
	struct hc_io io;
	struct seen w;
	memset(b, 0, HC_BLOCK_SIZE);
	prep_read(&io, fd, &iov, &w);
	ck_assert_int_eq(hc_ioeng_submit(e, &io), 0);
	if (!is_sync) {
		ck_assert_msg(w.ran, "%s: a lone read did not complete inline", engine_names[_i]);
		ck_assert(pthread_equal(w.thread, pthread_self()));
		ck_assert_uint_eq(hc_ioeng_inlined(e), 1);
	}
	wait_ran(&w);
	ck_assert_int_eq(io.res, HC_BLOCK_SIZE);
	ck_assert_int_eq(t_pattern_check(b, HC_BLOCK_SIZE, 9, 0), -1);

	/* Not marked may_inline (more reads of the caller to come): async. */
	prep_read(&io, fd, &iov, &w);
	io.may_inline = 0;
	expect_async(e, &io, &w, is_sync, 1);

	/* Switched off: the completion thread sends it. */
	hc_ioeng_set_inline(e, 0);
	prep_read(&io, fd, &iov, &w);
	expect_async(e, &io, &w, is_sync, 1);

	if (!strcmp(engine_names[_i], "uring")) {
		/* Another read in flight (an empty pipe): asynchronous again. */
		int p[2];
		ck_assert_int_eq(pipe(p), 0);
		char pb[8];
		struct iovec piov = { pb, sizeof(pb) };
		struct hc_io pio;
		struct seen pw;
		prep_read(&pio, p[0], &piov, &pw);
		ck_assert_int_eq(hc_ioeng_submit(e, &pio), 0);
		hc_ioeng_set_inline(e, 1);
		prep_read(&io, fd, &iov, &w);
		expect_async(e, &io, &w, 0, 1);
		ck_assert(!__atomic_load_n(&pw.ran, __ATOMIC_ACQUIRE));
		ck_assert_int_eq(write(p[1], "x", 1), 1);
		wait_ran(&pw);
		ck_assert_int_eq(pio.res, 1);
		/* Idle again: inline again. */
		prep_read(&io, fd, &iov, &w);
		ck_assert_int_eq(hc_ioeng_submit(e, &io), 0);
		ck_assert(w.ran);
		ck_assert_uint_eq(hc_ioeng_inlined(e), 2);
		close(p[0]);
		close(p[1]);
	}
	close(fd);
	hc_ioeng_destroy(e);
	free(b);
}
END_TEST

/* A thread's own ring for hc_ioeng_set_local(): a real io_uring reaped here. */
struct own_ring {
	struct io_uring ring;
	int submitted;
};

static int own_submit(void *ctx, struct hc_io *io)
{
	struct own_ring *o = ctx;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&o->ring);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_readv(sqe, io->fd, io->iov, io->iovcnt, io->off);
	io_uring_sqe_set_data(sqe, io);
	o->submitted++;
	return io_uring_submit(&o->ring) == 1 ? 0 : -EIO;
}

/* Reaps one completion of the own ring and completes it as the owner does. */
static void own_reap(struct hc_ioeng *e, struct own_ring *o)
{
	struct io_uring_cqe *cqe;
	ck_assert_int_eq(io_uring_wait_cqe(&o->ring, &cqe), 0);
	struct hc_io *io = io_uring_cqe_get_data(cqe);
	int res = cqe->res;
	io_uring_cqe_seen(&o->ring, cqe);
	hc_ioeng_complete_local(e, io, res);
}

START_TEST(test_io_local_ring)
{
	struct hc_ioeng *e = make_engine(_i, 8);
	int is_sync = !strcmp(engine_names[_i], "sync");
	struct iovec iov;
	int fd = one_block(e, "loc", 11, &iov);
	unsigned char *b = iov.iov_base;
	struct own_ring o = { .submitted = 0 };
	ck_assert_int_eq(io_uring_queue_init(8, &o.ring, 0), 0);
	struct hc_ioeng_local l = { .submit = own_submit, .ctx = &o };
	hc_ioeng_set_local(&l);
	struct hc_io io;
	struct seen w;

	/* may_route, but the thread is not busy and the engine idle: inline. */
	prep_read(&io, fd, &iov, &w);
	io.may_route = 1;
	ck_assert_int_eq(hc_ioeng_submit(e, &io), 0);
	wait_ran(&w);
	ck_assert_int_eq(o.submitted, 0);
	if (!is_sync)
		ck_assert_uint_eq(hc_ioeng_inlined(e), 1);

	/* Busy thread: the read goes to the own ring, done() only when reaped here. */
	hc_ioeng_thread_busy(1);
	memset(b, 0, HC_BLOCK_SIZE);
	prep_read(&io, fd, &iov, &w);
	io.may_route = 1;
	ck_assert_int_eq(hc_ioeng_submit(e, &io), 0);
	if (is_sync) {
		/* The sync engine has no completion thread to spare: never routed. */
		ck_assert_int_eq(o.submitted, 0);
		ck_assert(w.ran);
	} else {
		ck_assert_int_eq(o.submitted, 1);
		usleep(20000);
		ck_assert_msg(!__atomic_load_n(&w.ran, __ATOMIC_ACQUIRE),
			      "%s: a routed read completed outside its ring", engine_names[_i]);
		own_reap(e, &o);
		ck_assert(w.ran);
		ck_assert(pthread_equal(w.thread, pthread_self()));
		ck_assert_uint_eq(hc_ioeng_inlined(e), 1);
	}
	ck_assert_int_eq(io.res, HC_BLOCK_SIZE);
	ck_assert_int_eq(t_pattern_check(b, HC_BLOCK_SIZE, 11, 0), -1);

	/* Without may_route (someone waits for it): the engine's, as before. */
	prep_read(&io, fd, &iov, &w);
	expect_async(e, &io, &w, is_sync, is_sync ? 0 : 1);
	ck_assert_int_eq(o.submitted, is_sync ? 0 : 1);

	/* The reads in flight went back to none: a lone read is inline again. */
	hc_ioeng_thread_busy(0);
	prep_read(&io, fd, &iov, &w);
	io.may_route = 1;
	ck_assert_int_eq(hc_ioeng_submit(e, &io), 0);
	wait_ran(&w);
	if (!is_sync)
		ck_assert_uint_eq(hc_ioeng_inlined(e), 2);

	hc_ioeng_set_local(NULL);
	io_uring_queue_exit(&o.ring);
	close(fd);
	hc_ioeng_destroy(e);
	free(b);
}
END_TEST

static Suite *ioeng_suite(void)
{
	Suite *s = suite_create("ioeng");
	TCase *tc;

	tc = tcase_create("vectored");
	t_tcase_fixtures(tc, 30);
	tcase_add_loop_test(tc, test_io_multi_iovec_direct, 0, NENGINES);
	tcase_add_loop_test(tc, test_io_multi_iovec_buffered, 0, NENGINES);
	suite_add_tcase(s, tc);

	tc = tcase_create("eof");
	t_tcase_fixtures(tc, 30);
	tcase_add_loop_test(tc, test_io_read_past_eof, 0, NENGINES);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	t_tcase_fixtures(tc, 30);
	tcase_add_loop_test(tc, test_io_bad_fd, 0, NENGINES);
	tcase_add_loop_test(tc, test_io_short_write_continued, 0, NENGINES);
	suite_add_tcase(s, tc);

	tc = tcase_create("create");
	tcase_add_test(tc, test_create_unknown);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("inline");
	t_tcase_fixtures(tc, 30);
	tcase_add_loop_test(tc, test_io_inline_when_idle, 0, NENGINES);
	tcase_add_loop_test(tc, test_io_local_ring, 0, NENGINES);
	suite_add_tcase(s, tc);

	tc = tcase_create("concurrent");
	t_tcase_fixtures(tc, 60);
	tcase_add_loop_test(tc, test_io_concurrent, 0, NENGINES);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run_suite(ioeng_suite());
}
