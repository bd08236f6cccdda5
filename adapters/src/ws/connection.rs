//! One connection after its handshake (see `handshake`): a single task that
//! reads frames, answers them (`reauth` included), and keeps one timer
//! re-armed to the next deadline (expiry warning, expiry, server ping, dead
//! peer, parking). An idle connection parks: it drops tungstenite's state
//! and waits on the bare socket (see `parking`); how it ends is `goodbye`'s.

use std::hash::{BuildHasher as _, RandomState};
use std::sync::Arc;
use std::time::Duration;

use application::AccessCheck;
use async_tungstenite::WebSocketStream;
use async_tungstenite::tokio::TokioAdapter;
use domain::sockets::{Reauth, SOCKET_TOKEN_LEEWAY_SECS, decide_reauth};
use domain::{AccessClaims, SessionId, UserId};
use futures_util::StreamExt;
use tokio::time::{Instant, Sleep};
use tungstenite::error::ProtocolError;
use tungstenite::protocol::WebSocketConfig;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error as WsError, Message};

pub(super) mod goodbye;
pub(super) mod parking;

use self::goodbye::{
    CLOSE_NO_STATUS, CLOSE_TOKEN_EXPIRED, Ending, bad_message, key_retired, revoked, too_big,
};
use super::WsConfig;
use super::deflate::{Deflating, Failure};
use super::limits::{Limits, Slot};
use super::protocol::{self, BadMessage, ClientMessage, ErrorCode};
use super::registry::{Doorbell, Registry, Rung};

pub(super) type Ws = WebSocketStream<TokioAdapter<Deflating>>;

/// What every connection shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) auth: Arc<AccessCheck>,
    pub(crate) config: WsConfig,
    pub(crate) registry: Registry,
    pub(crate) ws_config: WebSocketConfig,
    /// Keys the payloads of the server's pings (SipHash under a random
    /// per-process key), so that a peer cannot answer one it has not read.
    pub(crate) ping_keys: RandomState,
    /// Sockets per user and per client address.
    pub(crate) limits: Limits,
    /// The kids of the connections' tokens, one allocation per key.
    pub(crate) kids: super::kid_names::KidNames,
}

/// What woke the connection.
enum Event {
    Woken(Woken),
    Frame(Option<Result<Message, WsError>>),
}

/// What wakes a connection besides a frame (all that wakes a parked one).
#[derive(Debug, Clone, Copy)]
pub(super) enum Woken {
    Bell(Rung),
    Timer,
    /// A parked connection's socket has something to read.
    Readable,
}

/// Why the active part of a connection's life ended.
enum Flow {
    End(Ending),
    /// Idle with nothing held: park until something happens.
    Park,
}

/// What a connection keeps of its token's claims, and the key that signed it.
#[derive(Debug, Clone)]
pub(super) struct Held {
    sub: UserId,
    sid: SessionId,
    exp: i64,
    kid: Option<Arc<String>>,
    /// The socket's URL, which a bound socket's `reauth` proofs name (a
    /// thin pointer: the serving task is held to 512 bytes).
    url: Option<Box<Box<str>>>,
}

impl Held {
    pub(super) fn of(claims: &AccessClaims, kid: Option<Arc<String>>) -> Self {
        Self {
            sub: claims.sub,
            sid: claims.sid,
            exp: claims.exp,
            kid,
            url: None,
        }
    }

    /// The same, for a socket at `url` (kept only for a bound token).
    #[must_use]
    pub(super) fn at(mut self, claims: &AccessClaims, url: &str) -> Self {
        if claims.cnf.is_some() {
            self.url = Some(Box::new(Box::from(url)));
        }
        self
    }
}

pub(super) struct Connection {
    shared: Arc<Shared>,
    id: u64,
    bell: Doorbell,
    /// Of the current token (the last accepted `reauth`'s).
    claims: Held,
    /// `token_expiring` was sent for the current token.
    warned: bool,
    /// The token's `exp` as an instant.
    expire_at: Instant,
    /// When the peer last answered one of our pings (or the connection
    /// opened). Nothing else counts: a peer that sends messages, fragments
    /// or pongs of its own but does not answer is dropped all the same.
    last_seen: Instant,
    /// Pings sent so far; each carries [`Self::ping_payload`] of its number.
    pings_sent: u32,
    /// Next server ping.
    next_ping: Instant,
    /// Not before then may the connection park (`park_after` past the
    /// client's last frame, or its wake-up); `None`: as soon as it is at rest.
    park_at: Option<Instant>,
    /// The code of the peer's close frame, once one came (1005 when it
    /// carried none).
    peer_close: Option<u16>,
    /// The user's and the address's places, given back when the connection ends.
    _slots: [Slot; 2],
}

