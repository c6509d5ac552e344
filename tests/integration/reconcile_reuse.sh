#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# I1/I4 under SIGKILL: a home block must not be overwritten in place while
# the record that dropped the last entry pointing at it is not durable.
# vm/a is a copy of vm/b (copy_file_range: a's blocks are entries to b's
# home blocks), committed.  Then, with no fsync, a is overwritten (its
# write-backs clear the entries: records not yet durable) and b is
# overwritten (its home blocks now have no entry), through a 1 MiB cache so
# both are written back at once, and the daemon is SIGKILLed before its 1 s
# commit.  After a remount every block of a must hold a's old bytes (the
# copy) or its new ones, never b's new bytes; every block of b its old or
# new bytes.  Three rounds.

. "$(dirname "$0")/common.sh"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
HECTL=$HC_TOP_BUILDDIR/tools/hectl
N=1024	# blocks per volume (4 MiB)

check() {	# ROUND: compares each block of a and b with what it may hold
	python3 - "$MNT/vm/a" "$MNT/vm/b" "$HC_SCRATCH/b_old" "$HC_SCRATCH/a_new" \
		"$HC_SCRATCH/b_new" "$1" <<'PY'
import sys
a, b, b_old, a_new, b_new = (open(f, "rb").read() for f in sys.argv[1:6])
bad, kinds = [], {"old": 0, "new": 0}
for i in range(len(b_old) // 4096):
    s = slice(i * 4096, (i + 1) * 4096)
    if a[s] == b_old[s]:
        kinds["old"] += 1
    elif a[s] == a_new[s]:
        kinds["new"] += 1
    else:
        bad.append("a block %d holds %s" % (i, "b's new bytes" if a[s] == b_new[s] else "other bytes"))
    if b[s] not in (b_old[s], b_new[s]):
        bad.append("b block %d holds other bytes" % i)
print("round %s: a blocks old %d, new %d" % (sys.argv[6], kinds["old"], kinds["new"]))
if bad:
    sys.exit("; ".join(bad[:5]) + " (%d blocks)" % len(bad))
PY
}

for r in 1 2 3; do
	rm -rf "$BACK"
	head -c $((N * 4096)) /dev/urandom >"$HC_SCRATCH/b_old"
	head -c $((N * 4096)) /dev/urandom >"$HC_SCRATCH/a_new"
	head -c $((N * 4096)) /dev/urandom >"$HC_SCRATCH/b_new"
	hc_mount "$BACK" "$MNT" -o cache=1M
	mkdir "$MNT/vm" || hc_fail "mkdir vm failed"
	dd if="$HC_SCRATCH/b_old" of="$MNT/vm/b" bs=1M oflag=direct conv=fsync status=none ||
		hc_fail "writing vm/b failed"
	python3 "$HC_INTEGRATION_DIR/cfr.py" "$MNT/vm/b" "$MNT/vm/a" "0 0 $((N * 4096))" ||
		hc_fail "copy_file_range vm/b vm/a failed"
	"$HECTL" -m "$MNT" flush vm >/dev/null || hc_fail "hectl flush failed"
	# no fsync from here on; 4 KiB writes, each block one write-back
	dd if="$HC_SCRATCH/a_new" of="$MNT/vm/a" bs=4k oflag=direct conv=notrunc status=none ||
		hc_fail "overwriting vm/a failed"
	dd if="$HC_SCRATCH/b_new" of="$MNT/vm/b" bs=4k oflag=direct conv=notrunc status=none ||
		hc_fail "overwriting vm/b failed"
	hc_crash "$MNT"
	hc_mount "$BACK" "$MNT" -o cache=1M
	out=$(check "$r" 2>&1) || hc_fail "round $r after SIGKILL: $out"
	hc_info "$out"
	hc_umount "$MNT"
done
hc_info "PASS"
