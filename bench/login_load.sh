#!/usr/bin/env bash
# Passkey logins/s against password logins/s, on loopback only: the release
# `authd serve` on SQLite and on PostgreSQL, each scenario of
# tests/examples/login_load.rs (password-login: POST /api/login; passkey-login:
# options + an ES256 assertion of a software authenticator + POST
# /api/login/passkey) against it; prints the JSON lines, then a table with the
# ratio passkey / password.
#
#   cargo build --release -p authd --bin authd -p integration-tests --example login_load
#   bench/login_load.sh [target/release/authd]
#
# Settings (environment): DUR seconds per scenario (10), CONC logins in flight
# (16, as the side-by-side's login), DBS ("sqlite postgres"), ALGS the JWT_ALG
# values, one server each ("RS256 ES256": the default RS256 4096 signature is
# a third of a password login's CPU and most of a passkey login's), LOAD the
# login_load binary (target/release/examples/login_load), IDLE_WAIT seconds
# to wait at most for an idle machine (under 10 % busy for 2 s) before each
# scenario (30; 0 for none), OUT a file the JSON lines are also appended to,
# KEEP=1 keeps the work directory (server logs). Each JSON line says where the
# CPU went meanwhile (server, PostgreSQL, login_load, everything else).
# PostgreSQL: the newest /usr/lib/postgresql/*/bin, run as the postgres user
# in a throwaway cluster on 127.0.0.1 (as ../shared/bench/side-by-side.sh).
# The servers keep their production settings (argon2id 19 MiB t=2, the
# timing floor) except COOKIE_SECURE=false and LOGIN_MAX_FAILURES=1000000.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(realpath "${1:-$root/target/release/authd}")
load=$(realpath "${LOAD:-$root/target/release/examples/login_load}")
DUR=${DUR:-10}; CONC=${CONC:-16}; DBS=${DBS:-"sqlite postgres"}; ALGS=${ALGS:-"RS256 ES256"}
IDLE_WAIT=${IDLE_WAIT:-30}
[ -x "$bin" ] || { echo "no $bin: cargo build --release -p authd first" >&2; exit 1; }
[ -x "$load" ] || { echo "no $load: cargo build --release -p integration-tests --example login_load" >&2; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

work=$(mktemp -d -t login-load.XXXXXX)
# The postgres user runs its cluster inside.
chmod 711 "$work"
pid=""; pg_data=""
finish() {
  local rc=$?
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  [ -n "$pg_data" ] && runuser -u postgres -- "$PGBIN/pg_ctl" -D "$pg_data" -m immediate -w stop >/dev/null 2>&1
  if [ "$rc" -ne 0 ] || [ -n "${KEEP:-}" ]; then echo "login_load: work directory kept: $work" >&2
  else rm -rf "$work"; fi
}
trap finish EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

pg_start() {
  local port; port=$(free_port)
  mkdir "$work/pg"; chown postgres:postgres "$work/pg"; chmod 700 "$work/pg"
  runuser -u postgres -- "$PGBIN/initdb" -D "$work/pg/data" -U postgres -A trust -E UTF8 --no-locale >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$work/pg/data" -l "$work/pg/log" -w \
    -o "-p $port -k $work/pg -c listen_addresses=127.0.0.1" start >/dev/null
  pg_data="$work/pg/data"; pg_port=$port
}

start() { # db alg: a fresh database, a key set made in JWT_ALG=alg
  local db=$1 alg=$2 run="$work/$1-$2" url
  mkdir -m 700 "$run"
  case $db in
    sqlite) url="sqlite://$run/authd.db?mode=rwc" ;;
    postgres)
      [ -n "$pg_data" ] || pg_start
      runuser -u postgres -- "$PGBIN/createdb" -h 127.0.0.1 -p "$pg_port" -U postgres "auth_$alg"
      url="postgres://postgres@127.0.0.1:$pg_port/auth_$alg" ;;
  esac
  port=$(free_port)
  # Key paths with no file: the key set starts empty and its first key is
  # made in JWT_ALG (bench/authd-alg.sh does the same).
  ( cd "$run" && API_ADDR=127.0.0.1:$port WS_ADDR=127.0.0.1:$(free_port) DATABASE_URL="$url" \
    PRIVATE_KEY_PATH="$run/keys/private.pem" PUBLIC_KEY_PATH="$run/keys/public.pem" \
    REFRESH_SEAL_KEY_PATH="$run/keys/refresh-seal.key" JWT_ALG="$alg" \
    COOKIE_SECURE=false LOGIN_MAX_FAILURES=1000000 RUST_LOG=${RUST_LOG:-warn} \
    exec "$bin" serve ) >"$run/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && return
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "login_load: the server did not start ($run/server.log):" >&2; tail -20 "$run/server.log" >&2; exit 1
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
  [ "$IDLE_WAIT" -gt 0 ] && echo "login_load: the machine is still ${busy}% busy after ${IDLE_WAIT} s; running anyway" >&2
  return 0
}

echo "login_load: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores;" \
  "server, PostgreSQL and client on the same cores; $DUR s per scenario, $CONC in flight" >&2
lines="$work/results.jsonl"
for db in $DBS; do
  who=authd-lite; [ "$db" = postgres ] && who=authd-pg
  for alg in $ALGS; do
    start "$db" "$alg"
    postmaster=""; [ "$db" = postgres ] && postmaster=$(head -1 "$pg_data/postmaster.pid")
    for scenario in password-login passkey-login; do
      settle
      echo "login_load: $who JWT_ALG=$alg $scenario" >&2
      "$load" "http://127.0.0.1:$port" "$scenario" "$DUR" "$CONC" "$who" "$pid" $postmaster \
        | python3 -c "import sys,json;d=json.loads(sys.stdin.readline());d['jwt_alg']='$alg';print(json.dumps(d))" \
        | tee -a "$lines"
    done
    if grep -q '"status_counts": {[^}]*"\(429\|503\)"' "$lines"; then
      echo "login_load: refusals; the server's log: $work/$db-$alg/server.log" >&2; KEEP=1
    fi
    stop
  done
done
[ -n "${OUT:-}" ] && cat "$lines" >>"$OUT"

python3 - "$lines" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
def get(who, alg, scenario):
    return next((r for r in rows if (r["who"], r["jwt_alg"], r["scenario"]) == (who, alg, scenario)), None)
def cell(r):
    if r is None:
        return "not measured"
    errors = f", {r['errors']} errors" if r["errors"] else ""
    return f"{r['logins_per_s']:,.1f} /s (p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms{errors})"
print()
print("| database | JWT_ALG | password logins | passkey logins | passkey / password |")
print("|---|---|---|---|---|")
for who, alg in dict.fromkeys((r["who"], r["jwt_alg"]) for r in rows):
    pw, pk = get(who, alg, "password-login"), get(who, alg, "passkey-login")
    ratio = f"{pk['logins_per_s'] / pw['logins_per_s']:.1f}x" if pw and pk and pw["logins_per_s"] else "—"
    db = "PostgreSQL" if who == "authd-pg" else "SQLite"
    print(f"| {db} | {alg} | {cell(pw)} | {cell(pk)} | {ratio} |")
print()
print("CPU during each scenario, % of one core: server / PostgreSQL / login_load / everything else")
for r in rows:
    cpu = " / ".join(str(r.get(f"{k}_cpu_pct_of_one_core") or "—")
                     for k in ("server", "postgres", "client", "other"))
    print(f"  {r['who']} {r['jwt_alg']} {r['scenario']}: {cpu}")
EOF
