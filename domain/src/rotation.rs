//! Refresh-token rotation: the state machine, the grace rule and reuse detection.
//!
//! [`decide_refresh`] is the whole rule, as a pure function of the stored
//! family, the presented token and the time. Stores call it inside their
//! transaction and then apply what it decided; [`Family`] is the in-memory
//! reference of that "decide, then apply" step, which the property tests drive.

use std::time::Duration;

use crate::refresh_token::{RefreshToken, TokenHash};
use crate::session::{RevokeReason, Session};
use crate::time::Timestamp;

/// Lifetimes that govern rotation (contract: "Families").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenPolicy {
    /// Idle timeout of one refresh token (`REFRESH_TOKEN_EXPIRY`).
    pub refresh_ttl: Duration,
    /// How long a just-rotated parent may be replayed (`REFRESH_REUSE_GRACE`).
    pub reuse_grace: Duration,
    /// Absolute lifetime of a family (`SESSION_MAX_AGE`).
    pub session_max_age: Duration,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            refresh_ttl: Duration::from_secs(7 * 24 * 3600),
            reuse_grace: Duration::from_secs(10),
            session_max_age: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl TokenPolicy {
    /// When a token minted at `now` in `session` expires: the idle timeout cut
    /// short by the session's absolute end.
    pub fn token_expiry(&self, session: &Session, now: Timestamp) -> Timestamp {
        now.plus(self.refresh_ttl).min(session.expires_at)
    }

    /// Grace seals of tokens rotated before this instant are no longer
    /// needed (no replay of them can be a [`RotationDecision::GraceReplay`]
    /// any more) and are erased.
    ///
    /// The other half of the rule: a rotation erases every other seal of its
    /// family (only the direct parent of the current token can be a grace
    /// replay), and a revoked family keeps none.
    pub fn seals_needed_since(&self, now: Timestamp) -> Timestamp {
        now.minus(self.reuse_grace)
    }
}

/// What a store knows when a refresh token is presented.
#[derive(Debug, Clone, Copy)]
pub struct FamilyState<'a> {
    /// The presented token's family.
    pub session: &'a Session,
    /// The stored record of the presented token.
    pub presented: &'a RefreshToken,
    /// The family's unrotated token, if it has one.
    pub current: Option<&'a RefreshToken>,
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationDecision {
    /// Mark the presented token rotated at `now` and mint its successor,
    /// which expires at `successor_expires_at`.
    Rotate {
        /// Expiry of the successor.
        successor_expires_at: Timestamp,
    },
    /// The direct parent of the current token, inside the grace: answer with
    /// the current token again; change nothing.
    GraceReplay,
    /// A rotated token outside the grace: revoke the whole family.
    ReuseDetected,
    /// Refuse the token and change nothing.
    Refuse(RefreshRefusal),
}

/// Why a presented refresh token is refused without any change to its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshRefusal {
    /// No such token.
    Unknown,
    /// The token's idle timeout has passed.
    Expired,
    /// The family has passed its absolute lifetime.
    SessionExpired,
    /// The family was revoked before.
    Revoked,
}

/// Decides what presenting a refresh token means. Pure: the caller applies it.
///
/// Order matters: a revoked family stays revoked, a dead family stays dead,
/// a rotated token is either the grace case or reuse, and only a current
/// token can be rotated.
pub fn decide_refresh(
    state: Option<FamilyState<'_>>,
    now: Timestamp,
    policy: &TokenPolicy,
) -> RotationDecision {
    let Some(FamilyState {
        session,
        presented,
        current,
    }) = state
    else {
        return RotationDecision::Refuse(RefreshRefusal::Unknown);
    };
    if session.is_revoked() {
        return RotationDecision::Refuse(RefreshRefusal::Revoked);
    }
    if now >= session.expires_at {
        return RotationDecision::Refuse(RefreshRefusal::SessionExpired);
    }
    if let Some(rotated_at) = presented.rotated_at {
        let current_is_child = current.is_some_and(|c| {
            c.parent == Some(presented.hash) && c.rotated_at.is_none() && now < c.expires_at
        });
        return if current_is_child && now.since(rotated_at) < policy.reuse_grace {
            RotationDecision::GraceReplay
        } else {
            RotationDecision::ReuseDetected
        };
    }
    if now >= presented.expires_at {
        return RotationDecision::Refuse(RefreshRefusal::Expired);
    }
    RotationDecision::Rotate {
        successor_expires_at: policy.token_expiry(session, now),
    }
}

