# SPDX-License-Identifier: GPL-2.0-or-later
"""Random file operations on a hecache-fs mount against an in-memory model.

model.py MOUNT STATE SEED OPS

Volumes d0/a d0/b d0/c.ram (kind ram) in one domain and d1/x d1/s.swap
(kind swap) in another (HC_MODEL_VOLS: others).  Each of OPS
operations is drawn at random: aligned and unaligned writes (through plain
and O_DIRECT descriptors) of blocks from a small pool (so that dedup shares
them), of zeros and of random bytes; reads (plain and O_DIRECT); hole punches
and zero ranges (with and without KEEP_SIZE); fallocate growing a volume;
truncate; copy_file_range inside a domain (aligned: shared blocks; unaligned:
copied bytes) and across domains; rename; unlink and re-creation; fsync;
SEEK_HOLE/SEEK_DATA; writes through a shared mapping of the ram volume.  After every change the changed range is read back, and
every volume in full at the end, and compared with the model (I1).  A hole
SEEK_HOLE/SEEK_DATA reports must read as zeros.

STATE is a directory outside the mount holding the model between runs (one
file per volume; missing on the first run): a run loads it, checks that the
mount still holds it (after a remount or a crash), works, fsyncs every
volume and saves it.  Exit 1 with one line naming the operation, the volume
and the first differing offset when anything differs or fails.
"""
import ctypes
import errno
import mmap
import os
import random
import sys

BLK = 4096
MAXSZ = 3 * 1024 * 1024
# kinds by name (hecache-fs(8)): c.ram keeps the page cache, s.swap is its
# domain's only swap volume (dirty blocks a read hits stay in their slot)
VOLS = os.environ.get("HC_MODEL_VOLS", "d0/a d0/b d0/c.ram d1/x d1/s.swap").split()
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_PUNCH_HOLE = 2
FALLOC_FL_ZERO_RANGE = 16
SEEK_DATA, SEEK_HOLE = 3, 4
LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def die(msg):
    sys.exit("model: " + msg)


