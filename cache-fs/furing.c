// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * DOC: FUSE over io_uring
 *
 * Since Linux 6.14 a FUSE server may take its requests from io_uring
 * instead of read(2) on /dev/fuse: it registers, for each CPU's queue,
 * entries made of a header buffer and a payload buffer
 * (FUSE_IO_URING_CMD_REGISTER); the kernel fills an entry with a request
 * made on that CPU and completes the entry's command; the server answers by
 * writing the reply into the same buffers and submitting
 * FUSE_IO_URING_CMD_COMMIT_AND_FETCH, which hands the reply over and waits
 * for the next request in one go.  A request is served by a thread bound
 * to the CPU that made it, and a reply plus the wait for the next request
 * costs one system call instead of a writev and a read.  The kernel offers
 * it only when its fuse.enable_uring parameter is set, and libfuse 3.14
 * cannot ask for it, so the session's I/O hooks (fs_ops.c) add
 * FUSE_OVER_IO_URING to libfuse's INIT reply.  Once the kernel has the
 * flag, every request waits until each queue is registered or a
 * registration failed, so the queue threads make their rings and buffers
 * first (hc_furing_prepare(), before the reply asks for rings) and register
 * once the reply is written (hc_furing_start()).
 *
 * libfuse still parses every request and builds every reply: a queue
 * thread lays the in-header, the op header and the payload out contiguously
 * (the payload buffer is preceded by spare room in the same mapping, so
 * only the two small headers are copied) and calls
 * fuse_session_process_buf(); the reply, from whichever thread sends it,
 * goes through the session's writev hook to hc_furing_reply(), which finds
 * the entry by the request's unique id (the kernel's commit id) and copies
 * the reply in.  Only the queue thread submits to its ring (see commit()).
 * Requests that still come through /dev/fuse (FORGET, INTERRUPT) and
 * notifications keep the old path.
 *
 * Volume reads that miss go to storage through the queue thread's own ring
 * (hc_ioeng_set_local()), so their completion and the reply run in the
 * thread that commits it: no hand-over to the I/O engine's thread and
 * back.  Block-aligned reads, hits and misses, land straight in the
 * request's payload buffer (hc_furing_payload()), where the reply finds
 * them in place: one copy of every byte fewer than through /dev/fuse.  The
 * queue's memory is the ring's registered buffer, so such a read is a
 * READ_FIXED and the kernel does not pin the payload's pages each time.
 *
 * A queue thread serves its requests one after the other: an op that
 * blocks (fsync, a write waiting for cache room) holds up that CPU's queue,
 * as it holds up one libfuse worker on the /dev/fuse path, and a read runs
 * inline (ioeng.h) only for a request that came alone (lonely()).
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <liburing.h>

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include "furing.h"
#include "ioeng.h"
#include "log.h"

/* The kernel ABI (include/uapi/linux/fuse.h, 7.42), absent from older headers. */
#define URING_IN_OUT_HEADER_SZ 128
#define URING_OP_IN_OUT_SZ 128

struct uring_ent_in_out {
	uint64_t flags;
	uint64_t commit_id;
	uint32_t payload_sz;
	uint32_t padding;
	uint64_t reserved;
};

struct uring_req_header {
	char in_out[URING_IN_OUT_HEADER_SZ];
	char op_in[URING_OP_IN_OUT_SZ];
	struct uring_ent_in_out ring_ent_in_out;
};

enum { URING_CMD_REGISTER = 1, URING_CMD_COMMIT_AND_FETCH = 2 };

struct uring_cmd_req {
	uint64_t flags;
	uint64_t commit_id;
	uint16_t qid;
	uint8_t padding[6];
};

_Static_assert(sizeof(struct uring_ent_in_out) == 32, "fuse_uring_ent_in_out");
_Static_assert(sizeof(struct uring_req_header) == 288, "fuse_uring_req_header");
_Static_assert(sizeof(struct uring_cmd_req) == 24, "fuse_uring_cmd_req");

