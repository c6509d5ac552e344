#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# hedp, the double-paging benchmark, on a real mount: its own counters
# against the daemon's for the domain.  A 8 MiB cache under 24 MiB of
# volumes, so some reads hit and some go to storage.  In each mode hedp must
# pass its data verification (every block read back holds the page and
# version it must; --check-end reads back every swapped-out page at the
# end), double page some pages, and account for every block the daemon saw:
# hits + misses = the blocks hedp read, admissions = the blocks it wrote;
# behind the cache, read_bytes = 4 KiB per miss.  hedp's guest faults must
# be the LRU misses hc-mrc predicts for the same stream.  A flipped bit in a
# block read must end a run with exit 1 naming the page; bad options exit 2.
# With FUSE_HANDLE_KILLPRIV_V2 granted, copies cost no getxattr and a
# volume cannot be made set-id.

. "$(dirname "$0")/common.sh"

command -v jq >/dev/null || hc_skip "jq not installed"
HEDP=$HC_TOOLS/hedp
[ -x "$HEDP" ] || hc_fail "no hedp at $HEDP"

BACK=$HC_SCRATCH/backing
MNT=$HC_SCRATCH/mnt
DOM=$MNT/vm1
# W 4096 pages (GSWAP 16 MiB), G 2048 frames (HSWAP 8 MiB), H 1024 host pages
SIZES=(--pages 4096 --guest-pages 2048 --host-pages 1024 --accesses 20000
	--pattern zipf --zipf-theta 0.8 --seed 7)

dstats() { "$HC_TOOLS/hectl" -m "$MNT" --json stats vm1 | jq -c '.domains[0]'; }
# the daemon's FUSE request counters (hectl status)
reqs() { "$HC_TOOLS/hectl" -m "$MNT" --json status | jq -c '.fuse_requests'; }
# jqn JSON EXPR: one number (or value) out of a JSON text
jqn() { jq -r "$2" <<<"$1"; }

# run MODE: runs hedp, leaves its JSON in $R and the daemon's deltas
# (hectl, read around the run) in $DH $DM $DA $DRB, checks what holds in
# every mode
run() {
	local mode=$1 s0 s1 q0 q1
	s0=$(dstats) || hc_fail "hectl stats vm1 failed"
	q0=$(reqs) || hc_fail "hectl status failed"
	R=$("$HEDP" --dir "$DOM" --mode "$mode" "${SIZES[@]}" --check-end --json \
		--csv "$HC_SCRATCH/hedp.csv" --label "$mode") || hc_fail "hedp $mode failed: $R"
	q1=$(reqs) || hc_fail "hectl status failed"
	s1=$(dstats) || hc_fail "hectl stats vm1 failed"
	hc_info "$mode: $R"
	d() { echo $(($(jqn "$s1" ".$1") - $(jqn "$s0" ".$1"))); }
	DH=$(d hits) DM=$(d misses) DA=$(d admissions) DRB=$(d read_bytes)
	DDUP=$(d dedup_blocks) DREF=$(d ref_blocks) DWB=$(d writebacks) DWR=$(d written_bytes)
	q() { echo $(($(jqn "$q1" ".$1") - $(jqn "$q0" ".$1"))); }
	QR=$(q read) QW=$(q write) QC=$(q copy_file_range) QX=$(q getxattr)
	hc_info "$mode: FUSE requests: read $QR write $QW copy_file_range $QC getxattr $QX"
	hc_info "$mode: daemon hits $DH misses $DM admissions $DA read_bytes $DRB" \
		"writebacks $DWB written_bytes $DWR dedup_blocks $DDUP ref_blocks $DREF"
	[ "$(jqn "$R" .verified)" = true ] || hc_fail "$mode: verification not reported"
	[ "$(jqn "$R" .double_paged)" -gt 0 ] || hc_fail "$mode: nothing was double-paged"
	[ "$(jqn "$R" .check_reads)" -gt 0 ] || hc_fail "$mode: --check-end read nothing back"
	[ "$(jqn "$R" .guest_faults)" = "$LRU_MISSES" ] ||
		hc_fail "$mode: $(jqn "$R" .guest_faults) guest faults, hc-mrc lru says $LRU_MISSES"
	# the pagers' counts are the volumes' calls
	[ "$(jqn "$R" .gswap.reads)" = "$(jqn "$R" .guest_swapins)" ] ||
		hc_fail "$mode: GSWAP reads != guest swap-ins"
	[ "$(jqn "$R" .hswap.writes)" = "$(jqn "$R" .hyp_swapouts)" ] ||
		hc_fail "$mode: HSWAP writes != hypervisor swap-outs"
	# what hedp read and wrote (4 KiB blocks), --check-end's reads included
	TR=$(jqn "$R" '.gswap.reads + .hswap.reads + .check_reads')
	TW=$(jqn "$R" '.gswap.writes + .hswap.writes')
	# one FUSE request per block hedp read, wrote or copied (4 KiB calls)
	[ "$QR" = "$TR" ] || hc_fail "$mode: the daemon served $QR read requests, hedp read $TR blocks"
	[ "$QW" = "$TW" ] || hc_fail "$mode: the daemon served $QW write requests, hedp wrote $TW blocks"
	[ "$QC" = "$(jqn "$R" .cfr.calls)" ] ||
		hc_fail "$mode: the daemon served $QC copy_file_range requests, hedp made $(jqn "$R" .cfr.calls) calls"
	[ "$(jqn "$R" '.gswap.read_bytes + .hswap.read_bytes')" = \
		$(($(jqn "$R" '.gswap.reads + .hswap.reads') * 4096)) ] ||
		hc_fail "$mode: hedp's read bytes are not 4 KiB per read"
	# behind the cache, a miss is one block read from storage
	[ "$DRB" = $((DM * 4096)) ] || hc_fail "$mode: storage read $DRB bytes for $DM misses"
	# hedp's own view of the daemon (the domain's xattr) is hectl's
	{ [ "$(jqn "$R" .daemon.hits)" = "$DH" ] && [ "$(jqn "$R" .daemon.misses)" = "$DM" ] &&
		[ "$(jqn "$R" .daemon.admissions)" = "$DA" ]; } ||
		hc_fail "$mode: hedp's daemon counters differ from hectl's"
}

