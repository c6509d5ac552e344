#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# reconcile-defrag --offline, policies home and swap (doc/reconcile-defrag.8).
# A backing directory gets every kind of indirection: copy_file_range
# references between volumes of one domain (1 MiB chunks in shuffled order,
# one 16 MiB range, and 4 KiB blocks in shuffled order), dedup (the same data
# written to a third volume), ZERO blocks, copy-on-write overflow blocks (the
# source of the references overwritten), and a reference in a volume
# truncated to a partial last block.  On a copy of it: refused while the
# daemon serves it; one volume alone keeps the blocks whose home another
# volume still reads (I3); the full run leaves no indirection, one run per
# volume, frees overflow.dat, and every volume reads the same (sha256
# through the mount, I1); a second run has nothing to do.  On another copy,
# policy swap: the indirections stay, runs and mean jump drop, no home file
# is written, the data reads the same, a second run relocates nothing, and
# home still empties the maps afterwards.  On the original: SIGKILL in the
# middle of a rate-limited run, the data still reads the same, a rerun
# finishes.  hectl fsck passes after each step.  --online: only the usage
# error and the unreachable daemon here (defrag_online.sh runs the job).

. "$(dirname "$0")/common.sh"

BACK=$HC_SCRATCH/backing
BACK2=$HC_SCRATCH/backing2
BACK3=$HC_SCRATCH/backing3
MNT=$HC_SCRATCH/mnt
MiB=$((1024 * 1024))
DEFRAG=$HC_TOP_BUILDDIR/swap-reconcile/reconcile-defrag
HECTL=$HC_TOP_BUILDDIR/tools/hectl
[ -x "$DEFRAG" ] || hc_fail "no reconcile-defrag at $DEFRAG"
VOLS="vm/a vm/b vm/c vm/d vm/e"

# cfr SRC DST "SOFF DOFF LEN" ...: copy_file_range each range (bytes), then fsync DST.
cfr() {
	python3 "$HC_INTEGRATION_DIR/cfr.py" "$@" || hc_fail "copy_file_range $1 -> $2 failed"
}
sums() { (cd "$MNT" && sha256sum $VOLS); }
fsck() { "$HECTL" -b "$1" fsck >"$HC_SCRATCH/fsck.out" 2>&1 || hc_fail "hectl fsck $2: $(cat "$HC_SCRATCH/fsck.out")"; }
# jq-less JSON field: jfield FILE PYTHON-EXPRESSION-ON-d
jfield() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$1"; }
check_data() {	# BACKING WHEN
	hc_mount "$1" "$MNT" -o cache=64M
	sums >"$HC_SCRATCH/sums.now" || hc_fail "reading the volumes $2 failed"
	hc_umount "$MNT"
	diff "$HC_SCRATCH/sums.ref" "$HC_SCRATCH/sums.now" >&2 || hc_fail "data differs $2"
}

# --- a backing directory with indirections of every kind ---
hc_mount "$BACK" "$MNT" -o cache=64M
mkdir "$MNT/vm" || hc_fail "mkdir failed"
head -c $((48 * MiB)) /dev/urandom >"$HC_SCRATCH/a"
head -c $((48 * MiB)) /dev/urandom >"$HC_SCRATCH/b"
dd if="$HC_SCRATCH/a" of="$MNT/vm/a" bs=1M conv=fsync status=none || hc_fail "writing vm/a failed"
dd if="$HC_SCRATCH/b" of="$MNT/vm/b" bs=1M conv=fsync status=none || hc_fail "writing vm/b failed"
# dedup: vm/c holds what vm/a holds at 40-48 MiB
dd if="$HC_SCRATCH/a" of="$MNT/vm/c" bs=1M skip=40 count=8 conv=fsync status=none ||
	hc_fail "writing vm/c failed"
# references: a's first 16 MiB into b's first 16 in shuffled 1 MiB chunks,
# a's 16-32 MiB to b's 24-40 MiB in one range
ranges=()
for i in $(seq 0 15); do ranges+=("$(( (i * 7 % 16) * MiB )) $((i * MiB)) $MiB"); done
cfr "$MNT/vm/a" "$MNT/vm/b" "${ranges[@]}" "$((16 * MiB)) $((24 * MiB)) $((16 * MiB))"
# ZERO blocks in b
dd if=/dev/zero of="$MNT/vm/b" bs=1M seek=44 count=4 conv=fsync,notrunc status=none ||
	hc_fail "zeroing vm/b failed"
