#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# swap-reconcile against issue 3's performance goals, in one run:
#
# 1. write: fio 4 KiB random writes (direct=1, libaio, iodepth 16 and 1,
#    unique data: refill_buffers, randrepeat=0) for BENCH_RUNTIME (15) s plus
#    the final fsync (end_fsync=1; IOPS = writes / wall time of the fio run,
#    fsync included) on a BENCH_SIZE (512M) volume of a hecache-fs mount with
#    -o dedup=domain (the default: every written-back block is hashed and
#    looked up) and of one with -o dedup=off, cache a quarter of the file so
#    write-back really happens.  Both mounts stay up; the runs alternate
#    (on/off, then off/on), BENCH_ROUNDS (5) rounds; the ratio is the
#    median of the rounds' on/off ratios (pairs run back to back).  Also the
#    daemon's CPU time per write (from /proc, less noisy than IOPS).
#    Goal: IOPS dedup on / dedup off >= 0.9.
# 2. copy: BENCH_COPY_SIZE (1G) of unique data, written and fsynced first,
#    copied by copy_file_range between two volumes of one domain
#    (references: no data read or written) and, as the same copy done with
#    reads and writes, into a volume of another domain (no dedup can elide
#    the writes there), two ways: (a) the same copy_file_range loop, which
#    the daemon answers EOPNOTSUPP and the kernel's FUSE client then copies
#    by splice (reads and writes through the daemon); (b) a
#    copy loop with O_DIRECT pread/pwrite of 1 MiB (dd iflag=direct
#    oflag=direct bs=1M), what a VMM without references does.  Each timed
#    from the first call to the end of fsync of the destination (in the
#    helper, so interpreter start-up is not counted).  The ratio is taken
#    against the faster of (a) and (b).  Rounds rotate the order.
#    Goal: references >= 20x faster.
# 3. mount: BENCH_INDIRECTIONS (1048576) indirections, made by
#    copy_file_range of a sparse source (4 GiB) to another volume of its
#    domain; then the time from starting hecache-fs to a usable mount point
#    (the mount in /proc/mounts and a stat + 4 KiB read of the copy
#    succeed), (b) after SIGKILL of the daemon right after the copy and its
#    fsync (the maps only in the journal: replay; meta.log is checked to
#    hold them), and (a) after a clean unmount (checkpoint written).  The
#    number of indirections is read back (hectl --json map) after every
#    mount.  A fresh backing directory each round; also the mount time of an
#    empty backing directory for comparison.  Goal: < 1 s each.
#
# Usage (root): bench/reconcile.sh   (HECACHE_BUILDDIR: the build tree,
# default the repository).  Knobs: BENCH_ROUNDS, BENCH_RUNTIME, BENCH_SIZE,
# BENCH_COPY_SIZE, BENCH_INDIRECTIONS, BENCH_PARTS ("write copy mount"),
# BENCH_DIR (/var/tmp), BENCH_PERF=1 (perf samples of the daemon during the
# write runs: the share of its CPU time in the dedup code, per write).  Exit status 0
# when every measured goal is met, 1 when one is missed or a step failed.
set -uo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
. "$TOP/bench/lib.sh"
BUILD=${HECACHE_BUILDDIR:-$TOP}
ROUNDS=${BENCH_ROUNDS:-5}
RUNTIME=${BENCH_RUNTIME:-15}
SIZE=${BENCH_SIZE:-512M}
COPY_SIZE=${BENCH_COPY_SIZE:-1G}
NIND=${BENCH_INDIRECTIONS:-1048576}
BASE=${BENCH_DIR:-/var/tmp}
read -r -a PARTS <<<"${BENCH_PARTS:-write copy mount}"
HCFS=$BUILD/cache-fs/hecache-fs
HECTL=$BUILD/tools/hectl

