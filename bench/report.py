#!/usr/bin/env python3
"""README.md's Performance table from the work directory of one
bench/report.sh run: `meta`, `side.jsonl` (the side-by-side of the peer and
authd-pg), `alg-<JWT_ALG>.jsonl`, `login.jsonl` (bench/login_load.sh), `dpop.jsonl`
(bench/dpop_load.sh), `criterion/` and `ws_deflate.log`. Prints
only what that run measured: a figure it lacks is shown as "not measured"."""
import json
import re
import sys
from pathlib import Path

work = Path(sys.argv[1])
meta = dict(l.split("=", 1) for l in (work / "meta").read_text().splitlines() if "=" in l)


def jsonl(name):
    p = work / name
    if not p.exists():
        return []
    return [json.loads(l) for l in p.read_text().splitlines() if l.strip()]


def row_of(rows, scenario, who):
    found = [r for r in rows if r.get("scenario") == scenario and r.get("who") == who]
    return found[-1] if found else None


def criterion():
    """full_id -> median in ns."""
    out = {}
    for b in (work / "criterion").glob("**/new/benchmark.json"):
        est = b.with_name("estimates.json")
        if est.exists():
            full_id = json.loads(b.read_text())["full_id"]
            out[full_id] = json.loads(est.read_text())["median"]["point_estimate"]
    return out


def num(x):
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}".rstrip("0").rstrip(".")
    return f"{x:.2f}".rstrip("0").rstrip(".")


def dur(ns):
    if ns is None:
        return None
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{num(ns / scale)} {unit}"
    return f"{num(ns)} ns"


def problems(r):
    """What went wrong in a loadgen line, or ''."""
    if r.get("fatal") or r.get("aborted"):
        return f"; failed: {r.get('fatal') or r.get('aborted')}"
    n = r.get("errors") or 0
    return f"; {n:,} errors" if n else ""


def rate(r, key="ops_per_s"):
    if r is None or r.get(key) is None or r.get("fatal"):
        return None, None
    p99 = r.get("p99_ms")
    text = f"{num(r[key])} /s" + (f", p99 {num(p99)} ms" if p99 is not None else "")
    return r[key], text + problems(r)


def held(r):
    if r is None or r.get("bytes_per_connection") is None:
        return None, None
    text = f"{r['bytes_per_connection']:,.0f} bytes"
    if r.get("connected") is not None and r["connected"] != r.get("connections"):
        text += f" ({r['connected']:,} of {r['connections']:,} connected)"
    return r["bytes_per_connection"], text + problems(r)


MISSING = "not measured"
table = []


def add_versus(what, first, second, how):
    """Two figures of authd itself, `first / second`, and their ratio; no peer."""
    first, second = first or (None, None), second or (None, None)
    both = first[0] is not None and second[0] is not None and first[0] > 0 and second[0] > 0
    ratio = f"{first[0] / second[0]:.2f}x" if both else "—"
    table.append((what, f"{first[1] or MISSING} / {second[1] or MISSING}", "—", ratio, how))


def add(what, ours, peer, how):
    """ours, peer: (value for the ratio, text) or None."""
    peer_text = "—" if peer is None else (peer[1] or MISSING)
    ours = ours or (None, None)
    peer = peer or (None, None)
    both = ours[0] is not None and peer[0] is not None and ours[0] > 0 and peer[0] > 0
    ratio = f"{ours[0] / peer[0]:.2f}x" if both else "—"
    table.append((what, ours[1] or MISSING, peer_text, ratio, how))


side = jsonl("side.jsonl")
sbs = "`../shared/bench/side-by-side.sh`"
peer_login = rate(row_of(side, "login", "peer"))
peer_refresh = rate(row_of(side, "refresh", "peer"))
add("`GET /api/protected` (verified-token cache on), 16 clients",
    rate(row_of(side, "protected", "authd-pg")), rate(row_of(side, "protected", "peer")),
    f"{sbs} `protected`")
add("login, RS256 4096 (authd: argon2id 19 MiB t=2; the peer: bcrypt 10), 16 clients",
    rate(row_of(side, "login", "authd-pg")), peer_login, f"{sbs} `login`")
add("refresh (rotation + RS256 4096 signature), 16 clients",
    rate(row_of(side, "refresh", "authd-pg")), peer_refresh, f"{sbs} `refresh`")
for alg in meta.get("algs", "").split():
    rows = jsonl(f"alg-{alg}.jsonl")
    how = f"{sbs} with `AUTHD=bench/authd-alg.sh JWT_ALG={alg}`; the peer: RS256 above"
    add(f"login, `JWT_ALG={alg}`", rate(row_of(rows, "login", "authd-pg")), peer_login, how)
    add(f"refresh, `JWT_ALG={alg}`", rate(row_of(rows, "refresh", "authd-pg")), peer_refresh, how)