# a reference in a volume that ends in a partial block
cfr "$MNT/vm/a" "$MNT/vm/d" "$((32 * MiB)) 0 $MiB"
# 4 KiB references in shuffled order: e's block i is a's block 6144 + (389 i mod 1024)
ranges=()
for i in $(seq 0 1023); do ranges+=("$(( (6144 + i * 389 % 1024) * 4096 )) $((i * 4096)) 4096"); done
cfr "$MNT/vm/a" "$MNT/vm/e" "${ranges[@]}"
truncate -s $((MiB - 1000)) "$MNT/vm/d" || hc_fail "truncating vm/d failed"
# copy on write: overwrite the blocks of a that b and c read
dd if=/dev/urandom of="$MNT/vm/a" bs=1M count=8 conv=fsync,notrunc status=none ||
	hc_fail "overwriting vm/a failed"
dd if=/dev/urandom of="$MNT/vm/a" bs=1M seek=40 count=4 conv=fsync,notrunc status=none ||
	hc_fail "overwriting vm/a failed"
sums >"$HC_SCRATCH/sums.ref" || hc_fail "reading the volumes failed"
hc_umount "$MNT"
fsck "$BACK" "after building"

"$DEFRAG" --offline "$BACK" --dry-run --json >"$HC_SCRATCH/dry.json" || hc_fail "--dry-run failed"
before=$(jfield "$HC_SCRATCH/dry.json" 'd["total"]["before"]["indirections"]')
hc_info "indirections: $(jfield "$HC_SCRATCH/dry.json" '", ".join("%s %d (%d ZERO)" % (v["volume"], v["before"]["indirections"], v["before"]["zero"]) for v in d["volumes"])')"
# b: 8192 references + 1024 ZERO; a: 3072 copy-on-write; c: 2048 dedup; d: 256 and
# e: 1024 references
[ "$before" -ge 15000 ] || hc_fail "only $before indirections to work on: $(cat "$HC_SCRATCH/dry.json")"
"$DEFRAG" --offline "$BACK" --dry-run | sed "s/^/$HC_TESTNAME: /"
cp -a --sparse=always "$BACK" "$BACK2" || hc_fail "copying the backing directory failed"
cp -a --sparse=always "$BACK" "$BACK3" || hc_fail "copying the backing directory failed"

# --- refused while the daemon runs ---
hc_mount "$BACK2" "$MNT" -o cache=64M
"$DEFRAG" --offline "$BACK2" >"$HC_SCRATCH/out" 2>&1 && hc_fail "defrag ran on a mounted backing directory"
grep -q "in use by a running hecache-fs" "$HC_SCRATCH/out" || hc_fail "unclear refusal: $(cat "$HC_SCRATCH/out")"
hc_info "mounted: $(cat "$HC_SCRATCH/out")"
"$DEFRAG" --offline "$BACK2" --policy swap >"$HC_SCRATCH/out" 2>&1 && hc_fail "swap ran on a mounted backing directory"
grep -q "in use by a running hecache-fs" "$HC_SCRATCH/out" || hc_fail "swap: unclear refusal: $(cat "$HC_SCRATCH/out")"
"$DEFRAG" --online "$BACK2/ctl.sock" --dry-run >"$HC_SCRATCH/out" 2>&1; rc=$?
[ $rc = 2 ] && grep -q -- "--dry-run works only with --offline" "$HC_SCRATCH/out" ||
	hc_fail "--online --dry-run: status $rc, $(cat "$HC_SCRATCH/out")"
hc_umount "$MNT"
"$DEFRAG" --online "$BACK2/ctl.sock" >"$HC_SCRATCH/out" 2>&1; rc=$?
[ $rc = 3 ] && grep -q "cannot connect to $BACK2/ctl.sock" "$HC_SCRATCH/out" ||
	hc_fail "--online, no daemon: status $rc, $(cat "$HC_SCRATCH/out")"

