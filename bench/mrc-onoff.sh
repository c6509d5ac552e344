#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Cost of miss-ratio-curve tracking on the swap workload: the kernel swaps
# hc-swaphog (BENCH_HOG, default 256M, touched BENCH_HOG_PASSES=3 times, in a
# BENCH_CGROUP_LIMIT=64M memory cgroup) onto a loop device (dio) over a
# volume in a hecache-fs mount, with -o mrc=off, mrc=sampled and mrc=exact,
# the modes interleaved, BENCH_ROUNDS (default 5) rounds.  Prints the median
# wall time per mode and its ratio to mrc=off, the daemon's CPU time per run
# (user+system, from /proc: far less sensitive to a noisy machine than wall
# time) and the curve's event counts.
# Goal (issue 4): tracking on costs <= 3% of the wall time.
# BENCH_PERF=1 also samples the daemon with perf (999 Hz) during each run and
# prints the share of its CPU time spent in cache-fs/mrc.c and dmrc.c, and
# those seconds against the run's wall time: an upper bound of the tracking's
# cost that a noisy machine does not blur the way it blurs wall times.
# Usage (root): bench/mrc-onoff.sh   (HECACHE_BUILDDIR: build tree, default the repo)
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/bench/lib.sh"
. "$TOP/tools/cgroup.sh"
BUILD=${HECACHE_BUILDDIR:-$TOP}
HOG=${BENCH_HOG:-256M}
PASSES=${BENCH_HOG_PASSES:-3}
LIMIT=${BENCH_CGROUP_LIMIT:-64M}
ROUNDS=${BENCH_ROUNDS:-5}
CACHE=${BENCH_SWAP_CACHE:-256M}
MODES=(off sampled exact)
[ "$(id -u)" = 0 ] || b_die "run as root"
for x in cache-fs/hecache-fs tools/hc-swaphog tools/hectl; do
	[ -x "$BUILD/$x" ] || b_die "no $BUILD/$x: build first (HECACHE_BUILDDIR)"
done
LIMIT_B=$(b_bytes "$LIMIT") || b_die "bad BENCH_CGROUP_LIMIT"
W=$(mktemp -d /var/tmp/hc-mrc-onoff.XXXXXX) || b_die "mktemp failed"
B_SCRATCH=$W
trap b_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
declare -A T=() CPU=()
TICKS=$(getconf CLK_TCK)

one_run() {	# MODE ROUND
	local mode=$1 r=$2 mnt=$W/mnt back=$W/backing dev cg out=$W/$1-$2
	mkdir -p "$mnt" "$back"
	b_start_fuse hecache-fs "$mnt" "$out.daemon" "$BUILD/cache-fs/hecache-fs" "$back" "$mnt" -f \
		-o "cache=$CACHE,mrc=$mode" || b_die "mount: $B_ERR"
	local pid=$B_LAST_PID perfpid=
	if [ "${BENCH_PERF:-0}" = 1 ] && [ "$mode" != off ]; then
		perf record -q -F 999 -p "$pid" -o "$out.perf" >/dev/null 2>&1 &
		perfpid=$!
		B_PIDS+=("$perfpid")
	fi
	[ -e "$mnt/vm1" ] || mkdir "$mnt/vm1"
	[ -e "$mnt/vm1/swap" ] || truncate -s 1G "$mnt/vm1/swap"
	dev=$(losetup --direct-io=on --find --show "$mnt/vm1/swap") || b_die "losetup failed"
	B_LOOPS+=("$dev")
	mkswap "$dev" >/dev/null || b_die "mkswap failed"
	swapon -p 32767 "$dev" || b_die "swapon failed"
	B_SWAPS+=("$dev")
	b_cgroup_create "hc-mrc-onoff-$$-$mode-$r" "$LIMIT_B" >"$out.cg" || b_die "cgroup failed"
	cg=$(cat "$out.cg")
	b_run sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$cg" \
		"$BUILD/tools/hc-swaphog" -p "$PASSES" "$HOG" >"$out.hog" 2>&1 ||
		b_die "hc-swaphog failed ($mode, round $r): $(tail -n 1 "$out.hog")"
	b_cgroup_remove "$cg"
	T[$mode]+="$(sed -n 's/^swaphog .*seconds=\([0-9.]*\).*/\1/p' "$out.hog" | tail -n 1) "
	[ "$mode" = off ] || "$BUILD/tools/hectl" -b "$back" --json mrc vm1 >"$out.mrc" 2>&1 || true
	# utime + stime of the daemon (all its threads), fields 14 and 15
	CPU[$mode]+="$(awk -v t="$TICKS" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$pid/stat") "
	if [ -n "$perfpid" ]; then
		kill -INT "$perfpid"
		wait "$perfpid" 2>/dev/null
		b_forget B_PIDS "$perfpid"
		perf_share "$out.perf" "$(sed -n 's/^swaphog .*seconds=\([0-9.]*\).*/\1/p' "$out.hog" | tail -n 1)" \
			>>"$W/perf-$mode"
	fi
	swapoff "$dev" && b_forget B_SWAPS "$dev"
	losetup -d "$dev" && b_forget B_LOOPS "$dev"
	b_stop_fuse "$mnt" "$pid" || b_die "unmount: $B_ERR"
}

