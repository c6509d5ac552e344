#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The README's main job: installs what hecache needs, builds it, mounts
# hecache-fs over a backing directory, puts a swap volume of the mount on a
# loop device, makes the kernel swap a memory-hungry process running in a
# memory cgroup onto it, prints the cache and swap figures, the miss-ratio
# curve hecache-fs computed from the swap traffic and the memory it
# recommends for the cgroup, and cleans up (swapoff, losetup -d, unmount,
# cgroup removed, vm.page-cluster restored) even when a step fails.
#
# Usage (root, from anywhere): tools/demo.sh [-c CACHE] [-m CGROUP_LIMIT] [-s HOG_SIZE] [-p PASSES]
# Defaults: cache 256M (the swapped-out part of the hog fits: swap-ins hit),
# cgroup limit 64M, hog 256M touched 3 times.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
. "$TOP/tools/cgroup.sh"
CACHE=256M LIMIT=64M HOG=256M PASSES=3
while getopts "c:m:s:p:h" o; do
	case $o in
	c) CACHE=$OPTARG ;;
	m) LIMIT=$OPTARG ;;
	s) HOG=$OPTARG ;;
	p) PASSES=$OPTARG ;;
	*) sed -n '3,11p' "$0"; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "demo: run as root (swapon, losetup, cgroups, mount)" >&2; exit 1; }

say() { printf '\n== %s\n' "$*"; }

say "installing dependencies (apt-get, only what is missing)"
"$TOP/tools/install-deps.sh"
modprobe fuse 2>/dev/null || true
modprobe loop 2>/dev/null || true

BUILD=${HECACHE_BUILDDIR:-$TOP}
if [ ! -x "$BUILD/cache-fs/hecache-fs" ] || [ ! -x "$BUILD/tools/hc-swaphog" ] ||
	[ ! -x "$BUILD/tools/hectl" ]; then
	say "building"
	cd "$TOP"
	[ -x configure ] || autoreconf -fi >/dev/null
	[ -f Makefile ] || ./configure -q
	make -j"$(nproc)" >/dev/null
	BUILD=$TOP
fi
HCFS=$BUILD/cache-fs/hecache-fs
HOGBIN=$BUILD/tools/hc-swaphog
HECTL=$BUILD/tools/hectl

WORK=$(mktemp -d /var/tmp/hecache-demo.XXXXXX)
BACKING=$WORK/backing MNT=$WORK/mnt
mkdir -p "$BACKING" "$MNT"
DPID= LOOP= SWAPON= CG= CLUSTER=

cleanup() {
	local rc=$?
	set +e
	[ -n "$CG" ] && hc_cg_remove "$CG"
	[ -n "$CLUSTER" ] && sysctl -q vm.page-cluster="$CLUSTER"
	[ -n "$SWAPON" ] && swapoff "$SWAPON"
	[ -n "$LOOP" ] && losetup -d "$LOOP"
	if mountpoint -q "$MNT"; then
		fusermount3 -u "$MNT" || umount -l "$MNT"
	fi
	if [ -n "$DPID" ]; then
		for _ in $(seq 100); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.1; done
		kill "$DPID" 2>/dev/null
	fi
	rm -rf "$WORK"
	[ $rc = 0 ] || echo "demo: failed (exit $rc); everything it set up has been undone" >&2
	exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "mounting hecache-fs: $BACKING on $MNT, cache=$CACHE"
"$HCFS" "$BACKING" "$MNT" -f -o "cache=$CACHE" 2>"$WORK/daemon.log" &
DPID=$!
for _ in $(seq 100); do
	grep -q " $MNT fuse" /proc/mounts && break
	kill -0 "$DPID" 2>/dev/null || { cat "$WORK/daemon.log" >&2; exit 1; }
	sleep 0.1
done
grep -q " $MNT fuse" /proc/mounts || { cat "$WORK/daemon.log" >&2; exit 1; }
cat "$WORK/daemon.log"

say "a domain 'host' with a 1 GiB swap volume on a loop device (direct I/O)"
mkdir "$MNT/host"
fallocate -l 1G "$MNT/host/swap"
LOOP=$(losetup --direct-io=on --find --show "$MNT/host/swap")
mkswap "$LOOP" >/dev/null
swapon -p 32767 "$LOOP"
SWAPON=$LOOP
swapon --show

say "a memory cgroup limited to $LIMIT"
CG=$(hc_cg_make "hecache-demo.$$" "$(numfmt --from=iec "$LIMIT")") ||
	{ echo "demo: cannot make a memory cgroup (no memory controller?)" >&2; exit 1; }
echo "cgroup v$(hc_cg_version): $CG, limit $LIMIT"

# One read per swap-in (no readahead), so that every read the daemon sees
# is a page the cgroup missed: the miss-ratio curve is about those.
CLUSTER=$(sysctl -n vm.page-cluster)
sysctl -q vm.page-cluster=0
"$HECTL" -m "$MNT" domain set-memory host "$LIMIT"

vm() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
in0=$(vm pswpin) out0=$(vm pswpout)

say "running hc-swaphog $HOG x $PASSES in the cgroup (every page verified)"
hc_cg_exec "$CG" "$HOGBIN" -p "$PASSES" "$HOG"

in1=$(vm pswpin) out1=$(vm pswpout)
say "swap figures (kernel, /proc/vmstat)"
printf '  pages swapped out: %d (%s)\n' $((out1 - out0)) "$(numfmt --to=iec $(((out1 - out0) * 4096)))"
printf '  pages swapped in:  %d (%s)\n' $((in1 - in0)) "$(numfmt --to=iec $(((in1 - in0) * 4096)))"

say "cache figures (hecache-fs, getfattr -n user.hecache.stats)"
getfattr --only-values -n user.hecache.stats "$MNT" | awk '
	{ label = $1 == "domain" ? "domain " $2 : $1; s = $1 == "domain" ? 3 : 2
	  printf "  %s\n", label
	  for (i = s; i < NF; i += 2) printf "    %-14s %s\n", $i, $(i + 1) }
	$1 == "total" { for (i = 2; i < NF; i += 2) v[$i] = $(i + 1)
	  r = v["hits"] + v["misses"]
	  if (r) printf "  swap-ins served from the cache: %.1f%% (%d of %d blocks)\n",
	      100 * v["hits"] / r, v["hits"], r }'

say "hectl stats host"
"$HECTL" -m "$MNT" stats host

say "miss-ratio curve of domain 'host' (hectl mrc): predicted swap-ins with more memory"
"$HECTL" -m "$MNT" mrc host --step "$(numfmt --to=iec $(($(numfmt --from=iec "$HOG") / 8)))" \
	--points 10

say "recommended memory for the cgroup (hectl recommend, 5% tolerance)"
"$HECTL" -m "$MNT" recommend host --tolerance 0.05

say "cleaning up"
swapoff "$SWAPON"
SWAPON=
losetup -d "$LOOP"
LOOP=
echo "demo: done"