[ "$(id -u)" = 0 ] || b_die "run as root"
for x in "$HCFS" "$HECTL"; do [ -x "$x" ] || b_die "no $x: build first (HECACHE_BUILDDIR)"; done
for x in fio jq python3 fusermount3; do command -v "$x" >/dev/null || b_die "$x is not installed"; done
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || b_die "BENCH_ROUNDS must be a positive number"
[[ "$RUNTIME" =~ ^[1-9][0-9]*$ ]] || b_die "BENCH_RUNTIME must be a number of seconds"
[[ "$NIND" =~ ^[1-9][0-9]*$ ]] || b_die "BENCH_INDIRECTIONS must be a positive number"
SIZE_B=$(b_bytes "$SIZE") && [ "$SIZE_B" -ge 4194304 ] || b_die "BENCH_SIZE: at least 4M"
COPY_B=$(b_bytes "$COPY_SIZE") && [ "$COPY_B" -ge 4194304 ] || b_die "BENCH_COPY_SIZE: at least 4M"
SIZE_B=$((SIZE_B / 1048576 * 1048576))
COPY_B=$((COPY_B / 1048576 * 1048576))
for p in "${PARTS[@]}"; do
	case $p in write | copy | mount) ;; *) b_die "BENCH_PARTS: unknown part $p (write copy mount)" ;; esac
done
has_part() { local x; for x in "${PARTS[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
[ -c /dev/fuse ] || modprobe fuse 2>/dev/null
[ -c /dev/fuse ] || b_die "no /dev/fuse"

mkdir -p "$BASE" || b_die "cannot create $BASE"
W=$(mktemp -d "$BASE/hc-reconcile.XXXXXX") || b_die "mktemp in $BASE failed"
B_SCRATCH=$W
trap b_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
need=0
has_part write && need=$((need + 2 * SIZE_B))
has_part copy && need=$((need + 3 * COPY_B))
avail=$(($(df --output=avail -k "$W" | tail -n 1) * 1024))
[ "$avail" -gt $((need + (1 << 30))) ] || b_die "$W: $((avail >> 20)) MiB free, need $((need >> 20)) MiB + 1 GiB"
T_START=$(date +%s)
TICKS=$(getconf CLK_TCK)

# A fifo nobody writes: read -t on it is a sleep without a fork.
mkfifo "$W/tick" && exec {TICK}<>"$W/tick" || b_die "mkfifo failed"
nap() { read -r -t "$1" -u "$TICK" _ 2>/dev/null; return 0; }
now_ns() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
# daemon CPU time (utime + stime, all threads) in clock ticks
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

PY=$W/copy.py
cat >"$PY" <<'PYEOF'
# copy.py cfr SRC DST LEN CHUNK | rw SRC DST LEN BS | check SRC DST LEN N
# cfr, rw: prints the seconds from the first call to the end of fsync(DST).
import mmap, os, random, sys, time
mode, src, dst, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
B = 4096
if mode == "cfr":
    chunk = int(sys.argv[5])
    fi = os.open(src, os.O_RDONLY)
    fo = os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)
    t0 = time.monotonic()
    done = 0
    while done < n:
        r = os.copy_file_range(fi, fo, min(chunk, n - done), done, done)
        if r <= 0:
            sys.exit("copy_file_range returned %d after %d bytes" % (r, done))
        done += r
    os.fsync(fo)
    print("%.6f" % (time.monotonic() - t0))
elif mode == "rw":
    bs = int(sys.argv[5])
    fi = os.open(src, os.O_RDONLY | os.O_DIRECT)
    fo = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_DIRECT, 0o644)
    buf = mmap.mmap(-1, bs)		# page-aligned
    t0 = time.monotonic()
    done = 0
    while done < n:
        k = os.preadv(fi, [buf], done)
        if k <= 0:
            sys.exit("read returned %d at %d" % (k, done))
        mv = memoryview(buf)[:k]
        w = 0
        while w < k:
            w += os.pwrite(fo, mv[w:], done + w)
        done += k
    os.fsync(fo)
    print("%.6f" % (time.monotonic() - t0))
