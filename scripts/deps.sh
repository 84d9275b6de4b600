#!/usr/bin/env bash
# Installs what mailguard needs on Debian (12 "bookworm" or later):
#   build: gcc, pkg-config, libyara-dev (YARA is always compiled in), Go ≥ 1.26
#   tests: postfix (smtp-sink, smtp-source, a private downstream MTA), swaks,
#          zip/7z/cabextract, yara, clamav-testfiles, genisoimage, dosfstools,
#          mtools, qemu-utils (disk images), jlha-utils, arj, postgresql (the server
#          binaries: scripts/test.sh runs a private cluster for store/postgres)
# Usage: scripts/deps.sh [build|test]   (default: build). Needs root for apt.
set -euo pipefail
what=${1:-build}
GO_VERSION=${GO_VERSION:-1.26.8}

pkgs=(gcc pkg-config libyara-dev ca-certificates curl)
if [ "$what" = test ]; then
  pkgs+=(postfix swaks zip unzip p7zip-full cabextract yara clamav-testfiles xorriso postgresql
         genisoimage dosfstools mtools qemu-utils jlha-utils arj)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  # Postfix must not ask questions nor take over port 25 on this machine:
  # tests run private instances on loopback ports.
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Go: use the one on PATH or in /usr/local/go when recent enough, else
# install the official release into /usr/local/go.
go_ok() {
  local g=$1
  [ -x "$g" ] || return 1
  local v
  v=$("$g" env GOVERSION 2>/dev/null | sed 's/^go//')
  [ -n "$v" ] && [ "$(printf '%s\n1.26\n' "$v" | sort -V | head -1)" = "1.26" ]
}
if go_ok "$(command -v go 2>/dev/null || true)"; then
  exit 0
fi
if go_ok /usr/local/go/bin/go; then
  exit 0
fi
echo "installing Go $GO_VERSION into /usr/local/go" >&2
arch=$(dpkg --print-architecture)
tmp=$(mktemp -d)
curl -fsSL "https://go.dev/dl/go${GO_VERSION}.linux-${arch}.tar.gz" -o "$tmp/go.tgz"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo rm -rf /usr/local/go
$sudo tar -C /usr/local -xzf "$tmp/go.tgz"
rm -rf "$tmp"
