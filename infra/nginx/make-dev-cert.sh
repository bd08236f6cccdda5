#!/bin/sh
# Create a self-signed development certificate for Nginx (never for production).
#
#   infra/nginx/make-dev-cert.sh [OUT_DIR]     (default: infra/nginx/certs)
#
# Writes dev.crt and dev.key (mode 0600), valid for localhost, 127.0.0.1 and ::1
# (add names with DEV_CERT_EXTRA_SAN="DNS:auth.example.test,IP:10.0.0.5"),
# as a leaf certificate (CA:FALSE, serverAuth) so strict TLS clients such as
# rustls accept it when it is pinned as the only trust anchor.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/certs}
days=${DEV_CERT_DAYS:-365}
cn=${DEV_CERT_CN:-localhost}

mkdir -p "$out"
umask 077
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" \
    -keyout "$out/dev.key" -out "$out/dev.crt" \
    -subj "/CN=$cn" \
    -addext "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1${DEV_CERT_EXTRA_SAN:+,$DEV_CERT_EXTRA_SAN}" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -addext "keyUsage=critical,digitalSignature,keyEncipherment" \
    -addext "extendedKeyUsage=serverAuth" 2>/dev/null
chmod 600 "$out/dev.key"
chmod 644 "$out/dev.crt"
echo "wrote $out/dev.crt and $out/dev.key"
