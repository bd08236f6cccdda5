//! The open sockets of the workload, through Nginx: each is a task that
//! reads everything (so the server's pings are answered), reauths when its
//! session refreshes, and reports how it ended (the close code the server
//! sent, or that the connection dropped). Dropping its handle closes it.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_tungstenite::tungstenite::Message;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};

use super::device::Tokens;
use super::record::{Answer, Close, Op};
use super::run::Ctx;
use super::tls::Wss;
use crate::ws_client::Incoming;

/// How a socket stands.
#[derive(Debug, Clone)]
pub enum SockState {
    Open,
    /// The server closed it with `code` (`None`: no close frame, the
    /// connection dropped), or we did (`by_us`).
    Closed {
        code: Option<u16>,
        at: Instant,
        by_us: bool,
    },
}

impl SockState {
    /// Whether it is closed, by either side.
    pub fn closed(&self) -> bool {
        matches!(self, Self::Closed { .. })
    }
}

enum Command {
    Reauth(Tokens),
}

/// A running socket; dropping it closes the socket.
#[derive(Debug)]
pub struct Socket {
    commands: mpsc::UnboundedSender<Command>,
    state: watch::Receiver<SockState>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Command::Reauth")
    }
}

impl Socket {
    /// Opens a socket for `tokens` from `source` and waits for its
    /// `connected`: with the token in the query, or as the first message
    /// (`first_message`, and always for a DPoP-bound session, whose proof
    /// goes with it). `None` when it did not open (recorded).
    pub async fn open(
        ctx: &Arc<Ctx>,
        source: IpAddr,
        tokens: &Tokens,
        first_message: bool,
    ) -> Option<Self> {
        let first_message = first_message || tokens.key.is_some();
        let started = Instant::now();
        let path = if first_message {
            "/ws".to_owned()
        } else {
            format!("/ws?token={}", tokens.access)
        };
        let (status, ws) = match ctx.front.wss(source, &path).await {
            Ok(Ok(ws)) => (101, Some(ws)),
            Ok(Err(refused)) => (refused.status, None),
            Err(_) => (0, None),
        };
        let mut ws = match ws {
            Some(ws) => ws,
            None => {
                ctx.rec
                    .answer(Op::WsOpen, started, &Answer { status, code: None });
                if status == 401 && !ctx.faults.retired(&tokens.kid) {
                    ctx.rec.unexpected(
                        Op::WsOpen,
                        "a live session's token refused at the handshake".into(),
                    );
                }
                return None;
            }
        };
        if first_message {
            let mut auth = json!({"type": "auth", "access": tokens.access});
            if let Some(key) = &tokens.key {
                auth["dpop"] = json!(key.proof("GET", &ctx.ws_url(), Some(&tokens.access)));
            }
            if ws.send_json(&auth).await.is_err() {
                ctx.rec.answer(Op::WsOpen, started, &Answer::default());
                return None;
            }
        }
        let welcome = ws.recv(Duration::from_secs(10)).await;
        let connected = matches!(&welcome, Ok(Incoming::Json(v)) if v["type"] == "connected");
        let answer = Answer {
            status: if connected { 101 } else { 0 },
            code: None,
        };
        ctx.rec.answer(Op::WsOpen, started, &answer);
        if !connected {
            if !ctx.faults.retired(&tokens.kid)
                && !matches!(welcome, Err(_) | Ok(Incoming::Closed(None)))
            {
                ctx.rec
                    .unexpected(Op::WsOpen, format!("no welcome: {welcome:?}"));
            }
            return None;
        }
        let (commands, inbox) = mpsc::unbounded_channel();
        let (report, state) = watch::channel(SockState::Open);
        ctx.sockets_open.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(serve(
            Arc::clone(ctx),
            ws,
            inbox,
            report,
            tokens.sid.clone(),
            tokens.kid.clone(),
        ));
        Some(Self { commands, state })
    }

    /// Sends `reauth` with the session's new access token (and its proof).
    pub fn reauth(&self, tokens: &Tokens) {
        let _ = self.commands.send(Command::Reauth(tokens.clone()));
    }

