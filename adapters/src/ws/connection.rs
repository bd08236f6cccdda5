//! One connection: handshake, then a single task that reads frames, answers
//! them, and keeps one timer re-armed to the next deadline (expiry warning,
//! expiry, server ping, dead peer).

use std::hash::{BuildHasher as _, RandomState};
use std::sync::Arc;
use std::time::Duration;

use application::AuthService;
use async_tungstenite::WebSocketStream;
use async_tungstenite::tokio::TokioAdapter;
use domain::{AccessClaims, SessionId, UserId};
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{Instant, Sleep};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tungstenite::error::ProtocolError;
use tungstenite::handshake::server::{Request, Response};
use tungstenite::http::HeaderValue;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error as WsError, Message};

mod goodbye;

use super::WsConfig;
use super::admission::{Refusal, admit};
use super::deflate::{self, Deflating, Failure};
use super::limits::{Limits, Slot};
use super::protocol::{self, BadMessage, ClientMessage, ErrorCode};
use super::registry::{Doorbell, Registry};
use crate::net::{REQUEST_ID, request_id_of};

/// After our close frame, how long we wait for the peer's.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Close code: the access token expired.
const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Close code: the session was revoked.
const CLOSE_SESSION_REVOKED: u16 = 4003;
/// RFC 6455 §7.4.1: a close frame without a code (never sent on the wire).
const CLOSE_NO_STATUS: u16 = 1005;
/// RFC 6455 §7.4.1: the connection ended without a close frame (never sent).
const CLOSE_ABNORMAL: u16 = 1006;

type Ws = WebSocketStream<TokioAdapter<Deflating>>;

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) auth: Arc<AuthService>,
    pub(crate) config: WsConfig,
    pub(crate) registry: Registry,
    pub(crate) ws_config: WebSocketConfig,
    /// Keys the payloads of the server's pings (SipHash under a random
    /// per-process key), so that a peer cannot answer one it has not read.
    pub(crate) ping_keys: RandomState,
    /// Sockets per user and per client address.
    pub(crate) limits: Limits,
}

/// Runs one accepted socket to its end.
pub(crate) async fn run(stream: TcpStream, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    // The address's slot is held from now (a handshake in progress counts);
    // `None`: the address is at its bound, refused once the request is read.
    let address_slot = stream
        .peer_addr()
        .map_or(Some(None), |peer| shared.limits.take_address(peer.ip()));
    let mut user_slot = None;
    let mut admitted: Option<AccessClaims> = None;
    let mut request_id = String::new();
    let mut caller = None;
    let mut compress = false;
    // The error type is tungstenite's HTTP response.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| {
        request_id = request_id_of(request.headers());
        // W3C `traceparent`/`tracestate`: the connection's span continues the
        // caller's trace (a no-op unless OTLP export installed a propagator).
        caller = Some(opentelemetry::global::get_text_map_propagator(|p| {
            p.extract(&opentelemetry_http::HeaderExtractor(request.headers()))
        }));
        let admitted_here =
            admit(request, &shared.auth, &shared.config.allowed_origins).and_then(|claims| {
                if address_slot.is_none() {
                    return Err(Refusal::TooManyFromAddress);
                }
                user_slot = Some(
                    shared
                        .limits
                        .take_user(claims.sub)
                        .ok_or(Refusal::TooManyForUser)?,
                );
                Ok(claims)
            });
        match admitted_here {
            Ok(claims) => {
                admitted = Some(claims);
                if let Ok(id) = HeaderValue::from_str(&request_id) {
                    response.headers_mut().insert(REQUEST_ID, id);
                }
                if deflate::negotiate(request.headers()) {
                    compress = true;
                    response.headers_mut().insert(
                        "sec-websocket-extensions",
                        HeaderValue::from_static(deflate::ANSWER),
                    );
                }
                Ok(response)
            }
            Err(refusal) => {
                // The refusal names the failed check, never the token or the query.
                tracing::debug!(reason = %refusal, request_id, "websocket handshake refused");
                Err(refusal.response())
            }
        }
    };
    let handshake = async_tungstenite::tokio::accept_hdr_async_with_config(
        Deflating::new(stream),
        callback,
        Some(shared.ws_config),
    );
    let mut ws = match tokio::time::timeout(shared.config.handshake_timeout, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::trace!(error = %e, "websocket handshake ended");
            return;
        }
        Err(_) => return,
    };
    let Some(claims) = admitted else { return };
    if compress {
        ws.get_mut()
            .get_mut()
            .deflate_from_now(shared.config.max_message_size);
    }
    let span = tracing::info_span!(
        "ws",
        user = %claims.sub,
        session = %claims.sid,
        request_id = %request_id,
        otel.kind = "server",
    );
    if let Some(caller) = caller {
        // Fails only when no OpenTelemetry layer is installed.
        let _ = span.set_parent(caller);
    }
    let slots = [user_slot, address_slot.flatten()];
    // A task of its own: this one, with everything the handshake needed,
    // ends here, and the socket's long life costs only what serving needs.
    let hello = protocol::connected(
        &claims.sub.to_string(),
        &claims.username,
        &claims.sid.to_string(),
        claims.exp,
    );
    tokio::spawn(
        Connection::new(ws, shared, Held::of(&claims), slots)
            .serve(stop, hello)
            .instrument(span),
    );
}