impl Connection {
    pub(super) fn new(shared: Arc<Shared>, claims: Held, slots: [Slot; 2]) -> Self {
        let now = Instant::now();
        let id = shared.registry.next_id();
        let next_ping = now + shared.config.ping_interval;
        let mut conn = Self {
            shared,
            id,
            bell: Doorbell::default(),
            claims,
            warned: false,
            expire_at: now,
            last_seen: now,
            pings_sent: 0,
            next_ping,
            park_at: None,
            peer_close: None,
            _slots: slots,
        };
        conn.arm_expiry();
        conn
    }

    fn auth(&self) -> &AccessCheck {
        &self.shared.auth
    }

    /// Whether the key that signed the current token still verifies.
    fn key_accepted(&self) -> bool {
        self.claims
            .kid
            .as_deref()
            .is_none_or(|kid| self.auth().accepts_key(kid))
    }

    /// Sets `expire_at` from the current claims (wall clock of the Clock
    /// port), the warning not sent yet.
    fn arm_expiry(&mut self) {
        let now = Instant::now();
        let left_ms = self
            .claims
            .exp
            .saturating_mul(1000)
            .saturating_sub(self.auth().now().unix_millis());
        let left = Duration::from_millis(u64::try_from(left_ms).unwrap_or(0));
        self.expire_at = now + left;
        self.warned = false;
    }

    /// When `token_expiring` is due; `None` once sent for this token.
    fn warn_at(&self) -> Option<Instant> {
        let at = self
            .expire_at
            .checked_sub(self.shared.config.expiry_warning)
            .unwrap_or(self.expire_at);
        (!self.warned).then_some(at)
    }

    /// The payload of ping `number` on this connection: unguessable
    /// without reading it.
    fn ping_payload(&self, number: u32) -> [u8; 8] {
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
        for at in [self.warn_at(), self.park_at].into_iter().flatten() {
            next = next.min(at);
        }
        next
    }

    /// Serves the socket, `connected` (`hello`) first.
    ///
    /// Not an `async fn`: one keeps its arguments twice, as arguments and
    /// as the locals they are moved into (rust-lang/rust#62958), and the
    /// connection's state would size the task twice for the socket's life.
    pub(super) fn serve(self, ws: Box<Ws>, hello: String) -> impl Future<Output = ()> + Send {
        let mut this = self;
        async move {
            let sid = this.claims.sid;
            this.shared.registry.insert(sid, this.id, this.bell.clone());
            let _open = this.shared.config.metrics.ws_connection();
            tracing::debug!("websocket connected");
            let (ending, ws) = this.live(ws, hello).await;
            this.shared.registry.remove(this.claims.sid, this.id);
            // Boxed: the goodbye runs once, and its state must not size the
            // connection for its whole life.
            let metrics = &this.shared.config.metrics;
            Box::pin(goodbye::finish(ending, ws, this.peer_close, metrics)).await;
            tracing::debug!("websocket closed");
        }
    }

