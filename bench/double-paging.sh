#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Double paging (issue 6), in one run: tools/hedp on five configurations,
# then a sequential read of the guest swap volume before and after
# reconcile-defrag --policy home, one table with ratios and PASS/MISS.
#
# hedp (doc/hedp.8): a guest of G frames (exact LRU over W virtual pages,
# swap volume gswap, W blocks) under a hypervisor backing H < G frames (exact
# LRU, swap volume hswap, G blocks); N accesses, each reads and writes one
# page; O_DIRECT, 4 KiB, queue depth 1.  A page is double-paged when the
# guest evicts it from a frame the hypervisor swapped out.  Configurations:
#   ext4      hedp plain on plain ext4 files in the scratch directory, O_DIRECT
#   ptll      hedp plain on libfuse's passthrough_ll (built now from the
#             libfuse3-dev examples, as bench/run.sh does); passthrough_ll
#             fails every O_DIRECT write (EINVAL), so unless an O_DIRECT write
#             probe works (or BENCH_PTLL_DIRECT=1) it runs hedp --buffered: the
#             host page cache then serves its reads (say so in the table)
#   hc-plain  hedp plain on hecache-fs -o dedup=off (the unaware baseline)
#   hc-dedup  hedp dedup on hecache-fs -o dedup=domain (same calls as plain;
#             the daemon shares byte-identical blocks at write-back)
#   hc-ref    hedp reference on the same dedup=domain mount (copy_file_range
#             HSWAP -> GSWAP, which hecache-fs turns into map references)
# hecache-fs gets -o cache= a quarter of the volumes ((W + G) * 4 KiB / 4).
# Before each run both volumes are written whole (dd bs=1M from one random
# fill file, O_DIRECT where the peer takes it, fsync; on hecache-fs then
# hectl flush): a preallocated swap disk, and gswap's home file laid out in
# order, like the never-indirected copy it is compared with later.  Runs
# rotate their order each round (BENCH_ROUNDS, default 3); medians.  Every
# run must pass hedp's data verification (exit 0, "verified").  Not timed:
# hedp --check-end is not used (its reads would count as storage reads).
#
# What double paging costs, and what is measured.  In plain, each
# double-paged page costs one HSWAP read (the hypervisor swaps the frame in)
# and one GSWAP write (the guest swaps the page out): double_paged reads and
# double_paged writes issued to the file system ("issued", hedp's own counts;
# on hecache-fs these are what reaches the daemon: hits + misses = issued
# reads, admissions = issued writes).  Behind the cache ("storage": the
# daemon's read_bytes and written_bytes of the domain, hectl stats around the
# run plus a final hectl flush, so every dirty block is counted):
#   writes: each double-paged GSWAP write reaches storage exactly once (the
#     cache is exclusive write-back: a dirty block is written when it leaves
#     the cache, when it is read back, or at the flush; a GSWAP slot is not
#     rewritten before it is read back).  Checked: plain's written blocks =
#     its admissions.  Removed by a mode = (plain's storage writes - the
#     mode's) / double_paged.
#   reads: a double-paged HSWAP read reaches storage only when it misses the
#     cache, which hedp cannot tell apart; the reads double paging causes at
#     storage are estimated as double_paged x plain's miss ratio (misses /
#     (hits + misses)).  Removed = (plain's storage reads - the mode's) / that
#     estimate.  Double paging also pollutes the cache (GSWAP writes push
#     HSWAP blocks out), so removing it can remove more than the estimate:
#     the ratio can exceed 1.
# Also reported: the daemon process's block I/O (/proc/PID/io read_bytes,
# write_bytes: data plus journal, checkpoints, page cache of overflow.dat),
# and the FUSE requests the daemon served during each run (hectl status
# fuse_requests): reference replaces a read and a write by one
# copy_file_range.  The kernel sends a getxattr (security.capability) before
# every copy unless hecache-fs was granted FUSE_HANDLE_KILLPRIV_V2 (hectl
# status), and then both modes cost the same number of requests.
#
# Sequential read: after the rounds, the last reference run's gswap (many
# indirections: its double-paged blocks point into hswap and overflow.dat)
# is copied with dd (1M, O_DIRECT, fsync) to a fresh volume in another
# domain of the same dedup=domain mount ("never indirected": same size and
# contents, written in order, like gswap's prefill; dedup=domain does not
# share across domains, checked: no map entries) and, for comparison, to one
# on the dedup=off mount (a dedup=domain daemon hashes every block it reads
# from storage, as dedup hints; dedup=off does not).  Both mounts are
# restarted (empty caches: no block is a cache hit), then BENCH_SEQ_PASSES
# rounds of one dd if=VOLUME of=/dev/null bs=1M iflag=direct of each volume
# (the backing files' page cache dropped before each read with dd
# iflag=nocache count=0, no global drop_caches); MB/s from dd's own time,
# median.  Then both daemons stop, reconcile-defrag --offline BACKING
# --policy home ref/gswap, restart, the same passes, and the defragmented
# gswap must read the same bytes as before (cmp).  The "before" read is
# done after a remount, not on the mount that ran hedp, so that all three
# reads start from an empty cache.  Without a reconcile-defrag program this
# part prints "skipped".
#
# Goals (issue 6):
#   1. reference removes >= 95% of the storage reads and writes double
#      paging causes in plain; dedup removes >= 95% of the writes.
#   2. accesses/s: reference >= 2x plain on hecache-fs; plain on hecache-fs
#      >= plain on passthrough_ll.
#   3. sequential read MB/s of gswap after defrag >= 0.9 x the
#      never-indirected copy's on the same mount.
#   4. worst-case (max) hedp access latency during an online defrag at the
#      daemon's default rate <= 2x without (see "online defrag" below:
#      BENCH_ONLINE_MB (512) MiB of references copied home by `hectl defrag
#      start` while hedp reference runs in another domain of the mount).
#
# Usage (root, from anywhere): bench/double-paging.sh.  HECACHE_BUILDDIR:
# the build tree (cache-fs/hecache-fs, tools/hedp, tools/hectl,
# swap-reconcile/reconcile-defrag), default the repository.  Knobs:
# BENCH_ROUNDS (3), BENCH_DP_PAGES W (16384), BENCH_DP_GUEST G (8192),
# BENCH_DP_HOST H (2048), BENCH_DP_ACCESSES N (30000), BENCH_DP_PATTERN
# (uniform), BENCH_DP_SEED (1), BENCH_SEQ_PASSES (16), BENCH_PTLL_DIRECT
# (auto|0|1), BENCH_HC_IO (uring|aio|sync, daemon default), BENCH_FUSE_URING
# (1: fuse.enable_uring on for the run, hecache-fs(8)), BENCH_HEDP_TIMEOUT
# (300 s), BENCH_DIR (/var/tmp), BENCH_OUT (bench/out: double-paging.txt,
# .csv, .png when gnuplot is installed: accesses/s per configuration and the
# storage blocks of each hecache-fs mode; double-paging-raw/).  Exit status 0 when every measured goal is met,
# 1 when one is missed or a step failed.
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$TOP/bench/lib.sh"
BUILD=${HECACHE_BUILDDIR:-$TOP}
ROUNDS=${BENCH_ROUNDS:-3}
W=${BENCH_DP_PAGES:-16384}
G=${BENCH_DP_GUEST:-8192}
H=${BENCH_DP_HOST:-2048}
N=${BENCH_DP_ACCESSES:-30000}
PATTERN=${BENCH_DP_PATTERN:-uniform}
SEED=${BENCH_DP_SEED:-1}
PASSES=${BENCH_SEQ_PASSES:-16}
PTLL_DIRECT=${BENCH_PTLL_DIRECT:-auto}
FUSE_URING=${BENCH_FUSE_URING:-1}
HC_IO=${BENCH_HC_IO:-}
HEDP_TIMEOUT=${BENCH_HEDP_TIMEOUT:-300}
BASE=${BENCH_DIR:-/var/tmp}
OUT=${BENCH_OUT:-$TOP/bench/out}
HCFS=$BUILD/cache-fs/hecache-fs
HECTL=$BUILD/tools/hectl
HEDP=$BUILD/tools/hedp
DEFRAG=$BUILD/swap-reconcile/reconcile-defrag