# --- I3: vm/a alone keeps the blocks whose home vm/c still reads ---
"$DEFRAG" --offline "$BACK2" --json vm/a >"$HC_SCRATCH/a.json" || hc_fail "defrag of vm/a failed"
kept=$(jfield "$HC_SCRATCH/a.json" 'd["volumes"][0]["kept_shared"]')
left=$(jfield "$HC_SCRATCH/a.json" 'd["volumes"][0]["after"]["indirections"]')
[ "$kept" -ge 1024 ] && [ "$left" = "$kept" ] || hc_fail "vm/a alone: kept $kept, $left left: $(cat "$HC_SCRATCH/a.json")"
hc_info "vm/a alone: $kept blocks kept (home block shared)"
fsck "$BACK2" "after defragmenting vm/a"
check_data "$BACK2" "after defragmenting vm/a"

# --- the full run ---
"$DEFRAG" --offline "$BACK2" --json >"$HC_SCRATCH/full.json" || hc_fail "defrag failed: $(cat "$HC_SCRATCH/full.json")"
python3 - "$HC_SCRATCH/full.json" <<'PY' || hc_fail "full run: $(cat "$HC_SCRATCH/full.json")"
import json, sys
d = json.load(open(sys.argv[1]))
for v in d["volumes"] + [d["total"]]:
    b, a = v["before"], v["after"]
    print("defrag_offline: %-6s indirections %5d -> %d, runs %4d -> %d, mean jump %8.2f -> %.2f, "
          "moved %5.1f MiB, kept %d, %.3f s" % (v["volume"], b["indirections"], a["indirections"],
          b["runs"], a["runs"], b["mean_jump"], a["mean_jump"], v["bytes_moved"] / 2**20,
          v["kept_blocks"], v["seconds"]))
    assert a["indirections"] == 0 and v["kept_blocks"] == 0 and a["jump_sum"] == 0, v
for v in d["volumes"]:
    assert v["after"]["runs"] == 1, v
assert d["total"]["before"]["runs"] > 20 and d["total"]["before"]["mean_jump"] > 0, d["total"]
print("defrag_offline: %d passes, overflow.dat blocks freed %d, %.3f s" % (d["passes"],
      d["total"]["overflow_freed_blocks"], d["seconds"]))
PY
[ "$(du --block-size=1 "$BACK2/overflow.dat" | cut -f1)" -lt $MiB ] ||
	hc_fail "overflow.dat still holds $(du -h "$BACK2/overflow.dat")"
fsck "$BACK2" "after the full run"
check_data "$BACK2" "after the full run"
"$DEFRAG" --offline "$BACK2" >"$HC_SCRATCH/out" 2>&1 || hc_fail "second run failed: $(cat "$HC_SCRATCH/out")"
grep -q "nothing to do" "$HC_SCRATCH/out" || hc_fail "second run: $(cat "$HC_SCRATCH/out")"
sed "s/^/$HC_TESTNAME: second run: /" "$HC_SCRATCH/out"

# --- policy swap: the targets move, the indirections stay ---
homes() { (cd "$BACK3" && sha256sum $VOLS); }
homes >"$HC_SCRATCH/homes.before"
"$DEFRAG" --offline "$BACK3" --policy swap --dry-run --json >"$HC_SCRATCH/sdry.json" ||
	hc_fail "swap --dry-run failed"
would=$(jfield "$HC_SCRATCH/sdry.json" 'd["total"]["relocated_blocks"]')
"$DEFRAG" --offline "$BACK3" --policy swap --json >"$HC_SCRATCH/swap.json" ||
	hc_fail "swap failed: $(cat "$HC_SCRATCH/swap.json")"
python3 - "$HC_SCRATCH/swap.json" "$would" <<'PY' || hc_fail "swap: $(cat "$HC_SCRATCH/swap.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["policy"] == "swap" and d["passes"] == 1, d
for v in d["volumes"] + [d["total"]]:
    b, a = v["before"], v["after"]
    print("defrag_offline: swap %-6s indirections %5d -> %d, runs %4d -> %d, mean jump %8.2f -> %.2f, "
          "relocated %5d, %5.1f MiB, %.3f s" % (v["volume"], b["indirections"], a["indirections"],
          b["runs"], a["runs"], b["mean_jump"], a["mean_jump"], v["relocated_blocks"],
          v["bytes_moved"] / 2**20, v["seconds"]))
    assert a["indirections"] == b["indirections"] and a["zero"] == b["zero"], v
    assert v["moved_blocks"] == 0 and v["bytes_moved"] == 4096 * v["relocated_blocks"], v
