//! A socket upgraded without a token (contract v3): it must send
//! `{"type":"auth","access":…}` as its first message within the handshake
//! timeout (10 s). Until then nothing is answered; then it is served as if
//! it had brought the token in its URL.
//!
//! While it waits it is parked (see `connection`'s parking): the bare
//! socket, its doorbell and a timer, so an idle unauthenticated socket costs
//! no more than an idle authenticated one. It is filed in the registry
//! under no session, so that shutdown closes it too, and it holds its
//! address's slot from the start.

use std::future::Future;
use std::sync::Arc;

use domain::{AccessClaims, SessionId};
use futures_util::StreamExt;
use tokio::time::Instant;
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

use super::admission::{check_binding, verify};
use super::connection::{Connection, Held as Claims, Shared, Woken, Ws, goodbye, parking};
use super::limits::Slot;
use super::protocol::{self, ClientMessage, ErrorCode};
use super::registry::{Doorbell, Rung};

/// Where waiting sockets are filed in the registry: under no session (no
/// revocation names it; shutdown rings it).
const PENDING: SessionId = SessionId::from_uuid(uuid::Uuid::nil());
/// Close code of a refused first message: as an expired token (4001).
const CLOSE_AUTH_FAILED: u16 = 4001;
/// Close code of a user at `WS_MAX_CONNECTIONS_PER_USER`.
const CLOSE_TOO_MANY: u16 = 4029;

/// Waits for the first message of `ws`, then serves it or closes it.
/// `address` is its address's slot; `request_id` names it in the logs.
/// (Not an `async fn`, which would keep its arguments twice: this future
/// sizes the socket's task.)
pub(super) fn authenticate(
    shared: Arc<Shared>,
    ws: Box<Ws>,
    address: Slot,
    request_id: Box<str>,
    url: Box<str>,
) -> impl Future<Output = ()> + Send {
    // In one allocation: the task keeps a pointer to it while the socket
    // waits, not its parts.
    let held = Box::new(Held {
        id: shared.registry.next_id(),
        bell: Doorbell::default(),
        address,
        request_id,
        url,
    });
    shared.registry.insert(PENDING, held.id, held.bell.clone());
    async move {
        // The wait is this task's one await: it holds the parked socket,
        // the bell and the timer, and a pointer to the rest.
        let first = first_message(&shared, ws, &held.bell, &held.url).await;
        shared.registry.remove(PENDING, held.id);
        after_wait(shared, *held, first);
    }
}

/// Serves an authenticated socket, or says goodbye, each in a task of its
/// own: the waiting task ends here.
fn after_wait(shared: Arc<Shared>, held: Held, first: First) {
    let (ws, claims, kid) = match first {
        Ok(authenticated) => authenticated,
        Err((ws, ending)) => return goodbye_in_a_task(&shared, ws, ending),
    };
    let Some(user) = shared.limits.take_user(claims.sub) else {
        tracing::debug!(user = %claims.sub, "first-message auth at the user's socket cap");
        let text = protocol::error(
            ErrorCode::TooManyConnections,
            "this user holds the most WebSocket connections allowed; close one first",
        );
        let ending = goodbye::Ending::Close(CloseCode::from(CLOSE_TOO_MANY), Some(text));
        return goodbye_in_a_task(&shared, ws, ending);
    };
    let span = tracing::info_span!(
        "ws",
        user = %claims.sub,
        session = %claims.sid,
        request_id = %held.request_id,
        auth = "first_message",
        otel.kind = "server",
    );
    let hello = protocol::connected(
        &claims.sub.to_string(),
        &claims.username,
        &claims.sid.to_string(),
        claims.exp,
    );
    let kid = shared.kids.name(kid);
    let serving = Connection::new(
        shared,
        Claims::of(&claims, kid).at(&claims, &held.url),
        [user, held.address],
    );
    tokio::spawn(tracing::Instrument::instrument(
        serving.serve(ws, hello),
        span,
    ));
}

fn goodbye_in_a_task(shared: &Shared, ws: Box<Ws>, ending: goodbye::Ending) {
    let metrics = shared.config.metrics.clone();
    tokio::spawn(async move { goodbye::finish(ending, ws, None, &metrics).await });
}

