#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# hectl against a live mount, every subcommand: status, stats (after real
# O_DIRECT I/O the counters move; --prometheus parses line by line),
# volume create/list/resize/set-kind/delete, domain create/list/set-memory,
# map (online, --range), mrc after a write-then-read workload (table, --csv,
# --plot with and without gnuplot), recommend (--apply refused while M is
# unknown, applied once it is set), mrc-reset, trace start/stop (a file of
# 256 + 24*N bytes, N > 0), flush, cache resize (within the pool; past it EINVAL), defrag (a
# missing volume, cancel without a job, a bad rate, status, a job with
# nothing to do), the --json shapes (members and types, with jq), --help of each
# subcommand, exit codes (daemon error 1, usage 2, no daemon 3), a user who
# is neither root nor the mounter (0600 socket: cannot connect, 3; socket
# opened up: the daemon's SO_PEERCRED check answers EACCES, 1), fsck refused
# while mounted.  After unmount: the offline map gives the extents the
# daemon gave, fsck is clean (0), then finds planted problems (1), and is
# refused while another process holds the superblock's lock.  After a
# kill -9 of the daemon: status on the stale socket exits 3, the offline map
# works, fsck reports the superblock not marked clean (1).

. "$(dirname "$0")/common.sh"

command -v jq >/dev/null || hc_skip "jq not installed"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
OUT=$HC_SCRATCH/out
ERR=$HC_SCRATCH/err
MiB=$((1024 * 1024))
HCUSER=hctest$$

# hectl is copied where the unprivileged test user can run it.
mkdir -p "$HC_SCRATCH/bin"
cp "$HC_TOOLS/hectl" "$HC_SCRATCH/bin/hectl" || hc_fail "no hectl at $HC_TOOLS/hectl"
HECTL=$HC_SCRATCH/bin/hectl

# The test user goes with everything else, whatever the exit status.
trap 'rc=$?; userdel "$HCUSER" 2>/dev/null; (exit $rc); hc_cleanup' EXIT

# run WANT_STATUS ARGS...: hectl ARGS, stdout in $OUT, stderr in $ERR.
run() {
	local want=$1 rc=0
	shift
	"$HECTL" "$@" >"$OUT" 2>"$ERR" || rc=$?
	if [ "$rc" != "$want" ]; then
		cat "$OUT" "$ERR" >&2
		hc_fail "hectl $*: exit status $rc, expected $want"
	fi
}
# ok ARGS...: hectl -b $BACK ARGS must succeed.
ok() { run 0 -b "$BACK" "$@"; }
# jcheck JQ_EXPR WHAT: the JSON in $OUT satisfies JQ_EXPR.
jcheck() {
	jq -e "$1" "$OUT" >/dev/null || { cat "$OUT" >&2; hc_fail "$2: JSON fails: $1"; }
}
# grep_out FILE REGEX WHAT
grep_in() { grep -Eq -- "$2" "$1" || { cat "$1" >&2; hc_fail "$3: no '$2'"; }; }
# wait_ctl: polls until the daemon answers on its socket (it listens after the mount is up).
wait_ctl() {
	local i
	for i in $(seq 100); do
		"$HECTL" -b "$BACK" status >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	hc_fail "the daemon does not answer on $BACK/ctl.sock"
}
# counter DOMAIN|total KEY: one counter from stats --json.
counter() {
	"$HECTL" -b "$BACK" --json stats |
		jq -r --arg d "$1" --arg k "$2" \
			'if $d == "total" then .total[$k] else (.domains[] | select(.name == $d))[$k] end'
}

hc_mount "$BACK" "$MNT" -o cache=64M
wait_ctl

# --- usage, help, and no daemon ------------------------------------------------------
run 0 --help
grep_in "$OUT" '^usage: hectl' "hectl --help"
run 0 --version
for sub in status stats "volume list" "volume create" "volume resize" "volume delete" \
	"volume set-kind" "domain list" "domain create" "domain set-memory" map mrc mrc-reset \
	recommend trace flush "cache resize" defrag fsck; do
	# shellcheck disable=SC2086
	run 0 $sub --help
	grep_in "$OUT" "hectl \[OPTIONS\] $sub" "hectl $sub --help"
