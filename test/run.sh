#!/usr/bin/env bash
# The test command (npm test): type-check under strict, then every bun:test suite against a
# throwaway redis-server, then the core suites against a throwaway valkey-server. The last line
# reads `tests: N passed, M failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh --browser || { echo "tests: 0 passed, 1 failed"; exit 1; }
BIN="$PWD/node_modules/.bin"
export PATH="$BIN:$PATH"

typecheck_failed=0
echo "== type-check (tsc --strict)"
if ! "$BIN/tsc" -p tsconfig.json; then typecheck_failed=1; fi
# the compiled package (dist/) that the bin and the packaging tests use
echo "== build (dist/)"
rm -rf dist
if ! "$BIN/tsc" -p tsconfig.build.json; then typecheck_failed=1; fi

echo "== bun test"
log=$(mktemp)
"$BIN/bun" test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
pass=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
fail=$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
rm -f "$log"
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi   # a crash outside any test

# The core suites again, on Valkey 8 instead of Redis (test/harness.ts starts valkey-server when
# SLUICE_TEST_SERVER=valkey). Only on a full run against our own server: not when test files or
# flags were given, nor when REDIS_URL names a server.
VALKEY_SUITES=(test/queue.test.ts test/worker.test.ts test/recovery.test.ts test/abort.test.ts test/timeout.test.ts test/inspect.test.ts test/rerun.test.ts test/reliability.test.ts test/faults.test.ts test/hardening.test.ts test/hostile.test.ts test/flow.test.ts)
if [ "$#" -gt 0 ] || [ -n "${REDIS_URL:-}" ]; then
  echo "== bun test on Valkey: skipped (test files or flags given, or REDIS_URL set)"
elif ! command -v valkey-server >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    echo "== bun test on Valkey: valkey-server is not installed (CI=true: counted as a failure)"
    fail=$((fail + 1))
  else
    echo "== bun test on Valkey: skipped, valkey-server is not installed (Debian: apt-get install -t bookworm-backports valkey-server)"
  fi
else
  echo "== bun test on Valkey ($(valkey-server --version | grep -Eo 'v=[^ ]+'))"
  log=$(mktemp)
  SLUICE_TEST_SERVER=valkey "$BIN/bun" test "${VALKEY_SUITES[@]}" 2>&1 | tee "$log"
  vstatus=${PIPESTATUS[0]}
  vpass=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  vfail=$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
  rm -f "$log"
  if [ "$vstatus" -ne 0 ] && [ "$vfail" -eq 0 ]; then vfail=1; fi
  pass=$((pass + vpass))
  fail=$((fail + vfail))
fi

pass=$((pass + 1 - typecheck_failed))
fail=$((fail + typecheck_failed))
echo "tests: ${pass} passed, ${fail} failed"
[ "$fail" -eq 0 ]
