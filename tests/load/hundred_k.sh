#!/usr/bin/env bash
# Holds 100,000+ WebSocket connections at once on this machine: PAIRS pairs of
# `ws_load hold PER_PAIR HOLD_SECONDS` (each a client process with its own
# server process, the real adapters::ws::serve over SQLite; one process may
# hold at most 20,000 open files). Once every pair reports CONNECTED, it reads
# at the same moment every server's VmRSS, its open descriptors and its
# ESTABLISHED sockets, and prints the totals; then the pairs finish their hold
# and exit by themselves. Loopback only; every wait is bounded.
#
#   tests/load/hundred_k.sh [PAIRS] [PER_PAIR] [HOLD_SECONDS]
#   WS_LOAD=/path/to/ws_load (default: the release build in /tmp/ws-release)
set -euo pipefail

PAIRS=${1:-6}
PER_PAIR=${2:-17000}
HOLD=${3:-120}
WS_LOAD=${WS_LOAD:-/tmp/ws-release/release/examples/ws_load}
LOGS=$(mktemp -d /tmp/hundred_k.XXXXXX)
[ -x "$WS_LOAD" ] || { echo "no ws_load binary at $WS_LOAD" >&2; exit 1; }

echo "$PAIRS pairs x $PER_PAIR connections, hold $HOLD s; logs in $LOGS"
started=$(date +%s.%N)
pids=()
for i in $(seq 1 "$PAIRS"); do
    # The hard timeout bounds each pair whatever happens.
    timeout --kill-after=10 $((HOLD + 600)) "$WS_LOAD" hold "$PER_PAIR" "$HOLD" \
        >"$LOGS/pair$i.log" 2>&1 &
    pids+=($!)
done

# Wait (at most 540 s) until every pair printed CONNECTED.
for _ in $(seq 1 1080); do
    ready=$(cat "$LOGS"/pair*.log 2>/dev/null | grep -c "^CONNECTED" || true)
    [ "$ready" -ge "$PAIRS" ] && break
    sleep 0.5
done
all_connected=$(date +%s.%N)
if [ "$ready" -lt "$PAIRS" ]; then
    echo "only $ready of $PAIRS pairs connected in time" >&2
fi

# One snapshot of every server, taken together.
sleep 2
total_rss=0; total_fds=0; total_est=0; total_conn=0
snapshot=$(date -u +%T)
for i in $(seq 1 "$PAIRS"); do
    read -r spid saddr < <(awk '/^SERVER/ {print $2, $3; exit}' "$LOGS/pair$i.log")
    conn=$(awk '/^CONNECTED/ {print $2; exit}' "$LOGS/pair$i.log")
    rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$spid/status" 2>/dev/null || echo 0)
    fds=$(find "/proc/$spid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
    est=$(ss -Htn state established src "$saddr" | wc -l)
    echo "server $i pid $spid on $saddr: client says connected $conn; ESTABLISHED $est; open files $fds; VmRSS $rss KiB"
    total_rss=$((total_rss + rss)); total_fds=$((total_fds + fds))
    total_est=$((total_est + est)); total_conn=$((total_conn + ${conn:-0}))
done
echo "AT $snapshot UTC: $total_est ESTABLISHED server-side WebSocket sockets ($total_conn connected per the clients, $total_fds server descriptors) held at once by $PAIRS server processes"
echo "total server RSS $total_rss KiB = $((total_rss / 1024)) MiB, $(awk -v r="$total_rss" -v n="$total_est" 'BEGIN {printf "%.1f", r / (n ? n : 1)}') KiB per connection (server idle RSS included)"
echo "all pairs connected $(awk -v a="$started" -v b="$all_connected" 'BEGIN {printf "%.1f", b - a}') s after the start (process start, key generation and login included)"
free -m | awk 'NR <= 2'

status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
grep -h '^CONNECTED\|^HELD' "$LOGS"/pair*.log
exit $status
