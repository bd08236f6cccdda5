//! A DPoP client key for tests (RFC 9449): ES256 proofs written here on
//! `p256` and `sha2`, independently of the server's JWS code, with the
//! RFC 7638 thumbprint computed the RFC's way.

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