/* Header page: the kernel's header at its start, the rebuilt request at its end. */
#define HDR_SPACE 4096u
#define MAX_DEPTH 16u		/* entries per queue */
#define MAX_ENTRIES 64u		/* in all: each holds max_payload of locked memory */
#define SQ_ENTRIES 64u
#define MAX_QUEUES 64u		/* possible CPUs; beyond, /dev/fuse */
#define LONELY_MIN 4u		/* see lonely() */

struct fq;

struct fent {
	struct uring_req_header *hdr;
	char *payload;
	struct iovec iov[2];		/* what REGISTER hands the kernel */
	struct fq *q;
	uint64_t unique;		/* atomic: request being served, 0 if none */
	uint64_t commit_id;		/* reply waiting in q->pending */
	struct fent *next;		/* in q->pending */
};

struct fq {
	struct hc_furing *fr;
	struct io_uring ring;
	pthread_mutex_t lock;		/* stop, pending */
	pthread_t thread;
	pthread_t self;			/* thread as it sees itself: set before ready */
	struct fent *pending;		/* replies from other threads, for this one to commit */
	int efd;			/* eventfd: other threads kick the queue thread */
	uint64_t kick_buf;
	struct hc_ioeng_local local;
	unsigned qid;
	unsigned depth;			/* entries */
	unsigned lonely;		/* requests in a row that came alone */
	unsigned reads;			/* local reads on the ring */
	int stop;
	int ring_ok;
	int fixed;			/* mem is the ring's registered buffer 0 */
	int started;
	struct fent *ents;
	char *mem;
	size_t memsz;
	int err;			/* set-up, then registration result */
	sem_t ready;			/* posted after each */
	sem_t go;			/* start(): register now */
};

struct hc_furing {
	struct fuse_session *se;
	int fd;
	unsigned nq;
	unsigned depth;			/* entries of an online CPU's queue */
	size_t max_payload;
	int active;			/* atomic: replies may be the rings' (from start() on) */
	int abandon;			/* atomic: stop() before start() */
	int stopped;
	struct fq *q;
};

/*
 * Reads a CPU list file ("0-3,5"); marks the CPUs below n in set (if not
 * NULL) and returns the highest CPU plus one, 0 when unreadable.
 */
static unsigned cpu_list(const char *path, unsigned char *set, unsigned n)
{
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	char buf[4096];
	unsigned top = 0;
	if (fgets(buf, sizeof(buf), f)) {
		char *p = buf;
		while (*p >= '0' && *p <= '9') {
			char *end;
			unsigned long lo = strtoul(p, &end, 10), hi = lo;
			p = end;
			if (*p == '-') {
				hi = strtoul(p + 1, &end, 10);
				p = end;
			}
			if (hi + 1 > top)
				top = hi + 1 > 1u << 20 ? 1u << 20 : (unsigned)hi + 1;
			for (unsigned long c = lo; set && c <= hi && c < n; c++)
				set[c] = 1;
			if (*p == ',')
				p++;
		}
	}
	fclose(f);
	return top;
}

int hc_furing_create(struct fuse_session *se, int fd, struct hc_furing **out)
{
	struct hc_furing *fr = calloc(1, sizeof(*fr));
	if (!fr)
		return -ENOMEM;
	fr->se = se;
	fr->fd = fd;
	/* The kernel makes a queue per possible CPU (nr_cpu_ids) and uses them all. */
	fr->nq = cpu_list("/sys/devices/system/cpu/possible", NULL, 0);
	if (!fr->nq) {
		long c = sysconf(_SC_NPROCESSORS_CONF);
		fr->nq = c > 0 ? (unsigned)c : 1;
	}
	if (fr->nq > MAX_QUEUES) {
		free(fr);
		return -E2BIG;
	}
	unsigned char online[MAX_QUEUES] = { 0 };
	unsigned non = 0;
	if (!cpu_list("/sys/devices/system/cpu/online", online, fr->nq))
		memset(online, 1, sizeof(online));
	for (unsigned i = 0; i < fr->nq; i++)
		non += online[i];
	fr->depth = non ? MAX_ENTRIES / non : MAX_DEPTH;
	if (fr->depth > MAX_DEPTH)
		fr->depth = MAX_DEPTH;
	if (fr->depth < 2)
		fr->depth = 2;
	fr->q = calloc(fr->nq, sizeof(*fr->q));
	if (!fr->q) {
		free(fr);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < fr->nq; i++) {
		fr->q[i].fr = fr;
		fr->q[i].qid = i;
		/* An offline CPU's queue must exist; one entry does until it comes up. */
		fr->q[i].depth = online[i] ? fr->depth : 1;
		fr->q[i].efd = -1;
		pthread_mutex_init(&fr->q[i].lock, NULL);
		sem_init(&fr->q[i].ready, 0, 0);
		sem_init(&fr->q[i].go, 0, 0);
	}
	for (unsigned i = 0; i < fr->nq; i++) {
		fr->q[i].efd = eventfd(0, EFD_CLOEXEC);
		if (fr->q[i].efd < 0) {
			int err = -errno;
			hc_furing_destroy(fr);
			return err;
		}
	}
	*out = fr;
	return 0;
}

