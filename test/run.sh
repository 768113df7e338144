#!/usr/bin/env bash
# The test command (npm test): type-check under strict, then every bun:test suite against a
# throwaway redis-server. The last line reads `tests: N passed, M failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/ensure-deps.sh || { echo "tests: 0 passed, 1 failed"; exit 1; }
BIN="$PWD/node_modules/.bin"
export PATH="$BIN:$PATH"

typecheck_failed=0
echo "== type-check (tsc --strict)"
if ! "$BIN/tsc" -p tsconfig.json; then typecheck_failed=1; fi

echo "== bun test"
log=$(mktemp)
"$BIN/bun" test "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
pass=$(grep -Eo '^ *[0-9]+ pass$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
fail=$(grep -Eo '^ *[0-9]+ fail$' "$log" | tail -1 | grep -Eo '[0-9]+' || echo 0)
rm -f "$log"
if [ "$status" -ne 0 ] && [ "$fail" -eq 0 ]; then fail=1; fi   # a crash outside any test
pass=$((pass + 1 - typecheck_failed))
fail=$((fail + typecheck_failed))
echo "tests: ${pass} passed, ${fail} failed"
[ "$fail" -eq 0 ]
