#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# hecache benchmark: the same workloads, side by side in one run, on
#   plain           a file on the backing file system itself,
#   passthrough_ll  libfuse's passthrough_ll example (built now from the
#                   libfuse3-dev example sources) over a backing directory,
#   hecache-fs      hecache-fs with a cache a quarter of the working set,
# and one table with the ratios hecache-fs / passthrough_ll.
# Usage (root, from the repository top): sudo bench/run.sh
# Knobs (environment): see bench/README.md.
set -uo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$TOP/bench/lib.sh"

RUNTIME=${BENCH_RUNTIME:-10}
SIZE=${BENCH_SIZE:-1G}
SWAP_SIZE=${BENCH_SWAP_SIZE:-1G}
SWAP_CACHE=${BENCH_SWAP_CACHE:-256M}
HOG=${BENCH_HOG:-256M}
HOG_PASSES=${BENCH_HOG_PASSES:-3}
CG_LIMIT=${BENCH_CGROUP_LIMIT:-64M}
SWAP_RUNS=${BENCH_SWAP_RUNS:-5}
SWAP_FLOOR=${BENCH_SWAP_FLOOR:-1}
SWAP_DISCARD=${BENCH_SWAP_DISCARD:-both}
READ_REFILL=${BENCH_READ_REFILL:-1}
HOG_TIMEOUT=${BENCH_HOG_TIMEOUT:-300}
read -r -a PEERS <<<"${BENCH_PEERS:-plain passthrough_ll hecache-fs}"
read -r -a PHASES <<<"${BENCH_PHASES:-fio swap}"
BASE=${BENCH_DIR:-/var/tmp}
OUT=${BENCH_OUT:-$TOP/bench/out}
BUILD=${HECACHE_BUILDDIR:-$TOP}
HC_IO=${BENCH_HC_IO:-}
PTLL_DIRECT_READS=${BENCH_PTLL_DIRECT_READS:-1}
PTLL_DIRECT=${BENCH_PTLL_DIRECT:-auto}
FUSE_URING=${BENCH_FUSE_URING:-1}
case $PTLL_DIRECT in auto | 0 | 1) ;; *) b_die "BENCH_PTLL_DIRECT: auto, 0 or 1" ;; esac
ALL_PEERS=(plain passthrough_ll hecache-fs)

[ "$(id -u)" = 0 ] || b_die "run as root: sudo bench/run.sh"
[[ "$RUNTIME" =~ ^[1-9][0-9]*$ ]] || b_die "BENCH_RUNTIME must be a number of seconds"
[[ "$SWAP_RUNS" =~ ^[1-9][0-9]*$ ]] || b_die "BENCH_SWAP_RUNS must be a positive number"
[[ "$SWAP_FLOOR" =~ ^[01]$ ]] || b_die "BENCH_SWAP_FLOOR must be 0 or 1"
case $SWAP_DISCARD in pages | once | both | 0) ;; *) b_die "BENCH_SWAP_DISCARD: pages, once, both or 0" ;; esac
SWAPON_OPTS=(-p 32767)
case $SWAP_DISCARD in pages | once) SWAPON_OPTS+=("--discard=$SWAP_DISCARD") ;; both) SWAPON_OPTS+=(--discard) ;; esac
[[ "$READ_REFILL" =~ ^[01]$ ]] || b_die "BENCH_READ_REFILL must be 0 or 1"
[[ "$FUSE_URING" =~ ^[01]$ ]] || b_die "BENCH_FUSE_URING must be 0 or 1"
[[ "$HOG_PASSES" =~ ^[1-9][0-9]*$ ]] || b_die "BENCH_HOG_PASSES must be a positive number"
for v in SIZE SWAP_SIZE SWAP_CACHE HOG CG_LIMIT; do
	b=$(b_bytes "${!v}") && [ "$b" -ge 1048576 ] ||
		b_die "BENCH_$v=${!v}: want a size of at least 1M (K/M/G suffixes)"
	printf -v "${v}_B" '%s' "$b"
done
SIZE_B=$(((SIZE_B / 1048576) * 1048576))
FIO_CACHE_K=$((SIZE_B / 4 / 1024))
for p in "${PEERS[@]}"; do
	case $p in plain | passthrough_ll | hecache-fs) ;; *) b_die "BENCH_PEERS: unknown peer $p" ;; esac
done
for ph in "${PHASES[@]}"; do
	case $ph in fio | swap) ;; *) b_die "BENCH_PHASES: unknown phase $ph (fio, swap)" ;; esac
