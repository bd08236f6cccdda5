#!/bin/sh
# Render nginx.conf.template into OUT_DIR/nginx.conf (+ snippets/).
#
#   infra/nginx/render.sh OUT_DIR
#
# Every setting comes from the environment; the defaults are the Docker Compose
# values. Only the listed ${PLACEHOLDERS} are substituted, so nginx's own
# $variables survive. Needs envsubst (Debian: gettext-base; nginx images have it).
#
# Example, a loopback instance run by an unprivileged user:
#   NGINX_HTTP_LISTEN=127.0.0.1:8080 NGINX_HTTPS_LISTEN=127.0.0.1:8443 \
#   NGINX_HTTPS_PUBLIC_PORT=8443 API_UPSTREAMS="127.0.0.1:3000 127.0.0.1:3010" \
#   WS_UPSTREAMS="127.0.0.1:3001 127.0.0.1:3011" TLS_CERT=$PWD/infra/nginx/certs/dev.crt \
#   TLS_KEY=$PWD/infra/nginx/certs/dev.key WEB_ROOT=$PWD/web NGINX_RUN_DIR=/tmp/ngx \
#   NGINX_ACCESS_LOG=/tmp/ngx/access.log NGINX_ERROR_LOG=/tmp/ngx/error.log \
#   infra/nginx/render.sh /tmp/ngx && nginx -p /tmp/ngx -c /tmp/ngx/nginx.conf -e /tmp/ngx/error.log
set -eu

out=${1:?usage: render.sh OUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)

: "${NGINX_HTTP_LISTEN:=80}"
: "${NGINX_HTTPS_LISTEN:=443}"
: "${NGINX_HTTPS_PUBLIC_PORT:=443}"
: "${API_UPSTREAMS:=api:3000}"
: "${WS_UPSTREAMS:=ws:3001}"
: "${TLS_CERT:=/etc/nginx/certs/dev.crt}"
: "${TLS_KEY:=/etc/nginx/certs/dev.key}"
: "${WEB_ROOT:=/usr/share/nginx/authd}"
: "${NGINX_ACCESS_LOG:=/dev/stdout}"
: "${NGINX_ERROR_LOG:=/dev/stderr}"
: "${NGINX_RUN_DIR:=/var/cache/nginx}"
: "${NGINX_WORKER_PROCESSES:=auto}"
: "${LOGIN_RATE:=10r/m}"
: "${LOGIN_BURST:=10}"
: "${REFRESH_RATE:=30r/m}"
: "${REFRESH_BURST:=20}"
: "${MAIL_RATE:=5r/m}"
: "${MAIL_BURST:=5}"

# "a:1 b:2" or "a:1,b:2" -> one "server a:1 ...;" line each.
servers() {
    printf '%s\n' "$1" | tr ', ' '\n\n' | sed '/^$/d' |
        sed 's/.*/server & max_fails=1 fail_timeout=5s;/' | tr '\n' ' '
}
API_UPSTREAM_SERVERS=$(servers "$API_UPSTREAMS")
WS_UPSTREAM_SERVERS=$(servers "$WS_UPSTREAMS")

export NGINX_HTTP_LISTEN NGINX_HTTPS_LISTEN NGINX_HTTPS_PUBLIC_PORT \
    API_UPSTREAM_SERVERS WS_UPSTREAM_SERVERS TLS_CERT TLS_KEY WEB_ROOT \
    NGINX_ACCESS_LOG NGINX_ERROR_LOG NGINX_RUN_DIR NGINX_WORKER_PROCESSES \
    LOGIN_RATE LOGIN_BURST REFRESH_RATE REFRESH_BURST MAIL_RATE MAIL_BURST

vars='${NGINX_HTTP_LISTEN} ${NGINX_HTTPS_LISTEN} ${NGINX_HTTPS_PUBLIC_PORT}
${API_UPSTREAM_SERVERS} ${WS_UPSTREAM_SERVERS} ${TLS_CERT} ${TLS_KEY} ${WEB_ROOT}
${NGINX_ACCESS_LOG} ${NGINX_ERROR_LOG} ${NGINX_RUN_DIR} ${NGINX_WORKER_PROCESSES}
${LOGIN_RATE} ${LOGIN_BURST} ${REFRESH_RATE} ${REFRESH_BURST} ${MAIL_RATE} ${MAIL_BURST}'

mkdir -p "$out/snippets" "$NGINX_RUN_DIR"
cp "$here"/snippets/*.conf "$out/snippets/"
envsubst "$vars" < "$here/nginx.conf.template" > "$out/nginx.conf"
echo "rendered $out/nginx.conf"
