#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# VM benchmark: the guest-swap scenario of tests/vm/guest_swap.sh (a 128 MiB
# QEMU guest under TCG, hc-swaphog over 192 MiB, 3 passes, every page
# verified in the guest) with the guest's swap disk on each peer, in one run:
#   plain           a file on the scratch file system (ext4 here),
#                   cache=none,aio=io_uring
#   passthrough_ll  libfuse's passthrough_ll example, built now from the
#                   libfuse3-dev example sources, cache=writeback,aio=threads:
#                   passthrough_ll cannot take O_DIRECT writes (it passes
#                   O_DIRECT on and writes from unaligned buffers: EINVAL),
#                   so QEMU's cache=none does not work on it
#   hecache-fs      cache=none,aio=io_uring (the recommended line), and
#   hecache-fs-wb   hecache-fs with passthrough_ll's cache=writeback,aio=threads
#                   (the like-for-like comparison)
# Peers take turns within each round (a noisy neighbour hurts them alike);
# the table gives the median over the rounds of the hog's time (in the
# guest) and of the whole boot, and the ratio hecache-fs / passthrough_ll
# of the hog time (below 1: hecache-fs is faster).
# Usage (root, after a build): sudo bench/vm.sh   (HECACHE_BUILDDIR=the build
# tree, default the repository; tests/vm/setup.sh installs QEMU & co. and
# fetches the guest kernel once; ~6 minutes with the defaults)
# Knobs: BENCH_VM_RUNS (3), BENCH_VM_HOG (192M), BENCH_VM_PASSES (3),
# BENCH_VM_CACHE (hecache-fs cache, 256M), BENCH_VM_PEERS.
set -uo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export HC_TOP_BUILDDIR=${HECACHE_BUILDDIR:-$TOP}
export HC_TOP_SRCDIR=$TOP
# The VM helpers (setup, initramfs, boot) and their cleanup trap.
# shellcheck source=tests/vm/lib.sh
. "$TOP/tests/vm/lib.sh"

RUNS=${BENCH_VM_RUNS:-3}
HOG=${BENCH_VM_HOG:-192M}
PASSES=${BENCH_VM_PASSES:-3}
FS_CACHE=${BENCH_VM_CACHE:-256M}
read -r -a PEERS <<<"${BENCH_VM_PEERS:-plain passthrough_ll hecache-fs hecache-fs-wb}"
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || hc_fail "BENCH_VM_RUNS must be a positive number"
declare -A DRIVE=(
	[plain]="cache=none,aio=io_uring"
	[passthrough_ll]="cache=writeback,aio=threads"
	[hecache-fs]="cache=none,aio=io_uring"
	[hecache-fs-wb]="cache=writeback,aio=threads")
for p in "${PEERS[@]}"; do
	[ -n "${DRIVE[$p]:-}" ] || hc_fail "BENCH_VM_PEERS: unknown peer $p"
done

hv_swaphog_initrd