done
case $BASE in *[[:space:]]*) b_die "BENCH_DIR must not contain spaces" ;; esac
has_peer() { local x; for x in "${PEERS[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
has_phase() { local x; for x in "${PHASES[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }

T_START=$(date +%s)
mkdir -p "$OUT" || b_die "cannot create $OUT"
RAW=$OUT/raw
rm -rf "$RAW" && mkdir -p "$RAW"
rm -f "$OUT/results.csv" "$OUT/results.png" "$OUT/results.txt"

# ---------------------------------------------------------------- install, build
b_log "installing dependencies (tools/install-deps.sh)"
"$TOP/tools/install-deps.sh" || b_die "tools/install-deps.sh failed"

HCFS=$BUILD/cache-fs/hecache-fs
SWAPHOG=$BUILD/tools/hc-swaphog
if [ ! -x "$HCFS" ] || [ ! -x "$SWAPHOG" ]; then
	b_log "building hecache in $BUILD (log: $RAW/build.log)"
	mkdir -p "$BUILD" || b_die "cannot create $BUILD"
	(
		set -e
		cd "$TOP"
		[ -x configure ] || autoreconf -fi
		cd "$BUILD"
		[ -f Makefile ] || "$TOP/configure"
		make -j"$(nproc)"
	) >"$RAW/build.log" 2>&1 || { tail -n 20 "$RAW/build.log" >&2; b_die "build failed"; }
	[ -x "$HCFS" ] && [ -x "$SWAPHOG" ] || b_die "build did not produce $HCFS and $SWAPHOG"
fi
[ -c /dev/fuse ] || modprobe fuse 2>/dev/null
[ -c /dev/fuse ] || b_die "no /dev/fuse"
modprobe loop 2>/dev/null

# ---------------------------------------------------------------- scratch, cleanup
mkdir -p "$BASE" || b_die "cannot create $BASE"
W=$(mktemp -d "$BASE/hc-bench.XXXXXX") || b_die "mktemp in $BASE failed"
B_SCRATCH=$W
trap b_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# Workloads run through b_run, so a trapped signal interrupts the wait at
# once; as a backstop, a workload that died of SIGINT/SIGTERM ends the run.
interrupted() { case $1 in 130) exit 130 ;; 143) exit 143 ;; esac; }
b_fuse_uring "$FUSE_URING"
FSTYPE=$(findmnt -n -o FSTYPE -T "$W" 2>/dev/null || stat -f -c %T "$W")
[ "$FSTYPE" = tmpfs ] && b_log "warning: $BASE is tmpfs; the peers should sit on a real disk (BENCH_DIR)"
need=$((3 * SIZE_B + 3 * SWAP_SIZE_B))
avail=$(($(df --output=avail -k "$W" | tail -n 1) * 1024))
[ "$avail" -gt "$need" ] || b_die "$W: $((avail >> 20)) MiB free, the bench needs $((need >> 20)) MiB"

# ---------------------------------------------------------------- results
declare -A JOB_DIRECT=() LAT_TOTAL=() VAL=() FAIL=() DOWN=() DEAD=() DIRECT=() LOOPDIO=()
declare -A LAYOUT_DIRECT=() NOTE_DIRECT=() NOTE_DIO=() PID=() MNT=() DIR=() SWAPRUNS=()
NOTES=()
ROWS=()
declare -A ROW_LABEL=() ROW_UNIT=() ROW_BETTER=()
add_row() { ROWS+=("$1"); ROW_LABEL[$1]=$2; ROW_UNIT[$1]=$3; ROW_BETTER[$1]=$4; }

WLS=(randread-qd1 randread-qd16 randwrite-qd1 randwrite-qd16 seqread seqwrite)
declare -A WL_RW=([randread-qd1]=randread [randread-qd16]=randread [randwrite-qd1]=randwrite
	[randwrite-qd16]=randwrite [seqread]=read [seqwrite]=write)
declare -A WL_BS=([randread-qd1]=4k [randread-qd16]=4k [randwrite-qd1]=4k
	[randwrite-qd16]=4k [seqread]=1M [seqwrite]=1M)
declare -A WL_QD=([randread-qd1]=1 [randread-qd16]=16 [randwrite-qd1]=1
	[randwrite-qd16]=16 [seqread]=4 [seqwrite]=4)
if has_phase fio; then
	for wl in "${WLS[@]}"; do
		case ${WL_RW[$wl]} in randread) t="4k randread qd${WL_QD[$wl]}" ;;
		randwrite) t="4k randwrite qd${WL_QD[$wl]}" ;; read) t="1M seq read qd4" ;;
		write) t="1M seq write qd4" ;; esac
		if [ "${WL_BS[$wl]}" = 4k ]; then
			add_row "$wl.perf" "$t" IOPS hi
		else
			add_row "$wl.perf" "$t" MB/s hi
		fi
		add_row "$wl.p99" "$t p99 latency" us lo
	done
fi
if has_phase swap; then
	add_row swap.time "swap: hog -p $HOG_PASSES $HOG, $CG_LIMIT cg" s lo
fi

# oneline TEXT: first line, squeezed, at most 150 characters
oneline() { tr '\n\t' '  ' <<<"$1" | sed 's/  */ /g; s/^ //; s/ $//' | cut -c1-150; }
set_fail() { FAIL["$1|$2"]=$(oneline "$3"); }
fail_rows() { # PEER PREFIX REASON: every row starting with PREFIX
	local r
	for r in "${ROWS[@]}"; do [[ $r == "$2"* ]] && [ -z "${VAL["$r|$1"]:-}" ] && set_fail "$r" "$1" "$3"; done
}
# peer_down PEER REASON: the peer is gone; the rest of its cells fail
peer_down() { [ -n "${DOWN[$1]:-}" ] || DOWN[$1]=$(oneline "$2"); }
# check_daemon PEER: did its daemon die under us?
check_daemon() {
	local p=$1 st=0
	[ "$p" = plain ] || [ "$p" = tmpfs ] && return 0
	[ -n "${DOWN[$p]:-}" ] && return 1
	if ! b_alive "${PID[$p]}"; then
		wait "${PID[$p]}" 2>/dev/null || st=$?
		b_forget B_PIDS "${PID[$p]}"
		PID[$p]=""
		DEAD[$p]=1
		peer_down "$p" "$p daemon died (exit status $st; see $RAW/$p.log)"
		b_log "$p: daemon died (exit status $st): $(tail -n 3 "$RAW/$p.log" | tr '\n' ' ')"
		# unmount the dead mount ("Transport endpoint is not connected")
		if b_is_mounted "${MNT[$p]}"; then
			fusermount3 -u "${MNT[$p]}" 2>/dev/null || umount -l "${MNT[$p]}"
		fi
		b_forget B_MOUNTS "${MNT[$p]}"
		return 1
	fi
	return 0
}

