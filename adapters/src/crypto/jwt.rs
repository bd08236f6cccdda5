//! RS256 access tokens (JWS compact serialization, RFC 7515/7519/9068),
//! written on the `rsa` crate without a JWT library.
//!
//! The verifier decides only from what it was configured with: the algorithm
//! is fixed to RS256 whatever the header says (a header is only ever checked
//! against it), the key comes from our own `kid` table, and no claim is read
//! before the signature has been checked.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use anyhow::Context as _;
use application::ports::{AccessTokenSigner, AccessTokenVerifier, InvalidToken, PublishedKey};
use async_trait::async_trait;
use domain::{AccessClaims, SessionId, Timestamp, UserId};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::signature::{RandomizedSigner as _, SignatureEncoding as _, Verifier as _};
use rsa::traits::PublicKeyParts as _;
use serde::{Deserialize, Serialize};
use serde_json::error::Category;
use sha2::Sha256;
use uuid::Uuid;

use super::base64url;
use super::keys::{PrivateKey, PublicKey};
use super::os_rng::OsRng;

/// The only `alg` we sign with and accept.
const ALG: &str = "RS256";

/// The `typ` of access tokens (RFC 9068).
const TYP: &str = "at+jwt";

/// Signs access tokens with one RSA key (RS256, PKCS#1 v1.5, SHA-256).
#[derive(Clone)]
pub struct JwtSigner {
    key: Arc<SigningKey<Sha256>>,
    kid: String,
    /// `{"alg":"RS256","typ":"at+jwt","kid":"<kid>"}`, encoded once.
    header_b64: String,
}

impl JwtSigner {
    /// A signer whose tokens carry `key`'s id in their `kid` header.
    pub fn new(key: PrivateKey) -> Self {
        let kid = key.kid().to_owned();
        // The kid is base64url, so it needs no JSON escaping.
        let header = format!(r#"{{"alg":"{ALG}","typ":"{TYP}","kid":"{kid}"}}"#);
        let header_b64 = base64url::encode(header);
        Self {
            key: Arc::new(SigningKey::new(key.rsa().clone())),
            kid,
            header_b64,
        }
    }

    /// The key id in the tokens' headers.
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

impl fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSigner")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The claims as they are written, in the contract's order.
#[derive(Serialize)]
struct OutgoingClaims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a Uuid,
    sid: &'a Uuid,
    jti: &'a Uuid,
    iat: i64,
    nbf: i64,
    exp: i64,
    username: &'a str,
}

impl<'a> From<&'a AccessClaims> for OutgoingClaims<'a> {
    fn from(c: &'a AccessClaims) -> Self {
        Self {
            iss: &c.iss,
            aud: &c.aud,
            sub: c.sub.as_uuid(),
            sid: c.sid.as_uuid(),
            jti: &c.jti,
            iat: c.iat,
            nbf: c.nbf,
            exp: c.exp,
            username: &c.username,
        }
    }
}

#[async_trait]
impl AccessTokenSigner for JwtSigner {
    #[tracing::instrument(name = "jwt.sign", skip_all, fields(kid = %self.kid))]
    async fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let payload =
            serde_json::to_vec(&OutgoingClaims::from(claims)).context("encoding claims")?;
        let mut token = format!("{}.{}", self.header_b64, base64url::encode(payload));
        let key = Arc::clone(&self.key);
        // A private-key operation takes milliseconds: keep it off the async
        // workers. The RNG blinds it against timing side channels.
        let (mut token, signature) = tokio::task::spawn_blocking(move || {
            let signature = key.try_sign_with_rng(&mut OsRng, token.as_bytes());
            (std::mem::take(&mut token), signature)
        })
        .await
        .context("signing task failed")?;
        let signature = signature.map_err(|e| anyhow::anyhow!("RS256 signing failed: {e}"))?;
        token.push('.');
        token.push_str(&base64url::encode(signature.to_bytes()));
        Ok(token)
    }
}

/// Verifies access tokens against a set of public keys, an issuer and an audience.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: HashMap<String, VerifyingKey<Sha256>>,
    /// The keys as the JWKS shows them, in the order given.
    published: Vec<PublishedKey>,
    issuer: String,
    audience: String,
}