elif mode == "check":		# N random blocks (and the first, the last) equal
    fi, fo = os.open(src, os.O_RDONLY), os.open(dst, os.O_RDONLY)
    nb = n // B
    for b in [0, nb - 1] + [random.randrange(nb) for _ in range(int(sys.argv[5]))]:
        if os.pread(fi, B, b * B) != os.pread(fo, B, b * B):
            sys.exit("%s block %d differs from %s" % (dst, b, src))
PYEOF

# indirections DOMAIN/VOLUME MNT: the blocks mapped elsewhere than home,
# a hole or ZERO (hectl --json map)
indirections() {
	"$HECTL" -m "$2" --json map "$1" 2>>"$W/hectl.err" |
		jq '[.extents[] | select(.target != "home" and .target != "hole" and .target != "zero")
		     | .count] | add // 0'
}

# mount_timed BACKING MNT LOG PROBE OPTS: starts hecache-fs (we own its PID,
# B_LAST_PID) and sets MT to the seconds until MNT is in /proc/mounts and
# a stat + 4 KiB read of MNT/PROBE succeed (PROBE empty: stat of MNT).
mount_timed() {
	local back=$1 mnt=$2 log=$3 probe=$4 opts=$5 t0 t1 mp rest ok=0 i
	mkdir -p "$mnt"
	b_is_mounted "$mnt" && b_die "$mnt is still mounted"
	t0=$(now_ns)
	"$HCFS" "$back" "$mnt" -f -o "$opts" >>"$log" 2>&1 &
	B_LAST_PID=$!
	B_PIDS+=("$B_LAST_PID")
	B_MOUNTS+=("$mnt")
	for ((i = 0; i < 60000; i++)); do
		ok=0
		while read -r _ mp rest; do
			[ "$mp" = "$mnt" ] && [[ $rest == fuse* ]] && { ok=1; break; }
		done </proc/mounts
		if [ "$ok" = 1 ]; then
			if [ -z "$probe" ]; then
				[ -d "$mnt/." ] && break
			elif [ -f "$mnt/$probe" ] &&
				dd if="$mnt/$probe" of=/dev/null bs=4096 count=1 status=none 2>/dev/null; then
				break
			fi
		fi
		b_alive "$B_LAST_PID" || b_die "hecache-fs exited at start: $(tail -n 1 "$log")"
		nap 0.001
	done
	t1=$(now_ns)
	[ "$i" -lt 60000 ] || b_die "$mnt not usable within 60 s"
	MT=$(secs "$t0" "$t1")
}
mount_plain() { # BACKING MNT LOG OPTS
	b_start_fuse hecache-fs "$2" "$3" "$HCFS" "$1" "$2" -f -o "$4" || b_die "mount: $B_ERR"
}
# sigkill MNT PID: SIGKILL our daemon, detach its dead mount
sigkill() {
	kill -9 "$2" 2>/dev/null
	wait "$2" 2>/dev/null
	b_forget B_PIDS "$2"
	fusermount3 -uz "$1" 2>/dev/null || umount -l "$1" 2>/dev/null
	b_forget B_MOUNTS "$1"
}
median() { b_median "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else print "-" }'; }

# ------------------------------------------------------------------ 1. write
declare -A WMNT=() WPID=() IOPS=() CPUW=() PERFS=() DSHARE=()
QDS=(16 1)
fio_write() { # MODE QD ROUND
	local m=$1 qd=$2 r=$3 out=$W/fio-$1-qd$2-$3 t0 t1 c0 c1 perfpid=""
	c0=$(cpu_ticks "${WPID[$m]}")
	if [ "${BENCH_PERF:-0}" = 1 ]; then
		perf record -q -F 999 -g -p "${WPID[$m]}" -o "$out.perf" >/dev/null 2>&1 &
		perfpid=$!
		B_PIDS+=("$perfpid")
	fi
	t0=$(now_ns)
	b_run fio --name="w$qd" --filename="${WMNT[$m]}/bench/fio" --size="$SIZE_B" \
		--rw=randwrite --bs=4k --direct=1 --ioengine=libaio --iodepth="$qd" \
		--refill_buffers --randrepeat=0 --norandommap --fallocate=none \
		--time_based --runtime="$RUNTIME" --end_fsync=1 \
		--output-format=json --output="$out.json" 2>"$out.err" ||
		b_die "fio (dedup=$m, qd$qd) failed: $(tail -n 1 "$out.err")"
	t1=$(now_ns)
	if [ -n "$perfpid" ]; then
		kill -INT "$perfpid" 2>/dev/null
		wait "$perfpid" 2>/dev/null
		b_forget B_PIDS "$perfpid"
		# self samples in the dedup code: hashing, the index, candidates
		DSHARE[$m.$qd]+="$(perf report -q -i "$out.perf" --no-children --sort sym -g none 2>/dev/null |
			awk '/XXH3|hindex|find_phys|try_share/ { s += $1 } END { printf "%.2f", s }') "
		PERFS[$m.$qd]+="$out.perf "
	fi
	b_alive "${WPID[$m]}" || b_die "hecache-fs (dedup=$m) died during fio"
	c1=$(cpu_ticks "${WPID[$m]}")
	local ios
	ios=$(jq '.jobs[0].write.total_ios' "$out.json") || b_die "no fio result in $out.json"
	IOPS[$m.$qd]+="$(awk -v n="$ios" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / ((b - a) / 1e9) }') "
	CPUW[$m.$qd]+="$(awk -v n="$ios" -v c=$((c1 - c0)) -v t="$TICKS" 'BEGIN { printf "%.2f", c / t / n * 1e6 }') "
}

