#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# I1 and I5 under random operations (model.py): writes aligned and not,
# plain and O_DIRECT, of pooled (dedup), zero and random blocks; reads;
# punches and zero ranges; fallocate; truncate; copy_file_range inside and
# across domains; rename; unlink and re-creation; fsync; SEEK_HOLE/SEEK_DATA;
# writes through a shared mapping of the ram volume (msync) -- over five
# volumes of two domains (kinds disk, ram and swap), through a 256 KiB
# cache, checked against an in-memory model after every change.  Between
# rounds the daemon is unmounted, or SIGKILLed after every volume was
# fsynced, and mounted again with the next I/O engine (uring, aio, sync);
# the next round first checks every byte.  6 rounds of 1500 operations; 40 of 5000 with HC_LONG=1.
# Truncates often cut home blocks other entries point at (copies, dedup):
# they must work (hc_odefrag_unshare) and keep those entries' data.

. "$(dirname "$0")/common.sh"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
STATE=$HC_SCRATCH/model
ROUNDS=6 OPS=1500
[ -n "${HC_LONG:-}" ] && ROUNDS=40 OPS=5000
SEED=${HC_MODEL_SEED:-$RANDOM}
ENGINES=(uring aio sync)

hc_info "seed $SEED (HC_MODEL_SEED=$SEED repeats it), $ROUNDS rounds of $OPS operations"
for r in $(seq "$ROUNDS"); do
	eng=${ENGINES[$(((r - 1) % 3))]}
	hc_mount "$BACK" "$MNT" -o cache=256K,io=$eng
	out=$(python3 "$HC_INTEGRATION_DIR/model.py" "$MNT" "$STATE" $((SEED + r)) "$OPS" 2>&1) ||
		hc_fail "round $r (io=$eng): $out"
	if [ $((r % 2)) = 0 ]; then
		hc_crash "$MNT"
		how="SIGKILL"
	else
		hc_umount "$MNT"
		how="unmount"
	fi
	hc_info "round $r (io=$eng, then $how): $out"
done
# The last round's state, checked once more by a mount that does nothing else.
hc_mount "$BACK" "$MNT" -o cache=256K
out=$(python3 "$HC_INTEGRATION_DIR/model.py" "$MNT" "$STATE" 0 0 2>&1) ||
	hc_fail "after the last round: $out"
hc_umount "$MNT"
"$HC_TOOLS/hectl" -b "$BACK" fsck >"$HC_SCRATCH/fsck" 2>&1 ||
	hc_fail "hectl fsck: $(cat "$HC_SCRATCH/fsck")"
hc_info "all rounds match the model; fsck clean"