t = d["total"]
assert t["relocated_blocks"] == int(sys.argv[2]), ("dry run said", sys.argv[2])
assert t["after"]["runs"] < t["before"]["runs"], t
assert t["after"]["mean_jump"] < t["before"]["mean_jump"], t
e = [v for v in d["volumes"] if v["volume"] == "vm/e"][0]
assert e["relocated_blocks"] == 1024 and e["after"]["runs"] <= 8, e
assert e["after"]["mean_jump"] < e["before"]["mean_jump"] / 10, e
PY
homes >"$HC_SCRATCH/homes.after"
diff "$HC_SCRATCH/homes.before" "$HC_SCRATCH/homes.after" >&2 || hc_fail "swap wrote a home file"
fsck "$BACK3" "after swap"
check_data "$BACK3" "after swap"
"$DEFRAG" --offline "$BACK3" --policy swap --json >"$HC_SCRATCH/swap2.json" || hc_fail "second swap failed"
[ "$(jfield "$HC_SCRATCH/swap2.json" 'd["total"]["relocated_blocks"]')" = 0 ] ||
	hc_fail "second swap relocated: $(cat "$HC_SCRATCH/swap2.json")"
"$DEFRAG" --offline "$BACK3" --policy swap | sed "s/^/$HC_TESTNAME: swap, second run: /"
# home after swap: every indirection goes
"$DEFRAG" --offline "$BACK3" --json >"$HC_SCRATCH/home3.json" || hc_fail "home after swap failed"
[ "$(jfield "$HC_SCRATCH/home3.json" 'd["total"]["after"]["indirections"]')" = 0 ] ||
	hc_fail "home after swap: $(cat "$HC_SCRATCH/home3.json")"
fsck "$BACK3" "after swap and home"
check_data "$BACK3" "after swap and home"

# --- SIGKILL in the middle, then a rerun ---
"$DEFRAG" --offline "$BACK" --rate 4 >"$HC_SCRATCH/killed.out" 2>&1 &
pid=$!
HC_PIDS+=("$pid")
sleep 1
# (a slow machine: wait for its first commit, the clean unmount left meta.log empty)
for _ in $(seq 100); do [ -s "$BACK/meta.log" ] && break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null || hc_fail "the rate-limited run ended too early: $(cat "$HC_SCRATCH/killed.out")"
kill -9 "$pid"
wait "$pid" 2>/dev/null
"$DEFRAG" --offline "$BACK" --dry-run --json >"$HC_SCRATCH/dry2.json" || hc_fail "--dry-run after SIGKILL failed"
mid=$(jfield "$HC_SCRATCH/dry2.json" 'd["total"]["before"]["indirections"]')
hc_info "SIGKILL after 1 s at 4 MiB/s: $mid of $before indirections left"
[ "$mid" -gt 0 ] && [ "$mid" -lt "$before" ] || hc_fail "killed run: $mid of $before left"
fsck "$BACK" "after SIGKILL"
check_data "$BACK" "after SIGKILL"
"$DEFRAG" --offline "$BACK" >"$HC_SCRATCH/out" 2>&1 || hc_fail "rerun failed: $(cat "$HC_SCRATCH/out")"
sed "s/^/$HC_TESTNAME: rerun: /" "$HC_SCRATCH/out"
"$DEFRAG" --offline "$BACK" --dry-run --json >"$HC_SCRATCH/dry3.json" || hc_fail "--dry-run after the rerun failed"
[ "$(jfield "$HC_SCRATCH/dry3.json" 'd["total"]["before"]["indirections"]')" = 0 ] ||
	hc_fail "indirections left after the rerun: $(cat "$HC_SCRATCH/dry3.json")"
fsck "$BACK" "after the rerun"
check_data "$BACK" "after the rerun"
hc_info "PASS"
