#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Damaged reconcile metadata gets a clear refusal and loses nothing (I5, I7;
# doc/format.md).  A backing directory with indirections (the same data in
# two volumes of one domain, zeros, a copy_file_range) is unmounted cleanly
# (meta.ckpt), changed again and the daemon SIGKILLed after fsync (records
# in meta.log, several commits).  Copies of it are then damaged:
#   - a record of meta.log that is not in the last commit (two places), and
#     a bad commit followed by an intact later one: durable records gone
#     bad, so the mount is refused naming meta.log and the bad record's
#     offset;
#   - meta.ckpt cut in its body, in its header, to nothing: refused naming
#     meta.ckpt and an offset;
#   - both superblock copies with a bad checksum: refused naming
#     hecache.sb and both offsets.
# Each refusal: the daemon exits non-zero with exactly one line matching,
# nothing is mounted, every file of the backing directory (names, sizes,
# contents, xattrs) is as before; hectl fsck exits non-zero naming the same
# file and offset, and changes nothing either.
# What is not a refusal: a torn tail of meta.log (half a record, or a bad
# record followed by a good one of the same commit: the commit a crash
# interrupted) is cut with a warning naming meta.log and the offset, and
# only the newest superblock copy bad mounts from the other one with a
# warning naming hecache.sb and the offset (fsck names it too), the good
# copy untouched.  Those mounts read every volume back right, and fsck
# passes after their clean unmount.  An undamaged copy is the control.

. "$(dirname "$0")/common.sh"

H=$HC_SCRATCH
MNT=$H/mnt
HECTL=$HC_TOP_BUILDDIR/tools/hectl
MiB=$((1024 * 1024))
N=0

# --- helpers ------------------------------------------------------------------------

# meta.py CMD ...: reads and edits the metadata files with python3's stdlib
# (XXH64 from xxh64.py, shared with badinput.sh).
#   commits LOG            one line per commit: "OFFSET RECORDS"
#   flip FILE OFFSET       XORs one byte with 0x5a
#   append LOG same|later  appends a bad record, then a good one (a copy of
#                          the last record, next sequence but one,
#                          re-checksummed) of the same commit or a later one
#   sbgens SB              the generation of each copy (checksums checked)
PY=$H/meta.py
cat >"$PY" <<'EOF'
import os, struct, sys
sys.dont_write_bytecode = True	# no __pycache__ in the source tree
sys.path.insert(0, os.environ["HC_INTEGRATION_DIR"])
from xxh64 import xxh64
R = 64
def records(path):
    d = open(path, "rb").read()
    if len(d) % R:
        sys.exit("%s: %d bytes, not whole records" % (path, len(d)))
    for o in range(0, len(d), R):
        r = d[o:o + R]
        if struct.unpack_from('<I', r, 0)[0] != 0x524A4348 or \
           struct.unpack_from('<Q', r, 56)[0] != xxh64(r[:56]):
            sys.exit("%s: record at %d does not check out with our XXH64" % (path, o))
        yield o, r