/// What a waiting socket keeps besides the wait itself.
struct Held {
    /// Its id in the registry.
    id: u64,
    /// Rung at shutdown.
    bell: Doorbell,
    /// Its address's slot.
    address: Slot,
    /// Names it in the logs.
    request_id: Box<str>,
    /// The socket's URL, which a bound token's proof must name.
    url: Box<str>,
}

/// What the wait for the first message ends with: the socket and the
/// claims of its token, or the socket and how it must end.
type First = Result<(Box<Ws>, AccessClaims, Option<String>), (Box<Ws>, goodbye::Ending)>;

/// Reads until the first data message (answering nothing but pings, which
/// tungstenite answers), parked between frames.
async fn first_message(shared: &Shared, mut ws: Box<Ws>, bell: &Doorbell, url: &str) -> First {
    // One timer for the whole wait, parked or reading.
    let sleep = tokio::time::sleep_until(Instant::now() + shared.config.handshake_timeout);
    tokio::pin!(sleep);
    loop {
        if parking::may_park(&ws, false) {
            let (tcp, deflate) = parking::park(ws);
            let woken = parking::parked(bell, sleep.as_mut(), &tcp, &shared.config.metrics).await;
            ws = Box::pin(parking::resume(tcp, deflate, shared)).await;
            match woken {
                Woken::Readable => {}
                Woken::Timer => return Err((ws, auth_failed("no auth message in time"))),
                Woken::Bell(Rung::Shutdown) => {
                    return Err((ws, goodbye::Ending::Close(CloseCode::Away, None)));
                }
                // Keys (or a revocation, which cannot name no session):
                // nothing to check before there is a token.
                Woken::Bell(_) => {
                    bell.answered_keys();
                    continue;
                }
            }
        }
        let frame = tokio::select! {
            biased;
            () = &mut sleep => return Err((ws, auth_failed("no auth message in time"))),
            frame = ws.next() => frame,
        };
        let text = match frame {
            None => return Err((ws, goodbye::Ending::Gone)),
            Some(Err(e)) => {
                tracing::debug!(error = %e, "websocket read failed before auth");
                return Err((ws, goodbye::Ending::Gone));
            }
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(_))) => return Err((ws, auth_failed("a binary frame"))),
            Some(Ok(Message::Close(_))) => return Err((ws, goodbye::Ending::Gone)),
            // Pings are answered by tungstenite; pongs and raw frames wait.
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
        };
        let Ok(ClientMessage::Auth(token, proof)) = ClientMessage::parse(text.as_str()) else {
            return Err((ws, auth_failed("the first message is not auth")));
        };
        let checked = verify(&shared.auth, &token).and_then(|(claims, kid)| {
            check_binding(
                shared.config.dpop.as_ref(),
                &claims,
                &token,
                proof.as_deref(),
                url,
            )
            .map(|()| (claims, kid))
        });
        return match checked {
            Ok((claims, kid)) => Ok((ws, claims, kid)),
            Err(reason) => {
                tracing::debug!(%reason, "first-message auth refused");
                Err((ws, auth_failed("invalid token")))
            }
        };
    }
}

/// `error` `auth_failed`, then close `4001`. `why` goes to the debug log
/// only (never a token).
fn auth_failed(why: &'static str) -> goodbye::Ending {
    tracing::debug!(why, "first-message auth failed");
    let text = protocol::error(
        ErrorCode::AuthFailed,
        "authenticate with {\"type\":\"auth\",\"access\":\"<token>\"} as the first message",
    );
    goodbye::Ending::Close(CloseCode::from(CLOSE_AUTH_FAILED), Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn size_of_output<A, B, C, D, E, F>(_: impl Fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Contract v3: an idle unauthenticated socket costs no more than an
    /// authenticated one: its task, the wait included, is held to the same
    /// 512 bytes as `connection`'s serving task (the goodbye is boxed, and
    /// serving runs in a task of its own).
    #[test]
    fn a_socket_waiting_for_its_first_message_costs_a_small_task() {
        let waiting = size_of_output(authenticate);
        assert!(waiting <= 512, "the waiting task's future: {waiting} bytes");
    }
}