if has_part write; then
	cache=$((SIZE_B / 4 / 1024))K
	for m in domain off; do
		WMNT[$m]=$W/w-$m
		mkdir -p "$W/wb-$m"
		mount_plain "$W/wb-$m" "${WMNT[$m]}" "$W/daemon-w-$m.log" "cache=$cache,dedup=$m"
		WPID[$m]=$B_LAST_PID
		"$HECTL" -m "${WMNT[$m]}" --json status | jq -e --arg m "$m" '.dedup == $m' >/dev/null ||
			b_die "mount with dedup=$m does not report dedup $m"
		mkdir "${WMNT[$m]}/bench" && truncate -s "$SIZE_B" "${WMNT[$m]}/bench/fio" ||
			b_die "cannot create the fio volume (dedup=$m)"
	done
	for ((r = 1; r <= ROUNDS; r++)); do
		order=(domain off)
		[ $((r % 2)) = 0 ] && order=(off domain)
		for qd in "${QDS[@]}"; do
			for m in "${order[@]}"; do
				b_log "write round $r/$ROUNDS: qd$qd, dedup=$m (${RUNTIME} s + fsync)"
				fio_write "$m" "$qd" "$r"
			done
		done
	done
	for m in domain off; do
		"$HECTL" -m "${WMNT[$m]}" --json stats >"$W/stats-w-$m.json" 2>&1
		b_stop_fuse "${WMNT[$m]}" "${WPID[$m]}" || b_die "unmount (dedup=$m): $B_ERR"
	done
fi

