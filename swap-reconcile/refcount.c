// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Reference counts and the overflow allocator (refcount.h).
 *
 * Counts live in one B+tree per file that has counted blocks, found through
 * a directory of those files sorted by id (16 bytes a file).  A slot is 64
 * bits, block (40) << 24 | count (24), so slots sort by block and the file
 * is not repeated in each; a count of 0 has no slot.  Leaves hold up to
 * LEAF_CAP slots (2040 bytes), inner nodes up to INNER_CAP children; as in
 * imap.c (which says why), a full leaf overflows into a sibling before it
 * splits, a leaf under 3/8 merges or borrows, and a root starts with room
 * for 4 and grows by half, so a file with a few shared blocks costs tens of
 * bytes.  Measured (check_refcount): 9.4 bytes per count for a million
 * random blocks of 100 files, 8.1 for a run of one file.
 *
 * Why not a hash, as before.  12-byte slots (file, block, count) in a table
 * doubling past 3/4 cost 16-32 bytes per count, and 48 while rehashing (old
 * and new tables both alive), so that with its map entry an indirection
 * cost 41-73 bytes against a budget of 32.  Growing at 7/8 by 1.25 would
 * still swing 13.7-17.1 bytes (31 while rehashing), and per-file tables of
 * 8-byte slots 9.1-11.4 (20.6).  The trees grow a node at a time, with no
 * step and no transient copy: a million indirections to distinct random
 * targets (map entry + count) take 24.4 bytes each, at most ~30 at any point
 * from 1000 on (when each file's tree splits its first leaf), and runs 21.2.
 * The price is hc_refcount_get: a descent of ~14 dependent loads, ~30 ns in
 * cache and ~150 ns cold against ~7 and ~60 for a hash probe, paid once per
 * block written back (is its home block shared?), next to the block's XXH3
 * (~84 ns) and its write.
 *
 * The allocator is two bitmaps over [0, hwm): `used` (reserved, referenced
 * or pending) and `pending`, a FIFO of (block, seq) for pending frees, and
 * `hint`, below which every block is used (first fit from the bottom keeps
 * overflow.dat compact).  A pending block is only released by
 * hc_refcount_release, never re-referenced: an inc on it is refused, so a
 * block that was freed by a record that is not yet durable can never end up
 * holding new data (I4).
 *
 * Home blocks have the same hazard: a home block whose count fell to 0 in a
 * record not yet durable must not be overwritten in place, or a crash would
 * bring the entry back onto its owner's new bytes (another block's data,
 * I1).  They are kept in `hp`, an open-addressing set of (file, block, seq)
 * emptied by hc_refcount_release, and hc_refcount_home_free says no for
 * them.  Without memory for the set, every home block counts as pending
 * until a release covers the seq that could not be recorded (hp_lost).
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "refcount.h"
#include "util.h"

/*
 * A slot: block << 24 | count.  Sorting slots sorts by block (blocks are
 * unique in a tree), and a search for block b looks for the first slot
 * >= b << 24.  Inner keys are slots with the count cleared.
 */
#define CNT_BITS 24
#define CNT_MASK ((1u << CNT_BITS) - 1)
_Static_assert(HC_PHYS_BLOCK_BITS + CNT_BITS == 64, "slot is block + count in 64 bits");
_Static_assert(HC_REFCOUNT_MAX == CNT_MASK, "count field");

#define LEAF_CAP 254
#define LEAF_MIN (LEAF_CAP * 3 / 8)	/* a leaf under this merges or borrows */
#define LEAF_MERGE (LEAF_CAP * 7 / 8)	/* ... merges when both fit in this */
#define INNER_CAP 127
#define INNER_CAP0 4	/* a new root's; grows by half until INNER_CAP */
#define MAX_HEIGHT 24	/* inner levels: deletes leave thin inner nodes, so height is not log n */

#define LEAF_CAP0 4	/* a file's first leaf; grows by half until LEAF_CAP */

/* cap is LEAF_CAP except in a root leaf, which starts small and grows. */
struct leaf {
	uint32_t n;
	uint32_t cap;
	uint64_t s[];
};

#define LEAF_BYTES(cap) (sizeof(struct leaf) + (size_t)(cap) * sizeof(uint64_t))

/*
 * key[cap] then the children, void *[cap] (kids()): key[i] is the lowest
 * slot key of child i; key[0] is unused.  cap is INNER_CAP except in the
 * root, which starts at INNER_CAP0 and grows.
 */
struct inner {
	uint32_t n;
	uint32_t cap;
	uint64_t key[];
};

#define INNER_BYTES(cap) (sizeof(struct inner) + (size_t)(cap) * (8 + sizeof(void *)))

static inline void **kids(const struct inner *in)
{
	return (void **)(in->key + in->cap);
}

/* 2040 bytes: a 2048-byte malloc chunk (glibc), see imap.c. */
_Static_assert(LEAF_BYTES(LEAF_CAP) <= 2040 && INNER_BYTES(INNER_CAP) <= 2040, "node grew");

