//! How a connection ends: the reasons, the close frame (or none), and the
//! wait for the peer's.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Error as WsError, Message};

use super::Ws;
use crate::telemetry::Metrics;
use crate::telemetry::metrics::ClosedBy;
use crate::ws::protocol::{self, BadMessage, ErrorCode};

/// After our close frame, how long we wait for the peer's.
pub(super) const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// Close code: the access token expired.
pub(super) const CLOSE_TOKEN_EXPIRED: u16 = 4001;
/// Close code: the session was revoked.
pub(super) const CLOSE_SESSION_REVOKED: u16 = 4003;
/// RFC 6455 §7.4.1: a close frame without a code (never sent on the wire).
pub(super) const CLOSE_NO_STATUS: u16 = 1005;
/// RFC 6455 §7.4.1: the connection ended without a close frame (never sent).
pub(super) const CLOSE_ABNORMAL: u16 = 1006;

/// How a connection ends.
#[derive(Debug)]
pub(in crate::ws) enum Ending {
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

/// The token's signing key was retired: the token is no longer valid, as at
/// its expiry (the session is not revoked: a refresh gives a token to
/// reconnect with).
pub(super) fn key_retired() -> Ending {
    tracing::info!("the token's signing key was retired, closing");
    let text = protocol::error(
        ErrorCode::TokenExpired,
        "the signing key of the access token was retired",
    );
    Ending::Close(CloseCode::from(CLOSE_TOKEN_EXPIRED), Some(text))
}

pub(super) fn revoked() -> Ending {
    tracing::debug!("session revoked, closing");
    let text = protocol::error(ErrorCode::SessionRevoked, "the session was revoked");
    Ending::Close(CloseCode::from(CLOSE_SESSION_REVOKED), Some(text))
}

pub(super) fn too_big() -> Ending {
    Ending::Abort(CloseCode::Size, "message too big")
}

pub(super) fn bad_message(bad: BadMessage) -> String {
    protocol::error(ErrorCode::BadMessage, &bad.to_string())
}

/// Says goodbye the way `ending` asks; `peer_close` is the code of the
/// peer's close frame, if one came.
pub(in crate::ws) async fn finish(
    ending: Ending,
    mut ws: Box<Ws>,
    peer_close: Option<u16>,
    metrics: &Metrics,
) {
    match ending {
        Ending::Gone => {
            let code = peer_close.unwrap_or(CLOSE_ABNORMAL);
            metrics.ws_close(code, ClosedBy::Client);
        }
        Ending::Dropped => metrics.ws_close(CLOSE_ABNORMAL, ClosedBy::Server),
        Ending::Close(code, text) => {
            metrics.ws_close(code.into(), ClosedBy::Server);
            let goodbye = async {
                if let Some(text) = text {
                    // Queued, then flushed with the close frame: one write.
                    futures_util::SinkExt::feed(&mut ws, Message::text(text)).await?;
                }
                ws.close(Some(CloseFrame {
                    code,
                    reason: Default::default(),
                }))
                .await?;
                // Read until the peer's close (tungstenite then ends the stream).
                while ws.next().await.is_some() {}
                Ok::<(), WsError>(())
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, goodbye).await;
        }
        Ending::Abort(code, reason) => {
            tracing::debug!(reason, "closing on a bad message");
            metrics.ws_close(code.into(), ClosedBy::Server);
            let goodbye = async {
                let frame = CloseFrame {
                    code,
                    reason: reason.into(),
                };
                let _ = ws.close(Some(frame)).await;
                // The rest of the message may still be arriving: end our
                // side, then swallow it, so the kernel does not answer
                // with a reset that could overtake our close frame.
                let tcp = ws.get_mut().get_mut().tcp_mut();
                let _ = tcp.shutdown().await;
                // On the heap: a buffer in the future would cost every
                // connection its size for its whole life.
                let mut sink = vec![0_u8; 4096];
                while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
            };
            let _ = tokio::time::timeout(CLOSE_GRACE, goodbye).await;
        }
    }
}