# ---------------------------------------------------------------- passthrough_ll
PTLL=""
if has_peer passthrough_ll; then
	b_log "building passthrough_ll from the libfuse3-dev examples"
	EX=/usr/share/doc/libfuse3-dev/examples
	PB=$W/passthrough_ll-build
	mkdir -p "$PB"
	for f in "$EX"/passthrough_ll.c "$EX"/passthrough_ll.c.gz "$EX"/*.h "$EX"/*.h.gz; do
		[ -f "$f" ] || continue
		case $f in *.gz) gzip -dc "$f" >"$PB/$(basename "$f" .gz)" ;; *) cp "$f" "$PB/" ;; esac
	done
	read -r -a FUSE_FLAGS <<<"$(pkg-config --cflags --libs fuse3)"
	if [ ! -f "$PB/passthrough_ll.c" ]; then
		peer_down passthrough_ll "no passthrough_ll.c in $EX (libfuse3-dev)"
	# HAVE_FALLOCATE/HAVE_COPY_FILE_RANGE: what libfuse's own build defines on Linux
	elif gcc -Wall -O2 -DHAVE_FALLOCATE -DHAVE_COPY_FILE_RANGE -o "$PB/passthrough_ll" \
		"$PB/passthrough_ll.c" "${FUSE_FLAGS[@]}" -lpthread \
		>"$RAW/passthrough_ll-build.log" 2>&1; then
		PTLL=$PB/passthrough_ll
	else
		peer_down passthrough_ll "build failed: $(grep -m1 error "$RAW/passthrough_ll-build.log")"
	fi
fi

# ---------------------------------------------------------------- peers
# start_peer PEER PHASE: mounts the FUSE peers, sets DIR[peer] (where the
# volumes go).
start_peer() {
	local p=$1 ph=$2
	[ -n "${DOWN[$p]:-}" ] && return 1
	case $p in
	plain)
		DIR[$p]=$W/plain
		mkdir -p "${DIR[$p]}"
		;;
	passthrough_ll)
		[ -n "${PID[$p]:-}" ] && return 0
		mkdir -p "$W/passthrough_ll-src"
		MNT[$p]=$W/passthrough_ll-mnt
		b_log "mounting passthrough_ll on ${MNT[$p]} (-o source=$W/passthrough_ll-src)"
		if ! b_start_fuse passthrough_ll "${MNT[$p]}" "$RAW/$p.log" \
			"$PTLL" -f -o source="$W/passthrough_ll-src" "${MNT[$p]}"; then
			peer_down "$p" "$B_ERR"
			return 1
		fi
		PID[$p]=$B_LAST_PID
		DIR[$p]=${MNT[$p]}
		;;
	hecache-fs)
		local cache
		if [ "$ph" = fio ]; then cache=${FIO_CACHE_K}K; else cache=$SWAP_CACHE; fi
		local opts=(-o "cache=$cache")
		[ -n "$HC_IO" ] && opts+=(-o "io=$HC_IO")
		MNT[$p]=$W/hecache-mnt
		mkdir -p "$W/hecache-backing-$ph"
		b_log "mounting hecache-fs on ${MNT[$p]} (backing $W/hecache-backing-$ph, ${opts[*]})"
		if ! b_start_fuse hecache-fs "${MNT[$p]}" "$RAW/$p.log" \
			"$HCFS" "$W/hecache-backing-$ph" "${MNT[$p]}" -f "${opts[@]}"; then
			peer_down "$p" "$B_ERR"
			return 1
		fi
		PID[$p]=$B_LAST_PID
		DIR[$p]=${MNT[$p]}/bench
		mkdir "${DIR[$p]}" || { peer_down "$p" "mkdir ${DIR[$p]} failed"; return 1; }
		;;
	esac
	return 0
}
stop_peer() {
	local p=$1
	[ -n "${PID[$p]:-}" ] || return 0
	check_daemon "$p" || { PID[$p]=""; return 1; }
	[ "$p" = hecache-fs ] && getfattr --absolute-names --only-values -n user.hecache.stats "${MNT[$p]}" \
		>"$RAW/hecache-stats-at-unmount-$(date +%H%M%S).txt" 2>&1
	b_log "unmounting $p"
	if ! b_stop_fuse "${MNT[$p]}" "${PID[$p]}"; then
		NOTES+=("$p: $B_ERR (see $RAW/$p.log)")
		b_log "$p: $B_ERR"
	fi
	PID[$p]=""
}

# probe_direct PEER: can an O_DIRECT 4 KiB write be done in DIR[peer]?
probe_direct() {
	local p=$1 f=${DIR[$1]}/odirect.probe err
	if err=$(dd if=/dev/zero of="$f" bs=4096 count=1 oflag=direct 2>&1 >/dev/null); then
		rm -f "$f"
		return 0
	fi
	rm -f "$f"
	PROBE_ERR=$(oneline "$(grep -m1 -i 'dd:' <<<"$err")")
	return 1
}

# choose_modes PEER: plain and hecache-fs always use O_DIRECT (a failure is
# a result); passthrough_ll uses it only if an O_DIRECT write works on it.
choose_modes() {
	local p=$1
	DIRECT[$p]=1
	LOOPDIO[$p]=1
	NOTE_DIRECT[$p]=""
	if [ "$p" = passthrough_ll ] && ! probe_direct "$p"; then
		DIRECT[$p]=0
		LOOPDIO[$p]=0
		NOTE_DIRECT[$p]="O_DIRECT write fails: $PROBE_ERR"
		b_log "passthrough_ll: $PROBE_ERR -> buffered I/O (direct=0, loop without --direct-io)"
	fi
	LAYOUT_DIRECT[$p]=${DIRECT[$p]}
	# forcing fio's mode is for demonstrations; the layout and the loop
	# device keep the probed mode
	[ "$p" = passthrough_ll ] && [ "$PTLL_DIRECT" != auto ] && DIRECT[$p]=$PTLL_DIRECT
}

# ---------------------------------------------------------------- fio
fio_err() { # FILE: the most telling line of fio's stderr
	local l
	l=$(grep -m1 -iE 'error|err=|invalid|fail' "$1")
	[ -n "$l" ] || l=$(grep -v '^\s*$' "$1" | tail -n 1)
	oneline "$(sed "s/ on file [^:]*: / /" <<<"${l:-no message}")"
}

# seq_write PEER NAME OFFSET SIZE: 1 MiB sequential writes of [OFFSET,
# OFFSET+SIZE) of the peer's fio file (the layout's mode, fsync at the end),
# fio output in $RAW/fio-NAME-PEER.*; on failure 1 and the reason in SW_WHY.
# (--size is the region from --offset: a region past the end of the file
# makes fio cut the file's head to holes.)
seq_write() {
	local p=$1 n=$2 rc
	b_run timeout --foreground -k 10 600 fio --name="$n" --filename="${DIR[$p]}/fio.dat" \
		--offset="$3" --size="$4" --rw=write --bs=1M --iodepth=4 --ioengine=libaio \
		--direct="${LAYOUT_DIRECT[$p]}" --fallocate=none --end_fsync=1 --output-format=json \
		--output="$RAW/fio-$n-$p.json" 2>"$RAW/fio-$n-$p.err"
	rc=$?
	interrupted "$rc"
	SW_WHY=""
	check_daemon "$p" || { SW_WHY=${DOWN[$p]}; return 1; }
	[ "$rc" = 0 ] && return 0
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then SW_WHY="timed out after 600 s"
	else SW_WHY=$(fio_err "$RAW/fio-$n-$p.err"); fi
	return 1
}

run_layout() {
	local p=$1
	b_log "$p: laying out $SIZE fio file (1M sequential writes, direct=${LAYOUT_DIRECT[$p]})"
	seq_write "$p" layout 0 "$SIZE_B" && return 0
	check_daemon "$p" || return 1
	local wl
	for wl in "${WLS[@]}"; do fail_rows "$p" "$wl." "layout: $SW_WHY"; done
	DOWN[$p.fio]=1
	return 1
}

# refill PEER WL: before a read job, the last quarter of the file is
# written again (as the layout), so that every read job starts from the same
# state whatever the jobs before it did: an exclusive cache gives up every
# block a read hits, so a read job would otherwise find the cache as the
# previous jobs left it.
refill() {
	local p=$1 wl=$2 q=$((SIZE_B / 4 / 1048576 * 1048576))
	seq_write "$p" "refill-$wl" $((SIZE_B - q)) "$q" && return 0
	check_daemon "$p" || return 1
	fail_rows "$p" "$wl." "refill before the job: $SW_WHY"
	return 1
}

run_fio() {
	local p=$1 wl=$2 rc
	if [ -n "${DOWN[$p]:-}" ]; then fail_rows "$p" "$wl." "${DOWN[$p]}"; return; fi
	[ -n "${DOWN[$p.fio]:-}" ] && return
	local dir=read json=$RAW/fio-$wl-$p.json err=$RAW/fio-$wl-$p.err
	[[ ${WL_RW[$wl]} == *write ]] && dir="write"
	if [ "$dir" = read ] && [ "$READ_REFILL" = 1 ]; then
		refill "$p" "$wl" || { check_daemon "$p" || fail_rows "$p" "$wl." "${DOWN[$p]}"; return; }
	fi
	local direct=${DIRECT[$p]}
	[ "$dir" = read ] && [ "$p" = passthrough_ll ] && [ "$PTLL_DIRECT_READS" = 1 ] && direct=1
	JOB_DIRECT["$wl|$p"]=$direct
	b_log "$p: $wl (${WL_RW[$wl]} bs=${WL_BS[$wl]} iodepth=${WL_QD[$wl]} direct=$direct, ${RUNTIME}s)"
	b_run timeout --foreground -k 10 $((RUNTIME * 4 + 120)) fio --name="$wl" \
		--filename="${DIR[$p]}/fio.dat" --size="$SIZE_B" --rw="${WL_RW[$wl]}" \
		--bs="${WL_BS[$wl]}" --iodepth="${WL_QD[$wl]}" --ioengine=libaio \
		--direct="$direct" --runtime="$RUNTIME" --time_based --fallocate=none \
		--lat_percentiles=1 --output-format=json --output="$json" 2>"$err"
	rc=$?
	interrupted "$rc"
	if ! check_daemon "$p"; then fail_rows "$p" "$wl." "${DOWN[$p]}"; return; fi
	[ "$p" = hecache-fs ] && getfattr --absolute-names --only-values -n user.hecache.stats "${MNT[$p]}" \
		>"$RAW/hecache-stats-after-$wl.txt" 2>&1
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		fail_rows "$p" "$wl." "fio timed out after $((RUNTIME * 4 + 120)) s"
		return
	fi
	local res e iops bw p99
	# With O_DIRECT, libaio completes asynchronously and clat (submission to
	# completion) is the I/O latency.  Buffered, io_submit does the I/O
	# synchronously and clat is only the reaping of an already complete
	# event; then the total latency lat (= slat + clat) is reported.
	local lat=clat_ns
	[ "$direct" = 0 ] && lat=lat_ns && LAT_TOTAL["$wl.p99|$p"]=1
	# (fio may put messages such as "fio: terminating on signal" before the JSON)
	res=$(sed -n '/^{/,$p' "$json" 2>/dev/null | jq -r --arg d "$dir" --arg l "$lat" '.jobs[0] | "\(.error) \(.[$d].iops) \(.[$d].bw_bytes) \(.[$d][$l].percentile["99.000000"] // 0)"' 2>/dev/null)
	read -r e iops bw p99 <<<"$res"
	if [ "$rc" != 0 ] || [ -z "$res" ] || [ "${e:-1}" != 0 ]; then
		local why
		why=$(fio_err "$err")
		[ "$why" = "no message" ] && why="fio exit $rc, no JSON result: $(oneline "$(head -n 2 "$json" 2>/dev/null)")"
		[ "${e:-0}" != 0 ] && [ "$e" != null ] && why="fio error $e ($(perl -e 'print "".($!=shift)' "$e" 2>/dev/null)): $why"
		fail_rows "$p" "$wl." "$why"
		return
	fi
	if awk -v x="$iops" 'BEGIN { exit !(x + 0 <= 0) }'; then
		fail_rows "$p" "$wl." "fio completed no I/O"
		return
	fi
	if [ "${WL_BS[$wl]}" = 4k ]; then
		VAL["$wl.perf|$p"]=$iops
	else
		VAL["$wl.perf|$p"]=$(awk -v b="$bw" 'BEGIN { printf "%.3f", b / 1e6 }')
	fi
	VAL["$wl.p99|$p"]=$(awk -v n="$p99" 'BEGIN { printf "%.3f", n / 1000 }')
}

# ---------------------------------------------------------------- swap
swap_run() {
	local p=$1 r=$2 dev rc
	local f=${SWAPFILE[$p]} out=$RAW/swap-$p-$r
	[ -n "${DOWN[$p]:-}" ] && return 1
	local dioopt=()
	[ "${LOOPDIO[$p]}" = 1 ] && dioopt=(--direct-io=on)
	if ! dev=$(losetup "${dioopt[@]}" --find --show "$f" 2>"$out.err"); then
		SWAP_ERR="losetup ${dioopt[*]}: $(oneline "$(cat "$out.err")")"
		return 1
	fi
	B_LOOPS+=("$dev")
	local dio
	dio=$(cat "/sys/block/${dev#/dev/}/loop/dio" 2>/dev/null || echo "?")
	NOTE_DIO[$p]=$dio
	if ! mkswap "$dev" >"$out.mkswap" 2>&1; then
		SWAP_ERR="mkswap: $(oneline "$(tail -n 1 "$out.mkswap")")"
		losetup -d "$dev"; b_forget B_LOOPS "$dev"
		return 1
	fi
	if ! swapon "${SWAPON_OPTS[@]}" "$dev" 2>"$out.err"; then
		SWAP_ERR="swapon: $(oneline "$(cat "$out.err")")"
		losetup -d "$dev"; b_forget B_LOOPS "$dev"
		return 1
	fi
	B_SWAPS+=("$dev")
	local others
	others=$(awk -v d="$dev" 'NR > 1 && $1 != d { printf "%s(prio %s) ", $1, $5 }' /proc/swaps)
	if [ -n "$others" ]; then
		OTHER_SWAPS+="$others"
		OTHER_SWAP_RUNS=$((OTHER_SWAP_RUNS + 1))
	fi
	local cg="hc-bench-$$-$p-$r" cgdir
	if ! b_cgroup_create "$cg" "$CG_LIMIT_B" >"$out.cg"; then
		SWAP_ERR="cannot create memory cgroup $cg (cgroup version $(b_cgroup_version))"
		rc=1
	else
		cgdir=$(cat "$out.cg")
		local n0 swpin0 swpout0 t0 t1
		n0=$(dmesg 2>/dev/null | wc -l)
		swpin0=$(awk '$1 == "pswpin" { print $2 }' /proc/vmstat)
		swpout0=$(awk '$1 == "pswpout" { print $2 }' /proc/vmstat)
		t0=$(date +%s.%N)
		b_log "$p: swap run $r/$SWAP_RUNS on $dev (loop dio=$dio): hc-swaphog -p $HOG_PASSES $HOG in a $CG_LIMIT cgroup"
		b_run timeout --foreground -k 10 "$HOG_TIMEOUT" sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' \
			sh "$cgdir" "$SWAPHOG" -p "$HOG_PASSES" "$HOG" >"$out.out" 2>"$out.hog"
		rc=$?
		interrupted "$rc"
		t1=$(date +%s.%N)
		{
			echo "other swap areas: ${others:-none}"
			echo "device=$dev loop_dio=$dio rc=$rc outer_seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
			echo "pswpin=$(($(awk '$1 == "pswpin" { print $2 }' /proc/vmstat) - swpin0)) pswpout=$(($(awk '$1 == "pswpout" { print $2 }' /proc/vmstat) - swpout0)) (system-wide)"
			cat "$out.out" "$out.hog"
		} >"$out.log"
		[ "$p" = hecache-fs ] && getfattr --absolute-names --only-values -n user.hecache.stats "${MNT[$p]}" \
			>"$out.hcstats" 2>&1
		dmesg 2>/dev/null | tail -n +"$((n0 + 1))" | grep -w "${dev#/dev/}" >"$out.dmesg"
		[ -s "$out.dmesg" ] || rm -f "$out.dmesg"
		b_cgroup_remove "$cgdir"
		if [ "$rc" = 0 ]; then
			local secs
			secs=$(sed -n 's/^swaphog .*seconds=\([0-9.]*\).*/\1/p' "$out.out" | tail -n 1)
			if [ -n "$secs" ]; then
				SWAP_SECS=$secs
			else
				SWAP_ERR="no 'swaphog ... seconds=' line"
				rc=1
			fi
		elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
			SWAP_ERR="hc-swaphog timed out after $HOG_TIMEOUT s"
		elif [ "$rc" = 1 ]; then
			SWAP_ERR="DATA CAME BACK WRONG: $(oneline "$(grep -m1 'hc-swaphog:.*\(page\|wrong\)' "$out.hog")")"
		else
			SWAP_ERR="hc-swaphog exit $rc: $(oneline "$(tail -n 1 "$out.hog")")"
		fi
		if [ -f "$out.dmesg" ]; then
			local km
			km="kernel about ${dev#/dev/}: $(oneline "$(head -n 1 "$out.dmesg")")"
			if [ "$rc" = 0 ]; then NOTES+=("$p run $r: $km (see $out.dmesg)")
			else SWAP_ERR="${SWAP_ERR:-} $km"; fi
		fi
	fi
	swapoff "$dev" 2>>"$out.err" || NOTES+=("$p: swapoff $dev failed: $(oneline "$(tail -n 1 "$out.err")")")
	b_is_swap "$dev" || b_forget B_SWAPS "$dev"
	losetup -d "$dev" 2>>"$out.err" && b_forget B_LOOPS "$dev"
	check_daemon "$p" || { SWAP_ERR=${DOWN[$p]}; return 1; }
	return "$rc"
}