add("WebSocket connects (open, `connected`, close), 16 clients",
    rate(row_of(side, "ws-connect", "authd-pg")), rate(row_of(side, "ws-connect", "peer")),
    f"{sbs} `ws-connect`")
add("WebSocket echo round trips, 64 sockets",
    rate(row_of(side, "ws-echo", "authd-pg")), rate(row_of(side, "ws-echo", "peer")),
    f"{sbs} `ws-echo`")
add(f"resident memory per idle authenticated WebSocket, {int(meta['hold']):,} held (lower is better)",
    held(row_of(side, "ws-hold", "authd-pg")), held(row_of(side, "ws-hold", "peer")),
    f"{sbs} `ws-hold`: server RSS after the hold less before, per socket")



def other_cpu(who):
    """Mean CPU of everything but the servers and the load generator (PostgreSQL,
    any other work on the machine) over one side's load scenarios."""
    xs = [r["other_cpu_pct_of_one_core"] for r in side
          if r.get("who") == who and r.get("scenario") != "setup"
          and r.get("other_cpu_pct_of_one_core") is not None]
    return (None, f"{sum(xs) / len(xs):.0f} %") if xs else (None, None)


add("CPU of everything else on the machine (PostgreSQL, other work) during those scenarios, "
    "mean % of one core", other_cpu("authd-pg"), other_cpu("peer"),
    "loadgen's `other_cpu_pct_of_one_core`")

logins = jsonl("login.jsonl")
for who, db in (("authd-lite", "SQLite"), ("authd-pg", "PostgreSQL")):
    for alg, key in (("RS256", "RS256 4096"), ("ES256", "`JWT_ALG=ES256`")):
        pick = [r for r in logins if r.get("jwt_alg") == alg]
        passkey, password = row_of(pick, "passkey-login", who), row_of(pick, "password-login", who)
        clients = (passkey or password or {}).get("concurrency", "?")
        add_versus(f"passkey logins / password logins, `authd serve` on {db}, {key}, {clients} clients",
                   rate(passkey, "logins_per_s"), rate(password, "logins_per_s"),
                   "`bench/login_load.sh` (`tests/examples/login_load.rs`): a passkey login is "
                   "options + an ES256 assertion + `POST /api/login/passkey`")

dpop = jsonl("dpop.jsonl")
# The peer's Bearer figure of the same run: the side-by-side's, else the one
# dpop_load.sh ran itself (PEER=1).
peer_protected = row_of(side, "protected", "peer") or row_of(dpop, "protected", "peer")


def dpop_row(scenario, long=False):
    """dpop_load's line for `scenario`: the one that outlasted the replay
    window (LONG), or the one that did not."""
    found = [r for r in dpop if r.get("scenario") == scenario and r.get("who") != "peer"
             and (r.get("duration_s", 0) > r.get("replay_window_s", 120)) == long]
    return found[-1] if found else None


def replay_memory(r):
    """RSS growth over a DPoP scenario, and per id of its busiest replay
    window (the cache's table keeps its peak's size while busy)."""
    peak = (r or {}).get("replay_window_peak_requests")
    if r is None or r.get("server_rss_growth_bytes") is None or not peak:
        return None
    cap = r.get("replay_cache_cap")
    held = f"{min(peak, cap):,} ids" + (" (the cap)" if cap and peak >= cap else "")
    per = r["server_rss_growth_bytes"] / min(peak, cap or peak)
    return None, f"{r['server_rss_growth_bytes'] / 2**20:.1f} MiB for {held}, {per:,.0f} bytes per id"


dpop_how = ("`bench/dpop_load.sh` (`tests/examples/dpop_load.rs`): a session and a connection per "
            "client; DPoP: bound sessions, a fresh proof per request signed by the client on the "
            f"same cores; the peer: {sbs} `protected` of the same run")
for scenario, what in (("bearer", "Bearer"), ("dpop-es256", "DPoP, ES256 proofs"),
                       ("dpop-eddsa", "DPoP, EdDSA proofs")):
    r = dpop_row(scenario)
    clients = (r or {}).get("concurrency", "?")
    add(f"`GET /api/protected`, {what}, `authd serve` on SQLite, {clients} clients",
        rate(r, "requests_per_s"), rate(peer_protected), dpop_how)
if dpop:
    add("DPoP replay cache: server RSS growth over the EdDSA scenario, ids held at most "
        "(lower is better)", replay_memory(dpop_row("dpop-eddsa")), None,
        "`bench/dpop_load.sh`: `VmRSS` after less before, a fresh server per scenario")
