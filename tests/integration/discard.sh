#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Discard drops cached blocks without writing them.  64 MiB written to a
# volume with a 256 MiB cache stay in the cache, dirty; fallocate
# --punch-hole over half of them must count that half in `discards`, take
# it out of `dirty` and `cached`, and never write it: after fsync,
# written_bytes has grown by the other half only and the home file has
# about half of the volume allocated; the punched half reads as zeros.
# The same through a loop device (--direct-io=on, as kernel swap uses it):
# blkdiscard of a range of the loop device drops those blocks (discards
# grows, nothing more than the kept half is ever written) and frees their
# space in the backing file.

. "$(dirname "$0")/common.sh"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
MiB=$((1024 * 1024))
HALF_BLOCKS=$((32 * MiB / 4096))

st() { hc_stat "$MNT" "$1" "$2"; }
# allocated bytes of a file
alloc() { echo $(($(stat -c '%b * %B' "$1"))); }
fsync_file() {
	python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$1" ||
		hc_fail "fsync of $1 failed"
}
# punch FILE OFFSET LENGTH: fallocate(PUNCH_HOLE | KEEP_SIZE), no fsync
punch() {
	python3 - "$@" <<'EOF2'
import ctypes, ctypes.util, os, sys
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
fd = os.open(sys.argv[1], os.O_WRONLY)
if libc.fallocate(fd, 0x01 | 0x02, int(sys.argv[2]), int(sys.argv[3])) != 0:
    sys.exit("fallocate: " + os.strerror(ctypes.get_errno()))
os.close(fd)
EOF2
}
# about_half ALLOCATED: within [30 MiB, 34 MiB]
about_half() { [ "$1" -ge $((30 * MiB)) ] && [ "$1" -le $((34 * MiB)) ]; }

hc_mount "$BACK" "$MNT" -o cache=256M
mkdir "$MNT/vm" "$MNT/host" || hc_fail "mkdir of domains failed"
head -c $((64 * MiB)) /dev/urandom >"$HC_SCRATCH/ref"

# --- fallocate --punch-hole on dirty cached blocks ---------------------------------
dd if="$HC_SCRATCH/ref" of="$MNT/vm/disk" bs=1M status=none || hc_fail "writing 64 MiB to vm/disk failed"
d0=$(st vm discards) c0=$(st vm cached) y0=$(st vm dirty) w0=$(st vm written_bytes)
hc_info "after writing 64 MiB: cached $c0 dirty $y0 discards $d0 written_bytes $w0"
[ "$y0" -ge $((2 * HALF_BLOCKS)) ] ||
	hc_fail "64 MiB in a 256 MiB cache should be dirty in it: dirty=$y0 blocks"
# fallocate(1) fsyncs after the call; punch with the bare system call so
# that nothing but the discard happens between the counter readings
punch "$MNT/vm/disk" $((32 * MiB)) $((32 * MiB)) || hc_fail "fallocate PUNCH_HOLE of the second half failed"
d1=$(st vm discards) c1=$(st vm cached) y1=$(st vm dirty) w1=$(st vm written_bytes)
hc_info "after punching 32 MiB: cached $c1 dirty $y1 discards $d1 written_bytes $w1"
[ $((d1 - d0)) -ge "$HALF_BLOCKS" ] ||
	hc_fail "discards grew by $((d1 - d0)), expected >= $HALF_BLOCKS"
[ $((y0 - y1)) -ge "$HALF_BLOCKS" ] || hc_fail "dirty shrank by $((y0 - y1)), expected >= $HALF_BLOCKS"
[ $((c0 - c1)) -ge "$HALF_BLOCKS" ] || hc_fail "cached shrank by $((c0 - c1)), expected >= $HALF_BLOCKS"
[ "$w1" = "$w0" ] || hc_fail "the discard wrote $((w1 - w0)) bytes"
fsync_file "$MNT/vm/disk"
w2=$(st vm written_bytes)
hc_info "after fsync: written_bytes $w2 (+$((w2 - w0))), dirty $(st vm dirty)"
[ $((w2 - w0)) -le $((32 * MiB)) ] ||
	hc_fail "fsync wrote $((w2 - w0)) bytes: more than the 32 MiB left after the discard"
