"""An independent WebSocket client with compression on: Python `websockets`
(its defaults: it offers permessage-deflate with client_max_window_bits).

Usage: ws_deflate.py <ws://host:port/ws?token=...>

Reads `connected`, sends a 16 KiB JSON echo and a ping, and prints one JSON
line: the negotiated extension header, what came back, and the bytes that
crossed the socket each way (so the test can see compression happen).
"""

import json
import socket
import sys
from urllib.parse import urlsplit

from websockets.sync.client import connect


class Counting(socket.socket):
    """A socket that counts the bytes it carries."""

    received = 0
    sent = 0

    def recv(self, *args):
        data = super().recv(*args)
        self.received += len(data)
        return data

    def sendall(self, data, *args):
        self.sent += len(data)
        return super().sendall(data, *args)

    def send(self, data, *args):
        n = super().send(data, *args)
        self.sent += n
        return n


def main() -> None:
    url = sys.argv[1]
    document = {
        "items": [
            {"id": i, "name": f"item {i}", "tags": ["a", "b"], "ok": i % 3 == 0}
            for i in range(290)
        ]
    }
    parts = urlsplit(url)
    sock = Counting(socket.AF_INET, socket.SOCK_STREAM)
    sock.connect((parts.hostname, parts.port))
    with connect(url, sock=sock, compression="deflate", open_timeout=5) as ws:
        hello = json.loads(ws.recv(timeout=5))
        before = (sock.received, sock.sent)
        sent = json.dumps({"type": "echo", "payload": document})
        ws.send(sent)
        echo = json.loads(ws.recv(timeout=5))
        echo_bytes = (sock.received - before[0], sock.sent - before[1])
        ws.send(json.dumps({"type": "ping"}))
        pong = json.loads(ws.recv(timeout=5))
        extensions = [type(e).__name__ for e in ws.protocol.extensions]
        print(
            json.dumps(
                {
                    "header": ws.response.headers.get("Sec-WebSocket-Extensions"),
                    "extensions": extensions,
                    "hello": hello["type"],
                    "echo_equal": echo == {"type": "echo", "payload": document},
                    "echo_size": len(sent),
                    "echo_wire_in": echo_bytes[0],
                    "echo_wire_out": echo_bytes[1],
                    "pong": pong["type"],
                }
            )
        )


if __name__ == "__main__":
    main()