/* The counts of one file's blocks; a file with none has no tree. */
struct ftree {
	uint32_t file;
	int height;		/* inner levels above the leaves */
	void *root;		/* never NULL */
};

struct pend {
	uint64_t block;
	uint64_t seq;
};

/* A home block freed by record seq (seq 0: an empty slot). */
struct hpend {
	uint64_t block;
	uint64_t seq;
	uint32_t file;
};

struct hc_refcount {
	pthread_mutex_t lock;	/* everything below */
	int replay;
	struct ftree *files;	/* sorted by file */
	size_t nfiles, capfiles;
	size_t hot;		/* the file last found (a hint: checked before use) */
	uint64_t n;		/* counted blocks */
	size_t node_bytes;

	uint64_t *used;		/* bitmaps of `bits` bits, >= hwm */
	uint64_t *pending;
	uint64_t bits;
	uint64_t hwm;
	uint64_t hint;
	uint64_t nused;
	struct pend *pq;	/* FIFO [ph, pt) */
	size_t ph, pt, pcap;
	struct hpend *hp;	/* hpcap slots (a power of 2), hpn used */
	size_t hpcap, hpn;
	uint64_t hp_lost;	/* highest seq not recorded for want of memory, 0: none */
};

/* A root-to-leaf descent: node[d] and the index taken in it. */
struct path {
	struct inner *node[MAX_HEIGHT];
	unsigned idx[MAX_HEIGHT];
	struct leaf *leaf;
};

static inline uint64_t s_key(uint64_t block)
{
	return block << CNT_BITS;
}

static inline uint64_t s_block(uint64_t s)
{
	return s >> CNT_BITS;
}

static inline uint32_t s_count(uint64_t s)
{
	return (uint32_t)(s & CNT_MASK);
}

int hc_refcount_create(struct hc_refcount **out)
{
	struct hc_refcount *rc = calloc(1, sizeof(*rc));
	if (!rc)
		return -ENOMEM;
	pthread_mutex_init(&rc->lock, NULL);
	*out = rc;
	return 0;
}

static void free_node(void *node, int levels_below)
{
	if (levels_below > 0) {
		struct inner *in = node;
		for (unsigned i = 0; i < in->n; i++)
			free_node(kids(in)[i], levels_below - 1);
	}
	free(node);
}

void hc_refcount_destroy(struct hc_refcount *rc)
{
	if (!rc)
		return;
	pthread_mutex_destroy(&rc->lock);
	for (size_t i = 0; i < rc->nfiles; i++)
		free_node(rc->files[i].root, rc->files[i].height);
	free(rc->files);
	free(rc->used);
	free(rc->pending);
	free(rc->pq);
	free(rc->hp);
	free(rc);
}

void hc_refcount_set_replay(struct hc_refcount *rc, int on)
{
	pthread_mutex_lock(&rc->lock);
	rc->replay = on;
	pthread_mutex_unlock(&rc->lock);
}

/* ---- the count trees ---------------------------------------------------- */

/*
 * Position of file in rc->files, or of where it would go; *found set.
 * Calls come in runs on one file (a volume writing back its blocks asks
 * about its own home blocks), hence the check of the last one found first.
 */
static size_t file_pos(struct hc_refcount *rc, uint32_t file, int *found)
{
	if (rc->hot < rc->nfiles && rc->files[rc->hot].file == file) {
		*found = 1;
		return rc->hot;
	}
	size_t len = rc->nfiles, pos = 0;
	if (len) {
		const struct ftree *f = rc->files;
		while (len > 1) {
			size_t half = len / 2;
			f = f[half].file < file ? f + half : f;
			len -= half;
		}
		pos = (size_t)(f - rc->files) + (f->file < file);
	}
	*found = pos < rc->nfiles && rc->files[pos].file == file;
	if (*found)
		rc->hot = pos;
	return pos;
}

/* First index in l whose slot is >= q (l->n when none); branch-free. */
static unsigned leaf_lower(const struct leaf *l, uint64_t q)
{
	unsigned len = l->n;
	if (!len)
		return 0;
	const uint64_t *b = l->s;
	while (len > 1) {
		unsigned half = len / 2;
		b = b[half] < q ? b + half : b;
		len -= half;
	}
	return (unsigned)(b - l->s) + (*b < q);
}

/* The child whose range holds q: the last i with i == 0 or key[i] <= q. */
static unsigned inner_pick(const struct inner *in, uint64_t q)
{
	unsigned len = in->n - 1;
	if (!len)
		return 0;
	const uint64_t *b = in->key + 1;
	while (len > 1) {
		unsigned half = len / 2;
		b = b[half] <= q ? b + half : b;
		len -= half;
	}
	return (unsigned)(b - in->key - 1) + (*b <= q);
}