[ "$(id -u)" = 0 ] || b_die "run as root"
for x in "$HCFS" "$HECTL" "$HEDP"; do [ -x "$x" ] || b_die "no $x: build first (HECACHE_BUILDDIR)"; done
for x in jq fusermount3 dd cmp; do command -v "$x" >/dev/null || b_die "$x is not installed"; done
for v in ROUNDS W G H N SEED PASSES HEDP_TIMEOUT; do
	[[ "${!v}" =~ ^[1-9][0-9]*$ ]] || b_die "$v must be a positive number (${!v})"
done
[ "$H" -lt "$G" ] && [ "$G" -lt "$W" ] || b_die "need BENCH_DP_HOST < BENCH_DP_GUEST < BENCH_DP_PAGES"
[ $((W % 256)) = 0 ] && [ $((G % 256)) = 0 ] || b_die "BENCH_DP_PAGES and BENCH_DP_GUEST: multiples of 256 (1 MiB)"
case $PTLL_DIRECT in auto | 0 | 1) ;; *) b_die "BENCH_PTLL_DIRECT: auto, 0 or 1" ;; esac
[[ "$FUSE_URING" =~ ^[01]$ ]] || b_die "BENCH_FUSE_URING must be 0 or 1"
case $HC_IO in "" | uring | aio | sync) ;; *) b_die "BENCH_HC_IO: uring, aio or sync" ;; esac
[ -c /dev/fuse ] || modprobe fuse 2>/dev/null
[ -c /dev/fuse ] || b_die "no /dev/fuse"

mkdir -p "$BASE" "$OUT" || b_die "cannot create $BASE or $OUT"
S=$(mktemp -d "$BASE/hc-dp.XXXXXX") || b_die "mktemp in $BASE failed"
B_SCRATCH=$S
trap b_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
b_fuse_uring "$FUSE_URING"
RAW=$OUT/double-paging-raw
rm -rf "$RAW" && mkdir -p "$RAW" || b_die "cannot create $RAW"
GS_B=$((W * 4096))
HS_B=$((G * 4096))
CACHE_K=$(((W + G) * 4 / 4))	# (W + G) blocks of 4 KiB, a quarter, in KiB
avail=$(($(df --output=avail -k "$S" | tail -n 1) * 1024))
[ "$avail" -gt $((12 * (GS_B + HS_B) + (1 << 30))) ] || b_die "$S: $((avail >> 20)) MiB free, too little"
T_START=$(date +%s)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
b_log "scratch $S; W=$W G=$G H=$H pages, $N accesses ($PATTERN), cache ${CACHE_K}K, $ROUNDS rounds; load $LOAD0"

KEYS=(ext4 ptll hc-plain hc-dedup hc-ref)
declare -A LABEL=([ext4]="ext4 file" [ptll]="passthrough_ll" [hc-plain]="hecache-fs dedup=off"
	[hc-dedup]="hecache-fs dedup=domain" [hc-ref]="hecache-fs dedup=domain")
declare -A MODE=([ext4]=plain [ptll]=plain [hc-plain]=plain [hc-dedup]=dedup [hc-ref]=reference)
declare -A DIR=() DIRECT=() DOWN=() PIDOF=() MNTOF=() DOMOF=()
NOTES=()
note() { NOTES+=("$*"); b_log "note: $*"; }

# One fill file: gswap's contents are its first W blocks, hswap's the next G.
dd if=/dev/urandom of="$S/fill" bs=1M count=$(((W + G) / 256)) status=none || b_die "cannot write $S/fill"

