#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Miss-ratio-curve validation (issue 4): does the daemon's curve, made from
# one run, predict the swap-ins of runs with more memory?
#
#   1. mount hecache-fs, a swap volume vm1/swap on a loop device in direct
#      I/O mode, vm.page-cluster=0 (no swap readahead: one swap-in, one read);
#   2. run hc-memload in a memory cgroup at limit M0 (hectl mrc-reset before),
#      then read the predicted curve: hectl -m MNT mrc vm1 --json --step STEP;
#   3. run the same workload at M0 + k*STEP, k = 1..K (an empty swap area
#      for every run: swapoff/swapon) and count the swap-in reads the daemon
#      served in domain vm1 (hits + misses);
#   4. print size / predicted / measured / relative error, the mean relative
#      error over sizes with at least MRC_MIN_MISSES measured misses (k >= 1:
#      k = 0 is the run the curve came from), and write a CSV.
# Without a working `hectl mrc` it prints the measured values only.
# Usage (root, from the repository top): sudo bench/mrc-validate.sh
# Knobs (environment): see bench/README.md, "MRC validation".  Exit status:
# 0 done (and, with MRC_MAX_ERR set, mean error within it), 1 error or
# mean error above MRC_MAX_ERR, 2 bad knobs.
set -uo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$TOP/bench/lib.sh"

BUILD=${HC_BUILD:-${HECACHE_BUILDDIR:-$TOP}}
SIZE=${MRC_SIZE:-256M}			# hc-memload --size
ACCESSES=${MRC_ACCESSES:-600000}	# hc-memload --accesses
PATTERN=${MRC_PATTERN:-mix}
HOT_FRAC=${MRC_HOT_FRAC:-0.1}
SEED=${MRC_SEED:-1}
MEMLOAD_OPTS=${MRC_MEMLOAD_OPTS:-}	# more hc-memload options (e.g. --write-fault)
M0=${MRC_M0:-128M}			# the cgroup limit of the predicting run
STEP=${MRC_STEP:-16M}
K=${MRC_K:-4}
REPEATS=${MRC_REPEATS:-1}		# runs per size (the curve comes from M0's first)
RETRIES=${MRC_RETRIES:-2}		# reruns of a run someone else's swapping disturbed
PAGE_CLUSTER=${MRC_PAGE_CLUSTER:-0}	# vm.page-cluster during the runs ("keep": untouched)
SWAPPINESS=${MRC_SWAPPINESS:-100}	# the cgroup's memory.swappiness (v1)
SWAP_SIZE=${MRC_SWAP_SIZE:-}		# default 4 x SIZE: stays under half full (see README)
CACHE=${MRC_CACHE:-}			# daemon -o cache=, default SIZE
DISCARD=${MRC_DISCARD:-0}		# 1: swapon --discard=pages
MIN_MISSES=${MRC_MIN_MISSES:-1000}
MAX_ERR=${MRC_MAX_ERR:-}		# fail (exit 1) when the mean error is above this
RUN_TIMEOUT=${MRC_RUN_TIMEOUT:-600}
BASE=${MRC_DIR:-/var/tmp}
OUT=${MRC_OUT:-$TOP/bench/out/mrc}
TRACE=${MRC_TRACE:-0}			# 1: record the M0 run's swap bios (tracefs) in OUT/trace-0-1.txt; all: every run's