/// How a connection ends.
#[derive(Debug)]
enum Ending {
    /// The peer closed, or the socket failed: nothing more to send.
    Gone,
    /// The server gives up on the peer without a close frame (silent too
    /// long, or not reading while a message waits to go out).
    Dropped,
    /// Send an optional `error` message, then close with this code.
    Close(CloseCode, Option<String>),
    /// A message over the limit (1009) or one we could not inflate (1007,
    /// 1002): close with this code and reason, and stop reading frames.
    Abort(CloseCode, &'static str),
}

/// What woke the connection.
enum Event {
    Shutdown,
    Revoked,
    Timer,
    Frame(Option<Result<Message, WsError>>),
}

/// What a connection keeps of its token's claims.
#[derive(Debug, Clone, Copy)]
struct Held {
    sub: UserId,
    sid: SessionId,
    exp: i64,
}

impl Held {
    fn of(claims: &AccessClaims) -> Self {
        Self {
            sub: claims.sub,
            sid: claims.sid,
            exp: claims.exp,
        }
    }
}

struct Connection {
    ws: Ws,
    shared: Arc<Shared>,
    id: u64,
    bell: Doorbell,
    /// Of the current token (the last accepted `reauth`'s).
    claims: Held,
    /// When `token_expiring` is due; `None` once sent for this token.
    warn_at: Option<Instant>,
    /// The token's `exp` as an instant.
    expire_at: Instant,
    /// When the peer last answered one of our pings (or the connection
    /// opened). Nothing else counts: a peer that sends messages, fragments
    /// or pongs of its own but does not answer is dropped all the same.
    last_seen: Instant,
    /// Pings sent so far; each carries [`Self::ping_payload`] of its number.
    pings_sent: u64,
    /// Next server ping.
    next_ping: Instant,
    /// The code of the peer's close frame, once one came (1005 when it
    /// carried none).
    peer_close: Option<u16>,
    /// The user's and the address's places, given back when the connection ends.
    _slots: [Option<Slot>; 2],
}

impl Connection {
    fn new(ws: Ws, shared: Arc<Shared>, claims: Held, slots: [Option<Slot>; 2]) -> Self {
        let now = Instant::now();
        let id = shared.registry.next_id();
        let next_ping = now + shared.config.ping_interval;
        let mut conn = Self {
            ws,
            shared,
            id,
            bell: Doorbell::default(),
            claims,
            warn_at: None,
            expire_at: now,
            last_seen: now,
            pings_sent: 0,
            next_ping,
            peer_close: None,
            _slots: slots,
        };
        conn.arm_expiry();
        conn
    }

