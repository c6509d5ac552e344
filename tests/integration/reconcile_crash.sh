#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# I4/I5 under SIGKILL: a writer runs over three disk volumes of one domain
# (unique, repeated -- dedup -- and zero blocks, block-aligned
# copy_file_range between the volumes) and logs, outside the mount, each
# block before it writes it and an acknowledgement after fsync of every
# volume returned.  The daemon is SIGKILLed at a random moment, remounted
# (every third round it is also killed once during its start, i.e. during
# journal replay), and every block must hold its acknowledged contents or a
# contents written after that acknowledgement.  A round that acknowledged
# nothing fails.  5 rounds; 200 with HC_LONG=1 (make check-long).

. "$(dirname "$0")/common.sh"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
ROUNDS=${HC_CRASH_ROUNDS:-5}
[ -n "${HC_LONG:-}" ] && ROUNDS=200
PY=$HC_SCRATCH/crash.py
cat >"$PY" <<'PYEOF'
import hashlib, json, os, random, sys
B, NB, NV = 4096, 2048, 3
mode, d, state = sys.argv[1], sys.argv[2], sys.argv[3]
log = state + ".log"
h = lambda x: hashlib.sha1(x).hexdigest()
ZERO = h(bytes(B))
if mode == "init":
    for v in range(NV):
        fd = os.open(f"{d}/v{v}", os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(fd, NB * B); os.fsync(fd); os.close(fd)
    json.dump({f"{v}:{b}": ZERO for v in range(NV) for b in range(NB)}, open(state, "w"))
    open(log, "w").close()
elif mode == "write":
    rnd = random.Random(int(sys.argv[4]))
    pool = [rnd.randbytes(B) for _ in range(16)]
    cur = json.load(open(state))          # the exact contents while we write
    out = open(log, "w")
    acks = 0
    try:
        fds = [os.open(f"{d}/v{v}", os.O_RDWR) for v in range(NV)]
        while True:
            for _ in range(rnd.randint(1, 8)):
                v, b = rnd.randrange(NV), rnd.randrange(NB)
                r = rnd.random()
                if r < 0.9:
                    n = min(rnd.randint(1, 16), NB - b)
                    blocks = []
                    for _ in range(n):
                        k = rnd.random()
                        blocks.append(bytes(B) if k < 0.15 else rnd.choice(pool) if k < 0.45
                                      else rnd.randbytes(B))
                    for k, x in enumerate(blocks):
                        cur[f"{v}:{b + k}"] = h(x)
                        out.write(f"W {v} {b + k} {h(x)}\n")
                    out.flush()
                    os.pwrite(fds[v], b"".join(blocks), b * B)
                else:
                    w, c = (v + rnd.randint(1, NV - 1)) % NV, rnd.randrange(NB)
                    n = min(rnd.randint(1, 64), NB - b, NB - c)
                    for k in range(n):
                        cur[f"{w}:{c + k}"] = cur[f"{v}:{b + k}"]
                        out.write(f"W {w} {c + k} {cur[f'{v}:{b + k}']}\n")
                    out.flush()
                    done = 0
                    while done < n * B:
                        done += os.copy_file_range(fds[v], fds[w], n * B - done,
                                                   b * B + done, c * B + done)
            for fd in fds:
                os.fsync(fd)
            out.write("A\n"); out.flush()
            acks += 1
    except OSError:
        pass
    print(acks)
elif mode == "verify":
    base = json.load(open(state))
    acked, later = dict(base), {}
    pend = []
    for line in open(log):
        if line.startswith("W "):
            _, v, b, x = line.split()
            pend.append((f"{v}:{b}", x))
        elif line.startswith("A"):
            for k, x in pend:
                acked[k] = x
                later.pop(k, None)
            for k, x in pend:
                pass
            pend = []
    for k, x in pend:
        later.setdefault(k, set()).add(x)
    bad = 0
    now = {}
    for v in range(NV):
        data = open(f"{d}/v{v}", "rb").read()
        if len(data) != NB * B:
            sys.exit(f"v{v}: size {len(data)}, expected {NB * B}")
        for b in range(NB):
            k = f"{v}:{b}"
            got = h(data[b * B:(b + 1) * B])
            now[k] = got
            if got != acked[k] and got not in later.get(k, ()):
                bad += 1
                if bad <= 5:
                    print(f"v{v} block {b}: neither its acknowledged contents nor a later write",
                          file=sys.stderr)
    if bad:
        sys.exit(f"{bad} blocks lost acknowledged data")
    json.dump(now, open(state, "w"))
PYEOF

start_daemon() {
	hc_mount "$BACK" "$MNT" -o cache=4M
}
crash() { hc_crash "$MNT"; }

start_daemon
mkdir "$MNT/vm" || hc_fail "mkdir failed"
python3 "$PY" init "$MNT/vm" "$HC_SCRATCH/state" || hc_fail "cannot create the volumes"
hc_umount "$MNT"
total=0
for r in $(seq "$ROUNDS"); do
	start_daemon
	rm -f "$HC_SCRATCH/state.log"
	python3 "$PY" write "$MNT/vm" "$HC_SCRATCH/state" "$r$RANDOM" >"$HC_SCRATCH/acks" &
	wpid=$!
	# the first acknowledgement (up to 30 s), then a random moment
	for _ in $(seq 300); do
		grep -q '^A' "$HC_SCRATCH/state.log" 2>/dev/null && break
		kill -0 "$wpid" 2>/dev/null || break
		sleep 0.1
	done
	sleep "$((RANDOM % 2)).$((RANDOM % 10))"
	crash
	wait "$wpid"
	acks=$(cat "$HC_SCRATCH/acks")
	[ "${acks:-0}" -gt 0 ] || hc_fail "round $r: nothing was acknowledged (a failed run, not a pass)"
	total=$((total + acks))
	if [ $((r % 3)) = 0 ]; then
		# killed during its start: journal replay, checkpoint load
		"$HECACHE_FS" "$BACK" "$MNT" -f >>"$HC_SCRATCH/daemon.log" 2>&1 &
		HC_DAEMON_PID=$!
		HC_PIDS+=("$HC_DAEMON_PID")
		sleep "0.0$((RANDOM % 10))"
		crash
	fi
	start_daemon
	python3 "$PY" verify "$MNT/vm" "$HC_SCRATCH/state" ||
		hc_fail "round $r: acknowledged data lost after SIGKILL"
	hc_umount "$MNT"
	"$HC_TOP_BUILDDIR/tools/hectl" -b "$BACK" fsck >"$HC_SCRATCH/fsck" 2>&1 ||
		{ cat "$HC_SCRATCH/fsck" >&2; hc_fail "round $r: hectl fsck found problems"; }
	hc_info "round $r: $acks acknowledgements, all acknowledged blocks intact"
done
hc_info "PASS ($ROUNDS rounds, $total acknowledgements)"
