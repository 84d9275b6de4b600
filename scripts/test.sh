#!/usr/bin/env bash
# Runs every test: vet, the unit and end-to-end suites (race detector on,
# real Postfix, swaks, 7z, YARA, clamav-testfiles; a missing tool is a
# failure, not a skip), then a short run of every fuzz target.
# FUZZTIME=0 skips fuzzing; FUZZTIME=60s fuzzes longer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh test
export PATH="/usr/local/go/bin:$PATH" GOTOOLCHAIN=local MAILGUARD_E2E_STRICT=1
fuzztime=${FUZZTIME:-2s}

echo "== go vet"
go vet ./...
echo "== go test -race"
go test -race -shuffle=on -timeout 30m ./...
if [ "$fuzztime" != 0 ]; then
  echo "== fuzz ($fuzztime each)"
  grep -rl --include='*_test.go' '^func Fuzz' . | while read -r f; do
    dir=$(dirname "$f")
    grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //' | while read -r fn; do
      echo "-- $dir $fn"
      go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$fuzztime" "$dir" >/tmp/mailguard-fuzz.log 2>&1 || {
        cat /tmp/mailguard-fuzz.log; exit 1; }
    done
  done
fi
echo "== all tests passed"
