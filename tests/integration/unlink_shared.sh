#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Unlinking a volume whose blocks other volumes share (copy_file_range
# references): the name goes at once, the home file stays hidden
# (.hc-unlinked.VID) while the references need it, holding only the blocks
# they point at, and goes when they do (ns.c, DOC: unlinked shared volumes).  Checks: the copy reads the same
# after its source is removed, also after SIGKILL and a remount; the name
# can be used again; the reserved prefix is refused; an open descriptor of
# the removed source still reads it; removing the copy removes the hidden
# file; a rename over a shared volume keeps its blocks the same way; `rm -rf`
# of a domain works whatever the order of its volumes; a truncate below
# blocks other volumes share works and keeps their data (after SIGKILL
# too); hectl fsck is clean at the end.

. "$(dirname "$0")/common.sh"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
HECTL=$HC_TOP_BUILDDIR/tools/hectl
MiB=$((1024 * 1024))
cfr() {	# SRC DST LEN
	python3 "$HC_INTEGRATION_DIR/cfr.py" "$1" "$2" "0 0 $3" || hc_fail "copy_file_range $1 $2 failed"
}
hidden() { find "$BACK/$1" -maxdepth 1 -name '.hc-unlinked.*' | wc -l; }
# wait_hidden DOMAIN N: the reaper runs every second; give it 10
wait_hidden() {
	local i
	for i in $(seq 100); do
		[ "$(hidden "$1")" = "$2" ] && return 0
		sleep 0.1
	done
	hc_fail "$1: $(hidden "$1") hidden home files, expected $2"
}

head -c $((8 * MiB)) /dev/urandom >"$HC_SCRATCH/ref"
head -c $((8 * MiB)) /dev/urandom >"$HC_SCRATCH/ref2"
hc_mount "$BACK" "$MNT" -o cache=16M
mkdir "$MNT/vm" || hc_fail "mkdir failed"
dd if="$HC_SCRATCH/ref" of="$MNT/vm/src" bs=1M oflag=direct conv=fsync status=none ||
	hc_fail "writing vm/src failed"
cfr "$MNT/vm/src" "$MNT/vm/dst" $((8 * MiB))

# --- the source goes while the copy shares its blocks --------------------------
rm "$MNT/vm/src" || hc_fail "removing vm/src (its blocks shared by vm/dst) failed"
[ "$(ls -A "$MNT/vm")" = dst ] || hc_fail "vm lists: $(ls -A "$MNT/vm" | tr '\n' ' ')"
[ "$(hidden vm)" = 1 ] || hc_fail "vm/src's home file is not kept hidden: $(ls -A "$BACK/vm")"
Z=$(basename "$(find "$BACK/vm" -maxdepth 1 -name '.hc-unlinked.*')")
hc_info "vm/src removed; its home file is kept as $Z"
[ -e "$MNT/vm/$Z" ] && hc_fail "the hidden home file is visible in the mount"
touch "$MNT/vm/.hc-unlinked.77" 2>/dev/null && hc_fail "a name with the reserved prefix was accepted"
cmp "$MNT/vm/dst" "$HC_SCRATCH/ref" || hc_fail "vm/dst differs after its source was removed"
# the name is free again, and the new volume is another one
dd if="$HC_SCRATCH/ref2" of="$MNT/vm/src" bs=1M oflag=direct conv=fsync status=none ||
	hc_fail "writing a new vm/src failed"
cmp "$MNT/vm/src" "$HC_SCRATCH/ref2" || hc_fail "the new vm/src differs"
cmp "$MNT/vm/dst" "$HC_SCRATCH/ref" || hc_fail "writing a new vm/src changed vm/dst"

# --- SIGKILL: the hidden file is found at mount and still serves the copy ------
sync
hc_crash "$MNT"
hc_mount "$BACK" "$MNT" -o cache=16M
[ "$(ls -A "$MNT/vm" | sort | tr '\n' ' ')" = "dst src " ] ||
	hc_fail "after SIGKILL vm lists: $(ls -A "$MNT/vm" | tr '\n' ' ')"
cmp "$MNT/vm/dst" "$HC_SCRATCH/ref" || hc_fail "vm/dst differs after SIGKILL and a remount"
[ "$(hidden vm)" = 1 ] || hc_fail "the hidden home file went while vm/dst still shares it"

