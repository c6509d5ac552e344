#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Online reconcile-defrag, policy home (hectl defrag, doc/reconcile-defrag.8).
# A volume vm/b gets references (copy_file_range of vm/a in shuffled 1 MiB
# chunks), ZERO blocks, and copy-on-write overflow blocks (vm/a overwritten
# where b reads it).  Then, on a live mount:
#   1. refused requests: an unknown volume, a bad policy, a second job;
#   2. a rate-limited job over vm/b while a guest writes and reads vm/b
#      (random 4 KiB blocks, O_DIRECT) and checks every read against its
#      model of the volume (I1); at the end the volume equals the model and
#      vm/a is unchanged, the map of vm/b holds only what the guest's own
#      writes made, and the job's report counts the blocks moved;
#   3. SIGKILL of the daemon in the middle of a slow job: BACKING/defrag.job
#      stays, the data reads the same after restart, the daemon resumes the
#      job (status "resumed"), it finishes, and the map is empty;
#   4. policy swap on a fresh layout: the entries' targets become consecutive (fewer runs, smaller mean jump),
#      the data reads the same, also after a remount;
#   5. cancel: the job stops, the job file goes, the data is unchanged.
# hectl fsck passes after each part.

. "$(dirname "$0")/common.sh"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
MiB=$((1024 * 1024))
HECTL=$HC_TOP_BUILDDIR/tools/hectl

h() { "$HECTL" -b "$BACK" "$@"; }
cfr() {	# SRC DST "SOFF DOFF LEN"...: copy_file_range each range, then fsync DST
	python3 "$HC_INTEGRATION_DIR/cfr.py" "$@" || hc_fail "copy_file_range $1 -> $2 failed"
}
jfield() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
state() { h --json defrag status | jfield "$1"; }
entries() { h --json map "vm/$1" | jfield "sum(e['count'] for e in d['extents'] if e['target'] not in ('home', 'hole'))"; }
wait_state() {	# STATE SECONDS
	local i
	for ((i = 0; i < $2 * 10; i++)); do
		[ "$(state "d['state']")" = "$1" ] && return 0
		sleep 0.1
	done
	h defrag status >&2
	hc_fail "the defrag job did not reach state $1 in $2 s"
}
fsck() {
	h fsck >"$HC_SCRATCH/fsck.out" 2>&1 || hc_fail "hectl fsck $1: $(cat "$HC_SCRATCH/fsck.out")"
}
sums() { (cd "$MNT" && sha256sum vm/a vm/b); }

# Makes vm/a, vm/b (48 MiB each) with references, ZERO and overflow entries in b.
setup() {
	mkdir "$MNT/vm" || hc_fail "mkdir failed"
	head -c $((48 * MiB)) /dev/urandom >"$HC_SCRATCH/a"
	dd if="$HC_SCRATCH/a" of="$MNT/vm/a" bs=1M conv=fsync status=none || hc_fail "writing vm/a failed"
	head -c $((48 * MiB)) /dev/urandom | dd of="$MNT/vm/b" bs=1M conv=fsync status=none ||
		hc_fail "writing vm/b failed"
	local ranges=() i
	for i in $(seq 0 31); do ranges+=("$(((i * 13 % 32) * MiB)) $((i * MiB)) $MiB"); done
	cfr "$MNT/vm/a" "$MNT/vm/b" "${ranges[@]}"
	dd if=/dev/zero of="$MNT/vm/b" bs=1M seek=40 count=4 conv=fsync,notrunc status=none ||
		hc_fail "zeroing vm/b failed"
	# copy on write: b's references into a's first 8 MiB move to overflow.dat
	dd if=/dev/urandom of="$MNT/vm/a" bs=1M count=8 conv=fsync,notrunc status=none ||
		hc_fail "overwriting vm/a failed"
	local n
	n=$(entries b)
	[ "$n" -ge $((36 * 256)) ] || hc_fail "setup made only $n indirections in vm/b"
	sums >"$HC_SCRATCH/sums.ref" || hc_fail "reading the volumes failed"
}

hc_mount "$BACK" "$MNT" -o cache=16M
setup

# --- 1. refused requests ---
h defrag start vm/nope >"$HC_SCRATCH/out" 2>&1 && hc_fail "a job on a missing volume was started"
grep -q "vm/nope: not found" "$HC_SCRATCH/out" || hc_fail "unclear refusal: $(cat "$HC_SCRATCH/out")"
h defrag start --policy sideways vm/b >"$HC_SCRATCH/out" 2>&1 && hc_fail "a bad policy was accepted"
h defrag cancel >"$HC_SCRATCH/out" 2>&1 && hc_fail "cancel without a job succeeded"
[ "$(state "d['state']")" = idle ] || hc_fail "state is not idle before any job"