bad() { printf 'mrc-validate: %s\n' "$*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || bad "run as root"
for v in SIZE M0 STEP; do
	b=$(b_bytes "${!v}") && [ "$b" -ge 1048576 ] || bad "MRC_$v=${!v}: want a size of at least 1M"
	printf -v "${v}_B" '%s' "$b"
done
SWAP_SIZE_B=$(b_bytes "${SWAP_SIZE:-$((SIZE_B * 4))}") || bad "MRC_SWAP_SIZE=$SWAP_SIZE"
CACHE=${CACHE:-$((SIZE_B / 1048576))M}
for v in ACCESSES K REPEATS RETRIES MIN_MISSES RUN_TIMEOUT; do
	[[ "${!v}" =~ ^[0-9]+$ ]] || bad "MRC_$v=${!v}: want a number"
done
[ "$REPEATS" -ge 1 ] || bad "MRC_REPEATS must be at least 1"
[[ "$PAGE_CLUSTER" =~ ^([0-9]+|keep)$ ]] || bad "MRC_PAGE_CLUSTER: a number or keep"
[ $((SWAP_SIZE_B)) -ge $((SIZE_B * 2)) ] || bad "MRC_SWAP_SIZE must be at least 2 x MRC_SIZE"

HCFS=$BUILD/cache-fs/hecache-fs
MEMLOAD=$BUILD/tools/hc-memload
HECTL=$BUILD/tools/hectl
[ -x "$HCFS" ] && [ -x "$MEMLOAD" ] ||
	b_die "no $HCFS or $MEMLOAD: build first (HC_BUILD=builddir)"
for t in losetup mkswap swapon swapoff getfattr jq timeout; do
	command -v $t >/dev/null || b_die "$t is not installed"
done
[ "$(b_cgroup_version)" != 0 ] || b_die "no memory cgroup controller"

# ------------------------------------------------------------ setup, cleanup
PC_SAVED=""
TR_INST=""	# our tracefs instance
TR_PID=""	# its reader
trace_stop() {
	if [ -n "$TR_PID" ]; then
		kill "$TR_PID" 2>/dev/null
		wait "$TR_PID" 2>/dev/null
		TR_PID=""
	fi
	if [ -n "$TR_INST" ] && [ -d "$TR_INST" ]; then
		echo 0 >"$TR_INST/events/block/block_bio_queue/enable"
		rmdir "$TR_INST" || echo "mrc-validate: cannot remove $TR_INST" >&2
	fi
	TR_INST=""
}
restore_knobs() {
	trace_stop
	if [ -n "$PC_SAVED" ]; then
		sysctl -q -w vm.page-cluster="$PC_SAVED" || echo "mrc-validate: cannot restore vm.page-cluster=$PC_SAVED" >&2
		PC_SAVED=""
	fi
}
cleanup() {
	local rc=$?
	# b_cleanup stops the workload, then swap, loop, mount, daemon, and exits
	restore_knobs
	(exit "$rc")
	b_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT" || b_die "cannot create $OUT"
B_SCRATCH=$(mktemp -d "$BASE/hc-mrc.XXXXXX") || b_die "mktemp in $BASE failed"
BACK=$B_SCRATCH/backing
MNT=$B_SCRATCH/mnt
LOG=$B_SCRATCH/daemon.log
CSV=$OUT/mrc-validate.csv

if [ "$PAGE_CLUSTER" != keep ]; then
	PC_SAVED=$(sysctl -n vm.page-cluster) || b_die "cannot read vm.page-cluster"
	sysctl -q -w vm.page-cluster="$PAGE_CLUSTER" || b_die "cannot set vm.page-cluster"
fi
LRU_GEN=$(cat /sys/kernel/mm/lru_gen/enabled 2>/dev/null || echo absent)
others=$(awk 'NR > 1 { print $1 }' /proc/swaps | tr '\n' ' ')

mkdir -p "$BACK" || b_die "mkdir $BACK failed"
b_start_fuse hecache-fs "$MNT" "$LOG" "$HCFS" "$BACK" "$MNT" -f -o cache="$CACHE" ||
	b_die "$B_ERR"
mkdir "$MNT/vm1" || b_die "mkdir $MNT/vm1 failed"
fallocate -l "$SWAP_SIZE_B" "$MNT/vm1/swap" || b_die "fallocate of vm1/swap failed"
DEV=$(losetup --direct-io=on --find --show "$MNT/vm1/swap") || b_die "losetup failed"
B_LOOPS+=("$DEV")
[ "$(cat "/sys/block/${DEV#/dev/}/loop/dio")" = 1 ] || b_die "$DEV is not in direct I/O mode"
mkswap "$DEV" >/dev/null || b_die "mkswap $DEV failed"

HAVE_MRC=0
if [ -x "$HECTL" ] && "$HECTL" -m "$MNT" mrc vm1 --json >"$B_SCRATCH/probe.json" 2>&1 &&
	jq -e '.curve' "$B_SCRATCH/probe.json" >/dev/null 2>&1; then
	HAVE_MRC=1
fi

# dstat DOMAIN KEY: one of the daemon's counters (blocks)
dstat() {
	getfattr --only-values -n user.hecache.stats "$MNT" 2>/dev/null |
		awk -v d="$1" -v k="$2" '
			$1 == "domain" && $2 == d { for (i = 3; i < NF; i += 2) if ($i == k) print $(i + 1) }'
}
vmstat() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
cgstat() { awk -v k="$2" '$1 == k { print $2 }' "$1/memory.stat" 2>/dev/null; }

b_log "kernel $(uname -r); vm.page-cluster $(sysctl -n vm.page-cluster) (was ${PC_SAVED:-kept});" \
	"lru_gen $LRU_GEN; other swap areas: ${others:-none}"
b_log "hc-memload --size $SIZE --accesses $ACCESSES --pattern $PATTERN --hot-frac $HOT_FRAC" \
	"--seed $SEED $MEMLOAD_OPTS; M0 $M0 step $STEP K $K repeats $REPEATS;" \
	"swap $((SWAP_SIZE_B >> 20)) MiB on $DEV; cache=$CACHE; mrc: $([ $HAVE_MRC = 1 ] && echo yes || echo 'NOT AVAILABLE (measured values only)')"

# trace_start FILE: the bios queued on our loop device (the swap-outs and
# swap-ins the daemon is sent) into FILE, through a tracefs instance of our
# own (the global buffer is left alone).
trace_start() {
	local t=/sys/kernel/tracing mm
	[ -d $t/instances ] || t=/sys/kernel/debug/tracing
	TR_INST=$t/instances/hc-mrc-$$
	mkdir "$TR_INST" || b_die "cannot make the tracefs instance $TR_INST"
	echo 65536 >"$TR_INST/buffer_size_kb"
	mm=$(($(stat -c '0x%t' "$DEV") << 20 | $(stat -c '0x%T' "$DEV")))
	echo "dev == $mm" >"$TR_INST/events/block/block_bio_queue/filter"
	echo 1 >"$TR_INST/events/block/block_bio_queue/enable"
	cat "$TR_INST/trace_pipe" >"$1" &
	TR_PID=$!
}

# run_one LIMIT_BYTES TAG [reset]: one workload run on an empty swap area.
# Sets R_READS (daemon hits + misses in vm1), R_MISSES, R_HITS, R_ADM
# (admissions), R_PSWPIN, R_PSWPOUT (machine-wide), R_MAJFLT (the cgroup's),
# R_LINE (hc-memload's last line).
run_one() {
	local limit=$1 tag=$2 reset=${3:-} cg rc=0 sw=(-p 32767)
	[ "$DISCARD" = 1 ] && sw+=(--discard=pages)
	swapon "${sw[@]}" "$DEV" || b_die "swapon $DEV failed"
	B_SWAPS+=("$DEV")
	if [ -n "$reset" ] && [ "$HAVE_MRC" = 1 ]; then
		"$HECTL" -m "$MNT" mrc-reset vm1 >/dev/null || b_die "hectl mrc-reset vm1 failed"
	fi
	b_cgroup_create "hc-mrc-$$-$tag" "$limit" >"$B_SCRATCH/cg" || b_die "cannot create a cgroup"
	cg=$(cat "$B_SCRATCH/cg")
	[ -f "$cg/memory.swappiness" ] && echo "$SWAPPINESS" >"$cg/memory.swappiness"
	local h0 m0 a0 i0 o0
	local traced=""
	if [ "$TRACE" = all ] || { [ "$TRACE" = 1 ] && [ -n "$reset" ]; }; then
		traced=1
		trace_start "$OUT/trace-$tag.txt"
	fi
	h0=$(dstat vm1 hits) m0=$(dstat vm1 misses) a0=$(dstat vm1 admissions)
	i0=$(vmstat pswpin) o0=$(vmstat pswpout)
	# shellcheck disable=SC2086
	b_run hc_cg_exec "$cg" timeout "$RUN_TIMEOUT" "$MEMLOAD" -q --size "$SIZE_B" \
		--accesses "$ACCESSES" --pattern "$PATTERN" --hot-frac "$HOT_FRAC" --seed "$SEED" \
		$MEMLOAD_OPTS >"$B_SCRATCH/memload.out" 2>"$B_SCRATCH/memload.err" || rc=$?
	R_PSWPIN=$(($(vmstat pswpin) - i0)) R_PSWPOUT=$(($(vmstat pswpout) - o0))
	R_HITS=$(($(dstat vm1 hits) - h0)) R_MISSES=$(($(dstat vm1 misses) - m0))
	R_ADM=$(($(dstat vm1 admissions) - a0))
	R_READS=$((R_HITS + R_MISSES))
	R_MAJFLT=$(cgstat "$cg" total_pgmajfault)
	R_MAJFLT=${R_MAJFLT:-$(cgstat "$cg" pgmajfault)}
	R_LINE=$(tail -n 1 "$B_SCRATCH/memload.out")
	if [ -n "$traced" ]; then
		sleep 1
		trace_stop
	fi
	b_cgroup_remove "$cg" || b_die "cannot remove $cg"
	swapoff "$DEV" || b_die "swapoff $DEV failed"
	b_forget B_SWAPS "$DEV"
	[ "$rc" = 0 ] || b_die "hc-memload at limit $limit failed (exit $rc): $(head -c 300 "$B_SCRATCH/memload.err")"
}

# ------------------------------------------------------------------- runs
# A run is clean when the machine's pswpin/pswpout grew by exactly the reads
# and writes our device got: nobody else swapped meanwhile.  Swap is global:
# another swap area of equal priority takes part of our pages, and anyone's
# pages go to our area while it has the highest priority.  A dirty run is
# retried (MRC_RETRIES times), then kept but left out of the mean.
declare -A MEAS PRED SPREAD DIRTY
echo "size_bytes,extra_bytes,k,repeat,attempt,clean,predicted,measured_reads,daemon_hits,daemon_misses,daemon_admissions,pswpin,pswpout,cg_majflt,seconds" >"$CSV.tmp"
for ((k = 0; k <= K; k++)); do
	limit=$((M0_B + k * STEP_B))
	vals=() dvals=()
	for ((r = 1; r <= REPEATS; r++)); do
		reset=""
		[ "$k" = 0 ] && [ "$r" = 1 ] && reset=1
		for ((a = 1; a <= RETRIES + 1; a++)); do
			run_one "$limit" "$k-$r" $reset
			clean=0
			[ "$R_PSWPIN" = "$R_READS" ] && [ "$R_PSWPOUT" = "$R_ADM" ] && clean=1
			secs=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$R_LINE")
			b_log "limit $((limit >> 20)) MiB run $r: reads $R_READS (hits $R_HITS misses $R_MISSES)" \
				"admissions $R_ADM pswpin $R_PSWPIN pswpout $R_PSWPOUT cg majflt ${R_MAJFLT:-?} ${secs}s" \
				"$([ $clean = 1 ] || echo "DIRTY: other swap activity meanwhile")"
			if [ -n "$reset" ] && [ "$HAVE_MRC" = 1 ]; then
				"$HECTL" -m "$MNT" mrc vm1 --json --step "$STEP_B" >"$OUT/mrc-curve.json" ||
					b_die "hectl mrc vm1 failed"
				for ((j = 0; j <= K; j++)); do
					PRED[$j]=$(jq -r --argjson c $((j * STEP_B)) \
						'[.curve[] | select(.extra_bytes == $c) | .misses][0] // "n/a"' \
						"$OUT/mrc-curve.json")
				done
				b_log "curve: $(jq -c '{mode, rate, evictions, misses, cold, silent, tracked_blocks}' "$OUT/mrc-curve.json")"
			fi
			echo "$limit,$((k * STEP_B)),$k,$r,$a,$clean,${PRED[$k]:-},$R_READS,$R_HITS,$R_MISSES,$R_ADM,$R_PSWPIN,$R_PSWPOUT,${R_MAJFLT:-},$secs" >>"$CSV.tmp"
			[ "$clean" = 1 ] && break
		done
		if [ "$clean" = 1 ]; then
			vals+=("$R_READS")
		else
			dvals+=("$R_READS")
			[ -n "$reset" ] && b_log "warning: the curve comes from a dirty run"
		fi
	done
	if [ ${#vals[@]} = 0 ]; then
		DIRTY[$k]=1
		vals=("${dvals[@]}")
	fi
	MEAS[$k]=$(b_median "${vals[@]}")
	SPREAD[$k]=$(printf '%s\n' "${vals[@]}" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print lo "-" hi }')
done
mv "$CSV.tmp" "$CSV"

# ------------------------------------------------------------------ table
{
	printf '%-10s %-10s %12s %12s %14s %9s\n' limit extra predicted measured "(min-max)" "rel.err"
	sum=0 n=0
	for ((k = 0; k <= K; k++)); do
		p=${PRED[$k]:-n/a} m=${MEAS[$k]} err="-"
		if [[ "$p" =~ ^[0-9.eE+-]+$ ]] && [ "$m" -gt 0 ]; then
			err=$(awk -v p="$p" -v m="$m" 'BEGIN { e = (p - m) / m; printf "%+.1f%%", e * 100 }')
			if [ "$k" -ge 1 ] && [ "$m" -ge "$MIN_MISSES" ] && [ -z "${DIRTY[$k]:-}" ]; then
				sum=$(awk -v s="$sum" -v p="$p" -v m="$m" 'BEGIN { e = (p - m) / m; print s + (e < 0 ? -e : e) }')
				n=$((n + 1))
			fi
		fi
		[[ "$p" =~ ^[0-9.eE+-]+$ ]] && p=$(printf '%.0f' "$p")
		printf '%-10s %-10s %12s %12s %14s %9s\n' "$(((M0_B + k * STEP_B) >> 20))M" \
			"+$(((k * STEP_B) >> 20))M" "$p" "$m" "(${SPREAD[$k]})" "$err${DIRTY[$k]:+ dirty}"
	done
	if [ "$HAVE_MRC" != 1 ]; then
		echo "mean relative error: n/a (hectl mrc not available: measured values only)"
	elif [ "$n" = 0 ]; then
		echo "mean relative error: n/a (no size with k >= 1 and at least $MIN_MISSES misses)"
	else
		MEAN=$(awk -v s="$sum" -v n="$n" 'BEGIN { printf "%.1f", s / n * 100 }')
		echo "mean relative error over $n sizes (k >= 1, >= $MIN_MISSES misses): $MEAN%"
	fi
} | tee "$OUT/mrc-validate.txt"
b_log "CSV: $CSV; table: $OUT/mrc-validate.txt"
if [ -n "$MAX_ERR" ] && [ "$HAVE_MRC" = 1 ]; then
	MEAN=$(sed -n 's/^mean relative error over .*: \([0-9.]*\)%$/\1/p' "$OUT/mrc-validate.txt")
	[ -n "$MEAN" ] || exit 1
	awk -v m="$MEAN" -v x="$MAX_ERR" 'BEGIN { exit !(m <= x) }' || exit 1
fi
exit 0
