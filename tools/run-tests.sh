#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The README's test command: installs dependencies, builds from a clean
# configure with -Werror, runs `make check` (Check unit tests + integration
# scenarios on a real mount, real loop devices, real kernel swap) and
# `make distcheck` (tarball builds and its unit tests pass).
# Usage (root, repo top): tools/run-tests.sh [--no-distcheck]
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
modprobe fuse 2>/dev/null || true
modprobe loop 2>/dev/null || true
autoreconf -fi >/dev/null
./configure -q --enable-werror
make -j"$(nproc)" >/dev/null
rc=0
make -j1 check || rc=$?
if [ $rc -ne 0 ]; then
	for f in test-suite.log; do [ -f "$f" ] && cat "$f"; done
	exit $rc
fi
if [ "${1:-}" != "--no-distcheck" ]; then
	make -j"$(nproc)" distcheck >/tmp/hecache-distcheck.log 2>&1 ||
		{ tail -50 /tmp/hecache-distcheck.log; echo "distcheck failed"; exit 1; }
	echo "distcheck: passed"
fi
