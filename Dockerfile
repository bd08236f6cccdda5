# syntax=docker/dockerfile:1
# Multi-stage build of the `authd` binary: a Rust builder, then a small Debian
# runtime image that runs as an unprivileged user. One image serves every role:
# `authd api`, `authd ws`, `authd migrate`, `authd serve` (the CMD default).
#
#   docker build -t authd .
#   docker run --rm -v "$PWD/keys:/run/authd/keys:ro" -p 127.0.0.1:3000:3000 authd api

# The lockfile's sqlx needs Rust 1.94 or newer.
FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p authd \
    && install -m 0755 target/release/authd /usr/local/bin/authd

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates=20230311* \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 authd \
    && useradd --system --uid 10001 --gid authd --home-dir /app --no-create-home --shell /usr/sbin/nologin authd \
    && mkdir -p /app/data /run/authd/keys \
    && chown authd:authd /app/data
COPY --from=builder /usr/local/bin/authd /usr/local/bin/authd
COPY infra/docker/healthcheck.sh /usr/local/bin/authd-healthcheck
COPY web /app/web
WORKDIR /app
# Paths and addresses only; the keys themselves are mounted read-only at run time.
# hadolint ignore=DL3064
ENV API_ADDR=0.0.0.0:3000 \
    WS_ADDR=0.0.0.0:3001 \
    PRIVATE_KEY_PATH=/run/authd/keys/private.pem \
    PUBLIC_KEY_PATH=/run/authd/keys/public.pem \
    HEALTHCHECK_PORT=3000 \
    HEALTHCHECK_PATH=/api/health \
    HEALTHCHECK_EXPECT=200
USER 10001:10001
EXPOSE 3000 3001
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/usr/local/bin/authd-healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/authd"]
CMD ["serve"]
