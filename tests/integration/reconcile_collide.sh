#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# I2 under a forged hash: with HECACHE_TEST_HASH_COLLIDE=1 every block has
# the same hash, so every write-back finds candidates whose bytes differ.
# A random workload over four volumes of one domain (writes of unique,
# repeated and zero blocks, overwrites, reads that take blocks out of a
# small cache, fsyncs, discards, block-aligned copy_file_range) is checked
# against a model: every byte of every volume, during the run, at the end,
# and after a remount.  Any wrong sharing shows up as a mismatch.
# The same workload then runs again with real hashes (where the index finds
# true duplicates), including "rotations": one write that moves each block
# of a range one block up, so a block gets the old contents of the block
# before it in the same write-back run -- the pattern of swap slots reused
# in a cluster, which once made a run share a home block it then
# overwrote.

. "$(dirname "$0")/common.sh"

MNT=$HC_SCRATCH/mnt
OPS=${HC_COLLIDE_OPS:-4000}
[ -n "${HC_LONG:-}" ] && OPS=40000

workload() {	# BACKING LABEL
BACK=$1
hc_mount "$BACK" "$MNT" -o cache=1M
mkdir "$MNT/vm" || hc_fail "mkdir failed"
python3 - "$MNT/vm" "$HC_SCRATCH/model" "$OPS" <<'PY' || hc_fail "random workload ($2): data differs from the model"
import ctypes, ctypes.util, os, pickle, random, sys
d, modelpath, ops = sys.argv[1], sys.argv[2], int(sys.argv[3])
B, NB, NV = 4096, 512, 4
rnd = random.Random(1234)
libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
pool = [os.urandom(B) for _ in range(8)]          # repeated contents: real dups
fds = [os.open(f"{d}/v{i}", os.O_RDWR | os.O_CREAT, 0o644) for i in range(NV)]
model = [[bytes(B)] * NB for _ in range(NV)]
for fd in fds:
    os.ftruncate(fd, NB * B)
def check(v, b, n=1):
    got = os.pread(fds[v], n * B, b * B)
    want = b"".join(model[v][b:b + n])
    if got != want:
        for k in range(n):
            if got[k * B:(k + 1) * B] != model[v][b + k]:
                sys.exit(f"v{v} block {b + k} differs")
for op in range(ops):
    v, b = rnd.randrange(NV), rnd.randrange(NB)
    r = rnd.random()
    if r < 0.45:
        n = rnd.randint(1, 8); n = min(n, NB - b)
        blocks = []
        for _ in range(n):
            k = rnd.random()
            blocks.append(bytes(B) if k < 0.1 else rnd.choice(pool) if k < 0.5 else os.urandom(B))
        os.pwrite(fds[v], b"".join(blocks), b * B)
        model[v][b:b + n] = blocks
    elif r < 0.5:
        # rotation: block b+k gets the old contents of block b+k-1
        n = min(rnd.randint(2, 16), NB - b)
        if n < 2:
            continue
        blocks = [os.urandom(B)] + model[v][b:b + n - 1]
        os.pwrite(fds[v], b"".join(blocks), b * B)
        model[v][b:b + n] = blocks
    elif r < 0.55:
        # a partial write inside a block
        o = rnd.randrange(B - 100); data = os.urandom(100)
        os.pwrite(fds[v], data, b * B + o)
        old = model[v][b]; model[v][b] = old[:o] + data + old[o + 100:]
    elif r < 0.85:
        n = min(rnd.randint(1, 16), NB - b)
        check(v, b, n)
    elif r < 0.9:
        os.fsync(fds[v])
    elif r < 0.95:
        n = min(rnd.randint(1, 8), NB - b)
        if libc.fallocate(fds[v], 3, b * B, n * B) != 0:
            sys.exit("fallocate: " + os.strerror(ctypes.get_errno()))
        model[v][b:b + n] = [bytes(B)] * n
    else:
        w = rnd.randrange(NV)
        if w == v:
            continue
        c, n = rnd.randrange(NB), 0
        n = min(rnd.randint(1, 16), NB - b, NB - c)
        done = 0
        while done < n * B:
            done += os.copy_file_range(fds[v], fds[w], n * B - done, b * B + done, c * B + done)
        model[w][c:c + n] = model[v][b:b + n]
for v in range(NV):
    check(v, 0, NB)
    os.fsync(fds[v])
pickle.dump(model, open(modelpath, "wb"))
PY
hc_umount "$MNT"
hc_mount "$BACK" "$MNT" -o cache=1M
python3 - "$MNT/vm" "$HC_SCRATCH/model" <<'PY' || hc_fail "data differs from the model after a remount ($2)"
import pickle, sys
d, model = sys.argv[1], pickle.load(open(sys.argv[2], "rb"))
for v, blocks in enumerate(model):
    got = open(f"{d}/v{v}", "rb").read()
    for b, want in enumerate(blocks):
        if got[b * 4096:(b + 1) * 4096] != want:
            sys.exit(f"v{v} block {b} differs after remount")
PY
hc_umount "$MNT"
"$HC_TOP_BUILDDIR/tools/hectl" -b "$BACK" fsck >/dev/null || hc_fail "hectl fsck found problems ($2)"
}

HECACHE_TEST_HASH_COLLIDE=1 workload "$HC_SCRATCH/backing-collide" "every hash equal"
workload "$HC_SCRATCH/backing-real" "real hashes"
hc_info "PASS ($OPS operations, twice)"
