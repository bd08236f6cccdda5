#!/usr/bin/env bash
# Holds 100,000+ WebSockets at once on the real `authd ws` binary: PROCS
# `authd ws` processes share one port (WS_REUSE_PORT, SO_REUSEPORT) beside
# one `authd api`, all on one SQLite file (they hear each other's
# revocations through it); PROCS `ws_load connect` clients open PER sockets
# each for one user (one process may hold at most 20,000 open files). Once
# every client is connected it reads every server's VmRSS and ESTABLISHED
# sockets at the same moment; after the hold (pings answered throughout) it
# logs the user out and times the last socket's 4003. Loopback only; every
# wait is bounded.
#
#   tests/load/hundred_k_authd.sh [PROCS] [PER] [HOLD_SECONDS] [deflate]
#   AUTHD=target/release/authd WS_LOAD=target/release/examples/ws_load (defaults)
set -euo pipefail

PROCS=${1:-6}
PER=${2:-17000}
HOLD=${3:-120}
DEFLATE=${4:-}
AUTHD=${AUTHD:-target/release/authd}
WS_LOAD=${WS_LOAD:-target/release/examples/ws_load}
[ -x "$AUTHD" ] || { echo "no authd binary at $AUTHD" >&2; exit 1; }
[ -x "$WS_LOAD" ] || { echo "no ws_load binary at $WS_LOAD (cargo build --release -p integration-tests --example ws_load)" >&2; exit 1; }
AUTHD=$(realpath "$AUTHD"); WS_LOAD=$(realpath "$WS_LOAD")
DIR=$(mktemp -d /tmp/hundred_k_authd.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
API_PORT=$(free_port); WS_PORT=$(free_port)
echo "$PROCS authd ws on 127.0.0.1:$WS_PORT x $PER sockets, hold $HOLD s ${DEFLATE:+(permessage-deflate offered)}; logs in $DIR"

export DATABASE_URL="sqlite://$DIR/authd.db" PRIVATE_KEY_PATH="$DIR/keys/private.pem" \
    PUBLIC_KEY_PATH="$DIR/keys/public.pem" COOKIE_SECURE=false LOG_FORMAT=json RUST_LOG=warn \
    WS_MAX_CONNECTIONS_PER_USER=1000000 API_ADDR="127.0.0.1:$API_PORT" WS_ADDR="127.0.0.1:$WS_PORT" \
    WS_REUSE_PORT=true
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; }
trap cleanup EXIT
# The API first: it creates the keys the others read.
"$AUTHD" api >"$DIR/api.log" 2>&1 & pids+=($!)
for _ in $(seq 1 600); do curl -fs "http://127.0.0.1:$API_PORT/api/health" >/dev/null && break; sleep 0.2; done
ws_pids=()
for i in $(seq 1 "$PROCS"); do
    "$AUTHD" ws >"$DIR/ws$i.log" 2>&1 & pids+=($!); ws_pids+=($!)
done
sleep 3

api() { curl -fsS -H 'content-type: application/json' "http://127.0.0.1:$API_PORT/api/$1" "${@:2}"; }
api register -d '{"username":"holder","password":"hold them all 100k"}' >/dev/null
login=$(api login -d '{"username":"holder","password":"hold them all 100k"}' -D "$DIR/login.headers")
TOKEN=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["accessToken"])' "$login")
COOKIE=$(grep -io 'refreshToken=[^;]*' "$DIR/login.headers" | head -1)

echo "idle authd ws RSS: $(for p in "${ws_pids[@]}"; do awk '/^VmRSS:/ {printf "%s ", $2}' /proc/$p/status; done)KiB"
started=$(date +%s.%N)
clients=()
for i in $(seq 1 "$PROCS"); do
    timeout --kill-after=10 $((HOLD + 600)) "$WS_LOAD" connect "127.0.0.1:$WS_PORT" "$TOKEN" "$PER" "$HOLD" $DEFLATE \
        >"$DIR/client$i.log" 2>&1 &
    clients+=($!)
done
for _ in $(seq 1 1080); do
    ready=$(cat "$DIR"/client*.log 2>/dev/null | grep -c "^CONNECTED" || true)
    [ "$ready" -ge "$PROCS" ] && break
    sleep 0.5
done
echo "all clients connected $(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s after they started"
grep -h "^CONNECTED" "$DIR"/client*.log

sleep 5
snapshot() {
    local total_rss=0 total_est=0
    # One pass over the sockets (ss per process would take a minute at 100k).
    ss -Htnp state established "( sport = :$WS_PORT )" | grep -o 'pid=[0-9]*' | sort | uniq -c >"$DIR/est"
    for pid in "${ws_pids[@]}"; do
        rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        est=$(awk -v p="pid=$pid" '$2 == p {print $1}' "$DIR/est"); est=${est:-0}
        echo "  authd ws pid $pid: $est ESTABLISHED, VmRSS $rss KiB"
        total_rss=$((total_rss + rss)); total_est=$((total_est + est))
    done
    echo "$1 $(date -u +%T) UTC: $total_est sockets on $PROCS authd ws processes, total RSS $total_rss KiB = $((total_rss / 1024)) MiB, $(awk -v r="$total_rss" -v n="$total_est" 'BEGIN {printf "%.0f", r * 1024 / (n ? n : 1)}') bytes per socket (idle process RSS included)"
}
snapshot CONNECTED
for _ in $(seq 1 $((HOLD * 2 + 1200))); do
    over=$(cat "$DIR"/client*.log | grep -c "^HOLD_OVER" || true)
    [ "$over" -ge "$PROCS" ] && break
    sleep 0.5
done
# The clients wait 60 s for the closes: log out at once, look after.
logout_ms=$(python3 -c 'import time; print(int(time.time() * 1000))')
curl -fsS -X POST -H "cookie: $COOKIE" "http://127.0.0.1:$API_PORT/api/logout" -o /dev/null -w 'logout: HTTP %{http_code}\n'
status=0
for pid in "${clients[@]}"; do wait "$pid" || status=1; done
grep -h "^HELD\|^CLOSED" "$DIR"/client*.log
last=$(grep -ho "last at [0-9]*" "$DIR"/client*.log | awk '{print $3}' | sort -n | tail -1)
echo "last socket closed $((last - logout_ms)) ms after the logout was sent"
exit $status