static void descend(const struct ftree *t, uint64_t q, struct path *pa)
{
	void *node = t->root;
	for (int d = 0; d < t->height; d++) {
		struct inner *in = node;
		unsigned i = inner_pick(in, q);
		pa->node[d] = in;
		pa->idx[d] = i;
		node = kids(in)[i];
	}
	pa->leaf = node;
}

/* The slot of p, or NULL; no path kept (lookups). */
static uint64_t *slot_of(struct hc_refcount *rc, uint32_t file, uint64_t block)
{
	int found;
	size_t fi = file_pos(rc, file, &found);
	if (!found)
		return NULL;
	const struct ftree *t = &rc->files[fi];
	uint64_t q = s_key(block);
	void *node = t->root;
	for (int d = 0; d < t->height; d++) {
		struct inner *in = node;
		node = kids(in)[inner_pick(in, q)];
	}
	struct leaf *l = node;
	unsigned i = leaf_lower(l, q);
	return i < l->n && s_block(l->s[i]) == block ? &l->s[i] : NULL;
}

static uint32_t count_of(struct hc_refcount *rc, uint32_t file, uint64_t block)
{
	const uint64_t *s = slot_of(rc, file, block);
	return s ? s_count(*s) : 0;
}

static void *node_alloc(struct hc_refcount *rc, size_t size)
{
	void *p = malloc(size);
	if (p) {
		*(uint32_t *)p = 0;	/* n, first in both kinds */
		rc->node_bytes += size;
	}
	return p;
}

static struct leaf *leaf_alloc(struct hc_refcount *rc, unsigned cap)
{
	struct leaf *l = node_alloc(rc, LEAF_BYTES(cap));
	if (l)
		l->cap = cap;
	return l;
}

static struct inner *inner_alloc(struct hc_refcount *rc, unsigned cap)
{
	struct inner *in = node_alloc(rc, INNER_BYTES(cap));
	if (in)
		in->cap = cap;
	return in;
}

static void node_free(struct hc_refcount *rc, void *p, int is_leaf)
{
	rc->node_bytes -= is_leaf ? LEAF_BYTES(((struct leaf *)p)->cap)
				  : INNER_BYTES(((struct inner *)p)->cap);
	free(p);
}

static void leaf_insert(struct leaf *l, unsigned pos, uint64_t v)
{
	memmove(&l->s[pos + 1], &l->s[pos], (l->n - pos) * sizeof(l->s[0]));
	l->s[pos] = v;
	l->n++;
}

static void inner_insert(struct inner *in, unsigned pos, uint64_t key, void *child)
{
	memmove(&in->key[pos + 1], &in->key[pos], (in->n - pos) * sizeof(in->key[0]));
	void **c = kids(in);
	memmove(&c[pos + 1], &c[pos], (in->n - pos) * sizeof(c[0]));
	in->key[pos] = key;
	c[pos] = child;
	in->n++;
}

/*
 * Inserts v at pos of the full leaf pa->leaf by moving entries into a
 * sibling with room under the same parent (B*-tree overflow; imap.c has the
 * same policy and says why).  0 when neither sibling has room.
 */
static int shift_insert(const struct ftree *t, struct path *pa, unsigned pos, uint64_t v)
{
	if (t->height == 0)
		return 0;
	struct inner *in = pa->node[t->height - 1];
	unsigned i = pa->idx[t->height - 1];
	struct leaf *l = pa->leaf;
	if (i + 1 < in->n && ((struct leaf *)kids(in)[i + 1])->n < LEAF_CAP) {
		struct leaf *r = kids(in)[i + 1];
		unsigned a = (LEAF_CAP + r->n + 1) / 2;	/* l's final size */
		int left = pos < a;
		unsigned keep = left ? a - 1 : a;
		unsigned k = LEAF_CAP - keep;
		memmove(&r->s[k], &r->s[0], r->n * sizeof(r->s[0]));
		memcpy(&r->s[0], &l->s[keep], k * sizeof(r->s[0]));
		r->n += k;
		l->n = keep;
		if (left)
			leaf_insert(l, pos, v);
		else
			leaf_insert(r, pos - keep, v);
		in->key[i + 1] = s_key(s_block(r->s[0]));
		return 1;
	}
	if (i > 0 && ((struct leaf *)kids(in)[i - 1])->n < LEAF_CAP) {
		struct leaf *lf = kids(in)[i - 1];
		unsigned a = (lf->n + LEAF_CAP + 1) / 2;	/* lf's final size */
		int left = pos < a - lf->n;
		unsigned k = left ? a - lf->n - 1 : a - lf->n;
		memcpy(&lf->s[lf->n], &l->s[0], k * sizeof(l->s[0]));
		lf->n += k;
		memmove(&l->s[0], &l->s[k], (l->n - k) * sizeof(l->s[0]));
		l->n -= k;
		if (left)
			leaf_insert(lf, lf->n - k + pos, v);
		else
			leaf_insert(l, pos - k, v);
		in->key[i] = s_key(s_block(l->s[0]));
		return 1;
	}
	return 0;
}