# ------------------------------------------------------------------ 2. copy
declare -A CT=()
CMODES=(ref kern dio)
copy_one() { # MODE ROUND MNT
	local m=$1 r=$2 mnt=$3 dst out
	case $m in
	ref) dst=d1/ref.$r ;;
	kern) dst=d2/kern.$r ;;
	dio) dst=d2/dio.$r ;;
	esac
	case $m in
	ref | kern) out=$(python3 "$PY" cfr "$mnt/d1/src" "$mnt/$dst" "$COPY_B" "$COPY_B" 2>&1) ;;
	dio) out=$(python3 "$PY" rw "$mnt/d1/src" "$mnt/$dst" "$COPY_B" 1048576 2>&1) ;;
	esac || b_die "copy ($m, round $r) failed: $out"
	CT[$m]+="$out "
	python3 "$PY" check "$mnt/d1/src" "$mnt/$dst" "$COPY_B" 64 || b_die "copy ($m) differs from the source"
	local ind
	ind=$(indirections "$dst" "$mnt") || b_die "hectl map $dst failed"
	if [ "$m" = ref ]; then
		[ "$ind" = $((COPY_B / 4096)) ] ||
			b_die "reference copy: $ind indirections, expected $((COPY_B / 4096))"
	else
		[ "$ind" = 0 ] || b_die "$m copy: $ind indirections, expected none (a real copy)"
	fi
	rm -f "$mnt/$dst" || b_die "rm $dst failed"
}
if has_part copy; then
	mnt=$W/c-mnt
	mkdir -p "$W/cb"
	mount_plain "$W/cb" "$mnt" "$W/daemon-c.log" "cache=$((COPY_B / 4 / 1024))K"
	cpid=$B_LAST_PID
	mkdir "$mnt/d1" "$mnt/d2" || b_die "mkdir in $mnt failed"
	b_log "copy: writing the $COPY_SIZE source (unique data, fsync)"
	b_run fio --name=src --filename="$mnt/d1/src" --size="$COPY_B" --rw=write --bs=1M \
		--direct=1 --ioengine=libaio --iodepth=4 --refill_buffers --randrepeat=0 \
		--fallocate=none --end_fsync=1 --output="$W/fio-src.out" 2>"$W/fio-src.err" ||
		b_die "writing the source failed: $(tail -n 1 "$W/fio-src.err")"
	for ((r = 1; r <= ROUNDS; r++)); do
		k=$(((r - 1) % 3))
		for m in "${CMODES[@]:k}" "${CMODES[@]:0:k}"; do
			b_log "copy round $r/$ROUNDS: $m"
			copy_one "$m" "$r" "$mnt"
		done
	done
	b_alive "$cpid" || b_die "hecache-fs died during the copies"
	b_stop_fuse "$mnt" "$cpid" || b_die "unmount: $B_ERR"
fi

# ------------------------------------------------------------------ 3. mount
declare -A MTS=()
REPLAYED=""
if has_part mount; then
	mnt=$W/m-mnt
	mopts=cache=64M
	SRC_B=$((NIND * 4096))
	for ((r = 1; r <= ROUNDS; r++)); do
		back=$W/mb-$r
		mkdir -p "$back"
		for _ in 1 2 3; do
			# first mount formats the backing directory: not timed
			mount_plain "$back" "$mnt" "$W/daemon-m.log" "$mopts"
			b_stop_fuse "$mnt" "$B_LAST_PID" || b_die "unmount: $B_ERR"
			mount_timed "$back" "$mnt" "$W/daemon-m.log" "" "$mopts"
			t_empty=$MT
			pid=$B_LAST_PID
			mkdir "$mnt/d" && truncate -s "$SRC_B" "$mnt/d/src" || b_die "cannot create d/src"
			b_log "mount round $r/$ROUNDS: $NIND indirections (copy_file_range of a sparse $((SRC_B >> 20)) MiB)"
			out=$(python3 "$PY" cfr "$mnt/d/src" "$mnt/d/dst" "$SRC_B" $((1 << 30)) 2>&1) ||
				b_die "copy failed: $out"
			# the copy is committed (before its reply) and fsynced: no
			# final checkpoint, before the 1 s timer may write one
			sigkill "$mnt" "$pid"
			logsz=$(stat -c %s "$back/meta.log" 2>/dev/null || echo 0)
			[ $((logsz / 64)) -ge "$NIND" ] && break
			b_log "the timer checkpointed before SIGKILL (meta.log $logsz bytes); again"
			rm -rf "$back" && mkdir -p "$back"
		done
		[ $((logsz / 64)) -ge "$NIND" ] || b_die "could not leave the indirections in the journal"
		REPLAYED+="$((logsz / 64)) "
		mount_timed "$back" "$mnt" "$W/daemon-m.log" d/dst "$mopts"
		t_replay=$MT
		n=$(indirections d/dst "$mnt") || b_die "hectl map d/dst failed"
		[ "$n" = "$NIND" ] || b_die "after replay: $n indirections, expected $NIND"
		b_stop_fuse "$mnt" "$B_LAST_PID" || b_die "unmount: $B_ERR"
		[ "$(stat -c %s "$back/meta.log")" -lt 4096 ] || b_log "warning: meta.log not emptied by the clean unmount"
		mount_timed "$back" "$mnt" "$W/daemon-m.log" d/dst "$mopts"
		t_ckpt=$MT
		n=$(indirections d/dst "$mnt") || b_die "hectl map d/dst failed"
		[ "$n" = "$NIND" ] || b_die "after checkpoint load: $n indirections, expected $NIND"
		b_stop_fuse "$mnt" "$B_LAST_PID" || b_die "unmount: $B_ERR"
		MTS[empty]+="$t_empty "
		MTS[replay]+="$t_replay "
		MTS[ckpt]+="$t_ckpt "
		CKPT_SZ=$(stat -c %s "$back/meta.ckpt" 2>/dev/null || echo 0)
		rm -rf "$back"
		b_log "mount round $r: empty $t_empty s, replay $t_replay s, checkpoint $t_ckpt s"
	done
