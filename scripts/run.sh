#!/usr/bin/env bash
# Quick start: installs the build dependencies, builds mailguard, checks the
# example policy.hcl and runs the gateway with it (SMTP on 127.0.0.1:2525,
# accepted mail delivered into ./var/maildir). Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh build
export PATH="/usr/local/go/bin:$PATH" GOTOOLCHAIN=local
go build -o bin/mailguard ./cmd/mailguard
bin/mailguard check --config policy.hcl
exec bin/mailguard serve --config policy.hcl "$@"