class Model:
    def __init__(self, mnt, state, rnd):
        self.mnt, self.state, self.rnd = mnt, state, rnd
        self.data = {}
        self.pool = [bytes([i + 1]) * 64 * (BLK // 64) for i in range(3)]
        self.pool += [rnd.randbytes(BLK) for _ in range(5)]
        self.abuf = mmap.mmap(-1, 64 * BLK)  # page aligned, for O_DIRECT
        self.ops = 0
        self.last = ""

    def path(self, v):
        return os.path.join(self.mnt, v)

    # ---------------------------------------------------------- checking
    def compare(self, v, off, n, direct=False):
        """Reads [off, off+n) of v (clipped to its size) and compares."""
        size = len(self.data[v])
        st = os.stat(self.path(v))
        if st.st_size != size:
            die("%s after %s: size %d, model %d" % (v, self.last, st.st_size, size))
        end = min(off + n, size)
        if off >= end:
            return
        if direct:
            off &= ~(BLK - 1)
            end = min((end + BLK - 1) & ~(BLK - 1), (size + BLK - 1) & ~(BLK - 1))
        got = self.pread(v, off, end - off, direct)
        want = bytes(self.data[v][off:min(end, size)])
        if direct:
            got = got[:len(want)]  # the block tail past the end of the volume
        if got != want:
            # the first differing byte, or where the shorter one ends
            k = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b),
                     min(len(got), len(want)))
            die("%s after %s: byte %d reads %s, model %s (read of %d at %d%s)" % (
                v, self.last, off + k,
                got[k:k + 8].hex() if k < len(got) else "EOF",
                want[k:k + 8].hex() if k < len(want) else "EOF",
                end - off, off, ", O_DIRECT" if direct else ""))

    def pread(self, v, off, n, direct):
        flags = os.O_RDONLY | (os.O_DIRECT if direct else 0)
        fd = os.open(self.path(v), flags)
        try:
            out = bytearray()
            while len(out) < n:
                k = min(n - len(out), len(self.abuf))
                if direct:
                    r = os.preadv(fd, [memoryview(self.abuf)[:k]], off + len(out))
                    chunk = self.abuf[:r]
                else:
                    chunk = os.pread(fd, k, off + len(out))
                    r = len(chunk)
                if r == 0:
                    break
                out += chunk
            return bytes(out)
        finally:
            os.close(fd)

    def check_all(self):
        for v in VOLS:
            self.compare(v, 0, len(self.data[v]))

    # ---------------------------------------------------------- operations
    def content(self, n, aligned):
        r = self.rnd.random()
        if aligned and r < 0.5:
            return b"".join(self.rnd.choice(self.pool) for _ in range(n // BLK))
        if r < 0.65:
            return bytes(n)
        return self.rnd.randbytes(n)

    def span(self, aligned, maxblocks=24):
        if aligned:
            off = self.rnd.randrange(0, MAXSZ // BLK) * BLK
            n = self.rnd.randint(1, maxblocks) * BLK
        else:
            off = self.rnd.randrange(0, MAXSZ)
            n = self.rnd.randint(1, maxblocks * BLK)
        return off, min(n, MAXSZ - off)

    def model_write(self, v, off, buf):
        d = self.data[v]
        if off > len(d):
            d.extend(bytes(off - len(d)))
        d[off:off + len(buf)] = buf

    def op_write(self, v):
        direct = self.rnd.random() < 0.4
        aligned = direct or self.rnd.random() < 0.6
        off, n = self.span(aligned)
        buf = self.content(n, aligned)
        self.last = "write of %d at %d%s" % (n, off, " O_DIRECT" if direct else "")
        fd = os.open(self.path(v), os.O_WRONLY | (os.O_DIRECT if direct else 0))
        try:
            done = 0
            while done < n:
                k = min(n - done, len(self.abuf))
                if direct:
                    self.abuf[:k] = buf[done:done + k]
                    r = os.pwritev(fd, [memoryview(self.abuf)[:k]], off + done)
                else:
                    r = os.pwrite(fd, buf[done:done + k], off + done)
                if r <= 0:
                    die("%s: %s wrote %d" % (v, self.last, r))
                done += r
        finally:
            os.close(fd)
        self.model_write(v, off, buf)
        self.compare(v, off, n, direct=self.rnd.random() < 0.3)

    def op_read(self, v):
        direct = self.rnd.random() < 0.4
        off, n = self.span(direct or self.rnd.random() < 0.5, 64)
        self.last = "read"
        self.compare(v, off, n, direct)

    def falloc(self, v, mode, off, n):
        fd = os.open(self.path(v), os.O_WRONLY)
        try:
            if LIBC.fallocate(fd, mode, off, n) != 0:
                e = ctypes.get_errno()
                die("%s: fallocate mode %d of %d at %d: %s" % (v, mode, n, off, os.strerror(e)))
        finally:
            os.close(fd)

    def op_punch(self, v):
        off, n = self.span(self.rnd.random() < 0.6, 32)
        zero = self.rnd.random() < 0.4
        keep = not zero or self.rnd.random() < 0.5
        mode = (FALLOC_FL_ZERO_RANGE if zero else FALLOC_FL_PUNCH_HOLE) | \
            (FALLOC_FL_KEEP_SIZE if keep else 0)
        self.last = "%s of %d at %d%s" % ("zero range" if zero else "punch", n, off,
                                         " KEEP_SIZE" if keep else "")
        self.falloc(v, mode, off, n)
        d = self.data[v]
        end = off + n if not keep else min(off + n, len(d))
        if end > len(d):
            d.extend(bytes(end - len(d)))
        if off < end:
            d[off:end] = bytes(end - off)
        self.compare(v, max(0, off - BLK), n + 2 * BLK)

    def op_grow(self, v):
        off, n = self.span(False, 16)
        self.last = "fallocate of %d at %d" % (n, off)
        self.falloc(v, 0, off, n)
        d = self.data[v]
        if off + n > len(d):
            d.extend(bytes(off + n - len(d)))
        self.compare(v, off, n)

    def op_truncate(self, v):
        size = self.rnd.randrange(0, MAXSZ)
        if self.rnd.random() < 0.5:
            size &= ~(BLK - 1)
        self.last = "truncate to %d" % size
        d = self.data[v]
        # also through home blocks other entries point at (hc_odefrag_unshare)
        os.truncate(self.path(v), size)
        if size < len(d):
            del d[size:]
        else:
            d.extend(bytes(size - len(d)))
        self.compare(v, max(0, size - 2 * BLK), 4 * BLK)

    def op_copy(self, v):
        src = self.rnd.choice(VOLS)
        aligned = self.rnd.random() < 0.7
        ssize = len(self.data[src])
        if ssize == 0:
            return
        soff, n = self.span(aligned, 48)
        soff %= max(1, ssize)
        if aligned:
            soff &= ~(BLK - 1)
        n = min(n, ssize - soff)
        doff = self.span(aligned)[0]
        if src == v and soff < doff + n and doff < soff + n:
            return  # overlapping copies inside one file: EINVAL by contract
        if n <= 0:
            return
        self.last = "copy_file_range of %d from %s@%d to @%d" % (n, src, soff, doff)
        fi = os.open(self.path(src), os.O_RDONLY)
        fo = os.open(self.path(v), os.O_WRONLY)
        try:
            done = 0
            while done < n:
                try:
                    k = os.copy_file_range(fi, fo, n - done, soff + done, doff + done)
                except OSError as e:
                    if e.errno not in (errno.EXDEV, errno.EOPNOTSUPP) or done:
                        raise
                    # what cp does: copy the bytes itself
                    buf = os.pread(fi, n, soff)
                    k = os.pwrite(fo, buf, doff)
                if k <= 0:
                    die("%s: %s returned %d after %d" % (v, self.last, k, done))
                done += k
        except OSError as e:
            die("%s: %s: %s" % (v, self.last, e.strerror))
        finally:
            os.close(fi)
            os.close(fo)
        self.model_write(v, doff, bytes(self.data[src][soff:soff + n]))
        self.compare(v, doff, n)
        self.compare(src, soff, n)

    def op_rename(self, v):
        dom = v.split("/")[0]
        tmp = dom + "/tmp-rename"
        self.last = "rename %s to %s and back" % (v, tmp)
        os.rename(self.path(v), self.path(tmp))
        os.rename(self.path(tmp), self.path(v))
        self.compare(v, 0, len(self.data[v]))

    def op_recreate(self, v):
        self.last = "unlink and re-create"
        os.unlink(self.path(v))
        os.close(os.open(self.path(v), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        self.data[v] = bytearray()
        self.check_all()  # volumes sharing its blocks keep their data

    def op_fsync(self, v):
        self.last = "fsync"
        fd = os.open(self.path(v), os.O_WRONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def op_mmap(self, v):
        """Shared mapping of a ram volume (file-backed guest RAM): writes
        through memory, msync, then reads back through the mapping and pread."""
        size = len(self.data[v])
        if not v.endswith(".ram") or size < BLK:
            return
        off = self.rnd.randrange(0, size // BLK) * BLK
        n = min(self.rnd.randint(1, 16) * BLK, size - off)
        fd = os.open(self.path(v), os.O_RDWR)
        try:
            m = mmap.mmap(fd, n, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE,
                          offset=off)
        finally:
            os.close(fd)
        self.last = "mmap write of %d at %d" % (n, off)
        with m:
            if m[:] != bytes(self.data[v][off:off + n]):
                die("%s: %s: the mapping does not hold the volume's bytes" % (v, self.last))
            k = self.rnd.randrange(0, n)
            buf = self.content(min(n - k, self.rnd.randint(1, 3 * BLK)), False)
            m[k:k + len(buf)] = buf
            m.flush()
        self.model_write(v, off + k, buf)
        self.compare(v, off, n, direct=self.rnd.random() < 0.3)

    def op_seek(self, v):
        size = len(self.data[v])
        if size == 0:
            return
        off = self.rnd.randrange(0, size)
        fd = os.open(self.path(v), os.O_RDONLY)
        try:
            h = os.lseek(fd, off, SEEK_HOLE)
            try:
                d = os.lseek(fd, h, SEEK_DATA) if h < size else size
            except OSError as e:
                if e.errno != errno.ENXIO:
                    raise
                d = size
        finally:
            os.close(fd)
        self.last = "SEEK_HOLE from %d (%d, next data %d)" % (off, h, d)
        if h < off or h > size or d < h:
            die("%s: %s out of order (size %d)" % (v, self.last, size))
        if any(self.data[v][h:d]):
            k = h + next(i for i, b in enumerate(self.data[v][h:d]) if b)
            die("%s: %s: byte %d of the hole holds data in the model" % (v, self.last, k))

    OPS = [("write", 30), ("read", 12), ("punch", 10), ("grow", 3), ("truncate", 4),
           ("copy", 14), ("rename", 2), ("recreate", 1), ("fsync", 5), ("seek", 6),
           ("mmap", 8)]

    # ---------------------------------------------------------- state
    def load(self):
        for dom in ("d0", "d1"):
            os.makedirs(self.path(dom), exist_ok=True)
        os.makedirs(self.state, exist_ok=True)
        for v in VOLS:
            sp = os.path.join(self.state, v.replace("/", "_"))
            if os.path.exists(sp):
                with open(sp, "rb") as f:
                    self.data[v] = bytearray(f.read())
            else:
                self.data[v] = bytearray()
                os.close(os.open(self.path(v), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
        self.last = "the remount"
        self.check_all()

    def save(self):
        for v in VOLS:
            self.op_fsync(v)
            with open(os.path.join(self.state, v.replace("/", "_")), "wb") as f:
                f.write(self.data[v])

    def run(self, n):
        names = [o for o, w in self.OPS for _ in range(w)]
        for _ in range(n):
            v = self.rnd.choice(VOLS)
            try:
                getattr(self, "op_" + self.rnd.choice(names))(v)
            except OSError as e:
                die("%s: %s: %s" % (v, self.last, e.strerror))
            self.ops += 1
        self.last = "the last operation"
        self.check_all()


def main():
    if len(sys.argv) != 5:
        sys.exit("usage: model.py MOUNT STATE SEED OPS")
    m = Model(sys.argv[1], sys.argv[2], random.Random(int(sys.argv[3])))
    m.load()
    m.run(int(sys.argv[4]))
    m.save()
    print("%d operations, sizes %s" % (m.ops, " ".join(
        "%s=%d" % (v, len(m.data[v])) for v in VOLS)))


if __name__ == "__main__":
    main()
