#!/usr/bin/env bash
# Tests of the JavaScript client (clients/js) and the Next.js example
# (examples/nextjs), run from the repository root:
#
#   bash clients/test.sh
#
# npm ci in each package, type-check (package, tests, example), unit tests,
# build, package size, browser tests in Debian's Chromium against the real
# Rotor, and the Next.js end-to-end test (next build + next start). Every
# server it starts is stopped on exit, failure included. Prints durations.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

export PATH="$PATH:/usr/local/go/bin"
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 NEXT_TELEMETRY_DISABLED=1 npm_config_fund=false npm_config_audit=false
TMP=$(mktemp -d "${TMPDIR:-/tmp}/rotor-clients.XXXXXX")

# Stop every process this script started (by PID, walking its descendants),
# then remove the temp dir.
descendants() {
  local kids k
  kids=$(ps -o pid= --ppid "$1" 2>/dev/null || true)
  for k in $kids; do
    descendants "$k"
    echo "$k"
  done
}
cleanup() {
  local rc=$?
  local pids
  pids=$(descendants $$)
  if [ -n "$pids" ]; then
    echo "== clients: stopping what is still running: $(echo $pids)" >&2
    kill $pids 2>/dev/null || true
    sleep 1
    kill -9 $pids 2>/dev/null || true
  fi
  rm -rf "$TMP"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

TOTAL_START=$(date +%s.%N)
TIMES=()
step() { # name command...
  local name=$1
  shift
  echo "== clients: $name"
  local t0
  t0=$(date +%s.%N)
  # in the background, so that a signal to this script interrupts the wait
  # at once and the EXIT trap stops the step's processes
  "$@" &
  wait $!
  local d
  d=$(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{print a-b}')
  TIMES+=("$(printf '%6.1f s  %s' "$d" "$name")")
  printf '   (%.1f s)\n' "$d"
}

if ! command -v chromium >/dev/null && [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (Debian) for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium fonts-liberation >/dev/null
fi

step "go build rotor" go build -o "$TMP/rotor" ./cmd/server
export ROTOR_BIN="$TMP/rotor"

step "npm ci (clients/js)" npm ci --prefix clients/js --no-fund --no-audit --loglevel=error
step "npm ci (examples/nextjs)" npm ci --prefix examples/nextjs --no-fund --no-audit --loglevel=error

cd "$ROOT/clients/js"
step "tsc --noEmit (package and tests)" npm run -s typecheck
step "build (tsc → dist/)" npm run -s build
step "size (esbuild minify + gzip)" node scripts/size.mjs
step "compile tests" npm run -s build:test
step "unit tests (node --test, fake clock and fetch)" node --test build/test/unit/

cd "$ROOT/examples/nextjs"
step "tsc --noEmit (examples/nextjs)" npx tsc --noEmit
step "next build" npx next build

cd "$ROOT/clients/js"
step "browser tests (Chromium + real Rotor)" node --test build/test/browser/client.test.js
step "Next.js e2e (Chromium + next start + real Rotor)" node --test build/test/browser/next.test.js

cd "$ROOT"
echo "== clients: durations"
printf '%s\n' "${TIMES[@]}"
printf '%6.1f s  total\n' "$(awk -v a="$(date +%s.%N)" -v b="$TOTAL_START" 'BEGIN{print a-b}')"