fi

# ------------------------------------------------------------------ table
verdict() { # VALUE OP LIMIT -> PASS|MISS
	awk -v v="$1" -v l="$3" -v op="$2" \
		'BEGIN { print ((op == ">=" ? v >= l : v < l) ? "PASS" : "MISS") }'
}
# "a1 a2 .." "b1 b2 ..": a1/b1 a2/b2 ..
paired_ratios() {
	paste -d' ' <(tr -s ' ' '\n' <<<"$1") <(tr -s ' ' '\n' <<<"$2") |
		awk 'NF == 2 && $2 > 0 { printf "%.3f ", $1 / $2 }'
}
print_table() {
printf '\nswap-reconcile, issue 3 goals: %s, %s rounds (medians), %s CPUs, load %s\n' \
	"$(date -u +%FT%TZ)" "$ROUNDS" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %12s %12s %8s %8s %6s\n' "measure" "value" "baseline" "ratio" "goal" "result"
if has_part write; then
	for qd in "${QDS[@]}"; do
		# shellcheck disable=SC2086
		on=$(median ${IOPS[domain.$qd]})
		# shellcheck disable=SC2086
		off=$(median ${IOPS[off.$qd]})
		# the median of the rounds' ratios: each round's pair ran back to
		# back, so its ratio is not moved by the machine's load drifting
		# between rounds (the noisy machine of bench/README.md)
		# shellcheck disable=SC2046
		rt=$(median $(paired_ratios "${IOPS[domain.$qd]}" "${IOPS[off.$qd]}"))
		printf '%-44s %12s %12s %8s %8s %6s\n' "4k randwrite qd$qd IOPS, dedup on / off" \
			"$on" "$off" "$rt" ">= 0.9" "$(verdict "$rt" '>=' 0.9)"
	done
	for qd in "${QDS[@]}"; do
		# shellcheck disable=SC2086
		on=$(median ${CPUW[domain.$qd]})
		# shellcheck disable=SC2086
		off=$(median ${CPUW[off.$qd]})
		printf '%-44s %12s %12s %8s %8s %6s\n' "  daemon CPU us per write qd$qd, on / off" \
			"$on" "$off" "$(ratio "$on" "$off")" "" ""
	done
fi
if has_part copy; then
	# shellcheck disable=SC2086
	ref=$(median ${CT[ref]})
	# shellcheck disable=SC2086
	kern=$(median ${CT[kern]})
	# shellcheck disable=SC2086
	dio=$(median ${CT[dio]})
	best=$(awk -v a="$kern" -v b="$dio" 'BEGIN { print (a < b ? a : b) }')
	rt=$(ratio "$best" "$ref")
	printf '%-44s %12.3f %12.3f %8s %8s %6s\n' "copy $COPY_SIZE s: references / read+write" \
		"$ref" "$best" "${rt}x" ">= 20x" "$(verdict "$rt" '>=' 20)"
	printf '%-44s %12s %12.3f %8s\n' "  read+write: cfr, kernel splice fallback" "" "$kern" \
		"$(ratio "$kern" "$ref")x"
	printf '%-44s %12s %12.3f %8s\n' "  read+write: O_DIRECT pread/pwrite 1 MiB" "" "$dio" \
		"$(ratio "$dio" "$ref")x"
fi
if has_part mount; then
	for k in ckpt replay; do
		# shellcheck disable=SC2086
		v=$(median ${MTS[$k]})
		# shellcheck disable=SC2086
		e=$(median ${MTS[empty]})
		case $k in
		ckpt) lbl="mount s, $NIND indirections, checkpoint" ;;
		replay) lbl="mount s, $NIND indirections, journal" ;;
		esac
		printf '%-44s %12.3f %12.3f %8s %8s %6s\n' "$lbl" "$v" "$e" "$(ratio "$v" "$e")" "< 1 s" \
			"$(verdict "$v" '<' 1)"
	done
	printf '  (baseline: the same mount of an empty backing directory; records replayed: %s; meta.ckpt %s bytes)\n' \
		"$REPLAYED" "$CKPT_SZ"