static void prep_cmd(struct io_uring_sqe *sqe, int fd, unsigned op, struct fent *e,
		     uint64_t commit_id)
{
	/* An SQE128: the command sits in the second half (sqe->cmd). */
	char *raw = (char *)(uintptr_t)sqe;
	memset(raw, 0, 2 * sizeof(*sqe));
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = fd;
	sqe->cmd_op = op;
	if (op == URING_CMD_REGISTER) {
		sqe->addr = (uintptr_t)e->iov;
		sqe->len = 2;
	}
	struct uring_cmd_req r = { .commit_id = commit_id, .qid = (uint16_t)e->q->qid };
	memcpy(raw + offsetof(struct io_uring_sqe, cmd), &r, sizeof(r));
	io_uring_sqe_set_data(sqe, e);
}

#define KICK_TAG ((void *)1)	/* user_data of the eventfd read */
#define IO_TAG 2u		/* low bit of a local read's user_data */

/* Queue thread only: a free SQE, flushing the ring to make room. */
static struct io_uring_sqe *get_sqe(struct fq *q)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&q->ring);
	if (!sqe) {
		io_uring_submit(&q->ring);
		sqe = io_uring_get_sqe(&q->ring);
		if (!sqe)
			hc_log_ratelimited(LOG_ERR, "FUSE io_uring: submission queue full");
	}
	return sqe;
}

static void arm_kick(struct fq *q)
{
	struct io_uring_sqe *sqe = get_sqe(q);
	if (sqe) {
		io_uring_prep_read(sqe, q->efd, &q->kick_buf, sizeof(q->kick_buf), 0);
		io_uring_sqe_set_data(sqe, KICK_TAG);
	}
}

static void kick(struct fq *q)
{
	uint64_t one = 1;
	while (write(q->efd, &one, sizeof(one)) < 0 && errno == EINTR)
		;
}

/*
 * Hands entry e's reply to the kernel and re-arms it.  The ring is the
 * queue thread's alone (IORING_SETUP_SINGLE_ISSUER): the kernel delivers
 * the entry's next request as task work of the task that submitted the
 * commit, so a commit from another thread (the I/O engine's, answering a
 * read from storage) would have that thread interrupted for every later
 * request of the entry.  Other threads leave the reply in q->pending and
 * kick the queue thread through an eventfd its ring is reading.  The queue
 * thread's own commits are submitted with its next wait.
 */
static void commit(struct fent *e, uint64_t unique)
{
	struct fq *q = e->q;
	if (pthread_equal(pthread_self(), q->self)) {
		struct io_uring_sqe *sqe = get_sqe(q);
		if (sqe)
			prep_cmd(sqe, q->fr->fd, URING_CMD_COMMIT_AND_FETCH, e, unique);
		return;
	}
	pthread_mutex_lock(&q->lock);
	int was_empty = !q->pending;
	e->commit_id = unique;
	e->next = q->pending;
	q->pending = e;
	pthread_mutex_unlock(&q->lock);
	if (was_empty)
		kick(q);
}

