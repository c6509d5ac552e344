#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# POSIX operations on domains and volumes, on a real mount: mkdir of domains
# (and refusal of volumes or directories anywhere else), create, write and
# read back (cmp with a reference file, unaligned sizes), truncate grow and
# shrink, rename of a volume within its domain (and EXDEV across domains),
# rename of a domain, unlink, unlink while open (the data stays readable
# through the open descriptor), rmdir of a non-empty domain (ENOTEMPTY),
# readdir, stat sizes, statfs, fallocate (allocate, punch hole, zero range),
# SEEK_DATA/SEEK_HOLE, a ram volume mapped shared and written through the
# mapping.  Then unmount, mount again: every name, size and byte is still
# there, and the home files in the backing directory hold the same bytes.

. "$(dirname "$0")/common.sh"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
REF=$HC_SCRATCH/ref
mkdir -p "$REF"
MiB=$((1024 * 1024))

# expect_errno ERRNO_NAME PYTHON_STATEMENTS: the statements must raise
# OSError with that errno.
expect_errno() {
	local want=$1 code=$2
	python3 - "$want" "$code" <<'EOF' || hc_fail "expected $want from: $code"
import errno, os, sys
want, code = sys.argv[1], sys.argv[2]
try:
    exec(code)
except OSError as e:
    if e.errno == getattr(errno, want):
        sys.exit(0)
    print("got %s (%s), wanted %s" % (errno.errorcode.get(e.errno), e, want), file=sys.stderr)
    sys.exit(1)
print("no error, wanted %s" % want, file=sys.stderr)
sys.exit(1)
EOF
}

size_of() { stat -c %s "$1"; }

# check_vol NAME: the volume in the mount equals $REF/NAME (size and bytes).
check_vol() {
	local v=$1
	[ -f "$MNT/$v" ] || hc_fail "$v: missing in the mount"
	[ "$(size_of "$MNT/$v")" = "$(size_of "$REF/$v")" ] ||
		hc_fail "$v: size $(size_of "$MNT/$v"), expected $(size_of "$REF/$v")"
	cmp "$REF/$v" "$MNT/$v" || hc_fail "$v: contents differ from the reference"
}

hc_mount "$BACK" "$MNT" -o cache=64M
[ -f "$BACK/hecache.sb" ] || hc_fail "empty backing directory was not formatted (no hecache.sb)"

# --- domains, and nothing else at the root ------------------------------
mkdir "$MNT/vm1" "$MNT/vm2" "$MNT/tmpdom" || hc_fail "mkdir of domains failed"
[ -d "$BACK/vm1" ] || hc_fail "domain vm1 has no directory in the backing directory"
expect_errno EEXIST "os.mkdir('$MNT/vm1')"
expect_errno EPERM "os.open('$MNT/stray', os.O_CREAT | os.O_WRONLY, 0o644)"
[ ! -e "$MNT/stray" ] && [ ! -e "$BACK/stray" ] || hc_fail "a volume outside a domain was created"
expect_errno EPERM "os.mkdir('$MNT/vm1/sub')"
expect_errno EPERM "os.symlink('x', '$MNT/vm1/link')"

# --- create, write, read --------------------------------------------------
head -c $((8 * MiB)) /dev/urandom >"$REF/disk.img"
cp "$REF/disk.img" "$MNT/vm1/disk.img" || hc_fail "cp of 8 MiB into vm1/disk.img failed"
mkdir -p "$REF/vm1" "$REF/vm2"
mv "$REF/disk.img" "$REF/vm1/disk.img"
check_vol vm1/disk.img
# unaligned size and offsets
head -c $((3 * MiB + 1234)) /dev/urandom >"$REF/vm1/odd"
dd if="$REF/vm1/odd" of="$MNT/vm1/odd" bs=777 status=none || hc_fail "dd bs=777 failed"
check_vol vm1/odd
# overwrite in the middle, across block boundaries
head -c 10000 /dev/urandom >"$HC_SCRATCH/patch"
dd if="$HC_SCRATCH/patch" of="$REF/vm1/odd" bs=10000 seek=4095 oflag=seek_bytes conv=notrunc status=none
dd if="$HC_SCRATCH/patch" of="$MNT/vm1/odd" bs=10000 seek=4095 oflag=seek_bytes conv=notrunc status=none ||
	hc_fail "overwrite at offset 4095 failed"