/*
 * Inserts slot v (not present) at pos of pa->leaf in tree t.  0 or -ENOMEM
 * with the tree unchanged: new nodes are all allocated before any change.
 */
static int tree_insert(struct hc_refcount *rc, struct ftree *t, struct path *pa, unsigned pos,
		       uint64_t v)
{
	struct leaf *l = pa->leaf;
	if (l->n < l->cap) {
		leaf_insert(l, pos, v);
		return 0;
	}
	if (l->cap < LEAF_CAP) {
		/* The root leaf, still small: grow it by half. */
		unsigned cap = l->cap + l->cap / 2 + 2;
		if (cap > LEAF_CAP)
			cap = LEAF_CAP;
		struct leaf *nl = realloc(l, LEAF_BYTES(cap));
		if (!nl)
			return -ENOMEM;
		rc->node_bytes += LEAF_BYTES(cap) - LEAF_BYTES(nl->cap);
		nl->cap = cap;
		t->root = nl;
		leaf_insert(nl, pos, v);
		return 0;
	}
	int h = t->height;
	int append = pos == LEAF_CAP && (h == 0 || pa->idx[h - 1] + 1 == pa->node[h - 1]->n);
	if (!append && shift_insert(t, pa, pos, v))
		return 0;

	/* All inner levels full: a small root grows, a full-size one gets a new root. */
	int full = 0;
	while (full < h && pa->node[h - 1 - full]->n == pa->node[h - 1 - full]->cap)
		full++;
	int grow_root = full == h && h > 0 && ((struct inner *)t->root)->cap < INNER_CAP;
	int new_root = full == h && !grow_root;
	int nsplit = grow_root ? full - 1 : full;
	if (new_root && h + 1 > MAX_HEIGHT)
		return -ENOMEM;
	struct leaf *nl = leaf_alloc(rc, LEAF_CAP);
	struct inner *spare[MAX_HEIGHT], *top = NULL;
	int got = 0;
	if (nl) {
		for (; got < nsplit; got++) {
			spare[got] = inner_alloc(rc, INNER_CAP);
			if (!spare[got])
				break;
		}
	}
	if (nl && got == nsplit && (grow_root || new_root)) {
		unsigned cap = INNER_CAP0;
		if (grow_root) {
			cap = ((struct inner *)t->root)->cap;
			cap = cap + cap / 2 + 2;
			if (cap > INNER_CAP)
				cap = INNER_CAP;
		}
		top = inner_alloc(rc, cap);
	}
	if (!nl || got < nsplit || ((grow_root || new_root) && !top)) {
		while (got > 0)
			node_free(rc, spare[--got], 0);
		if (nl)
			node_free(rc, nl, 1);
		return -ENOMEM;
	}

	if (append) {
		nl->s[0] = v;
		nl->n = 1;
	} else {
		unsigned half = LEAF_CAP / 2;
		memcpy(nl->s, &l->s[half], (LEAF_CAP - half) * sizeof(l->s[0]));
		nl->n = LEAF_CAP - half;
		l->n = half;
		if (pos <= half)
			leaf_insert(l, pos, v);
		else
			leaf_insert(nl, pos - half, v);
	}

	uint64_t sep = s_key(s_block(nl->s[0]));
	void *right = nl;
	int used = 0;
	for (int d = h - 1; d >= 0; d--) {
		struct inner *in = pa->node[d];
		unsigned at = pa->idx[d] + 1;
		if (in->n < in->cap) {
			inner_insert(in, at, sep, right);
			return 0;
		}
		if (d == 0 && grow_root) {
			top->n = in->n;
			memcpy(top->key, in->key, in->n * sizeof(in->key[0]));
			memcpy(kids(top), kids(in), in->n * sizeof(void *));
			inner_insert(top, at, sep, right);
			node_free(rc, in, 0);
			t->root = top;
			return 0;
		}
		struct inner *ni = spare[used++];
		if (at == INNER_CAP) {
			ni->key[0] = sep;
			kids(ni)[0] = right;
			ni->n = 1;
		} else {
			unsigned half = INNER_CAP / 2;
			memcpy(ni->key, &in->key[half], (INNER_CAP - half) * sizeof(in->key[0]));
			memcpy(kids(ni), &kids(in)[half], (INNER_CAP - half) * sizeof(void *));
			ni->n = INNER_CAP - half;
			in->n = half;
			if (at <= half)
				inner_insert(in, at, sep, right);
			else
				inner_insert(ni, at - half, sep, right);
		}
		sep = ni->key[0];
		right = ni;
	}
	top->key[0] = 0;
	kids(top)[0] = t->root;
	top->key[1] = sep;
	kids(top)[1] = right;
	top->n = 2;
	t->root = top;
	t->height++;
	return 0;
}

/*
 * Unlinks child idx of pa->node[d] (emptied or merged away; freed here),
 * unlinking emptied ancestors in turn and shrinking a one-child root.  The
 * tree never empties here: its last entry goes through tree_remove.
 */
