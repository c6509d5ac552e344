#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
# Installs what hecache needs to build, test and benchmark on Debian 12
# (run as root).  Does nothing when everything is already installed.
set -euo pipefail
PKGS=(build-essential autoconf automake libtool pkg-config
	libfuse3-dev fuse3 liburing-dev libaio-dev libxxhash-dev check libjson-c-dev
	fio attr util-linux e2fsprogs kmod procps jq gnuplot-nox)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages (${missing[*]}); run as root" >&2
	exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
