// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * DOC: the metadata journal (journal.h; formats in doc/format.md).
 *
 * State.  All persistent metadata -- the maps, the counts, the overflow
 * allocator -- lives in RAM and changes only through hc_journal_map_set and
 * hc_journal_map_clear, which apply the change and append one record under
 * the journal mutex, so records are in sequence order and each one is the
 * change it describes.  Counts and allocation are not journaled: replay
 * derives them from the map records (an overflow block is allocated while
 * something points at it), so the journal cannot say one thing about a
 * block in a map record and another in an allocator record.  A block
 * reserved for a CoW and never referenced leaves no trace, which after a
 * crash is exactly right.
 *
 * Records, sequence numbers, batches.  Records are 64 bytes, numbered 1, 2,
 * 3... without gaps, checksummed alone (XXH64).  They wait in a RAM buffer;
 * hc_journal_commit takes the whole buffer, seals each record with its
 * offset in the batch (`batch`: seq minus the batch's first seq) and its
 * checksum, writes it at the end of meta.log and fdatasyncs, outside the
 * mutex; concurrent committers wait for that commit and, if their records
 * were not in it, run the next one (group commit).  Only then is the
 * batch durable, and only then are the overflow blocks its records freed
 * handed out again (I4: hc_refcount_release).
 *
 * What a crash leaves, and replay.  Batches are written one after another,
 * each only once the previous one is durable, so at most the last batch is
 * damaged, and in any way: a short file, a record cut in half, or -- since
 * the page cache writes pages back in any order -- a bad record followed by
 * good ones of the same batch.  Replay reads records in order and stops at
 * the first that is bad (checksum, magic, cut short).  If some intact record
 * after it belongs to a *later* batch (its batch began after the bad
 * record's offset), the bad record's batch had been durable: that is
 * corruption, and the open is refused with the offset, writing nothing.
 * Otherwise it is the torn tail of the interrupted commit, whose records no
 * one was told were durable: the log is cut there with a warning.  (The
 * one case replay cannot tell apart: media corruption inside the very last
 * batch looks like a torn tail.)  An intact record with the wrong sequence
 * number, an unknown type or a newer major version is never a crash's
 * doing and refuses the open.
 *
 * Checkpoints.  The log grows by 64 bytes per change, so from time to time
 * the whole state is written to meta.ckpt: snapshot under the mutex (commits
 * wait, appends go on into the buffer), write meta.ckpt.tmp, fsync, rename
 * over meta.ckpt, fsync the directory, truncate meta.log to 0 and fsync it.
 * The checkpoint holds every record up to its sequence S, including those
 * still in the buffer at the snapshot, which are then dropped unwritten.  A
 * crash before the rename leaves the old checkpoint and the whole log; after
 * it, the new checkpoint and a log whose records are all <= S, which replay
 * skips (and the open then truncates).  meta.ckpt is checksummed per MiB
 * and validated whole before use, and it must agree with itself: counts
 * are recomputed from its maps and compared with the stored ones.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "hecache/errors.h"
#include "hecache/format.h"
#include "journal.h"
#include "log.h"
#include "util.h"

#define REC_SIZE sizeof(struct hc_jrec_disk)
#define REC_SUM_BYTES offsetof(struct hc_jrec_disk, checksum)
#define CKPT_HDR sizeof(struct hc_ckpt_disk)
#define CKPT_SUM_BYTES offsetof(struct hc_ckpt_disk, checksum)

struct vent {
	uint32_t vol;
	struct hc_imap *map;
};

struct hc_journal {
	int dirfd;
	int logfd;
	char *name;
	uint64_t ckpt_bytes;
	struct hc_refcount *rc;

	pthread_mutex_t lock;	/* everything below */
	pthread_cond_t cond;	/* committing or checkpointing ended */
	struct vent *vols;	/* sorted by vol */
	size_t nvols, capvols;
	uint64_t seq;		/* last appended */
	uint64_t durable;	/* last durable */
	uint64_t ckpt_seq;
	uint64_t log_size;
	struct hc_jrec_disk *buf;	/* appended, unwritten: seq durable+1.. */
	size_t nbuf, capbuf;
	struct hc_jrec_disk *wbuf;	/* the batch being written */
	size_t capwbuf;
	int committing;
	int checkpointing;
	int err;		/* sticky write error */
	struct hc_journal_stats st;
	int (*barrier)(void *arg);	/* set before use; called outside the mutex */
	void *barrier_arg;
};

/* A decoded record. */
struct rec {
	uint8_t type;
	uint64_t seq;
	uint32_t batch, vol, file;
	uint64_t lblk, arg;
};

enum { REC_OK, REC_BAD, REC_NEWER };

static void rec_encode(struct hc_jrec_disk *d, const struct rec *r)
{
	memset(d, 0, sizeof(*d));
	d->magic = htole32(HC_JREC_MAGIC);
	d->major = htole16(HC_META_MAJOR);
	d->type = r->type;
	d->seq = htole64(r->seq);
	d->vol = htole32(r->vol);
	d->lblk = htole64(r->lblk);
	d->arg = htole64(r->arg);
	d->file = htole32(r->file);
}

static void rec_seal(struct hc_jrec_disk *d, uint32_t batch)
{
	d->batch = htole32(batch);
	d->checksum = htole64(XXH64(d, REC_SUM_BYTES, 0));
}

/* REC_BAD: torn or corrupt; REC_NEWER: intact but not ours to read. */
static int rec_decode(const struct hc_jrec_disk *d, struct rec *r)
{
	if (le64toh(d->checksum) != XXH64(d, REC_SUM_BYTES, 0) || le32toh(d->magic) != HC_JREC_MAGIC)
		return REC_BAD;
	r->type = d->type;
	r->seq = le64toh(d->seq);
	r->batch = le32toh(d->batch);
	r->vol = le32toh(d->vol);
	r->lblk = le64toh(d->lblk);
	r->arg = le64toh(d->arg);
	r->file = le32toh(d->file);
	uint16_t major = le16toh(d->major);
	if (major > HC_META_MAJOR)
		return REC_NEWER;
	if (major != HC_META_MAJOR)
		return REC_BAD;
	if ((r->type != HC_JREC_MAP_SET && r->type != HC_JREC_MAP_CLEAR) || d->flags ||
	    d->reserved0 || d->reserved1)
		return REC_NEWER;
	return REC_OK;
}

/* ---- volumes ----------------------------------------------------------- */

static size_t vol_pos(const struct hc_journal *j, uint32_t vol)
{
	size_t lo = 0, hi = j->nvols;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (j->vols[mid].vol < vol)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The map of vol, created when missing; NULL and *err on failure. */
static struct hc_imap *vol_map(struct hc_journal *j, uint32_t vol, int *err)
{
	if (vol > HC_PHYS_VOL_MAX) {
		*err = -EINVAL;
		return NULL;
	}
	size_t i = vol_pos(j, vol);
	if (i < j->nvols && j->vols[i].vol == vol)
		return j->vols[i].map;
	if (j->nvols == j->capvols) {
		size_t nc = j->capvols ? j->capvols * 2 : 16;
		struct vent *v = realloc(j->vols, nc * sizeof(*v));
		if (!v) {
			*err = -ENOMEM;
			return NULL;
		}
		j->vols = v;
		j->capvols = nc;
	}
	struct hc_imap *m;
	int r = hc_imap_create(vol, &m);
	if (r) {
		*err = r;
		return NULL;
	}
	memmove(&j->vols[i + 1], &j->vols[i], (j->nvols - i) * sizeof(j->vols[0]));
	j->vols[i] = (struct vent){ vol, m };
	j->nvols++;
	return m;
}

int hc_journal_imap(struct hc_journal *j, uint32_t vol, struct hc_imap **out)
{
	int err = 0;
	pthread_mutex_lock(&j->lock);
	struct hc_imap *m = vol_map(j, vol, &err);
	pthread_mutex_unlock(&j->lock);
	if (!m)
		return err;
	*out = m;
	return 0;
}

struct hc_refcount *hc_journal_refcount(struct hc_journal *j)
{
	return j->rc;
}

/* ---- applying changes (live and replay) ------------------------------- */

static void lost_count(struct hc_journal *j, const struct hc_phys *p)
{
	hc_log(LOG_ERR, "%s: metadata: block %" PRIu32 ":%" PRIu64
	       " was mapped but had no reference count (run fsck)", j->name, p->file, p->block);
}

/* Sets lblk of m to p as record seq does.  On error nothing changed. */
static int apply_set(struct hc_journal *j, struct hc_imap *m, uint64_t lblk,
		     const struct hc_phys *p, uint64_t seq)
{
	if (!hc_phys_valid(p) || (p->file == hc_imap_vol(m) && p->block == lblk))
		return -EINVAL;
	int zero = hc_phys_is_zero(p);
	if (!zero) {
		int r = hc_refcount_inc(j->rc, p);
		if (r < 0)
			return r;
	}
	struct hc_phys old;
	int r = hc_imap_set(m, lblk, p, &old);
	if (r < 0) {
		if (!zero)
			hc_refcount_undo_inc(j->rc, p);
		return r;
	}
	if (r == 1 && !hc_phys_is_zero(&old) && hc_refcount_dec(j->rc, &old, seq) < 0)
		lost_count(j, &old);
	return 0;
}

struct clear_ctx {
	struct hc_journal *j;
	uint64_t seq;
};

static int clear_one(void *arg, uint64_t lblk, const struct hc_phys *p)
{
	struct clear_ctx *c = arg;
	(void)lblk;
	if (!hc_phys_is_zero(p) && hc_refcount_dec(c->j->rc, p, c->seq) < 0)
		lost_count(c->j, p);
	return 0;
}

static void apply_clear(struct hc_journal *j, struct hc_imap *m, uint64_t first, uint64_t count,
			uint64_t seq)
{
	struct clear_ctx c = { j, seq };
	hc_imap_clear_range(m, first, count, clear_one, &c);
}

/* ---- appending --------------------------------------------------------- */

static int buf_reserve(struct hc_journal *j)
{
	if (j->nbuf < j->capbuf)
		return 0;
	size_t nc = j->capbuf ? j->capbuf * 2 : 1024;
	struct hc_jrec_disk *b = realloc(j->buf, nc * REC_SIZE);
	if (!b)
		return -ENOMEM;
	j->buf = b;
	j->capbuf = nc;
	return 0;
}

static int append(struct hc_journal *j, struct hc_imap *m, struct rec *r, const struct hc_phys *p,
		  uint64_t *seq)
{
	pthread_mutex_lock(&j->lock);
	int err = j->err;
	if (!err)
		err = buf_reserve(j);
	if (err)
		goto out;
	r->seq = j->seq + 1;
	r->vol = hc_imap_vol(m);
	if (r->type == HC_JREC_MAP_SET)
		err = apply_set(j, m, r->lblk, p, r->seq);
	else
		apply_clear(j, m, r->lblk, r->arg, r->seq);
	if (err)
		goto out;
	rec_encode(&j->buf[j->nbuf++], r);
	j->seq = r->seq;
	if (seq)
		*seq = r->seq;
out:
	pthread_mutex_unlock(&j->lock);
	return err;
}

int hc_journal_map_set(struct hc_journal *j, struct hc_imap *m, uint64_t lblk,
		       const struct hc_phys *p, uint64_t *seq)
{
	struct rec r = { .type = HC_JREC_MAP_SET, .lblk = lblk, .arg = p->block, .file = p->file };
	return append(j, m, &r, p, seq);
}

int hc_journal_map_clear(struct hc_journal *j, struct hc_imap *m, uint64_t first,
			 uint64_t count, uint64_t *seq)
{
	if (count == 0)
		return -EINVAL;
	struct rec r = { .type = HC_JREC_MAP_CLEAR, .lblk = first, .arg = count };
	return append(j, m, &r, NULL, seq);
}

/* ---- commit ------------------------------------------------------------ */

int hc_journal_commit(struct hc_journal *j)
{
	pthread_mutex_lock(&j->lock);
	uint64_t target = j->seq;
	while (!j->err && j->durable < target) {
		if (j->committing || j->checkpointing) {
			pthread_cond_wait(&j->cond, &j->lock);
			continue;
		}
		/* Take the buffer: it holds exactly durable+1 .. seq. */
		struct hc_jrec_disk *recs = j->buf;
		size_t n = j->nbuf, cap = j->capbuf;
		j->buf = j->wbuf;
		j->capbuf = j->capwbuf;
		j->nbuf = 0;
		j->wbuf = recs;
		j->capwbuf = cap;
		uint64_t first = j->durable + 1, last = j->seq;
		off_t off = (off_t)j->log_size;
		j->committing = 1;
		int (*barrier)(void *) = j->barrier;
		void *barg = j->barrier_arg;
		pthread_mutex_unlock(&j->lock);

		/* I4: what the batch's records point at is durable first. */
		int err = barrier ? barrier(barg) : 0;
		for (size_t i = 0; i < n; i++)
			rec_seal(&recs[i], (uint32_t)i);
		if (!err)
			err = hc_pwrite_all(j->logfd, recs, n * REC_SIZE, off);
		if (!err && fdatasync(j->logfd) < 0)
			err = -errno;

		pthread_mutex_lock(&j->lock);
		j->committing = 0;
		if (err) {
			j->err = err;
			hc_log(LOG_ERR, "%s/%s: cannot write records %" PRIu64 "-%" PRIu64
			       " at offset %lld: %s; metadata changes refused from now on",
			       j->name, HC_JOURNAL_FILE, first, last, (long long)off, strerror(-err));
		} else {
			j->log_size += n * REC_SIZE;
			j->durable = last;
			j->st.commits++;
			hc_refcount_release(j->rc, last);
		}
		pthread_cond_broadcast(&j->cond);
	}
	int err = j->err;
	pthread_mutex_unlock(&j->lock);
	return err;
}

/* ---- checkpoint: writing ------------------------------------------------ */

struct bbuf {
	uint8_t *p;
	size_t len, cap;
	int err;
};

static void *bb_grab(struct bbuf *b, size_t n)
{
	if (b->err)
		return NULL;
	if (b->len + n > b->cap) {
		size_t nc = b->cap ? b->cap : 1 << 16;
		while (nc < b->len + n)
			nc *= 2;
		uint8_t *p = realloc(b->p, nc);
		if (!p) {
			b->err = -ENOMEM;
			return NULL;
		}
		b->p = p;
		b->cap = nc;
	}
	void *at = b->p + b->len;
	b->len += n;
	return at;
}

static int put_entry(void *arg, uint64_t lblk, const struct hc_phys *p)
{
	struct hc_ckpt_map_disk *d = bb_grab(arg, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->lblk = htole64(lblk);
	d->block = htole64(p->block);
	d->file = htole32(p->file);
	d->reserved = 0;
	return 0;
}

struct rc_snap {
	struct bbuf *b;
	uint64_t *ovf;
	size_t novf, cap;
	int err;
};

static int put_rc(void *arg, const struct hc_phys *p, uint32_t count)
{
	struct rc_snap *s = arg;
	struct hc_ckpt_rc_disk *d = bb_grab(s->b, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->block = htole64(p->block);
	d->file = htole32(p->file);
	d->count = htole32(count);
	if (p->file == HC_PHYS_OVERFLOW) {
		if (s->novf == s->cap) {
			size_t nc = s->cap ? s->cap * 2 : 1024;
			uint64_t *o = realloc(s->ovf, nc * sizeof(*o));
			if (!o)
				return -ENOMEM;
			s->ovf = o;
			s->cap = nc;
		}
		s->ovf[s->novf++] = p->block;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Serializes the whole state (journal mutex held) into h and body. */
static int snapshot(struct hc_journal *j, struct hc_ckpt_disk *h, struct bbuf *body)
{
	memset(h, 0, sizeof(*h));
	uint64_t nvols = 0, nmap = 0;
	for (size_t i = 0; i < j->nvols; i++) {
		struct hc_imap *m = j->vols[i].map;
		uint64_t n = hc_imap_count(m);
		if (!n)
			continue;
		struct hc_ckpt_vol_disk *v = bb_grab(body, sizeof(*v));
		if (!v)
			return -ENOMEM;
		v->vol = htole32(j->vols[i].vol);
		v->reserved = 0;
		v->nentries = htole64(n);
		if (hc_imap_walk(m, 0, UINT64_MAX, put_entry, body))
			return -ENOMEM;
		nvols++;
		nmap += n;
	}
	struct rc_snap s = { .b = body };
	size_t rc0 = body->len;
	if (hc_refcount_walk(j->rc, put_rc, &s)) {
		free(s.ovf);
		return -ENOMEM;
	}
	uint64_t nrc = (body->len - rc0) / sizeof(struct hc_ckpt_rc_disk);
	if (s.novf)
		qsort(s.ovf, s.novf, sizeof(*s.ovf), cmp_u64);
	uint64_t next = 0;
	for (size_t i = 0; i < s.novf;) {
		size_t k = i + 1;
		while (k < s.novf && s.ovf[k] == s.ovf[k - 1] + 1)
			k++;
		struct hc_ckpt_ext_disk *e = bb_grab(body, sizeof(*e));
		if (!e) {
			free(s.ovf);
			return -ENOMEM;
		}
		e->start = htole64(s.ovf[i]);
		e->len = htole64(k - i);
		next++;
		i = k;
	}
	free(s.ovf);
	struct hc_refcount_stats rs;
	hc_refcount_stats(j->rc, &rs);

	memcpy(h->magic, HC_CKPT_MAGIC, 8);
	h->major = htole16(HC_META_MAJOR);
	h->minor = htole16(HC_META_MINOR);
	h->block_size = htole32(HC_BLOCK_SIZE);
	h->seq = htole64(j->seq);
	h->nvols = htole64(nvols);
	h->nmap = htole64(nmap);
	h->nrc = htole64(nrc);
	h->novf = htole64(next);
	h->ovf_hwm = htole64(rs.ovf_hwm);
	h->body_bytes = htole64(body->len);
	h->checksum = htole64(XXH64(h, CKPT_SUM_BYTES, 0));
	return 0;
}

static int write_ckpt_tmp(struct hc_journal *j, const struct hc_ckpt_disk *h,
			  const struct bbuf *body)
{
	int fd = openat(j->dirfd, HC_CKPT_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	off_t off = 0;
	int err = hc_pwrite_all(fd, h, sizeof(*h), off);
	off += sizeof(*h);
	for (size_t at = 0; !err && at < body->len; at += HC_CKPT_CHUNK) {
		size_t n = HC_MIN(body->len - at, HC_CKPT_CHUNK);
		uint64_t sum = htole64(XXH64(body->p + at, n, 0));
		err = hc_pwrite_all(fd, body->p + at, n, off);
		if (!err)
			err = hc_pwrite_all(fd, &sum, sizeof(sum), off + (off_t)n);
		off += (off_t)(n + sizeof(sum));
	}
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	return err;
}

int hc_journal_checkpoint(struct hc_journal *j)
{
	pthread_mutex_lock(&j->lock);
	while (!j->err && (j->committing || j->checkpointing))
		pthread_cond_wait(&j->cond, &j->lock);
	if (j->err) {
		int err = j->err;
		pthread_mutex_unlock(&j->lock);
		return err;
	}
	struct hc_ckpt_disk h;
	struct bbuf body = { 0 };
	int err = snapshot(j, &h, &body);
	if (err) {
		pthread_mutex_unlock(&j->lock);
		free(body.p);
		return err;
	}
	uint64_t S = j->seq;
	size_t covered = j->nbuf;	/* buffered records, all <= S */
	j->checkpointing = 1;
	int (*barrier)(void *) = j->barrier;
	void *barg = j->barrier_arg;
	pthread_mutex_unlock(&j->lock);

	int renamed = 0;
	err = barrier ? barrier(barg) : 0;	/* I4, as for a commit */
	if (!err)
		err = write_ckpt_tmp(j, &h, &body);
	free(body.p);
	if (!err) {
		if (renameat(j->dirfd, HC_CKPT_TMP, j->dirfd, HC_CKPT_FILE) < 0)
			err = -errno;
		else
			renamed = 1;
	}
	if (!err && fsync(j->dirfd) < 0)
		err = -errno;
	int cut = 0;
	if (!err) {
		cut = 1;
		if (ftruncate(j->logfd, 0) < 0 || fsync(j->logfd) < 0)
			err = -errno;
	}
	if (err && !renamed)
		unlinkat(j->dirfd, HC_CKPT_TMP, 0);

	pthread_mutex_lock(&j->lock);
	if (!err) {
		if (covered) {
			memmove(j->buf, j->buf + covered, (j->nbuf - covered) * REC_SIZE);
			j->nbuf -= covered;
		}
		j->log_size = 0;
		if (j->durable < S)
			j->durable = S;
		j->ckpt_seq = S;
		j->st.checkpoints++;
		hc_refcount_release(j->rc, S);
	} else if (cut) {
		/* The log's length is unknown now: no more appends to it. */
		j->err = err;
		hc_log(LOG_ERR, "%s/%s: cannot truncate after a checkpoint: %s", j->name,
		       HC_JOURNAL_FILE, strerror(-err));
	} else {
		hc_log(LOG_WARNING, "%s/%s: checkpoint failed: %s (the journal goes on)", j->name,
		       HC_CKPT_FILE, strerror(-err));
	}
	j->checkpointing = 0;
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->lock);
	return err;
}

void hc_journal_set_barrier(struct hc_journal *j, int (*fn)(void *arg), void *arg)
{
	pthread_mutex_lock(&j->lock);
	j->barrier = fn;
	j->barrier_arg = arg;
	pthread_mutex_unlock(&j->lock);
}

int hc_journal_maybe_checkpoint(struct hc_journal *j)
{
	pthread_mutex_lock(&j->lock);
	int due = !j->checkpointing && j->log_size + j->nbuf * REC_SIZE >= j->ckpt_bytes;
	pthread_mutex_unlock(&j->lock);
	if (!due)
		return 0;
	int err = hc_journal_checkpoint(j);
	return err ? err : 1;
}

/* ---- open: checkpoint ---------------------------------------------------- */

struct mapped {
	const uint8_t *p;
	uint64_t size;
};

/* Maps name read-only; size 0 maps nothing.  -ENOENT when missing. */
static int map_file(struct hc_journal *j, const char *name, struct mapped *mf)
{
	int fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	int err = 0;
	if (fstat(fd, &st) < 0) {
		err = -errno;
	} else {
		mf->size = (uint64_t)st.st_size;
		mf->p = NULL;
		if (mf->size) {
			/* Populated: one pass of faults instead of one per page. */
			void *p = mmap(NULL, mf->size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
			if (p == MAP_FAILED)
				err = -errno;
			else
				mf->p = p;
		}
	}
	close(fd);
	return err;
}

static void unmap_file(struct mapped *mf)
{
	if (mf->p)
		munmap((void *)mf->p, mf->size);
	mf->p = NULL;
}

/* File offset of body byte bo (each MiB of body is followed by 8 bytes). */
static uint64_t body_off(uint64_t bo)
{
	return CKPT_HDR + bo + 8 * (bo / HC_CKPT_CHUNK);
}

/* Body bytes [bo, bo + len) of a mapped checkpoint into dst (across chunks). */
static void body_get(const struct mapped *mf, uint64_t bo, void *dst, size_t len)
{
	uint8_t *d = dst;
	while (len) {
		uint64_t room = HC_CKPT_CHUNK - bo % HC_CKPT_CHUNK;
		size_t n = len < room ? len : (size_t)room;
		memcpy(d, mf->p + body_off(bo), n);
		d += n;
		bo += n;
		len -= n;
	}
}

#define FAIL(code, ...)                                                     \
	do {                                                                \
		snprintf(msg, msglen, __VA_ARGS__);                          \
		err = (code);                                               \
		goto out;                                                   \
	} while (0)

struct ckpt_check {
	struct hc_journal *j;
	uint64_t novf;
};

static int count_ovf(void *arg, const struct hc_phys *p, uint32_t count)
{
	(void)count;
	((struct ckpt_check *)arg)->novf += p->file == HC_PHYS_OVERFLOW;
	return 0;
}

static int load_ckpt(struct hc_journal *j, uint64_t *seq, char *msg, size_t msglen)
{
	const char *f = HC_CKPT_FILE;
	struct mapped mf = { 0 };
	int err = map_file(j, f, &mf);
	if (err == -ENOENT) {
		*seq = 0;
		return 0;
	}
	if (err)
		FAIL(err, "%s/%s: cannot read: %s", j->name, f, strerror(-err));
	if (mf.size < CKPT_HDR)
		FAIL(-HC_ECORRUPT, "%s/%s: truncated at offset %" PRIu64 " (the header is %zu bytes)",
		     j->name, f, mf.size, CKPT_HDR);
	struct hc_ckpt_disk h;
	memcpy(&h, mf.p, sizeof(h));
	if (memcmp(h.magic, HC_CKPT_MAGIC, 8))
		FAIL(-HC_ECORRUPT, "%s/%s: bad magic at offset 0: not a checkpoint", j->name, f);
	if (le64toh(h.checksum) != XXH64(&h, CKPT_SUM_BYTES, 0))
		FAIL(-HC_ECORRUPT, "%s/%s: header checksum mismatch at offset 0", j->name, f);
	if (le16toh(h.major) > HC_META_MAJOR)
		FAIL(-HC_EVERSION, "%s/%s: format version %u.%u at offset 0 is newer than this "
		     "hecache-fs (reads up to %u.x)", j->name, f, le16toh(h.major),
		     le16toh(h.minor), HC_META_MAJOR);
	if (le16toh(h.major) != HC_META_MAJOR || le32toh(h.block_size) != HC_BLOCK_SIZE)
		FAIL(-HC_ECORRUPT, "%s/%s: bad version or block size at offset 8", j->name, f);
	uint64_t blen = le64toh(h.body_bytes), nvols = le64toh(h.nvols), nmap = le64toh(h.nmap),
		 nrc = le64toh(h.nrc), novf = le64toh(h.novf);
	if (blen > (1ull << 50) || nmap > blen || nrc > blen || novf > blen || nvols > blen ||
	    nvols * sizeof(struct hc_ckpt_vol_disk) + nmap * sizeof(struct hc_ckpt_map_disk) +
	    nrc * sizeof(struct hc_ckpt_rc_disk) + novf * sizeof(struct hc_ckpt_ext_disk) != blen)
		FAIL(-HC_ECORRUPT, "%s/%s: section sizes disagree with body size at offset 0",
		     j->name, f);
	uint64_t want = body_off(blen) + (blen % HC_CKPT_CHUNK ? 8 : 0);
	if (mf.size < want)
		FAIL(-HC_ECORRUPT, "%s/%s: truncated at offset %" PRIu64 " (expected %" PRIu64
		     " bytes)", j->name, f, mf.size, want);
	if (mf.size > want)
		FAIL(-HC_ECORRUPT, "%s/%s: unexpected data at offset %" PRIu64 " (expected %" PRIu64
		     " bytes)", j->name, f, want, want);
	/* Every chunk checked before anything is used; then read in place. */
	for (uint64_t at = 0; at < blen; at += HC_CKPT_CHUNK) {
		uint64_t n = HC_MIN(blen - at, HC_CKPT_CHUNK), fo = body_off(at);
		uint64_t sum;
		memcpy(&sum, mf.p + fo + n, 8);
		if (le64toh(sum) != XXH64(mf.p + fo, n, 0))
			FAIL(-HC_ECORRUPT, "%s/%s: checksum mismatch in bytes %" PRIu64 "-%" PRIu64
			     " (offset %" PRIu64 ")", j->name, f, fo, fo + n + 7, fo);
	}

	/* Maps, counting references as replay does. */
	uint64_t bo = 0;
	int64_t prev_vol = -1;
	for (uint64_t v = 0; v < nvols; v++) {
		struct hc_ckpt_vol_disk vd;
		if (bo + sizeof(vd) > blen)
			FAIL(-HC_ECORRUPT, "%s/%s: volume section past the end at offset %" PRIu64,
			     j->name, f, body_off(bo));
		body_get(&mf, bo, &vd, sizeof(vd));
		uint32_t vol = le32toh(vd.vol);
		uint64_t n = le64toh(vd.nentries);
		if ((int64_t)vol <= prev_vol || vol > HC_PHYS_VOL_MAX || vd.reserved || n == 0 ||
		    n > (blen - bo - sizeof(vd)) / sizeof(struct hc_ckpt_map_disk))
			FAIL(-HC_ECORRUPT, "%s/%s: bad volume header at offset %" PRIu64, j->name, f,
			     body_off(bo));
		prev_vol = vol;
		bo += sizeof(vd);
		struct hc_imap *m = vol_map(j, vol, &err);
		if (!m)
			FAIL(err, "%s/%s: out of memory", j->name, f);
		uint64_t prev = 0;
		for (uint64_t k = 0; k < n; k++, bo += sizeof(struct hc_ckpt_map_disk)) {
			struct hc_ckpt_map_disk md;
			body_get(&mf, bo, &md, sizeof(md));
			uint64_t lblk = le64toh(md.lblk);
			struct hc_phys p = { le32toh(md.file), le64toh(md.block) };
			if ((k && lblk <= prev) || md.reserved)
				FAIL(-HC_ECORRUPT, "%s/%s: map entry out of order at offset %" PRIu64,
				     j->name, f, body_off(bo));
			prev = lblk;
			int r = apply_set(j, m, lblk, &p, 0);
			if (r == -ENOMEM)
				FAIL(r, "%s/%s: out of memory", j->name, f);
			if (r)
				FAIL(-HC_ECORRUPT, "%s/%s: bad map entry (volume %" PRIu32 " block %"
				     PRIu64 " -> %" PRIu32 ":%" PRIu64 ") at offset %" PRIu64,
				     j->name, f, vol, lblk, p.file, p.block, body_off(bo));
		}
	}
	if (bo != nvols * sizeof(struct hc_ckpt_vol_disk) + nmap * sizeof(struct hc_ckpt_map_disk))
		FAIL(-HC_ECORRUPT, "%s/%s: %" PRIu64 " map entries in the header, not what the "
		     "volume sections hold (offset 0)", j->name, f, nmap);

	/* Stored counts must be what the maps say. */
	struct hc_refcount_stats rs;
	hc_refcount_stats(j->rc, &rs);
	if (rs.entries != nrc)
		FAIL(-HC_ECORRUPT, "%s/%s: %" PRIu64 " reference counts stored, the maps need %"
		     PRIu64 " (offset %" PRIu64 ")", j->name, f, nrc, rs.entries, body_off(bo));
	for (uint64_t k = 0; k < nrc; k++, bo += sizeof(struct hc_ckpt_rc_disk)) {
		struct hc_ckpt_rc_disk rd;
		body_get(&mf, bo, &rd, sizeof(rd));
		struct hc_phys p = { le32toh(rd.file), le64toh(rd.block) };
		uint32_t have = hc_refcount_get(j->rc, &p);
		if (have != le32toh(rd.count))
			FAIL(-HC_ECORRUPT, "%s/%s: reference count of %" PRIu32 ":%" PRIu64
			     " is %" PRIu32 ", the maps say %" PRIu32 " (offset %" PRIu64 ")",
			     j->name, f, p.file, p.block, le32toh(rd.count), have, body_off(bo));
	}
	/* Allocated overflow extents must be exactly the referenced blocks. */
	struct ckpt_check cc = { j, 0 };
	hc_refcount_walk(j->rc, count_ovf, &cc);
	uint64_t total = 0, end = 0, hwm = le64toh(h.ovf_hwm);
	for (uint64_t k = 0; k < novf; k++, bo += sizeof(struct hc_ckpt_ext_disk)) {
		struct hc_ckpt_ext_disk ed;
		body_get(&mf, bo, &ed, sizeof(ed));
		uint64_t s = le64toh(ed.start), n = le64toh(ed.len);
		int bad = n == 0 || s < end || s > HC_PHYS_BLOCK_MAX || n > HC_PHYS_BLOCK_MAX + 1 - s ||
			  s + n > hwm;
		for (uint64_t b = s; !bad && b < s + n; b++) {
			struct hc_phys p = { HC_PHYS_OVERFLOW, b };
			bad = hc_refcount_get(j->rc, &p) == 0;
		}
		if (bad)
			FAIL(-HC_ECORRUPT, "%s/%s: overflow extent %" PRIu64 "+%" PRIu64
			     " disagrees with the maps (offset %" PRIu64 ")", j->name, f, s, n,
			     body_off(bo));
		total += n;
		end = s + n;
	}
	if (total != cc.novf)
		FAIL(-HC_ECORRUPT, "%s/%s: %" PRIu64 " overflow blocks allocated, the maps use %"
		     PRIu64 " (offset %" PRIu64 ")", j->name, f, total, cc.novf, body_off(bo));
	if (rs.ovf_hwm > hwm)
		FAIL(-HC_ECORRUPT, "%s/%s: overflow high-water mark %" PRIu64 " is below block %"
		     PRIu64 " in use (offset 56)", j->name, f, hwm, rs.ovf_hwm - 1);
	err = hc_refcount_set_hwm(j->rc, hwm);
	if (err)
		FAIL(err, "%s/%s: out of memory", j->name, f);
	*seq = le64toh(h.seq);
out:
	unmap_file(&mf);
	return err;
}

/* ---- open: log replay --------------------------------------------------- */

static int apply_rec(struct hc_journal *j, const struct rec *r)
{
	int err = 0;
	struct hc_imap *m = vol_map(j, r->vol, &err);
	if (!m)
		return err == -ENOMEM ? err : -HC_ECORRUPT;
	if (r->type == HC_JREC_MAP_SET) {
		struct hc_phys p = { r->file, r->arg };
		err = apply_set(j, m, r->lblk, &p, r->seq);
		return err == -ENOMEM ? err : err ? -HC_ECORRUPT : 0;
	}
	if (r->arg == 0 || r->file)
		return -HC_ECORRUPT;
	apply_clear(j, m, r->lblk, r->arg, r->seq);
	return 0;
}

/*
 * Replays meta.log over a state at sequence S.  *end gets where valid
 * records end (a torn tail starts there), *last the last sequence seen.
 */
static int replay_log(struct hc_journal *j, const struct mapped *mf, uint64_t S, uint64_t *end,
		      uint64_t *last, char *msg, size_t msglen)
{
	const char *f = HC_JOURNAL_FILE;
	uint64_t off = 0, prev = 0;
	int have = 0, err = 0;
	while (mf->size - off >= REC_SIZE) {
		struct rec r;
		int st = rec_decode((const struct hc_jrec_disk *)(mf->p + off), &r);
		if (st == REC_BAD)
			break;
		if (st == REC_NEWER)
			FAIL(-HC_EVERSION, "%s/%s: record at offset %" PRIu64 " has a newer format "
			     "(type %u): written by a newer hecache-fs", j->name, f, off, r.type);
		if (have && r.seq != prev + 1)
			FAIL(-HC_ECORRUPT, "%s/%s: record at offset %" PRIu64 " has sequence %"
			     PRIu64 ", expected %" PRIu64, j->name, f, off, r.seq, prev + 1);
		if (!have && (r.seq == 0 || r.seq > S + 1))
			FAIL(-HC_ECORRUPT, "%s/%s: first record (offset %" PRIu64 ") has sequence %"
			     PRIu64 " but %s ends at %" PRIu64 ": records are missing", j->name, f,
			     off, r.seq, HC_CKPT_FILE, S);
		if (r.seq > S) {
			err = apply_rec(j, &r);
			if (err)
				FAIL(err, "%s/%s: record %" PRIu64 " at offset %" PRIu64
				     " cannot be applied: %s", j->name, f, r.seq, off,
				     err == -ENOMEM ? "out of memory" : "it contradicts the state");
			j->st.replayed++;
		}
		prev = r.seq;
		have = 1;
		off += REC_SIZE;
	}
	if (off < mf->size) {
		/* Torn tail of the last commit, or a durable record gone bad? */
		for (uint64_t o = off + REC_SIZE; o + REC_SIZE <= mf->size; o += REC_SIZE) {
			struct rec r;
			if (rec_decode((const struct hc_jrec_disk *)(mf->p + o), &r) == REC_BAD)
				continue;
			if (r.batch < (o - off) / REC_SIZE)
				FAIL(-HC_ECORRUPT, "%s/%s: bad record at offset %" PRIu64 " (checksum) "
				     "before an intact later commit at offset %" PRIu64
				     ": the journal is corrupt", j->name, f, off, o - r.batch * REC_SIZE);
		}
	}
	*end = off;
	*last = have && prev > S ? prev : S;
out:
	return err;
}

#undef FAIL

static int open_log(struct hc_journal *j, uint64_t S, uint64_t *tail_off, char *msg, size_t msglen)
{
	struct mapped mf = { 0 };
	int err = map_file(j, HC_JOURNAL_FILE, &mf);
	if (err == -ENOENT) {
		j->seq = S;
		*tail_off = 0;
		return 0;
	}
	if (err) {
		snprintf(msg, msglen, "%s/%s: cannot read: %s", j->name, HC_JOURNAL_FILE,
			 strerror(-err));
		return err;
	}
	uint64_t end = 0, last = S;
	err = replay_log(j, &mf, S, &end, &last, msg, msglen);
	uint64_t size = mf.size;
	unmap_file(&mf);
	if (err)
		return err;
	if (end < size) {
		j->st.torn_bytes = size - end;
		hc_log(LOG_WARNING, "%s/%s: torn tail at offset %" PRIu64 " (%" PRIu64
		       " bytes of a commit a crash interrupted) dropped", j->name, HC_JOURNAL_FILE,
		       end, size - end);
	}
	/* Only records <= S left (a crash right after a checkpoint): start over. */
	if (last == S)
		end = 0;
	j->seq = last;
	*tail_off = end;
	return size != end ? 1 : 0;	/* 1: the file needs cutting to *tail_off */
}

int hc_journal_open(int dirfd, const struct hc_journal_opts *o, struct hc_journal **out,
		    char *msg, size_t msglen)
{
	msg[0] = 0;
	struct hc_journal *j = calloc(1, sizeof(*j));
	if (!j) {
		snprintf(msg, msglen, "out of memory");
		return -ENOMEM;
	}
	j->dirfd = dirfd;
	j->logfd = -1;
	j->ckpt_bytes = o && o->ckpt_bytes ? o->ckpt_bytes : HC_JOURNAL_CKPT_BYTES;
	j->name = strdup(o && o->name ? o->name : ".");
	pthread_mutex_init(&j->lock, NULL);
	pthread_cond_init(&j->cond, NULL);
	int err = j->name ? hc_refcount_create(&j->rc) : -ENOMEM;
	if (err) {
		snprintf(msg, msglen, "out of memory");
		goto fail;
	}
	uint64_t S = 0, tail = 0;
	hc_refcount_set_replay(j->rc, 1);	/* every record read is durable */
	err = load_ckpt(j, &S, msg, msglen);
	if (err)
		goto fail;
	j->ckpt_seq = S;
	int cut = open_log(j, S, &tail, msg, msglen);
	if (cut < 0) {
		err = cut;
		goto fail;
	}
	hc_refcount_set_replay(j->rc, 0);

	/* Everything checked: only now write (create the log, cut the tail). */
	j->logfd = openat(dirfd, HC_JOURNAL_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (j->logfd < 0) {
		err = -errno;
		snprintf(msg, msglen, "%s/%s: cannot open: %s", j->name, HC_JOURNAL_FILE,
			 strerror(errno));
		goto fail;
	}
	if ((cut && ftruncate(j->logfd, (off_t)tail) < 0) || fsync(j->logfd) < 0 ||
	    fsync(dirfd) < 0) {
		err = -errno;
		snprintf(msg, msglen, "%s/%s: cannot truncate to %" PRIu64 ": %s", j->name,
			 HC_JOURNAL_FILE, tail, strerror(errno));
		goto fail;
	}
	if (unlinkat(dirfd, HC_CKPT_TMP, 0) == 0)
		hc_log(LOG_NOTICE, "%s/%s: removed an unfinished checkpoint", j->name, HC_CKPT_TMP);
	j->log_size = tail;
	j->durable = j->seq;
	*out = j;
	return 0;

fail:
	hc_journal_close(j);
	return err;
}

void hc_journal_close(struct hc_journal *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->nvols; i++)
		hc_imap_destroy(j->vols[i].map);
	free(j->vols);
	hc_refcount_destroy(j->rc);
	if (j->logfd >= 0)
		close(j->logfd);
	free(j->buf);
	free(j->wbuf);
	free(j->name);
	pthread_cond_destroy(&j->cond);
	pthread_mutex_destroy(&j->lock);
	free(j);
}

void hc_journal_stats(struct hc_journal *j, struct hc_journal_stats *st)
{
	pthread_mutex_lock(&j->lock);
	*st = j->st;
	st->seq = j->seq;
	st->durable = j->durable;
	st->ckpt_seq = j->ckpt_seq;
	st->log_bytes = j->log_size;
	st->buffered = j->nbuf;
	st->nvols = j->nvols;
	st->entries = 0;
	for (size_t i = 0; i < j->nvols; i++)
		st->entries += hc_imap_count(j->vols[i].map);
	pthread_mutex_unlock(&j->lock);
}

/* ---- verify ------------------------------------------------------------- */

struct vctx {
	struct hc_journal *j;
	struct hc_refcount *shadow;
	char *msg;
	size_t msglen;
	uint32_t vol;
	int err;
};

static int shadow_inc(void *arg, uint64_t lblk, const struct hc_phys *p)
{
	struct vctx *v = arg;
	if (hc_phys_is_zero(p))
		return 0;
	int r = hc_refcount_inc(v->shadow, p);
	if (r == -ENOMEM)
		return v->err = -ENOMEM;
	if (r < 0 || (p->file == v->vol && p->block == lblk)) {
		snprintf(v->msg, v->msglen, "volume %" PRIu32 " block %" PRIu64
			 ": bad target %" PRIu32 ":%" PRIu64, v->vol, lblk, p->file, p->block);
		return v->err = -HC_ECORRUPT;
	}
	if (p->file == HC_PHYS_OVERFLOW && hc_refcount_ovf_free(v->j->rc, p->block)) {
		snprintf(v->msg, v->msglen, "volume %" PRIu32 " block %" PRIu64
			 " points at overflow block %" PRIu64 ", which is not allocated", v->vol,
			 lblk, p->block);
		return v->err = -HC_ECORRUPT;
	}
	return 0;
}

static int compare_count(void *arg, const struct hc_phys *p, uint32_t count)
{
	struct vctx *v = arg;
	uint32_t want = hc_refcount_get(v->shadow, p);
	if (want != count) {
		snprintf(v->msg, v->msglen, "block %" PRIu32 ":%" PRIu64
			 " has reference count %" PRIu32 ", the maps point at it %" PRIu32 " times",
			 p->file, p->block, count, want);
		return v->err = -HC_ECORRUPT;
	}
	return 0;
}

int hc_journal_verify(struct hc_journal *j, char *msg, size_t msglen)
{
	struct vctx v = { .j = j, .msg = msg, .msglen = msglen };
	msg[0] = 0;
	if (hc_refcount_create(&v.shadow))
		return -ENOMEM;
	hc_refcount_set_replay(v.shadow, 1);
	pthread_mutex_lock(&j->lock);
	for (size_t i = 0; i < j->nvols && !v.err; i++) {
		v.vol = j->vols[i].vol;
		if (hc_imap_check(j->vols[i].map)) {
			snprintf(msg, msglen, "volume %" PRIu32 ": map structure is broken", v.vol);
			v.err = -HC_ECORRUPT;
			break;
		}
		hc_imap_walk(j->vols[i].map, 0, UINT64_MAX, shadow_inc, &v);
	}
	if (!v.err)
		hc_refcount_walk(j->rc, compare_count, &v);
	if (!v.err) {
		struct hc_refcount_stats a, b;
		hc_refcount_stats(j->rc, &a);
		hc_refcount_stats(v.shadow, &b);
		if (a.entries != b.entries) {
			snprintf(msg, msglen, "%" PRIu64 " blocks have reference counts, the maps "
				 "point at %" PRIu64, a.entries, b.entries);
			v.err = -HC_ECORRUPT;
		}
	}
	pthread_mutex_unlock(&j->lock);
	hc_refcount_destroy(v.shadow);
	return v.err;
}
