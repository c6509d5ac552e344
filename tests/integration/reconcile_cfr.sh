#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# copy_file_range between two volumes of one domain becomes references
# (doc/reconcile.md): 64 MiB copied store less than 1 MiB more in the
# backing directory (measured after a clean unmount, which checkpoints the
# maps), the copy reads back identical (before and after a remount), and
# overwriting the source afterwards (copy on write) leaves the copy intact.
# An unaligned copy still copies correctly (the kernel's fallback).

. "$(dirname "$0")/common.sh"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
MiB=$((1024 * 1024))
used() { du -s --block-size=1 "$BACK" | cut -f1; }
cfr() {	# SRC DST SOFF DOFF LEN
	python3 "$HC_INTEGRATION_DIR/cfr.py" "$1" "$2" "$3 $4 $5" || hc_fail "copy_file_range $* failed"
}

hc_mount "$BACK" "$MNT" -o cache=64M
mkdir "$MNT/vm" || hc_fail "mkdir failed"
head -c $((64 * MiB)) /dev/urandom >"$HC_SCRATCH/ref"
dd if="$HC_SCRATCH/ref" of="$MNT/vm/src" bs=1M conv=fsync status=none || hc_fail "writing vm/src failed"
hc_umount "$MNT"
u0=$(used)
hc_mount "$BACK" "$MNT" -o cache=64M
t0=$(date +%s.%N)
cfr "$MNT/vm/src" "$MNT/vm/dst" 0 0 $((64 * MiB))
t1=$(date +%s.%N)
cmp "$MNT/vm/dst" "$HC_SCRATCH/ref" || hc_fail "the copy differs from the source"
refs=$("$HC_TOP_BUILDDIR/tools/hectl" -m "$MNT" --json stats vm | python3 -c '
import json, sys; print(json.load(sys.stdin)["domains"][0]["ref_blocks"])') || hc_fail "hectl stats failed"
[ "$refs" -eq 16384 ] || hc_fail "ref_blocks is $refs after a 16384-block copy"
hc_umount "$MNT"
u1=$(used)
hc_info "64 MiB copy_file_range: backing grew by $((u1 - u0)) bytes in $(echo "$t1 - $t0" | bc) s"
# offline, hectl map reads the journal: the copy is one run of references to vm/src
"$HC_TOP_BUILDDIR/tools/hectl" -b "$BACK" --json map vm/dst >"$HC_SCRATCH/omap" ||
	hc_fail "offline hectl map failed: $(cat "$HC_SCRATCH/omap")"
python3 - "$HC_SCRATCH/omap" <<'PY' || hc_fail "offline map does not show the references: $(cat "$HC_SCRATCH/omap")"
import json, sys
e = json.load(open(sys.argv[1]))["extents"]
assert e == [{"start": 0, "count": 16384, "target": "vm/src", "target_block": 0, "refcount": 1}], e
PY
[ $((u1 - u0)) -lt $MiB ] || hc_fail "the copy stored $((u1 - u0)) bytes (>= 1 MiB): not references"

hc_mount "$BACK" "$MNT" -o cache=64M
cmp "$MNT/vm/dst" "$HC_SCRATCH/ref" || hc_fail "the copy differs after a remount"
# overwrite the source: its shared blocks are copied on write
head -c $((64 * MiB)) /dev/urandom >"$HC_SCRATCH/ref2"
dd if="$HC_SCRATCH/ref2" of="$MNT/vm/src" bs=1M conv=fsync,notrunc status=none ||
	hc_fail "overwriting vm/src failed"
cmp "$MNT/vm/src" "$HC_SCRATCH/ref2" || hc_fail "the overwritten source differs"
cmp "$MNT/vm/dst" "$HC_SCRATCH/ref" || hc_fail "overwriting the source changed the copy"
# unaligned: a correct copy all the same
cfr "$MNT/vm/src" "$MNT/vm/odd" 1000 3 $((1 * MiB + 17))
cmp <(head -c $((1 * MiB + 17)) <(tail -c +1001 "$HC_SCRATCH/ref2")) <(tail -c +4 "$MNT/vm/odd") ||
	hc_fail "unaligned copy differs"
# (removing a source whose blocks a copy shares: unlink_shared.sh)
hc_umount "$MNT"
hc_mount "$BACK" "$MNT" -o cache=64M
cmp "$MNT/vm/dst" "$HC_SCRATCH/ref" || hc_fail "the copy differs after the second remount"
cmp "$MNT/vm/src" "$HC_SCRATCH/ref2" || hc_fail "the source differs after the second remount"
hc_umount "$MNT"
HECTL=$HC_TOP_BUILDDIR/tools/hectl
"$HECTL" -b "$BACK" fsck >/dev/null || hc_fail "hectl fsck found problems"

# fsck --repair: the copy goes, the source is overwritten in place (its
# copy-on-write blocks in overflow.dat are freed but stay allocated), and
# a superblock copy is damaged.  --repair punches the unreferenced overflow
# blocks and rewrites the copy, and the data is untouched.
hc_mount "$BACK" "$MNT" -o cache=64M
rm "$MNT/vm/dst" || hc_fail "removing vm/dst failed"
head -c $((64 * MiB)) /dev/urandom >"$HC_SCRATCH/ref3"
dd if="$HC_SCRATCH/ref3" of="$MNT/vm/src" bs=1M conv=fsync,notrunc status=none ||
	hc_fail "overwriting vm/src failed"
hc_umount "$MNT"
ovf() { du --block-size=1 "$BACK/overflow.dat" | cut -f1; }
o0=$(ovf)
old=$("$HECTL" -b "$BACK" --json fsck | python3 -c '
import json, sys
c = json.load(sys.stdin)["superblock"]["copies"]
print(min(c, key=lambda x: x["generation"])["offset"])') || hc_fail "fsck --json failed"
printf '\xff\xff\xff\xff' | dd of="$BACK/hecache.sb" bs=1 seek=$((old + 24)) conv=notrunc status=none
"$HECTL" -b "$BACK" fsck >"$HC_SCRATCH/fsck1" 2>&1 && hc_fail "fsck missed the damaged superblock copy"
grep -q "hecache.sb: copy at offset $old" "$HC_SCRATCH/fsck1" || hc_fail "fsck does not name the copy: $(cat "$HC_SCRATCH/fsck1")"
"$HECTL" -b "$BACK" fsck --repair >"$HC_SCRATCH/fsck2" 2>&1 || hc_fail "fsck --repair left problems: $(cat "$HC_SCRATCH/fsck2")"
o1=$(ovf)
grep '^repaired' "$HC_SCRATCH/fsck2" | sed 's/^/reconcile_cfr: /'
grep -q "repaired: .*hecache.sb: copy at offset $old rewritten" "$HC_SCRATCH/fsck2" &&
	grep -q "repaired: .*overflow.dat: .* bytes of unreferenced blocks freed" "$HC_SCRATCH/fsck2" ||
	hc_fail "fsck --repair did not say what it repaired: $(cat "$HC_SCRATCH/fsck2")"
[ $((o0 - o1)) -ge $((60 * MiB)) ] || hc_fail "overflow.dat went from $o0 to only $o1 bytes"
"$HECTL" -b "$BACK" fsck >/dev/null || hc_fail "fsck after --repair found problems"
hc_mount "$BACK" "$MNT" -o cache=64M
cmp "$MNT/vm/src" "$HC_SCRATCH/ref3" || hc_fail "vm/src differs after fsck --repair"
cmp <(head -c $((1 * MiB + 17)) <(tail -c +1001 "$HC_SCRATCH/ref2")) <(tail -c +4 "$MNT/vm/odd") ||
	hc_fail "vm/odd differs after fsck --repair"
hc_umount "$MNT"
hc_info "fsck --repair: overflow.dat $o0 -> $o1 bytes allocated"
hc_info "PASS"
