//! The WebSocket session's rules (contract: "WebSocket"): how many sockets
//! one user and one address may hold, and who may `reauth` a socket.

use crate::session::SessionId;
use crate::user::UserId;

/// Leeway for a socket's token, in seconds: none. A socket closes at its
/// token's `exp` exactly, so the handshake, the first message and `reauth`
/// refuse a token from that second on (REST allows
/// [`crate::revocation::CLOCK_LEEWAY`] for clock skew between machines; the
/// socket's own timer needs none).
pub const SOCKET_TOKEN_LEEWAY_SECS: i64 = 0;

/// `WS_MAX_CONNECTIONS_PER_USER`'s default.
pub const DEFAULT_MAX_SOCKETS_PER_USER: usize = 100;
/// `WS_MAX_CONNECTIONS_PER_ADDRESS`'s default.
pub const DEFAULT_MAX_SOCKETS_PER_ADDRESS: usize = 1000;

/// Whether one more socket may open for a key (a user, an address) that
/// holds `open` under a cap of `max`: `429 too_many_connections` otherwise.
pub fn slot_free(open: usize, max: usize) -> bool {
    open < max
}

/// Whether an address's sockets count against the per-address cap: not
/// when it is loopback or a trusted proxy (Nginx bounds its clients with
/// `limit_conn`; everything behind it arrives from one address).
pub fn address_bounded(loopback: bool, trusted_proxy: bool) -> bool {
    !loopback && !trusted_proxy
}

/// What a `reauth` with a valid token does to a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reauth {
    /// Same user, same session: the socket takes the new token's expiry.
    Renew,
    /// Same user, another session (a new login): the socket now belongs to
    /// that session, and its revocation closes it.
    MoveTo(SessionId),
    /// Another user's token: refused (`reauth_failed`), the socket keeps
    /// its user.
    OtherUser,
}

/// Decides a `reauth` of a socket held by (`user`, `session`) with a valid
/// token of (`new_user`, `new_session`).
pub fn decide_reauth(
    user: UserId,
    session: SessionId,
    new_user: UserId,
    new_session: SessionId,
) -> Reauth {
    if new_user != user {
        Reauth::OtherUser
    } else if new_session != session {
        Reauth::MoveTo(new_session)
    } else {
        Reauth::Renew
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn u(n: u128) -> UserId {
        UserId::from_uuid(Uuid::from_u128(n))
    }
    fn s(n: u128) -> SessionId {
        SessionId::from_uuid(Uuid::from_u128(n))
    }

    #[test]
    fn reauth_keeps_the_user_and_may_move_the_session() {
        assert_eq!(decide_reauth(u(1), s(1), u(1), s(1)), Reauth::Renew);
        assert_eq!(decide_reauth(u(1), s(1), u(1), s(2)), Reauth::MoveTo(s(2)));
        assert_eq!(decide_reauth(u(1), s(1), u(2), s(1)), Reauth::OtherUser);
        assert_eq!(decide_reauth(u(1), s(1), u(2), s(2)), Reauth::OtherUser);
    }

    #[test]
    fn caps_count_up_to_the_maximum() {
        assert!(slot_free(0, 1));
        assert!(!slot_free(1, 1));
        assert!(!slot_free(0, 0), "a cap of 0 admits nobody");
        assert!(slot_free(
            DEFAULT_MAX_SOCKETS_PER_USER - 1,
            DEFAULT_MAX_SOCKETS_PER_USER
        ));
        assert!(address_bounded(false, false));
        assert!(!address_bounded(true, false) && !address_bounded(false, true));
    }
}