    /// The connection's life until it must end: active, parked, active...
    /// Only the parked part's state sizes the task: the active part, with
    /// tungstenite's, is on the heap while it lasts.
    /// (Not an `async fn`, for the reason given at [`Self::serve`].)
    fn live(
        &mut self,
        ws: Box<Ws>,
        hello: String,
    ) -> impl Future<Output = (Ending, Box<Ws>)> + Send + '_ {
        let (mut ws, mut hello) = (ws, Some(hello));
        async move {
            // Revoked between the handshake and the registration: the bell was not rung for us.
            if self.auth().is_session_revoked(&self.claims.sid) {
                return (revoked(), ws);
            }
            let mut woken = None;
            loop {
                match Box::pin(self.active(&mut ws, hello.take(), woken.take())).await {
                    Flow::End(ending) => return (ending, ws),
                    Flow::Park => {}
                }
                self.park_at = None;
                let (tcp, deflate) = parking::park(ws);
                let metrics = &self.shared.config.metrics;
                let sleep = tokio::time::sleep_until(self.next_deadline());
                tokio::pin!(sleep);
                woken = Some(parking::parked(&self.bell, sleep, &tcp, metrics).await);
                ws = Box::pin(parking::resume(tcp, deflate, &self.shared)).await;
            }
        }
    }

    /// The active part: frames read and answered, until the connection must
    /// end or may park.
    /// `hello` to send first, or what woke it while parked to handle.
    async fn active(&mut self, ws: &mut Ws, hello: Option<String>, woken: Option<Woken>) -> Flow {
        let park_after = self.shared.config.park_after;
        let sleep = tokio::time::sleep_until(self.next_deadline());
        tokio::pin!(sleep);
        if let Some(hello) = hello
            && let Err(ending) = self.send(ws, hello, sleep.as_mut()).await
        {
            return Flow::End(ending);
        }
        let mut event = woken.map(Event::Woken);
        loop {
            let event = match event.take() {
                Some(event) => event,
                None => {
                    // At once after the `connected` message or a timer's
                    // errand, `park_after` after the client's last frame.
                    if self.park_at.is_none_or(|at| Instant::now() >= at) {
                        if parking::may_park(ws, self.peer_close.is_some()) {
                            return Flow::Park;
                        }
                        self.park_at = Some(Instant::now() + park_after);
                    }
                    let deadline = self.next_deadline();
                    if sleep.deadline() != deadline {
                        sleep.as_mut().reset(deadline);
                    }
                    let bell = self.bell.clone();
                    tokio::select! {
                        biased;
                        rung = bell.rung() => Event::Woken(Woken::Bell(rung)),
                        () = &mut sleep => Event::Woken(Woken::Timer),
                        frame = ws.next() => Event::Frame(frame),
                    }
                }
            };
            let step = match event {
                Event::Woken(Woken::Bell(Rung::Shutdown)) => {
                    return Flow::End(Ending::Close(CloseCode::Away, None));
                }
                Event::Woken(Woken::Bell(Rung::Revoked)) => return Flow::End(revoked()),
                Event::Woken(Woken::Bell(Rung::Keys)) => {
                    self.bell.answered_keys();
                    if !self.key_accepted() {
                        return Flow::End(key_retired());
                    }
                    Ok(())
                }
                Event::Woken(Woken::Timer) => self.on_timer(ws, sleep.as_mut()).await,
                Event::Frame(frame) => {
                    let step = self.on_frame(ws, frame, sleep.as_mut()).await;
                    self.park_at = Some(Instant::now() + park_after);
                    step
                }
                // The client has something to say: wait for it.
                Event::Woken(Woken::Readable) => {
                    self.park_at = Some(Instant::now() + park_after);
                    Ok(())
                }
            };
            if let Err(ending) = step {
                return Flow::End(ending);
            }
        }
    }

    async fn on_timer(
        &mut self,
        ws: &mut Ws,
        sleep: std::pin::Pin<&mut Sleep>,
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
        let warn_due = self.warn_at().is_some_and(|at| now >= at);
        if warn_due {
            self.warned = true;
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
            self.send(ws, text, sleep.as_mut()).await?;
        }
        if ping_due {
            self.pings_sent += 1;
            let payload = self.ping_payload(self.pings_sent).to_vec();
            self.send_message(ws, Message::Ping(payload.into()), sleep)
                .await?;
        }
        Ok(())
    }

    async fn on_frame(
        &mut self,
        ws: &mut Ws,
        frame: Option<Result<Message, WsError>>,
        sleep: std::pin::Pin<&mut Sleep>,
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
        self.send(ws, reply, sleep).await
    }

    fn answer(&mut self, message: ClientMessage) -> String {
        match message {
            ClientMessage::Ping => protocol::pong(self.auth().now().unix_millis()),
            ClientMessage::Echo(payload) => protocol::echo(payload),
            ClientMessage::Reauth(token, proof) => self.reauth(&token, proof.as_deref()),
            ClientMessage::Auth(..) => bad_message(BadMessage::AlreadyAuthenticated),
        }
    }

    /// A `reauth`, in a span of its own under the connection's (exported
    /// when it ends, not when the socket closes), counted by outcome.
    fn reauth(&mut self, token: &str, proof: Option<&str>) -> String {
        let span = tracing::info_span!("ws.reauth", outcome = tracing::field::Empty);
        let _entered = span.enter();
        let (accepted, reply) = self.check_reauth(token, proof);
        self.shared.config.metrics.ws_reauth(accepted);
        span.record("outcome", if accepted { "success" } else { "failure" });
        reply
    }

    /// Checks a `reauth` token and adopts its claims: whether it was
    /// accepted, and the answer.
    fn check_reauth(&mut self, token: &str, proof: Option<&str>) -> (bool, String) {
        let claims = match self
            .auth()
            .verify_with_leeway(token, SOCKET_TOKEN_LEEWAY_SECS)
        {
            // A bound token needs its proof, naming this socket's URL.
            Ok(claims)
                if super::admission::check_binding(
                    self.shared.config.dpop.as_ref(),
                    &claims,
                    token,
                    proof,
                    self.claims.url.as_deref().map_or("", |u| &**u),
                )
                .is_ok() =>
            {
                claims
            }
            // Refusals are rare for a working client, and each tells
            // why (the REST side logs every refused request too).
            Ok(_) => {
                tracing::info!(session = %self.claims.sid, "reauth with a DPoP-bound token without its proof refused");
                let text =
                    protocol::error(ErrorCode::ReauthFailed, "the access token is not valid");
                return (false, text);
            }
            Err(e) => {
                tracing::info!(session = %self.claims.sid, reason = %e, "reauth refused");
                let text =
                    protocol::error(ErrorCode::ReauthFailed, "the access token is not valid");
                return (false, text);
            }
        };
        match decide_reauth(self.claims.sub, self.claims.sid, claims.sub, claims.sid) {
            Reauth::OtherUser => {
                tracing::warn!(other_user = %claims.sub, "reauth with another user's token refused");
                return (
                    false,
                    protocol::error(
                        ErrorCode::ReauthFailed,
                        "the access token belongs to another user",
                    ),
                );
            }
            Reauth::MoveTo(session) => {
                tracing::debug!(new_session = %session, "reauth moved the connection to another session");
                self.shared
                    .registry
                    .move_to(self.claims.sid, session, self.id, self.bell.clone());
                if self.auth().is_session_revoked(&session) {
                    // Revoked between the check and the move: ring ourselves.
                    self.bell.ring(Rung::Revoked);
                }
            }
            Reauth::Renew => {}
        }
        let kid = self.shared.kids.name(self.auth().token_kid(token));
        let url = self.claims.url.take();
        self.claims = Held::of(&claims, kid);
        self.claims.url = url;
        self.arm_expiry();
        tracing::debug!(expires_at = self.claims.exp, "reauth");
        (true, protocol::reauth_success(self.claims.exp))
    }

    async fn send(
        &mut self,
        ws: &mut Ws,
        text: String,
        sleep: std::pin::Pin<&mut Sleep>,
    ) -> Result<(), Ending> {
        self.send_message(ws, Message::text(text), sleep).await
    }

    /// Sends a message. A send only waits when the peer stopped reading; if
    /// the timer, a revocation or shutdown comes meanwhile, the peer is
    /// dropped (a close frame could not reach it either).
    async fn send_message(
        &mut self,
        ws: &mut Ws,
        message: Message,
        sleep: std::pin::Pin<&mut Sleep>,
    ) -> Result<(), Ending> {
        let bell = self.bell.clone();
        tokio::select! {
            biased;
            sent = ws.send(message) => sent.map_err(|e| {
                tracing::debug!(error = %e, "websocket write failed");
                Ending::Gone
            }),
            () = sleep => Err(Ending::Dropped),
            _ = bell.rung() => Err(Ending::Dropped),
        }
    }
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
    /// Now only the parked part of the life sizes it: the active part is
    /// boxed, the parked wait holds its timer only, and `serve` and `live` are
    /// not `async fn`s, which keep their arguments twice (1,616 -> 488).
    /// (Debug size; the release one is the same or smaller.)
    #[test]
    fn a_held_socket_costs_a_small_task() {
        let serving = size_of_output(Connection::serve);
        assert!(serving <= 512, "the serving task's future: {serving} bytes");
    }
}
