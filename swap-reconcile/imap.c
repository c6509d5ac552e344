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
 * order for free, and a lookup is 2-3 binary searches in nodes that fit in a
 * few cache lines.  Leaves split in half, except that an insert past the
 * last key of the rightmost-so-far leaf starts a new leaf, so the common
 * case -- runs of consecutive blocks (copy_file_range, a checkpoint load) --
 * packs leaves full.
 *
 * Layout.  A leaf holds up to LEAF_CAP sorted keys and, in parallel arrays,
 * the 72-bit physical address split as file (32 bits) + block (32 + 8
 * bits): 17 bytes per slot, 2048 bytes per leaf.  Measured (check_imap):
 * 25 bytes per entry for a million random inserts (leaves ~70% full), 17.3
 * for sequential ones, inner nodes included.  An inner node holds up to
 * INNER_CAP children and their lower-bound keys; key[0] is never compared
 * (the parent's bound applies), so removing child 0 needs no key fix-up.
 *
 * Deletion.  A leaf that falls under 3/8 full is merged with a sibling when
 * both fit in 7/8 of a leaf, else the two share their entries evenly; an
 * empty node is unlinked, and a root with one child is replaced by it.
 * Inner nodes are not rebalanced (they are under 1% of the memory).
 * Measured: deleting a random half of a million random entries leaves
 * ~34 bytes per remaining entry; the floor after adversarial deletes is a
 * 3/8-full leaf, ~46 bytes per entry.
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

#define LEAF_CAP 120
#define LEAF_MIN (LEAF_CAP * 3 / 8)	/* a leaf under this merges or borrows */
#define LEAF_MERGE (LEAF_CAP * 7 / 8)	/* ... merges when both fit in this */
#define INNER_CAP 64
#define MAX_HEIGHT 24	/* inner levels; 64^k growth makes ~12 unreachable */

struct leaf {
	uint32_t n;
	uint32_t pad;
	uint64_t key[LEAF_CAP];
	uint32_t file[LEAF_CAP];
	uint32_t blo[LEAF_CAP];		/* block bits 0-31 */
	uint8_t bhi[LEAF_CAP];		/* block bits 32-39 */
};

struct inner {
	uint32_t n;
	uint32_t pad;
	uint64_t key[INNER_CAP];	/* lower bound of child[i]; key[0] unused */
	void *child[INNER_CAP];
};

_Static_assert(sizeof(struct leaf) <= 2048, "leaf grew");

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
			free_node(in->child[i], levels_below - 1);
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
	p->file = l->file[i];
	p->block = (uint64_t)l->blo[i] | (uint64_t)l->bhi[i] << 32;
}

static inline void leaf_put(struct leaf *l, unsigned i, uint64_t key, const struct hc_phys *p)
{
	l->key[i] = key;
	l->file[i] = p->file;
	l->blo[i] = (uint32_t)p->block;
	l->bhi[i] = (uint8_t)(p->block >> 32);
}

/* Moves n slots from src[s] to dst[d] (regions may overlap). */
static void leaf_move(struct leaf *dst, unsigned d, struct leaf *src, unsigned s, unsigned n)
{
	memmove(&dst->key[d], &src->key[s], n * sizeof(dst->key[0]));
	memmove(&dst->file[d], &src->file[s], n * sizeof(dst->file[0]));
	memmove(&dst->blo[d], &src->blo[s], n * sizeof(dst->blo[0]));
	memmove(&dst->bhi[d], &src->bhi[s], n * sizeof(dst->bhi[0]));
}