impl JwtVerifier {
    /// A verifier that accepts tokens signed by any of `keys` (found by
    /// their `kid`), issued by `issuer` for `audience`.
    pub fn new(keys: Vec<PublicKey>, issuer: String, audience: String) -> Self {
        let published = keys.iter().map(super::jwks::published).collect();
        let keys = keys
            .into_iter()
            .map(|k| (k.kid().to_owned(), VerifyingKey::new(k.rsa().clone())))
            .collect();
        Self {
            keys,
            published,
            issuer,
            audience,
        }
    }
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&String> = self.keys.keys().collect();
        kids.sort();
        f.debug_struct("JwtVerifier")
            .field("kids", &kids)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

/// The JOSE header members we look at. Unknown members are ignored, except
/// `crit`: extensions we would have to understand (RFC 7515 section 4.1.11).
#[derive(Deserialize)]
struct Header {
    alg: String,
    typ: Option<String>,
    kid: Option<String>,
    crit: Option<serde::de::IgnoredAny>,
}

/// `aud` may be one string or an array of them (RFC 7519 section 4.1.3).
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, ours: &str) -> bool {
        match self {
            Self::One(aud) => aud == ours,
            Self::Many(auds) => auds.iter().any(|a| a == ours),
        }
    }
}

/// The claims as read, every one required.
#[derive(Deserialize)]
struct IncomingClaims {
    iss: String,
    aud: Audience,
    sub: Uuid,
    sid: Uuid,
    jti: Uuid,
    iat: i64,
    nbf: i64,
    exp: i64,
    username: String,
}

/// Checks an RS256 signature over `signing_input`. The `rsa` verifier compares
/// the whole encoded message, so where a forgery differs leaks no timing.
fn rs256_verifies(key: &VerifyingKey<Sha256>, signing_input: &[u8], signature: &[u8]) -> bool {
    // A PKCS#1 v1.5 signature is exactly as long as the modulus.
    if signature.len() != key.as_ref().size() {
        return false;
    }
    Signature::try_from(signature).is_ok_and(|sig| key.verify(signing_input, &sig).is_ok())
}

/// Reads JSON, telling bad JSON (`Malformed`) from the wrong shape (`shape`).
fn parse_json<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    shape: InvalidToken,
) -> Result<T, InvalidToken> {
    serde_json::from_slice(bytes).map_err(|e| match e.classify() {
        Category::Data => shape,
        Category::Io | Category::Syntax | Category::Eof => InvalidToken::Malformed,
    })
}

impl AccessTokenVerifier for JwtVerifier {
    fn published_keys(&self) -> Vec<PublishedKey> {
        self.published.clone()
    }

    fn kid_of(&self, token: &str) -> Option<String> {
        if token.len() > domain::MAX_ACCESS_TOKEN_BYTES {
            return None;
        }
        let header = base64url::decode(token.split('.').next()?)?;
        parse_json::<Header>(&header, InvalidToken::Malformed)
            .ok()?
            .kid
    }

    fn accepts_key(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    fn verify(
        &self,
        token: &str,
        now: Timestamp,
        leeway_secs: i64,
    ) -> Result<AccessClaims, InvalidToken> {
        // Before anything else: nothing decodes or hashes an attacker's megabytes.
        if token.len() > domain::MAX_ACCESS_TOKEN_BYTES {
            return Err(InvalidToken::Oversized);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InvalidToken::Malformed);
        };
        let header = base64url::decode(header_b64).ok_or(InvalidToken::Malformed)?;
        let payload = base64url::decode(payload_b64).ok_or(InvalidToken::Malformed)?;
        let signature = base64url::decode(signature_b64).ok_or(InvalidToken::Malformed)?;

        let header: Header = parse_json(&header, InvalidToken::Malformed)?;
        if header.crit.is_some() {
            return Err(InvalidToken::Malformed);
        }
        if header.alg != ALG {
            return Err(InvalidToken::Algorithm);
        }
        if header.typ.as_deref() != Some(TYP) {
            return Err(InvalidToken::Type);
        }
        let key = header
            .kid
            .and_then(|kid| self.keys.get(&kid))
            .ok_or(InvalidToken::UnknownKey)?;
        // The signing input is the two parts exactly as received.
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        if !rs256_verifies(key, signing_input.as_bytes(), &signature) {
            return Err(InvalidToken::Signature);
        }

        // Signed by us: the claims can be read now.
        let claims: IncomingClaims = parse_json(&payload, InvalidToken::Claims)?;
        if claims.iss != self.issuer {
            return Err(InvalidToken::Issuer);
        }
        if !claims.aud.contains(&self.audience) {
            return Err(InvalidToken::Audience);
        }
        domain::check_token_times(claims.exp, claims.nbf, now, leeway_secs)
            .map_err(InvalidToken::from)?;
        Ok(AccessClaims {
            iss: claims.iss,
            aud: self.audience.clone(),
            sub: UserId::from_uuid(claims.sub),
            sid: SessionId::from_uuid(claims.sid),
            jti: claims.jti,
            iat: claims.iat,
            nbf: claims.nbf,
            exp: claims.exp,
            username: claims.username,
        })
    }
}

#[cfg(test)]
mod tests;
