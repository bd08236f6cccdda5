#!/bin/bash
# Container health check without curl: one HTTP/1.0 request over bash's
# /dev/tcp to the local service, healthy when the status code is the expected
# one. The API answers GET /api/health with 200 (database reachable); the
# WebSocket service answers GET /ws without a token with 401, which proves it
# accepts and judges requests.
#   HEALTHCHECK_PORT (3000), HEALTHCHECK_PATH (/api/health), HEALTHCHECK_EXPECT (200)
set -eu
port=${HEALTHCHECK_PORT:-3000}
path=${HEALTHCHECK_PATH:-/api/health}
expect=${HEALTHCHECK_EXPECT:-200}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "$path" >&3
IFS=' ' read -r _ status _ <&3 || exit 1
[ "$status" = "$expect" ]