/* Queue thread: commits the replies other threads left; 1 when stopping. */
static int take_pending(struct fq *q)
{
	pthread_mutex_lock(&q->lock);
	struct fent *e = q->pending;
	q->pending = NULL;
	int stop = q->stop;
	pthread_mutex_unlock(&q->lock);
	for (; e; e = e->next) {
		struct io_uring_sqe *sqe = get_sqe(q);
		if (sqe)
			prep_cmd(sqe, q->fr->fd, URING_CMD_COMMIT_AND_FETCH, e, e->commit_id);
	}
	return stop;
}

/*
 * The bytes of io's vector when it is one contiguous span inside the
 * queue's registered memory (a read into a request's payload), else 0.
 */
static size_t fixed_span(const struct fq *q, const struct hc_io *io)
{
	if (!q->fixed)
		return 0;
	uintptr_t p = (uintptr_t)io->iov[0].iov_base, lo = (uintptr_t)q->mem;
	size_t n = 0;
	for (int k = 0; k < io->iovcnt; k++) {
		if ((uintptr_t)io->iov[k].iov_base != p + n)
			return 0;
		n += io->iov[k].iov_len;
	}
	/* Bounce buffers of the pool lie outside, below or above. */
	return p >= lo && p - lo < q->memsz && n <= q->memsz - (p - lo) ? n : 0;
}

/*
 * hc_ioeng_local: a volume read submitted by this queue thread.  A read
 * into a payload uses the registered buffer: the kernel need not pin its
 * pages for every read (page pinning, gup_fast_fallback, fell from 11 % to
 * 6 % of the daemon's time in 1 MiB sequential reads; the rest is FUSE
 * pinning the reader's pages).
 */
static int local_submit(void *ctx, struct hc_io *io)
{
	struct fq *q = ctx;
	struct io_uring_sqe *sqe = get_sqe(q);
	if (!sqe)
		return -EBUSY;
	size_t span = fixed_span(q, io);
	if (span)
		io_uring_prep_read_fixed(sqe, io->fd, io->iov[0].iov_base, (unsigned)span, io->off, 0);
	else
		io_uring_prep_readv(sqe, io->fd, io->iov, io->iovcnt, io->off);
	io_uring_sqe_set_data(sqe, (void *)((uintptr_t)io | IO_TAG));
	q->reads++;
	HC_TSAN_RELEASE(io);
	return 0;
}

/* Answers a request the daemon cannot parse, without libfuse. */
static void reply_err(struct fent *e, uint64_t unique, int err)
{
	struct fuse_out_header *oh = (void *)e->hdr->in_out;
	oh->len = sizeof(*oh);
	oh->error = -err;
	oh->unique = unique;
	e->hdr->ring_ent_in_out.payload_sz = 0;
	commit(e, unique);
}

static __thread struct fent *serving;	/* the request this queue thread is in */

static void serve(struct hc_furing *fr, struct fent *e)
{
	const struct fuse_in_header *in = (const void *)e->hdr->in_out;
	uint32_t psz = e->hdr->ring_ent_in_out.payload_sz;
	uint64_t unique = in->unique;
	/* in->len counts the in-header, the op header (in op_in) and the payload. */
	if (psz > fr->max_payload || in->len < sizeof(*in) + (size_t)psz ||
	    in->len - sizeof(*in) - psz > URING_OP_IN_OUT_SZ) {
		hc_log_ratelimited(LOG_ERR, "FUSE io_uring: request %u of %u bytes with %u "
				   "bytes of payload: malformed", in->opcode, in->len, psz);
		reply_err(e, unique, EIO);
		return;
	}
	size_t oplen = in->len - sizeof(*in) - psz;
	char *start = e->payload - sizeof(*in) - oplen;
	memcpy(start + sizeof(*in), e->hdr->op_in, oplen);
	memcpy(start, in, sizeof(*in));
	__atomic_store_n(&e->unique, unique, __ATOMIC_RELEASE);
	struct fuse_buf b = { .size = in->len, .mem = start };
	serving = e;
	fuse_session_process_buf(fr->se, &b);
	serving = NULL;
}

void *hc_furing_payload(size_t *len)
{
	if (!serving)
		return NULL;
	*len = serving->q->fr->max_payload;
	return serving->payload;
}

