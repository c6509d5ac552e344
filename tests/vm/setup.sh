#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Prepares what the VM scenarios need and prints the directory of the guest
# kernel on its last line of output:
#   * packages, with apt-get (apt-get update first only when the install
#     fails): qemu-system-x86, busybox-static, cpio, jq, kmod, attr;
#   * a Debian guest kernel, never installed into /boot: `apt-get download`
#     of the linux-image package that linux-image-amd64 points to (or
#     HC_VM_KERNEL_PKG), then `dpkg-deb -x` into a scratch directory; the
#     vmlinuz and the virtio modules the guest needs (virtio_pci,
#     virtio_blk and everything they depend on per modules.dep, which
#     depmod -b writes into the extracted tree) are kept in the cache,
#     HC_VM_CACHE (default /var/tmp/hecache-vm-cache), with the load order
#     in modules.load.  Only the first run downloads; the .deb and the
#     extracted tree are deleted.
# Nothing is downloaded but Debian packages through apt.  Run it by hand
# (as root) to fill the cache before a test run: tests/vm/setup.sh
# Exit status: 0 ready, 77 a capability is absent (no apt and no QEMU, no
# package reachable), 1 any other failure.
set -u

CACHE=${HC_VM_CACHE:-/var/tmp/hecache-vm-cache}
MODULES=(virtio_pci virtio_blk)

say() { echo "setup: $*" >&2; }
skip() { say "SKIP: $*"; exit 77; }
die() { say "FAIL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || skip "needs root"
# One setup at a time (make -j check-vm): apt and the cache.
mkdir -p "$CACHE" || die "cannot create $CACHE"
exec 9>"$CACHE/.lock"
flock 9 || die "cannot lock $CACHE/.lock"

# ---------------------------------------------------------------- packages
# command -> Debian package
declare -A PKG=([qemu-system-x86_64]=qemu-system-x86 [cpio]=cpio [jq]=jq
	[depmod]=kmod [getfattr]=attr [dpkg-deb]=dpkg [timeout]=coreutils)
want=()
for c in "${!PKG[@]}"; do
	command -v "$c" >/dev/null || want+=("${PKG[$c]}")
done
# The initramfs needs a static busybox: the busybox package is dynamic.
dpkg-query -W -f '${Status}' busybox-static 2>/dev/null | grep -q 'ok installed' ||
	want+=(busybox-static)
if [ "${#want[@]}" -gt 0 ]; then
	command -v apt-get >/dev/null || skip "missing ${want[*]} and no apt-get to install them"
	say "installing ${want[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -q --no-install-recommends "${want[@]}" >&2; then
		say "install failed; apt-get update and again"
		apt-get update -q >&2 || skip "apt-get update failed (no network?)"
		apt-get install -y -q --no-install-recommends "${want[@]}" >&2 ||
			skip "cannot install ${want[*]}"
	fi
fi
for c in "${!PKG[@]}"; do
	command -v "$c" >/dev/null || skip "$c is not available"
done
[ -x /bin/busybox ] || skip "no /bin/busybox after installing busybox-static"

# ---------------------------------------------------------------- guest kernel
# kernel_pkg: the linux-image-VERSION-amd64 package linux-image-amd64
# depends on (the current Debian kernel), or HC_VM_KERNEL_PKG.
kernel_pkg() {
	if [ -n "${HC_VM_KERNEL_PKG:-}" ]; then
		echo "$HC_VM_KERNEL_PKG"
		return
	fi
	apt-cache depends linux-image-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-amd64$/ { print $2; exit }'
}

pkg=$(kernel_pkg)
if [ -n "$pkg" ] && [ -f "$CACHE/$pkg/ready" ]; then
	echo "$CACHE/$pkg"
	exit 0
fi
if [ -z "$pkg" ]; then
	# No answer from apt (no package lists yet): a kernel cached by an
	# earlier run will do; else update the lists once.
	cached=$(ls -d "$CACHE"/linux-image-*/ready 2>/dev/null | sort -V | tail -n 1)
	if [ -n "$cached" ]; then
		dirname "$cached"
		exit 0
	fi
	apt-get update -q >&2 || skip "apt-get update failed (no network?)"
	pkg=$(kernel_pkg)
	[ -n "$pkg" ] || skip "apt knows no linux-image-*-amd64 package (not Debian amd64?)"
fi

work=$(mktemp -d "$CACHE/.dl.XXXXXX") || die "mktemp in $CACHE failed"
trap 'rm -rf "$work"' EXIT
# apt downloads as _apt when it can write there (else a warning).
id _apt >/dev/null 2>&1 && chown _apt "$work"
say "downloading $pkg into $CACHE (first run only)"
if ! (cd "$work" && apt-get download -q "$pkg" >&2); then
	say "apt-get download failed; apt-get update and again"
	apt-get update -q >&2 || skip "apt-get update failed (no network?)"
	pkg=$(kernel_pkg)
	(cd "$work" && apt-get download -q "$pkg" >&2) || skip "cannot download $pkg"
fi
deb=$(ls "$work"/*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || die "apt-get download left no .deb in $work"
dpkg-deb -x "$deb" "$work/x" || die "dpkg-deb -x $deb failed"
kver=$(ls "$work/x/lib/modules" | head -n 1)
[ -n "$kver" ] && [ -f "$work/x/boot/vmlinuz-$kver" ] || die "no vmlinuz or modules in $deb"
depmod -b "$work/x" "$kver" || die "depmod -b on the extracted $pkg failed"
MD=$work/x/lib/modules/$kver

# Load order: each module after everything it depends on (modules.dep lists
# a module's dependencies, transitively; we visit them depth first).
declare -A DEP=() SEEN=()
while IFS=: read -r path deps; do
	m=$(basename "$path" .ko)
	DEP[${m//-/_}]="$path:$deps"
done <"$MD/modules.dep"
order=()
visit() {
	local m=${1//-/_} d
	[ -n "${SEEN[$m]:-}" ] && return 0
	SEEN[$m]=1
	[ -n "${DEP[$m]:-}" ] || {
		grep -q "/$m.ko\$" "$MD/modules.builtin" 2>/dev/null && return 0
		die "module $m is neither in modules.dep nor built in"
	}
	for d in ${DEP[$m]#*:}; do visit "$(basename "$d" .ko)"; done
	order+=("$m")
}
for m in "${MODULES[@]}"; do visit "$m"; done

out=$work/out
mkdir -p "$out/modules" || die "mkdir $out/modules"
cp "$MD/../../../boot/vmlinuz-$kver" "$out/vmlinuz" || die "copy of vmlinuz failed"
for m in "${order[@]}"; do
	cp "$MD/${DEP[$m]%%:*}" "$out/modules/$m.ko" || die "copy of module $m failed"
	echo "$m" >>"$out/modules.load"
done
echo "$kver" >"$out/version"
echo "$pkg $(basename "$deb")" >"$out/package"
touch "$out/ready"
rm -rf "${CACHE:?}/$pkg"
mv "$out" "$CACHE/$pkg" || die "cannot move the kernel into $CACHE/$pkg"
say "guest kernel $kver, modules: ${order[*]}"
echo "$CACHE/$pkg"