check_vol vm1/odd
# the xattr names the kind
[ "$(getfattr --only-values -n user.hecache.kind "$MNT/vm1/odd" 2>/dev/null)" = disk ] ||
	hc_fail "vm1/odd: kind is not disk"

# --- truncate ------------------------------------------------------------
cp "$REF/vm1/odd" "$REF/vm1/trunc"
cp "$REF/vm1/odd" "$MNT/vm1/trunc" || hc_fail "cp to vm1/trunc failed"
truncate -s $((5 * MiB + 5)) "$MNT/vm1/trunc" "$REF/vm1/trunc" || hc_fail "truncate grow failed"
check_vol vm1/trunc
truncate -s $((MiB + 4097)) "$MNT/vm1/trunc" "$REF/vm1/trunc" || hc_fail "truncate shrink failed"
check_vol vm1/trunc
# grow again: the cut-off bytes must not come back
truncate -s $((2 * MiB)) "$MNT/vm1/trunc" "$REF/vm1/trunc" || hc_fail "truncate regrow failed"
check_vol vm1/trunc
expect_errno EISDIR "os.truncate('$MNT/vm1', 0)"

# --- rename ----------------------------------------------------------------
head -c $((MiB + 100)) /dev/urandom >"$REF/vm1/b"
cp "$REF/vm1/b" "$MNT/vm1/a" || hc_fail "cp to vm1/a failed"
mv "$MNT/vm1/a" "$MNT/vm1/b" || hc_fail "rename vm1/a -> vm1/b failed"
[ ! -e "$MNT/vm1/a" ] || hc_fail "vm1/a still exists after rename"
[ -f "$BACK/vm1/b" ] && [ ! -e "$BACK/vm1/a" ] || hc_fail "rename not reflected in the backing directory"
check_vol vm1/b
# rename over an existing volume replaces it
head -c 5000 /dev/urandom >"$REF/vm1/c"
cp "$REF/vm1/c" "$MNT/vm1/c2" || hc_fail "cp to vm1/c2 failed"
echo junk >"$MNT/vm1/c" || hc_fail "create vm1/c failed"
mv "$MNT/vm1/c2" "$MNT/vm1/c" || hc_fail "rename vm1/c2 over vm1/c failed"
check_vol vm1/c
# a volume stays in its domain
expect_errno EXDEV "os.rename('$MNT/vm1/c', '$MNT/vm2/c')"
expect_errno EXDEV "os.rename('$MNT/vm1/c', '$MNT/c')"
# domain rename
head -c 70000 /dev/urandom >"$HC_SCRATCH/t"
cp "$HC_SCRATCH/t" "$MNT/tmpdom/vol" || hc_fail "cp to tmpdom/vol failed"
mv "$MNT/tmpdom" "$MNT/vm3" || hc_fail "rename of domain tmpdom -> vm3 failed"
mkdir -p "$REF/vm3" && mv "$HC_SCRATCH/t" "$REF/vm3/vol"
[ ! -e "$MNT/tmpdom" ] && [ -d "$BACK/vm3" ] && [ ! -e "$BACK/tmpdom" ] ||
	hc_fail "domain rename not complete (mount or backing directory)"
check_vol vm3/vol
# the renamed domain takes new volumes
head -c 4096 /dev/urandom >"$REF/vm3/new"
cp "$REF/vm3/new" "$MNT/vm3/new" || hc_fail "create in the renamed domain failed"
check_vol vm3/new

