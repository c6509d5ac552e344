#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Mounting the fstab way, through mount.fuse3, with the daemon in the
# background (it daemonizes itself): "hecache-fs#BACKING" found through
# PATH by mount.fuse3; mount -t fuse3 (mount(8) clears PATH for its
# helpers, so there the source names the daemon by its absolute path, as an
# fstab line for an uninstalled build must); a line in a temporary fstab
# used with mount -T, with the userspace options fstab lines carry (noauto,
# nofail, _netdev).  Each time: a file written and read back, umount, the
# daemon exits by itself and leaves the superblock marked clean.  A bad
# option (cache=junk) makes mount fail with the daemon's own message, no
# daemon left, the backing directory unchanged.

. "$(dirname "$0")/common.sh"

command -v mount.fuse3 >/dev/null || [ -x /sbin/mount.fuse3 ] || hc_skip "no mount.fuse3"
case $HECACHE_FS in
*[[:space:]#,\'\"]*) hc_skip "daemon path has characters an fstab source cannot carry" ;;
esac

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
mkdir -p "$BACK" "$MNT"
HC_MOUNTS+=("$MNT")
HCDIR=$(cd "$(dirname "$HECACHE_FS")" && pwd)
EXE=$(readlink -f "$HECACHE_FS")
MiB=$((1024 * 1024))
head -c $((4 * MiB + 5)) /dev/urandom >"$HC_SCRATCH/ref"

# daemon_pid: the background daemon serving $BACK on $MNT (ours: the paths
# are our scratch directory's), checked by its executable.
daemon_pid() {
	local p
	for p in $(pgrep -f -- "hecache-fs $BACK $MNT( |\$)"); do
		[ "$(readlink -f "/proc/$p/exe" 2>/dev/null)" = "$EXE" ] && echo "$p"
	done
}

# sb_clean: 0 if the newest superblock copy carries the clean flag.
sb_clean() {
	python3 - "$BACK/hecache.sb" <<'EOF'
import struct, sys
d = open(sys.argv[1], "rb").read()
gen = [struct.unpack_from("<Q", d, c + 32)[0] for c in (0, 4096)]
c = 4096 * (gen[1] > gen[0])
sys.exit(0 if struct.unpack_from("<I", d, c + 56)[0] & 1 else 1)
EOF
}

# check_mounted HOW: the mount is up, served by one background daemon that
# we then own; a file round trip; umount; the daemon exits cleanly.
round=0
check_mounted() {
	local how=$1 pid n
	round=$((round + 1))
	grep -q " $MNT fuse.hecache-fs " /proc/mounts || hc_fail "$how: $MNT is not a hecache-fs mount"
	pid=$(daemon_pid)
	n=$(echo "$pid" | grep -c .)
	[ "$n" = 1 ] || hc_fail "$how: expected one daemon for $BACK, found $n ($pid)"
	HC_PIDS+=("$pid")
	[ "$(ps -o ppid= -p "$pid" | tr -d ' ')" = 1 ] || [ "$(ps -o sid= -p "$pid" | tr -d ' ')" = "$pid" ] ||
		hc_fail "$how: the daemon $pid did not detach (not a session leader, parent not init)"
	mkdir -p "$MNT/vm" || hc_fail "$how: mkdir in the mount failed"
	cp "$HC_SCRATCH/ref" "$MNT/vm/file$round" && cmp "$HC_SCRATCH/ref" "$MNT/vm/file$round" ||
		hc_fail "$how: write/read through the mount failed"
	for i in $(seq "$round"); do
		cmp "$HC_SCRATCH/ref" "$MNT/vm/file$i" || hc_fail "$how: vm/file$i (an earlier mount's) differs"
	done
	umount "$MNT" || hc_fail "$how: umount $MNT failed"
	hc_wait_gone "$pid" 30 || hc_fail "$how: the daemon $pid is still running 30 s after umount"
	sb_clean || hc_fail "$how: the daemon exited without marking the superblock clean"
	cmp "$HC_SCRATCH/ref" "$BACK/vm/file$round" || hc_fail "$how: home file differs after umount"
	hc_info "$how: mounted (daemon $pid in the background), I/O ok, umount, daemon exited cleanly"
}

# 1. mount.fuse3 looks the daemon up in PATH
PATH=$HCDIR:$PATH mount.fuse3 "hecache-fs#$BACK" "$MNT" -o cache=32M 2>"$HC_SCRATCH/m.err" ||
	hc_fail "mount.fuse3 hecache-fs#$BACK failed: $(cat "$HC_SCRATCH/m.err")"
check_mounted "mount.fuse3 with PATH"

# 2. mount -t fuse3
mount -t fuse3 "$HECACHE_FS#$BACK" "$MNT" -o cache=32M 2>"$HC_SCRATCH/m.err" ||
	hc_fail "mount -t fuse3 $HECACHE_FS#$BACK failed: $(cat "$HC_SCRATCH/m.err")"
check_mounted "mount -t fuse3"

# 3. an fstab line, mount -T
TAB=$HC_SCRATCH/fstab
printf '# hecache test fstab\n%s %s fuse3 cache=32M,io=sync,noauto,nofail,_netdev 0 0\n' \
	"$HECACHE_FS#$BACK" "$MNT" >"$TAB"
mount -T "$TAB" "$MNT" 2>"$HC_SCRATCH/m.err" ||
	hc_fail "mount -T $TAB $MNT failed: $(cat "$HC_SCRATCH/m.err")"
grep -q "io engine sync" "$HC_SCRATCH/m.err" || hc_info "note: no start-up line naming io engine sync"
check_mounted "fstab line with mount -T"

# 4. a bad option: mount fails with the daemon's message
before=$(hc_tree_sum "$BACK")
rc=0
mount -t fuse3 "$HECACHE_FS#$BACK" "$MNT" -o cache=junk 2>"$HC_SCRATCH/m.err" || rc=$?
grep -q " $MNT fuse" /proc/mounts && { umount "$MNT"; hc_fail "mount with cache=junk succeeded"; }
[ "$rc" != 0 ] || hc_fail "mount with cache=junk exited 0"
grep -q "invalid cache size 'junk'" "$HC_SCRATCH/m.err" ||
	hc_fail "mount with cache=junk did not show the daemon's message: $(cat "$HC_SCRATCH/m.err")"
hc_info "cache=junk: mount failed (exit $rc): $(grep junk "$HC_SCRATCH/m.err")"
[ -z "$(daemon_pid)" ] || hc_fail "a daemon is left running after the failed mount"
[ "$before" = "$(hc_tree_sum "$BACK")" ] || hc_fail "the failed mount changed the backing directory"
# the same bad option in an fstab line
printf '%s %s fuse3 cache=junk 0 0\n' "$HECACHE_FS#$BACK" "$MNT" >"$TAB"
mount -T "$TAB" "$MNT" 2>"$HC_SCRATCH/m.err" && { umount "$MNT"; hc_fail "fstab mount with cache=junk succeeded"; }
grep -q "invalid cache size 'junk'" "$HC_SCRATCH/m.err" ||
	hc_fail "fstab mount with cache=junk did not show the daemon's message: $(cat "$HC_SCRATCH/m.err")"
[ -z "$(daemon_pid)" ] || hc_fail "a daemon is left running after the failed fstab mount"

# a failure after the fork (the backing directory is in use): mount still
# fails with the message of the daemon's child
mkdir -p "$HC_SCRATCH/mnt2"
hc_mount "$BACK" "$HC_SCRATCH/mnt2" -o cache=32M
mount -t fuse3 "$HECACHE_FS#$BACK" "$MNT" -o cache=32M 2>"$HC_SCRATCH/m.err" &&
	{ umount "$MNT"; hc_fail "a second daemon mounted a backing directory in use"; }
grep -q "in use" "$HC_SCRATCH/m.err" ||
	hc_fail "backing directory in use: mount did not show the daemon's message: $(cat "$HC_SCRATCH/m.err")"
hc_info "backing in use: mount failed: $(grep "in use" "$HC_SCRATCH/m.err")"
hc_umount "$HC_SCRATCH/mnt2"
hc_info "PASS"
