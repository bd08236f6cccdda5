#!/usr/bin/env bash
# Two builds of authd side by side in one run: the crypto bench's RS256-4096
# signature and the shared side-by-side's `refresh` (RS256-4096 keys, against
# the Node peer of the same invocation), alternating builds for ROUNDS rounds,
# then the median of each. For a change of build settings (the release
# profile, an `rsa` version): build, copy the binaries aside, change, build,
# copy, run this. Loopback only.
#
#   mkdir -p /tmp/a /tmp/b
#   cargo build --release -p authd && cargo bench -p adapters --bench crypto --no-run
#   cp target/release/authd /tmp/a/; cp "$(ls -t target/release/deps/crypto-* | grep -v '\.d$' | head -1)" /tmp/a/crypto
#   ... change, build again, copy into /tmp/b ...
#   bench/builds.sh /tmp/a /tmp/b           # about 3 minutes a round
#
# Each directory holds `authd` and `crypto` (the bench executable). Settings
# (environment): ROUNDS (3), DUR seconds of refresh load (10), BENCH_TIME
# criterion measurement seconds (5).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
shared=${SHARED_BENCH:-$root/../shared/bench}
[ $# -eq 2 ] || { echo "usage: $0 BUILD_DIR_A BUILD_DIR_B" >&2; exit 2; }
for d in "$@"; do
  [ -x "$d/authd" ] && [ -x "$d/crypto" ] || { echo "$d needs authd and crypto" >&2; exit 2; }
done
ROUNDS=${ROUNDS:-3}; DUR=${DUR:-10}; BENCH_TIME=${BENCH_TIME:-5}
work=$(mktemp -d -t authd-builds.XXXXXX)
out=$work/results.jsonl
cd "$root"
for r in $(seq 1 "$ROUNDS"); do
  for d in "$@"; do
    name=$(basename "$d")
    echo "== round $r: $name" >&2
    # criterion prints "time: [low estimate high]"; the estimate, in ms.
    sign=$("$d/crypto" --bench --warm-up-time 1 --measurement-time "$BENCH_TIME" \
      'RS256-4096/bare-signature' 2>/dev/null | python3 -c '
import re, sys
m = re.search(r"time:\s+\[\S+ \S+ (\S+) (\S+)", sys.stdin.read())
v, unit = float(m.group(1)), m.group(2)
print(v * {"s": 1e3, "ms": 1.0, "µs": 1e-3, "us": 1e-3}[unit])')
    OUT=$work/sbs-$name-$r.jsonl WHO="peer authd-pg" SCENARIOS=refresh ROUNDS=1 DUR=$DUR \
      AUTHD=$d/authd "$shared/side-by-side.sh" >/dev/null 2>"$work/sbs-$name-$r.log"
    python3 - "$work/sbs-$name-$r.jsonl" "$name" "$r" "$sign" >>"$out" <<'EOF'
import json, sys
path, name, rnd, sign = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
rates = {}
for line in open(path):
    d = json.loads(line)
    if d.get("scenario") == "refresh":
        rates[d["who"]] = d["ops_per_s"]
print(json.dumps({"build": name, "round": rnd, "rs256_4096_sign_ms": sign,
                  "peer_refresh_per_s": rates.get("peer"), "authd_refresh_per_s": rates.get("authd-pg")}))
EOF
  done
done
python3 - "$out" <<'EOF'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(f"{'build':<16}{'RS256-4096 sign':>17}{'peer refresh':>14}{'authd refresh':>15}{'ratio':>8}")
for b in dict.fromkeys(r["build"] for r in rows):
    mine = [r for r in rows if r["build"] == b]
    med = lambda k: statistics.median(r[k] for r in mine if r[k] is not None)
    ratios = [r["authd_refresh_per_s"] / r["peer_refresh_per_s"] for r in mine
              if r["authd_refresh_per_s"] and r["peer_refresh_per_s"]]
    print(f"{b:<16}{med('rs256_4096_sign_ms'):>14.2f} ms{med('peer_refresh_per_s'):>12.0f}/s"
          f"{med('authd_refresh_per_s'):>13.0f}/s{statistics.median(ratios):>7.2f}x")
EOF
echo "results: $out" >&2