# ------------------------------------------------------------------ mounts
OFFB=$S/hc-off-backing OFFM=$S/hc-off-mnt	# dedup=off: hc-plain, the flat copy
DOMB=$S/hc-dom-backing DOMM=$S/hc-dom-mnt	# dedup=domain: hc-dedup, hc-ref
HCOPTS="cache=${CACHE_K}K"
[ -n "$HC_IO" ] && HCOPTS+=",io=$HC_IO"
# mount_hc off|domain: starts that daemon (we own its PID), checks its scope
mount_hc() {
	local m=$1 back mnt
	if [ "$m" = off ]; then back=$OFFB mnt=$OFFM; else back=$DOMB mnt=$DOMM; fi
	mkdir -p "$back"
	b_start_fuse "hecache-fs dedup=$m" "$mnt" "$RAW/hecache-fs-$m.log" \
		"$HCFS" "$back" "$mnt" -f -o "$HCOPTS,dedup=$m" || b_die "hecache-fs dedup=$m: $B_ERR"
	PIDOF[hc-$m]=$B_LAST_PID
	"$HECTL" -m "$mnt" --json status | jq -e --arg m "$m" '.dedup == $m' >/dev/null ||
		b_die "the mount with dedup=$m does not report dedup $m"
}
umount_hc() {
	local m=$1 mnt
	if [ "$m" = off ]; then mnt=$OFFM; else mnt=$DOMM; fi
	b_stop_fuse "$mnt" "${PIDOF[hc-$m]}" || b_die "unmount of hecache-fs dedup=$m: $B_ERR"
	PIDOF[hc-$m]=""
}
mount_hc off
mount_hc domain
for k in hc-plain hc-dedup hc-ref; do DIRECT[$k]=1; done
PIDOF[hc-plain]=${PIDOF[hc-off]} PIDOF[hc-dedup]=${PIDOF[hc-domain]} PIDOF[hc-ref]=${PIDOF[hc-domain]}
MNTOF[hc-plain]=$OFFM MNTOF[hc-dedup]=$DOMM MNTOF[hc-ref]=$DOMM
DOMOF[hc-plain]=vm DOMOF[hc-dedup]=dd DOMOF[hc-ref]=ref
for k in hc-plain hc-dedup hc-ref; do
	DIR[$k]=${MNTOF[$k]}/${DOMOF[$k]}
	mkdir "${DIR[$k]}" || b_die "mkdir ${DIR[$k]} failed"
done
DIR[ext4]=$S/ext4
DIRECT[ext4]=1
mkdir "${DIR[ext4]}"

