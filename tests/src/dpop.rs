//! DPoP client keys for tests (RFC 9449): ES256 ([`DpopKey`], on `p256`)
//! and EdDSA ([`DpopEdKey`], on `ed25519-dalek`) proofs written here with
//! `sha2`, independently of the server's JWS code, with the RFC 7638
//! thumbprint computed the RFC's way.

use data_encoding::BASE64URL_NOPAD;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// A client's P-256 key pair.
#[derive(Clone)]
pub struct DpopKey {
    key: SigningKey,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey")
            .field("jkt", &self.thumbprint())
            .finish()
    }
}

impl Default for DpopKey {
    fn default() -> Self {
        Self::new()
    }
}

/// The base64url SHA-256 of an access token (`ath`).
pub fn token_hash(token: &str) -> String {
    BASE64URL_NOPAD.encode(&Sha256::digest(token.as_bytes()))
}

impl DpopKey {
    /// A fresh key.
    pub fn new() -> Self {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).expect("randomness from the OS");
            if let Ok(key) = SigningKey::from_slice(&bytes) {
                return Self { key };
            }
        }
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        let point = self.key.verifying_key().to_encoded_point(false);
        json!({
            "kty": "EC",
            "crv": "P-256",
            "x": BASE64URL_NOPAD.encode(point.x().expect("uncompressed")),
            "y": BASE64URL_NOPAD.encode(point.y().expect("uncompressed")),
        })
    }

    /// The RFC 7638 thumbprint (`cnf.jkt`).
    pub fn thumbprint(&self) -> String {
        let jwk = self.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        BASE64URL_NOPAD.encode(&Sha256::digest(canonical.as_bytes()))
    }

    /// A proof for `htm` `htu` now, with `ath` of `token` when given.
    pub fn proof(&self, htm: &str, htu: &str, token: Option<&str>) -> String {
        let mut claims = json!({
            "jti": fresh_jti(),
            "htm": htm,
            "htu": htu,
            "iat": crate::clock::unix_now(),
        });
        if let Some(token) = token {
            claims["ath"] = json!(token_hash(token));
        }
        self.sign(
            &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()}),
            &claims,
        )
    }

    /// A compact JWS of `header` and `claims` signed by this key (ES256).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
            BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
        );
        let signature: Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", BASE64URL_NOPAD.encode(&signature.to_bytes()))
    }

    /// The standard header of this key's proofs.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk()})
    }
}

/// A random `jti`.
pub fn fresh_jti() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("randomness from the OS");
    BASE64URL_NOPAD.encode(&bytes)
}

/// A client's Ed25519 key pair (EdDSA proofs, RFC 8037 JWK), on
/// `ed25519-dalek`, with the same methods as [`DpopKey`].
#[derive(Clone)]
pub struct DpopEdKey {
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for DpopEdKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopEdKey")
            .field("jkt", &self.thumbprint())
            .finish()
    }
}

impl Default for DpopEdKey {
    fn default() -> Self {
        Self::new()
    }
}

impl DpopEdKey {
    /// A fresh key.
    pub fn new() -> Self {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("randomness from the OS");
        Self {
            key: ed25519_dalek::SigningKey::from_bytes(&bytes),
        }
    }

    /// The public JWK.
    pub fn jwk(&self) -> Value {
        json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "x": BASE64URL_NOPAD.encode(self.key.verifying_key().as_bytes()),
        })
    }

    /// The RFC 7638 thumbprint (`cnf.jkt`): the required members `crv`,
    /// `kty`, `x` in that order (RFC 8037 section 2).
    pub fn thumbprint(&self) -> String {
        let canonical = format!(
            r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
            BASE64URL_NOPAD.encode(self.key.verifying_key().as_bytes())
        );
        BASE64URL_NOPAD.encode(&Sha256::digest(canonical.as_bytes()))
    }

    /// A proof for `htm` `htu` now, with `ath` of `token` when given.
    pub fn proof(&self, htm: &str, htu: &str, token: Option<&str>) -> String {
        self.sign(&self.header(), &proof_claims(htm, htu, token))
    }

    /// A compact JWS of `header` and `claims` signed by this key (EdDSA).
    pub fn sign(&self, header: &Value, claims: &Value) -> String {
        use ed25519_dalek::Signer as _;
        let input = format!(
            "{}.{}",
            BASE64URL_NOPAD.encode(header.to_string().as_bytes()),
            BASE64URL_NOPAD.encode(claims.to_string().as_bytes())
        );
        let signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", BASE64URL_NOPAD.encode(&signature.to_bytes()))
    }

    /// The standard header of this key's proofs.
    pub fn header(&self) -> Value {
        json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": self.jwk()})
    }
}

/// The claims of a proof for `htm` `htu` now: a fresh `jti`, and `ath` of
/// `token` when given.
pub fn proof_claims(htm: &str, htu: &str, token: Option<&str>) -> Value {
    let mut claims = json!({
        "jti": fresh_jti(),
        "htm": htm,
        "htu": htu,
        "iat": crate::clock::unix_now(),
    });
    if let Some(token) = token {
        claims["ath"] = json!(token_hash(token));
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both keys' proofs pass the server's own JWS check, which computes
    /// the same thumbprint and reads the claims as they were sent.
    #[test]
    fn the_servers_verifier_takes_both_keys_proofs() {
        let url = "http://127.0.0.1:1/api/protected";
        let es256 = DpopKey::new();
        let eddsa = DpopEdKey::new();
        for (proof, jkt) in [
            (es256.proof("GET", url, Some("t")), es256.thumbprint()),
            (eddsa.proof("GET", url, Some("t")), eddsa.thumbprint()),
        ] {
            let verified = adapters::crypto::dpop::verify_proof(&proof).expect("a valid proof");
            assert_eq!(verified.jkt, jkt);
            assert_eq!((verified.htm.as_str(), verified.htu.as_str()), ("GET", url));
            assert_eq!(verified.ath, Some(token_hash("t")));
        }
    }
}
