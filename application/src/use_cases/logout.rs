//! Log out: revoke every family of the user, or only the current one.

use domain::{RevokeReason, SessionId, UserId};

use crate::ports::{SecurityEvent, SecurityEventKind};
use crate::{AuthService, ClientInfo, RefreshSecret};

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogoutScope {
    /// Every session of the user (the default).
    #[default]
    AllSessions,
    /// Only the session the credentials belong to (`?scope=session`).
    ThisSession,
}

impl AuthService {
    /// Logs out whoever the credentials name: the refresh token first, else the
    /// access token. Without usable credentials nothing happens. Returns the
    /// sessions that were revoked.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(skip(self, refresh, bearer, client))]
    pub async fn logout(
        &self,
        refresh: Option<&str>,
        bearer: Option<&str>,
        scope: LogoutScope,
        client: &ClientInfo,
    ) -> anyhow::Result<Vec<SessionId>> {
        let Some((user, session)) = self.identify(refresh, bearer).await? else {
            return Ok(Vec::new());
        };
        let now = self.ports.clock.now();
        let revoked = match scope {
            LogoutScope::ThisSession => {
                if self
                    .ports
                    .sessions
                    .revoke(session, RevokeReason::Logout, now)
                    .await?
                {
                    vec![session]
                } else {
                    Vec::new()
                }
            }
            LogoutScope::AllSessions => {
                self.ports
                    .sessions
                    .revoke_all_for_user(user, RevokeReason::Logout, now)
                    .await?
            }
        };
        tracing::info!(user = %user, sessions = revoked.len(), "logout");
        self.announce_revoked(&revoked).await;
        self.report(
            SecurityEvent::new(SecurityEventKind::Logout, now, client)
                .user(user)
                .session(session)
                .revoked(revoked.len()),
        )
        .await;
        Ok(revoked)
    }

    async fn identify(
        &self,
        refresh: Option<&str>,
        bearer: Option<&str>,
    ) -> anyhow::Result<Option<(UserId, SessionId)>> {
        if let Some(secret) = refresh.and_then(RefreshSecret::parse)
            && let Some(session) = self.ports.sessions.find_by_token(&secret.hash()).await?
        {
            return Ok(Some((session.user_id, session.id)));
        }
        if let Some(Ok(claims)) = bearer.map(|token| self.verify_access(token)) {
            return Ok(Some((claims.sub, claims.sid)));
        }
        Ok(None)
    }
}
