#!/usr/bin/env bash
# GET /api/protected with DPoP-bound tokens against Bearer tokens, on
# loopback only: the scenarios of tests/examples/dpop_load.rs (bearer;
# dpop-es256 and dpop-eddsa: a fresh proof signed by the client for every
# request) against the release `authd serve` on SQLite, a fresh server and
# database for each scenario, so its resident memory after the scenario less
# before is that scenario's (the replay cache's, for DPoP). With PEER=1 the
# original stack's Bearer figure comes from the same run: first the shared
# side-by-side's `protected` scenario against the Node peer, with the same
# DUR and CONC. Prints the JSON lines, then a table.
#
#   cargo build --release -p authd --bin authd -p integration-tests --example dpop_load
#   bench/dpop_load.sh [target/release/authd]
#
# Settings (environment): DUR seconds per scenario (10), CONC requests in
# flight (16, as the side-by-side's protected), SCENARIOS ("bearer
# dpop-es256 dpop-eddsa"), PEER=1 to run the peer first (0; it needs Node
# and PostgreSQL, and builds the shared loadgen, so a few minutes), LONG
# seconds of one more dpop-eddsa run that outlasts the replay window (120 s,
# twice the 61 s an id is kept: the cache then holds all it will at that
# rate, up to its 1,835,008 ids; 0 for none), LOAD the dpop_load binary (target/release/examples/dpop_load),
# SHARED_BENCH (../shared/bench), IDLE_WAIT seconds to wait at most for an
# idle machine (under 10 % busy for 2 s) before each scenario (30; 0 for
# none), OUT a file the JSON lines are also appended to (the peer's too),
# KEEP=1 keeps the work directory (server logs). Each line says where the
# CPU went (server, dpop_load, everything else) and the server's RSS before
# and after. Servers: an RSA 4096 key made by openssl (RS256 tokens, as the
# side-by-side's), the verified-token cache on (its default),
# COOKIE_SECURE=false, LOGIN_MAX_FAILURES=1000000; otherwise production
# settings (DPOP_PROOF_MAX_AGE 60 s).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(realpath "${1:-$root/target/release/authd}")
load=$(realpath "${LOAD:-$root/target/release/examples/dpop_load}")
shared=${SHARED_BENCH:-$root/../shared/bench}
DUR=${DUR:-10}; CONC=${CONC:-16}; SCENARIOS=${SCENARIOS:-"bearer dpop-es256 dpop-eddsa"}
PEER=${PEER:-0}; LONG=${LONG:-0}; IDLE_WAIT=${IDLE_WAIT:-30}
[ -x "$bin" ] || { echo "no $bin: cargo build --release -p authd first" >&2; exit 1; }
[ -x "$load" ] || { echo "no $load: cargo build --release -p integration-tests --example dpop_load" >&2; exit 1; }
[ "$PEER" = 0 ] || [ -x "$shared/side-by-side.sh" ] || { echo "no $shared/side-by-side.sh" >&2; exit 1; }

work=$(mktemp -d -t dpop-load.XXXXXX)
# side-by-side.sh makes its directory under $TMPDIR (this one) and runs
# PostgreSQL as the postgres user inside it.
chmod 711 "$work"
pid=""
finish() {
  local rc=$?
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  if [ "$rc" -ne 0 ] || [ -n "${KEEP:-}" ]; then echo "dpop_load: work directory kept: $work" >&2
  else rm -rf "$work"; fi
}
trap finish EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$work/private.pem" 2>/dev/null
openssl pkey -in "$work/private.pem" -pubout -out "$work/public.pem"; chmod 600 "$work/private.pem"

start() { # name: a fresh server on a fresh SQLite file
  local run="$work/$1"
  mkdir -m 700 "$run"
  port=$(free_port)
  ( cd "$run" && API_ADDR=127.0.0.1:$port WS_ADDR=127.0.0.1:$(free_port) \
    DATABASE_URL="sqlite://$run/authd.db?mode=rwc" \
    PRIVATE_KEY_PATH="$work/private.pem" PUBLIC_KEY_PATH="$work/public.pem" \
    REFRESH_SEAL_KEY_PATH="$run/refresh-seal.key" \
    COOKIE_SECURE=false LOGIN_MAX_FAILURES=1000000 RUST_LOG=${RUST_LOG:-warn} \
    exec "$bin" serve ) >"$run/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && return
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "dpop_load: the server did not start ($run/server.log):" >&2; tail -20 "$run/server.log" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }
busy_pct() { # of all CPUs over 2 s, from /proc/stat
  local a b
  a=$(head -1 /proc/stat); sleep 2; b=$(head -1 /proc/stat)
  python3 -c 'import sys
a, b = ([int(x) for x in l.split()[1:9]] for l in sys.argv[1:])
d = [y - x for x, y in zip(a, b)]
print(round(100 * (sum(d) - d[3] - d[4]) / max(sum(d), 1)))' "$a" "$b"
}
settle() { # waits up to IDLE_WAIT s for the machine to be idle
  local waited=0 busy
  while [ "$waited" -lt "$IDLE_WAIT" ]; do
    busy=$(busy_pct); [ "$busy" -lt 10 ] && return
    waited=$((waited + 2))
  done
  [ "$IDLE_WAIT" -gt 0 ] && echo "dpop_load: the machine is still ${busy}% busy after ${IDLE_WAIT} s; running anyway" >&2
  return 0
}

