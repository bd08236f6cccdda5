//! The JSON Web Key Set served at `/.well-known/jwks.json`.

use serde::Serialize;

use super::keys::PublicKey;

/// One RSA signing key as a JWK (RFC 7517), public members only.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct Jwk {
    /// Key type: `RSA`.
    pub kty: String,
    /// Key id: the RFC 7638 thumbprint, as in the tokens' `kid` header.
    pub kid: String,
    /// Algorithm: `RS256`.
    pub alg: String,
    /// Public key use: `sig`.
    #[serde(rename = "use")]
    pub use_: String,
    /// Modulus, base64url (unpadded, big-endian, no leading zeros).
    pub n: String,
    /// Public exponent, base64url (unpadded, big-endian).
    pub e: String,
}

/// A JWK Set: `{"keys": [...]}`.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
pub struct JwkSet {
    /// The keys, in the order given.
    pub keys: Vec<Jwk>,
}

impl JwkSet {
    /// The set of the given public keys.
    pub fn from_keys(keys: &[PublicKey]) -> Self {
        Self {
            keys: keys.iter().map(PublicKey::to_jwk).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::test_key;

    #[test]
    fn serializes_the_contract_shape() {
        let public = test_key().public_key();
        let json = serde_json::to_value(JwkSet::from_keys(std::slice::from_ref(&public))).unwrap();
        let keys = json["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let k = &keys[0];
        assert_eq!(k["kty"], "RSA");
        assert_eq!(k["alg"], "RS256");
        assert_eq!(k["use"], "sig");
        assert_eq!(k["kid"], public.kid());
        assert_eq!(k["e"], "AQAB");
        let n = crate::crypto::base64url::decode(k["n"].as_str().unwrap()).unwrap();
        assert_eq!(n.len(), 256);
        assert_ne!(n[0], 0, "no leading zero octet");
        assert_eq!(k.as_object().unwrap().len(), 6, "public members only: {k}");
    }
}
