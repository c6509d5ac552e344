#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# fio verify through the mount, once per daemon I/O engine (uring, aio,
# sync): random writes of 4k-64k blocks at queue depth 16 with O_DIRECT
# (libaio) over a volume four times the cache, every block stamped with a
# crc32c header and verified after the write phase; then unmount, mount
# again (with another engine, so data written by one engine is read by the
# next) and a verify-only pass of the same seed: the data survived the
# remount.  The counters must show writebacks (the cache overflowed) and
# reads served by the daemon (hits or misses).  HC_LONG=1: 1 GiB, more
# rounds.

. "$(dirname "$0")/common.sh"

command -v fio >/dev/null || hc_skip "fio is not installed"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
SIZE=256M
ROUNDS=1
if [ "${HC_LONG:-}" = 1 ]; then
	SIZE=1G
	ROUNDS=3
fi
ENGINES="uring aio sync"

# fio_job NAME FILE SEED [extra fio args]: the write+verify job; the same
# arguments plus --verify_only replay it without writing.
fio_job() {
	local name=$1 file=$2 seed=$3
	shift 3
	(cd "$HC_SCRATCH" && fio --name="$name" --filename="$file" --size=$SIZE \
		--rw=randwrite --bsrange=4k-64k --ioengine=libaio --iodepth=16 --direct=1 \
		--verify=crc32c --verify_fatal=1 --do_verify=1 --randseed="$seed" \
		--fallocate=none --group_reporting "$@") >"$HC_SCRATCH/fio.out" 2>&1
}
show_fio() {
	grep -E "^ *(write|read):|err=|verify|crc" "$HC_SCRATCH/fio.out" | sed 's/^/    /' | head -8
}

stats_line() { hc_stats "$MNT" 2>/dev/null | grep "^domain fio "; }

mkdir -p "$BACK" "$MNT"
hc_mount "$BACK" "$MNT" -o cache=64M
mkdir "$MNT/fio" || hc_fail "mkdir of domain fio failed"
hc_umount "$MNT"

for round in $(seq "$ROUNDS"); do
	for eng in $ENGINES; do
		next=$(echo "$ENGINES $ENGINES" | tr ' ' '\n' | grep -A1 -x "$eng" | sed -n 2p)
		vol=$MNT/fio/vol-$eng
		seed=$((1000 * round + ${#eng}))

		hc_mount "$BACK" "$MNT" -o cache=64M,io="$eng"
		grep -q "io engine $eng" "$HC_SCRATCH/daemon.log" ||
			hc_fail "the daemon did not report io engine $eng"
		fio_job "hc-$eng" "$vol" "$seed" || {
			cat "$HC_SCRATCH/fio.out" >&2
			hc_fail "io=$eng round $round: fio write+verify failed"
		}
		hc_info "io=$eng round $round: write+verify of $SIZE passed"
		show_fio
		s=$(stats_line)
		hc_info "io=$eng counters: $s"
		wb=$(hc_stat "$MNT" fio writebacks)
		rd=$(($(hc_stat "$MNT" fio hits) + $(hc_stat "$MNT" fio misses)))
		[ "$wb" -gt 0 ] || hc_fail "io=$eng: no writebacks with a $SIZE volume in a 64M cache"
		[ "$rd" -gt 0 ] || hc_fail "io=$eng: verify reads reached the daemon neither as hits nor as misses"
		hc_umount "$MNT"

		# a fresh daemon, another engine: verify only
		hc_mount "$BACK" "$MNT" -o cache=64M,io="$next"
		fio_job "hc-$eng" "$vol" "$seed" --verify_only || {
			cat "$HC_SCRATCH/fio.out" >&2
			hc_fail "data written with io=$eng did not verify after a remount with io=$next"
		}
		hc_info "io=$eng round $round: verify-only after remount (io=$next) passed"
		[ "$(hc_stat "$MNT" fio misses)" -gt 0 ] ||
			hc_fail "verify after remount: no misses (reads not served from storage?)"
		hc_umount "$MNT"
	done
done
hc_info "PASS"