fi
printf '\nruns:\n'
if has_part write; then
	for qd in "${QDS[@]}"; do
		printf '  write qd%-2s IOPS    on: %s off: %s\n' "$qd" "${IOPS[domain.$qd]}" "${IOPS[off.$qd]}"
		printf '  write qd%-2s CPU us  on: %s off: %s\n' "$qd" "${CPUW[domain.$qd]}" "${CPUW[off.$qd]}"
		# each round's pair ran back to back: its ratio is less sensitive to drift
		printf '  write qd%-2s on/off per round: %s\n' "$qd" \
			"$(paired_ratios "${IOPS[domain.$qd]}" "${IOPS[off.$qd]}")"
	done
fi
if has_part copy; then
	printf '  copy s     ref: %s kern: %s dio: %s\n' "${CT[ref]}" "${CT[kern]}" "${CT[dio]}"
fi
if has_part mount; then
	printf '  mount s    ckpt: %s replay: %s empty: %s\n' "${MTS[ckpt]}" "${MTS[replay]}" "${MTS[empty]}"
fi
if [ "${BENCH_PERF:-0}" = 1 ] && has_part write; then
	printf '\nperf (999 Hz) of the daemon during the write runs: self samples in XXH3*, hindex*,\n'
	printf 'find_phys, try_share (per run); their CPU time per write (median share x median\n'
	printf 'CPU us per write) and that against the median time per write (1e6 / IOPS)\n'
	for qd in "${QDS[@]}"; do
		for m in domain off; do
			# shellcheck disable=SC2086
			sh=$(median ${DSHARE[$m.$qd]})
			# shellcheck disable=SC2086
			cw=$(median ${CPUW[$m.$qd]})
			# shellcheck disable=SC2086
			io=$(median ${IOPS[$m.$qd]})
			awk -v m="$m" -v q="$qd" -v sh="$sh" -v cw="$cw" -v io="$io" -v runs="${DSHARE[$m.$qd]}" \
				'BEGIN { d = sh / 100 * cw; printf "  qd%-2s dedup=%-6s %5.2f%% of daemon CPU = %.2f us/write = %.2f%% of %.0f us/write  (%s)\n",
				         q, m, sh, d, io ? d / (1e6 / io) * 100 : 0, io ? 1e6 / io : 0, runs }'
		done
	done
	printf '  top symbols, dedup=domain qd16, first run:\n'
	# shellcheck disable=SC2086
	set -- ${PERFS[domain.16]}
	perf report -q -i "$1" --no-children --sort dso,sym -g none 2>/dev/null | grep -v '^$' | head -n 15 |
		awk '{ printf "    %s\n", $0 }'
fi
}
print_table >"$W/table"
cat "$W/table"
NFAIL=$(grep -c ' MISS$' "$W/table")
printf '\ntotal %s s\n' "$(($(date +%s) - T_START))"
[ "$NFAIL" = 0 ]