/* First index in l whose key is >= key (l->n when none). */
static unsigned leaf_lower(const struct leaf *l, uint64_t key)
{
	unsigned lo = 0, hi = l->n;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (l->key[mid] < key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* The child whose range holds key: the last i with i == 0 or key[i] <= key. */
static unsigned inner_pick(const struct inner *in, uint64_t key)
{
	unsigned lo = 1, hi = in->n;
	while (lo < hi) {
		unsigned mid = (lo + hi) / 2;
		if (in->key[mid] <= key)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo - 1;
}

static void descend(const struct hc_imap *m, uint64_t key, struct path *pa)
{
	void *node = m->root;
	for (int d = 0; d < m->height; d++) {
		struct inner *in = node;
		unsigned i = inner_pick(in, key);
		pa->node[d] = in;
		pa->idx[d] = i;
		node = in->child[i];
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
	void *node = pa->node[d]->child[pa->idx[d]];
	for (d++; d < m->height; d++) {
		pa->node[d] = node;
		pa->idx[d] = 0;
		node = ((struct inner *)node)->child[0];
	}
	pa->leaf = node;
	return 1;
}

int hc_imap_lookup(const struct hc_imap *m, uint64_t lblk, struct hc_phys *out)
{
	const void *node = m->root;
	if (!node)
		return -ENOENT;
	for (int d = 0; d < m->height; d++) {
		const struct inner *in = node;
		node = in->child[inner_pick(in, lblk)];
	}
	const struct leaf *l = node;
	unsigned i = leaf_lower(l, lblk);
	if (i >= l->n || l->key[i] != lblk)
		return -ENOENT;
	leaf_get(l, i, out);
	return 0;
}

static void *node_alloc(struct hc_imap *m, size_t size)
{
	void *p = malloc(size);
	if (p) {
		((struct inner *)p)->n = 0;	/* n is first in both kinds */
		m->bytes += size;
	}
	return p;
}

static void node_free(struct hc_imap *m, void *p, int is_leaf)
{
	m->bytes -= is_leaf ? sizeof(struct leaf) : sizeof(struct inner);
	free(p);
}

/* Inserts (key, child) at position pos of in, which has room. */
static void inner_insert(struct inner *in, unsigned pos, uint64_t key, void *child)
{
	memmove(&in->key[pos + 1], &in->key[pos], (in->n - pos) * sizeof(in->key[0]));
	memmove(&in->child[pos + 1], &in->child[pos], (in->n - pos) * sizeof(in->child[0]));
	in->key[pos] = key;
	in->child[pos] = child;
	in->n++;
}

int hc_imap_set(struct hc_imap *m, uint64_t lblk, const struct hc_phys *p, struct hc_phys *old)
{
	if (!hc_phys_valid(p))
		return -EINVAL;
	if (!m->root) {
		struct leaf *l = node_alloc(m, sizeof(*l));
		if (!l)
			return -ENOMEM;
		leaf_put(l, 0, lblk, p);
		l->n = 1;
		m->root = l;
		m->height = 0;
		m->count = 1;
		return 0;
	}
	struct path pa;
	descend(m, lblk, &pa);
	struct leaf *l = pa.leaf;
	unsigned pos = leaf_lower(l, lblk);
	if (pos < l->n && l->key[pos] == lblk) {
		if (old)
			leaf_get(l, pos, old);
		leaf_put(l, pos, lblk, p);
		return 1;
	}
	if (l->n < LEAF_CAP) {
		leaf_move(l, pos + 1, l, pos, l->n - pos);
		leaf_put(l, pos, lblk, p);
		l->n++;
		m->count++;
		return 0;
	}

	/* Splits: allocate every node needed first, so failure changes nothing. */
	int full = 0;	/* full inner levels right above the leaf */
	while (full < m->height && pa.node[m->height - 1 - full]->n == INNER_CAP)
		full++;
	int ninner = full + (full == m->height);	/* + a new root */
	if (m->height + (full == m->height) > MAX_HEIGHT)
		return -ENOMEM;
	struct leaf *nl = node_alloc(m, sizeof(*nl));
	struct inner *spare[MAX_HEIGHT + 1];
	int got = 0;
	if (nl) {
		for (; got < ninner; got++) {
			spare[got] = node_alloc(m, sizeof(struct inner));
			if (!spare[got])
				break;
		}
	}
	if (!nl || got < ninner) {
		while (got > 0)
			node_free(m, spare[--got], 0);
		if (nl)
			node_free(m, nl, 1);
		return -ENOMEM;
	}

	/* Split the leaf: append past the end starts a fresh leaf. */
	if (pos == LEAF_CAP) {
		leaf_put(nl, 0, lblk, p);
		nl->n = 1;
	} else {
		unsigned half = LEAF_CAP / 2;
		leaf_move(nl, 0, l, half, LEAF_CAP - half);
		nl->n = LEAF_CAP - half;
		l->n = half;
		struct leaf *t = pos <= half ? l : nl;
		unsigned tp = pos <= half ? pos : pos - half;
		leaf_move(t, tp + 1, t, tp, t->n - tp);
		leaf_put(t, tp, lblk, p);
		t->n++;
	}
	m->count++;

	/* Push (sep, right) up, splitting full inner nodes on the way. */
	uint64_t sep = nl->key[0];
	void *right = nl;
	int used = 0;
	for (int d = m->height - 1; d >= 0; d--) {
		struct inner *in = pa.node[d];
		unsigned at = pa.idx[d] + 1;
		if (in->n < INNER_CAP) {
			inner_insert(in, at, sep, right);
			return 0;
		}
		struct inner *ni = spare[used++];
		if (at == INNER_CAP) {
			ni->key[0] = sep;
			ni->child[0] = right;
			ni->n = 1;
		} else {
			unsigned half = INNER_CAP / 2;
			memcpy(ni->key, &in->key[half], (INNER_CAP - half) * sizeof(in->key[0]));
			memcpy(ni->child, &in->child[half], (INNER_CAP - half) * sizeof(in->child[0]));
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
	struct inner *root = spare[used++];
	root->key[0] = 0;
	root->child[0] = m->root;
	root->key[1] = sep;
	root->child[1] = right;
	root->n = 2;
	m->root = root;
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
	node_free(m, in->child[idx], d == m->height - 1);
	memmove(&in->key[idx], &in->key[idx + 1], (in->n - idx - 1) * sizeof(in->key[0]));
	memmove(&in->child[idx], &in->child[idx + 1], (in->n - idx - 1) * sizeof(in->child[0]));
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
		m->root = r->child[0];
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
	struct leaf *a = in->child[li], *b = in->child[li + 1];
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
	if (!m->root)
		return -ENOENT;
	struct path pa;
	descend(m, lblk, &pa);
	struct leaf *l = pa.leaf;
	unsigned i = leaf_lower(l, lblk);
	if (i >= l->n || l->key[i] != lblk)
		return -ENOENT;
	if (old)
		leaf_get(l, i, old);
	leaf_move(l, i, l, i + 1, l->n - i - 1);
	l->n--;
	m->count--;
	fix_leaf(m, &pa);
	return 0;
}

/* Last block of [first, first + count); count UINT64_MAX means "to the end". */
static uint64_t range_last(uint64_t first, uint64_t count)
{
	if (count == UINT64_MAX || count - 1 > UINT64_MAX - first)
		return UINT64_MAX;
	return first + count - 1;
}

uint64_t hc_imap_clear_range(struct hc_imap *m, uint64_t first, uint64_t count, hc_imap_fn fn,
			     void *arg)
{
	if (count == 0)
		return 0;
	uint64_t last = range_last(first, count), dropped = 0;
	while (m->root) {
		struct path pa;
		descend(m, first, &pa);
		unsigned pos = leaf_lower(pa.leaf, first);
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
		uint64_t next = l->key[end - 1] + 1;
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
	if (!m->root || count == 0)
		return 0;
	uint64_t last = range_last(first, count);
	struct path pa;
	descend(m, first, &pa);
	unsigned pos = leaf_lower(pa.leaf, first);
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
	if (!m->root)
		return -ENOENT;
	struct path pa;
	descend(m, from, &pa);
	unsigned pos = leaf_lower(pa.leaf, from);
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
		      uint64_t *n, size_t *bytes)
{
	if (levels_below == 0) {
		const struct leaf *l = node;
		*bytes += sizeof(*l);
		if (l->n == 0 || l->n > LEAF_CAP)
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
	*bytes += sizeof(*in);
	if (in->n == 0 || in->n > INNER_CAP)
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
		int r = check_node(in->child[i], levels_below - 1, clo, chi, i ? 0 : lo_open, n,
				   bytes);
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
		int r = check_node(m->root, m->height, 0, UINT64_MAX, 1, &n, &bytes);
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