# --- an open descriptor of a removed source still reads it ---------------------
cfr "$MNT/vm/src" "$MNT/vm/dst2" $((8 * MiB))
exec 3<"$MNT/vm/src"
rm "$MNT/vm/src" || hc_fail "removing the second vm/src failed"
wait_hidden vm 2
cmp <(cat <&3) "$HC_SCRATCH/ref2" || hc_fail "an open descriptor of the removed vm/src reads other data"
exec 3<&-
cmp "$MNT/vm/dst2" "$HC_SCRATCH/ref2" || hc_fail "vm/dst2 differs after its source was removed"

# --- removing the copies removes the hidden home files, at once and durably ----
# (SIGKILL right after: the records that dropped the references must be
# durable before the home files went, or fsck finds entries pointing at
# volume ids no home file has)
rm "$MNT/vm/dst" "$MNT/vm/dst2" || hc_fail "removing the copies failed"
[ "$(hidden vm)" = 0 ] || hc_fail "removing the copies left $(hidden vm) hidden home files"
hc_crash "$MNT"
hc_mount "$BACK" "$MNT" -o cache=16M
[ -z "$(ls -A "$MNT/vm")" ] || hc_fail "after SIGKILL vm lists: $(ls -A "$MNT/vm" | tr '\n' ' ')"
hc_umount "$MNT"
"$HECTL" -b "$BACK" fsck >"$HC_SCRATCH/fsck0" 2>&1 ||
	hc_fail "hectl fsck after removing the copies and SIGKILL: $(cat "$HC_SCRATCH/fsck0")"
hc_mount "$BACK" "$MNT" -o cache=16M
rmdir "$MNT/vm" || hc_fail "rmdir vm failed"
[ ! -e "$BACK/vm" ] || hc_fail "vm's backing directory stayed: $(ls -A "$BACK/vm")"

# --- a hidden home file keeps only the blocks others point at ------------------
mkdir "$MNT/p" || hc_fail "mkdir p failed"
head -c $((32 * MiB)) /dev/urandom >"$HC_SCRATCH/big"
dd if="$HC_SCRATCH/big" of="$MNT/p/big" bs=1M oflag=direct conv=fsync status=none ||
	hc_fail "writing p/big failed"
python3 "$HC_INTEGRATION_DIR/cfr.py" "$MNT/p/big" "$MNT/p/part" "$((8 * MiB)) 0 $MiB" ||
	hc_fail "copy_file_range p/big p/part failed"
rm "$MNT/p/big" || hc_fail "removing p/big failed"
ZP=$(find "$BACK/p" -maxdepth 1 -name '.hc-unlinked.*')
[ -n "$ZP" ] || hc_fail "p/big's home file is not kept hidden"
alloc=$(du --block-size=1 "$ZP" | cut -f1)
hc_info "p/big (32 MiB, 1 MiB shared) removed: its hidden home file holds $alloc bytes"
[ "$alloc" -le $((2 * MiB)) ] || hc_fail "the hidden home file still holds $alloc bytes"
cmp "$MNT/p/part" <(tail -c +$((8 * MiB + 1)) "$HC_SCRATCH/big" | head -c $MiB) ||
	hc_fail "p/part differs after the unshared blocks of its source were freed"
rm "$MNT/p/part" && rmdir "$MNT/p" || hc_fail "removing p failed"

# --- a rename over a shared volume replaces it the same way -------------------
mkdir "$MNT/r" || hc_fail "mkdir r failed"
dd if="$HC_SCRATCH/ref" of="$MNT/r/x" bs=1M oflag=direct conv=fsync status=none ||
	hc_fail "writing r/x failed"
cfr "$MNT/r/x" "$MNT/r/y" $((8 * MiB))
dd if="$HC_SCRATCH/ref2" of="$MNT/r/z" bs=1M oflag=direct conv=fsync status=none ||
	hc_fail "writing r/z failed"
mv "$MNT/r/z" "$MNT/r/x" || hc_fail "renaming r/z over r/x (shared by r/y) failed"
[ "$(hidden r)" = 1 ] || hc_fail "r/x's home file is not kept hidden after the rename over it"
cmp "$MNT/r/x" "$HC_SCRATCH/ref2" || hc_fail "r/x is not r/z's data after the rename"
cmp "$MNT/r/y" "$HC_SCRATCH/ref" || hc_fail "r/y differs after a rename over its source"
rm -r "$MNT/r" || hc_fail "rm -r r failed"
[ ! -e "$BACK/r" ] || hc_fail "r's backing directory stayed: $(ls -A "$BACK/r")"

