#!/bin/sh
# Generate the RSA key pair that signs access tokens (RS256).
#
#   ./generate-keys.sh [DIR]        (default: keys/)   FORCE=1 to overwrite
#
# private.pem: 4096-bit RSA, PKCS#8 PEM ("BEGIN PRIVATE KEY"), mode 0600.
# public.pem:  SubjectPublicKeyInfo PEM ("BEGIN PUBLIC KEY"), mode 0644.
# refresh-seal.key: 32 random bytes in base64url, mode 0600, the secret that
#   keys the refresh-grace seals (SECURITY.md); created when missing, never
#   replaced (FORCE does not touch it). Every API process must read the same one.
# An existing pair is kept unless FORCE=1: replacing the key invalidates every
# access token in flight (see SECURITY.md, "Key rotation").
set -eu

dir=${1:-$(cd "$(dirname "$0")" && pwd)/keys}
priv="$dir/private.pem"
pub="$dir/public.pem"
seal="$dir/refresh-seal.key"

mkdir -p "$dir"
chmod 700 "$dir"
umask 077

if [ ! -s "$seal" ]; then
    openssl rand 32 | openssl base64 -A | tr '+/' '-_' | tr -d '=' > "$seal.tmp.$$"
    echo >> "$seal.tmp.$$"
    chmod 600 "$seal.tmp.$$"
    mv "$seal.tmp.$$" "$seal"
    echo "wrote $seal (0600)"
fi

if [ -s "$priv" ] && [ "${FORCE:-0}" != "1" ]; then
    echo "keep existing $priv (FORCE=1 to replace)"
    [ -s "$pub" ] || { openssl pkey -in "$priv" -pubout -out "$pub"; chmod 644 "$pub"; }
    exit 0
fi

tmp="$priv.tmp.$$"
trap 'rm -f "$tmp"' EXIT
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$tmp" 2>/dev/null
chmod 600 "$tmp"
mv "$tmp" "$priv"
openssl pkey -in "$priv" -pubout -out "$pub"
chmod 644 "$pub"
echo "wrote $priv (PKCS#8, 0600) and $pub (SPKI)"
