#!/usr/bin/env bash
# README.md's Performance table, from one run on this machine: the shared
# side-by-side against the Node peer (../shared/bench/side-by-side.sh, all
# scenarios, `WHO="peer authd-pg" ROUNDS=1`), login and refresh again with
# ES256 and EdDSA keys (bench/authd-alg.sh), passkey logins against password
# logins on SQLite and PostgreSQL (bench/login_load.sh), `GET /api/protected`
# with DPoP proofs (ES256, EdDSA) beside Bearer on SQLite (bench/dpop_load.sh,
# against the peer's `protected` of the same run), and the crypto,
# ws_deflate and store criterion benches; bench/report.py prints the Markdown
# table from what this run wrote, and nothing else. Run from anywhere;
# loopback only.
#
#   bench/report.sh                     # about 15 minutes on 2 cores, once built
#   DUR=2 HOLD=500 BENCH_TIME=1 bench/report.sh   # a quick check of the script
#
# Settings (environment): DUR seconds per load scenario (10), HOLD sockets
# held (10000), ALGS the JWT_ALG values run again for login and refresh
# ("ES256 EdDSA"; "" for none), BENCH_TIME criterion measurement seconds (3),
# STORE=0 / DEFLATE=0 / LOGIN=0 / DPOP=0 / MAIL=0 leave the store bench / the
# ws_deflate bench / the login_load run / the dpop_load run / the mail_load
# run out, DPOP_LONG seconds of one
# more DPoP EdDSA run past the replay window (0: none; dpop_load.sh's LONG),
# KEEP=1 keeps the work directory (logs, JSONL, criterion output).
# CARGO_TARGET_DIR is honoured. The release binaries (authd and the
# login_load and dpop_load examples) are built (a no-op when they are fresh)
# and copied aside first, so a build in the same target directory meanwhile
# cannot swap them; the benches use cargo's bench profile (release settings).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
shared=${SHARED_BENCH:-$root/../shared/bench}
[ -x "$shared/side-by-side.sh" ] || { echo "no $shared/side-by-side.sh" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
DUR=${DUR:-10}; HOLD=${HOLD:-10000}; ALGS=${ALGS-"ES256 EdDSA"}; BENCH_TIME=${BENCH_TIME:-3}
STORE=${STORE:-1}; DEFLATE=${DEFLATE:-1}; LOGIN=${LOGIN:-1}; DPOP=${DPOP:-1}; DPOP_LONG=${DPOP_LONG:-0}
MAIL=${MAIL:-1}
unset JWT_ALG

work=$(mktemp -d -t authd-report.XXXXXX)
# side-by-side.sh makes its own directory under $TMPDIR (set to this one
# below) and runs PostgreSQL as the postgres user inside it.
chmod 711 "$work"
finish() {
  local rc=$?
  if [ "$rc" -ne 0 ] || [ -n "${KEEP:-}" ]; then echo "report: work directory kept: $work" >&2
  else rm -rf "$work"; fi
}
trap finish EXIT
started=$(date +%s)
step() { echo "report: $(( $(date +%s) - started ))s: $*" >&2; }

# What ran, where (read by report.py).
{
  echo "cpu=$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
  echo "cores=$(nproc)"
  echo "virt=$(lscpu | sed -n 's/^Hypervisor vendor: *//p' | head -1)"
  echo "mem_gib=$(awk '/MemTotal/ {printf "%.0f", $2 / 1048576}' /proc/meminfo)"
  echo "date=$(date -u +%Y-%m-%d)"
  echo "commit=$(git rev-parse --short HEAD)"
  echo "dirty=$(git status --porcelain --untracked-files=no | grep -c . || true)"
  echo "rustc=$(rustc -V | awk '{print $2}')"
  echo "node=$(node --version)"
  echo "postgres=$(ls /usr/lib/postgresql | sort -V | tail -1)"
  echo "dur=$DUR"
  echo "hold=$HOLD"
  echo "algs=$ALGS"
  echo "bench_time=$BENCH_TIME"
} >"$work/meta"

step "cargo build --release -p authd, the login_load and dpop_load examples"
cargo build --release -q -p authd --bin authd -p integration-tests --example login_load --example dpop_load --example mail_load
cp "$CARGO_TARGET_DIR/release/authd" "$work/authd"
cp "$CARGO_TARGET_DIR/release/examples/login_load" "$work/login_load"
cp "$CARGO_TARGET_DIR/release/examples/dpop_load" "$work/dpop_load"
cp "$CARGO_TARGET_DIR/release/examples/mail_load" "$work/mail_load"

# The side-by-side script exits with its table's status whatever a scenario
# did; report.py says which figures are missing or had errors.
side() { # out-file, then environment for side-by-side.sh
  local out=$1; shift
  env TMPDIR="$work" OUT="$out" ROUNDS=1 DUR="$DUR" HOLD="$HOLD" "$@" \
    "$shared/side-by-side.sh" >>"$work/side-by-side.log" 2>&1 \
    || echo "report: side-by-side.sh exited $? (see $work/side-by-side.log)" >&2
}
# The loadgen ws-hold scenario shares 50 users' tokens among all its sockets;
# the per-user cap (100 by default) would refuse most of them.
export WS_MAX_CONNECTIONS_PER_USER=100000
step "side-by-side: peer and authd-pg, every scenario (DUR=$DUR, HOLD=$HOLD)"
side "$work/side.jsonl" WHO="peer authd-pg" AUTHD="$work/authd"
for alg in $ALGS; do
  step "side-by-side: authd-pg with JWT_ALG=$alg, login and refresh"
  side "$work/alg-$alg.jsonl" WHO="authd-pg" SCENARIOS="login refresh" JWT_ALG="$alg" \
    AUTHD="$root/bench/authd-alg.sh" AUTHD_BIN="$work/authd"
done

if [ "$LOGIN" = 1 ]; then
  step "bench/login_load.sh: password and passkey logins, SQLite and PostgreSQL (DUR=$DUR)"
  env TMPDIR="$work" OUT="$work/login.jsonl" DUR="$DUR" ALGS="RS256 ES256" LOAD="$work/login_load" \
    "$root/bench/login_load.sh" "$work/authd" >>"$work/login_load.log" 2>&1 \
    || echo "report: login_load.sh exited $? (see $work/login_load.log)" >&2
fi
if [ "$DPOP" = 1 ]; then
  # The peer's Bearer figure is side.jsonl's protected, from this run, with
  # the same 16 clients (both scripts' default CONC).
  step "bench/dpop_load.sh: GET /api/protected, Bearer and DPoP (ES256, EdDSA), SQLite (DUR=$DUR)"
  env TMPDIR="$work" OUT="$work/dpop.jsonl" DUR="$DUR" PEER=0 LONG="$DPOP_LONG" LOAD="$work/dpop_load" \
    "$root/bench/dpop_load.sh" "$work/authd" >>"$work/dpop_load.log" 2>&1 \
    || echo "report: dpop_load.sh exited $? (see $work/dpop_load.log)" >&2
fi

if [ "$MAIL" = 1 ]; then
  step "bench/mail_load.sh: forgot known vs unknown, and the outbox to a local SMTP server"
  env TMPDIR="$work" OUT="$work/mail.jsonl" LOAD="$work/mail_load" \
    "$root/bench/mail_load.sh" "$work/authd" >>"$work/mail_load.log" 2>&1 \
    || echo "report: mail_load.sh exited $? (see $work/mail_load.log)" >&2
fi

export CRITERION_HOME="$work/criterion"
crit=(--warm-up-time 1 --measurement-time "$BENCH_TIME" --noplot)
step "cargo bench -p adapters --bench crypto"
cargo bench -q -p adapters --bench crypto -- "${crit[@]}" '^(jwt/[^/]+/(sign|verify)|argon2id-.*)$' \
  >"$work/crypto.log" 2>&1 || { tail -20 "$work/crypto.log" >&2; exit 1; }
if [ "$DEFLATE" = 1 ]; then
  step "cargo bench -p adapters --bench ws_deflate"
  cargo bench -q -p adapters --bench ws_deflate -- "${crit[@]}" '/echo_16k$' \
    >"$work/ws_deflate.log" 2>&1 || { tail -20 "$work/ws_deflate.log" >&2; exit 1; }
fi
if [ "$STORE" = 1 ]; then
  step "cargo bench -p integration-tests --bench store"
  cargo bench -q -p integration-tests --bench store -- "${crit[@]}" \
    >"$work/store.log" 2>&1 || { tail -20 "$work/store.log" >&2; exit 1; }
fi

step "table"
python3 "$root/bench/report.py" "$work"
step "done"