/// What a refresh cookie presented to logout stands for (contract v2: a
/// cookie counts only when it is live).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutDecision {
    /// The family's current token, or its direct parent inside the grace:
    /// the cookie names its owner, and the logout proceeds.
    Live,
    /// Any other rotated token: reuse. That family is revoked, nothing else.
    Reuse,
    /// Unknown, expired, or of a revoked or ended family: revokes nothing.
    Dead,
}

/// Decides what a refresh cookie presented to logout does: the same reading
/// of the family as [`decide_refresh`], so that a token logout calls live is
/// exactly one that a refresh would accept.
pub fn decide_logout(
    state: Option<FamilyState<'_>>,
    now: Timestamp,
    policy: &TokenPolicy,
) -> LogoutDecision {
    match decide_refresh(state, now, policy) {
        RotationDecision::Rotate { .. } | RotationDecision::GraceReplay => LogoutDecision::Live,
        RotationDecision::ReuseDetected => LogoutDecision::Reuse,
        RotationDecision::Refuse(_) => LogoutDecision::Dead,
    }
}

/// A family held in memory: the reference implementation of applying
/// [`decide_refresh`], used by tests and in-memory stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// The session.
    pub session: Session,
    /// Every token ever minted in it, oldest first.
    pub tokens: Vec<RefreshToken>,
}

impl RefreshToken {
    /// The first token of `session`'s family: no parent, minted when the
    /// session starts, expiring by `policy`.
    pub fn first(session: &Session, hash: TokenHash, policy: &TokenPolicy) -> Self {
        let now = session.created_at;
        Self::mint(
            hash,
            session.id,
            None,
            now,
            policy.token_expiry(session, now),
        )
    }
}

impl Family {
    /// A new family with its first token ([`RefreshToken::first`]).
    pub fn start(session: Session, first: TokenHash, policy: &TokenPolicy) -> Self {
        let token = RefreshToken::first(&session, first, policy);
        Self {
            session,
            tokens: vec![token],
        }
    }

    /// The unrotated token, if any.
    pub fn current(&self) -> Option<&RefreshToken> {
        self.tokens.iter().find(|t| t.rotated_at.is_none())
    }

    /// Tokens that a refresh would accept now (rotate or grace): at most one
    /// rotatable token exists at any time.
    pub fn live_tokens(&self, now: Timestamp) -> usize {
        if !self.session.is_live(now) {
            return 0;
        }
        self.tokens
            .iter()
            .filter(|t| t.rotated_at.is_none() && now < t.expires_at)
            .count()
    }

