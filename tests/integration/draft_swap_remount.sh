#!/bin/bash
# DRAFT (not in INTEGRATION_TESTS): kernel swap on a volume across remounts of one backing
# directory, mrc=off/sampled/exact, printing the swap volume's map after each round.
# Did not reproduce the KNOWN BUG of doc/reconcile.md in 2 runs; bench/mrc-onoff.sh does.
# B=build dir of this branch.
set -u
B=${B:-/var/tmp/hc-build-wt}; W=$(mktemp -d /var/tmp/repro.XXXXXX); mkdir -p $W/b $W/m
. /work/main/tools/cgroup.sh
DEV= CG= PID=
cleanup() { [ -n "$DEV" ] && { swapoff $DEV; losetup -d $DEV; }; [ -n "$CG" ] && hc_cg_remove $CG; mountpoint -q $W/m && fusermount3 -u $W/m; [ -n "$PID" ] && wait $PID; [ -n "${KEEP:-}" ] || rm -rf $W; }
trap cleanup EXIT
for r in off sampled exact; do
  $B/cache-fs/hecache-fs $W/b $W/m -f -o cache=256M,mrc=$r 2>>$W/log & PID=$!
  for i in $(seq 100); do mountpoint -q $W/m && break; sleep 0.1; done
  [ -e $W/m/vm1 ] || mkdir $W/m/vm1; [ -e $W/m/vm1/swap ] || truncate -s 1G $W/m/vm1/swap
  DEV=$(losetup --direct-io=on --find --show $W/m/vm1/swap); mkswap $DEV >/dev/null 2>&1; swapon -p 32767 $DEV
  CG=$(hc_cg_make repro$$-$r 67108864)
  hc_cg_exec $CG $B/tools/hc-swaphog -q -p 3 256M; rc=$?; echo "round $r: hog rc=$rc"
  hc_cg_remove $CG; CG=
  $B/tools/hectl -b $W/b map vm1/swap | head -12
  swapoff $DEV; losetup -d $DEV; DEV=
  fusermount3 -u $W/m; wait $PID; PID=
  [ $rc = 0 ] || { echo "failed; backing kept in $W"; KEEP=1; break; }
done