echo "dpop_load: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores;" \
  "server and client on the same cores; $DUR s per scenario, $CONC in flight" >&2
lines="$work/results.jsonl"
if [ "$PEER" = 1 ]; then
  settle
  echo "dpop_load: the peer, side-by-side.sh protected (its loadgen is built first)" >&2
  env TMPDIR="$work" OUT="$work/peer.jsonl" WHO=peer SCENARIOS=protected ROUNDS=1 \
    DUR="$DUR" CONC="$CONC" "$shared/side-by-side.sh" >"$work/side-by-side.log" 2>&1 \
    || echo "dpop_load: side-by-side.sh exited $? (see $work/side-by-side.log)" >&2
  grep '"scenario": *"protected"' "$work/peer.jsonl" | tee -a "$lines" \
    || { echo "dpop_load: no peer figure (see $work/side-by-side.log)" >&2; KEEP=1; }
fi
run() { # scenario seconds label
  start "$3"
  settle
  echo "dpop_load: authd-lite $1, $2 s" >&2
  "$load" "http://127.0.0.1:$port" "$1" "$2" "$CONC" authd-lite "$pid" | tee -a "$lines"
  stop
}
for scenario in $SCENARIOS; do run "$scenario" "$DUR" "$scenario"; done
[ "$LONG" -gt 0 ] && run dpop-eddsa "$LONG" dpop-eddsa-long
if grep -Eq '"errors": ?[1-9]' "$lines"; then
  echo "dpop_load: errors; the servers' logs are in $work" >&2; KEEP=1
fi
[ -n "${OUT:-}" ] && cat "$lines" >>"$OUT"

python3 - "$lines" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
peer = next((r for r in rows if r.get("who") == "peer"), None)
ours = [r for r in rows if r.get("who") != "peer"]
def mib(b):
    return "—" if b is None else f"{b / 2**20:+.1f} MiB"
print()
print("| scenario | s | requests/s | p50 / p99 | errors | CPU server / client / other (% of one core) "
      "| µs per request server / client | RSS growth | replay ids at the end / at most | bytes / id at the peak | vs the peer's Bearer |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
if peer:
    cpu = sum(s.get("cpu_pct_of_one_core") or 0 for s in peer.get("server", []))
    print(f"| peer `protected` (Bearer, loadgen) | {peer.get('duration_s', '?')} | {peer['ops_per_s']:,.0f} "
          f"| {peer.get('p50_ms')} / {peer.get('p99_ms')} ms | {peer.get('errors', 0)} "
          f"| {cpu:.0f} / {peer.get('loadgen_cpu', {}).get('pct_of_one_core', '—')} / "
          f"{peer.get('other_cpu_pct_of_one_core', '—')} | — | — | — | — | 1.00x |")
for r in ours:
    cpu = " / ".join(str(r.get(f"{k}_cpu_pct_of_one_core", "—")) for k in ("server", "client", "other"))
    us = " / ".join(str(r.get(f"{k}_cpu_us_per_request", "—")) for k in ("server", "client"))
    ratio = f"{r['requests_per_s'] / peer['ops_per_s']:.2f}x" if peer and peer.get("ops_per_s") else "—"
    held, peak = r.get("replay_window_requests"), r.get("replay_window_peak_requests")
    entries = None if held is None else f"{held:,} / {peak:,}"
    print(f"| {r['scenario']} | {r['duration_s']:.0f} | {r['requests_per_s']:,.0f} | {r['p50_ms']} / {r['p99_ms']} ms "
          f"| {r['errors']} | {cpu} | {us} | {mib(r.get('server_rss_growth_bytes'))} "
          f"| {entries or '—'} | {r.get('rss_growth_bytes_per_replay_entry') or '—'} | {ratio} |")
EOF
