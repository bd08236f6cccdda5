#!/usr/bin/env bash
# Load run of the REST API with wrk, on loopback only: GET /api/protected with
# and without the verified-token cache, refreshes/s and logins/s, and the
# server's resident memory. Needs a release build and wrk (apt-get install wrk):
#   cargo build --release -p authd && bench/http_load.sh [target/release/authd]
set -euo pipefail
bin=${1:-target/release/authd}
secs=${SECS:-10}
port=${PORT:-3900}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$work"' EXIT
base="http://127.0.0.1:$port/api"

start() { # $1 = TOKEN_CACHE_SIZE
  API_ADDR=127.0.0.1:$port WS_ADDR=127.0.0.1:$((port + 1)) COOKIE_SECURE=false \
  DATABASE_URL="sqlite://$work/authd.db?mode=rwc" \
  PRIVATE_KEY_PATH=$work/private.pem PUBLIC_KEY_PATH=$work/public.pem \
  TOKEN_CACHE_SIZE=$1 LOGIN_MAX_FAILURES=1000000 RUST_LOG=warn ${EXTRA_ENV:-} \
    "$bin" serve >>"$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf "$base/health" >/dev/null && return; sleep 0.2; done
  echo "server did not start" >&2; cat "$work/server.log" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; }
rss() { awk '/VmRSS/ {print $2 " KiB"}' "/proc/$pid/status"; }
login() {
  curl -sf -D "$work/h" "$base/login" -H 'content-type: application/json' \
    -d '{"username":"bench","password":"bench password 1"}' | sed 's/.*"accessToken":"\([^"]*\)".*/\1/'
}
cookie() { sed -n 's/^set-cookie: refreshToken=\([^;]*\);.*/\1/ip' "$work/h"; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; wrk on the same machine"
for cache in 10000 0; do
  start "$cache"
  curl -sf "$base/register" -H 'content-type: application/json' \
    -d '{"username":"bench","password":"bench password 1"}' >/dev/null || true
  token=$(login)
  echo "== GET /api/protected, TOKEN_CACHE_SIZE=$cache (RSS at start $(rss))"
  wrk -t2 -c64 -d"${secs}s" --latency -H "Authorization: Bearer $token" "$base/protected" \
    | grep -E 'Requests/sec|99%|Non-2xx'
  echo "   RSS after: $(rss)"
  if [ "$cache" = 10000 ]; then
    login >/dev/null; rt1=$(cookie); login >/dev/null; rt2=$(cookie)
    echo "== POST /api/refresh (2 rotating chains)"
    RT1=$rt1 RT2=$rt2 wrk -t2 -c2 -d"${secs}s" --latency -s bench/refresh.lua "$base/refresh" \
      | grep -E 'Requests/sec|99%|Non-2xx'
    echo "== POST /api/login"
    wrk -t2 -c8 -d"${secs}s" --latency -s bench/login.lua "$base/login" \
      | grep -E 'Requests/sec|99%|Non-2xx'
    echo "   RSS after: $(rss)"
  fi
  stop
done
