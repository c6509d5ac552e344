#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Double paging with a real guest: its RAM and its swap disk both in the
# mount.  The 128 MiB guest's RAM is the volume vm1/ram (kind ram, served
# through the page cache so QEMU can map it shared):
#   -object memory-backend-file,id=mem,size=128M,mem-path=MNT/vm1/ram,share=on
#   -machine memory-backend=mem
# and its swap disk vm1/swap (cache=none,aio=io_uring).  QEMU runs in a
# memory cgroup of 160 MiB, below guest RAM plus QEMU's own ~95 MiB (TCG
# code buffer, heap; there is no host swap, so that part stays resident):
# the host must write guest RAM back into the mount and read it again
# (hypervisor paging through hecache-fs) while the guest, running
# hc-swaphog over 192 MiB, swaps to its swap volume.  The daemon stays
# outside the cgroup.  The guest must print PASS (every page verified), it
# must have swapped, and the host must have paged guest RAM: major faults
# in the cgroup and more admissions in vm1 than the guest's swap-outs.
# Reported: guest pswpin/pswpout, the cgroup's paging, the domain's
# counters and their split between the two volumes (the guest's swap
# traffic is its pswpout/pswpin, one block each; the rest is guest RAM).
# Also reported: what swap-reconcile's dedup caught (write-backs stored as
# references to an identical block already stored, or as zeros: storage
# writes saved).  Not asserted: whether a guest swap-out finds its page
# still at home in vm1/ram depends on timing.
# Knobs: HC_VM_HOG (192M), HC_VM_PASSES (2), HC_VM_RAM_CGROUP (160M),
# HC_VM_RAM_READAHEAD_KB (the mount's read_ahead_kb, default: the kernel's).

. "$(dirname "$0")/lib.sh"

MEM=128M
HOG=${HC_VM_HOG:-192M}
PASSES=${HC_VM_PASSES:-2}
CG_LIMIT=${HC_VM_RAM_CGROUP:-160M}
RA_KB=${HC_VM_RAM_READAHEAD_KB:-}

[ "$(hc_cgroup_version)" != 0 ] || hc_skip "no memory cgroup controller (v1 or v2)"
hv_swaphog_initrd

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
hc_mount "$BACK" "$MNT" -o cache=256M
mkdir "$MNT/vm1" || hc_fail "mkdir of domain vm1 failed"
fallocate -l 256M "$MNT/vm1/swap" || hc_fail "fallocate -l 256M vm1/swap failed"
truncate -s "$MEM" "$MNT/vm1/ram" || hc_fail "truncate -s $MEM vm1/ram failed"
kind=$("$HECTL" -m "$MNT" --json volume list vm1 |
	jq -r '.volumes[] | select(.name == "ram") | .kind')
[ "$kind" = ram ] || hc_fail "vm1/ram is of kind '$kind', not ram"

if [ -n "$RA_KB" ]; then
	bdi=/sys/class/bdi/$(mountpoint -d "$MNT")/read_ahead_kb
	echo "$RA_KB" >"$bdi" || hc_fail "cannot set $bdi to $RA_KB"
fi
hc_info "readahead of the mount: $(cat "/sys/class/bdi/$(mountpoint -d "$MNT")/read_ahead_kb") KiB"

limit=$(numfmt --from=iec "$CG_LIMIT") || hc_fail "HC_VM_RAM_CGROUP=$CG_LIMIT is not a size"
hc_cgroup_create "hc-vmram-$$" "$limit" >"$HC_SCRATCH/cg" ||
	hc_fail "cannot create a memory cgroup"
HV_CGROUP=$(cat "$HC_SCRATCH/cg")
hc_info "QEMU in memory cgroup $HV_CGROUP (v$(hc_cgroup_version)), limit $CG_LIMIT, guest RAM $MEM"
cgstat() { awk -v k="$1" '$1 == k { print $2 }' "$HV_CGROUP/memory.stat"; }

hv_boot ram "$HC_SCRATCH/initrd" "hcvm.hog=$HOG hcvm.passes=$PASSES" -m "$MEM" \
	-object "memory-backend-file,id=mem,size=$MEM,mem-path=$MNT/vm1/ram,share=on" \
	-machine memory-backend=mem \
	-drive "file=$MNT/vm1/swap,if=virtio,format=raw,cache=none,aio=io_uring" ||
	hc_fail "guest with its RAM and swap on hecache-fs did not pass"
majflt=$(cgstat pgmajfault)
gin=$(hv_guest pswpin) gout=$(hv_guest pswpout)
a=$(hv_stat "$MNT" vm1 admissions) h=$(hv_stat "$MNT" vm1 hits) m=$(hv_stat "$MNT" vm1 misses)
hc_info "guest passed in $HV_SECONDS s (boot to poweroff); hog $(hv_guest seconds) s"
hc_info "guest vmstat: pswpout $gout pswpin $gin (pages, to/from vm1/swap)"
hc_info "host cgroup: pgmajfault $majflt, pgpgin $(cgstat pgpgin) pgpgout $(cgstat pgpgout)" \
	"(v1 names), limit hit $(cat "$HV_CGROUP/memory.failcnt" 2>/dev/null || echo '?') times"
hc_info "daemon, domain vm1: admissions $a hits $h misses $m"
hc_info "  of which guest swap (its pswpout/pswpin): writes $gout reads $gin;" \
	"guest RAM (the rest): writes $((a - gout)) reads $((h + m - gin))"
hc_info "  volumes: $("$HECTL" -m "$MNT" --json volume list vm1 |
	jq -r '[.volumes[] | "\(.name) \(.kind) allocated \(.allocated_bytes / 1048576 | floor) MiB"] | join(", ")')"
z=$(hv_stat "$MNT" vm1 zero_blocks) d=$(hv_stat "$MNT" vm1 dedup_blocks)
c=$(hv_stat "$MNT" vm1 cow_blocks) wb=$(hv_stat "$MNT" vm1 writebacks)
hc_info "  swap-reconcile (dedup=domain): of $wb blocks written back, $d shared an identical" \
	"stored block (double paging caught: no write), $z were zeros (no write), $c copied on" \
	"write; storage writes saved $(( (d + z) * 4 )) KiB ($(( wb ? 100 * (d + z) / wb : 0 ))%)"
[ "${gout:-0}" -gt 0 ] || hc_fail "the guest never swapped out"
[ "${majflt:-0}" -gt 0 ] || hc_fail "no major faults in QEMU's cgroup: the host never paged guest RAM"
[ "$a" -gt "$gout" ] ||
	hc_fail "admissions ($a) not above the guest's swap-outs ($gout): guest RAM was never written back"
hc_info "counters: $(hv_stats_line "$MNT" vm1)"

hc_cgroup_remove "$HV_CGROUP" || hc_fail "cannot remove the cgroup $HV_CGROUP"
hc_umount "$MNT"
hc_info "PASS"
