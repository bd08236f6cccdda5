//! How a connection ends: the close frame (or none), and the wait for the
//! peer's.

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tungstenite::protocol::CloseFrame;
use tungstenite::{Error as WsError, Message};

use super::{CLOSE_ABNORMAL, CLOSE_GRACE, Connection, Ending, Ws};
use crate::telemetry::metrics::ClosedBy;

impl Connection {
    /// Says goodbye the way `ending` asks.
    pub(super) async fn finish(self, ending: Ending, mut ws: Box<Ws>) {
        let shared = Arc::clone(&self.shared);
        let metrics = &shared.config.metrics;
        match ending {
            Ending::Gone => {
                let code = self.peer_close.unwrap_or(CLOSE_ABNORMAL);
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
}