# --- unlink, unlink while open ------------------------------------------------
echo gone >"$MNT/vm2/gone" || hc_fail "create vm2/gone failed"
rm "$MNT/vm2/gone" || hc_fail "unlink vm2/gone failed"
[ ! -e "$MNT/vm2/gone" ] && [ ! -e "$BACK/vm2/gone" ] || hc_fail "vm2/gone still exists after unlink"
head -c $((2 * MiB + 3)) /dev/urandom >"$HC_SCRATCH/open"
cp "$HC_SCRATCH/open" "$MNT/vm2/open" || hc_fail "cp to vm2/open failed"
exec 3<"$MNT/vm2/open"
rm "$MNT/vm2/open" || hc_fail "unlink of the open vm2/open failed"
ls "$MNT/vm2" | grep -qx open && hc_fail "unlinked vm2/open still listed"
cmp "$HC_SCRATCH/open" - <&3 || hc_fail "data of the unlinked, still open vm2/open is not readable"
exec 3<&-
expect_errno ENOENT "os.open('$MNT/vm2/open', os.O_RDONLY)"
# the name can be used again, for a new and empty volume
: >"$MNT/vm2/open" || hc_fail "re-create of vm2/open failed"
[ "$(size_of "$MNT/vm2/open")" = 0 ] || hc_fail "re-created vm2/open is not empty"
rm "$MNT/vm2/open"

# --- rmdir -------------------------------------------------------------------
out=$(rmdir "$MNT/vm1" 2>&1) && hc_fail "rmdir of the non-empty domain vm1 succeeded"
case $out in *"not empty"*) ;; *) hc_fail "rmdir of non-empty vm1: '$out', expected ENOTEMPTY" ;; esac
expect_errno ENOTEMPTY "os.rmdir('$MNT/vm1')"
mkdir "$MNT/empty" && rmdir "$MNT/empty" || hc_fail "mkdir + rmdir of an empty domain failed"
[ ! -e "$BACK/empty" ] || hc_fail "removed domain still in the backing directory"

# --- fallocate ---------------------------------------------------------------
fallocate -l $((16 * MiB)) "$MNT/vm2/falloc" || hc_fail "fallocate -l 16M failed"
head -c $((16 * MiB)) /dev/zero >"$REF/vm2/falloc"
check_vol vm2/falloc
alloc=$(($(stat -c %b "$BACK/vm2/falloc") * $(stat -c %B "$BACK/vm2/falloc")))
[ "$alloc" -ge $((16 * MiB)) ] || hc_fail "fallocate -l 16M: home file has $alloc bytes allocated"

head -c $((8 * MiB)) /dev/urandom >"$REF/vm2/holes"
cp "$REF/vm2/holes" "$MNT/vm2/holes" || hc_fail "cp to vm2/holes failed"
# aligned punch: 1M..3M, unaligned punch: 5M+100 for 10000 bytes
fallocate --punch-hole -o $((1 * MiB)) -l $((2 * MiB)) "$MNT/vm2/holes" ||
	hc_fail "fallocate --punch-hole (aligned) failed"
fallocate --punch-hole -o $((5 * MiB + 100)) -l 10000 "$MNT/vm2/holes" ||
	hc_fail "fallocate --punch-hole (unaligned) failed"
dd if=/dev/zero of="$REF/vm2/holes" bs=$MiB seek=1 count=2 conv=notrunc status=none
dd if=/dev/zero of="$REF/vm2/holes" bs=10000 seek=$((5 * MiB + 100)) count=1 oflag=seek_bytes conv=notrunc status=none
check_vol vm2/holes
# zero range, keeping and growing the size
fallocate --zero-range -o $((6 * MiB + 10)) -l $((MiB)) "$MNT/vm2/holes" ||
	hc_fail "fallocate --zero-range failed"