static void remove_child(struct hc_refcount *rc, struct ftree *t, struct path *pa, int d,
			 unsigned idx)
{
	struct inner *in = pa->node[d];
	node_free(rc, kids(in)[idx], d == t->height - 1);
	memmove(&in->key[idx], &in->key[idx + 1], (in->n - idx - 1) * sizeof(in->key[0]));
	memmove(&kids(in)[idx], &kids(in)[idx + 1], (in->n - idx - 1) * sizeof(void *));
	in->n--;
	if (in->n == 0) {
		remove_child(rc, t, pa, d - 1, pa->idx[d - 1]);
		return;
	}
	while (t->height > 0 && ((struct inner *)t->root)->n == 1) {
		struct inner *r = t->root;
		t->root = kids(r)[0];
		t->height--;
		node_free(rc, r, 0);
	}
}

/*
 * Drops slot pos of pa->leaf in files[fi]: a leaf under 3/8 full merges
 * with a sibling when both fit in 7/8, else they share evenly; the last
 * slot of a file drops its tree.  Never allocates.
 */
static void tree_remove(struct hc_refcount *rc, size_t fi, struct path *pa, unsigned pos)
{
	struct ftree *t = &rc->files[fi];
	struct leaf *l = pa->leaf;
	memmove(&l->s[pos], &l->s[pos + 1], (l->n - pos - 1) * sizeof(l->s[0]));
	l->n--;
	if (t->height == 0) {
		if (l->n == 0) {
			node_free(rc, l, 1);
			memmove(&rc->files[fi], &rc->files[fi + 1],
				(rc->nfiles - fi - 1) * sizeof(rc->files[0]));
			rc->nfiles--;
		}
		return;
	}
	int d = t->height - 1;
	struct inner *in = pa->node[d];
	unsigned i = pa->idx[d];
	if (l->n == 0) {
		remove_child(rc, t, pa, d, i);	/* the root keeps >= 1 leaf */
		return;
	}
	if (l->n >= LEAF_MIN || in->n < 2)
		return;
	unsigned li = i + 1 < in->n ? i : i - 1;	/* merge li and li + 1 */
	struct leaf *a = kids(in)[li], *b = kids(in)[li + 1];
	if (a->n + b->n <= LEAF_MERGE) {
		memcpy(&a->s[a->n], b->s, b->n * sizeof(b->s[0]));
		a->n += b->n;
		remove_child(rc, t, pa, d, li + 1);
		return;
	}
	unsigned total = a->n + b->n, want = total / 2;
	if (a->n < want) {
		unsigned k = want - a->n;
		memcpy(&a->s[a->n], b->s, k * sizeof(b->s[0]));
		memmove(b->s, &b->s[k], (b->n - k) * sizeof(b->s[0]));
		a->n += k;
		b->n -= k;
	} else {
		unsigned k = a->n - want;
		memmove(&b->s[k], b->s, b->n * sizeof(b->s[0]));
		memcpy(b->s, &a->s[a->n - k], k * sizeof(a->s[0]));
		a->n -= k;
		b->n += k;
	}
	in->key[li + 1] = s_key(s_block(b->s[0]));
}

/* Calls fn on every slot of the subtree in block order until it returns non-zero. */
static int walk_node(const void *node, int levels_below, uint32_t file,
		     int (*fn)(void *arg, const struct hc_phys *p, uint32_t count), void *arg)
{
	if (levels_below == 0) {
		const struct leaf *l = node;
		for (unsigned i = 0; i < l->n; i++) {
			struct hc_phys p = { file, s_block(l->s[i]) };
			int r = fn(arg, &p, s_count(l->s[i]));
			if (r)
				return r;
		}
		return 0;
	}
	const struct inner *in = node;
	for (unsigned i = 0; i < in->n; i++) {
		int r = walk_node(kids(in)[i], levels_below - 1, file, fn, arg);
		if (r)
			return r;
	}
	return 0;
}

static inline int bit_get(const uint64_t *bm, uint64_t b)
{
	return (bm[b / 64] >> (b % 64)) & 1;
}

static inline void bit_set(uint64_t *bm, uint64_t b)
{
	bm[b / 64] |= 1ull << (b % 64);
}

static inline void bit_clear(uint64_t *bm, uint64_t b)
{
	bm[b / 64] &= ~(1ull << (b % 64));
}

/* Makes the bitmaps hold at least `need` bits. */
static int grow_bits(struct hc_refcount *rc, uint64_t need)
{
	if (need <= rc->bits)
		return 0;
	uint64_t nb = rc->bits ? rc->bits : 4096;
	while (nb < need)
		nb *= 2;
	size_t ow = rc->bits / 64, nw = nb / 64;
	uint64_t *u = realloc(rc->used, nw * 8);
	if (!u)
		return -ENOMEM;
	rc->used = u;
	uint64_t *p = realloc(rc->pending, nw * 8);
	if (!p)
		return -ENOMEM;	/* used is bigger than needed: harmless */
	rc->pending = p;
	memset(u + ow, 0, (nw - ow) * 8);
	memset(p + ow, 0, (nw - ow) * 8);
	rc->bits = nb;
	return 0;
}