    fn auth(&self) -> &AuthService {
        &self.shared.auth
    }

    /// Sets `expire_at` and `warn_at` from the current claims (wall clock of the Clock port).
    fn arm_expiry(&mut self) {
        let now = Instant::now();
        let left_ms = self
            .claims
            .exp
            .saturating_mul(1000)
            .saturating_sub(self.auth().now().unix_millis());
        let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        self.expire_at = now + left;
        self.warn_at = Some(now + left.saturating_sub(self.shared.config.expiry_warning));
    }

    /// The payload of ping `number` on this connection: unguessable
    /// without reading it.
    fn ping_payload(&self, number: u64) -> [u8; 8] {
        self.shared
            .ping_keys
            .hash_one((self.id, number))
            .to_be_bytes()
    }

    /// Whether a pong carries our last ping's payload or the one before
    /// (RFC 6455 §5.5.3 lets a peer answer only the latest of several).
    fn answers_a_ping(&self, payload: &[u8]) -> bool {
        let last = self.pings_sent;
        (last >= 1 && payload == self.ping_payload(last))
            || (last >= 2 && payload == self.ping_payload(last - 1))
    }

    fn next_deadline(&self) -> Instant {
        let dead_at = self.last_seen + self.shared.config.peer_timeout;
        let mut next = self.expire_at.min(self.next_ping).min(dead_at);
        if let Some(warn_at) = self.warn_at {
            next = next.min(warn_at);
        }
        next
    }

    /// Serves the socket, `connected` (`hello`) first.
    async fn serve(mut self, mut stop: watch::Receiver<bool>, hello: String) {
        let sid = self.claims.sid;
        self.shared.registry.insert(sid, self.id, self.bell.clone());
        let _open = self.shared.config.metrics.ws_connection();
        tracing::debug!("websocket connected");
        let ending = self.live(&mut stop, hello).await;
        self.shared.registry.remove(self.claims.sid, self.id);
        // Boxed: the goodbye runs once, and its state must not size the
        // connection for its whole life.
        Box::pin(self.finish(ending)).await;
        tracing::debug!("websocket closed");
    }

    /// The connection's life until it must end.
    async fn live(&mut self, stop: &mut watch::Receiver<bool>, hello: String) -> Ending {
        // Revoked between the handshake and the registration: the bell was not rung for us.
        if self.auth().is_session_revoked(&self.claims.sid) {
            return revoked();
        }
        let sleep = tokio::time::sleep_until(self.next_deadline());
        tokio::pin!(sleep);
        if let Err(ending) = Box::pin(self.send(hello, sleep.as_mut(), stop)).await {
            return ending;
        }
        loop {
            let deadline = self.next_deadline();
            if sleep.deadline() != deadline {
                sleep.as_mut().reset(deadline);
            }
            let bell = self.bell.clone();
            let event = tokio::select! {
                biased;
                _ = stop.changed() => Event::Shutdown,
                () = bell.notified() => Event::Revoked,
                () = &mut sleep => Event::Timer,
                frame = self.ws.next() => Event::Frame(frame),
            };
            // Boxed: handling an event (and the send it may wait on) is
            // brief, and its state would otherwise size every idle socket's
            // task for its whole life (one small allocation per event instead).
            let step = match event {
                Event::Shutdown => return Ending::Close(CloseCode::Away, None),
                Event::Revoked => return revoked(),
                Event::Timer => Box::pin(self.on_timer(sleep.as_mut(), stop)).await,
                Event::Frame(frame) => Box::pin(self.on_frame(frame, sleep.as_mut(), stop)).await,
            };
            if let Err(ending) = step {
                return ending;
            }
        }
    }

