#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Long mode only (make check-long): fuzzes the control protocol's request
# handling for HC_FUZZ_SECS (default 300) with libFuzzer (tests/fuzz/run.sh),
# installing clang first when it is missing.  A crash, a leak, a UBSan
# report or a reply that is not one JSON object fails the test.
[ "${HC_LONG:-}" = 1 ] || { echo "SKIP: fuzz_ctl: long mode only (make check-long)"; exit 77; }
[ "${HC_SKIP_INTEGRATION:-}" = 1 ] && { echo "SKIP: fuzz_ctl: integration disabled"; exit 77; }
set -e
top_src=${HC_TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
top_build=${HC_TOP_BUILDDIR:-$top_src}
if ! command -v clang >/dev/null; then
	[ "$(id -u)" = 0 ] || { echo "SKIP: fuzz_ctl: clang missing and not root"; exit 77; }
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends clang >/dev/null ||
		{ apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -q --no-install-recommends clang >/dev/null; }
fi
exec "$top_src/tests/fuzz/run.sh" "$top_build" "${HC_FUZZ_SECS:-300}"