static int ring_setup(struct fq *q)
{
	struct hc_furing *fr = q->fr;
	size_t ent_sz = HDR_SPACE + ((fr->max_payload + 4095) & ~(size_t)4095);
	q->memsz = ent_sz * q->depth;
	q->mem = mmap(NULL, q->memsz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->mem == MAP_FAILED) {
		q->mem = NULL;
		return -ENOMEM;
	}
	/* Reads land in the payloads (hc_furing_payload()): few, large segments. */
	(void)madvise(q->mem, q->memsz, MADV_HUGEPAGE);
	memset(q->mem, 0, q->memsz);	/* populate now, never on the I/O path */
	q->ents = calloc(q->depth, sizeof(*q->ents));
	if (!q->ents)
		return -ENOMEM;
	for (unsigned i = 0; i < q->depth; i++) {
		struct fent *e = &q->ents[i];
		e->q = q;
		e->hdr = (void *)(q->mem + i * ent_sz);
		e->payload = q->mem + i * ent_sz + HDR_SPACE;
		e->iov[0] = (struct iovec){ e->hdr, sizeof(*e->hdr) };
		e->iov[1] = (struct iovec){ e->payload, fr->max_payload };
	}
	/*
	 * Only this thread submits (see commit()); with DEFER_TASKRUN the
	 * kernel's deliveries and completions run when it waits, not by
	 * interrupting it.  Room: a command per entry, the eventfd read, and
	 * local reads (get_sqe() flushes when they fill it).
	 */
	struct io_uring_params p;
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER |
		  IORING_SETUP_DEFER_TASKRUN;
	p.cq_entries = 4 * SQ_ENTRIES;
	int err = io_uring_queue_init_params(SQ_ENTRIES, &q->ring, &p);
	if (err == -EINVAL) {
		memset(&p, 0, sizeof(p));
		p.flags = IORING_SETUP_SQE128 | IORING_SETUP_CQSIZE;
		p.cq_entries = 4 * SQ_ENTRIES;
		err = io_uring_queue_init_params(SQ_ENTRIES, &q->ring, &p);
	}
	if (err)
		return err;
	q->ring_ok = 1;
	/* Without it (RLIMIT_MEMLOCK, an old kernel) reads pin their pages. */
	struct iovec all = { q->mem, q->memsz };
	q->fixed = io_uring_register_buffers(&q->ring, &all, 1) == 0;
	return 0;
}

/*
 * Registers the queue's entries.  A refused REGISTER completes at once (an
 * accepted one waits for a request), and makes the kernel give up the
 * rings for /dev/fuse.
 */
static int ring_register(struct fq *q)
{
	for (unsigned i = 0; i < q->depth; i++) {
		struct io_uring_sqe *sqe = get_sqe(q);
		if (sqe)
			prep_cmd(sqe, q->fr->fd, URING_CMD_REGISTER, &q->ents[i], 0);
	}
	arm_kick(q);
	int err = io_uring_submit(&q->ring);
	if (err < 0)
		return err;
	struct io_uring_cqe *cqe;
	if (io_uring_peek_cqe(&q->ring, &cqe) == 0 && cqe->res < 0 &&
	    io_uring_cqe_get_data(cqe) != KICK_TAG)
		return cqe->res;
	return 0;
}

/*
 * Whether the request about to be served came alone: nothing else in the
 * completion queue, no other request of this queue in the daemon, and so
 * for the last LONELY_MIN requests.  Only then may its read run inline
 * (ioeng.h): the thread serves its requests one after the other, and a
 * request arriving during an inline read waits for it.  At queue depth 1
 * every request comes alone (4k random reads: 17k/s inline, 12k/s through
 * the ring); at depth 16 a request that happens to find the queue empty is
 * soon followed by others (41k/s when it ran inline, 48k/s when not).
 */
static int lonely(struct fq *q)
{
	unsigned busy = io_uring_cq_ready(&q->ring);
	for (unsigned j = 0; j < q->depth && !busy; j++)
		busy = __atomic_load_n(&q->ents[j].unique, __ATOMIC_RELAXED) != 0;
	q->lonely = busy ? 0 : q->lonely + 1;
	return q->lonely >= LONELY_MIN;
}