# --- 2. a job while a guest writes and reads the volume ---
h defrag start --rate 8 vm/b >"$HC_SCRATCH/out" 2>&1 || hc_fail "defrag start: $(cat "$HC_SCRATCH/out")"
h defrag start vm/b >"$HC_SCRATCH/out" 2>&1 && hc_fail "a second job was started"
grep -q "EBUSY\|running" "$HC_SCRATCH/out" || hc_fail "unclear refusal: $(cat "$HC_SCRATCH/out")"
python3 - "$MNT/vm/b" "$HC_SCRATCH/model" "$BACK" "$HECTL" <<'PY' || hc_fail "the guest saw wrong data during the online defrag"
import json, mmap, os, random, subprocess, sys, time
path, model_path, back, hectl = sys.argv[1:5]
B = 4096
fd = os.open(path, os.O_RDWR | os.O_DIRECT)
n = os.fstat(fd).st_size // B
buf = mmap.mmap(-1, B)
model = {}
def read(b):
    os.preadv(fd, [buf], b * B)
    return bytes(buf)
def status():
    out = subprocess.run([hectl, "-b", back, "--json", "defrag", "status"], capture_output=True, text=True)
    return json.loads(out.stdout)
rng = random.Random(7)
t0 = time.time()
ops = 0
while True:
    b = rng.randrange(n)
    if rng.random() < 0.5:
        data = os.urandom(B) if rng.random() < 0.8 else bytes(B)
        buf.seek(0); buf.write(data)
        os.pwritev(fd, [buf], b * B)
        model[b] = data
    else:
        got = read(b)
        if b in model and got != model[b]:
            sys.exit(f"block {b}: read differs from the last write")
    ops += 1
    if ops % 200 == 0:
        s = status()
        if s["state"] != "running" or time.time() - t0 > 120:
            break
os.fsync(fd)
print(f"guest: {ops} operations, {len(model)} blocks written during the job", file=sys.stderr)
for b, data in model.items():
    if read(b) != data:
        sys.exit(f"block {b}: differs from the last write after the job")
with open(model_path, "w") as f:
    json.dump({str(k): v.hex() for k, v in model.items()}, f)
PY
wait_state 'done' 120
st=$(h --json defrag status)
moved=$(jfield "d['volumes'][0]['moved'] + d['volumes'][0]['zeroed']" <<<"$st")
[ "$moved" -gt 1000 ] || hc_fail "the job moved only $moved blocks: $st"
hc_info "job with a guest: $(jfield "'%d moved, %d zeroed, %d batches, kept busy %d, %.1f s' % (d['volumes'][0]['moved'], d['volumes'][0]['zeroed'], d['volumes'][0]['batches'], d['volumes'][0]['kept_busy'], d['elapsed_ns'] / 1e9)" <<<"$st")"
[ ! -e "$BACK/defrag.job" ] || hc_fail "the job file is left after the job finished"
# vm/a is unchanged; vm/b is its reference contents plus the guest's writes
(cd "$MNT" && sha256sum vm/a) | diff - <(grep ' vm/a$' "$HC_SCRATCH/sums.ref") >&2 ||
	hc_fail "vm/a changed"
python3 - "$MNT/vm/b" "$HC_SCRATCH/model" <<'PY' || hc_fail "vm/b differs from the guest's model"
import json, sys
model = {int(k): bytes.fromhex(v) for k, v in json.load(open(sys.argv[2])).items()}
with open(sys.argv[1], "rb") as f:
    for b, data in model.items():
        f.seek(b * 4096)
        if f.read(4096) != data:
            sys.exit(f"block {b} differs")
PY
hc_umount "$MNT"
fsck "after the job with a guest"

# --- 3. SIGKILL in the middle of a slow job; the daemon resumes it ---
rm -rf "$BACK"
hc_mount "$BACK" "$MNT" -o cache=16M
setup
h defrag start --rate 4 vm/b >/dev/null || hc_fail "defrag start failed"
for i in $(seq 100); do
	[ "$(state "d['done_blocks']")" -gt 2000 ] && break
	sleep 0.1
