#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# hecache-agent (doc/hecache-agent.8) against the daemon.  "run -- sleep"
# in a 64 MiB memory cgroup for domain vm1: the daemon lists vm1 with an
# agent, M = 64 MiB set by the agent and a report with the swap counters;
# hectl domain set-memory vm1 96M reaches the cgroup's limit and the next
# report.  A second agent, for vm2, speaks over --device: a pty that
# python3 bridges to ctl.sock (standing in for virtio-serial).  The daemon
# is unmounted and mounted again on the same backing: vm1's agent logs one
# line, keeps the workload and registers again within seconds; vm2's, which
# cannot see the restart, registers again when its next report is refused.
# SIGTERM to vm1's agent ends the workload, exits 143 and removes the
# cgroup.  A third agent, for vm3, has no cgroup: its set_memory is answered
# with an error the daemon shows.

. "$(dirname "$0")/common.sh"

AGENT=${HC_AGENT:-$HC_TOP_BUILDDIR/guest-agent/hecache-agent}
HECTL=$HC_TOOLS/hectl
[ -x "$AGENT" ] || hc_fail "no $AGENT (make builds it)"
[ -x "$HECTL" ] || hc_fail "no $HECTL (make builds it)"
command -v jq >/dev/null || hc_skip "jq is not installed"
command -v python3 >/dev/null || hc_skip "python3 is not installed"
case $(hc_cgroup_version) in
1) CG_ROOT=/sys/fs/cgroup/memory LIMIT_FILE=memory.limit_in_bytes ;;
2) CG_ROOT=/sys/fs/cgroup LIMIT_FILE=memory.max ;;
*) hc_skip "no memory cgroup controller (v1 or v2)" ;;
esac

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
MiB=$((1024 * 1024))

# dom DOMAIN JQ: a member of the domain's entry in domain_list, as JSON.
dom() {
	"$HECTL" -b "$BACK" --json domain list 2>/dev/null |
		jq -c --arg d "$1" ".domains[] | select(.name == \$d) | $2"
}
# is DOMAIN JQ VALUE: does the member read VALUE?
is() { [ "$(dom "$1" "$2")" = "$3" ]; }
# wait_for WHAT CMD...: polls CMD every 0.1 s for 10 s, else fails naming
# WHAT, with the daemon's domain list and the agents' logs.
wait_for() {
	local what=$1
	shift
	for _ in $(seq 100); do
		"$@" && return 0
		sleep 0.1
	done
	hc_fail "$what (10 s); domain_list: $("$HECTL" -b "$BACK" --json domain list 2>&1 | jq -c .)
agent logs: $(tail -n +1 "$HC_SCRATCH"/agent*.log 2>/dev/null)"
}
# stop PID STATUS LOG: SIGTERM to an agent, which must exit with STATUS.
stop() {
	local rc=0
	kill -TERM "$1"
	wait "$1" || rc=$?
	[ "$rc" = "$2" ] || hc_fail "agent $1 exited with $rc after SIGTERM, not $2: $(cat "$3")"
}
# logged FILE TEXT: how many lines of FILE hold TEXT.
logged() { grep -c -F -e "$2" "$1"; }

hc_mount "$BACK" "$MNT" -o cache=64M
mkdir "$MNT/vm1" || hc_fail "mkdir of domain vm1 failed"

# --- run: register and report ------------------------------------------------
ALOG=$HC_SCRATCH/agent.log
"$AGENT" -b "$BACK" --domain vm1 --memory 64M --interval 1 -v run -- sleep 300 2>"$ALOG" &
APID=$!
HC_PIDS+=("$APID")
CG=$CG_ROOT/hecache-agent-vm1-$APID
HC_CGROUPS+=("$CG")
hc_info "agent $APID, cgroup $CG"

wait_for "vm1 has no agent in domain_list" is vm1 .agent true
wait_for "vm1 has no agent_report" is vm1 '.agent_report != null' true
hc_info "vm1: $(dom vm1 .)"
is vm1 .memory_bytes $((64 * MiB)) || hc_fail "vm1 memory_bytes is $(dom vm1 .memory_bytes), not 64 MiB"
is vm1 .memory_source '"agent"' || hc_fail "vm1 memory_source is $(dom vm1 .memory_source)"
is vm1 .agent_report.memory_bytes $((64 * MiB)) || hc_fail "the report says $(dom vm1 .agent_report)"
for k in swap_total_bytes swap_used_bytes pswpin pswpout; do
	is vm1 ".agent_report.$k | type" '"number"' || hc_fail "the report has no $k: $(dom vm1 .agent_report)"
done
[ "$(cat "$CG/$LIMIT_FILE")" = $((64 * MiB)) ] || hc_fail "$CG/$LIMIT_FILE is $(cat "$CG/$LIMIT_FILE")"
child=$(pgrep -P "$APID" -x sleep) || hc_fail "no sleep under the agent"
grep -qx "$child" "$CG/cgroup.procs" || hc_fail "sleep ($child) is not in $CG"

