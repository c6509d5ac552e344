#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# O_DIRECT through the mount, the way QEMU cache=none and loop devices use
# it: dd oflag=direct / iflag=direct round trips with 4 KiB and 1 MiB
# blocks (and mixed: written with one size, read with the other); a loop
# device with --direct-io=on over a volume, written and read with O_DIRECT
# (the loop must really run in direct I/O mode); python os.open(O_DIRECT)
# with page-aligned (mmap) buffers, at aligned offsets, vectored.  Every
# read is compared with the data written, also after a remount.

. "$(dirname "$0")/common.sh"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
MiB=$((1024 * 1024))

hc_mount "$BACK" "$MNT" -o cache=32M
mkdir "$MNT/vm" || hc_fail "mkdir of domain vm failed"

# 48 MiB: larger than the cache, so reads are hits and misses
head -c $((48 * MiB)) /dev/urandom >"$HC_SCRATCH/ref"

# --- dd with O_DIRECT ------------------------------------------------------------
for wbs in 4k 1M; do
	for rbs in 4k 1M; do
		v=$MNT/vm/dd-$wbs-$rbs
		dd if="$HC_SCRATCH/ref" of="$v" bs=$wbs oflag=direct conv=fsync status=none ||
			hc_fail "dd oflag=direct bs=$wbs into $v failed"
		[ "$(stat -c %s "$v")" = $((48 * MiB)) ] || hc_fail "$v: size $(stat -c %s "$v") after dd"
		dd if="$v" bs=$rbs iflag=direct status=none | cmp - "$HC_SCRATCH/ref" ||
			hc_fail "dd iflag=direct bs=$rbs of $v (written with bs=$wbs) differs"
	done
done
# overwrite in the middle with O_DIRECT, read the whole back with O_DIRECT
cp "$HC_SCRATCH/ref" "$HC_SCRATCH/ref.orig"
dd if=/dev/urandom of="$HC_SCRATCH/patch" bs=64k count=16 status=none
dd if="$HC_SCRATCH/patch" of="$HC_SCRATCH/ref" bs=64k seek=100 conv=notrunc status=none
dd if="$HC_SCRATCH/patch" of="$MNT/vm/dd-4k-4k" bs=64k seek=100 oflag=direct conv=notrunc status=none ||
	hc_fail "dd oflag=direct overwrite failed"
dd if="$MNT/vm/dd-4k-4k" bs=1M iflag=direct status=none | cmp - "$HC_SCRATCH/ref" ||
	hc_fail "O_DIRECT overwrite does not read back"
hc_info "dd O_DIRECT: 4k/1M writes and reads match"

# --- a loop device in direct I/O mode over a volume ----------------------------------
LV=$MNT/vm/loopvol
truncate -s $((64 * MiB)) "$LV" || hc_fail "truncate of $LV failed"
dev=$(losetup --direct-io=on --find --show "$LV" 2>"$HC_SCRATCH/losetup.err") ||
	{ grep -qi "no free loop\|could not find any free" "$HC_SCRATCH/losetup.err" && hc_skip "no free loop device"
	  hc_fail "losetup --direct-io=on over $LV failed: $(cat "$HC_SCRATCH/losetup.err")"; }
HC_LOOPS+=("$dev")
[ -s "$HC_SCRATCH/losetup.err" ] && hc_info "losetup said: $(cat "$HC_SCRATCH/losetup.err")"
dio=$(cat "/sys/block/$(basename "$dev")/loop/dio" 2>/dev/null)
[ "$dio" = 1 ] || hc_fail "$dev over $LV is not in direct I/O mode (dio=$dio): O_DIRECT on the volume was refused"
dd if="$HC_SCRATCH/ref" of="$dev" bs=1M oflag=direct status=none || hc_fail "dd oflag=direct to $dev failed"
dd if="$HC_SCRATCH/ref" of="$dev" bs=4k seek=$((52 * 256)) count=256 oflag=direct status=none ||
	hc_fail "dd oflag=direct bs=4k to $dev failed"