# ================================================================ run
b_log "scratch $W ($FSTYPE), results in $OUT; peers: ${PEERS[*]}; phases: ${PHASES[*]}"
b_log "fio: size $SIZE, runtime ${RUNTIME}s per job; hecache-fs cache=${FIO_CACHE_K}K for fio, $SWAP_CACHE for swap"
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

if has_phase fio; then
	T_FIO=$(date +%s)
	for p in "${PEERS[@]}"; do
		start_peer "$p" fio || continue
		choose_modes "$p"
		run_layout "$p"
	done
	for wl in "${WLS[@]}"; do
		for p in "${PEERS[@]}"; do run_fio "$p" "$wl"; done
	done
	for p in "${PEERS[@]}"; do
		[ -z "${DOWN[$p]:-}" ] && rm -f "${DIR[$p]}/fio.dat"
		if [ -n "${DOWN[$p]:-}" ]; then
			for wl in "${WLS[@]}"; do fail_rows "$p" "$wl." "${DOWN[$p]}"; done
		fi
	done
	has_peer hecache-fs && stop_peer hecache-fs
	# a daemon that died under fio gets a fresh mount for the swap phase
	for p in "${!DEAD[@]}"; do
		NOTES+=("$p: ${DOWN[$p]} during fio; remounted for the swap phase")
		unset "DOWN[$p]" "DEAD[$p]"
	done
	T_FIO=$(($(date +%s) - T_FIO))