done
[ "$(state "d['state']")" = running ] || hc_fail "the slow job is not running"
[ -e "$BACK/defrag.job" ] || hc_fail "no job file while the job runs"
hc_crash "$MNT"
[ -e "$BACK/defrag.job" ] || hc_fail "the job file is gone after SIGKILL"
# the job file is the daemon's: fsck names only the unclean stop
h fsck >"$HC_SCRATCH/fsck.out" 2>&1
grep '^problem' "$HC_SCRATCH/fsck.out" | grep -v 'not marked clean' >&2 &&
	hc_fail "fsck with an unfinished job: $(cat "$HC_SCRATCH/fsck.out")"
hc_mount "$BACK" "$MNT" -o cache=16M
sums | diff "$HC_SCRATCH/sums.ref" - >&2 || hc_fail "data differs after SIGKILL during the job"
[ "$(state "d['resumed']")" = True ] || hc_fail "the job was not resumed: $(h defrag status)"
h defrag start --rate 0 vm/a >/dev/null 2>&1 && hc_fail "a job started while the resumed one runs"
wait_state 'done' 120
[ "$(entries b)" = 0 ] || hc_fail "vm/b still has $(entries b) indirections after the resumed job"
sums | diff "$HC_SCRATCH/sums.ref" - >&2 || hc_fail "data differs after the resumed job"
[ ! -e "$BACK/defrag.job" ] || hc_fail "the job file is left after the resumed job"
hc_umount "$MNT"
fsck "after the resumed job"
hc_mount "$BACK" "$MNT" -o cache=16M
[ "$(state "d['state']")" = idle ] || hc_fail "a finished job was resumed again"
sums | diff "$HC_SCRATCH/sums.ref" - >&2 || hc_fail "data differs after a remount"
hc_umount "$MNT"

# --- 4. policy swap: the targets made consecutive, the data the same ---
rm -rf "$BACK"
hc_mount "$BACK" "$MNT" -o cache=16M
setup
# and 4 MiB of b (44-48 MiB) referencing single blocks of a scattered over 32-48 MiB
ranges=()
for i in $(seq 0 1023); do ranges+=("$(((8192 + i * 37 % 4096) * 4096)) $(((11264 + i) * 4096)) 4096"); done
cfr "$MNT/vm/a" "$MNT/vm/b" "${ranges[@]}"
sums >"$HC_SCRATCH/sums.ref" || hc_fail "reading the volumes failed"
h defrag start --policy swap --rate 0 vm/b >"$HC_SCRATCH/out" 2>&1 ||
	hc_fail "defrag start --policy swap: $(cat "$HC_SCRATCH/out")"
wait_state 'done' 120
st=$(h --json defrag status)
jfield "d['volumes'][0]['relocated'] > 0 and d['volumes'][0]['after']['mean_jump'] < d['volumes'][0]['before']['mean_jump'] and d['volumes'][0]['after']['runs'] < d['volumes'][0]['before']['runs']" <<<"$st" |
	grep -q True || hc_fail "policy swap did not make vm/b more consecutive: $st"
hc_info "policy swap: $(jfield "'%d relocated, runs %d -> %d, mean jump %.1f -> %.1f' % (d['volumes'][0]['relocated'], d['volumes'][0]['before']['runs'], d['volumes'][0]['after']['runs'], d['volumes'][0]['before']['mean_jump'], d['volumes'][0]['after']['mean_jump'])" <<<"$st")"
sums | diff "$HC_SCRATCH/sums.ref" - >&2 || hc_fail "data differs after policy swap"
hc_umount "$MNT"
fsck "after policy swap"
hc_mount "$BACK" "$MNT" -o cache=16M
sums | diff "$HC_SCRATCH/sums.ref" - >&2 || hc_fail "data differs after policy swap and a remount"
hc_umount "$MNT"

# --- 5. cancel ---
rm -rf "$BACK"
hc_mount "$BACK" "$MNT" -o cache=16M
setup
h defrag start --rate 2 >/dev/null || hc_fail "defrag start (every volume) failed"
sleep 1
h defrag cancel >/dev/null || hc_fail "defrag cancel failed"
wait_state cancelled 30
[ ! -e "$BACK/defrag.job" ] || hc_fail "the job file is left after cancel"
left=$(entries b)
[ "$left" -gt 0 ] || hc_fail "the cancelled job finished anyway"
sums | diff "$HC_SCRATCH/sums.ref" - >&2 || hc_fail "data differs after cancel"
hc_umount "$MNT"
fsck "after cancel"
hc_info "cancelled with $left indirections left; all data identical"
