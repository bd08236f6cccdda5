#!/bin/bash
# Container health check without curl: one HTTP request over bash's /dev/tcp
# to the local service, healthy when the status code is the expected one.
# The API answers GET /api/health with 200 (database reachable). The WebSocket
# service answers only upgrade requests; one without a token gets 401, which
# proves it accepts and judges handshakes (HEALTHCHECK_UPGRADE=1).
#   HEALTHCHECK_PORT (3000), HEALTHCHECK_PATH (/api/health),
#   HEALTHCHECK_EXPECT (200), HEALTHCHECK_UPGRADE (0)
set -eu
port=${HEALTHCHECK_PORT:-3000}
path=${HEALTHCHECK_PATH:-/api/health}
expect=${HEALTHCHECK_EXPECT:-200}
exec 3<>"/dev/tcp/127.0.0.1/$port"
if [ "${HEALTHCHECK_UPGRADE:-0}" = "1" ]; then
    printf 'GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n' "$path" >&3
else
    printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
fi
IFS=' ' read -r -t 3 _ status _ <&3 || exit 1
[ "$status" = "$expect" ]
