// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hc-memload: the deterministic memory workload of the miss-ratio-curve
 * validation (bench/mrc-validate.sh, tests/integration/mrc_validate.sh).
 * It maps SIZE bytes of private anonymous memory, writes every page once,
 * then makes N page accesses whose order depends only on the options and
 * the seed: a hot set, sequential scans and a Zipf distribution ("mix"), or
 * one of them alone.  Run it in a memory cgroup smaller than SIZE and the
 * kernel swaps; the page faults it takes are the swap-ins the daemon serves.
 *
 * Every access first verifies the page's previous contents and then, for a
 * fraction W of the accesses (default all), writes new contents.  Writing
 * matters for the validation: a page swapped in and only read stays in the
 * swap cache with its slot and is later dropped clean, an eviction the
 * daemon never hears of; a page written after its swap-in is dirty, and its
 * next eviction is a swap write.  The verify comes first, so a swap-in is a
 * read fault and the kernel keeps the slot (the eviction rewrites the same
 * block); --write-fault touches the page with a locked add of 0 first, a
 * write fault, which frees the slot (the eviction takes another block).
 *
 * Limits: the page contents are derived from (seed, page, version) with a
 * one-byte version per page kept in a separate array (SIZE/4096 bytes, in
 * the same cgroup, printed as meta_bytes), so a page that came back 256
 * versions stale would pass.  The access order is deterministic, the
 * kernel's reclaim is not: two runs at one limit fault almost, not exactly,
 * alike.
 *
 * Exit status: 0 all verified, 1 a page came back wrong (one line names it),
 * 2 usage or setup error.  The last line of stdout is machine-readable:
 *   memload size=B pages=P accesses=N writes=W seconds=S minflt=F majflt=F
 *   meta_bytes=B
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "util.h"

#define PAGE 4096u
#define WORDS (PAGE / sizeof(uint64_t))
/* Accesses per segment of one kind in the mix (a scan burst is one segment). */
#define SEGMENT 64u

enum pattern { PAT_MIX, PAT_HOT, PAT_SCAN, PAT_ZIPF };

struct load {
	uint64_t seed;
	uint64_t npages;
	uint64_t nhot;		/* hot set: the first nhot pages of the hot permutation */
	uint8_t *mem;
	uint8_t *version;	/* one byte per page: how often it was written */
	uint64_t rng;		/* splitmix64 state of the access stream */
	uint64_t scan_pos;	/* next page of the sequential scan */
	/* Zipf over npages ranks (Gray et al., as YCSB's ZipfianGenerator) */
	double theta, alpha, zetan, eta;
	/* rank -> page: p = (rank * mul + add) mod npages, mul coprime to npages */
	uint64_t zmul, zadd, hmul, hadd;
};

/* Word w of page p at version v: cheap to make, different for every (p, v). */
static inline uint64_t word(uint64_t seed, uint64_t p, unsigned v, unsigned w)
{
	uint64_t base = hc_mix64(seed ^ (p << 8) ^ v);
	return base + w * 0x9E3779B97F4A7C15ull;
}

static inline uint64_t next_u64(struct load *l)
{
	l->rng += 0x9E3779B97F4A7C15ull;
	return hc_mix64(l->rng);
}

/* Uniform in [0, 1) with 53 bits. */
static inline double next_unit(struct load *l)
{
	return (double)(next_u64(l) >> 11) * (1.0 / 9007199254740992.0);
}

static uint64_t gcd(uint64_t a, uint64_t b)
{
	while (b) {
		uint64_t t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* A multiplier coprime to n, derived from h: a cheap fixed permutation. */
static uint64_t coprime(uint64_t h, uint64_t n)
{
	if (n <= 2)
		return 1;
	uint64_t m = h % n;
	if (m < 2)
		m = 2;
	while (gcd(m, n) != 1)
		m = m + 1 < n ? m + 1 : 2;
	return m;
}

static inline uint64_t permute(uint64_t rank, uint64_t mul, uint64_t add, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)rank * mul + add) % n);
}

/*
 * power() without libm (the tools link no -lm): exp(e * ln b) from the bits of
 * the double and short series, good to about 1e-15 relative, and the same on
 * every machine, which is what the access order needs.
 */