static int raise_hwm(struct hc_refcount *rc, uint64_t hwm)
{
	if (hwm <= rc->hwm)
		return 0;
	int r = grow_bits(rc, hwm);
	if (r)
		return r;
	rc->hwm = hwm;
	return 0;
}

static void ovf_free(struct hc_refcount *rc, uint64_t b)
{
	bit_clear(rc->used, b);
	bit_clear(rc->pending, b);
	rc->nused--;
	if (b < rc->hint)
		rc->hint = b;
}

static int valid_target(const struct hc_phys *p)
{
	return !hc_phys_is_zero(p) && hc_phys_valid(p);
}

uint32_t hc_refcount_get(struct hc_refcount *rc, const struct hc_phys *p)
{
	if (!valid_target(p))
		return 0;
	pthread_mutex_lock(&rc->lock);
	uint32_t c = count_of(rc, p->file, p->block);
	pthread_mutex_unlock(&rc->lock);
	return c;
}

static int inc_locked(struct hc_refcount *rc, const struct hc_phys *p)
{
	if (!valid_target(p))
		return -EINVAL;
	int found;
	size_t fi = file_pos(rc, p->file, &found);
	uint64_t q = s_key(p->block);
	struct path pa;
	unsigned pos = 0;
	pa.leaf = NULL;		/* set when found; quiets -Wmaybe-uninitialized */
	if (found) {
		descend(&rc->files[fi], q, &pa);
		pos = leaf_lower(pa.leaf, q);
		if (pos < pa.leaf->n && s_block(pa.leaf->s[pos]) == p->block) {
			uint32_t c = s_count(pa.leaf->s[pos]);
			if (c == HC_REFCOUNT_MAX)
				return -EOVERFLOW;
			pa.leaf->s[pos]++;
			return (int)c + 1;
		}
	}
	int ovf = p->file == HC_PHYS_OVERFLOW;
	if (ovf) {
		if (!rc->replay) {
			if (p->block >= rc->hwm || !bit_get(rc->used, p->block) ||
			    bit_get(rc->pending, p->block))
				return -EINVAL;
		} else if (raise_hwm(rc, p->block + 1)) {
			return -ENOMEM;
		}
	}
	uint64_t v = q | 1;
	if (found) {
		if (tree_insert(rc, &rc->files[fi], &pa, pos, v))
			return -ENOMEM;
	} else {
		if (rc->nfiles == rc->capfiles) {
			size_t nc = rc->capfiles ? rc->capfiles * 2 : 4;
			struct ftree *f = realloc(rc->files, nc * sizeof(*f));
			if (!f)
				return -ENOMEM;
			rc->files = f;
			rc->capfiles = nc;
		}
		struct leaf *l = leaf_alloc(rc, LEAF_CAP0);
		if (!l)
			return -ENOMEM;
		l->s[0] = v;
		l->n = 1;
		memmove(&rc->files[fi + 1], &rc->files[fi], (rc->nfiles - fi) * sizeof(rc->files[0]));
		rc->files[fi] = (struct ftree){ p->file, 0, l };
		rc->nfiles++;
	}
	if (ovf && rc->replay && !bit_get(rc->used, p->block)) {
		bit_set(rc->used, p->block);
		rc->nused++;
	}
	rc->n++;
	return 1;
}

int hc_refcount_inc(struct hc_refcount *rc, const struct hc_phys *p)
{
	pthread_mutex_lock(&rc->lock);
	int r = inc_locked(rc, p);
	pthread_mutex_unlock(&rc->lock);
	return r;
}

static int push_pending(struct hc_refcount *rc, uint64_t block, uint64_t seq)
{
	if (rc->pt == rc->pcap) {
		if (rc->ph > 0) {
			memmove(rc->pq, rc->pq + rc->ph, (rc->pt - rc->ph) * sizeof(*rc->pq));
			rc->pt -= rc->ph;
			rc->ph = 0;
		}
		if (rc->pt == rc->pcap) {
			size_t nc = rc->pcap ? rc->pcap * 2 : 256;
			struct pend *q = realloc(rc->pq, nc * sizeof(*q));
			if (!q)
				return -ENOMEM;
			rc->pq = q;
			rc->pcap = nc;
		}
	}
	rc->pq[rc->pt++] = (struct pend){ block, seq };
	return 0;
}

static size_t hp_slot(const struct hpend *t, size_t cap, uint32_t file, uint64_t block)
{
	uint64_t h = (block ^ ((uint64_t)file << 40) ^ file) * 0x9E3779B97F4A7C15ull;
	size_t i = (size_t)(h >> 32) & (cap - 1);
	while (t[i].seq && (t[i].file != file || t[i].block != block))
		i = (i + 1) & (cap - 1);
	return i;
}

