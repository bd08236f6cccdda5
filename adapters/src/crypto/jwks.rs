//! What the JSON Web Key Set at `/.well-known/jwks.json` says of a key.

use application::ports::PublishedKey;

use super::keys::PublicKey;

/// `key`'s public members as a JWK (RFC 7517): `RSA`, its RFC 7638
/// thumbprint as `kid`, `RS256`, `n` and `e`.
pub fn published(key: &PublicKey) -> PublishedKey {
    PublishedKey {
        kty: "RSA",
        kid: key.kid().to_owned(),
        alg: "RS256",
        n: key.modulus().to_owned(),
        e: key.exponent().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::test_key;

    #[test]
    fn publishes_the_rsa_members_of_the_key() {
        let public = test_key().public_key();
        let k = published(&public);
        assert_eq!((k.kty, k.alg), ("RSA", "RS256"));
        assert_eq!(k.kid, public.kid());
        assert_eq!(k.e, "AQAB");
        let n = crate::crypto::base64url::decode(&k.n).unwrap();
        assert_eq!(n.len(), 256);
        assert_ne!(n[0], 0, "no leading zero octet");
    }
}
