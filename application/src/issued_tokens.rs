//! Signing access tokens, and the tokens a login or a refresh hands out.

use std::sync::Arc;
use std::time::Duration;

use domain::{AccessClaims, Session, Timestamp, User, access_token_exp};

use crate::RefreshSecret;
use crate::ports::{AccessTokenSigner, RandomSource};

/// Signs access tokens: the claims every token of the service carries.
#[derive(Clone)]
pub struct AccessTokenIssuer {
    /// Signs the claims.
    pub signer: Arc<dyn AccessTokenSigner>,
    /// Makes each token's `jti`.
    pub random: Arc<dyn RandomSource>,
    /// `JWT_ISSUER`.
    pub issuer: String,
    /// `JWT_AUDIENCE`.
    pub audience: String,
    /// `ACCESS_TOKEN_EXPIRY`.
    pub access_ttl: Duration,
}

impl std::fmt::Debug for AccessTokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokenIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("access_ttl", &self.access_ttl)
            .finish_non_exhaustive()
    }
}

impl AccessTokenIssuer {
    /// Signs an access token for `user` in `session`; it expires after
    /// `ACCESS_TOKEN_EXPIRY`, or at the session's absolute end if that is sooner.
    ///
    /// # Errors
    /// The signer failed.
    pub async fn issue(
        &self,
        user: &User,
        session: &Session,
        now: Timestamp,
    ) -> anyhow::Result<IssuedAccessToken> {
        let iat = now.unix_seconds();
        let exp = access_token_exp(now, self.access_ttl, session.expires_at);
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.id,
            sid: session.id,
            jti: self.random.uuid(),
            iat,
            nbf: iat,
            exp,
            username: user.username.as_str().to_owned(),
            amr: session.methods,
            cnf: session.jkt.clone(),
        };
        let token = self.signer.sign(&claims).await?;
        Ok(IssuedAccessToken {
            token,
            expires_at: exp,
            expires_in: exp - iat,
        })
    }
}

/// A signed access token.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedAccessToken {
    /// The compact JWS.
    pub token: String,
    /// Its `exp`, Unix seconds.
    pub expires_at: i64,
    /// Seconds from issue to `exp`.
    pub expires_in: i64,
}

impl std::fmt::Debug for IssuedAccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedAccessToken")
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A refresh token handed to the client (the cookie).
#[derive(Debug)]
pub struct IssuedRefreshToken {
    /// The plaintext.
    pub secret: RefreshSecret,
    /// When it expires.
    pub expires_at: Timestamp,
    /// Seconds until then: the cookie's `Max-Age`.
    pub max_age: i64,
}
