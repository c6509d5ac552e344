# SPDX-License-Identifier: GPL-2.0-or-later
# Shared helpers for the integration scenarios.  Source it first; it sets up
# a scratch directory and an EXIT trap that undoes everything a scenario made
# (swap areas, loop devices, cgroups, mounts, daemons it started), in that
# order, even when the scenario fails.  Exit 77 = skip (automake), only where
# a capability is really absent.
#
# Environment: HECACHE_FS (daemon binary), HC_TOOLS (dir of helper programs);
# both default to the build tree this script runs from.

set -u
HC_TOP_BUILDDIR=${HC_TOP_BUILDDIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
HECACHE_FS=${HECACHE_FS:-$HC_TOP_BUILDDIR/cache-fs/hecache-fs}
HC_TOOLS=${HC_TOOLS:-$HC_TOP_BUILDDIR/tools}
# This directory: python helpers next to the scenarios (xxh64.py).
HC_INTEGRATION_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export HC_INTEGRATION_DIR
HC_TESTNAME=$(basename "$0" .sh)

hc_skip() { echo "SKIP: $HC_TESTNAME: $*"; exit 77; }
hc_fail() { echo "FAIL: $HC_TESTNAME: $*" >&2; exit 1; }
hc_info() { echo "$HC_TESTNAME: $*"; }

[ "${HC_SKIP_INTEGRATION:-}" = 1 ] && hc_skip "integration scenarios disabled (distcheck)"
[ "$(id -u)" = 0 ] || hc_skip "needs root"
[ -c /dev/fuse ] || hc_skip "no /dev/fuse"
[ -x "$HECACHE_FS" ] || hc_fail "no daemon at $HECACHE_FS"

# Scratch space on the real file system (not tmpfs: O_DIRECT, sparse files).
HC_SCRATCH=$(mktemp -d "${HC_SCRATCH_BASE:-/var/tmp}/hc-$HC_TESTNAME.XXXXXX")

HC_SWAPS=()	# swap files/devices we swapon'ed
HC_LOOPS=()	# loop devices we attached
HC_CGROUPS=()	# cgroup directories we created
HC_MOUNTS=()	# mountpoints we mounted
HC_PIDS=()	# daemons (and other processes) we started
HC_UNDO=()	# commands undoing settings we changed, run last (newest first)

hc_cleanup() {
	local rc=$?
	set +e
	local i
	# workloads (in our cgroups) first, then swap, loops, mounts, daemons
	for ((i = ${#HC_CGROUPS[@]} - 1; i >= 0; i--)); do
		hc_cgroup_remove "${HC_CGROUPS[i]}"
	done
	for ((i = ${#HC_SWAPS[@]} - 1; i >= 0; i--)); do
		grep -q "^${HC_SWAPS[i]} " /proc/swaps && swapoff "${HC_SWAPS[i]}"
	done
	for ((i = ${#HC_LOOPS[@]} - 1; i >= 0; i--)); do
		losetup -d "${HC_LOOPS[i]}" 2>/dev/null
	done
	for ((i = ${#HC_MOUNTS[@]} - 1; i >= 0; i--)); do
		if mountpoint -q "${HC_MOUNTS[i]}"; then
			fusermount3 -u "${HC_MOUNTS[i]}" 2>/dev/null || umount -l "${HC_MOUNTS[i]}"
		fi
	done
	for pid in "${HC_PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null || continue
		kill "$pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null
	done
	for ((i = ${#HC_UNDO[@]} - 1; i >= 0; i--)); do
		eval "${HC_UNDO[i]}"
	done
	rm -rf "$HC_SCRATCH"
	exit $rc
}
trap hc_cleanup EXIT
trap 'exit 130' INT TERM

# hc_mount BACKING MOUNTPOINT [hecache-fs options...]
# Starts the daemon in the foreground (as a background job, so we own its
# PID), waits until the mount is live.  Sets HC_DAEMON_PID.  Log in
# $HC_SCRATCH/daemon.log.
hc_mount() {
	local backing=$1 mnt=$2
	shift 2
	mkdir -p "$backing" "$mnt"
	"$HECACHE_FS" "$backing" "$mnt" -f "$@" >>"$HC_SCRATCH/daemon.log" 2>&1 &
	HC_DAEMON_PID=$!
	HC_PIDS+=("$HC_DAEMON_PID")
	HC_MOUNTS+=("$mnt")
	local i
	for i in $(seq 100); do
		if grep -q " $mnt fuse" /proc/mounts; then
			hc_check_rings "$mnt" queues "$@"
			return 0
		fi
		kill -0 "$HC_DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$HC_SCRATCH/daemon.log" >&2
	hc_fail "mount of $backing on $mnt did not come up"
}

# hc_forget_pid PID: a process we waited for leaves the cleanup list (the
# trap must not signal a PID the system has given to someone else).
hc_forget_pid() {
	local p keep=()
	for p in "${HC_PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	HC_PIDS=("${keep[@]}")
}

# hc_check_rings MOUNTPOINT queues|replies [hecache-fs options]: with
# HC_EXPECT_FUSE_URING=N set (fuse_uring.sh), fails unless the mount serves
# through N FUSE io_uring queues / has answered requests through them.
hc_check_rings() {
	local mnt=$1 what=$2 v
	shift 2
	[ -n "${HC_EXPECT_FUSE_URING:-}" ] || return 0
	case " $* " in *no_fuse_uring* | *" -s "*) return 0 ;; esac
	if [ "$what" = queues ]; then
		# The rings start once the kernel has the INIT reply, after the mount shows.
		local i
		for i in $(seq 50); do
			v=$(hc_status "$mnt" fuse_uring_queues)
			[ "$v" = "$HC_EXPECT_FUSE_URING" ] && return 0
			sleep 0.1
		done
		hc_fail "$mnt serves through $v FUSE io_uring queues, not $HC_EXPECT_FUSE_URING;" \
			"log: $(tail -3 "$HC_SCRATCH/daemon.log")"
	fi
	v=$(hc_status "$mnt" fuse_uring_replies)
	[ "$v" -gt 0 ] || hc_fail "$mnt answered no request through its FUSE io_uring queues"
}

# hc_status MOUNTPOINT KEY: the value of KEY in the daemon's status (hectl);
# a dotted KEY walks into objects (cache.taken_blocks); a missing one fails.
hc_status() {
	"$HC_TOOLS/hectl" -m "$1" --json status | jq -er ".$2" ||
		hc_fail "hectl status on $1 failed (or has no $2)"
}

# hc_umount MOUNTPOINT: unmounts and waits for our daemon to exit cleanly.
hc_umount() {
	local mnt=$1
	hc_check_rings "$mnt" replies
	fusermount3 -u "$mnt" || hc_fail "fusermount3 -u $mnt failed"
	local rc=0
	wait "$HC_DAEMON_PID" || rc=$?
	hc_forget_pid "$HC_DAEMON_PID"
	[ "$rc" = 0 ] || { cat "$HC_SCRATCH/daemon.log" >&2; hc_fail "daemon exited with $rc"; }
}

# hc_crash MOUNTPOINT: SIGKILLs our daemon (a crash), waits for it, forgets
# its PID and lazily unmounts the dead mount.
hc_crash() {
	kill -9 "$HC_DAEMON_PID" 2>/dev/null
	wait "$HC_DAEMON_PID" 2>/dev/null
	hc_forget_pid "$HC_DAEMON_PID"
	fusermount3 -uz "$1" 2>/dev/null || umount -l "$1" 2>/dev/null
}

# hc_stat MOUNTPOINT DOMAIN|total KEY: one counter from the daemon.
# Counters: hits misses admissions writebacks discards read_bytes
# written_bytes cached dirty (blocks for the last two).
hc_stat() {
	getfattr --only-values -n user.hecache.stats "$1" 2>/dev/null |
		awk -v d="$2" -v k="$3" '
			$1 == "total" && d == "total" { s = 2 }
			$1 == "domain" && $2 == d { s = 3 }
			s { for (i = s; i < NF; i += 2) if ($i == k) print $(i + 1); s = 0 }'
}
hc_stats() { getfattr --only-values -n user.hecache.stats "$1"; }

# Memory cgroups, v1 (memory.limit_in_bytes) or v2 (memory.max): the
# shared helpers of tools/cgroup.sh, plus our cleanup list.
. "$(dirname "${BASH_SOURCE[0]}")/../../tools/cgroup.sh"
hc_cgroup_version() { hc_cg_version; }
# hc_cgroup_create NAME LIMIT_BYTES -> prints the cgroup directory; call it
# with its output redirected, not in $(...), so HC_CGROUPS keeps it.
hc_cgroup_create() {
	local dir
	dir=$(hc_cg_make "$1" "$2") || return 1
	HC_CGROUPS+=("$dir")
	echo "$dir"
}
# hc_cgroup_exec DIR CMD...: runs CMD inside the cgroup, returns its status.
hc_cgroup_exec() { hc_cg_exec "$@"; }
hc_cgroup_remove() { hc_cg_remove "$1"; }

# --- small helpers shared by the scenarios -------------------------------

# hc_tree_sum DIR: a listing of DIR (names, types, sizes, modes) and the
# checksums of its files, to show that a refused start changed nothing.
hc_tree_sum() {
	[ -e "$1" ] || { echo "(absent)"; return 0; }
	[ -d "$1" ] || { stat -c '%n %F %s %a' "$1" && md5sum "$1"; return; }
	(cd "$1" && find . -printf '%p %y %s %m\n' | LC_ALL=C sort &&
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0r md5sum)
}

# hc_wait_gone PID [SECONDS]: waits (default 20 s) until PID has exited.
hc_wait_gone() {
	local pid=$1 t=${2:-20} i
	for ((i = 0; i < t * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}

# hc_start_lines FILE: the lines of a daemon's start-up output, without the
# warnings about capabilities the test machine may lack (PR_SET_IO_FLUSHER
# needs CAP_SYS_RESOURCE, mlockall CAP_IPC_LOCK or RLIMIT_MEMLOCK).
hc_start_lines() {
	grep -v -e 'PR_SET_IO_FLUSHER' -e 'mlockall' "$1"
}

# hc_loop_detach DEV: detaches a loop device we attached and forgets it, so
# the EXIT trap never detaches a device number someone else took since.
hc_loop_detach() {
	local dev=$1 i
	losetup -d "$dev" || return 1
	for i in "${!HC_LOOPS[@]}"; do
		[ "${HC_LOOPS[i]}" = "$dev" ] && unset 'HC_LOOPS[i]'
	done
	HC_LOOPS=("${HC_LOOPS[@]}")
	return 0
}

# hc_swapoff DEV: swapoff of a swap area we swapon'ed, and forgets it.
hc_swapoff() {
	local dev=$1 i
	swapoff "$dev" || return 1
	for i in "${!HC_SWAPS[@]}"; do
		[ "${HC_SWAPS[i]}" = "$dev" ] && unset 'HC_SWAPS[i]'
	done
	HC_SWAPS=("${HC_SWAPS[@]}")
	return 0
}
