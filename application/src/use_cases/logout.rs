//! Log out: revoke every family of the user, or only the current one.

use domain::{LogoutDecision, RevokeReason, SessionId, Timestamp, UserId, decide_logout};

use crate::ports::{SecurityEvent, SecurityEventKind, TokenFamily};
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
    /// Logs out whoever the credentials name: a live refresh token first,
    /// else the access token. Returns the sessions that were revoked.
    ///
    /// A refresh token counts only when it is live (the family's current
    /// token, or its direct parent inside the grace). Any other rotated token
    /// is reuse: its family is revoked and nothing else. An unknown, expired
    /// or revoked one revokes nothing by itself (the access token, if any, is
    /// still considered).
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
        let now = self.ports.clock.now();
        let (user, session) = match self.identify(refresh, bearer, now).await? {
            Identified::Owner(user, session) => (user, session),
            Identified::Reuse(family) => return self.revoke_replayed(*family, now, client).await,
            Identified::Nobody => return Ok(Vec::new()),
        };
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
                    .revoke_all_for_user(user, None, RevokeReason::Logout, now)
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

    /// A replayed rotated token at logout: its family goes, as on refresh.
    async fn revoke_replayed(
        &self,
        family: TokenFamily,
        now: Timestamp,
        client: &ClientInfo,
    ) -> anyhow::Result<Vec<SessionId>> {
        let session = &family.session;
        let revoked = self
            .ports
            .sessions
            .revoke(session.id, RevokeReason::ReuseDetected, now)
            .await?;
        if !revoked {
            return Ok(Vec::new());
        }
        self.report_reuse(session, now, client).await;
        Ok(vec![session.id])
    }

    async fn identify(
        &self,
        refresh: Option<&str>,
        bearer: Option<&str>,
        now: Timestamp,
    ) -> anyhow::Result<Identified> {
        if let Some(secret) = refresh.and_then(RefreshSecret::parse)
            && let Some(family) = self.ports.sessions.token_family(&secret.hash()).await?
        {
            match decide_logout(Some(family.state()), now, &self.config.token_policy) {
                LogoutDecision::Live => {
                    return Ok(Identified::Owner(family.session.user_id, family.session.id));
                }
                LogoutDecision::Reuse => return Ok(Identified::Reuse(Box::new(family))),
                LogoutDecision::Dead => {}
            }
        }
        if let Some(Ok(claims)) = bearer.map(|token| self.verify_access(token)) {
            return Ok(Identified::Owner(claims.sub, claims.sid));
        }
        Ok(Identified::Nobody)
    }
}

/// Whom logout credentials name.
enum Identified {
    /// A live refresh token or a valid access token of this user and session.
    Owner(UserId, SessionId),
    /// A rotated refresh token replayed outside the grace.
    Reuse(Box<TokenFamily>),
    /// Nobody.
    Nobody,
}