# --- rm -rf of a domain, sources first or last ---------------------------------
for order in "a b c" "c b a"; do
	mkdir "$MNT/d" || hc_fail "mkdir d failed"
	dd if="$HC_SCRATCH/ref" of="$MNT/d/a" bs=1M oflag=direct conv=fsync status=none ||
		hc_fail "writing d/a failed"
	cfr "$MNT/d/a" "$MNT/d/b" $((8 * MiB))
	cfr "$MNT/d/b" "$MNT/d/c" $((4 * MiB))
	for f in $order; do rm "$MNT/d/$f" || hc_fail "rm d/$f (order $order) failed"; done
	rmdir "$MNT/d" || hc_fail "rmdir d after removing $order failed: $(ls -A "$BACK/d" 2>&1)"
done
mkdir "$MNT/e" && dd if="$HC_SCRATCH/ref" of="$MNT/e/a" bs=1M conv=fsync status=none &&
	cfr "$MNT/e/a" "$MNT/e/b" $((8 * MiB)) || hc_fail "setting up domain e failed"
rm -rf "$MNT/e" || hc_fail "rm -rf e failed"
[ ! -e "$BACK/e" ] || hc_fail "e's backing directory stayed"

# --- truncating a volume below blocks others share --------------------------------
# t/copy shares all 8 MiB of t/src, t/src shares its own first MiB at 7 MiB
# (t/src 7M..8M -> t/src 0..1M).  Cutting t/src to 2 MiB + 100 bytes: the
# entries pointing past the cut get their data at their own home first
# (odefrag.c, hc_odefrag_unshare), so the truncate is not refused, and every
# byte reads as before, also after SIGKILL and a remount.
mkdir "$MNT/t" || hc_fail "mkdir t failed"
dd if="$HC_SCRATCH/ref" of="$MNT/t/src" bs=1M oflag=direct conv=fsync status=none ||
	hc_fail "writing t/src failed"
cfr "$MNT/t/src" "$MNT/t/copy" $((8 * MiB))
python3 "$HC_INTEGRATION_DIR/cfr.py" "$MNT/t/src" "$MNT/t/src" "$((7 * MiB)) 0 $MiB" ||
	hc_fail "copy_file_range t/src 7M..8M over its first MiB failed"
tail -c +$((7 * MiB + 1)) "$HC_SCRATCH/ref" | head -c $MiB |
	cat - <(tail -c +$((MiB + 1)) "$HC_SCRATCH/ref") >"$HC_SCRATCH/tsrc"
cmp "$MNT/t/src" "$HC_SCRATCH/tsrc" || hc_fail "t/src differs after copying its last MiB over its first"
truncate -s $((2 * MiB + 100)) "$MNT/t/src" ||
	hc_fail "truncating t/src below the blocks t/copy shares was refused"
truncate -s $((2 * MiB + 100)) "$HC_SCRATCH/tsrc"
cmp "$MNT/t/src" "$HC_SCRATCH/tsrc" || hc_fail "t/src differs after the truncate"
cmp "$MNT/t/copy" "$HC_SCRATCH/ref" || hc_fail "t/copy differs after its source was truncated"
hc_crash "$MNT"
hc_mount "$BACK" "$MNT" -o cache=16M
cmp "$MNT/t/src" "$HC_SCRATCH/tsrc" || hc_fail "t/src differs after SIGKILL and a remount"
cmp "$MNT/t/copy" "$HC_SCRATCH/ref" || hc_fail "t/copy differs after SIGKILL and a remount"
truncate -s $((8 * MiB)) "$MNT/t/src" || hc_fail "growing t/src failed"
cmp <(tail -c +$((2 * MiB + 101)) "$MNT/t/src") <(head -c $((6 * MiB - 100)) /dev/zero) ||
	hc_fail "t/src grown again does not read zeros past its old size"
rm -r "$MNT/t" || hc_fail "rm -r t failed"
hc_umount "$MNT"
"$HECTL" -b "$BACK" fsck >"$HC_SCRATCH/fsck" 2>&1 || hc_fail "hectl fsck: $(cat "$HC_SCRATCH/fsck")"
hc_info "PASS"
