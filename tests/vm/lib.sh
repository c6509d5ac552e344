# SPDX-License-Identifier: GPL-2.0-or-later
# Shared helpers of the VM scenarios (tests/vm/*.sh, `make check-vm`) and of
# bench/vm.sh.  Source it first: it sources tests/integration/common.sh (the
# scratch directory, hc_mount, the EXIT trap that undoes everything) and adds
#   hv_setup        packages + the cached Debian guest kernel (setup.sh)
#   hv_build_hog    tools/hc-swaphog linked static, for the guest
#   hv_initramfs    a busybox initramfs whose /init is hv_init_prologue
#                   followed by a guest script the scenario gives
#   hv_swaphog_initrd  the three above for the swapping-hog guest
#   hv_boot         one QEMU run (TCG) under timeout, serial console in a
#                   log; succeeds only when the guest printed "HCVM PASS"
#   hv_stat         one counter of a domain from `hectl --json stats`
# A QEMU we started is killed before common.sh's cleanup unmounts anything.
#
# Environment: HC_VM_CACHE (kernel cache, default /var/tmp/hecache-vm-cache),
# HC_VM_TIMEOUT (seconds per boot, default 600), HC_VM_QEMU (the QEMU
# binary, default qemu-system-x86_64), HC_VM_QEMU_ARGS (added to
# every QEMU command line), plus those of common.sh.

HV_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/integration/common.sh
. "$HV_DIR/../integration/common.sh"

HC_TOP_SRCDIR=${HC_TOP_SRCDIR:-$(cd "$HV_DIR/../.." && pwd)}
HECTL=${HECTL:-$HC_TOOLS/hectl}
HV_TIMEOUT=${HC_VM_TIMEOUT:-600}
HV_QEMU_PID=
HV_KDIR=
HV_HOG=

hv_cleanup() {
	local rc=$?
	if [ -n "$HV_QEMU_PID" ] && kill -0 "$HV_QEMU_PID" 2>/dev/null; then
		# timeout(1) passes the signal on to QEMU
		kill "$HV_QEMU_PID" 2>/dev/null
		hc_wait_gone "$HV_QEMU_PID" 10 || kill -9 "$HV_QEMU_PID" 2>/dev/null
	fi
	hv_rc() { return "$1"; }
	hv_rc "$rc"
	hc_cleanup
}
trap hv_cleanup EXIT

# hv_setup: installs what is missing, fetches the guest kernel once (see
# setup.sh), sets HV_KDIR (vmlinuz, modules/, modules.load).  Skips when a
# capability is really absent (no QEMU and no way to install it).
hv_setup() {
	local rc=0 out
	out=$("$HV_DIR/setup.sh") || rc=$?
	[ "$rc" = 77 ] && hc_skip "setup: a capability is absent (see above)"
	[ "$rc" = 0 ] || hc_fail "tests/vm/setup.sh failed ($rc)"
	HV_KDIR=$(echo "$out" | tail -n 1)
	[ -f "$HV_KDIR/vmlinuz" ] && [ -f "$HV_KDIR/modules.load" ] ||
		hc_fail "setup.sh gave $HV_KDIR, which holds no vmlinuz/modules.load"
	command -v jq >/dev/null || hc_fail "jq is missing after setup"
	[ -x "$HECTL" ] || hc_fail "no hectl at $HECTL"
	hc_info "guest kernel $(cat "$HV_KDIR/version") ($HV_KDIR), $(qemu-system-x86_64 --version | head -n 1)"
}

# hv_build_hog: tools/hc-swaphog (with cache-fs/util.c) linked static for
# the guest, in $HC_SCRATCH/hog; sets HV_HOG.
hv_build_hog() {
	local cfg=$HC_TOP_BUILDDIR
	[ -f "$cfg/config.h" ] || hc_fail "no config.h in $cfg (set HC_TOP_BUILDDIR to the build tree)"
	HV_HOG=$HC_SCRATCH/hog
	gcc -static -O2 -I"$cfg" -I"$HC_TOP_SRCDIR/cache-fs" -I"$HC_TOP_SRCDIR/include" \
		-o "$HV_HOG" "$HC_TOP_SRCDIR/tools/hc-swaphog.c" "$HC_TOP_SRCDIR/cache-fs/util.c" \
		2>"$HC_SCRATCH/hog.build" ||
		hc_fail "gcc -static of hc-swaphog failed (static glibc, libc6-dev?): $(head -n 5 "$HC_SCRATCH/hog.build")"
}

