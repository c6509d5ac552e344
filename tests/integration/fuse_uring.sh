#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# FUSE over io_uring (cache-fs/furing.c).  Turns the kernel's
# fuse.enable_uring on for the test (put back in the trap), checks that a
# mount takes its requests through one ring per CPU and answers them there
# (ctl status), that -o no_fuse_uring keeps /dev/fuse, and then runs the
# data scenarios through the rings: O_DIRECT dd and a direct-I/O loop device
# (odirect.sh), POSIX operations (posix.sh), discard (discard.sh), fio
# verify with a cache smaller than the file, once per I/O engine (fio_verify.sh)
# and kernel swap through a loop device (swap.sh).  Each of those checks
# here, through ctl status, that its mount served requests through the rings.

. "$(dirname "$0")/common.sh"

PARAM=/sys/module/fuse/parameters/enable_uring
[ -e "$PARAM" ] || hc_skip "this kernel has no FUSE over io_uring ($PARAM)"
old=$(cat "$PARAM")
HC_UNDO+=("echo '$old' >'$PARAM'")
echo Y >"$PARAM" 2>/dev/null || hc_skip "cannot turn on $PARAM"

ncpu=$(python3 -c 'import re
s = open("/sys/devices/system/cpu/possible").read().strip()
print(max(int(x) for x in re.split("[-,]", s)) + 1)')

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
hc_mount "$BACK" "$MNT" -o cache=16M
HC_EXPECT_FUSE_URING=$ncpu hc_check_rings "$MNT" queues	# one per possible CPU
grep -q "FUSE over io_uring: $ncpu queues" "$HC_SCRATCH/daemon.log" ||
	hc_fail "the daemon did not log its rings: $(tail -3 "$HC_SCRATCH/daemon.log")"
mkdir "$MNT/d"
head -c $((24 << 20)) /dev/urandom >"$HC_SCRATCH/ref"
before=$(hc_status "$MNT" fuse_uring_replies)
dd if="$HC_SCRATCH/ref" of="$MNT/d/v" bs=64k oflag=direct status=none || hc_fail "dd into the mount failed"
dd if="$MNT/d/v" bs=4k iflag=direct status=none | cmp - "$HC_SCRATCH/ref" || hc_fail "read back differs"
after=$(hc_status "$MNT" fuse_uring_replies)
# 384 writes and 6144 reads at least
[ $((after - before)) -ge 6528 ] ||
	hc_fail "only $((after - before)) replies went through the rings for 6528 requests"
"$HC_TOOLS/hectl" -m "$MNT" status | grep -q "requests through.*io_uring, $ncpu queues" ||
	hc_fail "hectl status does not show the rings"
hc_umount "$MNT"
hc_info "$ncpu rings, $((after - before)) requests answered through them"

# -o no_fuse_uring: /dev/fuse, and the data is still there after the remount
hc_mount "$BACK" "$MNT" -o cache=16M,no_fuse_uring
[ "$(hc_status "$MNT" fuse_uring_queues)" = 0 ] || hc_fail "-o no_fuse_uring still registered rings"
cmp "$MNT/d/v" "$HC_SCRATCH/ref" || hc_fail "data differs after a remount with -o no_fuse_uring"
[ "$(hc_status "$MNT" fuse_uring_replies)" = 0 ] || hc_fail "-o no_fuse_uring answered through rings"
hc_umount "$MNT"

# io_uring refused to the daemon (kernel.io_uring_disabled=2) while the
# kernel offers the rings: the daemon must not ask for them (the kernel
# would hold every request until rings it cannot make were registered), it
# logs one line and serves through /dev/fuse.
SYSCTL=/proc/sys/kernel/io_uring_disabled
if [ -w "$SYSCTL" ]; then
	saved=$(cat "$SYSCTL")
	HC_UNDO+=("echo '$saved' >'$SYSCTL'")
	echo 2 >"$SYSCTL"
	: >"$HC_SCRATCH/daemon.log"
	HC_EXPECT_FUSE_URING= hc_mount "$BACK" "$MNT" -o cache=16M
	# a request: the daemon has answered INIT (and tried its rings) by now
	timeout 20 stat "$MNT" >/dev/null || hc_fail "without io_uring the mount does not answer"
	echo "$saved" >"$SYSCTL"
	timeout 20 cmp "$MNT/d/v" "$HC_SCRATCH/ref" ||
		hc_fail "without io_uring the mount does not serve (or not the data)"
	[ "$(hc_status "$MNT" fuse_uring_queues)" = 0 ] || hc_fail "rings registered without io_uring"
	n=$(grep -c "FUSE over io_uring: .*through /dev/fuse" "$HC_SCRATCH/daemon.log")
	[ "$n" = 1 ] || hc_fail "expected one line saying the rings cannot be used, got $n: $(cat "$HC_SCRATCH/daemon.log")"
	hc_umount "$MNT"
	hc_info "without io_uring: one line, served through /dev/fuse"
fi

# The data scenarios, each with its own mounts (now through rings) and trap.
# HC_EXPECT_FUSE_URING: hc_mount and hc_umount check that requests go through
# the rings (common.sh).
export HC_EXPECT_FUSE_URING=$ncpu
for t in odirect posix discard fio_verify swap; do
	start=$SECONDS
	bash "$HC_INTEGRATION_DIR/$t.sh" >"$HC_SCRATCH/$t.log" 2>&1
	rc=$?
	case $rc in
	0) hc_info "$t.sh through the rings: PASS ($((SECONDS - start)) s)" ;;
	77) hc_info "$t.sh: $(grep SKIP "$HC_SCRATCH/$t.log")" ;;
	*) cat "$HC_SCRATCH/$t.log" >&2; hc_fail "$t.sh through the rings failed (exit $rc)" ;;
	esac
done
