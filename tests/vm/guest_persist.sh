#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# A guest's disk volume persists across a restart of hecache-fs.  The disk
# is vm1/disk.img (kind disk), 64 MiB, on virtio with cache=none,
# aio=io_uring.  Two rounds, each two boots of the same guest:
#   boot 1 writes 24 MiB from /dev/urandom at a round's offset with dd
#   conv=fsync (the guest's flush reaches the daemon as fsync), drops its
#   page cache, reads the region back and prints its md5, powers off;
#   between the boots hecache-fs goes away: round "umount" unmounts it
#   cleanly, round "kill" SIGKILLs the daemon (I5: a disk volume's data
#   survives once the guest's flush returned) -- then it is mounted again;
#   boot 2 reads the region and prints PASS only when the md5 matches, and
#   the first MiB (never written) must still read as zeros.
# The host also checks the region through the mount (O_DIRECT) and, after
# the final unmount, in the backing home file (readable offline).
# Knobs: HC_VM_MEM (128M), HC_VM_PERSIST_ROUNDS ("umount kill").

. "$(dirname "$0")/lib.sh"

MEM=${HC_VM_MEM:-128M}
read -r -a ROUNDS <<<"${HC_VM_PERSIST_ROUNDS:-umount kill}"
LEN_MB=24

hv_setup
# Guest script, hcvm.mode=write|read, hcvm.off (MiB), hcvm.len (MiB),
# hcvm.expect (md5, read mode).
cat >"$HC_SCRATCH/guest.sh" <<'EOF'
mode=$(arg mode)
off=$(arg off)
len=$(arg len)
region_md5() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
	dd if="$dev" bs=1M skip="$1" count="$2" 2>/dev/null | md5sum | cut -d' ' -f1
}
zero=$(dd if=/dev/zero bs=1M count=1 2>/dev/null | md5sum | cut -d' ' -f1)
case $mode in
write)
	dd if=/dev/urandom of="$dev" bs=1M seek="$off" count="$len" conv=fsync 2>/tmp/dd.err ||
		fail "dd to $dev: $(cat /tmp/dd.err)"
	say "wrote $len MiB at $off MiB with conv=fsync"
	say "md5=$(region_md5 "$off" "$len")"
	;;
read)
	sum=$(region_md5 "$off" "$len")
	say "md5=$sum"
	[ "$sum" = "$(arg expect)" ] || fail "region at $off MiB: md5 $sum, written $(arg expect)"
	[ "$(region_md5 0 1)" = "$zero" ] || fail "the first MiB, never written, is not zeros"
	;;
*) fail "hcvm.mode=$mode" ;;
esac
say PASS
EOF
hv_initramfs "$HC_SCRATCH/initrd" "$HC_SCRATCH/guest.sh"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
hc_mount "$BACK" "$MNT"
mkdir "$MNT/vm1" || hc_fail "mkdir of domain vm1 failed"
truncate -s 64M "$MNT/vm1/disk.img" || hc_fail "truncate -s 64M vm1/disk.img failed"
DRIVE="file=$MNT/vm1/disk.img,if=virtio,format=raw,cache=none,aio=io_uring"

# host_md5 FILE OFF_MB: md5 of LEN_MB MiB of FILE at OFF_MB MiB.
host_md5() {
	dd if="$1" bs=1M skip="$2" count="$LEN_MB" iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1
}

declare -A SUM=() OFF=()
off=2
for r in "${ROUNDS[@]}"; do
	case $r in umount | kill) ;; *) hc_fail "HC_VM_PERSIST_ROUNDS: umount or kill, not $r" ;; esac
	OFF[$r]=$off
	hv_boot "$r-write" "$HC_SCRATCH/initrd" "hcvm.mode=write hcvm.off=$off hcvm.len=$LEN_MB" \
		-m "$MEM" -drive "$DRIVE" || hc_fail "$r: boot 1 (write) did not pass"
	SUM[$r]=$(hv_guest md5)
	[ -n "${SUM[$r]}" ] || hc_fail "$r: boot 1 printed no md5"
	hc_info "$r: boot 1 wrote $LEN_MB MiB at $off MiB, md5 ${SUM[$r]} ($HV_SECONDS s)"
	if [ "$r" = kill ]; then
		kill -9 "$HC_DAEMON_PID"
		wait "$HC_DAEMON_PID" 2>/dev/null
		fusermount3 -u "$MNT" || umount -l "$MNT" || hc_fail "cannot unmount after kill -9"
		hc_info "$r: daemon SIGKILLed, mount removed"
	else
		hc_umount "$MNT"
		hc_info "$r: hecache-fs unmounted"
	fi
	hc_mount "$BACK" "$MNT"
	hc_info "$r: hecache-fs mounted again"
	hv_boot "$r-read" "$HC_SCRATCH/initrd" \
		"hcvm.mode=read hcvm.off=$off hcvm.len=$LEN_MB hcvm.expect=${SUM[$r]}" \
		-m "$MEM" -drive "$DRIVE" || hc_fail "$r: boot 2 (read back) did not pass"
	hc_info "$r: boot 2 read md5 $(hv_guest md5): matches ($HV_SECONDS s)"
	off=$((off + LEN_MB + 2))
done

# Every round's region, through the mount and then offline.
for r in "${ROUNDS[@]}"; do
	s=$(host_md5 "$MNT/vm1/disk.img" "${OFF[$r]}")
	[ "$s" = "${SUM[$r]}" ] || hc_fail "$r: through the mount the region reads $s, not ${SUM[$r]}"
done
hc_info "counters: $(hv_stats_line "$MNT" vm1)"
hc_umount "$MNT"
for r in "${ROUNDS[@]}"; do
	s=$(host_md5 "$BACK/vm1/disk.img" "${OFF[$r]}")
	[ "$s" = "${SUM[$r]}" ] ||
		hc_fail "$r: the backing home file holds $s at ${OFF[$r]} MiB, not ${SUM[$r]}"
done
hc_info "every region matches through the mount and in the backing home file"
hc_info "PASS"