/* Rebuilds hp with cap slots, keeping entries freed after durable.  0 or -ENOMEM. */
static int hp_rebuild(struct hc_refcount *rc, size_t cap, uint64_t durable)
{
	struct hpend *t = calloc(cap, sizeof(*t));
	if (!t)
		return -ENOMEM;
	size_t n = 0;
	for (size_t i = 0; i < rc->hpcap; i++) {
		struct hpend *e = &rc->hp[i];
		if (e->seq > durable) {
			t[hp_slot(t, cap, e->file, e->block)] = *e;
			n++;
		}
	}
	free(rc->hp);
	rc->hp = t;
	rc->hpcap = cap;
	rc->hpn = n;
	return 0;
}

/* Home block (file, block) was freed by record seq (>= 1). */
static void hp_add(struct hc_refcount *rc, uint32_t file, uint64_t block, uint64_t seq)
{
	if ((rc->hpn + 1) * 2 > rc->hpcap &&
	    hp_rebuild(rc, rc->hpcap ? rc->hpcap * 2 : 64, 0)) {
		if (seq > rc->hp_lost)
			rc->hp_lost = seq;
		return;
	}
	struct hpend *e = &rc->hp[hp_slot(rc->hp, rc->hpcap, file, block)];
	if (!e->seq)
		rc->hpn++;
	if (seq > e->seq)
		*e = (struct hpend){ block, seq, file };
}

static int dec_locked(struct hc_refcount *rc, const struct hc_phys *p, uint64_t seq, int undo)
{
	if (!valid_target(p))
		return -EINVAL;
	int found;
	size_t fi = file_pos(rc, p->file, &found);
	if (!found)
		return -ENOENT;
	uint64_t q = s_key(p->block);
	struct path pa;
	descend(&rc->files[fi], q, &pa);
	unsigned pos = leaf_lower(pa.leaf, q);
	if (pos >= pa.leaf->n || s_block(pa.leaf->s[pos]) != p->block)
		return -ENOENT;
	uint32_t c = s_count(pa.leaf->s[pos]);
	if (c > 1) {
		pa.leaf->s[pos]--;
		return (int)c - 1;
	}
	tree_remove(rc, fi, &pa, pos);
	rc->n--;
	if (p->file != HC_PHYS_OVERFLOW && !undo && !rc->replay)
		hp_add(rc, p->file, p->block, seq ? seq : 1);
	if (p->file == HC_PHYS_OVERFLOW && !undo) {
		if (rc->replay) {
			ovf_free(rc, p->block);
		} else {
			bit_set(rc->pending, p->block);
			/*
			 * Without room in the FIFO the block stays pending for
			 * good: leaked until the next open rebuilds the
			 * allocator from the counts.  Never unsafe.
			 */
			(void)push_pending(rc, p->block, seq);
		}
	}
	return 0;
}

int hc_refcount_dec(struct hc_refcount *rc, const struct hc_phys *p, uint64_t seq)
{
	pthread_mutex_lock(&rc->lock);
	int r = dec_locked(rc, p, seq, 0);
	pthread_mutex_unlock(&rc->lock);
	return r;
}

void hc_refcount_undo_inc(struct hc_refcount *rc, const struct hc_phys *p)
{
	pthread_mutex_lock(&rc->lock);
	dec_locked(rc, p, 0, 1);
	pthread_mutex_unlock(&rc->lock);
}

/* First used block at or after b, or hwm. */
static uint64_t next_used(const struct hc_refcount *rc, uint64_t b)
{
	if (b >= rc->hwm)
		return rc->hwm;
	uint64_t w = b / 64, word = rc->used[w] & ~((1ull << (b % 64)) - 1);
	while (!word) {
		if (++w * 64 >= rc->hwm)
			return rc->hwm;
		word = rc->used[w];
	}
	return HC_MIN(w * 64 + (uint64_t)__builtin_ctzll(word), rc->hwm);
}

/* First free block at or after b, or hwm. */
static uint64_t next_free(const struct hc_refcount *rc, uint64_t b)
{
	if (b >= rc->hwm)
		return rc->hwm;
	uint64_t w = b / 64, word = rc->used[w] | ((1ull << (b % 64)) - 1);
	while (word == ~0ull) {
		if (++w * 64 >= rc->hwm)
			return rc->hwm;
		word = rc->used[w];
	}
	return HC_MIN(w * 64 + (uint64_t)__builtin_ctzll(~word), rc->hwm);
}

