//! Sessions: one token family per login.

use uuid::Uuid;

use crate::claims::AuthMethods;
use crate::time::Timestamp;
use crate::user::UserId;

/// A session (token family) id; the access token's `sid` claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(Uuid);

impl SessionId {
    /// Wraps an id generated elsewhere.
    pub const fn from_uuid(id: Uuid) -> Self {
        Self(id)
    }

    /// The UUID behind this id.
    pub const fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a session ended early.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevokeReason {
    /// The user logged out.
    Logout,
    /// The user revoked it from the session list.
    UserRevoked,
    /// A rotated refresh token was presented again.
    ReuseDetected,
    /// The user changed the password: every other session ends.
    PasswordChanged,
}

impl RevokeReason {
    /// The stored spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::UserRevoked => "user_revoked",
            Self::ReuseDetected => "reuse_detected",
            Self::PasswordChanged => "password_changed",
        }
    }

    /// Reads the stored spelling back; `None` for anything else.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Logout,
            Self::UserRevoked,
            Self::ReuseDetected,
            Self::PasswordChanged,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }
}

/// A login's token family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Family id (`sid`).
    pub id: SessionId,
    /// Whose session it is.
    pub user_id: UserId,
    /// When the user logged in.
    pub created_at: Timestamp,
    /// Last login or refresh.
    pub last_used_at: Timestamp,
    /// Absolute end: `created_at + SESSION_MAX_AGE`, whatever happens.
    pub expires_at: Timestamp,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// Why it was revoked, if it was.
    pub revoke_reason: Option<RevokeReason>,
    /// The client's `User-Agent` at login, for the session list.
    pub user_agent: Option<String>,
    /// The client's address at login, for the session list.
    pub ip: Option<String>,
    /// How it began: with a password alone, or with a second factor too
    /// (the `amr` of every access token of the family).
    pub methods: AuthMethods,
    /// The client key the family is bound to (DPoP): its refreshes need a
    /// proof by that key and its access tokens carry it as `cnf.jkt`.
    pub jkt: Option<crate::dpop::Jkt>,
}

impl Session {
    /// Starts a family at `now` that ends `max_age` later at the latest.
    pub fn start(
        id: SessionId,
        user_id: UserId,
        now: Timestamp,
        max_age: std::time::Duration,
        user_agent: Option<String>,
        ip: Option<String>,
    ) -> Self {
        Self {
            id,
            user_id,
            created_at: now,
            last_used_at: now,
            expires_at: now.plus(max_age),
            revoked_at: None,
            revoke_reason: None,
            user_agent,
            ip,
            methods: AuthMethods::Password,
            jkt: None,
        }
    }

    /// The same family, begun with `methods` (a two-factor login).
    #[must_use]
    pub fn begun_with(mut self, methods: AuthMethods) -> Self {
        self.methods = methods;
        self
    }

    /// The same family, bound to the client key `jkt` (if any).
    #[must_use]
    pub fn bound_to(mut self, jkt: Option<crate::dpop::Jkt>) -> Self {
        self.jkt = jkt;
        self
    }

    /// Whether it was revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// Live: neither revoked nor past its absolute lifetime.
    pub fn is_live(&self, now: Timestamp) -> bool {
        !self.is_revoked() && now < self.expires_at
    }

    /// The one meaning of revoking a session, which every store applies:
    /// a live session ([`Self::is_live`]) becomes revoked at `now` for
    /// `reason`; a revoked one keeps its first revocation and an ended one
    /// stays as it is. Returns whether it revoked.
    pub fn revoke(&mut self, now: Timestamp, reason: RevokeReason) -> bool {
        let live = self.is_live(now);
        if live {
            self.revoked_at = Some(now);
            self.revoke_reason = Some(reason);
        }
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_round_trip() {
        for r in [
            RevokeReason::Logout,
            RevokeReason::UserRevoked,
            RevokeReason::ReuseDetected,
        ] {
            assert_eq!(RevokeReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(RevokeReason::parse("nope"), None);
    }

    #[test]
    fn first_revocation_wins() {
        let mut s = Session::start(
            SessionId::from_uuid(Uuid::nil()),
            UserId::from_uuid(Uuid::nil()),
            Timestamp::from_unix_seconds(0),
            std::time::Duration::from_secs(60),
            None,
            None,
        );
        assert!(s.is_live(Timestamp::from_unix_seconds(59)));
        assert!(!s.is_live(Timestamp::from_unix_seconds(60)));
        let mut ended = s.clone();
        assert!(s.revoke(Timestamp::from_unix_seconds(1), RevokeReason::ReuseDetected));
        assert!(!s.revoke(Timestamp::from_unix_seconds(2), RevokeReason::Logout));
        assert_eq!(s.revoke_reason, Some(RevokeReason::ReuseDetected));
        assert_eq!(s.revoked_at, Some(Timestamp::from_unix_seconds(1)));
        // Past its absolute lifetime there is nothing to revoke.
        assert!(!ended.revoke(Timestamp::from_unix_seconds(60), RevokeReason::Logout));
        assert_eq!((ended.revoked_at, ended.revoke_reason), (None, None));
    }
}