/*
 * Until asked to stop, then until the reads on the ring have completed (a
 * read whose completion is never reaped would never answer its request nor
 * give its buffers back).
 */
static void queue_loop(struct fq *q)
{
	struct hc_furing *fr = q->fr;
	int stopping = 0;
	while (!stopping || q->reads) {
		int err = io_uring_submit_and_wait(&q->ring, 1);
		if (err < 0 && err != -EINTR && err != -EAGAIN && err != -EBUSY && err != -ETIME)
			hc_log_ratelimited(LOG_ERR, "FUSE io_uring queue %u: %s", q->qid,
					   strerror(-err));
		struct io_uring_cqe *cqe;
		while (io_uring_peek_cqe(&q->ring, &cqe) == 0) {
			void *data = io_uring_cqe_get_data(cqe);
			int res = cqe->res;
			io_uring_cqe_seen(&q->ring, cqe);
			if (data == KICK_TAG) {
				stopping |= take_pending(q);
				if (!stopping)
					arm_kick(q);
				continue;
			}
			if ((uintptr_t)data & IO_TAG) {
				struct hc_io *io = (void *)((uintptr_t)data & ~(uintptr_t)IO_TAG);
				HC_TSAN_ACQUIRE(io);
				q->reads--;
				hc_ioeng_complete_local(io->eng_priv, io, res);
				continue;
			}
			struct fent *e = data;
			if (res < 0) {
				/* The connection went away (unmount, abort): the entry is done. */
				if (res != -ENOTCONN && res != -ECANCELED && res != -ENODEV)
					hc_log_ratelimited(LOG_ERR, "FUSE io_uring queue %u: %s",
							   q->qid, strerror(-res));
				continue;
			}
			hc_ioeng_thread_busy(!lonely(q));
			serve(fr, e);
		}
	}
}

static void wait_sem(sem_t *sem)
{
	while (sem_wait(sem) < 0 && errno == EINTR)
		;
}

static void *queue_main(void *arg)
{
	struct fq *q = arg;
	q->self = pthread_self();
	hc_ioeng_block_signals();
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(q->qid, &set);
	/* An offline CPU makes no requests: its queue needs no binding. */
	(void)pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
	q->err = ring_setup(q);
	sem_post(&q->ready);
	if (q->err)
		return NULL;
	wait_sem(&q->go);
	if (__atomic_load_n(&q->fr->abandon, __ATOMIC_ACQUIRE))
		return NULL;
	q->err = ring_register(q);
	sem_post(&q->ready);
	if (q->err)
		return NULL;
	q->local = (struct hc_ioeng_local){ .submit = local_submit, .ctx = q };
	hc_ioeng_set_local(&q->local);
	queue_loop(q);
	hc_ioeng_set_local(NULL);
	return NULL;
}

/*
 * Everything but the registration, before FUSE_OVER_IO_URING goes into the
 * INIT reply: once the kernel has it, requests wait until every queue is
 * registered or a registration fails, so a ring that cannot even be made
 * (io_uring disabled, no memory) must be found out first.
 */
int hc_furing_prepare(struct hc_furing *fr, size_t max_payload)
{
	fr->max_payload = max_payload;
	int err = 0;
	for (unsigned i = 0; i < fr->nq && !err; i++) {
		struct fq *q = &fr->q[i];
		err = -pthread_create(&q->thread, NULL, queue_main, q);
		if (err)
			break;
		q->started = 1;
		char name[16];
		snprintf(name, sizeof(name), "hc-fuseq%u", i % 100000u);
		pthread_setname_np(q->thread, name);
		wait_sem(&q->ready);
		err = q->err;
	}
	return err;
}

int hc_furing_start(struct hc_furing *fr)
{
	/*
	 * Before the first REGISTER: the kernel starts handing out requests as
	 * soon as the last queue is registered, possibly before this returns,
	 * and a reply hc_furing_reply() did not take would be lost.
	 */
	__atomic_store_n(&fr->active, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < fr->nq; i++)
		sem_post(&fr->q[i].go);
	int err = 0;
	for (unsigned i = 0; i < fr->nq; i++) {
		wait_sem(&fr->q[i].ready);
		if (fr->q[i].err && !err)
			err = fr->q[i].err;
	}
	return err;
}

