#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The control socket under bad input (doc/ctl-protocol.md): garbage, a
# truncated object, text after an object, a non-object, a wrong version, an
# unknown op, JSON nested 10000 deep, a 10 MiB line, a client that closes
# mid-line and one that never reads its replies, and 200 connections opened
# at once.  Each gets an error reply (or is dropped alone) and the daemon
# keeps serving: a status request on the same connection and on a new one
# answers, the mount still reads and writes, and the socket is 0600 and gone
# after unmount.

. "$(dirname "$0")/common.sh"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
hc_mount "$BACK" "$MNT" -o cache=32M
SOCK=$BACK/ctl.sock
[ -S "$SOCK" ] || hc_fail "no control socket at $SOCK"
[ "$(stat -c %a "$SOCK")" = 600 ] || hc_fail "ctl.sock mode is $(stat -c %a "$SOCK"), not 600"

python3 - "$SOCK" <<'PY' || hc_fail "control socket misbehaved (above)"
import json, socket, sys, time

path = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(30)
    s.connect(path)
    return s, s.makefile("rb")

s, f = conn()
def send(raw):
    s.sendall(raw if isinstance(raw, bytes) else raw.encode())
def reply():
    line = f.readline()
    if not line:
        raise SystemExit("daemon closed the connection")
    return json.loads(line)
def expect_error(raw, code):
    send(raw)
    r = reply()
    if r.get("ok") is not False or r.get("error") != code or not r.get("message"):
        raise SystemExit(f"{raw[:60]!r}: expected {code}, got {r}")
    if r.get("v") != 1:
        raise SystemExit(f"reply without v:1: {r}")
    print(f"  {code:10} {r['message']}")

expect_error("garbage\n", "EINVAL")
expect_error('{"op":"status"\n', "EINVAL")
expect_error('{"op":"status"} trailing\n', "EINVAL")
expect_error('[1,2,3]\n', "EINVAL")
expect_error('"just a string"\n', "EINVAL")
expect_error('{"v":2,"op":"status"}\n', "EPROTO")
expect_error('{"v":"1","op":"status"}\n', "EPROTO")
expect_error('{"op":42}\n', "EINVAL")
expect_error('{"noop":1}\n', "EINVAL")
expect_error('{"op":"no_such_op"}\n', "EOPNOTSUPP")
expect_error('{"op":"stats","domain":"../etc"}\n', "EINVAL")
expect_error('{"op":"stats","domain":"nosuch"}\n', "ENOENT")
expect_error('{"op":"volume_create","domain":"d","volume":"v","size":-1}\n', "EINVAL")
expect_error('{"op":"volume_create","domain":"d","volume":"v","size":"1G"}\n', "EINVAL")
expect_error('{"op":"agent_report","memory_bytes":1}\n', "EINVAL")
expect_error("[" * 10000 + "]" * 10000 + "\n", "EINVAL")
expect_error('{"a":' * 5000 + "1" + "}" * 5000 + "\n", "EINVAL")
expect_error(b"\xff\xfe\x00garbage\n", "EINVAL")
# 10 MiB in one line: one E2BIG reply, the rest of the line skipped.
send(b'{"op":"status","pad":"' + b"x" * (10 << 20) + b'"}\n')
r = reply()
if r.get("error") != "E2BIG":
    raise SystemExit(f"10 MiB line: expected E2BIG, got {r}")
print("  E2BIG      10 MiB line")
# The same connection still serves, with the id echoed.
send('{"op":"status","id":[7,"x"]}\n')
r = reply()
if not r.get("ok") or r.get("id") != [7, "x"] or r.get("protocol") != 1:
    raise SystemExit(f"status after bad input: {r}")
# Blank lines are ignored; two requests in one write get two replies in order.
send('\n\n{"op":"status","id":1}\n{"op":"domain_list","id":2}\n')
a, b = reply(), reply()
if (a.get("id"), b.get("id")) != (1, 2) or "domains" not in b:
    raise SystemExit(f"pipelined replies out of order: {a} {b}")

# A client that closes mid-line, one that never reads 2000 replies.
x, _ = conn(); x.sendall(b'{"op":"sta'); x.close()
y, _ = conn()
y.sendall(b'{"op":"domain_list"}\n' * 2000)
# 200 connections at once: the daemon serves 64 and refuses the rest
# with EMFILE, never crashing.
many, refused = [], 0
for i in range(200):
    try:
        c = socket.socket(socket.AF_UNIX); c.settimeout(10); c.connect(path); many.append(c)
    except OSError:
        refused += 1
for c in many:
    try:
        c.sendall(b'{"op":"status"}\n')
    except (BrokenPipeError, ConnectionResetError):
        pass  # refused (EMFILE reply, then closed) before we wrote: read below
ok = emfile = 0
for c in many:
    try:
        r = json.loads(c.makefile("rb").readline() or b"{}")
    except (OSError, ValueError):
        r = {}
    ok += r.get("ok") is True
    emfile += r.get("error") == "EMFILE"
    c.close()
print(f"  200 connections: {ok} served, {emfile} refused with EMFILE, {refused} not connected")
if ok < 60 or ok + emfile < 190 or ok + emfile + refused != 200:
    raise SystemExit("connections were neither served nor refused cleanly")
y.close()
s2, f2 = conn()
s2.sendall(b'{"op":"status"}\n')
if not json.loads(f2.readline()).get("ok"):
    raise SystemExit("new connection after the storm not served")
PY

# The data path is untouched.
mkdir "$MNT/vm1"
dd if=/dev/urandom of="$HC_SCRATCH/ref" bs=1M count=4 status=none
cp "$HC_SCRATCH/ref" "$MNT/vm1/disk"
cmp "$HC_SCRATCH/ref" "$MNT/vm1/disk" || hc_fail "data differs after the socket tests"
kill -0 "$HC_DAEMON_PID" || hc_fail "daemon died"
hc_umount "$MNT"
[ -e "$SOCK" ] && hc_fail "ctl.sock left behind after unmount"
hc_info "ok: every bad request got an error reply; the daemon kept serving"