# perf_share PERFDATA WALL_S: "share_of_daemon_cpu mrc_cpu_s share_of_wall"
perf_share() {
	perf report -q -i "$1" --no-children --sort srcfile 2>/dev/null | awk -v wall="$2" '
		{ p = $1; sub("%", "", p); tot += p
		  if ($2 ~ /(^|\/)(mrc|dmrc)\.c/) m += p }
		END { printf "%.2f %s\n", m, wall }' >"$1.share"
	local samples
	samples=$(perf report -q -i "$1" --stdio --sort pid 2>/dev/null | head -1)
	# CPU seconds sampled = samples / 999; the share of those in mrc code
	local n
	n=$(perf script -i "$1" -F period 2>/dev/null | wc -l)
	awk -v n="$n" '{ s = $1 / 100 * n / 999; printf "%.2f %.3f %.2f\n", $1, s, $2 ? 100 * s / $2 : 0 }' "$1.share"
}

for ((r = 1; r <= ROUNDS; r++)); do
	for m in "${MODES[@]}"; do
		b_log "round $r/$ROUNDS, mrc=$m"
		one_run "$m" "$r"
	done
done
# shellcheck disable=SC2086
base=$(b_median ${T[off]})
# shellcheck disable=SC2086
cbase=$(b_median ${CPU[off]})
printf '\n%-8s %9s %7s %9s %7s   %s\n' "mrc" "wall s" "ratio" "daemon s" "ratio" "runs: wall s / daemon CPU s"
for m in "${MODES[@]}"; do
	# shellcheck disable=SC2086
	med=$(b_median ${T[$m]})
	# shellcheck disable=SC2086
	cmed=$(b_median ${CPU[$m]})
	printf '%-8s %9.3f %7.3f %9.2f %7.3f   %s/ %s\n' "$m" "$med" \
		"$(awk -v a="$med" -v b="$base" 'BEGIN { print a / b }')" "$cmed" \
		"$(awk -v a="$cmed" -v b="$cbase" 'BEGIN { print (b > 0 ? a / b : 0) }')" "${T[$m]}" "${CPU[$m]}"
done
if [ "${BENCH_PERF:-0}" = 1 ]; then
	printf '\nperf: %%daemon-CPU-in-mrc  mrc-CPU-s  %%of-wall (per run)\n'
	for m in sampled exact; do
		printf '%-8s %s\n' "$m" "$(tr '\n' ';' <"$W/perf-$m")"
	done
fi
for m in sampled exact; do
	f=$W/$m-$ROUNDS.mrc
	[ -s "$f" ] && command -v jq >/dev/null &&
		jq -r --arg m "$m" '"\($m): \(.evictions) evictions, \(.misses) misses, \(.tracked_blocks) blocks tracked, rate \(.rate)"' "$f" 2>/dev/null
done
