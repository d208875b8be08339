#!/usr/bin/env bash
# Install promtool, Prometheus's rule checker, from Debian's prometheus package, without
# installing the package: no Prometheus server, no service, no postinst scripts.
#
# Usage: scripts/install-promtool.sh DEST   (e.g. .tools/bin/promtool)
#
# apt-get download verifies the package against the archive's signed index. It needs apt's
# package lists; as root it refreshes them once when the package is not found.
set -euo pipefail

if [[ $# -ne 1 ]]; then
  echo "usage: $0 DEST" >&2
  exit 2
fi
dest=$1

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

if ! apt-get download prometheus >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "cannot download Debian's prometheus package: run 'sudo apt-get update', or put promtool on PATH" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get download prometheus >/dev/null 2>&1
fi
dpkg-deb -x prometheus_*.deb extracted
cd - >/dev/null
install -D -m 0755 "$tmp/extracted/usr/bin/promtool" "$dest"
"$dest" --version | head -1