    /// Presents `presented` at `now`; on rotation the successor gets hash
    /// `successor`. Returns the decision after applying it.
    pub fn refresh(
        &mut self,
        presented: &TokenHash,
        now: Timestamp,
        policy: &TokenPolicy,
        successor: TokenHash,
    ) -> RotationDecision {
        let decision = {
            let found = self.tokens.iter().find(|t| t.hash == *presented);
            let state = found.map(|p| FamilyState {
                session: &self.session,
                presented: p,
                current: self.current(),
            });
            decide_refresh(state, now, policy)
        };
        match decision {
            RotationDecision::Rotate {
                successor_expires_at,
            } => {
                if let Some(p) = self.tokens.iter_mut().find(|t| t.hash == *presented) {
                    p.rotated_at = Some(now);
                }
                self.session.last_used_at = now;
                self.tokens.push(RefreshToken::mint(
                    successor,
                    self.session.id,
                    Some(*presented),
                    now,
                    successor_expires_at,
                ));
            }
            RotationDecision::ReuseDetected => {
                self.session.revoke(now, RevokeReason::ReuseDetected);
            }
            _ => {}
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;
    use crate::user::UserId;
    use proptest::prelude::*;
    use uuid::Uuid;

    fn h(n: u8) -> TokenHash {
        TokenHash::from_bytes([n; 32])
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_unix_seconds(secs)
    }

    fn family(policy: &TokenPolicy) -> Family {
        let s = Session::start(
            SessionId::from_uuid(Uuid::from_u128(1)),
            UserId::from_uuid(Uuid::from_u128(2)),
            t(1_000),
            policy.session_max_age,
            None,
            None,
        );
        Family::start(s, h(0), policy)
    }

    #[test]
    fn rotation_replaces_the_token() {
        let p = TokenPolicy::default();
        let mut f = family(&p);
        let d = f.refresh(&h(0), t(1_001), &p, h(1));
        assert!(matches!(d, RotationDecision::Rotate { .. }));
        assert_eq!(f.current().map(|c| c.hash), Some(h(1)));
        assert_eq!(f.current().and_then(|c| c.parent), Some(h(0)));
        assert_eq!(f.session.last_used_at, t(1_001));
    }

    #[test]
    fn parent_inside_grace_is_idempotent() {
        let p = TokenPolicy::default();
        let mut f = family(&p);
        f.refresh(&h(0), t(1_001), &p, h(1));
        let before = f.clone();
        assert_eq!(
            f.refresh(&h(0), t(1_010), &p, h(2)),
            RotationDecision::GraceReplay
        );
        assert_eq!(f, before, "the grace answer changes nothing");
    }

    #[test]
    fn parent_at_the_end_of_the_grace_is_reuse() {
        let p = TokenPolicy::default();
        let mut f = family(&p);
        f.refresh(&h(0), t(1_001), &p, h(1));
        assert_eq!(
            f.refresh(&h(0), t(1_011), &p, h(2)),
            RotationDecision::ReuseDetected
        );
        assert!(f.session.is_revoked());
        assert_eq!(
            f.refresh(&h(1), t(1_012), &p, h(3)),
            RotationDecision::Refuse(RefreshRefusal::Revoked)
        );
    }

    #[test]
    fn grandparent_is_reuse_even_inside_the_grace() {
        let p = TokenPolicy::default();
        let mut f = family(&p);
        f.refresh(&h(0), t(1_001), &p, h(1));
        f.refresh(&h(1), t(1_002), &p, h(2));
        assert_eq!(
            f.refresh(&h(0), t(1_003), &p, h(3)),
            RotationDecision::ReuseDetected
        );
    }

    #[test]
    fn logout_counts_only_a_live_cookie() {
        let p = TokenPolicy::default();
        let mut f = family(&p);
        f.refresh(&h(0), t(1_001), &p, h(1));
        f.refresh(&h(1), t(1_002), &p, h(2));
        let decide = |f: &Family, token: &TokenHash, now: Timestamp| {
            let presented = f.tokens.iter().find(|x| x.hash == *token);
            let state = presented.map(|presented| FamilyState {
                session: &f.session,
                presented,
                current: f.current(),
            });
            decide_logout(state, now, &p)
        };
        assert_eq!(decide(&f, &h(2), t(1_003)), LogoutDecision::Live);
        // The direct parent inside the grace, as for a refresh.
        assert_eq!(decide(&f, &h(1), t(1_003)), LogoutDecision::Live);
        assert_eq!(decide(&f, &h(0), t(1_003)), LogoutDecision::Reuse);
        assert_eq!(decide(&f, &h(1), t(1_002 + 10)), LogoutDecision::Reuse);
        assert_eq!(decide(&f, &h(9), t(1_003)), LogoutDecision::Dead);
        let expired = t(1_002).plus(p.refresh_ttl);
        assert_eq!(decide(&f, &h(2), expired), LogoutDecision::Dead);
        f.session.revoke(t(1_004), RevokeReason::Logout);
        assert_eq!(decide(&f, &h(2), t(1_005)), LogoutDecision::Dead);
        assert_eq!(decide(&f, &h(0), t(1_005)), LogoutDecision::Dead);
    }

    #[test]
    fn idle_and_absolute_expiry() {
        let p = TokenPolicy {
            refresh_ttl: Duration::from_secs(100),
            reuse_grace: Duration::from_secs(10),
            session_max_age: Duration::from_secs(150),
        };
        let mut f = family(&p);
        assert_eq!(
            f.refresh(&h(0), t(1_100), &p, h(1)),
            RotationDecision::Refuse(RefreshRefusal::Expired)
        );
        let mut f = family(&p);
        let d = f.refresh(&h(0), t(1_099), &p, h(1));
        // The successor's idle expiry is cut short by the session's end.
        assert_eq!(
            d,
            RotationDecision::Rotate {
                successor_expires_at: t(1_150)
            }
        );
        assert_eq!(
            f.refresh(&h(1), t(1_150), &p, h(2)),
            RotationDecision::Refuse(RefreshRefusal::SessionExpired)
        );
    }

    #[test]
    fn unknown_token() {
        let p = TokenPolicy::default();
        let mut f = family(&p);
        assert_eq!(
            f.refresh(&h(9), t(1_001), &p, h(1)),
            RotationDecision::Refuse(RefreshRefusal::Unknown)
        );
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// Present the token minted `back` rotations ago (0 = current), after `wait` ms.
        Present { back: usize, wait: u64 },
    }

    fn steps() -> impl Strategy<Value = Vec<Step>> {
        prop::collection::vec(
            (
                0usize..4,
                prop_oneof![0u64..2_000, 0u64..20_000, 0u64..400_000_000],
            )
                .prop_map(|(back, wait)| Step::Present { back, wait }),
            1..40,
        )
    }

    proptest! {
        #[test]
        fn rotation_invariants(steps in steps(), grace_s in 1u64..30) {
            let p = TokenPolicy {
                refresh_ttl: Duration::from_secs(3_600 * 24),
                reuse_grace: Duration::from_secs(grace_s),
                session_max_age: Duration::from_secs(3_600 * 24 * 3),
            };
            let mut f = family(&p);
            let mut now = f.session.created_at;
            let mut next = 1u8;
            for Step::Present { back, wait } in steps {
                now = now.plus(Duration::from_millis(wait));
                let idx = f.tokens.len().saturating_sub(1 + back);
                let presented = f.tokens[idx].clone();
                let was_revoked = f.session.is_revoked();
                let current_before = f.current().cloned();
                let decision = f.refresh(&presented.hash, now, &p, h(next));
                next = next.wrapping_add(1).max(1);

                // Never two live tokens in a family.
                prop_assert!(f.live_tokens(now) <= 1);
                prop_assert!(f.tokens.iter().filter(|t| t.rotated_at.is_none()).count() <= 1);
                // A revoked family never comes back.
                if was_revoked {
                    prop_assert_eq!(decision, RotationDecision::Refuse(RefreshRefusal::Revoked));
                    prop_assert!(f.session.is_revoked());
                }
                if let Some(rotated_at) = presented.rotated_at
                    && !was_revoked
                    && now < f.session.expires_at
                {
                    let direct_parent = current_before
                        .as_ref()
                        .is_some_and(|c| c.parent == Some(presented.hash));
                    if now.since(rotated_at) >= p.reuse_grace || !direct_parent {
                        // Any replay outside the grace (or of an older token) revokes.
                        prop_assert_eq!(decision, RotationDecision::ReuseDetected);
                        prop_assert!(f.session.is_revoked());
                    }
                }
                // The grace only ever covers the direct parent of the current token.
                if decision == RotationDecision::GraceReplay {
                    let current = f.current().cloned();
                    prop_assert_eq!(current.as_ref().and_then(|c| c.parent), Some(presented.hash));
                    prop_assert_eq!(current, current_before);
                }
            }
        }
    }
}
