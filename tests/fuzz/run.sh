#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Builds the control-protocol fuzzer with clang (libFuzzer, ASan, UBSan)
# from the sources and runs it on a copy of tests/fuzz/corpus/ctl for
# SECONDS (default 60).  New inputs that found coverage are left in the
# copy (printed at the end), so they can be added to the corpus.
# Usage: tests/fuzz/run.sh BUILD_DIR [SECONDS]   (BUILD_DIR has config.h)
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:?usage: run.sh BUILD_DIR [SECONDS]}
secs=${2:-60}
command -v clang >/dev/null || { echo "run.sh: clang not found: apt-get install clang" >&2; exit 77; }
work=$(mktemp -d /var/tmp/hc-fuzz.XXXXXX)
backing=
cleanup() {
	rm -rf "$work"
	[ -n "$backing" ] && rm -rf "$backing"
	return 0
}
trap cleanup EXIT
# the daemon's modules but its main and FUSE glue, and swap-reconcile's library
libs=$(cd "$src" && ls cache-fs/*.c swap-reconcile/*.c |
	grep -v -e '^cache-fs/main.c$' -e '^cache-fs/fs_ops.c$' -e '^swap-reconcile/reconcile-defrag.c$')
# shellcheck disable=SC2046,SC2086
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-I"$build" -I"$src/include" -I"$src/cache-fs" -I"$src/swap-reconcile" -include config.h \
	$(pkg-config --cflags fuse3 liburing libxxhash json-c) \
	-o "$work/fuzz_ctl" "$src/tests/fuzz/fuzz_ctl.c" \
	$(for f in $libs; do echo "$src/$f"; done) \
	$(pkg-config --libs fuse3 liburing libxxhash json-c) -laio -pthread
cp -r "$src/tests/fuzz/corpus/ctl" "$work/corpus"
n0=$(ls "$work/corpus" | wc -l)
rc=0
"$work/fuzz_ctl" -artifact_prefix="$work/" -max_total_time="$secs" -max_len=4096 -timeout=10 -rss_limit_mb=4096 \
	-print_final_stats=1 "$work/corpus" 2>"$work/log" || rc=$?
backing=$(sed -n 's/^fuzz_ctl: backing directory \([^ ]*\).*/\1/p' "$work/log" | head -1)
grep -E '^(stat::|#[0-9]+.*DONE|==[0-9]+==ERROR|SUMMARY)' "$work/log" || true
echo "fuzz_ctl: $secs s, corpus $n0 -> $(ls "$work/corpus" | wc -l) inputs, exit $rc"
if [ $rc -ne 0 ]; then
	tail -40 "$work/log"
	ls "$work"/crash-* "$work"/leak-* 2>/dev/null || true
	cp "$work"/crash-* "$work"/leak-* "$src/tests/fuzz/" 2>/dev/null || true
	exit 1
fi