int hc_refcount_alloc(struct hc_refcount *rc, uint64_t n, uint64_t *start)
{
	if (n == 0)
		return -EINVAL;
	pthread_mutex_lock(&rc->lock);
	int r = 0;
	/* First fit: free runs one after the other, from the hint up. */
	uint64_t f0 = next_free(rc, rc->hint), first = f0, end = first;
	while (first < rc->hwm) {
		end = next_used(rc, first);
		if (end - first >= n || end == rc->hwm)
			break;
		first = next_free(rc, end);
	}
	if (first >= rc->hwm || end - first < n) {
		/* Extend past the high-water mark, from a free tail run if any. */
		if (first > HC_PHYS_BLOCK_MAX + 1 - n) {
			r = -ENOSPC;
			goto out;
		}
		r = raise_hwm(rc, first + n);
		if (r)
			goto out;
	}
	for (uint64_t k = first; k < first + n; k++)
		bit_set(rc->used, k);
	rc->nused += n;
	rc->hint = first == f0 ? first + n : f0;	/* all used below it */
	*start = first;
out:
	pthread_mutex_unlock(&rc->lock);
	return r;
}

int hc_refcount_cancel(struct hc_refcount *rc, uint64_t start, uint64_t n)
{
	int r = 0;
	pthread_mutex_lock(&rc->lock);
	if (start >= rc->hwm || n > rc->hwm - start) {
		r = -EINVAL;
		goto out;
	}
	for (uint64_t b = start; b < start + n; b++) {
		if (!bit_get(rc->used, b) || bit_get(rc->pending, b) ||
		    count_of(rc, HC_PHYS_OVERFLOW, b)) {
			r = -EINVAL;
			goto out;
		}
	}
	for (uint64_t b = start; b < start + n; b++)
		ovf_free(rc, b);
out:
	pthread_mutex_unlock(&rc->lock);
	return r;
}

void hc_refcount_release(struct hc_refcount *rc, uint64_t durable_seq)
{
	pthread_mutex_lock(&rc->lock);
	while (rc->ph < rc->pt && rc->pq[rc->ph].seq <= durable_seq) {
		uint64_t b = rc->pq[rc->ph++].block;
		if (bit_get(rc->pending, b))
			ovf_free(rc, b);
	}
	if (rc->ph == rc->pt)
		rc->ph = rc->pt = 0;
	if (rc->hpn) {
		size_t keep = 0, cap = 64;
		for (size_t i = 0; i < rc->hpcap; i++)
			keep += rc->hp[i].seq > durable_seq;
		if (!keep) {
			free(rc->hp);
			rc->hp = NULL;
			rc->hpcap = rc->hpn = 0;
		} else {
			while (cap < 2 * keep + 2)
				cap *= 2;
			/* On failure the old set stays: pending longer, never unsafe. */
			(void)hp_rebuild(rc, cap, durable_seq);
		}
	}
	if (rc->hp_lost && rc->hp_lost <= durable_seq)
		rc->hp_lost = 0;
	pthread_mutex_unlock(&rc->lock);
}

int hc_refcount_home_free(struct hc_refcount *rc, const struct hc_phys *p)
{
	if (!valid_target(p) || p->file == HC_PHYS_OVERFLOW)
		return 0;
	pthread_mutex_lock(&rc->lock);
	int r = !count_of(rc, p->file, p->block) && !rc->hp_lost &&
		!(rc->hpn && rc->hp[hp_slot(rc->hp, rc->hpcap, p->file, p->block)].seq);
	pthread_mutex_unlock(&rc->lock);
	return r;
}

int hc_refcount_set_hwm(struct hc_refcount *rc, uint64_t hwm)
{
	if (hwm > HC_PHYS_BLOCK_MAX + 1)
		return -EINVAL;
	pthread_mutex_lock(&rc->lock);
	int r = raise_hwm(rc, hwm);
	pthread_mutex_unlock(&rc->lock);
	return r;
}

int hc_refcount_ovf_free(struct hc_refcount *rc, uint64_t b)
{
	pthread_mutex_lock(&rc->lock);
	int r = b >= rc->hwm || !bit_get(rc->used, b);
	pthread_mutex_unlock(&rc->lock);
	return r;
}

int hc_refcount_walk(struct hc_refcount *rc,
		     int (*fn)(void *arg, const struct hc_phys *p, uint32_t count), void *arg)
{
	int r = 0;
	pthread_mutex_lock(&rc->lock);
	for (size_t i = 0; i < rc->nfiles && !r; i++)
		r = walk_node(rc->files[i].root, rc->files[i].height, rc->files[i].file, fn, arg);
	pthread_mutex_unlock(&rc->lock);
	return r;
}

void hc_refcount_stats(struct hc_refcount *rc, struct hc_refcount_stats *st)
{
	pthread_mutex_lock(&rc->lock);
	st->entries = rc->n;
	st->bytes = rc->node_bytes + rc->capfiles * sizeof(struct ftree);
	st->ovf_hwm = rc->hwm;
	st->ovf_used = rc->nused;
	st->ovf_pending = 0;
	for (size_t i = rc->ph; i < rc->pt; i++)
		st->ovf_pending += bit_get(rc->pending, rc->pq[i].block);
	pthread_mutex_unlock(&rc->lock);
}
