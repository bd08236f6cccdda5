#!/usr/bin/env python3
"""A real SMTP server for the tests, on Python's `aiosmtpd`: it keeps every
mail it accepts as files the tests read (see tests/src/smtp.rs).

Usage: smtp_sink.py --port N --dir DIR [--tls-cert CRT --tls-key KEY]
                    [--require-tls] [--implicit-tls] [--auth USER:PASS]

- Listens on 127.0.0.1 only; `--port 0` picks a free port. Prints
  `ready <port>` on stdout once listening.
- Each mail accepted becomes `<n>.eml` (the bytes received) and then
  `<n>.json` (`mail_from`, `rcpt_tos`, `tls`, `auth`: the user or null, and,
  parsed by Python's `email`, `headers` as [name, value] pairs (decoded),
  `text` and `html` (decoded, `\n` line ends)), each written under a temporary name and renamed: a reader that
  waits for the `.json` sees the whole mail. `n` counts on from the mails
  already in DIR, so a restarted sink keeps the earlier ones.
- `--tls-cert/--tls-key` offer STARTTLS; `--require-tls` refuses mail
  before it; `--implicit-tls` speaks TLS from the first byte instead.
- `--auth USER:PASS` requires AUTH (PLAIN or LOGIN); other credentials get
  `535`.
- Stops on SIGTERM, or when the process that started it exits.
- While `DIR/answer` exists, every RCPT and DATA is answered with the code
  it holds (e.g. `451` or `550`).
"""

import argparse
import asyncio
import email
import email.policy
import json
import os
import signal
import ssl
import sys

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

HOST = "127.0.0.1"


def write_atomically(path: str, data: bytes) -> None:
    part = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".part")
    with open(part, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(part, path)


def decoded(message, subtype: str):
    part = message.get_body(preferencelist=(subtype,))
    if part is None or part.get_content_subtype() != subtype:
        return None
    # The wire's CRLF line ends, as the plain `\n` the mail was written with.
    return part.get_content().replace("\r\n", "\n")


class Sink:
    def __init__(self, directory: str, implicit_tls: bool):
        self.directory = directory
        self.implicit_tls = implicit_tls
        numbers = [
            int(name[: -len(".json")])
            for name in os.listdir(directory)
            if name.endswith(".json") and name[: -len(".json")].isdigit()
        ]
        self.next = max(numbers, default=0) + 1

    def forced_answer(self):
        try:
            with open(os.path.join(self.directory, "answer")) as f:
                code = f.read().strip()
        except FileNotFoundError:
            return None
        return f"{code} The sink was told to answer {code}"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        forced = self.forced_answer()
        if forced:
            return forced
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        forced = self.forced_answer()
        if forced:
            return forced
        raw = envelope.original_content or envelope.content
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "tls": self.implicit_tls or session.ssl is not None,
            "auth": session.auth_data if session.authenticated else None,
            "headers": [[name, str(value)] for name, value in parsed.items()],
            "text": decoded(parsed, "plain"),
            "html": decoded(parsed, "html"),
        }
        n = self.next
        self.next += 1
        write_atomically(os.path.join(self.directory, f"{n}.eml"), raw)
        write_atomically(
            os.path.join(self.directory, f"{n}.json"), json.dumps(record).encode()
        )
        return "250 Message accepted for delivery"


def authenticator(expected_user: str, expected_password: str):
    def check(server, session, envelope, mechanism, auth_data):
        if (
            mechanism in ("PLAIN", "LOGIN")
            and isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == expected_user
            and auth_data.password.decode() == expected_password
        ):
            return AuthResult(success=True, auth_data=expected_user)
        return AuthResult(success=False, handled=False)

    return check


async def stop_when_orphaned(stop: asyncio.Event) -> None:
    """Stops once the test process that started the sink is gone (killed,
    say, before it could stop the sink)."""
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1)
    stop.set()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--require-tls", action="store_true")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--auth")
    args = parser.parse_args()

    context = None
    if args.tls_cert:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    if (args.require_tls or args.implicit_tls) and context is None:
        parser.error("--require-tls and --implicit-tls need --tls-cert and --tls-key")

    options = {"hostname": "localhost", "timeout": 30}
    if context is not None and not args.implicit_tls:
        options["tls_context"] = context
        options["require_starttls"] = args.require_tls
    if args.auth:
        user, _, password = args.auth.partition(":")
        options["authenticator"] = authenticator(user, password)
        options["auth_required"] = True
        # TLS or not is the test's choice (--require-tls), not AUTH's.
        options["auth_require_tls"] = False

    os.makedirs(args.dir, exist_ok=True)
    sink = Sink(args.dir, args.implicit_tls)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(sink, loop=loop, **options),
        host=HOST,
        port=args.port,
        ssl=context if args.implicit_tls else None,
        reuse_address=True,
    )
    port = server.sockets[0].getsockname()[1]
    print(f"ready {port}", flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.create_task(stop_when_orphaned(stop))
    await stop.wait()
    # Open connections are dropped, not waited for: a stopped sink is gone.
    server.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
