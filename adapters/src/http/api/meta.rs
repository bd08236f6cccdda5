//! `GET /api/health` and `GET /api/.well-known/jwks.json`.

use std::sync::Arc;
use std::time::Duration;

use application::ports::{KeyParams, PublishedKey};
use application::{AccessCheck, Readiness};
use poem::web::Data;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::ApiTags;

/// Health and keys.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetaApi;

/// How long the database may take to answer the health probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The service's health.
#[derive(Debug, Object)]
pub struct HealthBody {
    /// `ok` or `degraded`.
    pub status: String,
    /// `ok` or `down`.
    pub database: String,
    /// `ok`, or `down` when this process has not heard revocations for more
    /// than a few seconds (its revocation feed cannot reach the database).
    pub revocations: String,
}

/// Answers of `GET /api/health`.
#[derive(Debug, ApiResponse)]
pub enum HealthResponse {
    /// Everything answers: `{"status":"ok","database":"ok","revocations":"ok"}`.
    #[oai(status = 200)]
    Ok(Json<HealthBody>),
    /// The database does not answer (`"database":"down"`), or this process
    /// does not hear revocations (`"revocations":"down"`): `"status":"degraded"`.
    #[oai(status = 503)]
    Degraded(Json<HealthBody>),
}

/// A public key that verifies access tokens (RFC 7517): an `RSA` key
/// (`n`, `e`; RFC 7518 section 6.3), an `EC` key (`crv`, `x`, `y`; RFC 7518
/// section 6.2) or an `OKP` key (`crv`, `x`; RFC 8037).
#[derive(Debug, Clone, Object)]
pub struct JwkBody {
    /// `RSA`, `EC` or `OKP`.
    pub kty: String,
    /// The key id, the `kid` of the tokens it verifies (its RFC 7638 thumbprint).
    pub kid: String,
    /// `RS256`, `PS256`, `ES256` or `EdDSA`: the only algorithm this key verifies.
    pub alg: String,
    /// `sig`.
    #[oai(rename = "use")]
    pub use_: String,
    /// RSA: the modulus, base64url.
    #[oai(skip_serializing_if_is_none)]
    pub n: Option<String>,
    /// RSA: the public exponent, base64url.
    #[oai(skip_serializing_if_is_none)]
    pub e: Option<String>,
    /// EC: `P-256`; OKP: `Ed25519`.
    #[oai(skip_serializing_if_is_none)]
    pub crv: Option<String>,
    /// EC: the x coordinate; OKP: the public key; base64url.
    #[oai(skip_serializing_if_is_none)]
    pub x: Option<String>,
    /// EC: the y coordinate, base64url.
    #[oai(skip_serializing_if_is_none)]
    pub y: Option<String>,
}

/// The public keys that verify access tokens.
#[derive(Debug, Clone, Object)]
pub struct JwksBody {
    /// The keys.
    pub keys: Vec<JwkBody>,
}

impl From<PublishedKey> for JwkBody {
    fn from(key: PublishedKey) -> Self {
        let mut body = Self {
            kty: key.kty().to_owned(),
            kid: key.kid,
            alg: key.alg.to_owned(),
            use_: "sig".to_owned(),
            n: None,
            e: None,
            crv: None,
            x: None,
            y: None,
        };
        match key.params {
            KeyParams::Rsa { n, e } => (body.n, body.e) = (Some(n), Some(e)),
            KeyParams::Ec { crv, x, y } => {
                (body.crv, body.x, body.y) = (Some(crv.to_owned()), Some(x), Some(y));
            }
            KeyParams::Okp { crv, x } => (body.crv, body.x) = (Some(crv.to_owned()), Some(x)),
        }
        body
    }
}

/// Answers of `GET /api/.well-known/jwks.json`.
#[derive(Debug, ApiResponse)]
pub enum JwksResponse {
    /// The JWK set.
    #[oai(status = 200)]
    Ok(
        Json<JwksBody>,
        /// `public, max-age=300`
        #[oai(header = "Cache-Control")]
        String,
    ),
}

#[OpenApi(tag = "ApiTags::Meta")]
impl MetaApi {
    /// Health.
    ///
    /// Checks that the database answers and that this process hears
    /// revocations.
    #[oai(path = "/health", method = "get", operation_id = "health")]
    async fn health(&self, auth: Data<&Arc<Readiness>>) -> HealthResponse {
        let database = tokio::time::timeout(PROBE_TIMEOUT, auth.database_ok())
            .await
            .unwrap_or(false);
        let revocations = !auth.revocations_degraded();
        let word = |ok: bool| if ok { "ok" } else { "down" }.to_owned();
        let body = HealthBody {
            status: if database && revocations {
                "ok"
            } else {
                "degraded"
            }
            .into(),
            database: word(database),
            revocations: word(revocations),
        };
        if database && revocations {
            return HealthResponse::Ok(Json(body));
        }
        if !database {
            tracing::warn!("health check: the database does not answer");
        }
        if !revocations {
            tracing::warn!("health check: the revocation feed is down");
        }
        HealthResponse::Degraded(Json(body))
    }

    /// Public keys.
    ///
    /// The JWK set: every key a valid access token may be signed by.
    #[oai(path = "/.well-known/jwks.json", method = "get", operation_id = "jwks")]
    async fn jwks(&self, auth: Data<&Arc<AccessCheck>>) -> JwksResponse {
        let keys = auth.published_keys().into_iter().map(JwkBody::from);
        let body = JwksBody {
            keys: keys.collect(),
        };
        JwksResponse::Ok(Json(body), "public, max-age=300".into())
    }
}
