// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * hc-swaphog: the memory-hungry process of the swap tests, demo and bench.
 * It maps SIZE bytes of anonymous memory and touches every page PASSES
 * times.  Each pass first verifies what the previous pass wrote into the
 * page (so every page that went to swap and came back is checked) and then
 * writes new contents derived from (seed, page, pass).  Run it in a memory
 * cgroup smaller than SIZE and the kernel must swap it.
 *
 * Exit status: 0 all verified, 1 a page came back wrong (the first bad page
 * is printed), 2 usage or setup error.  The last line is machine-readable:
 *   swaphog size=BYTES passes=N seconds=S pages=P verified=P
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "util.h"

#define PAGE 4096u
#define WORDS (PAGE / sizeof(uint64_t))

/* Word w of page p after pass k: cheap to make, different for every (p, k). */
static inline uint64_t word(uint64_t seed, uint64_t p, unsigned k, unsigned w)
{
	uint64_t base = hc_mix64(seed ^ (p << 8) ^ k);
	return base + w * 0x9E3779B97F4A7C15ull;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: hc-swaphog [-p PASSES] [-s SEED] [-q] SIZE\n"
		   "  Touches SIZE bytes (K/M/G suffixes) of anonymous memory PASSES times\n"
		   "  (default 3), verifying each page's contents from the previous pass.\n");
}

int main(int argc, char **argv)
{
	unsigned passes = 3;
	uint64_t seed = 1;
	int quiet = 0, c;
	while ((c = getopt(argc, argv, "p:s:qh")) != -1) {
		switch (c) {
		case 'p':
			passes = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 's':
			seed = strtoull(optarg, NULL, 0);
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
	uint64_t size;
	if (optind + 1 != argc || hc_parse_size(argv[optind], &size) || size < PAGE ||
	    passes < 1) {
		usage(stderr);
		return 2;
	}
	uint64_t npages = size / PAGE;
	size = npages * PAGE;
	uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		fprintf(stderr, "hc-swaphog: mmap of %llu bytes: %s\n", (unsigned long long)size,
			strerror(errno));
		return 2;
	}
	/* Transparent huge pages would swap as 4k pages anyway; keep it plain. */
	madvise(mem, size, MADV_NOHUGEPAGE);

	uint64_t t0 = hc_now_ns(), verified = 0;
	for (unsigned k = 0; k < passes; k++) {
		uint64_t tp = hc_now_ns();
		for (uint64_t p = 0; p < npages; p++) {
			uint64_t *pg = (uint64_t *)(mem + p * PAGE);
			if (k > 0) {
				for (unsigned w = 0; w < WORDS; w++) {
					if (pg[w] != word(seed, p, k - 1, w)) {
						fprintf(stderr,
							"hc-swaphog: pass %u: page %llu word %u is %#llx, "
							"expected %#llx\n",
							k + 1, (unsigned long long)p, w,
							(unsigned long long)pg[w],
							(unsigned long long)word(seed, p, k - 1, w));
						return 1;
					}
				}
				verified++;
			}
			for (unsigned w = 0; w < WORDS; w++)
				pg[w] = word(seed, p, k, w);
		}
		if (!quiet)
			fprintf(stderr, "hc-swaphog: pass %u/%u: %.2f s\n", k + 1, passes,
				(double)(hc_now_ns() - tp) / 1e9);
	}
	/* The last pass's contents are checked too. */
	for (uint64_t p = 0; p < npages; p++) {
		uint64_t *pg = (uint64_t *)(mem + p * PAGE);
		for (unsigned w = 0; w < WORDS; w++)
			if (pg[w] != word(seed, p, passes - 1, w)) {
				fprintf(stderr, "hc-swaphog: final check: page %llu is wrong\n",
					(unsigned long long)p);
				return 1;
			}
		verified++;
	}
	double secs = (double)(hc_now_ns() - t0) / 1e9;
	printf("swaphog size=%llu passes=%u seconds=%.3f pages=%llu verified=%llu\n",
	       (unsigned long long)size, passes, secs, (unsigned long long)npages,
	       (unsigned long long)verified);
	munmap(mem, size);
	return 0;
}
