#!/usr/bin/env bash
# Installs what a fresh clone needs: npm packages (bun, deno, tsx and miniflare come from npm) and,
# when it is missing, redis-server (Debian/Ubuntu: apt-get, as root or through sudo); with
# --browser, chromium and openssl for the tests too.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/bun ] || [ ! -x node_modules/.bin/deno ] || [ ! -d node_modules/ioredis ] || [ ! -d node_modules/miniflare ]; then
  echo "installing npm dependencies..." >&2
  npm install --no-audit --no-fund >&2
fi
if [ -z "${REDIS_URL:-}" ] && ! command -v redis-server >/dev/null 2>&1; then
  echo "redis-server not found; installing it..." >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -q >&2 && $SUDO apt-get install -y -q redis-server >&2
  else
    echo "please install redis-server (Redis >= 6.2), or set REDIS_URL to a running Redis" >&2
    exit 1
  fi
fi
# with --browser (the test command): the dashboard's browser test drives Debian's chromium, installed
# the same way when it is missing
if [ "${1:-}" = "--browser" ] && ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "chromium not found; installing it for the browser tests..." >&2
  { $SUDO apt-get update -q >&2 && $SUDO apt-get install -y -q chromium >&2; } || echo "could not install chromium: the browser tests will fail" >&2
fi
# the TLS tests make their certificates with openssl
if [ "${1:-}" = "--browser" ] && ! command -v openssl >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "openssl not found; installing it for the TLS tests..." >&2
  { $SUDO apt-get update -q >&2 && $SUDO apt-get install -y -q openssl >&2; } || echo "could not install openssl: the TLS tests will fail" >&2
fi
