#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A real guest swapping onto hecache-fs.  A 128 MiB QEMU guest (TCG, Debian
# kernel, busybox initramfs) has one virtio disk, the volume vm1/swap of the
# mount; its /init runs mkswap + swapon on it and hc-swaphog over 192 MiB
# (1.5x guest RAM), several passes, every page verified inside the guest.
# Three boots: the swap disk with cache=none,aio=io_uring (O_DIRECT, the
# recommended line), with cache=writeback,aio=threads, and with
# cache=none,aio=io_uring,discard=unmap and swapon -d in the guest (its
# swap discards become hole punches: discards must grow).  Each must print
# the guest's PASS line; the guest must have swapped (pswpout, pswpin) and
# the daemon must have seen it: admissions (swap-outs) and reads (hits +
# misses, the swap-ins) in domain vm1, and hits (the cache holds the whole
# swapped-out set).
# Knobs: HC_VM_MEM (128M), HC_VM_HOG (192M), HC_VM_PASSES (3),
# HC_VM_CACHES ("none writeback discard"), HC_VM_FS_CACHE (daemon cache,
# 256M).  HC_LONG=1: 8 passes.

. "$(dirname "$0")/lib.sh"

MEM=${HC_VM_MEM:-128M}
HOG=${HC_VM_HOG:-192M}
PASSES=${HC_VM_PASSES:-3}
[ "${HC_LONG:-}" = 1 ] && PASSES=${HC_VM_PASSES:-8}
read -r -a CACHES <<<"${HC_VM_CACHES:-none writeback discard}"
FS_CACHE=${HC_VM_FS_CACHE:-256M}

hv_swaphog_initrd

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
hc_mount "$BACK" "$MNT" -o cache="$FS_CACHE"
mkdir "$MNT/vm1" || hc_fail "mkdir of domain vm1 failed"
fallocate -l 256M "$MNT/vm1/swap" || hc_fail "fallocate -l 256M vm1/swap failed"

for c in "${CACHES[@]}"; do
	discard=0
	case $c in
	none) drive="cache=none,aio=io_uring" ;;
	writeback) drive="cache=writeback,aio=threads" ;;
	discard) drive="cache=none,aio=io_uring,discard=unmap" discard=1 ;;
	*) hc_fail "HC_VM_CACHES: none, writeback or discard, not $c" ;;
	esac
	a0=$(hv_stat "$MNT" vm1 admissions) h0=$(hv_stat "$MNT" vm1 hits)
	m0=$(hv_stat "$MNT" vm1 misses) d0=$(hv_stat "$MNT" vm1 discards)
	w0=$(hv_stat "$MNT" vm1 writebacks)
	hc_info "boot ($drive): $MEM guest, hog $HOG x $PASSES passes"
	hv_boot "swap-$c" "$HC_SCRATCH/initrd" \
		"hcvm.hog=$HOG hcvm.passes=$PASSES hcvm.discard=$discard" \
		-m "$MEM" -drive "file=$MNT/vm1/swap,if=virtio,format=raw,$drive" ||
		hc_fail "guest with its swap on hecache-fs ($drive) did not pass"
	da=$(($(hv_stat "$MNT" vm1 admissions) - a0))
	dh=$(($(hv_stat "$MNT" vm1 hits) - h0))
	dm=$(($(hv_stat "$MNT" vm1 misses) - m0))
	dd=$(($(hv_stat "$MNT" vm1 discards) - d0))
	dw=$(($(hv_stat "$MNT" vm1 writebacks) - w0))
	gin=$(hv_guest pswpin) gout=$(hv_guest pswpout)
	hc_info "$c: guest passed in $HV_SECONDS s (boot to poweroff); hog $(hv_guest seconds) s"
	hc_info "$c: guest vmstat: pswpout $gout pswpin $gin (pages)"
	hc_info "$c: daemon, domain vm1: admissions +$da hits +$dh misses +$dm" \
		"discards +$dd writebacks +$dw"
	[ "${gout:-0}" -gt 0 ] && [ "${gin:-0}" -gt 0 ] ||
		hc_fail "$c: the guest did not swap out and in (pswpout $gout pswpin $gin)"
	[ "$da" -gt 0 ] || hc_fail "$c: no admissions: the guest's swap-outs did not reach the daemon"
	[ $((dh + dm)) -gt 0 ] || hc_fail "$c: no reads: the guest's swap-ins did not reach the daemon"
	# The cache (256M) holds the whole swapped-out set: swap-ins must hit.
	[ "$dh" -gt 0 ] || hc_fail "$c: no hits: no swap-in was served from the exclusive cache"
	[ "$discard" = 0 ] ||
		hc_info "$c: guest sees discard_max_bytes=$(hv_guest discard_max_bytes) on its swap disk"
	[ "$discard" = 0 ] || [ "$dd" -gt 0 ] ||
		hc_fail "$c: no discards: the guest's swap discards (discard=unmap) did not reach the daemon"
done
hc_info "counters: $(hv_stats_line "$MNT" vm1)"
hc_umount "$MNT"
hc_info "PASS"
