// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * DOC: the indirection map, a B+tree over logical blocks.
 *
 * What the map must do, in order of how often: resolve a block on every read
 * and write-back (lookup), set an entry on a dedup / CoW / copy_file_range
 * (set), drop ranges on discard and truncate (clear_range), walk in logical
 * order for `hectl map`, the checkpoint and defrag (which wants runs of
 * logically consecutive indirections), and cost at most 32 bytes of RAM per
 * entry, because a VM's swap disk can carry millions of them.
 *
 * Why a B+tree and not a hash.  A hash gives O(1) lookups, but its memory
 * swings with the load factor (16-byte entries at 37-75% load after a
 * doubling are 21-43 bytes each, over the budget right after every grow, and
 * twice that during the rehash), it must be sorted for every ordered walk
 * (a transient array of the whole map), and a range clear has to probe every
 * block of the range or scan the whole table.  A B+tree with wide leaves
 * keeps entries sorted, clears a range by cutting whole leaves, walks in
 * order for free, grows a node at a time (no rehash: no step, no transient
 * copy), and a lookup is 2-3 branch-free binary searches in nodes of a few
 * cache lines.
 *
 * Layout.  Keys are 32-bit: a volume is at most 2^44 bytes
 * (HC_MAX_VOLUME_SIZE), 2^32 blocks, and a block past HC_IMAP_LBLK_MAX is
 * refused by set (-EINVAL), never truncated onto another.  A leaf holds up
 * to LEAF_CAP sorted keys and, in parallel arrays, the 72-bit physical
 * address split as file (32 bits) + block (32 + 8 bits): 13 bytes per slot,
 * 2036 bytes per leaf (a 2048-byte malloc chunk).  An inner node holds up to
 * INNER_CAP children and their lower-bound keys; key[0] is never compared
 * (the parent's bound applies), so removing child 0 needs no key fix-up.
 *
 * Filling.  A full leaf first moves entries into a sibling under the same
 * parent that has room, so that the two end up evenly filled (B*-tree
 * overflow), and splits in half only when neither has: random inserts leave
 * leaves ~86% full instead of ~70% (ln 2).  An insert past the last key of
 * the last leaf of its parent starts a new leaf instead, so the common case
 * -- runs of consecutive blocks (copy_file_range, a checkpoint load) -- packs
 * leaves full.  The root, leaf or inner node, starts with room for 4 and
 * grows by half up to the full size, so that a volume with a handful of
 * indirections costs tens of bytes, not 2 KiB.
 *
 * Measured (check_imap, own accounting; the heap agrees within 0.1 byte):
 * 15.1 bytes per entry for a million random inserts, 13.1 for sequential
 * ones, inner nodes included; at most 18.0 and 15.0 at any size from 1000
 * entries on; 60 bytes for a map of one entry.  (The 64-bit-key tree before
 * this: 17-byte slots, halving splits, 25.0 and 17.2.)  A lookup in a
 * million random entries: ~130-150 ns when nothing is cached, against
 * ~220-260 before, on a busy 2-CPU VM.
 *
 * Deletion.  A leaf that falls under 3/8 full is merged with a sibling when
 * both fit in 7/8 of a leaf, else the two share their entries evenly; an
 * empty node is unlinked, and a root with one child is replaced by it.
 * Inner nodes are not rebalanced (they are under 2% of the memory).
 * Measured: deleting a random half of a million random entries leaves
 * ~27 bytes per remaining entry; the floor after adversarial deletes is a
 * 3/8-full leaf, ~35 bytes per entry.
 *
 * Inserts that need new nodes allocate all of them before touching the tree,
 * so -ENOMEM leaves the map as it was.  Deletions never allocate.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hecache/errors.h"
#include "imap.h"

#define LEAF_CAP 156
#define LEAF_MIN (LEAF_CAP * 3 / 8)	/* a leaf under this merges or borrows */
#define LEAF_MERGE (LEAF_CAP * 7 / 8)	/* ... merges when both fit in this */
#define INNER_CAP 168	/* even: the child array after key[cap] stays 8-aligned */
#define INNER_CAP0 4	/* a new root's; grows by half until INNER_CAP */
#define MAX_HEIGHT 24	/* inner levels: deletes leave thin inner nodes, so height is not log n */

#define LEAF_CAP0 4	/* a new map's first leaf; grows by half until LEAF_CAP */

/*
 * Parallel arrays of cap slots: key[cap], then file[cap], blo[cap] (block
 * bits 0-31) and bhi[cap] (block bits 32-39): 13 bytes a slot.  cap is
 * LEAF_CAP except in a root leaf, which starts small and grows, so that a
 * volume with a handful of indirections does not pay for a whole leaf.
 */
struct leaf {
	uint32_t n;
	uint32_t cap;
	uint32_t key[];
};

#define LEAF_SLOT (3 * sizeof(uint32_t) + 1)
#define LEAF_BYTES(cap) (sizeof(struct leaf) + (size_t)(cap) * LEAF_SLOT)

/*
 * key[cap] then the children, void *[cap] (kids()): key[i] is the lower
 * bound of child i; key[0] is unused.  cap is INNER_CAP except in the root,
 * which starts at INNER_CAP0 and grows, so that a small tree does not pay
 * for a whole inner node above its two leaves.
 */
struct inner {
	uint32_t n;
	uint32_t cap;		/* even */
	uint32_t key[];
};

#define INNER_BYTES(cap) (sizeof(struct inner) + (size_t)(cap) * (4 + sizeof(void *)))

static inline void **kids(const struct inner *in)
{
	return (void **)(in->key + in->cap);
}

/*
 * 2040 bytes or less: with malloc's 8-byte header that is a 2048-byte chunk
 * (glibc), so the own accounting and the heap agree to within 1%.
 */
_Static_assert(LEAF_BYTES(LEAF_CAP) <= 2040 && INNER_BYTES(INNER_CAP) <= 2040, "node grew");
_Static_assert(HC_IMAP_LBLK_MAX == UINT32_MAX, "keys are 32-bit");

struct hc_imap {
	uint32_t vol;
	int height;		/* inner levels above the leaves; root is a leaf at 0 */
	void *root;		/* NULL when empty */
	uint64_t count;
	size_t bytes;
};

/* A root-to-leaf descent: node[d] and the index taken in it, d = 0 at the root. */
struct path {
	struct inner *node[MAX_HEIGHT];
	unsigned idx[MAX_HEIGHT];
	struct leaf *leaf;
};

int hc_imap_create(uint32_t vol, struct hc_imap **out)
{
	struct hc_imap *m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->vol = vol;
	*out = m;
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

void hc_imap_destroy(struct hc_imap *m)
{
	if (!m)
		return;
	if (m->root)
		free_node(m->root, m->height);
	free(m);
}

uint32_t hc_imap_vol(const struct hc_imap *m)
{
	return m->vol;
}

uint64_t hc_imap_count(const struct hc_imap *m)
{
	return m->count;
}

size_t hc_imap_bytes(const struct hc_imap *m)
{
	return m->bytes;
}

static inline void leaf_get(const struct leaf *l, unsigned i, struct hc_phys *p)
{
	const uint32_t *file = l->key + l->cap, *blo = file + l->cap;
	const uint8_t *bhi = (const uint8_t *)(blo + l->cap);
	p->file = file[i];
	p->block = (uint64_t)blo[i] | (uint64_t)bhi[i] << 32;
}

static inline void leaf_put(struct leaf *l, unsigned i, uint32_t key, const struct hc_phys *p)
{
	uint32_t *file = l->key + l->cap, *blo = file + l->cap;
	uint8_t *bhi = (uint8_t *)(blo + l->cap);
	l->key[i] = key;
	file[i] = p->file;
	blo[i] = (uint32_t)p->block;
	bhi[i] = (uint8_t)(p->block >> 32);
}

/* Moves n slots from src[s] to dst[d] (regions may overlap). */
static void leaf_move(struct leaf *dst, unsigned d, struct leaf *src, unsigned s, unsigned n)
{
	uint32_t *da = dst->key, *sa = src->key;
	for (int k = 0; k < 3; k++, da += dst->cap, sa += src->cap)
		memmove(&da[d], &sa[s], n * sizeof(*da));
	memmove((uint8_t *)da + d, (uint8_t *)sa + s, n);
}

/*
 * First index in l whose key is >= key (l->n when none).  Branch-free
 * halving: the compiler turns the step into a conditional move, so a lookup
 * costs its cache misses and not ~8 mispredicted branches per node.
 */
static unsigned leaf_lower(const struct leaf *l, uint32_t key)
{
	unsigned len = l->n;
	if (!len)
		return 0;
	const uint32_t *b = l->key;
	while (len > 1) {
		unsigned half = len / 2;
		b = b[half] < key ? b + half : b;
		len -= half;
	}
	return (unsigned)(b - l->key) + (*b < key);
}

/* The child whose range holds key: the last i with i == 0 or key[i] <= key. */
static unsigned inner_pick(const struct inner *in, uint32_t key)
{
	unsigned len = in->n - 1;	/* over key[1 .. n) */
	if (!len)
		return 0;
	const uint32_t *b = in->key + 1;
	while (len > 1) {
		unsigned half = len / 2;
		b = b[half] <= key ? b + half : b;
		len -= half;
	}
	return (unsigned)(b - in->key - 1) + (*b <= key);
}

static void descend(const struct hc_imap *m, uint32_t key, struct path *pa)
{
	void *node = m->root;
	for (int d = 0; d < m->height; d++) {
		struct inner *in = node;
		unsigned i = inner_pick(in, key);
		pa->node[d] = in;
		pa->idx[d] = i;
		node = kids(in)[i];
	}
	pa->leaf = node;
}

/* Moves pa to the next leaf in key order; 0 when pa was at the last one. */
static int path_next(const struct hc_imap *m, struct path *pa)
{
	int d = m->height - 1;
	while (d >= 0 && pa->idx[d] + 1 >= pa->node[d]->n)
		d--;
	if (d < 0)
		return 0;
	pa->idx[d]++;
	void *node = kids(pa->node[d])[pa->idx[d]];
	for (d++; d < m->height; d++) {
		pa->node[d] = node;
		pa->idx[d] = 0;
		node = kids(node)[0];
	}
	pa->leaf = node;
	return 1;
}

int hc_imap_lookup(const struct hc_imap *m, uint64_t lblk, struct hc_phys *out)
{
	const void *node = m->root;
	if (!node || lblk > HC_IMAP_LBLK_MAX)
		return -ENOENT;
	uint32_t key = (uint32_t)lblk;
	for (int d = 0; d < m->height; d++) {
		const struct inner *in = node;
		node = kids(in)[inner_pick(in, key)];
	}
	const struct leaf *l = node;
	unsigned i = leaf_lower(l, key);
	if (i >= l->n || l->key[i] != key)
		return -ENOENT;
	leaf_get(l, i, out);
	return 0;
}

static void *node_alloc(struct hc_imap *m, size_t size)
{
	void *p = malloc(size);
	if (p) {
		*(uint32_t *)p = 0;	/* n, first in both kinds */
		m->bytes += size;
	}
	return p;
}

static struct leaf *leaf_alloc(struct hc_imap *m, unsigned cap)
{
	struct leaf *l = node_alloc(m, LEAF_BYTES(cap));
	if (l)
		l->cap = cap;
	return l;
}

static struct inner *inner_alloc(struct hc_imap *m, unsigned cap)
{
	struct inner *in = node_alloc(m, INNER_BYTES(cap));
	if (in)
		in->cap = cap;
	return in;
}

static void node_free(struct hc_imap *m, void *p, int is_leaf)
{
	m->bytes -= is_leaf ? LEAF_BYTES(((struct leaf *)p)->cap)
			    : INNER_BYTES(((struct inner *)p)->cap);
	free(p);
}

/* Inserts (key, child) at position pos of in, which has room. */
static void inner_insert(struct inner *in, unsigned pos, uint32_t key, void *child)
{
	memmove(&in->key[pos + 1], &in->key[pos], (in->n - pos) * sizeof(in->key[0]));
	void **c = kids(in);
	memmove(&c[pos + 1], &c[pos], (in->n - pos) * sizeof(c[0]));
	in->key[pos] = key;
	c[pos] = child;
	in->n++;
}

/* Inserts (key, p) at position pos of l, which has room. */
static void leaf_insert(struct leaf *l, unsigned pos, uint32_t key, const struct hc_phys *p)
{
	leaf_move(l, pos + 1, l, pos, l->n - pos);
	leaf_put(l, pos, key, p);
	l->n++;
}

/*
 * Inserts (key, p) at position pos of the full leaf pa->leaf by moving
 * entries into a sibling under the same parent that has room, so that the
 * two end up evenly filled.  Returns 0 when neither sibling has room.
 * This (B*-tree style overflow before splitting) is what keeps randomly
 * filled leaves ~86% full instead of ~70% (ln 2).
 */
static int shift_insert(const struct hc_imap *m, struct path *pa, unsigned pos, uint32_t key,
			const struct hc_phys *p)
{
	if (m->height == 0)
		return 0;
	struct inner *in = pa->node[m->height - 1];
	unsigned i = pa->idx[m->height - 1];
	struct leaf *l = pa->leaf;
	if (i + 1 < in->n && ((struct leaf *)kids(in)[i + 1])->n < LEAF_CAP) {
		struct leaf *r = kids(in)[i + 1];
		unsigned a = (LEAF_CAP + r->n + 1) / 2;	/* l's final size */
		int left = pos < a;			/* where the new entry goes */
		unsigned keep = left ? a - 1 : a;	/* l's old entries that stay */
		unsigned k = LEAF_CAP - keep;
		leaf_move(r, k, r, 0, r->n);
		leaf_move(r, 0, l, keep, k);
		r->n += k;
		l->n = keep;
		if (left)
			leaf_insert(l, pos, key, p);
		else
			leaf_insert(r, pos - keep, key, p);
		in->key[i + 1] = r->key[0];
		return 1;
	}
	if (i > 0 && ((struct leaf *)kids(in)[i - 1])->n < LEAF_CAP) {
		struct leaf *lf = kids(in)[i - 1];
		unsigned a = (lf->n + LEAF_CAP + 1) / 2;	/* lf's final size */
		int left = pos < a - lf->n;
		unsigned k = left ? a - lf->n - 1 : a - lf->n;	/* moved from l's head */
		leaf_move(lf, lf->n, l, 0, k);
		lf->n += k;
		leaf_move(l, 0, l, k, l->n - k);
		l->n -= k;
		if (left)
			leaf_insert(lf, lf->n - k + pos, key, p);
		else
			leaf_insert(l, pos - k, key, p);
		in->key[i] = l->key[0];
		return 1;
	}
	return 0;
}

int hc_imap_set(struct hc_imap *m, uint64_t lblk, const struct hc_phys *p, struct hc_phys *old)
{
	if (!hc_phys_valid(p) || lblk > HC_IMAP_LBLK_MAX)
		return -EINVAL;
	uint32_t key = (uint32_t)lblk;
	if (!m->root) {
		struct leaf *l = leaf_alloc(m, LEAF_CAP0);
		if (!l)
			return -ENOMEM;
		leaf_put(l, 0, key, p);
		l->n = 1;
		m->root = l;
		m->height = 0;
		m->count = 1;
		return 0;
	}
	struct path pa;
	descend(m, key, &pa);
	struct leaf *l = pa.leaf;
	unsigned pos = leaf_lower(l, key);
	if (pos < l->n && l->key[pos] == key) {
		if (old)
			leaf_get(l, pos, old);
		leaf_put(l, pos, key, p);
		return 1;
	}
	if (l->n < l->cap) {
		leaf_insert(l, pos, key, p);
		m->count++;
		return 0;
	}
	if (l->cap < LEAF_CAP) {
		/* The root leaf, still small: grow it by half. */
		unsigned cap = l->cap + l->cap / 2 + 2;
		struct leaf *nl = leaf_alloc(m, cap < LEAF_CAP ? cap : LEAF_CAP);
		if (!nl)
			return -ENOMEM;
		leaf_move(nl, 0, l, 0, pos);
		leaf_put(nl, pos, key, p);
		leaf_move(nl, pos + 1, l, pos, l->n - pos);
		nl->n = l->n + 1;
		node_free(m, l, 1);
		m->root = nl;
		m->count++;
		return 0;
	}
	/*
	 * Full.  An append past the end of the last leaf of its parent starts
	 * a new leaf (runs of consecutive blocks pack leaves full); otherwise
	 * a sibling with room takes some entries; only then does it split.
	 */
	int append = pos == LEAF_CAP &&
		     (m->height == 0 || pa.idx[m->height - 1] + 1 == pa.node[m->height - 1]->n);
	if (!append && shift_insert(m, &pa, pos, key, p)) {
		m->count++;
		return 0;
	}

	/*
	 * Splits: allocate every node needed first, so failure changes nothing.
	 * Each full inner level right above the leaf splits too; when they all
	 * are, a small root grows instead, or a full-size one gets a new root.
	 */
	int h = m->height, full = 0;
	while (full < h && pa.node[h - 1 - full]->n == pa.node[h - 1 - full]->cap)
		full++;
	int grow_root = full == h && h > 0 && ((struct inner *)m->root)->cap < INNER_CAP;
	int new_root = full == h && !grow_root;
	int nsplit = grow_root ? full - 1 : full;
	if (new_root && h + 1 > MAX_HEIGHT)
		return -ENOMEM;
	struct leaf *nl = leaf_alloc(m, LEAF_CAP);
	struct inner *spare[MAX_HEIGHT], *top = NULL;
	int got = 0;
	if (nl) {
		for (; got < nsplit; got++) {
			spare[got] = inner_alloc(m, INNER_CAP);
			if (!spare[got])
				break;
		}
	}
	if (nl && got == nsplit && (grow_root || new_root)) {
		unsigned cap = INNER_CAP0;
		if (grow_root) {
			cap = ((struct inner *)m->root)->cap;
			cap = (cap + cap / 2 + 2) & ~1u;
			if (cap > INNER_CAP)
				cap = INNER_CAP;
		}
		top = inner_alloc(m, cap);
	}
	if (!nl || got < nsplit || ((grow_root || new_root) && !top)) {
		while (got > 0)
			node_free(m, spare[--got], 0);
		if (nl)
			node_free(m, nl, 1);
		return -ENOMEM;
	}

	/* Split the leaf: append past the end starts a fresh leaf. */
	if (append) {
		leaf_put(nl, 0, key, p);
		nl->n = 1;
	} else {
		unsigned half = LEAF_CAP / 2;
		leaf_move(nl, 0, l, half, LEAF_CAP - half);
		nl->n = LEAF_CAP - half;
		l->n = half;
		if (pos <= half)
			leaf_insert(l, pos, key, p);
		else
			leaf_insert(nl, pos - half, key, p);
	}
	m->count++;

	/* Push (sep, right) up, splitting full inner nodes on the way. */
	uint32_t sep = nl->key[0];
	void *right = nl;
	int used = 0;
	for (int d = h - 1; d >= 0; d--) {
		struct inner *in = pa.node[d];
		unsigned at = pa.idx[d] + 1;
		if (in->n < in->cap) {
			inner_insert(in, at, sep, right);
			return 0;
		}
		if (d == 0 && grow_root) {
			top->n = in->n;
			memcpy(top->key, in->key, in->n * sizeof(in->key[0]));
			memcpy(kids(top), kids(in), in->n * sizeof(void *));
			inner_insert(top, at, sep, right);
			node_free(m, in, 0);
			m->root = top;
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
	kids(top)[0] = m->root;
	top->key[1] = sep;
	kids(top)[1] = right;
	top->n = 2;
	m->root = top;
	m->height++;
	return 0;
}

/*
 * Unlinks child idx of pa.node[d] (already emptied or merged away; freed
 * here), unlinking emptied ancestors in turn and shrinking a one-child root.
 */
static void remove_child(struct hc_imap *m, struct path *pa, int d, unsigned idx)
{
	struct inner *in = pa->node[d];
	node_free(m, kids(in)[idx], d == m->height - 1);
	memmove(&in->key[idx], &in->key[idx + 1], (in->n - idx - 1) * sizeof(in->key[0]));
	memmove(&kids(in)[idx], &kids(in)[idx + 1], (in->n - idx - 1) * sizeof(void *));
	in->n--;
	if (in->n == 0) {
		if (d == 0) {
			node_free(m, in, 0);
			m->root = NULL;
			m->height = 0;
			return;
		}
		remove_child(m, pa, d - 1, pa->idx[d - 1]);
		return;
	}
	while (m->height > 0 && ((struct inner *)m->root)->n == 1) {
		struct inner *r = m->root;
		m->root = kids(r)[0];
		m->height--;
		node_free(m, r, 0);
	}
}

/* Restores the leaf invariants after entries left pa.leaf. */
static void fix_leaf(struct hc_imap *m, struct path *pa)
{
	struct leaf *l = pa->leaf;
	if (m->height == 0) {
		if (l->n == 0) {
			node_free(m, l, 1);
			m->root = NULL;
		}
		return;
	}
	int d = m->height - 1;
	struct inner *in = pa->node[d];
	unsigned i = pa->idx[d];
	if (l->n == 0) {
		remove_child(m, pa, d, i);
		return;
	}
	if (l->n >= LEAF_MIN || in->n < 2)
		return;
	unsigned li = i + 1 < in->n ? i : i - 1;	/* merge li and li + 1 */
	struct leaf *a = kids(in)[li], *b = kids(in)[li + 1];
	if (a->n + b->n <= LEAF_MERGE) {
		leaf_move(a, a->n, b, 0, b->n);
		a->n += b->n;
		remove_child(m, pa, d, li + 1);
		return;
	}
	unsigned total = a->n + b->n, want = total / 2;
	if (a->n < want) {
		unsigned k = want - a->n;
		leaf_move(a, a->n, b, 0, k);
		leaf_move(b, 0, b, k, b->n - k);
		a->n += k;
		b->n -= k;
	} else {
		unsigned k = a->n - want;
		leaf_move(b, k, b, 0, b->n);
		leaf_move(b, 0, a, a->n - k, k);
		a->n -= k;
		b->n += k;
	}
	in->key[li + 1] = b->key[0];
}

int hc_imap_clear(struct hc_imap *m, uint64_t lblk, struct hc_phys *old)
{
	if (!m->root || lblk > HC_IMAP_LBLK_MAX)
		return -ENOENT;
	uint32_t key = (uint32_t)lblk;
	struct path pa;
	descend(m, key, &pa);
	struct leaf *l = pa.leaf;
	unsigned i = leaf_lower(l, key);
	if (i >= l->n || l->key[i] != key)
		return -ENOENT;
	if (old)
		leaf_get(l, i, old);
	leaf_move(l, i, l, i + 1, l->n - i - 1);
	l->n--;
	m->count--;
	fix_leaf(m, &pa);
	return 0;
}

/*
 * Last block of [first, first + count) that a map can hold; count
 * UINT64_MAX means "to the end".  Callers check first <= HC_IMAP_LBLK_MAX.
 */
static uint32_t range_last(uint64_t first, uint64_t count)
{
	if (count - 1 > HC_IMAP_LBLK_MAX - first)
		return (uint32_t)HC_IMAP_LBLK_MAX;
	return (uint32_t)(first + count - 1);
}

uint64_t hc_imap_clear_range(struct hc_imap *m, uint64_t first, uint64_t count, hc_imap_fn fn,
			     void *arg)
{
	if (count == 0 || first > HC_IMAP_LBLK_MAX)
		return 0;
	uint32_t last = range_last(first, count);
	uint64_t dropped = 0;
	while (m->root) {
		struct path pa;
		descend(m, (uint32_t)first, &pa);
		unsigned pos = leaf_lower(pa.leaf, (uint32_t)first);
		if (pos == pa.leaf->n) {
			if (!path_next(m, &pa))
				break;
			pos = 0;
		}
		struct leaf *l = pa.leaf;
		if (l->key[pos] > last)
			break;
		unsigned end = pos;
		while (end < l->n && l->key[end] <= last) {
			if (fn) {
				struct hc_phys p;
				leaf_get(l, end, &p);
				fn(arg, l->key[end], &p);
			}
			end++;
		}
		int more = end == l->n && l->key[end - 1] < last;
		uint64_t next = (uint64_t)l->key[end - 1] + 1;
		leaf_move(l, pos, l, end, l->n - end);
		l->n -= end - pos;
		m->count -= end - pos;
		dropped += end - pos;
		fix_leaf(m, &pa);
		if (!more)
			break;
		first = next;
	}
	return dropped;
}

int hc_imap_walk(const struct hc_imap *m, uint64_t first, uint64_t count, hc_imap_fn fn,
		 void *arg)
{
	if (!m->root || count == 0 || first > HC_IMAP_LBLK_MAX)
		return 0;
	uint32_t last = range_last(first, count);
	struct path pa;
	descend(m, (uint32_t)first, &pa);
	unsigned pos = leaf_lower(pa.leaf, (uint32_t)first);
	for (;;) {
		if (pos == pa.leaf->n) {
			if (!path_next(m, &pa))
				return 0;
			pos = 0;
		}
		const struct leaf *l = pa.leaf;
		if (l->key[pos] > last)
			return 0;
		struct hc_phys p;
		leaf_get(l, pos, &p);
		int r = fn(arg, l->key[pos], &p);
		if (r)
			return r;
		pos++;
	}
}

int hc_imap_next(const struct hc_imap *m, uint64_t from, uint64_t *lblk, struct hc_phys *p)
{
	if (!m->root || from > HC_IMAP_LBLK_MAX)
		return -ENOENT;
	struct path pa;
	descend(m, (uint32_t)from, &pa);
	unsigned pos = leaf_lower(pa.leaf, (uint32_t)from);
	if (pos == pa.leaf->n) {
		if (!path_next(m, &pa))
			return -ENOENT;
		pos = 0;
	}
	*lblk = pa.leaf->key[pos];
	leaf_get(pa.leaf, pos, p);
	return 0;
}

/*
 * Checks the subtree: keys in [lo, hi] (hi inclusive), sorted, nodes
 * non-empty.  Adds its entries to *n and its node bytes to *bytes.
 */
static int check_node(const void *node, int levels_below, uint64_t lo, uint64_t hi, int lo_open,
		      uint64_t *n, size_t *bytes, int is_root)
{
	if (levels_below == 0) {
		const struct leaf *l = node;
		*bytes += LEAF_BYTES(l->cap);
		if (l->n == 0 || l->n > l->cap || l->cap > LEAF_CAP ||
		    (!is_root && l->cap != LEAF_CAP))
			return -HC_ECORRUPT;
		for (unsigned i = 0; i < l->n; i++) {
			if ((!lo_open && l->key[i] < lo) || l->key[i] > hi)
				return -HC_ECORRUPT;
			if (i && l->key[i] <= l->key[i - 1])
				return -HC_ECORRUPT;
			struct hc_phys p;
			leaf_get(l, i, &p);
			if (!hc_phys_valid(&p))
				return -HC_ECORRUPT;
		}
		*n += l->n;
		return 0;
	}
	const struct inner *in = node;
	*bytes += INNER_BYTES(in->cap);
	if (in->n == 0 || in->n > in->cap || in->cap > INNER_CAP || in->cap % 2 ||
	    (!is_root && in->cap != INNER_CAP))
		return -HC_ECORRUPT;
	for (unsigned i = 0; i < in->n; i++) {
		uint64_t clo = i ? in->key[i] : lo;
		if (i && (in->key[i] < lo || (i > 1 && in->key[i] <= in->key[i - 1])))
			return -HC_ECORRUPT;
		uint64_t chi = hi;
		if (i + 1 < in->n) {
			if (in->key[i + 1] == 0)
				return -HC_ECORRUPT;
			chi = in->key[i + 1] - 1;
		}
		int r = check_node(kids(in)[i], levels_below - 1, clo, chi, i ? 0 : lo_open, n,
				   bytes, 0);
		if (r)
			return r;
	}
	return 0;
}

int hc_imap_check(const struct hc_imap *m)
{
	uint64_t n = 0;
	size_t bytes = 0;
	if (m->root) {
		int r = check_node(m->root, m->height, 0, UINT64_MAX, 1, &n, &bytes, 1);
		if (r)
			return r;
		if (m->height > 0 && ((const struct inner *)m->root)->n < 2)
			return -HC_ECORRUPT;
	} else if (m->height != 0) {
		return -HC_ECORRUPT;
	}
	if (n != m->count || bytes != m->bytes)
		return -HC_ECORRUPT;
	return 0;
}
