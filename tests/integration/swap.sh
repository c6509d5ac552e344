#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Kernel swap through the cache: a 512 MiB swap volume (host/swap, made
# with fallocate) on a loop device in direct I/O mode, mkswap, swapon at
# the highest priority; hc-swaphog touches 256 MiB three times inside a
# 64 MiB memory cgroup, verifying every page it gets back (a wrong page is
# a failure).  The kernel must really have swapped (global pswpout grew by
# at least 256 MiB worth of pages, pswpin grew), and the daemon must have
# seen it: admissions (swap-outs) and hits (swap-ins served from the
# cache) in domain host.  Only our own swap area is ever swapped off.
# Then once more with swapon --discard: the kernel punches the whole area
# at swapon and then the swap clusters it frees, and the daemon drops those
# blocks unwritten.  Its domain has this one swap volume, so a dirty block
# a swap-in takes out stays cached until the cache needs room (excache.c
# "Taken blocks"): most are discarded or swapped out again first, so fewer
# than half of the swap-ins may cost a write-back (when each was written
# back at the hit, there were as many write-backs as hits).
# HC_LONG=1: more passes, twice (and twice with discards).

. "$(dirname "$0")/common.sh"

for t in losetup mkswap swapon swapoff; do
	command -v $t >/dev/null || hc_skip "$t is not installed"
done
[ "$(hc_cgroup_version)" != 0 ] || hc_skip "no memory cgroup controller (v1 or v2)"
[ -x "$HC_TOOLS/hc-swaphog" ] || hc_fail "no $HC_TOOLS/hc-swaphog (make builds it)"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
HOG_SIZE=256M
HOG_PAGES=$((256 * 1024 * 1024 / 4096))
PASSES=3
RUNS=1
if [ "${HC_LONG:-}" = 1 ]; then
	PASSES=8
	RUNS=2
fi

vmstat() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }

others_before=$(awk 'NR > 1 { print $1 }' /proc/swaps | sort)

# The cache holds the whole swapped-out set (about 200 MiB): a cyclic scan
# larger than an LRU cache would never hit.
hc_mount "$BACK" "$MNT" -o cache=256M
mkdir "$MNT/host" || hc_fail "mkdir of domain host failed"
fallocate -l 512M "$MNT/host/swap" || hc_fail "fallocate -l 512M host/swap failed"
dev=$(losetup --direct-io=on --find --show "$MNT/host/swap") ||
	hc_fail "losetup --direct-io=on over host/swap failed"
HC_LOOPS+=("$dev")
[ "$(cat "/sys/block/$(basename "$dev")/loop/dio")" = 1 ] || hc_fail "$dev is not in direct I/O mode"
mkswap "$dev" >/dev/null || hc_fail "mkswap $dev failed"
swapon -p 32767 "$dev" || hc_fail "swapon -p 32767 $dev failed"
HC_SWAPS+=("$dev")
hc_info "swap on $dev (host/swap, 512 MiB), priority 32767"
grep "^$dev " /proc/swaps >/dev/null || hc_fail "$dev not in /proc/swaps after swapon"

hc_cgroup_create "hc-swap-$$" $((64 * 1024 * 1024)) >"$HC_SCRATCH/cg" ||
	hc_fail "cannot create a memory cgroup"
CG=$(cat "$HC_SCRATCH/cg")
hc_info "memory cgroup $CG (v$(hc_cgroup_version)), limit 64 MiB"

