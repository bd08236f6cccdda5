#!/bin/sh
# The soak run of issue 36 on the release build: three `authd api` and three
# `authd ws` behind the project's Nginx, on a throwaway PostgreSQL, all on
# loopback, under a mixed workload and scheduled faults, every guarantee
# checked (tests/src/soak.rs).
#
#   tests/load/soak.sh SECONDS [AUTHD]
#
# Builds the release `authd` and the `soak` example when either is missing
# (or SOAK_BUILD is set: cargo rebuilds what changed), runs it, and keeps everything in a work directory it prints: soak.jsonl
# (one JSON line per interval), summary.md (the table; its last line reads
# `soak: N invariants held over S s` or names what broke), soak.out (its
# standard output: both), soak.log (its stderr) and logs/ (every
# process's own). Exits as the tool does:
# 0 when every invariant held, 1 when one broke, 2 when it could not start.
# SOAK_USERS, SOAK_SOCKETS, SOAK_SESSION_S, SOAK_INTERVAL_S, SOAK_CYCLE_S,
# SOAK_JWT_ALG and SOAK_SLACK_MS change the workload; SOAK_PRESET=ci takes
# the CI test's.
set -eu

seconds=${1:?usage: tests/load/soak.sh SECONDS [AUTHD]}
root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
authd=${2:-$target/release/authd}
soak=$target/release/examples/soak

if [ ! -x "$authd" ] || [ ! -x "$soak" ] || [ -n "${SOAK_BUILD:-}" ]; then
    (cd "$root" && cargo build --release -p authd --bin authd -p integration-tests --example soak)
fi

dir=${SOAK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/authd-soak-XXXXXX")}
mkdir -p "$dir"
echo "soak: ${seconds} s against $authd; everything in $dir" >&2
# The JSON lines and the summary as they come, and into soak.out.
{
    code=0
    SOAK_DIR=$dir "$soak" "$seconds" "$authd" 2>"$dir/soak.log" || code=$?
    echo "$code" >"$dir/status"
} | tee "$dir/soak.out"
status=$(cat "$dir/status")
if [ "$status" -eq 2 ]; then
    tail -20 "$dir/soak.log" >&2
fi
echo "soak: exit $status; logs in $dir" >&2
exit "$status"