done
for bad in "frob" "volume" "volume frob" "volume create vm1/x" "volume create vm1/x 12Q" \
	"volume create vm1 1M" "volume create vm1/x 1M --kind tape" "map vm1/x --range 9-3" \
	"stats --csv" "mrc" "stats --prometheus --json" "trace vm1 pause" "defrag frob" \
	"--bogus status" "recommend vm1 --tolerance abc"; do
	# shellcheck disable=SC2086
	run 2 -b "$BACK" $bad
	if [ "$(wc -l <"$ERR")" != 2 ] || ! grep -q '^try hectl' "$ERR"; then
		cat "$ERR" >&2
		hc_fail "hectl $bad: usage error is not one line + 'try hectl'"
	fi
done
run 3 -S "$HC_SCRATCH/nowhere.sock" status
grep_in "$ERR" "$HC_SCRATCH/nowhere.sock" "no daemon: the socket is named"
run 3 --json -S "$HC_SCRATCH/nowhere.sock" status
jcheck '.error == "ENOENT" and (.message | type) == "string"' "no daemon, --json"
run 1 -b "$BACK" defrag start vm1/nope
grep_in "$ERR" 'vm1/nope: not found' "defrag start of a missing volume"
run 1 -b "$BACK" defrag cancel
grep_in "$ERR" 'no defrag job is running' "defrag cancel without a job"
run 2 -b "$BACK" defrag start --rate -3
ok defrag status
grep_in "$OUT" '^defrag: idle' "defrag status before any job"
ok --json defrag start
jcheck '(.state | IN("running", "done")) and .policy == "home" and .rate == 32
	and (.volumes | type) == "array" and (.todo_blocks | type) == "number"' "defrag start --json"

# --- status -------------------------------------------------------------------------
ok --json status
jcheck '(.version | type) == "string" and .protocol == 1 and (.uptime_s | type) == "number"
	and (.io_engine | IN("uring", "aio", "sync")) and (.writethrough | type) == "boolean"
	and (.cache.bytes == 64 * 1048576) and (.cache.blocks == 16384)
	and (.cache.cached_blocks | type) == "number" and (.cache.dirty_blocks | type) == "number"
	and (.cache.taken_blocks | type) == "number"
	and (.cache.writeahead_blocks >= 1024 and .cache.writeahead_blocks <= 4096)
	and (.mrc.mode | IN("off", "exact", "sampled")) and (.mrc.ghost_bytes | type) == "number"
	and (.domains | type) == "number" and (.volumes | type) == "number"
	and (.agents | type) == "number" and (has("v") or has("ok") | not)' "status"
jcheck ".pid == $HC_DAEMON_PID and .backing == \"$BACK\" and .mountpoint == \"$MNT\"" "status"
run 0 -m "$MNT" status
grep_in "$OUT" "^backing +$BACK\$" "status via -m"
grep_in "$OUT" "^write-ahead +[0-9]+ blocks \\([0-9.]+ [KMG]iB\\) \\(written back early below this\\)\$" "status"
HECACHE_SOCKET=$BACK/ctl.sock run 0 status
grep_in "$OUT" "^pid +$HC_DAEMON_PID\$" "status via \$HECACHE_SOCKET"

# --- domains and volumes ----------------------------------------------------------------
ok domain create vm1
[ -d "$MNT/vm1" ] || hc_fail "domain create vm1: no vm1 in the mount"
run 1 -b "$BACK" domain create vm1
grep_in "$ERR" '^hectl: EEXIST: ' "domain create twice"
ok volume create vm2/v1 16M --kind swap
[ "$(stat -c %s "$MNT/vm2/v1")" = $((16 * MiB)) ] || hc_fail "volume create: wrong size in the mount"
ok --json volume list vm2
jcheck '.volumes | length == 1 and .[0].domain == "vm2" and .[0].name == "v1"
	and .[0].size == 16777216 and .[0].kind == "swap"
	and (.[0].allocated_bytes | type) == "number" and (.[0].open | type) == "number"' "volume list"