# the LRU misses of a guest of G pages over this stream, computed apart
LRU_MISSES=$("$HC_TOOLS/hc-mrc" lru --pages 4096 --guest 2048 --accesses 20000 \
	--pattern zipf --zipf-theta 0.8 --seed 7 --max 1 |
	sed -n 's/^# lru .* \([0-9][0-9]*\) misses .*/\1/p')
[ -n "$LRU_MISSES" ] || hc_fail "hc-mrc lru gave no miss count"

hc_mount "$BACK" "$MNT" -o cache=8M
mkdir "$DOM" || hc_fail "mkdir $DOM failed"

# --- plain: every block the daemon saw was one hedp issued ---------------------
run plain
[ "$((DH + DM))" = "$TR" ] || hc_fail "plain: daemon read $((DH + DM)) blocks, hedp $TR"
[ "$DA" = "$TW" ] || hc_fail "plain: daemon admitted $DA blocks, hedp wrote $TW"
[ "$(jqn "$R" .cfr.calls)" = 0 ] || hc_fail "plain: copy_file_range called"
# each double-paged page: a hypervisor swap-in and a guest swap-out
[ "$(jqn "$R" .gswap.writes)" = "$(jqn "$R" .guest_swapouts)" ] ||
	hc_fail "plain: GSWAP writes != guest swap-outs"
[ "$(jqn "$R" .hswap.reads)" = "$(jqn "$R" .hyp_swapins)" ] ||
	hc_fail "plain: HSWAP reads != hypervisor swap-ins"
[ "$(jqn "$R" .hyp_swapins)" = "$(jqn "$R" '.hyp_faults + .double_paged')" ] ||
	hc_fail "plain: hypervisor swap-ins != its faults + the double-paged pages"
[ "$(stat -c %s "$DOM/gswap")" = $((4096 * 4096)) ] || hc_fail "gswap is not W blocks"
[ "$(stat -c %s "$DOM/hswap")" = $((2048 * 4096)) ] || hc_fail "hswap is not G blocks"
PLAIN=$R

# --- dedup: the same calls (hecache's dedup is what would remove writes) --------
run dedup
[ "$((DH + DM))" = "$TR" ] || hc_fail "dedup: daemon read $((DH + DM)) blocks, hedp $TR"
# hecache's dedup finds the hypervisor-swap block each double-paged page
# was just read from (issue 6's goal, measured by bench: >= 95% of those
# writes removed; asserted here with a margin for timing: >= 90%)
DP=$(jqn "$R" .double_paged)
hc_info "dedup: $DDUP blocks shared at write-back for $DP double-paged pages"
[ $((DDUP * 100)) -ge $((DP * 90)) ] || hc_fail "dedup: only $DDUP of $DP double-paged writes shared"
[ "$DA" = "$TW" ] || hc_fail "dedup: daemon admitted $DA blocks, hedp wrote $TW"
calls='[.guest_faults, .guest_swapouts, .hyp_swapins, .hyp_swapouts, .double_paged,
	.gswap.reads, .gswap.writes, .hswap.reads, .hswap.writes]'
[ "$(jqn "$R" "$calls")" = "$(jqn "$PLAIN" "$calls")" ] ||
	hc_fail "dedup did not issue the same calls as plain"

# --- reference: copy_file_range for the double-paged pages ------------------------
run reference
DP=$(jqn "$R" .double_paged) OK=$(jqn "$R" .cfr.ok) FB=$(jqn "$R" .cfr.fallbacks)
hc_info "reference: double-paged $DP, copy_file_range ok $OK, fallbacks $FB"
[ "$DP" = "$(jqn "$PLAIN" .double_paged)" ] || hc_fail "reference double-paged another number of pages"
[ $((OK + FB)) = "$DP" ] || hc_fail "reference: $OK copies + $FB fallbacks for $DP double-paged pages"
# no read from HSWAP for them: plain's hypervisor swap-ins minus the double-paged
[ "$(jqn "$R" .hswap.reads)" = $(($(jqn "$PLAIN" .hswap.reads) - DP + FB)) ] ||
	hc_fail "reference: HSWAP reads are not plain's minus the copied pages"
