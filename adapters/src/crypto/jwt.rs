//! Access tokens (JWS compact serialization, RFC 7515/7519/9068) signed
//! with the keys of `crypto::jws_keys`, without a JWT library.
//!
//! The verifier decides only from what it was configured with: the key comes
//! from our own `kid` table and the algorithm is that key's (a header's `alg`
//! is only ever checked against it), and no claim is read before the
//! signature has been checked.

use std::collections::HashMap;
use std::fmt;

use anyhow::Context as _;
use application::ports::{AccessTokenSigner, AccessTokenVerifier, InvalidToken, PublishedKey};
use async_trait::async_trait;
use domain::{AccessClaims, Algorithm, SessionId, Timestamp, UserId};
use serde::{Deserialize, Serialize};
use serde_json::error::Category;
use uuid::Uuid;

use super::base64url;
use super::jws_keys::{KeyPair, PublicJwk};

/// The `typ` of access tokens (RFC 9068).
const TYP: &str = "at+jwt";

/// Signs access tokens with one key, in its algorithm.
#[derive(Clone)]
pub struct JwtSigner {
    key: KeyPair,
    /// `{"alg":"<alg>","typ":"at+jwt","kid":"<kid>"}`, encoded once.
    header_b64: String,
}

impl JwtSigner {
    /// A signer whose tokens carry `key`'s algorithm and id in their header
    /// (an RSA [`PrivateKey`](super::keys::PrivateKey) signs RS256).
    pub fn new(key: impl Into<KeyPair>) -> Self {
        let key = key.into();
        let kid = key.kid().to_owned();
        // The kid is base64url, so it needs no JSON escaping.
        let header = format!(
            r#"{{"alg":"{}","typ":"{TYP}","kid":"{kid}"}}"#,
            key.alg().as_str()
        );
        let header_b64 = base64url::encode(header);
        Self { key, header_b64 }
    }

    /// The key id in the tokens' headers.
    pub fn kid(&self) -> &str {
        self.key.kid()
    }
}

impl fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtSigner")
            .field("alg", &self.key.alg())
            .field("kid", &self.kid())
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
    amr: &'static [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation<'a>>,
}

/// RFC 7800 `cnf`, as RFC 9449 uses it: the thumbprint of the client's key.
#[derive(Serialize)]
struct Confirmation<'a> {
    jkt: &'a str,
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
            amr: c.amr.names(),
            cnf: c.cnf.as_ref().map(|j| Confirmation { jkt: &j.0 }),
        }
    }
}

#[async_trait]
impl AccessTokenSigner for JwtSigner {
    #[tracing::instrument(name = "jwt.sign", skip_all, fields(kid = %self.kid()))]
    async fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let payload =
            serde_json::to_vec(&OutgoingClaims::from(claims)).context("encoding claims")?;
        let mut token = format!("{}.{}", self.header_b64, base64url::encode(payload));
        let signature = if self.key.is_slow() {
            // An RSA private-key operation takes milliseconds: keep it off
            // the async workers.
            let key = self.key.clone();
            let (back, signature) = tokio::task::spawn_blocking(move || {
                let signature = key.sign(token.as_bytes());
                (token, signature)
            })
            .await
            .context("signing task failed")?;
            token = back;
            signature?
        } else {
            // Microseconds: a hop to the blocking pool would cost more.
            self.key.sign(token.as_bytes())?
        };
        token.push('.');
        token.push_str(&base64url::encode(signature));
        Ok(token)
    }
}

/// Verifies access tokens against a set of public keys, an issuer and an audience.
#[derive(Clone)]
pub struct JwtVerifier {
    keys: HashMap<String, PublicJwk>,
    /// The keys as the JWKS shows them, in the order given.
    published: Vec<PublishedKey>,
    issuer: String,
    audience: String,
}

impl JwtVerifier {
    /// A verifier that accepts tokens signed by any of `keys` (found by
    /// their `kid`, each in its own algorithm; an RSA
    /// [`PublicKey`](super::keys::PublicKey) verifies RS256), issued by
    /// `issuer` for `audience`.
    pub fn new<K: Into<PublicJwk>>(keys: Vec<K>, issuer: String, audience: String) -> Self {
        let keys: Vec<PublicJwk> = keys.into_iter().map(Into::into).collect();
        let published = keys.iter().map(|k| k.published().clone()).collect();
        let keys = keys.into_iter().map(|k| (k.kid().to_owned(), k)).collect();
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

/// The claims as read, every one required but `amr`: a token of a version
/// before `amr` began with a password alone.
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
    amr: Option<Vec<String>>,
    cnf: Option<IncomingConfirmation>,
}

#[derive(Deserialize)]
struct IncomingConfirmation {
    jkt: String,
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
        // `none`, `HS256` and every name we never sign with stop here.
        let alg = Algorithm::parse(&header.alg).map_err(|_| InvalidToken::Algorithm)?;
        if header.typ.as_deref() != Some(TYP) {
            return Err(InvalidToken::Type);
        }
        let key = header
            .kid
            .and_then(|kid| self.keys.get(&kid))
            .ok_or(InvalidToken::UnknownKey)?;
        // A token verifies only with the algorithm of the key its kid names.
        if alg != key.alg() {
            return Err(InvalidToken::Algorithm);
        }
        // The signing input is the two parts exactly as received.
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        if !key.verifies(signing_input.as_bytes(), &signature) {
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
        let amr = match &claims.amr {
            None => domain::AuthMethods::Password,
            Some(names) => domain::AuthMethods::parse(names).ok_or(InvalidToken::Claims)?,
        };
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
            amr,
            cnf: claims.cnf.map(|c| domain::dpop::Jkt(c.jkt)),
        })
    }
}

#[cfg(test)]
mod tests;
