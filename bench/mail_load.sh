#!/usr/bin/env bash
# Email, on loopback only: the scenarios of tests/examples/mail_load.rs
# against the release `authd serve` on SQLite, a fresh server and database
# for each:
# - forgot: POST /api/password/forgot for a verified address and for an
#   unknown one of the same length, N of each, in ABBA order, one request
#   at a time on one connection; the file mailer (no SMTP_URL) writes into
#   the run's directory. Medians, p90, p99 of each and their differences, with a
#   bootstrap 95 % interval of the difference of medians.
# - outbox: mails per second the outbox hands to tests/clients/smtp_sink.py
#   (Python aiosmtpd, which writes and fsyncs two files per mail, in the
#   run's directory): MAILS reset mails queued while the sink is paused
#   (SIGSTOP), then the time from SIGCONT until the last one arrived.
# Prints the JSON lines, then a table.
#
#   cargo build --release -p authd --bin authd -p integration-tests --example mail_load
#   bench/mail_load.sh [target/release/authd]
#
# Settings (environment): N requests of each kind (2000), MAILS (600),
# SCENARIOS ("forgot outbox"), LOAD the mail_load binary
# (target/release/examples/mail_load), IDLE_WAIT seconds to wait at most for
# an idle machine (under 10 % busy for 2 s) before each scenario (30; 0 for
# none), OUT a file the JSON lines are also appended to, KEEP=1 keeps the
# work directory (server and sink logs). Servers: a 2048-bit RSA key from
# `authd keys generate` (no token is signed in these scenarios),
# COOKIE_SECURE=false, LOGIN_MAX_FAILURES=1000000, RUST_LOG=warn; otherwise
# production settings (argon2id at the OWASP cost, the forgot queue's 64 in
# flight, three reset mails an hour per account).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=$(realpath "${1:-$root/target/release/authd}")
load=$(realpath "${LOAD:-$root/target/release/examples/mail_load}")
N=${N:-2000}; MAILS=${MAILS:-600}; SCENARIOS=${SCENARIOS:-"forgot outbox"}; IDLE_WAIT=${IDLE_WAIT:-30}
[ -x "$bin" ] || { echo "no $bin: cargo build --release -p authd first" >&2; exit 1; }
[ -x "$load" ] || { echo "no $load: cargo build --release -p integration-tests --example mail_load" >&2; exit 1; }
python3 -c 'import aiosmtpd' 2>/dev/null || { echo "mail_load: needs Python aiosmtpd (pip install aiosmtpd)" >&2; exit 1; }

work=$(mktemp -d -t mail-load.XXXXXX)
pids=()
finish() {
  local rc=$?
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; done
  if [ "$rc" -ne 0 ] || [ -n "${KEEP:-}" ]; then echo "mail_load: work directory kept: $work" >&2
  else rm -rf "$work"; fi
}
trap finish EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
"$bin" keys generate --bits 2048 --out "$work/keys" >/dev/null

start() { # name [VAR=value ...]: a fresh server on a fresh SQLite file
  local run="$work/$1"; shift
  port=$(free_port)
  ( cd "$run" && exec env API_ADDR=127.0.0.1:$port WS_ADDR=127.0.0.1:$(free_port) \
    DATABASE_URL="sqlite://$run/authd.db?mode=rwc" \
    PRIVATE_KEY_PATH="$work/keys/private.pem" PUBLIC_KEY_PATH="$work/keys/public.pem" \
    REFRESH_SEAL_KEY_PATH="$run/refresh-seal.key" MAIL_DIR="$run/mail" \
    COOKIE_SECURE=false LOGIN_MAX_FAILURES=1000000 RUST_LOG=${RUST_LOG:-warn} \
    "$@" "$bin" serve ) >"$run/server.log" 2>&1 &
  pid=$!; pids+=("$pid")
  for _ in $(seq 300); do
    curl -sf "http://127.0.0.1:$port/api/health" >/dev/null && return
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  echo "mail_load: the server did not start ($run/server.log):" >&2; tail -20 "$run/server.log" >&2; exit 1
}
start_sink() { # run directory: the SMTP sink on a free port
  mkdir -p "$1/mailbox"
  python3 "$root/tests/clients/smtp_sink.py" --port 0 --dir "$1/mailbox" >"$1/sink.log" 2>&1 &
  sink_pid=$!; pids+=("$sink_pid")
  for _ in $(seq 150); do
    sink_port=$(sed -n 's/^ready \([0-9]*\)$/\1/p' "$1/sink.log")
    [ -n "$sink_port" ] && return
    sleep 0.1
  done
  echo "mail_load: the sink did not start ($1/sink.log):" >&2; cat "$1/sink.log" >&2; exit 1
}
stop() { for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill "$p" 2>/dev/null; wait "$p" 2>/dev/null || true; done; pids=(); }
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
  [ "$IDLE_WAIT" -gt 0 ] && echo "mail_load: the machine is still ${busy}% busy after ${IDLE_WAIT} s; running anyway" >&2
  return 0
}