# --- set-memory reaches the cgroup and the next report ------------------------
reply=$("$HECTL" -b "$BACK" --json domain set-memory vm1 96M) || hc_fail "hectl domain set-memory failed"
[ "$(jq .sent_to_agent <<<"$reply")" = true ] || hc_fail "set-memory not sent to the agent: $reply"
limit_is() { [ "$(cat "$CG/$LIMIT_FILE")" = "$1" ]; }
wait_for "$CG/$LIMIT_FILE did not become 96 MiB" limit_is $((96 * MiB))
wait_for "no report of 96 MiB" is vm1 .agent_report.memory_bytes $((96 * MiB))
is vm1 .memory_bytes $((96 * MiB)) || hc_fail "vm1 memory_bytes is $(dom vm1 .memory_bytes), not 96 MiB"
[ "$(logged "$ALOG" "set_memory 96.0 MiB: applied")" = 1 ] || hc_fail "agent log: $(cat "$ALOG")"

# --- --device: a pty bridged to ctl.sock, as QEMU does for virtio-serial -----
# The bridge connects again after a daemon restart (QEMU's reconnect=1).
python3 - "$BACK/ctl.sock" >"$HC_SCRATCH/pty" <<'PY' &
import os, pty, select, socket, sys, time, tty
m, s = pty.openpty()
tty.setraw(m)
print(os.ttyname(s), flush=True)
while True:
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.connect(sys.argv[1])
    except OSError:
        sock.close()
        time.sleep(0.2)
        continue
    try:
        while True:
            r, _, _ = select.select([m, sock], [], [])
            if m in r:
                sock.sendall(os.read(m, 65536))
            if sock in r:
                d = sock.recv(65536)
                if not d:
                    break
                os.write(m, d)
    except OSError:
        pass
    sock.close()
PY
BRIDGE=$!
HC_PIDS+=("$BRIDGE")
wait_for "the pty bridge did not start" test -s "$HC_SCRATCH/pty"
PTY=$(head -1 "$HC_SCRATCH/pty")
mkdir "$MNT/vm2" || hc_fail "mkdir of domain vm2 failed"
ALOG2=$HC_SCRATCH/agent2.log
"$AGENT" --device "$PTY" --domain vm2 --interval 1 -v report 2>"$ALOG2" &
APID2=$!
HC_PIDS+=("$APID2")
wait_for "vm2 has no agent over $PTY" is vm2 .agent true
memtotal=$(($(awk '$1 == "MemTotal:" { print $2 }' /proc/meminfo) * 1024))
wait_for "vm2's report is not MemTotal ($memtotal)" is vm2 .agent_report.memory_bytes "$memtotal"
hc_info "vm2 over $PTY: $(dom vm2 .agent_report)"

# --- the daemon restarts: one line down, one line back, workload kept ---------
hc_umount "$MNT"
wait_for "the agent did not log the lost connection" grep -q "trying again every second" "$ALOG"
sleep 2.5	# several failed attempts, to see that they log nothing more
kill -0 "$APID" 2>/dev/null || hc_fail "the agent exited without the daemon: $(cat "$ALOG")"
kill -0 "$child" 2>/dev/null || hc_fail "the workload ended without the daemon"
hc_mount "$BACK" "$MNT" -o cache=64M
wait_for "vm1's agent did not register again" is vm1 .agent true
is vm1 .memory_bytes $((96 * MiB)) || hc_fail "after the restart vm1 memory_bytes is $(dom vm1 .memory_bytes)"
# (the agent logs when it reads the daemon's reply, after domain_list shows it)
wait_for "no reconnection logged" grep -q "connected again, domain vm1 registered" "$ALOG"
[ "$(logged "$ALOG" "trying again every second")" = 1 ] || hc_fail "agent log: $(cat "$ALOG")"
[ "$(logged "$ALOG" "connected again")" = 1 ] || hc_fail "agent log: $(cat "$ALOG")"
# Over the pty the agent sees no restart: its next report is refused
# (EINVAL, not registered) and it registers again.
wait_for "vm2's agent did not register again over $PTY" is vm2 .agent true
wait_for "no reconnection logged" grep -q "connected again, domain vm2 registered" "$ALOG2"
hc_info "both agents registered again after the restart"

# --- SIGTERM: forwarded to the workload, cgroup removed ----------------------
stop "$APID" 143 "$ALOG"	# 128 + SIGTERM, which killed sleep
[ ! -d "$CG" ] || hc_fail "$CG is still there after the agent exited"
kill -0 "$child" 2>/dev/null && hc_fail "sleep ($child) outlived the agent"
wait_for "vm1 still has an agent" is vm1 .agent false

stop "$APID2" 0 "$ALOG2"

# --- no cgroup: set_memory is answered with an error -------------------------
mkdir "$MNT/vm3" || hc_fail "mkdir of domain vm3 failed"
ALOG3=$HC_SCRATCH/agent3.log
# A long interval: the report answering set_memory stays the last one.
"$AGENT" -b "$BACK" --domain vm3 --interval 60 report 2>"$ALOG3" &
APID3=$!
HC_PIDS+=("$APID3")
wait_for "vm3 has no agent" is vm3 .agent true
reply=$("$HECTL" -b "$BACK" --json domain set-memory vm3 32M) || hc_fail "hectl domain set-memory vm3 failed"
[ "$(jq .sent_to_agent <<<"$reply")" = true ] || hc_fail "set-memory not sent to vm3's agent: $reply"
wait_for "vm3's report has no error" \
	is vm3 .agent_report.error '"no memory cgroup to apply set-memory to"'
is vm3 '.agent_report | has("applied_bytes")' false || hc_fail "vm3's report: $(dom vm3 .agent_report)"
stop "$APID3" 0 "$ALOG3"

kill "$BRIDGE"
wait "$BRIDGE" 2>/dev/null
hc_umount "$MNT"
hc_info "PASS"
