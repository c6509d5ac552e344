#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Bad input gets a clear error and loses nothing (I7).  The daemon must
# refuse, with exactly one line naming the problem, a non-zero exit and no
# change in the backing directory: a non-empty backing directory without a
# superblock, both superblock copies corrupt, a superblock of a newer major
# version (made with a pure-Python XXH64, the checksum of the copy), an
# unknown -o option, a bad or too large cache size, an unknown io engine, a
# missing mountpoint or backing directory, a backing directory in use by
# another daemon.  One corrupt copy alone is not fatal (the other is used).
# On a mount: I/O past the 16 TiB volume limit (EFBIG), I/O through a
# descriptor of a deleted volume, and a backing file system that fills up
# (an ext4 on a loop device): the writer gets ENOSPC, every byte that was
# acknowledged is stored, and after removing the volume the mount works.

. "$(dirname "$0")/common.sh"

MiB=$((1024 * 1024))
H=$HC_SCRATCH
N=0

# The loop-mounted ext4 file systems must go after the daemons writing into
# them and before their loop devices: unmount our FUSE mounts, wait for the
# daemons, then the ext4 mounts, then the loops; then the common trap.
EXT_MOUNTS=()
bi_cleanup() {
	local rc=$? i m
	set +e
	for m in "${HC_MOUNTS[@]}"; do
		grep -q " $m fuse" /proc/mounts && fusermount3 -u "$m"
	done
	for i in "${HC_PIDS[@]}"; do
		hc_wait_gone "$i" 30 || kill "$i"
	done
	for ((i = ${#EXT_MOUNTS[@]} - 1; i >= 0; i--)); do
		mountpoint -q "${EXT_MOUNTS[i]}" && umount "${EXT_MOUNTS[i]}"
	done
	for ((i = ${#HC_LOOPS[@]} - 1; i >= 0; i--)); do
		hc_loop_detach "${HC_LOOPS[i]}"
	done
	(exit $rc)
	hc_cleanup
}
trap bi_cleanup EXIT

# refuse WHAT PATTERN BACKING MOUNTPOINT [daemon args...]: the daemon must
# exit non-zero with one line matching PATTERN (grep -E) and leave BACKING
# (and MOUNTPOINT) as they were.  A wrong message is recorded in BAD (the
# scenario goes on, to show every such problem, and fails at the end); a
# mount or a changed backing directory fails at once.
BAD=()
refuse() {
	local what=$1 pat=$2 back=$3 mnt=$4
	shift 4
	N=$((N + 1))
	local out=$H/refuse.$N rc=0
	local before after mbefore mafter
	before=$(hc_tree_sum "$back")
	mbefore=$(hc_tree_sum "$mnt")
	HC_MOUNTS+=("$mnt")	# in case it mounts after all
	timeout 30 "$HECACHE_FS" "$back" "$mnt" -f "$@" >"$out" 2>&1 || rc=$?
	if grep -q " $mnt fuse" /proc/mounts; then
		fusermount3 -u "$mnt"
		hc_fail "$what: the daemon mounted instead of refusing"
	fi
	[ "$rc" != 124 ] || hc_fail "$what: the daemon did not exit (killed after 30 s)"
	[ "$rc" != 0 ] || hc_fail "$what: exit status 0, expected a refusal"
	after=$(hc_tree_sum "$back")
	[ "$before" = "$after" ] || hc_fail "$what: the backing directory $back changed:
$(diff <(echo "$before") <(echo "$after"))"
	mafter=$(hc_tree_sum "$mnt")
	[ "$mbefore" = "$mafter" ] || hc_fail "$what: the mountpoint $mnt changed"
	local lines nl
	lines=$(hc_start_lines "$out")
	nl=$(printf '%s' "$lines" | grep -c '')
	if [ "$nl" != 1 ]; then
		BAD+=("$what: expected one line, got $nl:
$(printf '%s\n' "$lines" | sed 's/^/    | /')")
	elif ! printf '%s\n' "$lines" | grep -qE -- "$pat"; then
		BAD+=("$what: message '$lines' does not match /$pat/")
	else
		hc_info "refused ($what): $lines"
	fi
}

# sb_edit FILE COPY MAJOR_DELTA|corrupt: edits one superblock copy with
# python3 (stdlib only: XXH64 from xxh64.py beside this script), re-checksummed
# unless "corrupt".  Prints the generation of each copy when COPY is "gens".
sb_edit() {
	python3 - "$@" <<'EOF'
import os, struct, sys
sys.dont_write_bytecode = True	# no __pycache__ in the source tree
sys.path.insert(0, os.environ["HC_INTEGRATION_DIR"])
from xxh64 import xxh64
path, copy = sys.argv[1], sys.argv[2]
d = bytearray(open(path, "rb").read())
# the checksums of the copies we read or edit must be XXH64 as we know it
for c in ((0, 4096) if copy == "gens" else (int(copy) * 4096,)):
    if xxh64(bytes(d[c:c + 256])) != struct.unpack_from('<Q', d, c + 256)[0]:
        sys.exit("%s: copy at %d does not check out with our XXH64" % (path, c))
if copy == "gens":
    print(*(struct.unpack_from('<Q', d, c + 32)[0] for c in (0, 4096)))
    sys.exit(0)
c, how = int(copy) * 4096, sys.argv[3]
if how == "corrupt":
    d[c + 100] ^= 0x5a
else:
    major = struct.unpack_from('<H', d, c + 8)[0]
    struct.pack_into('<H', d, c + 8, major + int(how))
    struct.pack_into('<Q', d, c + 256, xxh64(bytes(d[c:c + 256])))
open(path, "r+b").write(d)
EOF
}

MNT=$H/mnt
mkdir -p "$MNT"

# --- a populated backing directory, to refuse things over ------------------------
GOOD=$H/good
hc_mount "$GOOD" "$MNT" -o cache=32M
mkdir "$MNT/vm1" && head -c $MiB /dev/urandom >"$H/data" && cp "$H/data" "$MNT/vm1/disk" ||
	hc_fail "populating $GOOD failed"
hc_umount "$MNT"
EMPTY=$H/empty
mkdir -p "$EMPTY"

# --- refusals on the command line -------------------------------------------------
memkb=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
for b in "$EMPTY" "$GOOD"; do
	refuse "unknown -o option" "frobnicate" "$b" "$MNT" -o frobnicate
	refuse "unknown -o option among good ones" "frobnicate" "$b" "$MNT" -o cache=32M,frobnicate,io=sync
	refuse "cache=junk" "cache size.*junk" "$b" "$MNT" -o cache=junk
	refuse "cache larger than memory" "larger than this machine's memory" "$b" "$MNT" -o cache=$((memkb * 2))K
	refuse "cache=1K" "too small" "$b" "$MNT" -o cache=1K
	refuse "io=bogus" "io engine.*bogus" "$b" "$MNT" -o io=bogus
	refuse "missing mountpoint" "$H/no-such-mnt.*No such file" "$b" "$H/no-such-mnt"
	refuse "mountpoint is a file" "not a directory" "$b" "$H/data"
done
refuse "missing backing directory" "$H/no-such-backing.*No such file" "$H/no-such-backing" "$MNT"
refuse "backing directory is a file" "not a directory" "$H/data" "$MNT"

# --- refusals of the backing directory ------------------------------------------------
FOREIGN=$H/foreign
mkdir -p "$FOREIGN/somedir"
head -c 100000 /dev/urandom >"$FOREIGN/image.raw"
refuse "non-empty backing directory without hecache.sb" "$FOREIGN.*not empty.*hecache.sb" "$FOREIGN" "$MNT"

# in use by another daemon
hc_mount "$GOOD" "$MNT" -o cache=32M
mkdir -p "$H/mnt2"
refuse "backing directory in use" "$GOOD.*in use" "$GOOD" "$H/mnt2"
cmp "$H/data" "$MNT/vm1/disk" || hc_fail "data changed while a second daemon was refused"
hc_umount "$MNT"

# both copies corrupt
cp -a "$GOOD" "$H/corrupt2"
sb_edit "$H/corrupt2/hecache.sb" 0 corrupt && sb_edit "$H/corrupt2/hecache.sb" 1 corrupt ||
	hc_fail "cannot corrupt the superblock copies"
refuse "both superblock copies corrupt" "hecache.sb.*(corrupt|no valid)" "$H/corrupt2" "$MNT"

# newest copy of a newer major version (the older one is fine): refused
cp -a "$GOOD" "$H/newer"
read -r g0 g1 < <(sb_edit "$H/newer/hecache.sb" gens) || hc_fail "cannot read superblock generations"
newest=$((g1 > g0 ? 1 : 0))
sb_edit "$H/newer/hecache.sb" $newest 1 || hc_fail "cannot make a newer-version superblock"
refuse "superblock of a newer major version" "hecache.sb.*version.*newer" "$H/newer" "$MNT"
cp -a "$GOOD" "$H/newer2"
sb_edit "$H/newer2/hecache.sb" 0 1 && sb_edit "$H/newer2/hecache.sb" 1 1 ||
	hc_fail "cannot make newer-version superblocks"
refuse "both superblock copies of a newer major version" "hecache.sb.*version.*newer" "$H/newer2" "$MNT"

for b in "${BAD[@]}"; do
	echo "FAIL: $HC_TESTNAME: $b" >&2
done

# one corrupt copy (the newest): mounts from the other one, says so, data intact
cp -a "$GOOD" "$H/corrupt1"
read -r g0 g1 < <(sb_edit "$H/corrupt1/hecache.sb" gens)
newest=$((g1 > g0 ? 1 : 0))
sb_edit "$H/corrupt1/hecache.sb" $newest corrupt
logstart=$(wc -l <"$H/daemon.log")
hc_mount "$H/corrupt1" "$MNT" -o cache=32M
tail -n +$((logstart + 1)) "$H/daemon.log" | grep -q "hecache.sb.*offset $((newest * 4096)).*bad" ||
	hc_fail "one corrupt superblock copy: no warning naming it"
cmp "$H/data" "$MNT/vm1/disk" || hc_fail "one corrupt superblock copy: data differs"
hc_umount "$MNT"
sb_edit "$H/corrupt1/hecache.sb" gens >/dev/null || hc_fail "superblock not repaired after a mount"

# --- I/O past the volume limit, I/O on a deleted volume -----------------------------------
hc_mount "$GOOD" "$MNT" -o cache=32M
python3 - "$MNT/vm1" <<'EOF' || hc_fail "I/O past the 16 TiB limit was not refused with EFBIG"
import errno, os, sys
d = sys.argv[1]
fd = os.open(d + "/big", os.O_RDWR | os.O_CREAT, 0o644)
def efbig(what, f):
    try:
        f()
    except OSError as e:
        if e.errno != errno.EFBIG:
            sys.exit("%s: %s, expected EFBIG" % (what, e))
        return
    sys.exit("%s: no error, expected EFBIG" % what)
efbig("pwrite at 2^44", lambda: os.pwrite(fd, b"x" * 4096, 1 << 44))
efbig("pwrite across 2^44", lambda: os.pwrite(fd, b"x" * 8192, (1 << 44) - 4096))
efbig("truncate to 2^44 + 1", lambda: os.ftruncate(fd, (1 << 44) + 1))
efbig("fallocate past 2^44", lambda: os.posix_fallocate(fd, (1 << 44) - 4096, 8192))
if os.fstat(fd).st_size != 0:
    sys.exit("size after refused I/O: %d, expected 0" % os.fstat(fd).st_size)
# a read far past the end is an empty read, not an error
if os.pread(fd, 4096, 1 << 44) != b"":
    sys.exit("read past the end returned data")
os.close(fd)
os.unlink(d + "/big")
EOF

head -c $((4 * MiB)) /dev/urandom >"$H/del1"
head -c $((4 * MiB)) /dev/urandom >"$H/del2"
python3 - "$MNT/vm1/deleted" "$H/del1" "$H/del2" <<'EOF' || hc_fail "I/O through the descriptor of a deleted volume failed"
import os, sys
path, a, b = sys.argv[1], open(sys.argv[2], "rb").read(), open(sys.argv[3], "rb").read()
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, a, 0)
os.unlink(path)
try:
    os.stat(path)
    sys.exit("deleted volume still visible")
except FileNotFoundError:
    pass
if os.pread(fd, len(a), 0) != a:
    sys.exit("data written before the unlink reads back wrong")
os.pwrite(fd, b, len(a))          # write-back data of a deleted volume
if os.pread(fd, len(a) + len(b), 0) != a + b:
    sys.exit("data written after the unlink reads back wrong")
os.ftruncate(fd, len(a) + 4096)
if os.fstat(fd).st_size != len(a) + 4096:
    sys.exit("truncate of the deleted volume not seen by fstat")
os.fsync(fd)
os.close(fd)
EOF
[ ! -e "$GOOD/vm1/deleted" ] || hc_fail "deleted volume still in the backing directory"
# its cached blocks are gone with it: nothing dirty left behind, and a new
# volume of the same name starts empty and holds its own data
for _ in $(seq 20); do [ "$(hc_stat "$MNT" vm1 dirty)" = 0 ] && break; sleep 0.1; done
[ "$(hc_stat "$MNT" vm1 dirty)" = 0 ] || hc_fail "dirty blocks of the deleted volume left: $(hc_stat "$MNT" vm1 dirty)"
: >"$MNT/vm1/deleted" && [ "$(stat -c %s "$MNT/vm1/deleted")" = 0 ] || hc_fail "re-created volume not empty"
cp "$H/del2" "$MNT/vm1/deleted" && cmp "$H/del2" "$MNT/vm1/deleted" || hc_fail "re-created volume reads wrong"
cmp "$H/data" "$MNT/vm1/disk" || hc_fail "an unrelated volume changed"
hc_umount "$MNT"
cmp "$H/del2" "$GOOD/vm1/deleted" || hc_fail "re-created volume's home file is wrong after unmount"

# --- the backing file system fills up -------------------------------------------------
# make_ext4 NAME MIB: an ext4 on a loop device over a file in the scratch dir;
# sets EXT (its mountpoint).
make_ext4() {
	local img=$H/$1.img dev
	truncate -s "$2M" "$img" && mkfs.ext4 -q -F -m 0 "$img" ||
		hc_fail "mkfs.ext4 of a $2 MiB image failed"
	dev=$(losetup --find --show "$img") || hc_skip "no loop device available"
	HC_LOOPS+=("$dev")
	EXT=$H/$1.mnt
	mkdir -p "$EXT"
	mount -t ext4 "$dev" "$EXT" || hc_fail "mount of the ext4 on $dev failed"
	EXT_MOUNTS+=("$EXT")
	# space to give back once the file system is full
	head -c $((8 * MiB)) /dev/zero >"$EXT/ballast" && sync "$EXT/ballast" ||
		hc_fail "cannot write the ballast file on $EXT"
}

# fill DESC VOLUME SRC: writes SRC (larger than the file system) into VOLUME
# with O_DIRECT and fsync: dd must fail with ENOSPC.  Every byte dd got an
# acknowledgement for must read back; once some space is back (the ballast
# file made by make_ext4 is removed) an fsync must succeed, i.e. all the
# acknowledged data is really stored; and, as the daemon switches to
# write-through when space runs low "so that ENOSPC reaches the writer", a
# write must have failed, not only the final fsync.
fill() {
	local desc=$1 vol=$2 src=$3 rc=0 copied
	dd if="$src" of="$vol" bs=1M oflag=direct conv=fsync 2>"$H/dd.err" || rc=$?
	[ "$rc" != 0 ] || hc_fail "$desc: dd wrote $(stat -c %s "$src") bytes into a smaller file system and reported success"
	grep -q "No space left on device" "$H/dd.err" ||
		hc_fail "$desc: dd failed, but not with ENOSPC: $(cat "$H/dd.err")"
	copied=$(awk '/bytes/ && /copied/ { print $1 }' "$H/dd.err")
	[ -n "$copied" ] && [ "$copied" -gt 0 ] || hc_fail "$desc: dd wrote nothing before ENOSPC"
	local mnt dirty fsmib where=write
	grep -q "error writing" "$H/dd.err" || where=fsync
	mnt=$(dirname "$(dirname "$vol")")
	dirty=$(hc_stat "$mnt" total dirty)
	fsmib=$(($(stat -f -c '%b * %S' "$EXT") / MiB))
	hc_info "$desc: dd got ENOSPC at $where after $((copied / MiB)) MiB acknowledged ($fsmib MiB file system, $((dirty * 4096 / MiB)) MiB dirty in the cache)"
	cmp -n "$copied" "$src" "$vol" || hc_fail "$desc: the $copied acknowledged bytes do not read back"
	rm -f "$EXT/ballast"
	python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDWR); os.fsync(fd)' "$vol" 2>"$H/fsync.err" ||
		hc_fail "$desc: acknowledged data was not stored: after ENOSPC (at $where, $((copied / MiB)) MiB acknowledged), with 8 MiB given back, fsync still fails ($(tail -1 "$H/fsync.err" | sed 's/.*] //')): $(hc_stat "$mnt" total dirty) acknowledged blocks dirty in the cache, $(df -k --output=avail "$EXT" | tail -1 | tr -d ' ') KiB free"
	cmp -n "$copied" "$src" "$vol" || hc_fail "$desc: the $copied acknowledged bytes do not read back after fsync"
	[ "$where" = write ] ||
		hc_fail "$desc: every write of $((copied / MiB)) MiB was acknowledged, ENOSPC came only at fsync"
	FILLED=$copied
}

head -c $((320 * MiB)) /dev/urandom >"$H/big"

# (a) a small file system: below the reserve, every write is write-through
make_ext4 small 64
hc_mount "$EXT/backing" "$H/mnt-small" -o cache=64M
mkdir "$H/mnt-small/vm" || hc_fail "mkdir on the small backing failed"
fill "64 MiB backing" "$H/mnt-small/vm/vol" "$H/big"
rm "$H/mnt-small/vm/vol" || hc_fail "removing the volume after ENOSPC failed"
head -c $((8 * MiB)) /dev/urandom >"$H/after"
cp "$H/after" "$H/mnt-small/vm/after" && cmp "$H/after" "$H/mnt-small/vm/after" ||
	hc_fail "the mount does not work after ENOSPC and removing the volume"
python3 -c 'import os, sys; fd = os.open(sys.argv[1], os.O_RDWR); os.fsync(fd)' "$H/mnt-small/vm/after" ||
	hc_fail "fsync after ENOSPC and cleanup failed"
hc_umount "$H/mnt-small"
cmp "$H/after" "$EXT/backing/vm/after" || hc_fail "home file wrong after ENOSPC, cleanup and unmount"

# (b) a larger file system: write-back first, then the daemon must switch to
# write-through in time for the dirty data to still fit
make_ext4 large 256
hc_mount "$EXT/backing" "$H/mnt-large" -o cache=192M
mkdir "$H/mnt-large/vm" || hc_fail "mkdir on the large backing failed"
fill "256 MiB backing, 192 MiB cache" "$H/mnt-large/vm/vol" "$H/big"
hc_umount "$H/mnt-large"
cmp -n "$FILLED" "$H/big" "$EXT/backing/vm/vol" || hc_fail "home file lacks acknowledged data after unmount"
[ "${#BAD[@]}" = 0 ] || hc_fail "${#BAD[@]} refusal(s) without one clear line (listed above)"
hc_info "PASS"