[ "$(st vm dirty)" = 0 ] || hc_fail "dirty blocks left after fsync: $(st vm dirty)"
a=$(alloc "$BACK/vm/disk")
hc_info "home file: $(stat -c %s "$BACK/vm/disk") bytes, $a allocated"
about_half "$a" || hc_fail "home file has $a bytes allocated, expected about 32 MiB"
[ "$(stat -c %s "$MNT/vm/disk")" = $((64 * MiB)) ] || hc_fail "punch-hole changed the size"
dd if=/dev/zero of="$HC_SCRATCH/ref" bs=1M seek=32 count=32 conv=notrunc status=none
cmp "$HC_SCRATCH/ref" "$MNT/vm/disk" || hc_fail "vm/disk: first half kept, second half zeros: not so"

# --- a loop device, blkdiscard -------------------------------------------------------------
head -c $((64 * MiB)) /dev/urandom >"$HC_SCRATCH/ref2"
LV=$MNT/host/disk
truncate -s $((64 * MiB)) "$LV" || hc_fail "truncate of $LV failed"
dev=$(losetup --direct-io=on --find --show "$LV") || hc_fail "losetup --direct-io=on over $LV failed"
HC_LOOPS+=("$dev")
[ "$(cat "/sys/block/$(basename "$dev")/loop/dio")" = 1 ] || hc_fail "$dev is not in direct I/O mode"
dmax=$(cat "/sys/block/$(basename "$dev")/queue/discard_max_bytes")
[ "$dmax" -gt 0 ] || hc_fail "$dev does not offer discard (discard_max_bytes=0)"
dd if="$HC_SCRATCH/ref2" of="$dev" bs=1M oflag=direct status=none || hc_fail "writing 64 MiB to $dev failed"
d0=$(st host discards) c0=$(st host cached) y0=$(st host dirty) w0=$(st host written_bytes)
hc_info "loop: after writing 64 MiB: cached $c0 dirty $y0 discards $d0 written_bytes $w0"
blkdiscard -o $((16 * MiB)) -l $((32 * MiB)) "$dev" || hc_fail "blkdiscard of 32 MiB of $dev failed"
d1=$(st host discards) c1=$(st host cached) y1=$(st host dirty) w1=$(st host written_bytes)
hc_info "loop: after blkdiscard of 32 MiB: cached $c1 dirty $y1 discards $d1 written_bytes $w1"
[ $((d1 - d0)) -ge "$HALF_BLOCKS" ] ||
	hc_fail "blkdiscard on $dev: discards grew by $((d1 - d0)), expected >= $HALF_BLOCKS"
[ $((y0 - y1)) -ge "$HALF_BLOCKS" ] || hc_fail "blkdiscard: dirty shrank by $((y0 - y1))"
# udev probes the device when blkdiscard closes it (blkid reads: cache hits
# of dirty blocks, written back first), so some of the kept half may be
# written now; the discarded half never is
[ $((w1 - w0)) -le $((32 * MiB)) ] || hc_fail "blkdiscard wrote $((w1 - w0)) bytes: more than the half it kept"
blockdev --flushbufs "$dev" || hc_fail "flush of $dev failed"
fsync_file "$LV"
w2=$(st host written_bytes)
[ $((w2 - w0)) -le $((32 * MiB)) ] ||
	hc_fail "flush after blkdiscard wrote $((w2 - w0)) bytes: more than the 32 MiB kept"
a=$(alloc "$BACK/host/disk")
hc_info "loop: home file $a bytes allocated after the flush"
about_half "$a" || hc_fail "home file behind $dev has $a bytes allocated, expected about 32 MiB"
# the discarded range reads as zeros (loop discards punch holes)
dd if=/dev/zero of="$HC_SCRATCH/ref2" bs=1M seek=16 count=32 conv=notrunc status=none
dd if="$dev" bs=1M iflag=direct status=none | cmp - "$HC_SCRATCH/ref2" ||
	hc_fail "$dev: discarded range does not read as zeros, or the rest changed"
hc_loop_detach "$dev" || hc_fail "losetup -d $dev failed"

# --- after a remount: holes stay holes, data stays -----------------------------------------------
hc_umount "$MNT"
about_half "$(alloc "$BACK/vm/disk")" || hc_fail "vm/disk allocation changed at unmount"
about_half "$(alloc "$BACK/host/disk")" || hc_fail "host/disk allocation changed at unmount"
hc_mount "$BACK" "$MNT" -o cache=256M
cmp "$HC_SCRATCH/ref" "$MNT/vm/disk" || hc_fail "vm/disk differs after remount"
cmp "$HC_SCRATCH/ref2" "$MNT/host/disk" || hc_fail "host/disk differs after remount"
hc_umount "$MNT"
hc_info "PASS"
