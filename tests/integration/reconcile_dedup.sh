#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Byte-verified dedup at write-back (doc/reconcile.md): the same 64 MiB of
# random data written to two volumes of one domain is stored once (the
# backing directory grows by about 64 MiB, not 128); written to a volume of
# another domain, it is stored again (no dedup across domains); 64 MiB of
# zeros are not stored at all.  Every volume reads back right, before and
# after a remount, and after the first volume is overwritten.  All writes
# run in one mount (the hash index is in RAM only); sizes include meta.log.
# Then the scopes of -o dedup=: with dedup=all the copy in the other domain
# is shared too, with dedup=off the second copy in one domain is stored
# again (zeros are still not stored), and the status request says which.

. "$(dirname "$0")/common.sh"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
MiB=$((1024 * 1024))
used() { du -s --block-size=1 "$BACK" | cut -f1; }
put() {
	dd if="$1" of="$MNT/$2" bs=1M conv=fsync status=none || hc_fail "writing $2 failed"
}

hc_mount "$BACK" "$MNT" -o cache=64M
mkdir "$MNT/vm" "$MNT/other" || hc_fail "mkdir failed"
head -c $((64 * MiB)) /dev/urandom >"$HC_SCRATCH/ref"
head -c $((64 * MiB)) /dev/zero >"$HC_SCRATCH/zero"

u0=$(used)
put "$HC_SCRATCH/ref" vm/a
u1=$(used)
put "$HC_SCRATCH/ref" vm/b
u2=$(used)
put "$HC_SCRATCH/ref" other/c
u3=$(used)
put "$HC_SCRATCH/zero" vm/z
u4=$(used)
hc_info "first copy +$((u1 - u0)), same domain +$((u2 - u1)), other domain +$((u3 - u2)), zeros +$((u4 - u3)) bytes"
[ $((u1 - u0)) -ge $((63 * MiB)) ] || hc_fail "the first copy stored only $((u1 - u0)) bytes"
[ $((u2 - u1)) -lt $((2 * MiB)) ] || hc_fail "the same data in the same domain stored again: +$((u2 - u1))"
[ $((u3 - u2)) -ge $((63 * MiB)) ] || hc_fail "dedup crossed domains: other/c stored only $((u3 - u2))"
[ $((u4 - u3)) -lt $((2 * MiB)) ] || hc_fail "64 MiB of zeros stored $((u4 - u3)) bytes"
# the daemon's counters say the same: 16384 blocks shared, 16384 zero
"$HC_TOP_BUILDDIR/tools/hectl" -m "$MNT" --json stats vm >"$HC_SCRATCH/stats" || hc_fail "hectl stats failed"
python3 - "$HC_SCRATCH/stats" <<'PY' || hc_fail "stats disagree with the storage saved: $(cat "$HC_SCRATCH/stats")"
import json, sys
d = json.load(open(sys.argv[1]))["domains"][0]
n = 64 * 256
assert d["dedup_blocks"] >= n and d["zero_blocks"] >= n, d
# written: a and b's unique copy only (64 MiB), not b, not the zeros
assert d["written_bytes"] < 2 * 64 * 2**20, d
print(f"reconcile_dedup: vm: dedup_blocks {d['dedup_blocks']}, zero_blocks {d['zero_blocks']}, "
      f"written {d['written_bytes']} bytes")
PY

hc_umount "$MNT"
hc_mount "$BACK" "$MNT" -o cache=64M
for v in vm/a vm/b other/c; do
	cmp "$MNT/$v" "$HC_SCRATCH/ref" || hc_fail "$v differs after a remount"
done
cmp "$MNT/vm/z" "$HC_SCRATCH/zero" || hc_fail "vm/z differs after a remount"
# overwrite a (whose blocks b shares): b keeps its data
head -c $((64 * MiB)) /dev/urandom >"$HC_SCRATCH/ref2"
dd if="$HC_SCRATCH/ref2" of="$MNT/vm/a" bs=1M conv=fsync,notrunc status=none || hc_fail "overwriting vm/a failed"
cmp "$MNT/vm/a" "$HC_SCRATCH/ref2" || hc_fail "vm/a differs after its overwrite"
cmp "$MNT/vm/b" "$HC_SCRATCH/ref" || hc_fail "overwriting vm/a changed vm/b"
hc_umount "$MNT"
hc_mount "$BACK" "$MNT" -o cache=64M
cmp "$MNT/vm/a" "$HC_SCRATCH/ref2" || hc_fail "vm/a differs after the second remount"
cmp "$MNT/vm/b" "$HC_SCRATCH/ref" || hc_fail "vm/b differs after the second remount"
hc_umount "$MNT"

scope() {	# SCOPE: sets s1 s2 s3, bytes added by the same-domain copy, other-domain copy, zeros
	local back=$HC_SCRATCH/back-$1 a b c d
	BACK=$back
	hc_mount "$back" "$MNT" -o "cache=64M,dedup=$1"
	"$HC_TOP_BUILDDIR/tools/hectl" -m "$MNT" --json status | grep -q "\"dedup\": *\"$1\"" ||
		hc_fail "status does not say dedup=$1"
	mkdir "$MNT/vm" "$MNT/other" || hc_fail "mkdir failed"
	put "$HC_SCRATCH/ref" vm/a
	a=$(used)
	put "$HC_SCRATCH/ref" vm/b
	b=$(used)
	put "$HC_SCRATCH/ref" other/c
	c=$(used)
	put "$HC_SCRATCH/zero" vm/z
	d=$(used)
	for v in vm/a vm/b other/c; do
		cmp "$MNT/$v" "$HC_SCRATCH/ref" || hc_fail "$v differs (dedup=$1)"
	done
	hc_umount "$MNT"
	s1=$((b - a)) s2=$((c - b)) s3=$((d - c))
}
scope all
hc_info "dedup=all: same domain +$s1, other domain +$s2, zeros +$s3"
[ "$s1" -lt $((2 * MiB)) ] && [ "$s2" -lt $((2 * MiB)) ] && [ "$s3" -lt $((2 * MiB)) ] ||
	hc_fail "dedup=all stored a copy again"
scope off
hc_info "dedup=off: same domain +$s1, other domain +$s2, zeros +$s3"
[ "$s1" -ge $((63 * MiB)) ] && [ "$s2" -ge $((63 * MiB)) ] || hc_fail "dedup=off shared a copy"
[ "$s3" -lt $((2 * MiB)) ] || hc_fail "dedup=off stored zeros"
hc_info "PASS"