ok volume resize vm2/v1 32M
ok volume set-kind vm2/v1 disk
ok volume list vm2
grep_in "$OUT" '^vm2 +v1 +disk +32\.0 MiB ' "volume list after resize and set-kind"
ok volume list --bytes
grep_in "$OUT" '^vm2 +v1 +disk +33554432 ' "volume list --bytes"
ok volume delete vm2/v1
[ ! -e "$MNT/vm2/v1" ] || hc_fail "volume delete: vm2/v1 still in the mount"
run 1 -b "$BACK" volume delete vm2/v1
run 1 -b "$BACK" stats vm9
grep_in "$ERR" '^hectl: ENOENT: ' "stats of an unknown domain"
run 1 --json -b "$BACK" stats vm9
jcheck '.error == "ENOENT" and (.message | type) == "string"' "daemon error, --json"

# --- stats after real I/O --------------------------------------------------------------------
ok volume create vm1/disk 8M
adm0=$(counter total admissions)
miss0=$(counter total misses)
hits0=$(counter total hits)
dd if=/dev/urandom of="$MNT/vm1/disk" bs=4k count=512 oflag=direct conv=notrunc status=none ||
	hc_fail "dd oflag=direct into vm1/disk failed"
for _ in 1 2; do
	dd if="$MNT/vm1/disk" of=/dev/null bs=4k count=512 iflag=direct status=none ||
		hc_fail "dd iflag=direct from vm1/disk failed"
done
[ "$(counter vm1 admissions)" -ge $((adm0 + 512)) ] || hc_fail "admissions did not move by 512"
[ "$(($(counter total misses) + $(counter total hits)))" -ge $((miss0 + hits0 + 1024)) ] ||
	hc_fail "hits + misses did not move by 1024 blocks read"
ok --json stats vm1
jcheck '(.domains | length) == 1 and .domains[0].name == "vm1" and
	([.total, .domains[0]] | all(
		(.hits, .misses, .admissions, .writebacks, .discards, .read_bytes,
		 .written_bytes, .zero_blocks, .dedup_blocks, .cow_blocks, .ref_blocks, .cached_blocks, .dirty_blocks, .hit_ratio) | type == "number"))' "stats"
ok stats
grep_in "$OUT" '^DOMAIN +HITS +MISSES' "stats table header"
grep_in "$OUT" '^total ' "stats table total row"

ok stats --prometheus
awk '
	/^# (HELP|TYPE) / { if ($2 == "TYPE") types++; next }
	/^#/ { next }
	!/^hecache_[a-z_]+(\{domain="[^"]*"\})? -?[0-9.]+(e[-+]?[0-9]+)?$/ { print "bad line: " $0; bad = 1 }
	END { if (types != 14) { print "TYPE lines: " types; bad = 1 } exit bad }' "$OUT" ||
	hc_fail "stats --prometheus: not in the text exposition format"
grep_in "$OUT" '^hecache_hits_total\{domain="vm1"\} [0-9]+$' "prometheus vm1 sample"
grep_in "$OUT" "^hecache_admissions_total $(counter total admissions)\$" "prometheus total sample"
grep_in "$OUT" '^# TYPE hecache_cached_blocks gauge$' "prometheus gauge type"

# --- map, flush ----------------------------------------------------------------------------------
ok volume create vm1/map 4M
dd if=/dev/urandom of="$MNT/vm1/map" bs=4k seek=10 count=3 oflag=direct conv=notrunc status=none
dd if=/dev/urandom of="$MNT/vm1/map" bs=4k seek=100 count=2 oflag=direct conv=notrunc status=none
ok --json flush
jcheck '(.flushed_blocks | type) == "number"' "flush"
ok flush vm1
grep_in "$OUT" '^vm1: [0-9]+ blocks' "flush vm1"
[ "$(counter total dirty_blocks)" = 0 ] || hc_fail "dirty blocks left after flush"
ok --json map vm1/map
EXPECT='[{"start":0,"count":10,"target":"hole"},{"start":10,"count":3,"target":"home"},
	{"start":13,"count":87,"target":"hole"},{"start":100,"count":2,"target":"home"},
	{"start":102,"count":922,"target":"hole"}]'
jcheck ".size == 4194304 and .extents == $EXPECT" "map"
cp "$OUT" "$HC_SCRATCH/map-online.json"
ok map vm1/map --range 5-101
grep_in "$OUT" '^ +10 +13 +3 +12\.0 KiB +home$' "map --range table"
[ "$(grep -c -E 'home|hole' "$OUT")" = 4 ] || { cat "$OUT" >&2; hc_fail "map --range: not 4 extents"; }