fi

declare -A SWAPFILE=()
OTHER_SWAPS=""
OTHER_SWAP_RUNS=0
if has_phase swap; then
	T_SWAP=$(date +%s)
	for p in "${PEERS[@]}"; do
		start_peer "$p" swap || continue
		[ -n "${DIRECT[$p]:-}" ] || choose_modes "$p"
		SWAPFILE[$p]=${DIR[$p]}/swap
		if ! fallocate -l "$SWAP_SIZE_B" "${SWAPFILE[$p]}" 2>"$RAW/swapfile-$p.err"; then
			NOTES+=("$p: fallocate of the swap file failed ($(oneline "$(cat "$RAW/swapfile-$p.err")")); made it sparse with truncate")
			rm -f "${SWAPFILE[$p]}"
			truncate -s "$SWAP_SIZE_B" "${SWAPFILE[$p]}" 2>"$RAW/swapfile-$p.err" ||
				peer_down "$p" "cannot create swap file: $(cat "$RAW/swapfile-$p.err")"
		fi
	done
	# The floor: the same workload on a loop device over a file in tmpfs,
	# no storage and no FUSE at all (not a peer: a line under the table).
	# noswap (Linux 6.4+): the file's own pages must never be swapped out,
	# or they go to the loop device they back; that deadlocked the loop
	# worker once (a swap-in of the file's page waiting for its own
	# write-out, queued behind it; DAMON's proactive reclaim paged it out),
	# leaving the swap area and its processes stuck until a reboot.
	FLOOR_PEER=()
	if [ "$SWAP_FLOOR" = 1 ]; then
		mkdir -p "$W/tmpfs"
		if mount -t tmpfs -o "size=$((SWAP_SIZE_B / 1048576 + 64))M,noswap" hc-bench-floor "$W/tmpfs" \
			2>"$RAW/swapfile-tmpfs.err"; then
			B_MOUNTS+=("$W/tmpfs")
			SWAPFILE[tmpfs]=$W/tmpfs/swap
			LOOPDIO[tmpfs]=0
			if fallocate -l "$SWAP_SIZE_B" "${SWAPFILE[tmpfs]}" 2>"$RAW/swapfile-tmpfs.err"; then
				FLOOR_PEER=(tmpfs)
			else
				NOTES+=("swap floor not measured: fallocate in tmpfs: $(oneline "$(cat "$RAW/swapfile-tmpfs.err")")")
			fi
		else
			NOTES+=("swap floor not measured: mount tmpfs: $(oneline "$(cat "$RAW/swapfile-tmpfs.err")")")
		fi
	fi
	for ((r = 1; r <= SWAP_RUNS; r++)); do
		for p in "${PEERS[@]}" "${FLOOR_PEER[@]}"; do
			[ -n "${DOWN[$p]:-}" ] && continue
			[ -n "${FAIL["swap.time|$p"]:-}" ] && continue
			SWAP_ERR="" SWAP_SECS=""
			if swap_run "$p" "$r"; then
				SWAPRUNS[$p]+="$SWAP_SECS "
			else
				set_fail swap.time "$p" "run $r: ${SWAP_ERR:-unknown error}"
				b_log "$p: swap run $r failed: ${SWAP_ERR:-unknown error}"
			fi
		done
	done
	for p in "${PEERS[@]}"; do
		if [ -n "${DOWN[$p]:-}" ]; then fail_rows "$p" swap. "${DOWN[$p]}"; continue; fi
		[ -n "${FAIL["swap.time|$p"]:-}" ] && continue
		# shellcheck disable=SC2086
		VAL["swap.time|$p"]=$(b_median ${SWAPRUNS[$p]})
		rm -f "${SWAPFILE[$p]}"
	done
	if [ ${#FLOOR_PEER[@]} -gt 0 ]; then
		if [ -n "${FAIL["swap.time|tmpfs"]:-}" ]; then
			NOTES+=("swap floor (tmpfs) failed: ${FAIL["swap.time|tmpfs"]}")
		elif [ -n "${SWAPRUNS[tmpfs]:-}" ]; then
			# shellcheck disable=SC2086
			FLOOR_S=$(b_median ${SWAPRUNS[tmpfs]})
		fi
		rm -f "${SWAPFILE[tmpfs]}"
	fi
	if b_is_mounted "$W/tmpfs"; then umount "$W/tmpfs" && b_forget B_MOUNTS "$W/tmpfs"; fi
	[ -n "$OTHER_SWAPS" ] && NOTES+=("other swap areas were active during $OTHER_SWAP_RUNS of the swap runs (ours had priority 32767; equal priorities share): $(tr ' ' '\n' <<<"$OTHER_SWAPS" | sort -u | grep . | tr '\n' ' ')")
	T_SWAP=$(($(date +%s) - T_SWAP))
fi
for p in passthrough_ll hecache-fs; do has_peer "$p" && stop_peer "$p"; done
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------- report
fmt_val() { # ROW VALUE
	case ${ROW_UNIT[$1]} in
	IOPS | MB/s) awk -v x="$2" 'BEGIN { printf "%.0f", x }' ;;
	us) awk -v x="$2" 'BEGIN { f = x < 10 ? "%.1f" : "%.0f"; printf f, x }' ;;
	s) awk -v x="$2" 'BEGIN { printf "%.2f", x }' ;;
	esac
}
ratio() { # ROW PEER_A PEER_B: A relative to B, > 1 = A better
	local a=${VAL["$1|$2"]:-} b=${VAL["$1|$3"]:-}
	[ -n "$a" ] && [ -n "$b" ] || return 1
	awk -v a="$a" -v b="$b" -v d="${ROW_BETTER[$1]}" 'BEGIN {
		if (a <= 0 || b <= 0) exit 1
		printf "%.2f", (d == "hi" ? a / b : b / a) }'
}
declare -A FOOT=()
FOOTS=()
cell() { # ROW PEER -> CELL, the text of a table cell (no subshell: footnotes)
	local k="$1|$2"
	if ! has_peer "$2"; then CELL="-"; return; fi
	if [ -n "${VAL[$k]:-}" ]; then
		CELL=$(fmt_val "$1" "${VAL[$k]}")
		[ -n "${LAT_TOTAL[$k]:-}" ] && CELL+="*"
		return
	fi
	local why=${FAIL[$k]:-not run}
	if [ -z "${FOOT[$why]:-}" ]; then FOOTS+=("$why"); FOOT[$why]=${#FOOTS[@]}; fi
	CELL="failed[${FOOT[$why]}]"
}
csv_q() { local s=${1//\"/\"\"}; printf '"%s"' "$s"; }

TABLE=$RAW/table.txt
{
	echo "hecache bench, $(date '+%F %T %Z'), $(uname -r), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), backing $FSTYPE in $BASE"
	echo "fio: $SIZE file, ${RUNTIME}s per job, libaio; hecache-fs cache=$((FIO_CACHE_K / 1024))M (fio), $SWAP_CACHE (swap)"
	has_phase swap && echo "swap: $SWAP_SIZE swap volume on a loop device per peer, swapon ${SWAPON_OPTS[*]}, hc-swaphog -p $HOG_PASSES $HOG in a $CG_LIMIT memory cgroup, median of $SWAP_RUNS runs"
	echo "FUSE over io_uring (fuse.enable_uring): $B_FUSE_URING; only hecache-fs asks for it (libfuse 3.14 cannot)"
	echo "ratio = hecache-fs / passthrough_ll for IOPS and MB/s, passthrough_ll / hecache-fs for p99"
	echo "latency and wall time: > 1.00 means hecache-fs is better in every row."
	echo
	printf '%-40s %14s %14s %14s %8s\n' workload plain passthrough_ll hecache-fs hc/ptll
	printf '%-40s %14s %14s %14s %8s\n' "----------------------------------------" \
		"--------------" "--------------" "--------------" "--------"
	if has_phase fio; then
		c=()
		for p in "${ALL_PEERS[@]}"; do
			if has_peer "$p" && [ -n "${DIRECT[$p]:-}" ]; then
				if [ "$p" = passthrough_ll ] && [ "${DIRECT[$p]}" = 0 ] && [ "$PTLL_DIRECT_READS" = 1 ]; then
					c+=("direct=0,rd=1")
				else
					c+=("direct=${DIRECT[$p]}")
				fi
			else c+=("-"); fi
		done
		printf '%-40s %14s %14s %14s %8s\n' "fio mode" "${c[@]}" ""
	fi
	if has_phase swap; then
		c=()
		for p in "${ALL_PEERS[@]}"; do
			if has_peer "$p" && [ -n "${NOTE_DIO[$p]:-}" ]; then
				[ "${NOTE_DIO[$p]}" = 1 ] && c+=("loop dio=on") || c+=("loop buffered")
			else c+=("-"); fi
		done
		printf '%-40s %14s %14s %14s %8s\n' "swap loop device mode" "${c[@]}" ""
	fi
	for r in "${ROWS[@]}"; do
		lab="${ROW_LABEL[$r]} (${ROW_UNIT[$r]})"
		[ "$r" = swap.time ] && lab="${ROW_LABEL[$r]} (s, median)"
		c=()
		for p in "${ALL_PEERS[@]}"; do cell "$r" "$p"; c+=("$CELL"); done
		rt=$(ratio "$r" hecache-fs passthrough_ll) || rt="-"
		printf '%-40s %14s %14s %14s %8s\n' "$lab" "${c[@]}" "$rt"
	done
	if has_phase swap; then
		echo
		for p in "${PEERS[@]}"; do
			[ -n "${SWAPRUNS[$p]:-}" ] && echo "swap runs (s), $p: ${SWAPRUNS[$p]}"
		done
		# The daemon's counters after the last swap run (they add up over the runs).
		hcs=$(ls -v "$RAW"/swap-hecache-fs-*.hcstats 2>/dev/null | tail -n 1)
		[ -n "$hcs" ] && awk '$1 == "total" { for (i = 2; i < NF; i += 2) v[$i] = $(i + 1) }
			END { if (v["hits"] + v["misses"] > 0)
				printf "hecache-fs over its swap runs: %d blocks read, %.1f%% cache hits; %d written back, %d discarded (swapon %s)\n",
					v["hits"] + v["misses"], 100 * v["hits"] / (v["hits"] + v["misses"]),
					v["writebacks"], v["discards"], opts }' opts="${SWAPON_OPTS[*]}" "$hcs"
		if [ -n "${FLOOR_S:-}" ]; then
			echo "swap floor: the same runs on a loop device over tmpfs (no storage, no FUSE): median $FLOOR_S s (${SWAPRUNS[tmpfs]% })"
			for p in "${PEERS[@]}"; do
				[ -n "${VAL["swap.time|$p"]:-}" ] &&
					printf '  %s / floor: %s\n' "$p" "$(awk -v a="${VAL["swap.time|$p"]}" -v b="$FLOOR_S" 'BEGIN { printf "%.2f", a / b }')"
			done
		fi
	fi
	for p in "${PEERS[@]}"; do
		[ -n "${NOTE_DIRECT[$p]:-}" ] && echo "note: $p: ${NOTE_DIRECT[$p]} (known limitation; hence its modes above)"
	done
	[ ${#LAT_TOTAL[@]} -gt 0 ] && echo "* buffered (direct=0) libaio does the I/O inside io_submit, so clat is only the reaping;" \
		"these cells are p99 of the total latency lat (submission + completion)."
	for n in "${NOTES[@]}"; do echo "note: $n"; done
	i=0
	for f in "${FOOTS[@]}"; do i=$((i + 1)); echo "[$i] failed: $f"; done
	echo "load average: start $LOAD0, end $LOAD1; raw fio JSON and logs: $RAW"
} >"$TABLE"

CSV=$OUT/results.csv
{
	echo "row,workload,unit,better,plain,passthrough_ll,hecache-fs,ratio_hecache_vs_passthrough_ll,ratio_hecache_vs_plain,note"
	for r in "${ROWS[@]}"; do
		printf '%s,%s,%s,%s' "$r" "$(csv_q "${ROW_LABEL[$r]}")" "${ROW_UNIT[$r]}" "${ROW_BETTER[$r]}"
		for p in "${ALL_PEERS[@]}"; do
			k="$r|$p"
			if [ -n "${VAL[$k]:-}" ]; then printf ',%s' "${VAL[$k]}"
			elif has_peer "$p"; then printf ',%s' "$(csv_q "failed: ${FAIL[$k]:-not run}")"
			else printf ','; fi
		done
		printf ',%s' "$(ratio "$r" hecache-fs passthrough_ll || true)"
		printf ',%s' "$(ratio "$r" hecache-fs plain || true)"
		n=""
		for p in "${ALL_PEERS[@]}"; do
			[ -n "${LAT_TOTAL["$r|$p"]:-}" ] && n+="$p: p99 of total latency lat (buffered libaio); "
			[ -n "${JOB_DIRECT["${r%.*}|$p"]:-}" ] && [[ $r == *.perf ]] && n+="$p direct=${JOB_DIRECT["${r%.*}|$p"]}; "
		done
		printf ',%s\n' "$(csv_q "${n%; }")"
	done
} >"$CSV"

if command -v gnuplot >/dev/null; then
	DAT=$RAW/ratios.dat
	: >"$DAT"
	for r in "${ROWS[@]}"; do
		rt=$(ratio "$r" hecache-fs passthrough_ll) || continue
		printf '"%s"\t%s\n' "${ROW_LABEL[$r]}" "$rt" >>"$DAT"
	done
	if [ -s "$DAT" ]; then
		gnuplot >"$RAW/gnuplot.log" 2>&1 <<EOF || b_log "gnuplot failed (see $RAW/gnuplot.log)"
set terminal pngcairo size 1100,600 noenhanced
set output "$OUT/results.png"
set title "hecache-fs vs passthrough_ll (> 1 = hecache-fs better), $(date +%F)"
set style data histograms
set style fill solid 0.7 border -1
set style histogram clustered gap 1
set rmargin 18
set yrange [0:*]
set grid ytics
set xtics rotate by -35 left
set ylabel "ratio"
set bmargin 9
unset key
plot "$DAT" using 2:xtic(1) lc rgb "#3070b0", 1 with lines lc rgb "red" dt 2
EOF
	fi
fi

T_ALL=$(($(date +%s) - T_START))
echo
cat "$TABLE"
echo "total time ${T_ALL}s (fio ${T_FIO:-0}s, swap ${T_SWAP:-0}s); table: $TABLE, csv: $CSV$([ -f "$OUT/results.png" ] && echo ", chart: $OUT/results.png")"
cp "$TABLE" "$OUT/results.txt"
exit 0