long = dpop_row("dpop-eddsa", long=True)
if long:
    refused = long.get("status_counts", {}).get("401", 0)
    memory = replay_memory(long)
    add(f"DPoP, EdDSA proofs, {long['duration_s']:.0f} s (past the {long['replay_window_s']} s "
        f"replay window; at most {long['replay_cache_cap']:,} ids): accepted, and RSS growth",
        (long["requests_per_s"], f"{num(long['requests_per_s'])} /s, {refused:,} refused"
         + (f"; {memory[1]}" if memory else "")),
        None, "`bench/dpop_load.sh` with `LONG`: the cache at its steady size, every id of "
        "the last window (refused: `replay_cache_full`, only at the cap)")

mail = jsonl("mail.jsonl")
forgot = row_of(mail, "forgot", "authd-lite") or next((r for r in mail if r.get("scenario") == "forgot"), None)
if forgot:
    k, u = forgot["known"], forgot["unknown"]
    low, high = forgot.get("p50_diff_95ci_ms") or (None, None)
    add("`POST /api/password/forgot`: a verified address / an unknown one, p50 and p90 "
        f"({k['requests']:,} of each, alternated, one at a time)",
        (None, f"{k['p50_ms']} / {u['p50_ms']} ms, p90 {k['p90_ms']} / {u['p90_ms']} ms; "
               f"difference of medians {forgot['p50_diff_ms']} ms (95 % CI {low}..{high})"),
        None, "`bench/mail_load.sh` (`tests/examples/mail_load.rs`): `authd serve` on SQLite, "
        "the file mailer")
outbox = next((r for r in mail if r.get("scenario") == "outbox"), None)
if outbox:
    add(f"outbox: mails delivered to a local SMTP server ({outbox['mails']} queued while it was paused)",
        (outbox["mails_per_s"], f"{num(outbox['mails_per_s'])} mails/s"), None,
        "`bench/mail_load.sh`: `authd serve` on SQLite, `tests/clients/smtp_sink.py` (aiosmtpd, "
        "two fsynced files per mail) on the same cores")

crit = criterion()


def pair(a, b):
    a, b = crit.get(a), crit.get(b)
    if a is None or b is None:
        return None
    return None, f"{dur(a)} / {dur(b)}"


for name in ("RS256-2048", "RS256-4096", "PS256-4096", "ES256", "EdDSA"):
    add(f"`{name.split('-')[0]}`{' ' + name.split('-')[1] if '-' in name else ''} sign / verify",
        pair(f"jwt/{name}/sign", f"jwt/{name}/verify"), None,
        f"`cargo bench -p adapters --bench crypto` `jwt/{name}/`, median")
add("argon2id hash / verify (m=19456, t=2, p=1; a verify waits out the timing floor, "
    "the slowest kind of stored hash)",
    pair("argon2id-m19456-t2-p1/hash", "argon2id-m19456-t2-p1/verify"), None,
    "the same, `argon2id-m19456-t2-p1/`")

deflate_log = work / "ws_deflate.log"
if deflate_log.exists():
    m = re.search(r"^echo_16k\s+(\d+)\s+(\d+)\s+(\d+)", deflate_log.read_text(), re.M)
    wire = (None, f"{int(m.group(1)):,} → {int(m.group(3)):,} bytes") if m else None
    add("permessage-deflate: a 16 KiB JSON echo on the wire", wire, None,
        "`cargo bench -p adapters --bench ws_deflate` (its table)")
    add("permessage-deflate: compress / inflate that echo",
        pair("ws_deflate/compress/echo_16k", "ws_deflate/inflate/echo_16k"), None,
        "the same, median")
if (work / "store.log").exists():
    add("refresh transaction / user lookup by name, local PostgreSQL",
        pair("postgres/refresh_rotation", "postgres/find_user_by_name"), None,
        "`cargo bench -p integration-tests --bench store`, median")

dirty = int(meta.get("dirty", "0") or 0)
print(f"Machine: {meta['cpu']}, {meta['cores']} cores"
      + (f" ({meta['virt']} guest)" if meta.get("virt") else "")
      + f", {meta['mem_gib']} GiB; {meta['date']}; commit {meta['commit']}"
      + (f" with {dirty} changed files" if dirty else "")
      + f"; rustc {meta['rustc']}, Node {meta['node']}, PostgreSQL {meta['postgres']}.")
print()
print("authd: release build, `authd api` + `authd ws` on PostgreSQL, RS256 4096 unless a row "
      + "names `JWT_ALG`, `WS_MAX_CONNECTIONS_PER_USER=100000` (the hold shares 50 users' "
      + "tokens); the peer: Fastify + uWebSockets.js on PostgreSQL, `jsonwebtoken` "
      + f"RS256 4096, bcrypt 10. Load scenarios {meta['dur']} s each, one round, the servers, "
      + "PostgreSQL and the load generator on the same cores; criterion medians, "
      + f"{meta['bench_time']} s per benchmark.")
print()
print("| what | authd | peer | ratio | how |")
print("|---|---|---|---|---|")
for row in table:
    print("| " + " | ".join(row) + " |")
