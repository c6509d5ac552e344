# SPDX-License-Identifier: GPL-2.0-or-later
# Memory cgroups standing in for a VM's memory, v1 (memory.limit_in_bytes)
# or v2 (memory.max), for the tests (tests/integration/common.sh), the demo
# and the bench.  Source it.  These functions do not record what they made:
# each caller keeps its own list for its cleanup trap.

# hc_cg_version: 1, 2, or 0 when no memory controller is available.
hc_cg_version() {
	if [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
		echo 1
	elif [ -f /sys/fs/cgroup/cgroup.controllers ] &&
		grep -qw memory /sys/fs/cgroup/cgroup.controllers; then
		echo 2
	else
		echo 0
	fi
}

# hc_cg_make NAME LIMIT_BYTES: makes the cgroup and prints its directory.
# On failure it prints nothing, returns 1 and leaves nothing behind.
hc_cg_make() {
	local name=$1 limit=$2 dir
	case $(hc_cg_version) in
	1)
		dir=/sys/fs/cgroup/memory/$name
		mkdir "$dir" || return 1
		echo "$limit" >"$dir/memory.limit_in_bytes" || { rmdir "$dir"; return 1; }
		echo 100 >"$dir/memory.swappiness" 2>/dev/null
		;;
	2)
		dir=/sys/fs/cgroup/$name
		grep -qw memory /sys/fs/cgroup/cgroup.subtree_control ||
			echo +memory >/sys/fs/cgroup/cgroup.subtree_control
		mkdir "$dir" || return 1
		echo "$limit" >"$dir/memory.max" || { rmdir "$dir"; return 1; }
		;;
	*) return 1 ;;
	esac
	echo "$dir"
}

# hc_cg_exec DIR CMD...: runs CMD inside the cgroup, returns its status.
hc_cg_exec() {
	local dir=$1
	shift
	sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$dir" "$@"
}

# hc_cg_remove DIR [TRIES]: kills what still runs in it and removes it,
# retrying every 0.1 s (TRIES, default 50).  0 when it is gone.
hc_cg_remove() {
	local dir=$1 tries=${2:-50} p
	[ -d "$dir" ] || return 0
	for p in $(cat "$dir/cgroup.procs" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	for _ in $(seq "$tries"); do rmdir "$dir" 2>/dev/null && return 0; sleep 0.1; done
	return 1
}