# run_hog RUN: hc-swaphog in the cgroup; checks the swapping and sets
# dh (hits), dwb (write-backs) and ddis (discards) of the run.
run_hog() {
	local run=$1
	out0=$(vmstat pswpout) in0=$(vmstat pswpin)
	a0=$(hc_stat "$MNT" host admissions) h0=$(hc_stat "$MNT" host hits)
	m0=$(hc_stat "$MNT" host misses)
	w0=$(hc_stat "$MNT" host writebacks) x0=$(hc_stat "$MNT" host discards)
	rc=0
	hc_cgroup_exec "$CG" "$HC_TOOLS/hc-swaphog" -q -p "$PASSES" -s "$run" $HOG_SIZE \
		>"$HC_SCRATCH/hog.out" 2>"$HC_SCRATCH/hog.err" || rc=$?
	out1=$(vmstat pswpout) in1=$(vmstat pswpin)
	cat "$HC_SCRATCH/hog.err" >&2
	[ "$rc" = 0 ] || hc_fail "hc-swaphog failed (exit $rc): $(cat "$HC_SCRATCH/hog.err")"
	dout=$((out1 - out0)) din=$((in1 - in0))
	da=$(($(hc_stat "$MNT" host admissions) - a0))
	dh=$(($(hc_stat "$MNT" host hits) - h0))
	dm=$(($(hc_stat "$MNT" host misses) - m0))
	dwb=$(($(hc_stat "$MNT" host writebacks) - w0))
	ddis=$(($(hc_stat "$MNT" host discards) - x0))
	hc_info "run $run: $(tail -1 "$HC_SCRATCH/hog.out")"
	hc_info "run $run: /proc/vmstat pswpout +$dout pswpin +$din (pages, whole machine)"
	hc_info "run $run: daemon, domain host: admissions +$da hits +$dh misses +$dm writebacks +$dwb discards +$ddis"
	[ "$dout" -ge "$HOG_PAGES" ] ||
		hc_fail "pswpout grew by $dout pages, expected at least $HOG_PAGES: the kernel did not swap"
	[ "$din" -gt 0 ] || hc_fail "pswpin did not grow: nothing was swapped in"
	[ "$da" -gt 0 ] || hc_fail "no admissions in domain host: swap-outs did not reach the daemon"
	[ "$dh" -gt 0 ] || hc_fail "no hits in domain host: no swap-in was served from the cache"
}

for run in $(seq "$RUNS"); do
	run_hog "$run"
done
# What the swap-ins took out stays until needed: the hog's last pages, and
# the stale ones of slots it freed (no discards yet).
taken=$(hc_status "$MNT" cache.taken_blocks)
hc_info "taken blocks after the round without discards: $taken"
[ "$taken" -gt 0 ] || hc_fail "no taken blocks after swap-ins (hectl status: cache.taken_blocks)"
"$HC_TOOLS/hectl" -m "$MNT" status | grep -q '^of which taken  *[1-9]' ||
	hc_fail "hectl status has no 'of which taken' row"

hc_swapoff "$dev" || hc_fail "swapoff $dev failed"
swapon --discard -p 32767 "$dev" || hc_fail "swapon --discard -p 32767 $dev failed"
HC_SWAPS+=("$dev")
hc_info "swap on $dev again, with --discard"
for run in $(seq $((RUNS + 1)) $((2 * RUNS))); do
	run_hog "$run"
	[ "$ddis" -gt 0 ] || hc_fail "run $run: no discards reached the daemon with swapon --discard"
	[ $((2 * dwb)) -lt "$dh" ] ||
		hc_fail "run $run: $dwb write-backs for $dh swap-ins: taken blocks were written back, not kept"
done
hc_info "counters: $(hc_stats "$MNT" 2>/dev/null | grep '^domain host ')"
hc_info "swap in use on $dev at the end: $(awk -v d="$dev" '$1 == d { print $4 " KiB" }' /proc/swaps)"

# tear down in order: workload (gone), swap, loop, mount
hc_cgroup_remove "$CG" || hc_fail "cannot remove the cgroup $CG"
hc_swapoff "$dev" || hc_fail "swapoff $dev failed"
hc_loop_detach "$dev" || hc_fail "losetup -d $dev failed"
hc_umount "$MNT"
others_after=$(awk 'NR > 1 { print $1 }' /proc/swaps | sort)
missing=$(comm -23 <(echo "$others_before") <(echo "$others_after"))
[ -z "$missing" ] || hc_info "note: swap areas gone meanwhile (not by us): $missing"
hc_info "PASS"
