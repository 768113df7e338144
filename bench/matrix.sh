#!/usr/bin/env bash
# The throughput matrix: bench/throughput.ts under Bun and under Node, at concurrency 10, 100 and
# 1000 with noop jobs, and at concurrency 100 with 1 KB payloads; then one table of the medians.
#
#   bash bench/matrix.sh            (JOBS=20000 ROUNDS=3 by default; OUT=file for the JSON lines)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/.out
out=${OUT:-bench/.out/matrix.jsonl}
: > "$out"
jobs=${JOBS:-20000}
rounds=${ROUNDS:-3}
node_modules/.bin/esbuild bench/throughput.ts --bundle --platform=node --format=esm --packages=external --log-level=warning --outfile=bench/.out/throughput.mjs
for rt in bun node; do
  for cfg in "--concurrency 10" "--concurrency 100" "--concurrency 1000" "--concurrency 100 --payload 1024"; do
    echo "== $rt $cfg" >&2
    if [ "$rt" = bun ]; then cmd=(node_modules/.bin/bun bench/throughput.ts); else cmd=(node bench/.out/throughput.mjs); fi
    # shellcheck disable=SC2086
    "${cmd[@]}" --jobs "$jobs" --rounds "$rounds" $cfg | tail -1 >> "$out"
  done
done
node_modules/.bin/bun bench/matrix-table.ts "$out"
