#!/usr/bin/env python3
"""An independent DPoP client (RFC 9449) of the REST API and the WebSocket:
Python's `cryptography` signs the proofs, `websockets` opens the socket,
urllib makes the HTTP requests; nothing here is the service's code.

    ws_dpop.py API_BASE WS_URL USERNAME PASSWORD

Registers USERNAME, logs in with a proof (a bound session), opens WS_URL
with the token and a proof in the first message, refreshes with a proof,
re-authenticates the socket with the new token and a proof, and tries a
reauth whose proof is by another key. Prints one JSON line of what it saw.
"""

import asyncio
import base64
import hashlib
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

import websockets
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Key:
    def __init__(self):
        self.key = ec.generate_private_key(ec.SECP256R1())
        numbers = self.key.public_key().public_numbers()
        self.jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64(numbers.x.to_bytes(32, "big")),
            "y": b64(numbers.y.to_bytes(32, "big")),
        }

    def thumbprint(self) -> str:
        canonical = json.dumps(
            {k: self.jwk[k] for k in ("crv", "kty", "x", "y")}, separators=(",", ":")
        )
        return b64(hashlib.sha256(canonical.encode()).digest())

    def proof(self, htm: str, htu: str, token: str | None = None) -> str:
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk}
        claims = {"jti": str(uuid.uuid4()), "htm": htm, "htu": htu, "iat": int(time.time())}
        if token is not None:
            claims["ath"] = b64(hashlib.sha256(token.encode()).digest())
        signing_input = (
            b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
        )
        der = self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def post(url: str, body: dict, headers: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json", **headers},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"{}"), dict(answer.headers)
    except urllib.error.HTTPError as refused:
        return refused.code, json.loads(refused.read() or b"{}"), dict(refused.headers)


def refresh_cookie(headers: dict) -> str:
    for name, value in headers.items():
        if name.lower() == "set-cookie" and value.startswith("refreshToken="):
            return value.split(";", 1)[0].split("=", 1)[1]
    raise SystemExit("no refresh cookie")


async def main(api: str, ws_url: str, username: str, password: str) -> None:
    key = Key()
    seen = {"jkt": key.thumbprint()}
    status, _, _ = post(api + "/api/register", {"username": username, "password": password}, {})
    seen["register"] = status
    status, body, headers = post(
        api + "/api/login",
        {"username": username, "password": password},
        {"DPoP": key.proof("POST", api + "/api/login")},
    )
    seen["login"] = status
    seen["token_type"] = body.get("tokenType")
    access = body["accessToken"]
    cookie = refresh_cookie(headers)
    htu = ws_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1).split("?")[0]
    async with websockets.connect(ws_url) as socket:
        await socket.send(
            json.dumps({"type": "auth", "access": access, "dpop": key.proof("GET", htu, access)})
        )
        seen["hello"] = json.loads(await socket.recv())["type"]
        status, body, _ = post(
            api + "/api/refresh",
            {},
            {"Cookie": "refreshToken=" + cookie, "DPoP": key.proof("POST", api + "/api/refresh")},
        )
        seen["refresh"] = status
        newer = body["accessToken"]
        thief = Key()
        await socket.send(
            json.dumps({"type": "reauth", "access": newer, "dpop": thief.proof("GET", htu, newer)})
        )
        seen["reauth_other_key"] = json.loads(await socket.recv())["payload"].get("code")
        await socket.send(
            json.dumps({"type": "reauth", "access": newer, "dpop": key.proof("GET", htu, newer)})
        )
        seen["reauth"] = json.loads(await socket.recv())["type"]
    print(json.dumps(seen))


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