static double ln(double x)
{
	uint64_t bits;
	memcpy(&bits, &x, sizeof(bits));
	int e = (int)((bits >> 52) & 0x7ff) - 1023;
	bits = (bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull;
	double m;
	memcpy(&m, &bits, sizeof(m));
	if (m > 1.4142135623730951) {
		m /= 2;
		e++;
	}
	/* ln m = 2 atanh s, s = (m - 1) / (m + 1), |s| < 0.172 */
	double s = (m - 1) / (m + 1), s2 = s * s, term = s, sum = 0;
	for (unsigned k = 1; k < 40; k += 2) {
		sum += term / k;
		term *= s2;
	}
	return 2 * sum + e * 0.69314718055994530942;
}

static double expo(double y)
{
	if (y < -700)
		return 0;
	double kf = y / 0.69314718055994530942;
	int k = (int)(kf < 0 ? kf - 0.5 : kf + 0.5);
	double r = y - k * 0.69314718055994530942, term = 1, sum = 1;
	for (unsigned i = 1; i < 25; i++) {
		term *= r / i;
		sum += term;
	}
	/* times 2^k, k within [-1010, 1010] here */
	uint64_t bits = (uint64_t)(k + 1023) << 52;
	double two_k;
	memcpy(&two_k, &bits, sizeof(two_k));
	return sum * two_k;
}

static double power(double b, double e)
{
	return b <= 0 ? 0 : expo(e * ln(b));
}

static void zipf_init(struct load *l, double theta)
{
	double zeta2 = 0;
	l->theta = theta;
	l->zetan = 0;
	for (uint64_t i = 1; i <= l->npages; i++) {
		double t = power((double)i, -theta);
		l->zetan += t;
		if (i == 2)
			zeta2 = l->zetan;
	}
	if (l->npages < 2)
		zeta2 = l->zetan;
	l->alpha = 1.0 / (1.0 - theta);
	l->eta = (1.0 - power(2.0 / (double)l->npages, 1.0 - theta)) / (1.0 - zeta2 / l->zetan);
}

static uint64_t zipf_rank(struct load *l)
{
	double u = next_unit(l), uz = u * l->zetan;
	if (uz < 1.0)
		return 0;
	if (uz < 1.0 + power(0.5, l->theta))
		return 1 < l->npages ? 1 : 0;
	uint64_t r = (uint64_t)((double)l->npages * power(l->eta * u - l->eta + 1.0, l->alpha));
	return r < l->npages ? r : l->npages - 1;
}

static uint64_t pick(struct load *l, enum pattern kind)
{
	switch (kind) {
	case PAT_HOT:
		return permute(next_u64(l) % l->nhot, l->hmul, l->hadd, l->npages);
	case PAT_SCAN: {
		uint64_t p = l->scan_pos;
		l->scan_pos = p + 1 < l->npages ? p + 1 : 0;
		return p;
	}
	case PAT_ZIPF:
	default:
		return permute(zipf_rank(l), l->zmul, l->zadd, l->npages);
	}
}

/* Checks page p against its version; 0 or 1 after printing the bad word. */
static int verify(const struct load *l, uint64_t p, uint64_t access)
{
	const uint64_t *pg = (const uint64_t *)(l->mem + p * PAGE);
	unsigned v = l->version[p];
	for (unsigned w = 0; w < WORDS; w++) {
		if (pg[w] != word(l->seed, p, v, w)) {
			fprintf(stderr,
				"hc-memload: access %llu: page %llu word %u is %#llx, expected "
				"%#llx (version %u)\n",
				(unsigned long long)access, (unsigned long long)p, w,
				(unsigned long long)pg[w],
				(unsigned long long)word(l->seed, p, v, w), v);
			return 1;
		}
	}
	return 0;
}

static void fill(struct load *l, uint64_t p)
{
	uint64_t *pg = (uint64_t *)(l->mem + p * PAGE);
	unsigned v = l->version[p];
	for (unsigned w = 0; w < WORDS; w++)
		pg[w] = word(l->seed, p, v, w);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hc-memload --size SIZE --accesses N [--pattern mix|hot|scan|zipf]\n"
		"                  [--hot-frac F] [--zipf-theta T] [--seed S] [--write-frac W]\n"
		"                  [--write-fault] [-q]\n"
		"  Maps SIZE bytes (K/M/G suffixes) of anonymous memory, writes every page,\n"
		"  then makes N page accesses (verify, then write new contents) in an order\n"
		"  fixed by the pattern and the seed.  mix: segments of %u accesses, half\n"
		"  uniform over the hot set (F of the pages, default 0.1), 3/10 Zipf over\n"
		"  all pages (theta T, default 0.99), 1/5 sequential scan bursts.\n"
		"  W (default 1): fraction of accesses that write; the rest only verify.\n"
		"  --write-fault: touch each page with a locked add of 0 before verifying it,\n"
		"  so a swap-in is a write fault (the kernel frees the slot) not a read fault.\n",
		SEGMENT);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "size", required_argument, NULL, 'S' },
		{ "accesses", required_argument, NULL, 'n' },
		{ "pattern", required_argument, NULL, 'p' },
		{ "hot-frac", required_argument, NULL, 'H' },
		{ "zipf-theta", required_argument, NULL, 'z' },
		{ "seed", required_argument, NULL, 's' },
		{ "write-frac", required_argument, NULL, 'w' },
		{ "write-fault", no_argument, NULL, 'W' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t size = 0, accesses = 0, seed = 1;
	double hot_frac = 0.1, theta = 0.99, write_frac = 1.0;
	enum pattern pat = PAT_MIX;
	int quiet = 0, write_fault = 0, c;
	char *end;

	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			if (hc_parse_size(optarg, &size)) {
				fprintf(stderr, "hc-memload: bad --size %s\n", optarg);
				return 2;
			}
			break;
		case 'n':
			errno = 0;
			accesses = strtoull(optarg, &end, 0);
			if (errno || *end || end == optarg) {
				fprintf(stderr, "hc-memload: bad --accesses %s\n", optarg);
				return 2;
			}
			break;
		case 'p':
			if (!strcmp(optarg, "mix"))
				pat = PAT_MIX;
			else if (!strcmp(optarg, "hot"))
				pat = PAT_HOT;
			else if (!strcmp(optarg, "scan"))
				pat = PAT_SCAN;
			else if (!strcmp(optarg, "zipf"))
				pat = PAT_ZIPF;
			else {
				fprintf(stderr, "hc-memload: unknown --pattern %s\n", optarg);
				return 2;
			}
			break;
		case 'H':
		case 'z':
		case 'w': {
			double d = strtod(optarg, &end);
			if (*end || end == optarg || !(d >= 0.0 && d <= 1.0) ||
			    (c == 'H' && d <= 0.0) || (c == 'z' && (d <= 0.0 || d >= 1.0))) {
				fprintf(stderr, "hc-memload: bad value %s for --%s\n", optarg,
					c == 'H' ? "hot-frac" : c == 'z' ? "zipf-theta" : "write-frac");
				return 2;
			}
			if (c == 'H')
				hot_frac = d;
			else if (c == 'z')
				theta = d;
			else
				write_frac = d;
			break;
		}
		case 's':
			errno = 0;
			seed = strtoull(optarg, &end, 0);
			if (errno || *end || end == optarg) {
				fprintf(stderr, "hc-memload: bad --seed %s\n", optarg);
				return 2;
			}
			break;
		case 'W':
			write_fault = 1;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || size < PAGE) {
		usage(stderr);
		return 2;
	}

	struct load l = { .seed = seed, .npages = size / PAGE };
	size = l.npages * PAGE;
	l.nhot = (uint64_t)(hot_frac * (double)l.npages);
	if (l.nhot < 1)
		l.nhot = 1;
	l.rng = hc_mix64(seed ^ 0x6d656d6c6f6164ull);
	l.hmul = coprime(hc_mix64(seed + 1), l.npages);
	l.hadd = hc_mix64(seed + 2) % l.npages;
	l.zmul = coprime(hc_mix64(seed + 3), l.npages);
	l.zadd = hc_mix64(seed + 4) % l.npages;
	zipf_init(&l, theta);
	/* The write decisions have their own stream: W does not change the order. */
	struct load wr = { .rng = hc_mix64(seed ^ 0x7772697465ull) };
	uint64_t write_cut = write_frac >= 1.0 ? UINT64_MAX : (uint64_t)(write_frac * 18446744073709551616.0);

	l.version = mmap(NULL, l.npages, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	l.mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (l.version == MAP_FAILED || l.mem == MAP_FAILED) {
		fprintf(stderr, "hc-memload: mmap of %llu bytes: %s\n", (unsigned long long)size,
			strerror(errno));
		return 2;
	}
	/* Huge pages (PMD or mTHP) would fault and swap in other units than the 4 KiB blocks the daemon counts. */
	madvise(l.mem, size, MADV_NOHUGEPAGE);
	madvise(l.version, l.npages, MADV_NOHUGEPAGE);

	uint64_t t0 = hc_now_ns();
	for (uint64_t p = 0; p < l.npages; p++)
		fill(&l, p);
	uint64_t t1 = hc_now_ns();
	if (!quiet)
		fprintf(stderr, "hc-memload: %llu pages written in %.2f s\n",
			(unsigned long long)l.npages, (double)(t1 - t0) / 1e9);

	struct rusage r0, r1;
	getrusage(RUSAGE_SELF, &r0);
	uint64_t writes = 0, left = 0;
	enum pattern kind = pat;
	for (uint64_t a = 0; a < accesses; a++) {
		if (pat == PAT_MIX && left == 0) {
			uint64_t r = next_u64(&l) % 10;
			kind = r < 5 ? PAT_HOT : r < 8 ? PAT_ZIPF : PAT_SCAN;
			left = SEGMENT;
		}
		left--;
		uint64_t p = pick(&l, kind);
		if (write_fault) {
			/* A locked add of 0 needs write access: a swapped-out page
			 * comes back through a write fault, which frees its slot. */
			__atomic_fetch_add((uint64_t *)(l.mem + p * PAGE), 0, __ATOMIC_RELAXED);
		}
		if (verify(&l, p, a))
			return 1;
		if (write_cut == UINT64_MAX || next_u64(&wr) < write_cut) {
			l.version[p]++;
			fill(&l, p);
			writes++;
		}
	}
	getrusage(RUSAGE_SELF, &r1);
	double secs = (double)(hc_now_ns() - t1) / 1e9;
	printf("memload size=%llu pages=%llu accesses=%llu writes=%llu seconds=%.3f minflt=%ld "
	       "majflt=%ld meta_bytes=%llu\n",
	       (unsigned long long)size, (unsigned long long)l.npages,
	       (unsigned long long)accesses, (unsigned long long)writes, secs,
	       r1.ru_minflt - r0.ru_minflt, r1.ru_majflt - r0.ru_majflt,
	       (unsigned long long)l.npages);
	munmap(l.mem, size);
	munmap(l.version, l.npages);
	return 0;
}
