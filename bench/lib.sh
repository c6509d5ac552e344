# SPDX-License-Identifier: GPL-2.0-or-later
# Helpers for bench/run.sh: a registry of everything the bench creates
# (cgroups, swap areas, loop devices, mounts, daemons, scratch directory)
# and a cleanup that undoes exactly that, in that order, on any exit.
# Self-contained: it does not use the test harness (tests/integration).

B_CGROUPS=()	# cgroup directories we created
B_SWAPS=()	# swap devices we swapon'ed
B_LOOPS=()	# loop devices we attached
B_MOUNTS=()	# mountpoints we mounted
B_PIDS=()	# daemons we started
B_SCRATCH=""	# our scratch directory
B_JOB=""	# the workload running now (b_run)
B_UNDO=()	# commands putting back settings we changed (run last, newest first)

b_log() { printf '%s bench: %s\n' "$(date +%T)" "$*" >&2; }
b_die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

# b_forget ARRAYNAME VALUE: removes VALUE from the registry ARRAYNAME.
b_forget() {
	local -n arr=$1
	local keep=() x
	for x in "${arr[@]}"; do [ "$x" = "$2" ] || keep+=("$x"); done
	arr=("${keep[@]}")
}

b_is_mounted() { awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts; }
b_is_swap() { awk -v d="$1" '$1 == d { f = 1 } END { exit !f }' /proc/swaps; }