declare -A FILE=()
for p in "${PEERS[@]}"; do
	case $p in
	plain)
		mkdir -p "$HC_SCRATCH/plain"
		FILE[$p]=$HC_SCRATCH/plain/swap
		;;
	passthrough_ll)
		EX=/usr/share/doc/libfuse3-dev/examples
		PB=$HC_SCRATCH/passthrough_ll-build
		mkdir -p "$PB"
		for f in "$EX"/passthrough_ll.c "$EX"/passthrough_ll.c.gz "$EX"/*.h "$EX"/*.h.gz; do
			[ -f "$f" ] || continue
			case $f in *.gz) gzip -dc "$f" >"$PB/$(basename "$f" .gz)" ;; *) cp "$f" "$PB/" ;; esac
		done
		[ -f "$PB/passthrough_ll.c" ] || hc_fail "no passthrough_ll.c in $EX (libfuse3-dev)"
		read -r -a FUSE_FLAGS <<<"$(pkg-config --cflags --libs fuse3)"
		# HAVE_FALLOCATE/HAVE_COPY_FILE_RANGE: what libfuse's own build defines on Linux
		gcc -Wall -O2 -DHAVE_FALLOCATE -DHAVE_COPY_FILE_RANGE -o "$PB/passthrough_ll" \
			"$PB/passthrough_ll.c" "${FUSE_FLAGS[@]}" -lpthread >"$PB/build.log" 2>&1 ||
			hc_fail "passthrough_ll build failed: $(grep -m1 error "$PB/build.log")"
		src=$HC_SCRATCH/passthrough_ll-src mnt=$HC_SCRATCH/passthrough_ll-mnt
		mkdir -p "$src" "$mnt"
		"$PB/passthrough_ll" -f -o source="$src" "$mnt" >"$HC_SCRATCH/passthrough_ll.log" 2>&1 &
		HC_PIDS+=($!)
		HC_MOUNTS+=("$mnt")
		for _ in $(seq 100); do grep -q " $mnt fuse" /proc/mounts && break; sleep 0.1; done
		grep -q " $mnt fuse" /proc/mounts || hc_fail "passthrough_ll did not mount $mnt"
		FILE[$p]=$mnt/swap
		;;
	hecache-fs | hecache-fs-wb)
		if [ -z "${HCMNT:-}" ]; then
			HCMNT=$HC_SCRATCH/mnt
			hc_mount "$HC_SCRATCH/backing" "$HCMNT" -o cache="$FS_CACHE"
		fi
		mkdir -p "$HCMNT/$p"
		FILE[$p]=$HCMNT/$p/swap
		;;
	esac
	fallocate -l 256M "${FILE[$p]}" || hc_fail "fallocate -l 256M ${FILE[$p]} failed"
	hc_info "$p: swap disk ${FILE[$p]}, ${DRIVE[$p]}"
done

declare -A HOGT=() BOOTT=()
for run in $(seq "$RUNS"); do
	for p in "${PEERS[@]}"; do
		hv_boot "$p-$run" "$HC_SCRATCH/initrd" "hcvm.hog=$HOG hcvm.passes=$PASSES" \
			-m 128M -drive "file=${FILE[$p]},if=virtio,format=raw,${DRIVE[$p]}" ||
			hc_fail "$p, round $run: the guest did not pass"
		HOGT[$p]+=" $(hv_guest seconds)"
		BOOTT[$p]+=" $HV_SECONDS"
		hc_info "round $run $p: hog $(hv_guest seconds) s, boot $HV_SECONDS s," \
			"guest pswpout $(hv_guest pswpout) pswpin $(hv_guest pswpin)"
	done
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
echo
echo "guest swap: 128 MiB guest (TCG), hc-swaphog $HOG x $PASSES passes, median of $RUNS rounds"
printf '%-16s %-30s %10s %10s\n' peer "QEMU drive" "hog s" "boot s"
declare -A MED=()
for p in "${PEERS[@]}"; do
	# shellcheck disable=SC2086
	MED[$p]=$(median ${HOGT[$p]})
	# shellcheck disable=SC2086
	printf '%-16s %-30s %10s %10s\n' "$p" "${DRIVE[$p]}" "${MED[$p]}" "$(median ${BOOTT[$p]})"
done
for p in hecache-fs hecache-fs-wb; do
	[ -n "${MED[$p]:-}" ] && [ -n "${MED[passthrough_ll]:-}" ] || continue
	printf 'hog time ratio %s / passthrough_ll: %s (below 1: hecache-fs faster)\n' "$p" \
		"$(awk -v a="${MED[$p]}" -v b="${MED[passthrough_ll]}" 'BEGIN { printf "%.2f", a / b }')"
done
[ -n "${HCMNT:-}" ] && hc_info "hecache-fs counters: $(hc_stats "$HCMNT" 2>/dev/null | grep '^total')"
exit 0
