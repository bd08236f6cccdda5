#!/usr/bin/env bash
# authd for ../shared/bench/side-by-side.sh with a JWT_ALG of your choice.
#
# The shared script hands every authd process key files, which the upgrade
# rule imports as the first key (RS256). This wrapper points the key paths at
# files that do not exist, so the key set starts empty and the service makes
# its first key in JWT_ALG. The script starts authd in its work directory,
# so every process of one run shares the server secret kept there.
#
# The binary: AUTHD_BIN, else $CARGO_TARGET_DIR/release/authd, else the
# repository's target/release/authd.
#
#   cargo build --release -p authd
#   JWT_ALG=ES256 AUTHD=$PWD/bench/authd-alg.sh WHO="peer authd-pg" \
#     SCENARIOS="login refresh" ROUNDS=1 ../shared/bench/side-by-side.sh
set -euo pipefail
: "${JWT_ALG:?set JWT_ALG (RS256, PS256, ES256 or EdDSA)}"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
keys="$PWD/empty-key-set-$JWT_ALG"
export PRIVATE_KEY_PATH="$keys/private.pem" PUBLIC_KEY_PATH="$keys/public.pem" \
  REFRESH_SEAL_KEY_PATH="$keys/refresh-seal.key"
exec "${AUTHD_BIN:-${CARGO_TARGET_DIR:-$root/target}/release/authd}" "$@"