b_cleanup() {
	local rc=$?
	set +e
	trap - EXIT INT TERM
	local i pid
	if [ -n "$B_JOB" ] && kill -0 "$B_JOB" 2>/dev/null; then
		kill -TERM "$B_JOB" 2>/dev/null
		for _ in $(seq 150); do kill -0 "$B_JOB" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$B_JOB" 2>/dev/null
	fi
	for ((i = ${#B_CGROUPS[@]} - 1; i >= 0; i--)); do b_cgroup_remove "${B_CGROUPS[i]}"; done
	for ((i = ${#B_SWAPS[@]} - 1; i >= 0; i--)); do
		b_is_swap "${B_SWAPS[i]}" && swapoff "${B_SWAPS[i]}"
	done
	for ((i = ${#B_SWAPS[@]} - 1; i >= 0; i--)); do
		if b_is_swap "${B_SWAPS[i]}"; then
			# never unmount (or stop the daemon of) a mount swap is still on
			echo "bench: swapoff ${B_SWAPS[i]} failed; leaving its loop device, mounts and" \
				"daemons (${B_PIDS[*]}) in place under $B_SCRATCH" >&2
			exit "$rc"
		fi
	done
	for ((i = ${#B_LOOPS[@]} - 1; i >= 0; i--)); do losetup -d "${B_LOOPS[i]}" 2>/dev/null; done
	for ((i = ${#B_MOUNTS[@]} - 1; i >= 0; i--)); do
		if b_is_mounted "${B_MOUNTS[i]}"; then
			fusermount3 -u "${B_MOUNTS[i]}" 2>/dev/null || umount -l "${B_MOUNTS[i]}"
		fi
	done
	for pid in "${B_PIDS[@]}"; do
		kill -0 "$pid" 2>/dev/null || continue
		# an unmounted daemon exits by itself; give it time to flush
		for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill "$pid" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$pid" 2>/dev/null
	done
	for ((i = ${#B_UNDO[@]} - 1; i >= 0; i--)); do eval "${B_UNDO[i]}"; done
	if [ -n "$B_SCRATCH" ] && [ -d "$B_SCRATCH" ]; then
		# never descend into a mount that refused to go away
		if awk -v s="$B_SCRATCH/" 'index($2, s) == 1 { f = 1 } END { exit !f }' /proc/mounts; then
			echo "bench: a mount is still under $B_SCRATCH; not removing it" >&2
		else
			rm -rf --one-file-system "$B_SCRATCH"
		fi
	fi
	exit "$rc"
}

# b_fuse_uring KNOB: with KNOB 1, lets FUSE servers that ask for it take
# their requests through io_uring (fuse.enable_uring, Linux 6.14+;
# hecache-fs does, libfuse 3.14's passthrough_ll cannot), put back at exit.
# Sets B_FUSE_URING to "on" or why not, and logs it.  (Not in a subshell:
# the undo must reach B_UNDO.)
B_FUSE_URING_PARAM=/sys/module/fuse/parameters/enable_uring
B_FUSE_URING=""
b_fuse_uring() {
	if [ "$1" != 1 ]; then
		B_FUSE_URING="off (BENCH_FUSE_URING=$1)"
	elif [ ! -e "$B_FUSE_URING_PARAM" ]; then
		B_FUSE_URING="off (kernel without it)"
	else
		local old
		old=$(cat "$B_FUSE_URING_PARAM")
		B_UNDO+=("echo '$old' >'$B_FUSE_URING_PARAM'")
		if echo Y >"$B_FUSE_URING_PARAM" 2>/dev/null; then B_FUSE_URING=on
		else B_FUSE_URING="off (cannot set $B_FUSE_URING_PARAM)"; fi
	fi
	b_log "FUSE over io_uring: $B_FUSE_URING"
}

# b_run CMD...: runs a workload as a background job and waits for it.  A
# trapped signal (Ctrl-C) interrupts the wait at once (a foreground child
# would delay it, or swallow it when the child exits normally); the cleanup
# then stops the job.
b_run() {
	"$@" &
	B_JOB=$!
	local rc=0
	wait "$B_JOB" || rc=$?
	B_JOB=""
	return "$rc"
}

# b_start_fuse NAME MOUNTPOINT LOG CMD... : starts a FUSE daemon in the
# foreground as a background job (we own its PID), waits for the mount.
# Sets B_LAST_PID.  Returns 1 (with the reason in B_ERR) when it does not
# come up.
b_start_fuse() {
	local name=$1 mnt=$2 log=$3
	shift 3
	mkdir -p "$mnt"
	"$@" >>"$log" 2>&1 &
	B_LAST_PID=$!
	B_PIDS+=("$B_LAST_PID")
	B_MOUNTS+=("$mnt")
	local i
	for i in $(seq 150); do
		b_is_mounted "$mnt" && return 0
		if ! kill -0 "$B_LAST_PID" 2>/dev/null; then
			local st=0
			wait "$B_LAST_PID" || st=$?
			B_ERR="$name exited with status $st at start: $(tail -n 1 "$log")"
			return 1
		fi
		sleep 0.1
	done
	B_ERR="$name did not mount $mnt within 15 s"
	return 1
}

# b_stop_fuse MOUNTPOINT PID: unmounts, waits for the daemon; returns its
# exit status (B_ERR says what went wrong).
b_stop_fuse() {
	local mnt=$1 pid=$2 st=0
	if b_is_mounted "$mnt"; then
		fusermount3 -u "$mnt" || { B_ERR="fusermount3 -u $mnt failed"; return 1; }
	fi
	b_forget B_MOUNTS "$mnt"
	local i
	for i in $(seq 1200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		b_forget B_PIDS "$pid"
		B_ERR="daemon $pid still running 120 s after unmount; killed"
		return 1
	fi
	wait "$pid" 2>/dev/null || st=$?
	b_forget B_PIDS "$pid"
	[ "$st" = 0 ] || B_ERR="daemon $pid exited with status $st after unmount"
	return "$st"
}

# b_alive PID: is our daemon still running?
b_alive() { kill -0 "$1" 2>/dev/null; }

# Memory cgroups, v1 or v2: tools/cgroup.sh, plus our cleanup list.
. "$(dirname "${BASH_SOURCE[0]}")/../tools/cgroup.sh"
b_cgroup_version() { hc_cg_version; }
# b_cgroup_create NAME LIMIT_BYTES -> prints the cgroup directory
b_cgroup_create() {
	local dir
	dir=$(hc_cg_make "$1" "$2") || return 1
	B_CGROUPS+=("$dir")
	echo "$dir"
}
b_cgroup_remove() {
	hc_cg_remove "$1" 100 || return 1
	b_forget B_CGROUPS "$1"
}

# b_bytes SIZE: 1G -> 1073741824 (K/M/G/T suffixes, powers of two)
b_bytes() { numfmt --from=iec "${1^^}" 2>/dev/null; }

# b_median N...: the median (lower middle for an even count)
b_median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
