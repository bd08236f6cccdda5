//! List and revoke one's own sessions.

use domain::{AccessClaims, RevokeReason, Session, SessionId};

use crate::ports::{SecurityEvent, SecurityEventKind};
use crate::{AuthService, ClientInfo};

/// A live session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    /// The session.
    pub session: Session,
    /// Whether the asking access token belongs to it.
    pub current: bool,
}

/// Why a session could not be revoked.
#[derive(Debug, thiserror::Error)]
pub enum RevokeSessionError {
    /// No such session for this user (another user's id looks the same).
    #[error("no such session")]
    NotFound,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl AuthService {
    /// The caller's live sessions, newest first.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(skip_all, fields(user = %caller.sub))]
    pub async fn list_sessions(&self, caller: &AccessClaims) -> anyhow::Result<Vec<SessionView>> {
        let now = self.ports.clock.now();
        let sessions = self.ports.sessions.list_live(caller.sub, now).await?;
        Ok(sessions
            .into_iter()
            .map(|session| SessionView {
                current: session.id == caller.sid,
                session,
            })
            .collect())
    }

    /// Revokes one of the caller's sessions.
    ///
    /// # Errors
    /// [`RevokeSessionError::NotFound`] for unknown ids, other users' sessions
    /// and sessions that already ended.
    #[tracing::instrument(skip_all, fields(user = %caller.sub, session = %id))]
    pub async fn revoke_session(
        &self,
        caller: &AccessClaims,
        id: SessionId,
        client: &ClientInfo,
    ) -> Result<(), RevokeSessionError> {
        let now = self.ports.clock.now();
        match self.ports.sessions.find(id).await? {
            Some(s) if s.user_id == caller.sub && s.is_live(now) => {}
            _ => return Err(RevokeSessionError::NotFound),
        }
        if self
            .ports
            .sessions
            .revoke(id, RevokeReason::UserRevoked, now)
            .await?
        {
            self.announce_revoked(&[id]).await;
            self.report(
                SecurityEvent::new(SecurityEventKind::SessionRevoked, now, client)
                    .user(caller.sub)
                    .session(id)
                    .revoked(1),
            )
            .await;
        }
        Ok(())
    }
}
