#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# io_uring unavailable (kernel.io_uring_disabled=2): a mount without io=
# falls back to aio with exactly one log line saying so, and I/O works
# (written and read back, buffered and O_DIRECT, across a remount).  With
# io=uring named explicitly the start is refused with one clear line and
# the backing directory is left as it was (also an empty one: not
# formatted).  The sysctl is set only around the daemon starts and is
# restored at once, and in the EXIT trap whatever happens (the whole
# machine shares it).  Skipped where the sysctl does not exist.

. "$(dirname "$0")/common.sh"

SYSCTL=/proc/sys/kernel/io_uring_disabled
[ -w "$SYSCTL" ] || hc_skip "no $SYSCTL (kernel before 6.6)"
SAVED=$(cat "$SYSCTL")

uring_off() { echo 2 >"$SYSCTL" || hc_fail "cannot set $SYSCTL to 2"; }
uring_restore() { echo "$SAVED" >"$SYSCTL"; }
fb_cleanup() {
	local rc=$?
	uring_restore
	(exit $rc)
	hc_cleanup
}
trap fb_cleanup EXIT

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
LOG=$HC_SCRATCH/daemon.log
MiB=$((1024 * 1024))

# --- no io= : falls back to aio, one line ------------------------------------------
uring_off
hc_mount "$BACK" "$MNT" -o cache=32M
uring_restore
fb=$(grep -i "uring" "$LOG" | grep -v "^hecache-fs: serving" | grep -v "FUSE over io_uring")
nfb=$(printf '%s' "$fb" | grep -c '')
[ "$nfb" = 1 ] || hc_fail "expected exactly one line about io_uring being unavailable, got $nfb:
$fb"
printf '%s\n' "$fb" | grep -qi "unavailable\|not available\|disabled" &&
	printf '%s\n' "$fb" | grep -qi "aio" ||
	hc_fail "the io_uring line does not say it is unavailable and that aio is used: $fb"
grep -q "serving .*io engine aio" "$LOG" || hc_fail "the daemon does not say it serves with the aio engine"
hc_info "fallback line: $fb"
[ "$(grep -ci "falling back\|fall back" "$LOG")" = 1 ] || hc_fail "the fallback is logged more than once"

mkdir "$MNT/vm" || hc_fail "mkdir vm failed"
head -c $((40 * MiB)) /dev/urandom >"$HC_SCRATCH/ref"
cp "$HC_SCRATCH/ref" "$MNT/vm/buffered" || hc_fail "buffered write with the aio fallback failed"
dd if="$HC_SCRATCH/ref" of="$MNT/vm/direct" bs=1M oflag=direct conv=fsync status=none ||
	hc_fail "O_DIRECT write with the aio fallback failed"
cmp "$HC_SCRATCH/ref" "$MNT/vm/buffered" || hc_fail "buffered read back differs (aio fallback)"
dd if="$MNT/vm/direct" bs=4k iflag=direct status=none | cmp - "$HC_SCRATCH/ref" ||
	hc_fail "O_DIRECT read back differs (aio fallback)"
hc_umount "$MNT"
[ "$(grep -ci "falling back\|fall back" "$LOG")" = 1 ] || hc_fail "the fallback was logged again later"
hc_info "aio fallback: I/O works"

# --- io=uring named explicitly: refused -----------------------------------------------
# refuse_uring BACKING: start with io=uring while io_uring is disabled
refuse_uring() {
	local back=$1 before after rc=0 out=$HC_SCRATCH/refuse.out lines
	before=$(hc_tree_sum "$back")
	HC_MOUNTS+=("$MNT")
	uring_off
	timeout 30 "$HECACHE_FS" "$back" "$MNT" -f -o io=uring,cache=32M >"$out" 2>&1 || rc=$?
	uring_restore
	if grep -q " $MNT fuse" /proc/mounts; then
		fusermount3 -u "$MNT"
		hc_fail "io=uring with io_uring disabled: mounted anyway"
	fi
	[ "$rc" != 0 ] && [ "$rc" != 124 ] || hc_fail "io=uring with io_uring disabled: exit status $rc"
	# collect every problem, then fail with all of them
	local bad=()
	lines=$(hc_start_lines "$out")
	[ "$(printf '%s' "$lines" | grep -c '')" = 1 ] ||
		bad+=("refused with $(printf '%s' "$lines" | grep -c '') lines, expected one:
$(printf '%s\n' "$lines" | sed 's/^/    | /')")
	printf '%s\n' "$lines" | grep -qi "uring" || bad+=("the refusal does not name io_uring: $lines")
	grep -qi "falling back" "$out" && bad+=("io=uring was named, yet the daemon fell back")
	after=$(hc_tree_sum "$back")
	[ "$before" = "$after" ] || bad+=("the refused start changed the backing directory $back:
$(diff <(echo "$before") <(echo "$after") | sed 's/^/    /')")
	if [ "${#bad[@]}" != 0 ]; then
		local m
		for m in "${bad[@]}"; do echo "FAIL: $HC_TESTNAME: io=uring on $back: $m" >&2; done
		hc_fail "io=uring with io_uring disabled, backing $back: ${#bad[@]} problem(s), listed above"
	fi
	hc_info "io=uring refused: $lines"
}
refuse_uring "$BACK"
mkdir -p "$HC_SCRATCH/empty"
refuse_uring "$HC_SCRATCH/empty"

# the data is still there, with io_uring back
hc_mount "$BACK" "$MNT" -o cache=32M
cmp "$HC_SCRATCH/ref" "$MNT/vm/buffered" && cmp "$HC_SCRATCH/ref" "$MNT/vm/direct" ||
	hc_fail "data differs after the refused starts"
hc_umount "$MNT"
[ "$(cat "$SYSCTL")" = "$SAVED" ] || hc_fail "$SYSCTL not restored"
hc_info "PASS"