# The start of every guest /init.  Kernel command line arguments hcvm.KEY=V
# reach the script through `arg KEY`.  Markers on the console: "HCVM ..."
# lines; "HCVM PASS" (the only success) or "HCVM FAIL: why".
hv_init_prologue() {
	cat <<'EOF'
#!/bin/sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
say() { echo "HCVM $*"; }
fail() { echo "HCVM FAIL: $*"; sync; poweroff -f; sleep 30; exit 1; }
arg() {
	for w in $(cat /proc/cmdline); do
		case $w in "hcvm.$1="*) echo "${w#*=}"; return ;; esac
	done
}
vmstat() { awk -v k="$1" '$1 == k { print $2 }' /proc/vmstat; }
for m in $(cat /lib/modules/modules.load); do
	insmod "/lib/modules/$m.ko" || fail "insmod $m"
done
dev=$(arg dev)
dev=${dev:-/dev/vda}
i=0
while [ ! -b "$dev" ]; do
	i=$((i + 1))
	[ "$i" -gt 200 ] && fail "no $dev after 20 s"
	usleep 100000
done
say "up: kernel $(uname -r), MemTotal $(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo) KiB, $dev $(($(cat /sys/block/${dev#/dev/}/size) / 2048)) MiB"
EOF
}

# Guest script: swap on $dev (hcvm.discard=1: the disk marked
# non-rotational and swapon -d: discards at swapon and of freed swap
# clusters), hc-swaphog over hcvm.hog bytes, hcvm.passes
# passes (every page verified), the guest's pswpin/pswpout on the console.
hv_init_swaphog() {
	cat <<'EOF'
hog=$(arg hog)
passes=$(arg passes)
mkswap "$dev" >/dev/null || fail "mkswap $dev"
if [ "$(arg discard)" = 1 ]; then
	# Per-cluster discards of freed swap need a non-rotational device
	# (virtio-blk says rotational); "once" alone discards before any use.
	q=/sys/block/${dev#/dev/}/queue
	echo 0 >"$q/rotational"
	say "discard_max_bytes=$(cat "$q/discard_max_bytes") rotational=$(cat "$q/rotational")"
	swapon -d "$dev" || fail "swapon -d $dev"
else
	swapon "$dev" || fail "swapon $dev"
fi
o0=$(vmstat pswpout)
i0=$(vmstat pswpin)
say "hog $hog, $passes passes"
/bin/hog -p "$passes" "$hog" >/tmp/hog.out
rc=$?
cat /tmp/hog.out
[ "$rc" = 0 ] || fail "hc-swaphog exited with $rc"
say "$(cat /tmp/hog.out)"
say "vmstat pswpin=$(($(vmstat pswpin) - i0)) pswpout=$(($(vmstat pswpout) - o0))"
swapoff "$dev" || fail "swapoff $dev"
[ "$(($(vmstat pswpout) - o0))" -gt 0 ] || fail "the guest never swapped"
say PASS
EOF
}

# hv_initramfs OUT SCRIPT: a newc cpio (uncompressed: TCG unpacks it
# faster) with static busybox, the virtio modules, the hog when built, and
# /init = hv_init_prologue + the text of the file SCRIPT + poweroff.
hv_initramfs() {
	local out=$1 script=$2 d=$HC_SCRATCH/initramfs.d a
	rm -rf "$d"
	mkdir -p "$d/bin" "$d/dev" "$d/proc" "$d/sys" "$d/tmp" "$d/lib/modules" ||
		hc_fail "mkdir in $d"
	cp /bin/busybox "$d/bin/" || hc_fail "copy of /bin/busybox"
	for a in $(/bin/busybox --list); do
		[ "$a" = busybox ] || ln -s busybox "$d/bin/$a"
	done
	mknod "$d/dev/console" c 5 1 && mknod "$d/dev/null" c 1 3 || hc_fail "mknod in $d/dev"
	cp "$HV_KDIR"/modules/*.ko "$HV_KDIR/modules.load" "$d/lib/modules/" ||
		hc_fail "copy of the guest modules"
	[ -z "$HV_HOG" ] || cp "$HV_HOG" "$d/bin/hog" || hc_fail "copy of the hog"
	{
		hv_init_prologue
		cat "$script"
		echo 'poweroff -f'
	} >"$d/init"
	chmod 755 "$d/init"
	(cd "$d" && find . | cpio -o -H newc --quiet) >"$out" || hc_fail "cpio of $d failed"
	rm -rf "$d"
}

# hv_swaphog_initrd: set-up, the static hog and $HC_SCRATCH/initrd whose
# guest swaps on /dev/vdb and runs the hog (hv_init_swaphog).
hv_swaphog_initrd() {
	hv_setup
	hv_build_hog
	hv_init_swaphog >"$HC_SCRATCH/guest.sh"
	hv_initramfs "$HC_SCRATCH/initrd" "$HC_SCRATCH/guest.sh"
}

# hv_boot NAME INITRD KERNEL_ARGS [QEMU ARGS...]: boots the guest (TCG, one
# CPU, serial console in $HC_SCRATCH/NAME.console, -no-reboot) under
# timeout HV_TIMEOUT.  Sets HV_SECONDS (wall time of the boot) and
# HV_CONSOLE.  With HV_CGROUP set (a memory cgroup directory) QEMU runs
# inside that cgroup.  Returns 0 only when the guest printed "HCVM PASS"; else
# prints why and the end of the console, returns 1.
hv_boot() {
	local name=$1 initrd=$2 args=$3 rc=0 t0 t1 wrap=()
	shift 3
	HV_CONSOLE=$HC_SCRATCH/$name.console
	: >"$HV_CONSOLE"
	# In a memory cgroup: sh moves itself in and becomes timeout(1), so
	# HV_QEMU_PID is still timeout's PID.
	# shellcheck disable=SC2016
	[ -z "${HV_CGROUP:-}" ] ||
		wrap=(sh -c 'echo $$ >"$1/cgroup.procs" && shift && exec "$@"' sh "$HV_CGROUP")
	t0=$(date +%s%N)
	# shellcheck disable=SC2086
	"${wrap[@]}" timeout -k 10 "$HV_TIMEOUT" "${HC_VM_QEMU:-qemu-system-x86_64}" -accel tcg -smp 1 -nographic \
		-monitor none -serial "file:$HV_CONSOLE" -no-reboot \
		-kernel "$HV_KDIR/vmlinuz" -initrd "$initrd" \
		-append "console=ttyS0 panic=-1 loglevel=4 edd=off mitigations=off $args" \
		${HC_VM_QEMU_ARGS:-} "$@" </dev/null >"$HC_SCRATCH/$name.qemu" 2>&1 &
	HV_QEMU_PID=$!
	wait "$HV_QEMU_PID" || rc=$?
	HV_QEMU_PID=
	t1=$(date +%s%N)
	# shellcheck disable=SC2034  # read by the scenarios
	HV_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
	sed -i 's/\r$//' "$HV_CONSOLE"
	if grep -q '^HCVM PASS' "$HV_CONSOLE"; then
		[ "$rc" = 0 ] || hc_info "$name: note: QEMU exited with $rc after the guest passed"
		return 0
	fi
	echo "--- $name: QEMU: $(cat "$HC_SCRATCH/$name.qemu")" >&2
	echo "--- $name: end of the guest console:" >&2
	tail -n 30 "$HV_CONSOLE" >&2
	if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
		hc_info "$name: QEMU killed after $HV_TIMEOUT s (timeout), no PASS line"
	elif grep -q '^HCVM FAIL' "$HV_CONSOLE"; then
		hc_info "$name: $(grep -m 1 '^HCVM FAIL' "$HV_CONSOLE")"
	else
		hc_info "$name: QEMU exited with $rc and the guest never printed PASS"
	fi
	return 1
}

# hv_guest KEY: the value of KEY=V on the guest's "HCVM" lines of the last
# boot (the last one printed).
hv_guest() {
	grep '^HCVM ' "$HV_CONSOLE" | tr ' ' '\n' | sed -n "s/^$1=//p" | tail -n 1
}

# hv_stat MOUNTPOINT DOMAIN KEY: one counter of DOMAIN (hits misses
# admissions writebacks discards read_bytes written_bytes cached_blocks
# dirty_blocks) from `hectl --json stats`; 0 when the domain has none yet.
hv_stat() {
	local v
	v=$("$HECTL" -m "$1" --json stats "$2" 2>/dev/null |
		jq -r --arg d "$2" --arg k "$3" '.domains[] | select(.name == $d) | .[$k]')
	echo "${v:-0}"
}

# hv_stats_line MOUNTPOINT DOMAIN: the domain's counters on one line.
hv_stats_line() {
	"$HECTL" -m "$1" --json stats "$2" 2>/dev/null |
		jq -r --arg d "$2" '.domains[] | select(.name == $d) |
			to_entries | map("\(.key)=\(.value)") | join(" ")'
}