# --- mrc, recommend ----------------------------------------------------------------------------
# write-then-read: every read is a miss of a block the guest evicted before
ok mrc-reset vm1
dd if=/dev/urandom of="$MNT/vm1/disk" bs=4k count=1024 oflag=direct conv=notrunc status=none
dd if="$MNT/vm1/disk" of=/dev/null bs=4k count=1024 iflag=direct status=none
ok --json mrc vm1 --points 16
jcheck '.domain == "vm1" and (.mode | type) == "string" and (.rate | type) == "number"
	and .misses > 0 and (.evictions | type) == "number" and (.cold | type) == "number"
	and (.silent | type) == "number" and (.tracked_blocks | type) == "number"
	and (.curve | length) == 16 and .curve[0].extra_bytes == 0 and .curve[0].memory_bytes == null
	and (.curve | all((.extra_bytes | type) == "number" and (.misses | type) == "number"))
	and .curve[-1].misses < .curve[0].misses' "mrc (a curve that falls)"
ok mrc vm1 --points 4 --step 1M
grep_in "$OUT" '^ *EXTRA +MEMORY +MISSES +VS m\(0\)$' "mrc table header"
grep_in "$OUT" '^ *1\.0 MiB +- +[0-9]+ +[0-9.]+%$' "mrc table row"
ok mrc vm1 --points 8 --csv
[ "$(head -1 "$OUT")" = extra_bytes,memory_bytes,misses ] || hc_fail "mrc --csv: header"
[ "$(grep -cE '^[0-9]+,[0-9]*,[0-9.]+$' "$OUT")" = 8 ] || { cat "$OUT" >&2; hc_fail "mrc --csv: rows"; }
PATH=/nonexistent run 1 -b "$BACK" mrc vm1 --plot "$HC_SCRATCH/none.png"
grep_in "$ERR" '^hectl: gnuplot not found: apt-get install gnuplot-nox$' "mrc --plot without gnuplot"
if command -v gnuplot >/dev/null; then
	ok mrc vm1 --plot "$HC_SCRATCH/mrc.png"
	[ "$(head -c 8 "$HC_SCRATCH/mrc.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
		hc_fail "mrc --plot: $HC_SCRATCH/mrc.png is not a PNG"
else
	hc_info "gnuplot not installed: --plot checked only without it"
fi

ok --json recommend vm1
jcheck '(.extra_bytes | type) == "number" and .memory_bytes == null
	and (.predicted_misses | type) == "number" and (.max_extra_bytes | type) == "number"
	and (.misses_at_max | type) == "number" and (.misses_now | type) == "number"
	and .tolerance == 0.05' "recommend"
run 2 -b "$BACK" recommend vm1 --apply
grep_in "$ERR" 'unknown' "recommend --apply without M"
ok domain set-memory vm1 256M
ok --json domain list
jcheck '.domains[] | select(.name == "vm1") | .memory_bytes == 268435456
	and .memory_source == "hectl" and .agent == false and (.volumes | type) == "number"
	and has("agent_report")' "domain list after set-memory"
ok --json recommend vm1 --tolerance 0.1 --step 1M --apply
jcheck '.memory_bytes == 268435456 + .extra_bytes and .applied.memory_bytes == .memory_bytes
	and .applied.sent_to_agent == false and .tolerance == 0.1
	and .extra_bytes % 1048576 == 0' "recommend --apply"
applied=$(jq .memory_bytes "$OUT")
ok --json domain list
jcheck ".domains[] | select(.name == \"vm1\") | .memory_bytes == $applied" "memory after --apply"
ok recommend vm1
grep_in "$OUT" '^memory +[0-9.]+ MiB$' "recommend table with M known"
ok domain list
grep_in "$OUT" '^vm1 +2 +[0-9.]+ MiB +hectl ' "domain list table"
ok mrc-reset vm1
ok --json mrc vm1 --points 2
jcheck '.misses == 0 and .evictions == 0' "mrc after mrc-reset"
run 1 -b "$BACK" recommend vm1
grep_in "$ERR" '^hectl: EAGAIN: ' "recommend with no misses"

# --- trace -------------------------------------------------------------------------------------------
(cd "$HC_SCRATCH" && "$HECTL" -b "$BACK" --json trace vm1 start t1.trace) >"$OUT" ||
	hc_fail "trace start with a relative file name failed"
dd if=/dev/urandom of="$MNT/vm1/disk" bs=4k count=64 oflag=direct conv=notrunc status=none
dd if="$MNT/vm1/disk" of=/dev/null bs=4k count=64 iflag=direct status=none
run 1 -b "$BACK" trace vm1 start "$HC_SCRATCH/t1.trace"
ok --json trace vm1 stop
jcheck ".records > 0 and .path == \"$HC_SCRATCH/t1.trace\"" "trace stop"
n=$(jq .records "$OUT")
[ "$(stat -c %s "$HC_SCRATCH/t1.trace")" = $((256 + 24 * n)) ] ||
	hc_fail "trace file: $(stat -c %s "$HC_SCRATCH/t1.trace") bytes, expected 256 + 24 * $n"
[ "$(head -c 8 "$HC_SCRATCH/t1.trace")" = HCTRACE1 ] || hc_fail "trace file: no HCTRACE1 magic"

# The offline tool on the daemon's trace gives the daemon's own curve: reset,
# trace a write-then-read workload over two volumes, compare point by point.
if [ -x "$HC_TOOLS/hc-mrc" ]; then
	ok mrc-reset vm1
	ok volume create vm1/t2 16M
	ok trace vm1 start "$HC_SCRATCH/t2.trace"
	dd if=/dev/urandom of="$MNT/vm1/t2" bs=64k count=200 oflag=direct conv=notrunc status=none
	dd if=/dev/urandom of="$MNT/vm1/disk" bs=64k count=100 oflag=direct conv=notrunc status=none
	dd if="$MNT/vm1/t2" of=/dev/null bs=4k count=1500 iflag=direct status=none
	ok trace vm1 stop
	ok --json mrc vm1 --step 1M --points 16
	jq -r '.curve[] | "\(.extra_bytes / 4096),\(.misses)"' "$OUT" >"$HC_SCRATCH/daemon.csv"
	"$HC_TOOLS/hc-mrc" curve "$HC_SCRATCH/t2.trace" --step 256 --max 3840 --csv 2>/dev/null |
		awk -F, 'NR > 1 { printf "%d,%g\n", $1, $2 }' >"$HC_SCRATCH/offline.csv"
	awk -F, '{ printf "%d,%g\n", $1, $2 }' "$HC_SCRATCH/daemon.csv" >"$HC_SCRATCH/daemon2.csv"
	cmp -s "$HC_SCRATCH/daemon2.csv" "$HC_SCRATCH/offline.csv" || {
		paste -d' ' "$HC_SCRATCH/daemon2.csv" "$HC_SCRATCH/offline.csv" >&2
		hc_fail "hc-mrc curve of the daemon's trace differs from hectl mrc"
	}
	[ "$(wc -l <"$HC_SCRATCH/offline.csv")" = 16 ] || hc_fail "offline curve: not 16 points"
	ok volume delete vm1/t2
fi

# --- cache resize, fsck while mounted --------------------------------------------------------------
run 1 -b "$BACK" cache resize 128M
grep_in "$ERR" '^hectl: EINVAL: .*pool' "cache resize past the pool"
ok --json cache resize 16M
jcheck '.bytes == 16777216 and .max_bytes == 67108864' "cache resize 16M"
ok --json status
jcheck '.cache.bytes == 16777216 and .cache.blocks == 4096 and .cache.max_bytes == 67108864' \
	"status after cache resize"
dd if=/dev/urandom of="$HC_SCRATCH/big" bs=1M count=32 status=none
cp "$HC_SCRATCH/big" "$MNT/vm1/big" && cmp "$HC_SCRATCH/big" "$MNT/vm1/big" ||
	hc_fail "data through a 16M cache"
ok --json stats
jcheck '.total.cached_blocks <= 4096' "at most 16M cached after the resize"
ok cache resize 64M
grep_in "$OUT" '64\.0 MiB' "cache resize back to the pool"
rm -f "$MNT/vm1/big"
run 1 -b "$BACK" fsck
grep_in "$ERR" 'in use by a running hecache-fs' "fsck while mounted"

# --- a user who is neither root nor the mounter --------------------------------------------------
useradd -M -s /usr/sbin/nologin "$HCUSER" || hc_fail "useradd $HCUSER failed"
chmod 0711 "$HC_SCRATCH"
chmod 0755 "$HC_SCRATCH/bin"
rc=0
runuser -u "$HCUSER" -- "$HECTL" -S "$BACK/ctl.sock" status >"$OUT" 2>"$ERR" || rc=$?
[ "$rc" = 3 ] || { cat "$ERR" >&2; hc_fail "unprivileged user on the 0600 socket: exit $rc, expected 3"; }
grep_in "$ERR" "$BACK/ctl.sock: Permission denied" "unprivileged user, 0600 socket"
chmod 0666 "$BACK/ctl.sock"
rc=0
runuser -u "$HCUSER" -- "$HECTL" --json -S "$BACK/ctl.sock" status >"$OUT" 2>"$ERR" || rc=$?
chmod 0600 "$BACK/ctl.sock"
[ "$rc" = 1 ] || { cat "$ERR" >&2; hc_fail "unprivileged user on an open socket: exit $rc, expected 1"; }
jcheck '.error == "EACCES"' "the daemon refuses an unprivileged peer"
chmod 0700 "$HC_SCRATCH"

# --- offline: map, fsck ------------------------------------------------------------------------------
hc_umount "$MNT"
run 3 -b "$BACK" status
grep_in "$ERR" "$BACK/ctl.sock" "status with the daemon down"
ok --json map vm1/map
jq -e --slurpfile on "$HC_SCRATCH/map-online.json" '.offline == true and .size == $on[0].size
	and .extents == $on[0].extents' "$OUT" >/dev/null ||
	{ cat "$OUT" "$HC_SCRATCH/map-online.json" >&2; hc_fail "offline map differs from the daemon's"; }
ok map vm1/map --range 90-
grep_in "$OUT" '^ +100 +102 +2 +8\.0 KiB +home$' "offline map --range"
ok fsck
grep_in "$OUT" '^clean +yes$' "fsck after a clean unmount"
grep_in "$OUT" '^vm1 +disk +8\.0 MiB ' "fsck lists the volumes"
ok --json fsck
jcheck '.problems == [] and .superblock.clean == true and .superblock.version == "1.0"
	and (.superblock.uuid | test("^[0-9a-f]{8}-([0-9a-f]{4}-){3}[0-9a-f]{12}$"))
	and (.superblock.generation | type) == "number" and (.superblock.copies | length) == 2
	and .domains == 2 and ([.volumes[] | select(.domain == "vm1")] | length) == 2' "fsck"
touch "$BACK/stray"
mkfifo "$BACK/vm1/fifo"
run 1 fsck "$BACK"
grep_in "$OUT" "^problem: $BACK/stray: regular file" "fsck: a file at the top"
grep_in "$OUT" "^problem: $BACK/vm1/fifo: fifo" "fsck: a fifo in a domain"
grep_in "$OUT" '^2 problems found$' "fsck problem count"
rm "$BACK/stray" "$BACK/vm1/fifo"
rc=0
flock "$BACK/hecache.sb" "$HECTL" fsck "$BACK" >"$OUT" 2>"$ERR" || rc=$?
[ "$rc" = 1 ] || hc_fail "fsck with the superblock locked: exit $rc, expected 1"
grep_in "$ERR" 'in use by a running hecache-fs' "fsck with the superblock locked"
ok fsck

# --- a daemon that did not stop: stale socket (refused), superblock not clean ---------------------
hc_mount "$BACK" "$MNT" -o cache=64M
wait_ctl
kill -9 "$HC_DAEMON_PID"
wait "$HC_DAEMON_PID" 2>/dev/null
fusermount3 -u "$MNT" || umount -l "$MNT" || hc_fail "cannot unmount after kill -9"
[ -S "$BACK/ctl.sock" ] || hc_fail "no stale socket after kill -9"
run 3 -b "$BACK" status
grep_in "$ERR" "$BACK/ctl.sock: Connection refused" "status on a stale socket"
ok --json map vm1/map
jcheck '.offline == true' "offline map with a stale socket"
run 1 -b "$BACK" fsck
grep_in "$OUT" "^problem: $BACK/hecache.sb: not marked clean" "fsck after kill -9"
grep_in "$OUT" '^clean +no$' "fsck after kill -9: clean flag"
hc_info "ok"