[ "$(jqn "$R" .gswap.writes)" = "$FB" ] || hc_fail "reference: GSWAP written other than by fallbacks"
# copy_file_range between volumes of one domain is references in
# hecache-fs (swap-reconcile): the daemon reads and writes no block for the
# copies, so it saw exactly the blocks hedp issued, and counted each copied
# block as a reference.
[ "$((DH + DM))" = "$TR" ] || hc_fail "reference: daemon read $((DH + DM)) blocks, hedp $TR"
[ "$DA" = "$TW" ] || hc_fail "reference: daemon admitted $DA blocks, hedp wrote $TW"
{ [ "$(jqn "$R" .daemon.extra_reads)" = 0 ] && [ "$(jqn "$R" .daemon.extra_writes)" = 0 ]; } ||
	hc_fail "reference: hedp saw emulated copies (extra reads/writes)"
[ "$DREF" = "$OK" ] || hc_fail "reference: daemon counted $DREF reference blocks for $OK copies"
# With FUSE_HANDLE_KILLPRIV_V2 granted the kernel stops asking for
# security.capability before each copy (fs_ops.c): at most one getxattr
# per attribute refresh of a volume, not one per copy.
KP=$("$HC_TOOLS/hectl" -m "$MNT" --json status | jq -r .fuse_killpriv_v2)
hc_info "reference: killpriv_v2 $KP, getxattr requests $QX for $QC copy_file_range requests"
if [ "$KP" = true ]; then
	[ $((QX * 20)) -le "$QC" ] || hc_fail "reference: $QX getxattr requests for $QC copies with killpriv_v2"
	# the promise the flag makes: a volume never has set-id bits
	chmod 6755 "$DOM/gswap" || hc_fail "chmod 6755 gswap failed"
	[ "$(stat -c %a "$DOM/gswap")" = 755 ] ||
		hc_fail "a volume kept set-id bits ($(stat -c %a "$DOM/gswap")) under killpriv_v2"
	[ "$(stat -c %a "$BACK/vm1/gswap")" = 755 ] || hc_fail "gswap's home file got set-id bits"
	chmod 0644 "$DOM/gswap" || hc_fail "chmod 0644 gswap failed"
else
	[ "$QX" -ge "$QC" ] || hc_fail "reference: $QX getxattr requests for $QC copies without killpriv_v2"
fi

# --- reads that missed ran inline in the FUSE worker when none other was in flight
ST=$("$HC_TOOLS/hectl" -m "$MNT" --json status) || hc_fail "hectl status failed"
hc_info "io engine $(jqn "$ST" .io_engine), reads run inline $(jqn "$ST" .io_inline_reads)"
if [ "$(jqn "$ST" .io_engine)" != sync ]; then
	[ "$(jqn "$ST" .io_inline_reads)" -gt 0 ] || hc_fail "no read ran inline (queue depth 1, engine $(jqn "$ST" .io_engine))"
fi

# --- the CSV: a header and one line per run ---------------------------------------
[ "$(wc -l <"$HC_SCRATCH/hedp.csv")" = 4 ] || hc_fail "hedp.csv: expected a header and 3 lines"
head -1 "$HC_SCRATCH/hedp.csv" | grep -q '^label,mode,' || hc_fail "hedp.csv: no header"
[ "$(cut -d, -f2 "$HC_SCRATCH/hedp.csv" | tail -3 | tr '\n' ' ')" = "plain dedup reference " ] ||
	hc_fail "hedp.csv: the modes are not plain, dedup, reference"

# --- wrong data is caught and named; bad options are usage errors -----------------
out=$(HEDP_TEST_CORRUPT=50 "$HEDP" --dir "$DOM" --mode plain "${SIZES[@]}" 2>&1)
rc=$?
hc_info "corrupted read: rc $rc: $out"
[ "$rc" = 1 ] || hc_fail "a corrupted block read: exit $rc, expected 1"
grep -q '^hedp: access [0-9]*: page [0-9]* version [0-9]* expected in .* block [0-9]*, it holds' \
	<<<"$out" || hc_fail "a corrupted block read: no line naming the page"
for bad in "--host-pages 2048" "--guest-pages 4096" "--pattern lru" "--zipf-theta 0" "--hswap gswap"; do
	# shellcheck disable=SC2086 # word splitting of $bad intended
	out=$("$HEDP" --dir "$DOM" --mode plain "${SIZES[@]}" $bad 2>&1)
	rc=$?
	{ [ "$rc" = 2 ] && [ "$(wc -l <<<"$out")" = 1 ]; } ||
		hc_fail "hedp ... $bad: exit $rc, output '$out' (expected one line, exit 2)"
done

hc_umount "$MNT"
hc_info "PASS"