dd if=/dev/zero of="$REF/vm2/holes" bs=$MiB seek=$((6 * MiB + 10)) count=1 oflag=seek_bytes conv=notrunc status=none
check_vol vm2/holes
fallocate --zero-range -o $((8 * MiB - 4096)) -l $((2 * MiB)) "$MNT/vm2/holes" ||
	hc_fail "fallocate --zero-range past the end failed"
dd if=/dev/zero of="$REF/vm2/holes" bs=$((2 * MiB)) seek=$((8 * MiB - 4096)) count=1 oflag=seek_bytes conv=notrunc status=none
check_vol vm2/holes
# punching without KEEP_SIZE is refused (the kernel requires it anyway)
expect_errno EOPNOTSUPP "
import ctypes, ctypes.util
libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
fd = os.open('$MNT/vm2/holes', os.O_RDWR)
if libc.fallocate(fd, 0x02, ctypes.c_long(0), ctypes.c_long(4096)) != 0:
    e = ctypes.get_errno()
    raise OSError(e, os.strerror(e))"

# --- SEEK_DATA / SEEK_HOLE ------------------------------------------------------
truncate -s $((64 * MiB)) "$MNT/vm2/sparse" || hc_fail "truncate -s 64M vm2/sparse failed"
head -c $((MiB)) /dev/urandom >"$HC_SCRATCH/chunk"
dd if="$HC_SCRATCH/chunk" of="$MNT/vm2/sparse" bs=$MiB seek=16 conv=notrunc status=none ||
	hc_fail "write at 16M into vm2/sparse failed"
cp --sparse=always "$MNT/vm2/sparse" "$REF/vm2/sparse"
check_vol vm2/sparse
python3 - "$MNT/vm2/sparse" <<'EOF' || hc_fail "SEEK_DATA/SEEK_HOLE on vm2/sparse gave wrong offsets"
import errno, os, sys
M = 1 << 20
fd = os.open(sys.argv[1], os.O_RDONLY)
def seek(off, how):
    try:
        return os.lseek(fd, off, how)
    except OSError as e:
        return errno.errorcode[e.errno]
got = {
    "data from 0": seek(0, os.SEEK_DATA),
    "hole from 0": seek(0, os.SEEK_HOLE),
    "hole from 16M": seek(16 * M, os.SEEK_HOLE),
    "data from 17M": seek(17 * M, os.SEEK_DATA),
    "data past end": seek(64 * M, os.SEEK_DATA),
    "hole from 17M": seek(17 * M, os.SEEK_HOLE),
}
want = {
    "data from 0": 16 * M,
    "hole from 0": 0,
    "hole from 16M": 17 * M,
    "data from 17M": "ENXIO",
    "data past end": "ENXIO",
    "hole from 17M": 17 * M,
}
bad = [k for k in want if got[k] != want[k]]
for k in bad:
    print("%s: got %s, want %s" % (k, got[k], want[k]), file=sys.stderr)
sys.exit(1 if bad else 0)
EOF

# --- a ram volume, mapped shared and written through the mapping -----------------
truncate -s $((8 * MiB)) "$MNT/vm1/guest.ram" || hc_fail "truncate of vm1/guest.ram failed"
[ "$(getfattr --only-values -n user.hecache.kind "$MNT/vm1/guest.ram" 2>/dev/null)" = ram ] ||
	hc_fail "vm1/guest.ram: kind is not ram"
head -c $((8 * MiB)) /dev/urandom >"$REF/vm1/guest.ram"
python3 - "$MNT/vm1/guest.ram" "$REF/vm1/guest.ram" <<'EOF' || hc_fail "mmap MAP_SHARED write of vm1/guest.ram failed"
import mmap, os, sys
src = open(sys.argv[2], "rb").read()
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, len(src), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
# pages in a scattered order, then a partial page write
step = 4096
order = list(range(0, len(src), step))
order = order[1::2] + order[0::2]
for off in order:
    m[off:off + step] = src[off:off + step]