blockdev --flushbufs "$dev" || hc_fail "flush of $dev failed"
dd if="$dev" bs=1M count=48 iflag=direct status=none | cmp - "$HC_SCRATCH/ref" ||
	hc_fail "data read from $dev (iflag=direct, 1M) differs"
dd if="$dev" bs=4k skip=$((52 * 256)) count=256 iflag=direct status=none |
	cmp - <(head -c $MiB "$HC_SCRATCH/ref") || hc_fail "data read from $dev (iflag=direct, 4k) differs"
hc_loop_detach "$dev" || hc_fail "losetup -d $dev failed"
cmp -n $((48 * MiB)) "$LV" "$HC_SCRATCH/ref" || hc_fail "$LV differs from what was written through the loop device"
hc_info "loop device with direct I/O: $dev roundtrip matches"

# --- python: O_DIRECT with page-aligned buffers ---------------------------------------------
python3 - "$MNT/vm/pyvol" <<'EOF' || hc_fail "python O_DIRECT I/O on vm/pyvol failed"
import mmap, os, sys
path = sys.argv[1]
M = 1 << 20
fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
data = os.urandom(8 * M)
wbuf = mmap.mmap(-1, 8 * M)      # anonymous mappings are page aligned
wbuf.write(data)
n = os.pwrite(fd, wbuf, 0)
if n != 8 * M:
    sys.exit("short O_DIRECT write: %d" % n)
rbuf = mmap.mmap(-1, 8 * M)
n = os.preadv(fd, [rbuf], 0)
if n != 8 * M or rbuf[:] != data:
    sys.exit("O_DIRECT read back differs (%d bytes)" % n)
# vectored, 4 KiB pieces at a 4 KiB-aligned offset, out of order
pieces = [mmap.mmap(-1, 4096) for _ in range(16)]
for i, p in enumerate(pieces):
    p.write(bytes([i]) * 4096)
if os.pwritev(fd, pieces, 3 * M + 4096) != 16 * 4096:
    sys.exit("short pwritev")
back = [mmap.mmap(-1, 4096) for _ in range(16)]
if os.preadv(fd, back, 3 * M + 4096) != 16 * 4096:
    sys.exit("short preadv")
for i, b in enumerate(back):
    if b[:] != bytes([i]) * 4096:
        sys.exit("preadv piece %d differs" % i)
expect = bytearray(data)
for i in range(16):
    off = 3 * M + 4096 + i * 4096
    expect[off:off + 4096] = bytes([i]) * 4096
# a read past the end is short, not an error
tail = mmap.mmap(-1, 2 * M)
if os.preadv(fd, [tail], 7 * M) != M:
    sys.exit("O_DIRECT read across the end is not short")
os.fsync(fd)
os.close(fd)
# the same through a buffered descriptor
if open(path, "rb").read() != bytes(expect):
    sys.exit("buffered read after O_DIRECT writes differs")
open(path + ".expect", "wb").write(expect)
EOF
mv "$MNT/vm/pyvol.expect" "$HC_SCRATCH/pyvol.expect"

# --- all of it after a remount -----------------------------------------------------------------
hc_umount "$MNT"
hc_mount "$BACK" "$MNT" -o cache=32M,io=aio
for v in dd-4k-1M dd-1M-4k dd-1M-1M; do
	dd if="$MNT/vm/$v" bs=1M iflag=direct status=none | cmp - "$HC_SCRATCH/ref.orig" ||
		hc_fail "vm/$v differs after remount"
done
dd if="$MNT/vm/dd-4k-4k" bs=1M iflag=direct status=none | cmp - "$HC_SCRATCH/ref" ||
	hc_fail "vm/dd-4k-4k differs after remount"
cmp -n $((48 * MiB)) "$MNT/vm/loopvol" "$HC_SCRATCH/ref" || hc_fail "vm/loopvol differs after remount"
dd if="$MNT/vm/pyvol" bs=4k iflag=direct status=none | cmp - "$HC_SCRATCH/pyvol.expect" ||
	hc_fail "vm/pyvol differs after remount"
hc_umount "$MNT"
hc_info "PASS"