echo "mail_load: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores;" \
  "server, sink and client on the same cores" >&2
lines="$work/results.jsonl"
for scenario in $SCENARIOS; do
  run="$work/$scenario"; mkdir -m 700 "$run"
  case "$scenario" in
    forgot)
      start forgot
      settle
      echo "mail_load: forgot, $N known and $N unknown" >&2
      "$load" "http://127.0.0.1:$port" forgot "$N" "$run/mail" authd-lite "$pid" | tee -a "$lines"
      ;;
    outbox)
      start_sink "$run"
      mport=$(free_port)
      start outbox SMTP_URL="smtp://127.0.0.1:$sink_port" PUBLIC_URL="https://auth.example.test" \
        METRICS_ADDR="127.0.0.1:$mport"
      settle
      echo "mail_load: outbox, $MAILS mails" >&2
      "$load" "http://127.0.0.1:$port" outbox "$MAILS" "$run/mailbox" "$sink_pid" \
        "http://127.0.0.1:$mport/metrics" authd-lite "$pid" | tee -a "$lines"
      ;;
    *) echo "mail_load: unknown scenario $scenario" >&2; exit 1 ;;
  esac
  stop
done
if grep -Eq '"(errors|forgot_refused)": ?[1-9]' "$lines"; then
  echo "mail_load: errors; the logs are in $work" >&2; KEEP=1
fi
[ -n "${OUT:-}" ] && cat "$lines" >>"$OUT"

python3 - "$lines" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
print()
for r in rows:
    cpu = " / ".join(str(r.get(f"{k}_cpu_pct_of_one_core", "—")) for k in ("server", "sink", "client", "other"))
    if r["scenario"] == "forgot":
        k, u = r["known"], r["unknown"]
        print("| forgot | requests | p50 | p90 | p99 | mean |")
        print("|---|---|---|---|---|---|")
        for name, s in (("known (verified)", k), ("unknown", u)):
            print(f"| {name} | {s['requests']:,} | {s['p50_ms']} ms | {s['p90_ms']} ms | {s['p99_ms']} ms | {s['mean_ms']} ms |")
        lo, hi = r["p50_diff_95ci_ms"]
        print(f"| known − unknown | | {r['p50_diff_ms']} ms (95 % CI {lo} … {hi}) | {r['p90_diff_ms']} ms | {r['p99_diff_ms']} ms | |")
        print(f"\n{r['requests_per_s']:,} requests/s one at a time; errors {r['errors']}; "
              f"CPU server / sink / client / other (% of one core): {cpu}\n")
    else:
        print(f"| outbox | mails | queued in | delivered in | first after | mails/s | CPU server / sink / client / other |")
        print("|---|---|---|---|---|---|---|")
        print(f"| SMTP sink | {r['mails']:,} | {r['queued_in_s']} s | {r['delivered_in_s']} s | {r['first_after_s']} s "
              f"| {r['mails_per_s']:,} | {cpu} |\n")
EOF
