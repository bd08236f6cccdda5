//! Refresh: rotate the refresh token and sign a new access token.

use domain::{Session, User};

use crate::ports::{
    RefreshOutcome, RefreshRefusal, SecurityEvent, SecurityEventKind, SuccessorToken,
};
use crate::{AuthService, ClientInfo, IssuedAccessToken, IssuedRefreshToken, RefreshSecret};

/// What a successful refresh hands out.
#[derive(Debug)]
pub struct RefreshResult {
    /// The user.
    pub user: User,
    /// The session.
    pub session: Session,
    /// A new access token.
    pub access: IssuedAccessToken,
    /// The family's current refresh token: the successor, or on a grace
    /// replay the same current token as before.
    pub refresh: IssuedRefreshToken,
    /// Whether this was a grace replay (nothing rotated).
    pub grace_replay: bool,
}

/// Why a refresh was refused (each maps to one contract code).
#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    /// No token, or an empty one (`refresh_missing`).
    #[error("no refresh token")]
    Missing,
    /// Not a token we issued (`refresh_invalid`).
    #[error("invalid refresh token")]
    Invalid,
    /// Idle timeout or absolute lifetime passed (`refresh_expired`).
    #[error("refresh token expired")]
    Expired,
    /// A rotated token was replayed; the family is now revoked (`refresh_reused`).
    #[error("refresh token reused")]
    Reused,
    /// The family was revoked before (`session_revoked`).
    #[error("session revoked")]
    SessionRevoked,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl AuthService {
    /// Rotates the presented refresh token (contract: "Families").
    ///
    /// # Errors
    /// See [`RefreshError`].
    #[tracing::instrument(skip_all)]
    pub async fn refresh(
        &self,
        presented: Option<&str>,
        client: &ClientInfo,
    ) -> Result<RefreshResult, RefreshError> {
        let result = self.rotate(presented, client).await;
        let now = self.ports.clock.now();
        let event = match &result {
            Ok(r) => {
                let kind = if r.grace_replay {
                    SecurityEventKind::RefreshGraceReplay
                } else {
                    SecurityEventKind::RefreshRotated
                };
                Some(
                    SecurityEvent::new(kind, now, client)
                        .user(r.user.id)
                        .session(r.session.id),
                )
            }
            Err(RefreshError::Missing | RefreshError::Invalid) => Some(SecurityEvent::new(
                SecurityEventKind::RefreshInvalid,
                now,
                client,
            )),
            Err(RefreshError::Expired) => Some(SecurityEvent::new(
                SecurityEventKind::RefreshExpired,
                now,
                client,
            )),
            Err(RefreshError::SessionRevoked) => Some(SecurityEvent::new(
                SecurityEventKind::RefreshRevoked,
                now,
                client,
            )),
            // Reported with its family by `rotate`; storage failures are not outcomes.
            Err(RefreshError::Reused | RefreshError::Unexpected(_)) => None,
        };
        if let Some(event) = event {
            self.report(event).await;
        }
        result
    }

    async fn rotate(
        &self,
        presented: Option<&str>,
        client: &ClientInfo,
    ) -> Result<RefreshResult, RefreshError> {
        let presented = presented
            .filter(|t| !t.is_empty())
            .ok_or(RefreshError::Missing)?;
        let presented = RefreshSecret::parse(presented).ok_or(RefreshError::Invalid)?;
        let successor = RefreshSecret::generate(self.ports.random.as_ref());
        let sealed = SuccessorToken {
            hash: successor.hash(),
            seal: presented.seal_successor(&self.config.seal_key, &successor),
        };
        let now = self.ports.clock.now();
        let outcome = self
            .ports
            .sessions
            .refresh(&presented.hash(), &sealed, now, &self.config.token_policy)
            .await?;

        let (session, secret, token, grace_replay) = match outcome {
            RefreshOutcome::Rotated {
                session,
                successor: token,
            } => (session, successor, token, false),
            RefreshOutcome::GraceReplay {
                session,
                current,
                seal,
            } => {
                let opened = seal.and_then(|seal| {
                    presented.open_successor(&self.config.seal_key, &seal, &current.hash)
                });
                let Some(secret) = opened else {
                    // Erased (the grace ended on another process's clock), or sealed
                    // under another key: API processes that do not share
                    // REFRESH_SEAL_KEY_PATH. Refused, nothing revoked.
                    tracing::warn!(
                        session = %session.id,
                        erased = seal.is_none(),
                        "a grace replay whose seal does not open: refused (do all API \
                         processes share REFRESH_SEAL_KEY_PATH?)"
                    );
                    return Err(RefreshError::Invalid);
                };
                (session, secret, current, true)
            }
            RefreshOutcome::ReuseDetected { session } => {
                self.report_reuse(&session, now, client).await;
                return Err(RefreshError::Reused);
            }
            RefreshOutcome::Refused(RefreshRefusal::Unknown) => return Err(RefreshError::Invalid),
            RefreshOutcome::Refused(RefreshRefusal::Expired | RefreshRefusal::SessionExpired) => {
                return Err(RefreshError::Expired);
            }
            RefreshOutcome::Refused(RefreshRefusal::Revoked) => {
                return Err(RefreshError::SessionRevoked);
            }
        };
        let user = self
            .ports
            .users
            .find_by_id(session.user_id)
            .await?
            .ok_or(RefreshError::Invalid)?;
        let access = self.issue_access(&user, &session, now).await?;
        let refresh = IssuedRefreshToken {
            max_age: token.max_age_seconds(now),
            expires_at: token.expires_at,
            secret,
        };
        Ok(RefreshResult {
            user,
            session,
            access,
            refresh,
            grace_replay,
        })
    }
}
