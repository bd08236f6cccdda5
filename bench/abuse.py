#!/usr/bin/env python3
"""Hostile-load measurements against a running authd (see bench/abuse.sh).

Prints, one line each:
  guesses   N parallel wrong passwords for one user: password checks (401) vs 429
  abandoned 400 logins whose clients close at once: one real login's latency
  halfopen  200 connections holding half a request header: GET /api/health latency
  timing    a failed login's time for an unknown user and for argon2id, bcrypt
            (also with a 73-byte password) and PBKDF2 accounts (the imported
            hashes are written into the SQLite file given as the third argument)
Only the standard library; every request on its own connection.
"""
import asyncio, json, sqlite3, statistics, sys, time

HOST, PORT, DB = sys.argv[1], int(sys.argv[2]), sys.argv[3]
# /work/shared/vectors.md, both of `password123`.
BCRYPT = "$2b$10$LXuaCVGEZbZYxadu7fx2ieG/AlrzGvBaDdFNj3na2ukvGWtvXyWVW"
PBKDF2 = "$pbkdf2-sha256$i=600000,l=32$YXV0aGQtdGVzdC1zYWx0IQ$cg2/hSV734b3wYj+NdcjkVWYYTCFnpjbHW4GdLrXQ28"
USER, PASSWORD = "bench", "bench password 1"


def request(method, path, body=None, headers=()):
    data = json.dumps(body).encode() if body is not None else b""
    head = [f"{method} {path} HTTP/1.1", f"host: {HOST}", "connection: close"]
    if body is not None:
        head += ["content-type: application/json", f"content-length: {len(data)}"]
    head += list(headers)
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


async def call(raw):
    reader, writer = await asyncio.open_connection(HOST, PORT)
    writer.write(raw)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return int(answer.split(b" ", 2)[1])


async def timed(raw):
    started = time.perf_counter()
    status = await call(raw)
    return status, (time.perf_counter() - started) * 1000


async def guesses(n):
    victim = {"username": "victim", "password": PASSWORD}
    await call(request("POST", "/api/register", victim))
    wrong = [request("POST", "/api/login", {"username": "victim", "password": f"wrong {i:04d}"}) for i in range(n)]
    statuses = await asyncio.gather(*(call(r) for r in wrong))
    print(f"guesses   {n} parallel wrong passwords for one user: {statuses.count(401)} checked (401), "
          f"{statuses.count(429)} refused (429), {statuses.count(503)} shed (503)")


async def abandoned(n):
    status, alone = await timed(request("POST", "/api/login", {"username": USER, "password": PASSWORD}))
    assert status == 200, status
    writers = []
    for i in range(n):
        _, writer = await asyncio.open_connection(HOST, PORT)
        writer.write(request("POST", "/api/login", {"username": f"ghost{i}", "password": "not the password"}))
        writers.append(writer)
    await asyncio.gather(*(w.drain() for w in writers))
    await asyncio.sleep(0.05)
    for w in writers:
        w.close()
    status, real = await timed(request("POST", "/api/login", {"username": USER, "password": PASSWORD}))
    print(f"abandoned {n} logins abandoned by their clients, then one real login: {real:.0f} ms "
          f"(status {status}; {alone:.0f} ms alone)")


async def halfopen(n):
    held = []
    for _ in range(n):
        _, writer = await asyncio.open_connection(HOST, PORT)
        writer.write(b"GET /api/health HTTP/1.1\r\nhost: x\r\nx-slow: ")
        held.append(writer)
    await asyncio.sleep(0.5)
    times = []
    for _ in range(20):
        status, ms = await timed(request("GET", "/api/health"))
        assert status == 200, status
        times.append(ms)
    for w in held:
        w.close()
    print(f"halfopen  {n} half-open connections held: GET /api/health median {statistics.median(times):.1f} ms, "
          f"max {max(times):.1f} ms")


async def timing(samples):
    for name, stored in [("imp-bcrypt", BCRYPT), ("imp-bcrypt2", BCRYPT), ("imp-pbkdf2", PBKDF2)]:
        await call(request("POST", "/api/register", {"username": name, "password": PASSWORD}))
        with sqlite3.connect(DB) as db:
            db.execute("UPDATE users SET password_hash = ? WHERE username = ?", (stored, name))
    await call(request("POST", "/api/register", {"username": "argon-user", "password": PASSWORD}))
    kinds = [("unknown user", "nobody-here", "password124"), ("argon2id", "argon-user", "password124"),
             ("bcrypt", "imp-bcrypt", "password124"), ("bcrypt, 73 bytes", "imp-bcrypt2", "x" * 73),
             ("pbkdf2-sha256", "imp-pbkdf2", "password124")]
    results = {name: [] for name, _, _ in kinds}
    # Interleaved, and under the throttle's 5 failures per name.
    for i in range(samples):
        for name, user, password in kinds:
            login = {"username": user, "password": password}
            status, ms = await timed(request("POST", "/api/login", login, [f"x-n: {i}"]))
            assert status == 401, (name, status)
            results[name].append(ms)
    line = ", ".join(f"{name} {statistics.median(t):.0f} ms" for name, t in results.items())
    print(f"timing    median failed login ({samples} each): {line}")


async def main():
    await timing(4)
    await guesses(60)
    await abandoned(400)
    await halfopen(200)


asyncio.run(main())