    /// Whether the server closed it or it dropped.
    pub fn closed(&self) -> bool {
        self.state.borrow().closed()
    }

    /// Its state, to wait on.
    pub fn watch(&self) -> watch::Receiver<SockState> {
        self.state.clone()
    }
}

/// The socket's task: answers the server, sends what it is told, reports
/// how it ended.
async fn serve(
    ctx: Arc<Ctx>,
    mut ws: Wss,
    mut inbox: mpsc::UnboundedReceiver<Command>,
    report: watch::Sender<SockState>,
    sid: String,
    mut kid: String,
) {
    // The reauth in flight: when it was sent and its token's kid.
    let mut pending: Option<(Instant, String)> = None;
    // A refused reauth, judged when the socket ends: a session revoked
    // while the reauth was in flight refuses it (`session revoked`) and
    // then closes the socket 4003 (within the 1-s bound), which excuses it.
    let mut refused: Option<(Instant, String)> = None;
    let ended = loop {
        tokio::select! {
            command = inbox.recv() => match command {
                Some(Command::Reauth(tokens)) => {
                    let mut message = json!({"type": "reauth", "access": tokens.access});
                    if let Some(key) = &tokens.key {
                        message["dpop"] = json!(key.proof("GET", &ctx.ws_url(), Some(&tokens.access)));
                    }
                    if ws.send_json(&message).await.is_ok() {
                        pending = Some((Instant::now(), tokens.kid));
                    }
                }
                None => {
                    let _ = ws.send(Message::Close(None)).await;
                    break SockState::Closed { code: None, at: Instant::now(), by_us: true };
                }
            },
            incoming = ws.recv(Duration::from_secs(3_600)) => match incoming {
                Ok(Incoming::Json(message)) => {
                    if let Some(what) = on_message(&ctx, &message, &mut pending, &mut kid, &sid) {
                        refused.get_or_insert((Instant::now(), what));
                    }
                }
                Ok(Incoming::Text(_)) => {}
                Ok(Incoming::Closed(code)) => {
                    break SockState::Closed { code, at: Instant::now(), by_us: false };
                }
                Err(_) => break SockState::Closed { code: None, at: Instant::now(), by_us: false },
            },
        }
    };
    ctx.sockets_open.fetch_sub(1, Ordering::Relaxed);
    if let Some((at_refusal, what)) = refused
        && !matches!(ended, SockState::Closed { code: Some(4003), at, .. }
            if at.saturating_duration_since(at_refusal) <= Duration::from_secs(1))
    {
        ctx.rec.unexpected(Op::WsReauth, what);
    }
    if let SockState::Closed {
        code,
        at,
        by_us: false,
    } = &ended
    {
        ctx.rec.socket_closed(Close {
            at_ms: ctx.rec.ms(*at),
            code: *code,
            sid,
            kid,
        });
    }
    let _ = report.send(ended);
}

fn on_message(
    ctx: &Ctx,
    message: &Value,
    pending: &mut Option<(Instant, String)>,
    kid: &mut String,
    sid: &str,
) -> Option<String> {
    match message["type"].as_str() {
        Some("reauth_success") => {
            if let Some((sent, new_kid)) = pending.take() {
                ctx.rec.answer(
                    Op::WsReauth,
                    sent,
                    &Answer {
                        status: 200,
                        code: None,
                    },
                );
                *kid = new_kid;
            }
        }
        Some("error") => {
            let code = message["payload"]["code"].as_str().unwrap_or_default();
            if code == "reauth_failed"
                && let Some((sent, new_kid)) = pending.take()
            {
                let answer = Answer {
                    status: 401,
                    code: Some(code.to_owned()),
                };
                ctx.rec.answer(Op::WsReauth, sent, &answer);
                if !ctx.faults.retired(&new_kid) {
                    return Some(format!(
                        "reauth with a live session's new token refused at {} ms: session {sid}, key {new_kid}, {}",
                        ctx.rec.ms(Instant::now()),
                        message["payload"]["message"]
                    ));
                }
            }
        }
        _ => {}
    }
    None
}
