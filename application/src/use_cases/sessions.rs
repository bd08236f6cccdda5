//! A session after its login: refresh (rotation with reuse detection),
//! logout, and the owner's list and revocation of sessions.

use std::sync::Arc;

use domain::{
    AccessClaims, LogoutDecision, RevokeReason, Session, SessionId, Timestamp, TokenPolicy, User,
    UserId, decide_logout,
};

use crate::ports::security_events::report;
use crate::ports::{
    Clock, RandomSource, RefreshOutcome, RefreshRefusal, SecurityEvent, SecurityEventKind,
    SecurityEvents, SessionStore, SuccessorToken, TokenFamily, UserRepository,
};
use crate::{
    AccessCheck, AccessTokenIssuer, ClientInfo, IssuedAccessToken, IssuedRefreshToken,
    RefreshSecret, Revocations, SealKey,
};

/// Refresh, logout and the sessions list, on exactly the ports they need.
#[derive(Clone)]
pub struct Sessions {
    /// Token families and their refresh tokens.
    pub sessions: Arc<dyn SessionStore>,
    /// The user of a refreshed session.
    pub users: Arc<dyn UserRepository>,
    /// Signs the new access token.
    pub issuer: AccessTokenIssuer,
    /// A logout by access token verifies it.
    pub access: AccessCheck,
    /// Tells every process of a revoked session.
    pub revocations: Revocations,
    /// The audit trail and the outcome metrics.
    pub events: Arc<dyn SecurityEvents>,
    /// Now.
    pub clock: Arc<dyn Clock>,
    /// Successor refresh tokens.
    pub random: Arc<dyn RandomSource>,
    /// The server secret of the refresh-grace seals.
    pub seal_key: SealKey,
    /// Refresh-token lifetimes and the grace.
    pub token_policy: TokenPolicy,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").finish_non_exhaustive()
    }
}

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
    /// The family is bound to a client key (DPoP) and the request proved
    /// none, or another (`invalid_dpop_proof`); nothing was rotated.
    #[error("the family's key was not proved: {0}")]
    DpopProof(domain::dpop::ProofRefusal),
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogoutScope {
    /// Every session of the user (the default).
    #[default]
    AllSessions,
    /// Only the session the credentials belong to (`?scope=session`).
    ThisSession,
}

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