cmd, path = sys.argv[1], sys.argv[2]
if cmd == "commits":
    starts = [o for o, r in records(path) if struct.unpack_from('<I', r, 16)[0] == 0]
    size = os.path.getsize(path)
    for a, b in zip(starts, starts[1:] + [size]):
        print(a, (b - a) // R)
elif cmd == "flip":
    o = int(sys.argv[3])
    with open(path, "r+b") as f:
        f.seek(o); b = f.read(1); f.seek(o); f.write(bytes([b[0] ^ 0x5a]))
elif cmd == "append":
    last = bytearray(list(records(path))[-1][1])
    seq = struct.unpack_from('<Q', last, 8)[0]
    struct.pack_into('<Q', last, 8, seq + 2)
    struct.pack_into('<I', last, 16, 1 if sys.argv[3] == "same" else 0)
    struct.pack_into('<Q', last, 56, xxh64(bytes(last[:56])))
    with open(path, "ab") as f:
        f.write(os.urandom(R) + bytes(last))
elif cmd == "sbgens":
    d = open(path, "rb").read()
    for c in (0, 4096):
        if xxh64(d[c:c + 256]) != struct.unpack_from('<Q', d, c + 256)[0]:
            sys.exit("%s: copy at %d does not check out with our XXH64" % (path, c))
    print(*(struct.unpack_from('<Q', d, c + 32)[0] for c in (0, 4096)))
EOF
meta() { python3 "$PY" "$@"; }

# tree_sum DIR: names, types, sizes, modes, SHA-256 of every file, xattrs.
tree_sum() {
	(cd "$1" && find . -printf '%p %y %s %m\n' | LC_ALL=C sort &&
		find . -type f -print0 | LC_ALL=C sort -z | xargs -0r sha256sum &&
		getfattr -R -d -m - . 2>/dev/null)
}
# re STRING: STRING as an extended regular expression matching itself.
re() { printf '%s' "$1" | sed 's/[][\.*^$()+?{}|]/\\&/g'; }
# copy NAME: a fresh copy of the base directory, in $D.
copy() {
	D=$H/$1
	cp -a "$BASE" "$D" || hc_fail "cannot copy the base directory to $D"
}

# refuse WHAT DIR PATTERN: the daemon must refuse DIR with one line matching
# PATTERN (grep -E), mount nothing and change nothing; hectl fsck must exit
# non-zero with a line matching PATTERN and change nothing.  A wrong or
# missing message is kept in BAD (the scenario goes on, to show every such
# case, and fails at the end); a mount or a change fails at once.
BAD=()
refuse() {
	local what=$1 dir=$2 pat=$3 out pid rc=0 before after lines nl
	N=$((N + 1))
	out=$H/out.$N
	before=$(tree_sum "$dir")
	HC_MOUNTS+=("$MNT")	# in case it mounts after all
	"$HECACHE_FS" "$dir" "$MNT" -f -o cache=32M >"$out" 2>&1 &
	pid=$!
	HC_PIDS+=("$pid")
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || break
		if grep -q " $MNT fuse" /proc/mounts; then
			fusermount3 -u "$MNT"
			wait "$pid"
			hc_fail "$what: the daemon mounted $dir instead of refusing: $(hc_start_lines "$out" | tr '\n' ' ')"
		fi
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && hc_fail "$what: the daemon neither mounted nor exited in 30 s"
	wait "$pid" || rc=$?
	hc_forget_pid "$pid"
	[ "$rc" != 0 ] || hc_fail "$what: the daemon exited 0 without mounting, expected a refusal"
	after=$(tree_sum "$dir")
	[ "$before" = "$after" ] || hc_fail "$what: the refused start changed $dir:
$(diff <(echo "$before") <(echo "$after"))"
	lines=$(hc_start_lines "$out")
	nl=$(printf '%s' "$lines" | grep -c '')
	if [ "$nl" != 1 ]; then
		BAD+=("$what: the daemon printed $nl lines, expected one:
$(printf '%s\n' "$lines" | sed 's/^/    | /')")
	elif ! printf '%s\n' "$lines" | grep -qE -- "$pat"; then
		BAD+=("$what: the daemon's message '$lines' does not match /$pat/")
	else
		hc_info "refused ($what): $lines"
	fi

	rc=0
	"$HECTL" -b "$dir" fsck >"$out.fsck" 2>&1 || rc=$?
	after=$(tree_sum "$dir")
	[ "$before" = "$after" ] || hc_fail "$what: hectl fsck changed $dir:
$(diff <(echo "$before") <(echo "$after"))"
	if [ "$rc" = 0 ]; then
		BAD+=("$what: hectl fsck exited 0:
$(sed 's/^/    | /' "$out.fsck")")
	elif ! grep -qE -- "$pat" "$out.fsck"; then
		BAD+=("$what: hectl fsck (exit $rc) says nothing matching /$pat/:
$(grep -E 'problem|hectl' "$out.fsck" | sed 's/^/    | /')")
	else
		hc_info "fsck ($what): $(grep -E -- "$pat" "$out.fsck" | head -1)"
	fi
}

# verify_data: every volume of the mount reads back what was written.
verify_data() {
	local v
	for v in a b f; do cmp "$H/r1" "$MNT/vm/$v" || hc_fail "$1: vm/$v differs"; done
	for v in c d; do cmp "$H/r2" "$MNT/vm/$v" || hc_fail "$1: vm/$v differs"; done
	cmp <(head -c $MiB /dev/zero) "$MNT/vm/z" || hc_fail "$1: vm/z differs"
	cmp <(head -c $((MiB / 2)) /dev/zero) "$MNT/vm/e" || hc_fail "$1: vm/e differs"
}

# serve WHAT DIR PATTERN: the daemon must serve DIR, its start-up lines
# matching PATTERN (if not empty: a warning), every volume right; then a
# clean unmount and a fsck without problems.  Runs CHECK_MOUNTED (a
# command) while mounted, if set.
serve() {
	local what=$1 dir=$2 pat=$3 start
	start=$(wc -l <"$H/daemon.log" 2>/dev/null || echo 0)
	hc_mount "$dir" "$MNT" -o cache=32M
	if [ -n "$pat" ]; then
		if tail -n +$((start + 1)) "$H/daemon.log" | grep -qE -- "$pat"; then
			hc_info "served ($what): $(tail -n +$((start + 1)) "$H/daemon.log" | grep -E -- "$pat")"
		else
			BAD+=("$what: no start-up line matches /$pat/:
$(tail -n +$((start + 1)) "$H/daemon.log" | sed 's/^/    | /')")
		fi
	fi
	verify_data "$what"
	[ -z "${CHECK_MOUNTED:-}" ] || $CHECK_MOUNTED
	hc_umount "$MNT"
	"$HECTL" -b "$dir" fsck >"$H/fsck.out" 2>&1 ||
		{ cat "$H/fsck.out" >&2; hc_fail "$what: hectl fsck found problems after a clean unmount"; }
}

# --- the base directory -----------------------------------------------------------------

BASE=$H/base
head -c $MiB /dev/urandom >"$H/r1"
head -c $MiB /dev/urandom >"$H/r2"
put() { dd if="$1" of="$MNT/vm/$2" bs=1M conv=fsync status=none || hc_fail "writing vm/$2 failed"; }

hc_mount "$BASE" "$MNT" -o cache=32M
mkdir "$MNT/vm" || hc_fail "mkdir failed"
put "$H/r1" a
put "$H/r1" b				# dedup: references to a
put <(head -c $MiB /dev/zero) z		# ZERO entries
hc_umount "$MNT"
[ -s "$BASE/meta.ckpt" ] || hc_fail "no meta.ckpt after a clean unmount"

hc_mount "$BASE" "$MNT" -o cache=32M
put "$H/r2" c
put "$H/r2" d
put <(head -c $((MiB / 2)) /dev/zero) e
python3 - "$MNT/vm/a" "$MNT/vm/f" <<'EOF' || hc_fail "copy_file_range vm/a vm/f failed"
import os, sys
src = os.open(sys.argv[1], os.O_RDONLY)
dst = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT, 0o644)
done, n = 0, os.fstat(src).st_size
while done < n:
    r = os.copy_file_range(src, dst, n - done, done, done)
    if r <= 0:
        sys.exit("copy_file_range returned %d after %d bytes" % (r, done))
    done += r
os.fsync(dst)
EOF
verify_data "before the SIGKILL"
hc_crash "$MNT"

mapfile -t COMMITS < <(meta commits "$BASE/meta.log") || hc_fail "cannot read $BASE/meta.log"
hc_info "base: meta.ckpt $(stat -c %s "$BASE/meta.ckpt") bytes; meta.log $(stat -c %s "$BASE/meta.log") bytes, commits (offset records): $(printf '%s; ' "${COMMITS[@]}")"
[ "${#COMMITS[@]}" -ge 3 ] || hc_fail "meta.log holds ${#COMMITS[@]} commits, the scenario needs 3"
read -r gen0 gen1 < <(meta sbgens "$BASE/hecache.sb") || hc_fail "cannot read the superblock copies"
LOGSIZE=$(stat -c %s "$BASE/meta.log")

# --- control: the undamaged directory is served, replaying the journal -------------------------
copy control
serve "undamaged" "$D" ""

# --- meta.log: durable records gone bad -----------------------------------------------------------
read -r c0 n0 <<<"${COMMITS[0]}"
off=$((c0 + n0 / 2 * 64))
copy log-mid && d=$D
meta flip "$d/meta.log" $((off + 24)) || hc_fail "cannot damage the copy"
refuse "meta.log: a record in the middle of the first commit" "$d" \
	"$(re "$d/meta.log").*offset $off([^0-9]|$)"

read -r c1 n1 <<<"${COMMITS[${#COMMITS[@]} - 2]}"
off=$((c1 + (n1 - 1) * 64))
copy log-end-of-commit && d=$D
meta flip "$d/meta.log" $((off + 8)) || hc_fail "cannot damage the copy"
refuse "meta.log: the last record of the next-to-last commit" "$d" \
	"$(re "$d/meta.log").*offset $off([^0-9]|$)"

copy log-bad-commit && d=$D
meta append "$d/meta.log" later || hc_fail "cannot damage the copy"
refuse "meta.log: a bad commit followed by an intact later one" "$d" \
	"$(re "$d/meta.log").*offset $LOGSIZE([^0-9]|$)"

# --- meta.ckpt: truncated -----------------------------------------------------------------------
ck=$(stat -c %s "$BASE/meta.ckpt")
for cut in $((ck / 2)) 100 0; do
	copy ckpt-$cut && d=$D
	truncate -s "$cut" "$d/meta.ckpt"
	refuse "meta.ckpt cut to $cut of $ck bytes" "$d" "$(re "$d/meta.ckpt").*offset [0-9]+"
done

# --- hecache.sb: both copies with a bad checksum ----------------------------------------------------
copy sb-both && d=$D
meta flip "$d/hecache.sb" 256 || hc_fail "cannot damage the copy"
meta flip "$d/hecache.sb" $((4096 + 256)) || hc_fail "cannot damage the copy"
refuse "hecache.sb: both copies' checksums bad" "$d" \
	"$(re "$d/hecache.sb").*[^0-9]0[^0-9].*4096"

# --- not refusals ---------------------------------------------------------------------------------
# a torn tail: cut, with a warning naming meta.log and where; the intact
# records stay as they were
log_intact() {
	cmp -n "$LOGSIZE" "$BASE/meta.log" "$TORN/meta.log" ||
		hc_fail "the intact part of $TORN/meta.log was changed"
}
CHECK_MOUNTED=log_intact
copy torn-half && TORN=$D
head -c 32 /dev/urandom >>"$TORN/meta.log"
serve "meta.log: half a record at the end" "$TORN" "$(re "$TORN/meta.log").*torn.*offset $LOGSIZE([^0-9]|$)"
copy torn-same-commit && TORN=$D
meta append "$TORN/meta.log" same || hc_fail "cannot damage the copy"
serve "meta.log: a bad record, then a good one of the same commit, at the end" "$TORN" \
	"$(re "$TORN/meta.log").*torn.*offset $LOGSIZE([^0-9]|$)"

# the newest superblock copy bad: served from the other one, which stays as it was
newest=$((gen1 > gen0 ? 1 : 0))
noff=$((newest * 4096)) ooff=$((4096 - newest * 4096))
copy sb-one && SB=$D
meta flip "$SB/hecache.sb" $((noff + 256)) || hc_fail "cannot damage the copy"
before=$(tree_sum "$SB")
rc=0
"$HECTL" -b "$SB" fsck >"$H/fsck.sb" 2>&1 || rc=$?
[ "$before" = "$(tree_sum "$SB")" ] || hc_fail "hectl fsck changed $SB (one bad superblock copy)"
if grep -qE "$(re "$SB/hecache.sb").*offset $noff([^0-9]|$)" "$H/fsck.sb"; then
	hc_info "fsck (newest superblock copy bad, exit $rc): $(grep -E "hecache.sb.*offset $noff" "$H/fsck.sb" | head -1)"
else
	BAD+=("hecache.sb: newest copy bad: hectl fsck (exit $rc) does not name hecache.sb at offset $noff:
$(grep -E 'problem|hectl' "$H/fsck.sb" | sed 's/^/    | /')")
fi
sb_other_intact() {
	cmp <(tail -c +$((ooff + 1)) "$BASE/hecache.sb" | head -c 4096) \
		<(tail -c +$((ooff + 1)) "$SB/hecache.sb" | head -c 4096) ||
		hc_fail "the good superblock copy (offset $ooff) was overwritten by the mount"
}
CHECK_MOUNTED=sb_other_intact
serve "hecache.sb: newest copy (offset $noff) bad" "$SB" "$(re "$SB/hecache.sb").*offset $noff([^0-9]|$)"
meta sbgens "$SB/hecache.sb" >/dev/null || hc_fail "a superblock copy is still bad after a clean unmount"

for b in "${BAD[@]}"; do
	echo "FAIL: $HC_TESTNAME: $b" >&2
done
[ "${#BAD[@]}" = 0 ] || hc_fail "${#BAD[@]} case(s) without the expected message (listed above)"
hc_info "PASS"