int hc_furing_reply(struct hc_furing *fr, const struct iovec *iov, int count, ssize_t *sent)
{
	if (!fr || !__atomic_load_n(&fr->active, __ATOMIC_ACQUIRE) || count < 1 ||
	    iov[0].iov_len < sizeof(struct fuse_out_header))
		return 0;
	const struct fuse_out_header *out = iov[0].iov_base;
	if (!out->unique)
		return 0;	/* a notification: /dev/fuse only */
	struct fent *e = NULL;
	for (unsigned i = 0; i < fr->nq && !e; i++) {
		struct fq *q = &fr->q[i];
		if (!q->ents)
			continue;
		for (unsigned j = 0; j < q->depth; j++)
			if (__atomic_load_n(&q->ents[j].unique, __ATOMIC_ACQUIRE) == out->unique) {
				e = &q->ents[j];
				break;
			}
	}
	if (!e)
		return 0;
	size_t n = 0;
	for (int i = 1; i < count; i++) {
		if (n + iov[i].iov_len > fr->max_payload) {
			hc_log_ratelimited(LOG_ERR, "FUSE io_uring: reply of over %zu bytes",
					   fr->max_payload);
			__atomic_store_n(&e->unique, 0, __ATOMIC_RELAXED);
			reply_err(e, out->unique, EIO);
			*sent = -EIO;
			return 1;
		}
		/* Data read straight into the payload (hc_furing_payload()) stays. */
		if (iov[i].iov_base != e->payload + n)
			memcpy(e->payload + n, iov[i].iov_base, iov[i].iov_len);
		n += iov[i].iov_len;
	}
	struct fuse_out_header *oh = (void *)e->hdr->in_out;
	oh->len = (uint32_t)(sizeof(*oh) + n);
	oh->error = out->error;
	oh->unique = out->unique;
	e->hdr->ring_ent_in_out.payload_sz = (uint32_t)n;
	__atomic_store_n(&e->unique, 0, __ATOMIC_RELAXED);
	commit(e, out->unique);
	*sent = (ssize_t)(sizeof(*oh) + n);
	return 1;
}

unsigned hc_furing_queues(const struct hc_furing *fr)
{
	return fr ? fr->nq : 0;
}

unsigned hc_furing_depth(const struct hc_furing *fr)
{
	return fr ? fr->depth : 0;
}

void hc_furing_stop(struct hc_furing *fr)
{
	if (!fr || fr->stopped)
		return;
	fr->stopped = 1;
	int was_active = __atomic_exchange_n(&fr->active, 0, __ATOMIC_ACQ_REL);
	__atomic_store_n(&fr->abandon, 1, __ATOMIC_RELEASE);
	for (unsigned i = 0; i < fr->nq; i++) {
		struct fq *q = &fr->q[i];
		if (!q->started)
			continue;
		if (!was_active)
			sem_post(&q->go);	/* may still wait there: it returns */
		pthread_mutex_lock(&q->lock);
		q->stop = 1;
		pthread_mutex_unlock(&q->lock);
		kick(q);
		pthread_join(q->thread, NULL);
	}
	for (unsigned i = 0; i < fr->nq; i++)
		if (fr->q[i].ring_ok)
			io_uring_queue_exit(&fr->q[i].ring);
}

void hc_furing_destroy(struct hc_furing *fr)
{
	if (!fr)
		return;
	hc_furing_stop(fr);
	for (unsigned i = 0; i < fr->nq; i++) {
		struct fq *q = &fr->q[i];
		if (q->mem)
			munmap(q->mem, q->memsz);
		if (q->efd >= 0)
			close(q->efd);
		free(q->ents);
		pthread_mutex_destroy(&q->lock);
		sem_destroy(&q->ready);
		sem_destroy(&q->go);
	}
	free(fr->q);
	free(fr);
}
