# SPDX-License-Identifier: GPL-2.0-or-later
"""copy_file_range for the integration tests: cfr.py SRC DST "SOFF DOFF LEN"...

Copies each range (bytes) from SRC to DST (created if missing) with
os.copy_file_range, completing short copies, then fsyncs DST.  Exit 1 with
one line on stderr when a copy fails or returns 0 early.
"""
import os
import sys


def main():
    if len(sys.argv) < 4:
        sys.exit('usage: cfr.py SRC DST "SOFF DOFF LEN"...')
    fi = os.open(sys.argv[1], os.O_RDONLY)
    fo = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT, 0o644)
    for r in sys.argv[3:]:
        soff, doff, n = map(int, r.split())
        done = 0
        while done < n:
            k = os.copy_file_range(fi, fo, n - done, soff + done, doff + done)
            if k <= 0:
                sys.exit("copy_file_range returned %d after %d bytes" % (k, done))
            done += k
    os.fsync(fo)


if __name__ == "__main__":
    main()