    async fn on_timer(
        &mut self,
        sleep: std::pin::Pin<&mut Sleep>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Ending> {
        let now = Instant::now();
        if now >= self.expire_at {
            tracing::debug!("access token expired");
            let text = protocol::error(ErrorCode::TokenExpired, "the access token expired");
            return Err(Ending::Close(
                CloseCode::from(CLOSE_TOKEN_EXPIRED),
                Some(text),
            ));
        }
        if now >= self.last_seen + self.shared.config.peer_timeout {
            tracing::debug!("peer silent too long, dropping");
            return Err(Ending::Dropped);
        }
        let mut sleep = sleep;
        let warn_due = self.warn_at.is_some_and(|at| now >= at);
        if warn_due {
            self.warn_at = None;
        }
        let ping_due = now >= self.next_ping;
        if ping_due {
            self.next_ping = now + self.shared.config.ping_interval;
        }
        // Re-armed before sending, so that only a stalled send meets the timer.
        sleep.as_mut().reset(self.next_deadline());
        if warn_due {
            let expires_in = self
                .claims
                .exp
                .saturating_sub(self.auth().now().unix_seconds())
                .max(0);
            let text = protocol::token_expiring(self.claims.exp, expires_in);
            self.send(text, sleep.as_mut(), stop).await?;
        }
        if ping_due {
            self.pings_sent += 1;
            let payload = self.ping_payload(self.pings_sent).to_vec();
            self.send_message(Message::Ping(payload.into()), sleep, stop)
                .await?;
        }
        Ok(())
    }

    async fn on_frame(
        &mut self,
        frame: Option<Result<Message, WsError>>,
        sleep: std::pin::Pin<&mut Sleep>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Ending> {
        let message = match frame {
            None => return Err(Ending::Gone),
            Some(Err(WsError::Capacity(_))) => return Err(too_big()),
            // RFC 6455 §8.1: a text message that is not UTF-8 fails with 1007.
            Some(Err(WsError::Utf8(_))) => {
                return Err(Ending::Abort(CloseCode::Invalid, "text is not UTF-8"));
            }
            // A frame that breaks RFC 6455 (reserved bits, an unmasked
            // frame, a control frame too long...): tungstenite refuses it
            // without a close frame; we send one (1002).
            Some(Err(WsError::Protocol(e)))
                if !matches!(e, ProtocolError::ResetWithoutClosingHandshake) =>
            {
                tracing::debug!(error = %e, "protocol violation");
                return Err(Ending::Abort(CloseCode::Protocol, "protocol violation"));
            }
            Some(Err(e)) => {
                return Err(match Failure::of(&e) {
                    Some(Failure::TooBig) => too_big(),
                    Some(Failure::Invalid) => {
                        Ending::Abort(CloseCode::Invalid, "invalid compressed data")
                    }
                    Some(Failure::Protocol) => {
                        Ending::Abort(CloseCode::Protocol, "invalid compressed frames")
                    }
                    None => {
                        tracing::debug!(error = %e, "websocket read failed");
                        Ending::Gone
                    }
                });
            }
            Some(Ok(message)) => message,
        };
        let reply = match message {
            Message::Text(text) => match ClientMessage::parse(text.as_str()) {
                Ok(message) => self.answer(message),
                Err(bad) => bad_message(bad),
            },
            Message::Binary(_) => bad_message(BadMessage::Binary),
            // A close is answered by tungstenite, and then the stream ends.
            Message::Close(frame) => {
                self.peer_close = Some(frame.map_or(CLOSE_NO_STATUS, |f| f.code.into()));
                return Ok(());
            }
            Message::Pong(payload) => {
                if self.answers_a_ping(&payload) {
                    self.last_seen = Instant::now();
                }
                return Ok(());
            }
            // Pings are answered by tungstenite.
            Message::Ping(_) | Message::Frame(_) => return Ok(()),
        };
        self.send(reply, sleep, stop).await
    }

    fn answer(&mut self, message: ClientMessage) -> String {
        match message {
            ClientMessage::Ping => protocol::pong(self.auth().now().unix_millis()),
            ClientMessage::Echo(payload) => protocol::echo(payload),
            ClientMessage::Reauth(token) => self.reauth(&token),
        }
    }

    /// A `reauth`, in a span of its own under the connection's (exported
    /// when it ends, not when the socket closes), counted by outcome.
    fn reauth(&mut self, token: &str) -> String {
        let span = tracing::info_span!("ws.reauth", outcome = tracing::field::Empty);
        let _entered = span.enter();
        let (accepted, reply) = self.check_reauth(token);
        self.shared.config.metrics.ws_reauth(accepted);
        span.record("outcome", if accepted { "success" } else { "failure" });
        reply
    }

    /// Checks a `reauth` token and adopts its claims: whether it was
    /// accepted, and the answer.
    fn check_reauth(&mut self, token: &str) -> (bool, String) {
        let claims = match self.auth().verify_access_with_leeway(token, 0) {
            Ok(claims) => claims,
            Err(e) => {
                tracing::debug!(reason = %e, "reauth refused");
                let text =
                    protocol::error(ErrorCode::ReauthFailed, "the access token is not valid");
                return (false, text);
            }
        };
        if claims.sub != self.claims.sub {
            tracing::warn!(other_user = %claims.sub, "reauth with another user's token refused");
            return (
                false,
                protocol::error(
                    ErrorCode::ReauthFailed,
                    "the access token belongs to another user",
                ),
            );
        }
        if claims.sid != self.claims.sid {
            tracing::debug!(new_session = %claims.sid, "reauth moved the connection to another session");
            self.shared
                .registry
                .move_to(self.claims.sid, claims.sid, self.id, self.bell.clone());
            if self.auth().is_session_revoked(&claims.sid) {
                // Revoked between the check and the move: ring ourselves.
                self.bell.notify_one();
            }
        }
        self.claims = Held::of(&claims);
        self.arm_expiry();
        tracing::debug!(expires_at = self.claims.exp, "reauth");
        (true, protocol::reauth_success(self.claims.exp))
    }

    async fn send(
        &mut self,
        text: String,
        sleep: std::pin::Pin<&mut Sleep>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Ending> {
        self.send_message(Message::text(text), sleep, stop).await
    }

    /// Sends a message. A send only waits when the peer stopped reading; if
    /// the timer, a revocation or shutdown comes meanwhile, the peer is
    /// dropped (a close frame could not reach it either).
    async fn send_message(
        &mut self,
        message: Message,
        sleep: std::pin::Pin<&mut Sleep>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), Ending> {
        let bell = self.bell.clone();
        tokio::select! {
            biased;
            sent = self.ws.send(message) => sent.map_err(|e| {
                tracing::debug!(error = %e, "websocket write failed");
                Ending::Gone
            }),
            () = sleep => Err(Ending::Dropped),
            () = bell.notified() => Err(Ending::Dropped),
            _ = stop.changed() => Err(Ending::Dropped),
        }
    }
}

fn revoked() -> Ending {
    tracing::debug!("session revoked, closing");
    let text = protocol::error(ErrorCode::SessionRevoked, "the session was revoked");
    Ending::Close(CloseCode::from(CLOSE_SESSION_REVOKED), Some(text))
}

fn too_big() -> Ending {
    Ending::Abort(CloseCode::Size, "message too big")
}

fn bad_message(bad: BadMessage) -> String {
    protocol::error(ErrorCode::BadMessage, &bad.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of what `f` returns, without calling it.
    fn size_of_output<A, B, C, F>(_: impl Fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Issue #15: a task's future is allocated at its largest state for the
    /// task's whole life. A held socket's was 7.2 KB (a 4 KiB drain buffer of
    /// the close path, the goodbye, the handshake); the handshake now runs in
    /// a task that ends, the goodbye is boxed and the drain buffer is on the
    /// heap; the handlers of each event are boxed (2,232 -> 1,616 bytes).
    /// (Debug size; the release one is smaller.)
    #[test]
    fn a_held_socket_costs_a_small_task() {
        let serving = size_of_output(Connection::serve);
        assert!(
            serving <= 1792,
            "the serving task's future: {serving} bytes"
        );
    }
}
