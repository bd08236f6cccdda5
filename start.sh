#!/bin/sh
# Start the whole stack in Docker Compose: signing keys and a development TLS
# certificate are created when missing, then PostgreSQL, the migration, the
# REST and WebSocket services and Nginx come up.
#
#   ./start.sh                         # 1 api + 1 ws, https://localhost/
#   ./start.sh --scale api=3 --scale ws=3
#   HTTPS_PORT=8443 HTTP_PORT=8080 ./start.sh     # unprivileged host ports
#
# Extra arguments go to `docker-compose up`. Stop with
#   docker-compose -p authd -f infra/docker-compose.yml down
set -eu
cd "$(dirname "$0")"

# Creates whichever of the key pair and the refresh seal key is missing.
./generate-keys.sh keys
[ -s infra/nginx/certs/dev.crt ] || infra/nginx/make-dev-cert.sh infra/nginx/certs

# The containers run as the owner of keys/, so the 0600 private key stays
# readable inside them without loosening its mode. A root-owned key is handed
# to the image's unprivileged user (10001) instead of running the services as root.
AUTHD_UID=$(stat -c %u keys/private.pem)
AUTHD_GID=$(stat -c %g keys/private.pem)
if [ "$AUTHD_UID" = 0 ]; then
    chown 10001:10001 keys keys/private.pem keys/public.pem keys/refresh-seal.key
    AUTHD_UID=10001 AUTHD_GID=10001
fi
export AUTHD_UID AUTHD_GID

if command -v docker-compose >/dev/null 2>&1; then
    compose="docker-compose"
else
    compose="docker compose"
fi
exec $compose -p authd -f infra/docker-compose.yml up --build "$@"