impl Sessions {
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
        let now = self.clock.now();
        // A bound family's key first: without it nothing is rotated, and a
        // rotated token presented without it revokes nothing.
        if let Some(refusal) = self.key_refusal(presented, client).await? {
            let event = SecurityEvent::new(SecurityEventKind::DpopProofRefused, now, client)
                .reason(refusal.as_str());
            report(self.events.as_ref(), event).await;
            return Err(RefreshError::DpopProof(refusal));
        }
        let mut replayed = None;
        let result = self.rotate(presented, now, &mut replayed).await;
        let event = |kind| SecurityEvent::new(kind, now, client);
        let event = match &result {
            Ok(r) => {
                let kind = if r.grace_replay {
                    SecurityEventKind::RefreshGraceReplay
                } else {
                    SecurityEventKind::RefreshRotated
                };
                Some(event(kind).user(r.user.id).session(r.session.id))
            }
            Err(RefreshError::Missing | RefreshError::Invalid) => {
                Some(event(SecurityEventKind::RefreshInvalid))
            }
            Err(RefreshError::Expired) => Some(event(SecurityEventKind::RefreshExpired)),
            Err(RefreshError::SessionRevoked) => Some(event(SecurityEventKind::RefreshRevoked)),
            Err(RefreshError::Reused) => {
                replayed.map(|session: Session| self.reuse_event(&session, now, client))
            }
            // Storage failures are not outcomes; a key refusal was reported.
            Err(RefreshError::Unexpected(_) | RefreshError::DpopProof(_)) => None,
        };
        if let Some(event) = event {
            report(self.events.as_ref(), event).await;
        }
        result
    }

    /// Why the family of `presented`, if it is bound to a client key, may
    /// not be refreshed by `client` (`domain::dpop::refresh_binding`).
    async fn key_refusal(
        &self,
        presented: Option<&str>,
        client: &ClientInfo,
    ) -> anyhow::Result<Option<domain::dpop::ProofRefusal>> {
        let Some(secret) = presented.and_then(RefreshSecret::parse) else {
            return Ok(None);
        };
        let Some(session) = self.sessions.find_by_token(&secret.hash()).await? else {
            return Ok(None);
        };
        Ok(domain::dpop::refresh_binding(session.jkt.as_ref(), client.key.as_ref()).err())
    }

    async fn rotate(
        &self,
        presented: Option<&str>,
        now: Timestamp,
        replayed: &mut Option<Session>,
    ) -> Result<RefreshResult, RefreshError> {
        let presented = presented
            .filter(|t| !t.is_empty())
            .ok_or(RefreshError::Missing)?;
        let presented = RefreshSecret::parse(presented).ok_or(RefreshError::Invalid)?;
        let successor = RefreshSecret::generate(self.random.as_ref());
        let sealed = SuccessorToken {
            hash: successor.hash(),
            seal: presented.seal_successor(&self.seal_key, &successor),
        };
        let outcome = self
            .sessions
            .refresh(&presented.hash(), &sealed, now, &self.token_policy)
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
                    presented.open_successor(&self.seal_key, &seal, &current.hash)
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
                self.revoked_for_reuse(&session).await;
                *replayed = Some(session);
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
            .users
            .find_by_id(session.user_id)
            .await?
            .ok_or(RefreshError::Invalid)?;
        let access = self.issuer.issue(&user, &session, now).await?;
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
        let now = self.clock.now();
        let (revoked, event) = match self.identify(refresh, bearer, now).await? {
            Identified::Owner(user, session) => {
                let revoked = self.end(user, session, scope, now).await?;
                let event = SecurityEvent::new(SecurityEventKind::Logout, now, client)
                    .user(user)
                    .session(session)
                    .revoked(revoked.len());
                (revoked, event)
            }
            Identified::Reuse(family) => {
                let session = &family.session;
                if !self
                    .sessions
                    .revoke(session.id, RevokeReason::ReuseDetected, now)
                    .await?
                {
                    return Ok(Vec::new());
                }
                self.revoked_for_reuse(session).await;
                (vec![session.id], self.reuse_event(session, now, client))
            }
            Identified::Nobody => return Ok(Vec::new()),
        };
        report(self.events.as_ref(), event).await;
        Ok(revoked)
    }

    /// Ends `session`, or every session of `user`, and tells every process.
    async fn end(
        &self,
        user: UserId,
        session: SessionId,
        scope: LogoutScope,
        now: Timestamp,
    ) -> anyhow::Result<Vec<SessionId>> {
        let revoked = match scope {
            LogoutScope::ThisSession => {
                if self
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
                self.sessions
                    .revoke_all_for_user(user, None, RevokeReason::Logout, now)
                    .await?
            }
        };
        tracing::info!(user = %user, sessions = revoked.len(), "logout");
        self.revocations.announce(&revoked).await;
        Ok(revoked)
    }

    async fn identify(
        &self,
        refresh: Option<&str>,
        bearer: Option<&str>,
        now: Timestamp,
    ) -> anyhow::Result<Identified> {
        if let Some(secret) = refresh.and_then(RefreshSecret::parse)
            && let Some(family) = self.sessions.token_family(&secret.hash()).await?
        {
            match decide_logout(Some(family.state()), now, &self.token_policy) {
                LogoutDecision::Live => {
                    return Ok(Identified::Owner(family.session.user_id, family.session.id));
                }
                LogoutDecision::Reuse => return Ok(Identified::Reuse(Box::new(family))),
                LogoutDecision::Dead => {}
            }
        }
        if let Some(Ok(claims)) = bearer.map(|token| self.access.verify(token)) {
            return Ok(Identified::Owner(claims.sub, claims.sid));
        }
        Ok(Identified::Nobody)
    }

    /// A replayed rotated token got its family revoked (by a refresh or a
    /// logout): every process hears of it at once.
    async fn revoked_for_reuse(&self, session: &Session) {
        tracing::warn!(user = %session.user_id, session = %session.id, "refresh token reuse detected; family revoked");
        self.revocations.announce(&[session.id]).await;
    }

    fn reuse_event(&self, session: &Session, now: Timestamp, client: &ClientInfo) -> SecurityEvent {
        SecurityEvent::new(SecurityEventKind::ReuseDetected, now, client)
            .user(session.user_id)
            .session(session.id)
            .revoked(1)
    }

    /// The caller's live sessions, newest first.
    ///
    /// # Errors
    /// Storage failures.
    #[tracing::instrument(skip_all, fields(user = %caller.sub))]
    pub async fn list(&self, caller: &AccessClaims) -> anyhow::Result<Vec<SessionView>> {
        let now = self.clock.now();
        let sessions = self.sessions.list_live(caller.sub, now).await?;
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
    pub async fn revoke(
        &self,
        caller: &AccessClaims,
        id: SessionId,
        client: &ClientInfo,
    ) -> Result<(), RevokeSessionError> {
        let now = self.clock.now();
        match self.sessions.find(id).await? {
            Some(s) if s.user_id == caller.sub && s.is_live(now) => {}
            _ => return Err(RevokeSessionError::NotFound),
        }
        if self
            .sessions
            .revoke(id, RevokeReason::UserRevoked, now)
            .await?
        {
            self.revocations.announce(&[id]).await;
            report(
                self.events.as_ref(),
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

/// Whom logout credentials name.
enum Identified {
    /// A live refresh token or a valid access token of this user and session.
    Owner(UserId, SessionId),
    /// A rotated refresh token replayed outside the grace.
    Reuse(Box<TokenFamily>),
    /// Nobody.
    Nobody,
}