m.flush()
if m[:] != src:
    sys.exit("mapping does not read back what was written")
m.close()
os.close(fd)
EOF
check_vol vm1/guest.ram
# a volume named exactly "ram" is kind ram too; read it through a mapping
head -c $((MiB)) /dev/urandom >"$REF/vm3/ram"
cp "$REF/vm3/ram" "$MNT/vm3/ram" || hc_fail "cp to vm3/ram failed"
python3 - "$MNT/vm3/ram" "$REF/vm3/ram" <<'EOF' || hc_fail "mmap MAP_SHARED read of vm3/ram differs"
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 0, mmap.MAP_SHARED)
sys.exit(0 if m[:] == open(sys.argv[2], "rb").read() else 1)
EOF

# --- readdir, stat, statfs -----------------------------------------------------------
[ "$(ls "$MNT" | LC_ALL=C sort | tr '\n' ' ')" = "vm1 vm2 vm3 " ] ||
	hc_fail "root listing: '$(ls "$MNT" | tr '\n' ' ')', expected vm1 vm2 vm3"
expect_list() {
	local d=$1 want
	want=$(cd "$REF/$d" && ls -A | LC_ALL=C sort | tr '\n' ' ')
	[ "$(ls -A "$MNT/$d" | LC_ALL=C sort | tr '\n' ' ')" = "$want" ] ||
		hc_fail "$d listing: '$(ls -A "$MNT/$d" | tr '\n' ' ')', expected '$want'"
}
for d in vm1 vm2 vm3; do expect_list $d; done
# readdir of many entries (more than one reply buffer)
mkdir "$MNT/many" || hc_fail "mkdir many failed"
for i in $(seq 300); do : >"$MNT/many/volume-with-a-long-name-$i"; done
[ "$(ls "$MNT/many" | wc -l)" = 300 ] || hc_fail "many: $(ls "$MNT/many" | wc -l) entries listed, expected 300"
rm -f "$MNT"/many/* && rmdir "$MNT/many" || hc_fail "removing the 300 volumes of many failed"
[ "$(stat -c %F "$MNT/vm1")" = directory ] && [ "$(stat -c %F "$MNT/vm1/odd")" = "regular file" ] ||
	hc_fail "stat types wrong"
read -r mb mf < <(stat -f -c '%b %S' "$MNT")
read -r bb bf < <(stat -f -c '%b %S' "$BACK")
[ "$((mb * mf))" = "$((bb * bf))" ] || hc_fail "statfs size of the mount ($((mb * mf))) != backing file system's ($((bb * bf)))"
df "$MNT" >/dev/null || hc_fail "df on the mount failed"

# --- unmount, mount, everything still there --------------------------------------------
hc_stats "$MNT" >"$HC_SCRATCH/stats.before" 2>/dev/null
hc_umount "$MNT"
for v in vm1/disk.img vm1/odd vm2/holes vm1/guest.ram vm3/vol; do
	cmp "$REF/$v" "$BACK/$v" || hc_fail "home file $BACK/$v differs from the reference after unmount"
done
hc_mount "$BACK" "$MNT" -o cache=64M
[ "$(ls "$MNT" | LC_ALL=C sort | tr '\n' ' ')" = "vm1 vm2 vm3 " ] ||
	hc_fail "root listing after remount: '$(ls "$MNT" | tr '\n' ' ')'"
for d in vm1 vm2 vm3; do
	expect_list $d
	for f in "$REF/$d"/*; do check_vol "$d/$(basename "$f")"; done
done
[ "$(getfattr --only-values -n user.hecache.kind "$MNT/vm1/guest.ram" 2>/dev/null)" = ram ] ||
	hc_fail "vm1/guest.ram: kind is not ram after remount"
hc_umount "$MNT"
hc_info "PASS: domains, volumes, truncate, rename, unlink, fallocate, seek, mmap, remount"