# passthrough_ll, compiled now from the libfuse3-dev examples (bench/run.sh)
EX=/usr/share/doc/libfuse3-dev/examples
PB=$S/passthrough_ll-build
mkdir -p "$PB"
for f in "$EX"/passthrough_ll.c "$EX"/passthrough_ll.c.gz "$EX"/*.h "$EX"/*.h.gz; do
	[ -f "$f" ] || continue
	case $f in *.gz) gzip -dc "$f" >"$PB/$(basename "$f" .gz)" ;; *) cp "$f" "$PB/" ;; esac
done
if [ ! -f "$PB/passthrough_ll.c" ]; then
	DOWN[ptll]="no passthrough_ll.c in $EX (libfuse3-dev)"
elif ! command -v gcc >/dev/null || ! pkg-config --exists fuse3 2>/dev/null; then
	DOWN[ptll]="gcc or pkg-config fuse3 missing: cannot build passthrough_ll"
else
	read -r -a FUSE_FLAGS <<<"$(pkg-config --cflags --libs fuse3)"
	# HAVE_FALLOCATE/HAVE_COPY_FILE_RANGE: what libfuse's own build defines on Linux
	if gcc -Wall -O2 -DHAVE_FALLOCATE -DHAVE_COPY_FILE_RANGE -o "$PB/passthrough_ll" \
		"$PB/passthrough_ll.c" "${FUSE_FLAGS[@]}" -lpthread >"$RAW/passthrough_ll-build.log" 2>&1; then
		mkdir -p "$S/ptll-src"
		if b_start_fuse passthrough_ll "$S/ptll-mnt" "$RAW/passthrough_ll.log" \
			"$PB/passthrough_ll" -f -o source="$S/ptll-src" "$S/ptll-mnt"; then
			PIDOF[ptll]=$B_LAST_PID
			DIR[ptll]=$S/ptll-mnt/vm
			mkdir "${DIR[ptll]}" || DOWN[ptll]="mkdir in the passthrough_ll mount failed"
		else
			DOWN[ptll]=$B_ERR
		fi
	else
		DOWN[ptll]="build failed: $(grep -m1 error "$RAW/passthrough_ll-build.log")"
	fi
fi
if [ -z "${DOWN[ptll]:-}" ]; then
	DIRECT[ptll]=1
	if err=$(dd if=/dev/zero of="${DIR[ptll]}/probe" bs=4096 count=1 oflag=direct 2>&1 >/dev/null); then
		b_log "passthrough_ll: an O_DIRECT write works"
	else
		DIRECT[ptll]=0
		note "passthrough_ll: O_DIRECT write fails ($(grep -m1 'dd:' <<<"$err" | sed 's/^dd: //')): hedp --buffered there"
	fi
	rm -f "${DIR[ptll]}/probe"
	[ "$PTLL_DIRECT" != auto ] && DIRECT[ptll]=$PTLL_DIRECT
fi
[ -n "${DOWN[ptll]:-}" ] && note "passthrough_ll not measured: ${DOWN[ptll]}"

# ------------------------------------------------------------------ runs
# stats KEY: the domain's counters (one JSON object)
stats() { "$HECTL" -m "${MNTOF[$1]}" --json stats "${DOMOF[$1]}" | jq -c '.domains[0]'; }
# reqs KEY: the daemon's FUSE requests served so far, total and getxattr
reqs() { "$HECTL" -m "${MNTOF[$1]}" --json status | jq -r '.fuse_requests | "\(.total) \(.getxattr)"'; }
flush() { "$HECTL" -m "${MNTOF[$1]}" --json flush "${DOMOF[$1]}" >/dev/null; }
pio() { awk '/^read_bytes|^write_bytes/ { printf "%s ", $2 }' "/proc/$1/io"; }
CSV=$RAW/runs.csv
COLS=key,round,accesses_per_s,p50,p99,max,double_paged,issued_reads,issued_writes,cfr_ok,cfr_fallbacks,hits,misses,admissions,read_blocks,written_blocks,dedup_blocks,ref_blocks,cow_blocks,zero_blocks,proc_read_mib,proc_write_mib,load1,fuse_requests,fuse_getxattr
echo "$COLS" >"$CSV"

# prefill KEY: both volumes written whole, in order, from the fill file
prefill() {
	local k=$1 d=${DIR[$1]} fl=(oflag=direct conv=fsync)
	[ "${DIRECT[$k]}" = 1 ] || fl=(conv=fsync)
	rm -f "$d/gswap" "$d/hswap"
	dd if="$S/fill" of="$d/gswap" bs=1M count=$((W / 256)) "${fl[@]}" status=none &&
		dd if="$S/fill" of="$d/hswap" bs=1M skip=$((W / 256)) count=$((G / 256)) "${fl[@]}" status=none ||
		b_die "$k: cannot write the volumes"
	if [[ $k == hc-* ]]; then
		for v in gswap hswap; do
			"$HECTL" -m "${MNTOF[$k]}" volume set-kind "${DOMOF[$k]}/$v" swap >/dev/null ||
				b_die "$k: hectl volume set-kind $v swap failed"
		done
		flush "$k" || b_die "$k: hectl flush failed"
	fi
}

run_one() { # KEY ROUND
	local k=$1 r=$2 j=$RAW/hedp-$1-$2.json s0="" s1="" io0="" io1="" q0="" q1="" rc=0 opt=()
	prefill "$k"
	[ "${DIRECT[$k]}" = 1 ] || opt=(--buffered)
	if [[ $k == hc-* ]]; then
		s0=$(stats "$k") || b_die "$k: hectl stats failed"
		q0=$(reqs "$k") || b_die "$k: hectl status failed"
	fi
	[ -n "${PIDOF[$k]:-}" ] && io0=$(pio "${PIDOF[$k]}")
	[ -n "${BEFORE_HEDP:-}" ] && "$BEFORE_HEDP" "$k"
	b_log "round $r/$ROUNDS: hedp ${MODE[$k]} on ${LABEL[$k]} (${opt[*]:-O_DIRECT})"
	b_run timeout -k 10 "$HEDP_TIMEOUT" "$HEDP" --dir "${DIR[$k]}" --mode "${MODE[$k]}" \
		--pages "$W" --guest-pages "$G" --host-pages "$H" --accesses "$N" \
		--pattern "$PATTERN" --seed "$SEED" "${opt[@]}" --json \
		--csv "$RAW/hedp.csv" --label "$k" >"$j" 2>"$RAW/hedp-$k-$r.err" || rc=$?
	[ "$rc" = 130 ] || [ "$rc" = 143 ] && exit "$rc"
	if [[ $k == hc-* || $k == ptll ]]; then
		b_alive "${PIDOF[$k]}" || b_die "$k: the daemon died during hedp (see $RAW)"
	fi
	[ "$rc" = 0 ] && jq -e '.verified == true' "$j" >/dev/null ||
		b_die "$k round $r: hedp failed (exit $rc): $(tail -n 1 "$RAW/hedp-$k-$r.err")"
	if [[ $k == hc-* ]]; then
		q1=$(reqs "$k") || b_die "$k: hectl status failed"
		flush "$k" || b_die "$k: hectl flush failed"
		s1=$(stats "$k") || b_die "$k: hectl stats failed"
	fi
	[ -n "${PIDOF[$k]:-}" ] && io1=$(pio "${PIDOF[$k]}")
	jq -r --arg k "$k" --arg r "$r" --argjson a "${s0:-null}" --argjson b "${s1:-null}" \
		--arg io0 "$io0" --arg io1 "$io1" --arg q0 "$q0" --arg q1 "$q1" \
		--arg load "$(cut -d' ' -f1 /proc/loadavg)" '
		def d(f): if $a == null then "" else ($b[f] - $a[f]) end;
		def q(i): if $q0 == "" then "" else
			(($q1 | split(" ")[i] | tonumber) - ($q0 | split(" ")[i] | tonumber)) end;
		def io(i): if $io0 == "" then "" else
			((($io1 | split(" ")[i] | tonumber) - ($io0 | split(" ")[i] | tonumber)) / 1048576
			 * 100 | round / 100) end;
		[$k, $r, .accesses_per_s, .latency_us.p50, .latency_us.p99, .latency_us.max, .double_paged,
		 (.gswap.reads + .hswap.reads), (.gswap.writes + .hswap.writes), .cfr.ok, .cfr.fallbacks,
		 d("hits"), d("misses"), d("admissions"),
		 (if $a == null then "" else (d("read_bytes") / 4096) end),
		 (if $a == null then "" else (d("written_bytes") / 4096) end),
		 d("dedup_blocks"), d("ref_blocks"), d("cow_blocks"), d("zero_blocks"),
		 io(0), io(1), $load, q(0), q(1)] | @csv' "$j" | tr -d '"' >>"$CSV" || b_die "$k: cannot parse $j"
	# behind the cache the daemon saw exactly what hedp issued
	if [[ $k == hc-* ]]; then
		tail -n 1 "$CSV" | awk -F, '$12 + $13 != $8 || $14 != $9 { exit 1 }' ||
			note "$k round $r: the daemon's hits+misses/admissions differ from hedp's reads/writes"
	fi
	rm -f "$RAW/hedp-$k-$r.err"
}

for ((r = 1; r <= ROUNDS; r++)); do
	o=$(((r - 1) % ${#KEYS[@]}))
	for k in "${KEYS[@]:o}" "${KEYS[@]:0:o}"; do
		[ -n "${DOWN[$k]:-}" ] && continue
		run_one "$k" "$r"
	done
done
# the hedp runs no longer need passthrough_ll
if [ -n "${PIDOF[ptll]:-}" ]; then
	b_stop_fuse "$S/ptll-mnt" "${PIDOF[ptll]}" || note "passthrough_ll: $B_ERR"
	PIDOF[ptll]=""
fi

# col KEY NAME: the column NAME of KEY's runs, one value a line
col() {
	awk -F, -v k="$1" -v c="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) n = i; next }
		$1 == k && $n != "" { print $n }' "$CSV"
}
# med KEY NAME: the median over the rounds ("" when none)
med() {
	local v
	v=$(col "$1" "$2")
	[ -n "$v" ] || return 0
	# shellcheck disable=SC2086
	b_median $v
}

# ------------------------------------------------------------------ sequential read
SEQ=""	# why it was not measured, or empty
declare -A SEQMBS=()
if [ ! -x "$DEFRAG" ]; then
	SEQ="skipped: no $DEFRAG (reconcile-defrag not built)"
elif [ -n "${DOWN[hc-ref]:-}" ] || [ ! -f "$DOMM/ref/gswap" ]; then
	SEQ="skipped: no gswap from a reference run"
fi
# indir MNT DOMAIN/VOLUME: blocks mapped elsewhere than home, a hole or ZERO
indir() {
	"$HECTL" -m "$1" --json map "$2" 2>>"$RAW/hectl.err" |
		jq '[.extents[] | select(.target != "home" and .target != "hole" and .target != "zero")
		     | .count] | add // 0'
}
drop_backing_cache() {
	find "$OFFB" "$DOMB" -type f -exec dd if={} iflag=nocache count=0 status=none \; 2>/dev/null
}
# seq_secs FILE: seconds of one sequential O_DIRECT read (dd's own time)
seq_secs() {
	LC_ALL=C dd if="$1" of=/dev/null bs=1M iflag=direct 2>&1 |
		awk '/copied/ { for (i = 1; i < NF; i++) if ($(i + 1) == "s,") print $i }'
}
# the volumes read: ref/gswap, its copy in domain flat of the same
# (dedup=domain) mount, its copy on the dedup=off mount
declare -A SEQF=([gswap]=$DOMM/ref/gswap [flat]=$DOMM/flat/gswap [off]=$OFFM/flat/gswap)
seq_passes() { # PHASE: PASSES rounds of one read of each volume
	local ph=$1 i t
	for ((i = 1; i <= PASSES; i++)); do
		for v in gswap flat off; do
			drop_backing_cache
			t=$(seq_secs "${SEQF[$v]}")
			[ -n "$t" ] || b_die "sequential read of ${SEQF[$v]} ($ph) failed"
			SEQMBS[$ph.$v]+="$(awk -v b="$GS_B" -v t="$t" 'BEGIN { printf "%.0f", b / t / 1e6 }') "
		done
	done
}
if [ -z "$SEQ" ]; then
	IND0=$(indir "$DOMM" ref/gswap) || b_die "hectl map ref/gswap failed"
	b_log "sequential read: ref/gswap has $IND0 indirections; copying it to never-indirected volumes"
	flush hc-ref || b_die "hectl flush failed"
	INDF=""
	for m in "$DOMM" "$OFFM"; do
		# dedup=domain: no sharing with domain ref, so the copy is all home
		mkdir "$m/flat" || b_die "mkdir $m/flat failed"
		dd if="$DOMM/ref/gswap" of="$m/flat/gswap" bs=1M iflag=direct oflag=direct conv=fsync status=none ||
			b_die "copy of ref/gswap to $m failed"
		"$HECTL" -m "$m" volume set-kind flat/gswap swap >/dev/null
		"$HECTL" -m "$m" --json flush >/dev/null || b_die "hectl flush failed"
		n=$(indir "$m" flat/gswap) || b_die "hectl map flat/gswap failed"
		[ "$n" = 0 ] || note "the never-indirected copy in $m has $n indirections"
		INDF+="${INDF:+, }$n"
	done
	# both restarted: empty caches
	umount_hc off && umount_hc domain && mount_hc off && mount_hc domain
	b_log "sequential read before defrag: $PASSES passes each"
	seq_passes before
	for v in flat off; do
		cmp -s "${SEQF[gswap]}" "${SEQF[$v]}" || b_die "ref/gswap and ${SEQF[$v]} differ before the defrag"
	done
	umount_hc off && umount_hc domain
	b_log "reconcile-defrag --offline $DOMB --policy home ref/gswap"
	t0=$(date +%s%N)
	if ! "$DEFRAG" --offline "$DOMB" --policy home --json ref/gswap >"$RAW/defrag.json" 2>"$RAW/defrag.err"; then
		b_die "reconcile-defrag failed: $(tail -n 1 "$RAW/defrag.err")"
	fi
	DEFRAG_S=$(awk -v a="$t0" -v b="$(date +%s%N)" 'BEGIN { printf "%.2f", (b - a) / 1e9 }')
	mount_hc off && mount_hc domain
	IND1=$(indir "$DOMM" ref/gswap) || b_die "hectl map ref/gswap failed"
	b_log "sequential read after defrag ($IND0 -> $IND1 indirections): $PASSES passes each"
	seq_passes after
	for v in flat off; do
		cmp -s "${SEQF[gswap]}" "${SEQF[$v]}" ||
			b_die "DATA CAME BACK WRONG: ref/gswap differs from ${SEQF[$v]} after the defrag"
	done
fi
# ------------------------------------------------------------------ online defrag
# Each round: a volume dfs/dst of ONL_MB MiB made of references to dfs/src
# (copy_file_range in shuffled 1 MiB chunks, so the job has ONL_MB MiB to
# copy home: about ONL_MB / 32 s at the default rate, longer than a hedp
# run); then hedp reference on the dedup=domain mount twice, in fresh
# domains, once alone (onl-base) and once while `hectl defrag start dfs/dst`
# runs at the daemon's default rate (onl-df; the job must still be running
# when hedp ends, else the round is noted).  The order alternates.
ONLINE=""
ONL_MB=${BENCH_ONLINE_MB:-512}
[[ "$ONL_MB" =~ ^[1-9][0-9]*$ ]] || b_die "BENCH_ONLINE_MB must be a positive number"
if [ -n "${DOWN[hc-ref]:-}" ]; then
	ONLINE="not measured: no reference run"
fi
for k in onl-base onl-df; do
	LABEL[$k]="hecache-fs dedup=domain" MODE[$k]=reference DIRECT[$k]=1
	PIDOF[$k]=${PIDOF[hc-domain]} MNTOF[$k]=$DOMM DOMOF[$k]=$k DIR[$k]=$DOMM/$k
done
ONL_COVER=""
onl_setup() {
	rm -rf "$DOMM/dfs"
	mkdir "$DOMM/dfs" || b_die "mkdir dfs failed"
	dd if=/dev/urandom of="$DOMM/dfs/src" bs=1M count="$ONL_MB" oflag=direct conv=fsync status=none ||
		b_die "writing dfs/src failed"
	python3 - "$DOMM/dfs/src" "$DOMM/dfs/dst" "$ONL_MB" <<'PY' || b_die "copy_file_range dfs/src -> dfs/dst failed"
import os, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
fi = os.open(src, os.O_RDONLY)
fo = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)
M = 1 << 20
for i in range(n):
    s, d, done = (i * 7919 % n) * M, i * M, 0
    while done < M:
        k = os.copy_file_range(fi, fo, M - done, s + done, d + done)
        if k <= 0:
            sys.exit("short copy")
        done += k
os.fsync(fo)
PY
	"$HECTL" -m "$DOMM" --json flush dfs >/dev/null || b_die "hectl flush failed"
}
# before hedp in onl-df: the job starts; after: it must still be running
onl_start() {
	[ "$1" = onl-df ] || return 0
	"$HECTL" -m "$DOMM" defrag start dfs/dst >"$RAW/defrag-online-start.out" 2>&1 ||
		b_die "hectl defrag start failed: $(cat "$RAW/defrag-online-start.out")"
}
onl_end() {
	local st
	st=$("$HECTL" -m "$DOMM" --json defrag status) || b_die "hectl defrag status failed"
	if [ "$(jq -r .state <<<"$st")" != running ]; then
		note "online defrag round $2: the job ended before hedp did ($(jq -r '"\(.state), \(.done_blocks)/\(.todo_blocks)"' <<<"$st"))"
	fi
	ONL_COVER+="$(jq -r '"\(.done_blocks)/\(.todo_blocks) in \(.elapsed_ns / 1e8 | floor / 10) s"' <<<"$st"); "
	"$HECTL" -m "$DOMM" defrag cancel >/dev/null 2>&1
	local i
	for i in $(seq 300); do
		st=$("$HECTL" -m "$DOMM" --json defrag status | jq -r .state)
		[ "$st" != running ] && break
		sleep 0.1
	done
	[ "$st" != running ] || b_die "the online defrag job does not stop"
}
if [ -z "$ONLINE" ]; then
	for ((r = 1; r <= ROUNDS; r++)); do
		for k in onl-base onl-df; do mkdir -p "${DIR[$k]}"; done
		b_log "online defrag round $r/$ROUNDS: $ONL_MB MiB of references in dfs/dst"
		onl_setup
		order=(onl-base onl-df)
		[ $((r % 2)) = 0 ] && order=(onl-df onl-base)
		for k in "${order[@]}"; do
			BEFORE_HEDP=onl_start
			run_one "$k" "$r"
			BEFORE_HEDP=""
			[ "$k" = onl-df ] && onl_end "$k" "$r"
		done
		# the references read the same as their source after the job (I1)
		python3 - "$DOMM/dfs/src" "$DOMM/dfs/dst" "$ONL_MB" <<'PY' || b_die "DATA CAME BACK WRONG: dfs/dst after the online defrag"
import sys
src, dst, n = open(sys.argv[1], "rb"), open(sys.argv[2], "rb"), int(sys.argv[3])
M = 1 << 20
for i in range(n):
    src.seek((i * 7919 % n) * M); dst.seek(i * M)
    if src.read(M) != dst.read(M):
        sys.exit(f"MiB {i} differs")
PY
	done
fi

# ------------------------------------------------------------------ table
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && b != "" && b + 0 != 0) printf "%.3f", a / b; else print "-" }'; }
verdict() { # RATIO LIMIT -> PASS (ratio >= limit) | MISS | n/a
	awk -v v="$1" -v l="$2" 'BEGIN { if (v == "-" || v == "") print "n/a"; else print (v + 0 >= l ? "PASS" : "MISS") }'
}
mib() { awk -v b="$1" 'BEGIN { if (b == "") print "-"; else printf "%.1f", b * 4096 / 1048576 }'; }
medlist() { local v; v=$(col "$1" "$2" | tr '\n' ' '); echo "${v% }"; }
iomode() {
	if [ "${DIRECT[$1]:-1}" = 1 ]; then echo O_DIRECT; else echo buffered; fi
}
row() { printf '%-62s %10s %10s %8s %9s %6s\n' "$@"; }

print_table() {
	printf 'double paging (issue 6): %s; hedp W=%s G=%s H=%s pages, %s accesses (%s, seed %s);\n' \
		"$(date -u +%FT%TZ)" "$W" "$G" "$H" "$N" "$PATTERN" "$SEED"
	printf 'gswap %s MiB, hswap %s MiB, hecache-fs cache=%sK (a quarter); %s rounds, medians;\n' \
		$((GS_B >> 20)) $((HS_B >> 20)) "$CACHE_K" "$ROUNDS"
	printf 'FUSE over io_uring: %s (hecache-fs only)\n' "$B_FUSE_URING"
	local loads
	loads=$(for k in "${KEYS[@]}"; do col "$k" load1; done | sort -g | awk 'NR == 1 { a = $1 } { b = $1 } END { print a ".." b }')
	printf '%s CPUs; load average at start %s, at end %s; 1-min load after the runs %s\n\n' \
		"$(nproc)" "$LOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)" "$loads"

	printf '%-24s %-9s %-8s %11s %9s %9s %9s %8s\n' peer mode I/O accesses/s "p50 us" "p99 us" "max us" dbl-paged
	for k in "${KEYS[@]}"; do
		if [ -n "${DOWN[$k]:-}" ]; then
			printf '%-24s %-9s %-8s %11s\n' "${LABEL[$k]}" "${MODE[$k]}" - "failed: ${DOWN[$k]}"
			continue
		fi
		printf '%-24s %-9s %-8s %11s %9s %9s %9s %8s\n' "${LABEL[$k]}" "${MODE[$k]}" "$(iomode "$k")" \
			"$(med "$k" accesses_per_s)" "$(med "$k" p50)" "$(med "$k" p99)" "$(med "$k" max)" \
			"$(med "$k" double_paged)"
	done

	printf '\nI/O in 4 KiB blocks, medians. issued: what hedp asked of the file system; storage:\n'
	printf 'what the daemon read/wrote behind its cache (run + flush); /proc: the daemon process'"'"'s\n'
	printf 'block I/O in MiB, data + journal (passthrough_ll buffered: writes counted when dirtied)\n'
	printf '%-24s %-9s %8s %8s %7s %7s %8s %8s %6s %6s %6s %7s %7s\n' peer mode "iss R" "iss W" hits \
		misses "stor R" "stor W" dedup ref cow "proc R" "proc W"
	for k in "${KEYS[@]}"; do
		[ -n "${DOWN[$k]:-}" ] && continue
		printf '%-24s %-9s %8s %8s %7s %7s %8s %8s %6s %6s %6s %7s %7s\n' "${LABEL[$k]}" "${MODE[$k]}" \
			"$(med "$k" issued_reads)" "$(med "$k" issued_writes)" "$(med "$k" hits)" \
			"$(med "$k" misses)" "$(med "$k" read_blocks)" "$(med "$k" written_blocks)" \
			"$(med "$k" dedup_blocks)" "$(med "$k" ref_blocks)" "$(med "$k" cow_blocks)" \
			"$(med "$k" proc_read_mib)" "$(med "$k" proc_write_mib)"
	done

	local dp wp wd wr rp rr hp mp rdp ip ir a_ref a_pl a_pt a_ex
	dp=$(med hc-plain double_paged)
	wp=$(med hc-plain written_blocks) wd=$(med hc-dedup written_blocks) wr=$(med hc-ref written_blocks)
	rp=$(med hc-plain read_blocks) rr=$(med hc-ref read_blocks)
	hp=$(med hc-plain hits) mp=$(med hc-plain misses)
	rdp=$(awk -v d="$dp" -v h="$hp" -v m="$mp" 'BEGIN { if (d != "" && h + m > 0) printf "%.0f", d * m / (h + m) }')
	printf '\ngoals\n'
	row measure value baseline ratio goal result
	local x rt
	x=$(awk -v a="$wp" -v b="$wr" 'BEGIN { if (a != "" && b != "") print a - b }')
	rt=$(ratio "$x" "$dp")
	row "1 reference: storage writes removed / double-paged writes" "$x" "$dp" "$rt" ">= 0.95" "$(verdict "$rt" 0.95)"
	x=$(awk -v a="$rp" -v b="$rr" 'BEGIN { if (a != "" && b != "") print a - b }')
	rt=$(ratio "$x" "$rdp")
	row "1 reference: storage reads removed / double-paged reads (est.)" "$x" "$rdp" "$rt" ">= 0.95" "$(verdict "$rt" 0.95)"
	x=$(awk -v a="$wp" -v b="$wd" 'BEGIN { if (a != "" && b != "") print a - b }')
	rt=$(ratio "$x" "$dp")
	row "1 dedup: storage writes removed / double-paged writes" "$x" "$dp" "$rt" ">= 0.95" "$(verdict "$rt" 0.95)"
	ip=$(awk -v a="$(med hc-plain issued_reads)" -v b="$(med hc-plain issued_writes)" 'BEGIN { print a + b }')
	ir=$(awk -v a="$(med hc-ref issued_reads)" -v b="$(med hc-ref issued_writes)" 'BEGIN { print a + b }')
	x=$((ip - ir))
	row "  reference: issued reads+writes removed / 2 x double-paged" "$x" "$((2 * ${dp:-0}))" \
		"$(ratio "$x" $((2 * ${dp:-0})))" "" ""
	row "  dedup: double-paged writes shared (dedup_blocks)" "$(med hc-dedup dedup_blocks)" "$dp" \
		"$(ratio "$(med hc-dedup dedup_blocks)" "$dp")" "" ""
	# the same at the process level: data plus journal and checkpoints
	local dpm m
	dpm=$(awk -v d="$dp" 'BEGIN { if (d != "") printf "%.2f", d * 4096 / 1048576 }')
	for m in hc-ref hc-dedup; do
		x=$(awk -v a="$(med hc-plain proc_write_mib)" -v b="$(med "$m" proc_write_mib)" \
			'BEGIN { if (a != "" && b != "") printf "%.2f", a - b }')
		row "  ${MODE[$m]}: daemon /proc write MiB removed / dbl-paged MiB" "$x" "$dpm" \
			"$(ratio "$x" "$dpm")" "" ""
	done
	a_ref=$(med hc-ref accesses_per_s) a_pl=$(med hc-plain accesses_per_s)
	a_pt=$(med ptll accesses_per_s) a_ex=$(med ext4 accesses_per_s)
	rt=$(ratio "$a_ref" "$a_pl")
	row "2 accesses/s: reference / plain, hecache-fs" "$a_ref" "$a_pl" "$rt" ">= 2" "$(verdict "$rt" 2)"
	rt=$(ratio "$a_pl" "$a_pt")
	row "2 accesses/s plain: hecache-fs / passthrough_ll ($(iomode ptll))" "$a_pl" "${a_pt:--}" "$rt" ">= 1" \
		"$(verdict "$rt" 1)"
	row "  accesses/s plain: hecache-fs / ext4 file" "$a_pl" "$a_ex" "$(ratio "$a_pl" "$a_ex")" "" ""
	# What bounds goal 2: reference saves storage I/O, not FUSE requests
	# (hedp's copy_file_range replaces a read and a write, and without
	# killpriv_v2 the kernel sends a getxattr before each copy).
	local qp qr
	qp=$(med hc-plain fuse_requests) qr=$(med hc-ref fuse_requests)
	row "  FUSE requests served: plain / reference, hecache-fs" "$qp" "$qr" "$(ratio "$qp" "$qr")" "" ""
	row "  reference: getxattr requests / copy_file_range calls" "$(med hc-ref fuse_getxattr)" \
		"$(med hc-ref cfr_ok)" "$(ratio "$(med hc-ref fuse_getxattr)" "$(med hc-ref cfr_ok)")" "" ""
	row "  accesses/s: dedup / plain, hecache-fs" "$(med hc-dedup accesses_per_s)" "$a_pl" \
		"$(ratio "$(med hc-dedup accesses_per_s)" "$a_pl")" "" ""
	if [ -z "$SEQ" ]; then
		local bf af fb fa oa
		# shellcheck disable=SC2086
		bf=$(b_median ${SEQMBS[before.gswap]}) fb=$(b_median ${SEQMBS[before.flat]})
		# shellcheck disable=SC2086
		af=$(b_median ${SEQMBS[after.gswap]}) fa=$(b_median ${SEQMBS[after.flat]}) oa=$(b_median ${SEQMBS[after.off]})
		rt=$(ratio "$af" "$fa")
		row "3 seq read MB/s: gswap after defrag / never-indirected copy" "$af" "$fa" "$rt" ">= 0.9" "$(verdict "$rt" 0.9)"
		row "  seq read MB/s: gswap before defrag / never-indirected copy" "$bf" "$fb" "$(ratio "$bf" "$fb")" "" ""
		row "  seq read MB/s: gswap after defrag / copy on dedup=off mount" "$af" "$oa" "$(ratio "$af" "$oa")" "" ""
		row "  seq read MB/s: copy, dedup=domain / dedup=off mount (after)" "$fa" "$oa" "$(ratio "$fa" "$oa")" "" ""
	else
		printf '%-62s %s\n' "3 seq read after defrag / never indirected" "$SEQ"
	fi
	if [ -z "$ONLINE" ]; then
		local mb md pb pd
		mb=$(med onl-base max) md=$(med onl-df max) pb=$(med onl-base p99) pd=$(med onl-df p99)
		rt=$(ratio "$md" "$mb")
		row "4 hedp max latency us: during online defrag / without" "$md" "$mb" "$rt" "<= 2" \
			"$(awk -v v="$rt" 'BEGIN { if (v == "-") print "n/a"; else print (v + 0 <= 2 ? "PASS" : "MISS") }')"
		row "  hedp p99 latency us: during online defrag / without" "$pd" "$pb" "$(ratio "$pd" "$pb")" "" ""
		row "  hedp accesses/s: during online defrag / without" "$(med onl-df accesses_per_s)" \
			"$(med onl-base accesses_per_s)" \
			"$(ratio "$(med onl-df accesses_per_s)" "$(med onl-base accesses_per_s)")" "" ""
	else
		printf '%-62s %s\n' "4 worst-case latency during online defrag / without" "$ONLINE"
	fi

	if [ -z "$SEQ" ]; then
		printf '\nsequential read of ref/gswap (%s MiB, dd bs=1M iflag=direct, cold cache, %s passes):\n' \
			$((GS_B >> 20)) "$PASSES"
		printf '  indirections %s -> %s (copies: %s); reconcile-defrag %s s: %s\n' "$IND0" "$IND1" "$INDF" \
			"$DEFRAG_S" "$(jq -r '.total | "runs \(.before.runs) -> \(.after.runs), mean jump \(.before.mean_jump * 10 | round / 10) -> \(.after.mean_jump * 10 | round / 10), \(.bytes_moved / 1048576 | floor) MiB moved, \(.kept_blocks) kept, \(.overflow_freed_blocks) overflow blocks freed"' "$RAW/defrag.json")"
		local ph
		for ph in before after; do
			printf '  MB/s %-7s gswap %s\n' "$ph:" "${SEQMBS[$ph.gswap]}"
			printf '  %-12s copy  %s\n' "" "${SEQMBS[$ph.flat]}"
			printf '  %-12s off   %s\n' "" "${SEQMBS[$ph.off]}"
		done
	fi
	printf '\nruns (rounds in order; the order rotates each round):\n'
	for k in "${KEYS[@]}"; do
		[ -n "${DOWN[$k]:-}" ] && continue
		printf '  %-9s accesses/s %s; p99 us %s; max us %s\n' "$k" "$(medlist "$k" accesses_per_s)" \
			"$(medlist "$k" p99)" "$(medlist "$k" max)"
	done
	if [ -z "$ONLINE" ]; then
		for k in onl-base onl-df; do
			printf '  %-9s accesses/s %s; p99 us %s; max us %s\n' "$k" "$(medlist "$k" accesses_per_s)" \
				"$(medlist "$k" p99)" "$(medlist "$k" max)"
		done
		printf '  online defrag job at the end of each onl-df run (entries visited/all, time): %s\n' "$ONL_COVER"
	fi
	printf '  reference / plain accesses/s per round: %s\n' "$(paste -d' ' <(col hc-ref accesses_per_s) \
		<(col hc-plain accesses_per_s) | awk 'NF == 2 { printf "%.3f ", $1 / $2 }')"
	printf '  plain hecache-fs / passthrough_ll accesses/s per round: %s\n' "$(paste -d' ' \
		<(col hc-plain accesses_per_s) <(col ptll accesses_per_s) | awk 'NF == 2 { printf "%.3f ", $1 / $2 }')"
	local n
	for n in "${NOTES[@]}"; do printf 'note: %s\n' "$n"; done
}
print_table >"$S/table"
cp "$S/table" "$OUT/double-paging.txt"
cp "$CSV" "$OUT/double-paging.csv"

# The chart (gnuplot, when installed): accesses/s per configuration (median,
# bars from the slowest to the fastest round) and, on hecache-fs, the blocks
# that reached storage (reads, writes) per mode.
rm -f "$OUT/double-paging.png"
if command -v gnuplot >/dev/null; then
	: >"$RAW/chart-rate.dat"
	for k in "${KEYS[@]}"; do
		[ -n "${DOWN[$k]:-}" ] && continue
		v=$(col "$k" accesses_per_s | sort -g | tr '\n' ' ')
		[ -n "$v" ] && printf '"%s"\t%s\t%s\t%s\n' "$k" \
			"$(med "$k" accesses_per_s)" "$(awk '{ print $1 }' <<<"$v")" \
			"$(awk '{ print $NF }' <<<"$v")" >>"$RAW/chart-rate.dat"
	done
	: >"$RAW/chart-io.dat"
	for k in hc-plain hc-dedup hc-ref; do
		[ -n "${DOWN[$k]:-}" ] && continue
		printf '"%s"\t%s\t%s\n' "${MODE[$k]}" "$(med "$k" read_blocks)" "$(med "$k" written_blocks)" \
			>>"$RAW/chart-io.dat"
	done
	if [ -s "$RAW/chart-rate.dat" ]; then
		gnuplot >"$RAW/gnuplot.log" 2>&1 <<EOF || b_log "gnuplot failed (see $RAW/gnuplot.log)"
set terminal pngcairo size 1200,560 noenhanced
set output "$OUT/double-paging.png"
set multiplot layout 1,2 title "hedp W=$W G=$G H=$H, $N accesses ($PATTERN), $ROUNDS rounds, $(date -u +%F)"
set style fill solid 0.7 border -1
set grid ytics
set yrange [0:*]
set boxwidth 0.6
set title "accesses/s (median; bar: slowest..fastest round)"
set xtics font ",10"
unset key
plot "$RAW/chart-rate.dat" using 0:2:xtic(1) with boxes lc rgb "#3070b0", \
     "" using 0:2:3:4 with yerrorbars lc rgb "black" pt -1
set title "hecache-fs: blocks read from / written to storage (run + flush)"
set style data histograms
set style histogram clustered gap 1
set key top right
plot "$RAW/chart-io.dat" using 2:xtic(1) title "read" lc rgb "#3070b0", \
     "" using 3 title "written" lc rgb "#c05030"
unset multiplot
EOF
	fi
fi
cat "$S/table"
printf '\ntotal %s s; files: %s/double-paging.{txt,csv%s}, %s\n' "$(($(date +%s) - T_START))" "$OUT" "$([ -f "$OUT/double-paging.png" ] && echo ,png)" "$RAW"
! grep -q ' MISS$' "$S/table"
