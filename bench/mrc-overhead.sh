#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# MRC overhead: what the miss-ratio-curve estimator (cache-fs/mrc.c) costs,
# measured by `hc-mrc bench` on a simulated guest (no mount, no root):
#   - exact mode, ns per event (hc_mrc_evict / hc_mrc_miss) with about
#     MRC_BENCH_TRACKED blocks on the eviction stack (goal <= 1 us), and the
#     estimator's allocation per tracked block; SHARDS 1% on the same stream;
#   - SHARDS fixed size (sample_max MRC_BENCH_SAMPLE_MAX): the estimator's
#     allocation and the process RSS growth while it runs, as the footprint
#     grows 10x and 100x (goal: constant).
# Timings are of the estimator calls only (the events are generated first,
# untimed); the machine's noise shows in them, so run it on a quiet machine.
# Usage: bench/mrc-overhead.sh   (from the repository top; ~1 minute)
# Knobs (environment): HECACHE_BUILDDIR (build tree, default the repository),
# MRC_BENCH_TRACKED (1000000), MRC_BENCH_EVENTS (4000000),
# MRC_BENCH_FOOTPRINTS (100000,1000000,10000000), MRC_BENCH_SAMPLE_MAX (8192),
# BENCH_OUT (bench/out: the table is also saved there as mrc-overhead.txt).
set -uo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${HECACHE_BUILDDIR:-$TOP}
MRC=$BUILD/tools/hc-mrc
OUT=${BENCH_OUT:-$TOP/bench/out}

if [ ! -x "$MRC" ]; then
	echo "mrc-overhead: no $MRC; build it first (in a build tree:" \
		"make tools/hc-mrc) and set HECACHE_BUILDDIR" >&2
	exit 1
fi
mkdir -p "$OUT" || exit 1

{
	echo "# hc-mrc bench on $(uname -n), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)," \
		"$(date -u +%FT%TZ)"
	"$MRC" bench \
		--tracked "${MRC_BENCH_TRACKED:-1000000}" \
		--events "${MRC_BENCH_EVENTS:-4000000}" \
		--footprints "${MRC_BENCH_FOOTPRINTS:-100000,1000000,10000000}" \
		--sample-max "${MRC_BENCH_SAMPLE_MAX:-8192}"
} | tee "$OUT/mrc-overhead.txt"
exit "${PIPESTATUS[0]}"
