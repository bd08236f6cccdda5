//! Parking: an idle connection drops tungstenite's state (its buffers, its
//! wakers, the stream layers) and waits on the bare socket, the doorbell,
//! shutdown and its timer; whichever comes first makes it active again,
//! on a fresh tungstenite over the same socket.
//!
//! It parks only when nothing would be lost: tungstenite's last read found
//! the socket empty, every byte it was given ends a frame, no fragmented
//! message is open, everything it wrote has gone out, and the peer has not
//! begun to close (see `Deflating::at_rest`). Then a fresh tungstenite is
//! in the very state the old one was, and the socket holds the rest.

use async_tungstenite::WebSocketStream;
use async_tungstenite::tokio::TokioAdapter;
use std::future::Future;
use std::task::Poll;

use tokio::net::TcpStream;
use tungstenite::protocol::Role;

use super::{Shared, Woken, Ws};
use crate::telemetry::Metrics;
use crate::ws::deflate::Deflating;
use crate::ws::registry::Doorbell;
use std::pin::Pin;
use tokio::time::Sleep;

/// Whether a connection may park now (see the module); `peer_closing`:
/// the peer's close frame came.
pub(in crate::ws) fn may_park(ws: &Ws, peer_closing: bool) -> bool {
    !peer_closing && ws.get_ref().get_ref().at_rest()
}

/// Gives tungstenite's state up: the socket, and whether the extension
/// is on.
pub(in crate::ws) fn park(ws: Box<Ws>) -> (TcpStream, bool) {
    let stream = ws.into_inner().into_inner();
    let deflate = stream.compressing();
    (stream.into_tcp(), deflate)
}

/// Waits, parked, for what wakes the connection: its doorbell `bell`, its
/// timer `sleep`, or its socket. Polled by hand: the bell and the socket's
/// readiness keep their wakers where they live (in the bell, in tokio's
/// registration), so this future holds nothing but references. (Not an
/// `async fn`, which would keep `metrics` beside the gauge made of it: the
/// parked state sizes the connection's task.)
pub(in crate::ws) fn parked<'a>(
    bell: &'a Doorbell,
    mut sleep: Pin<&'a mut Sleep>,
    tcp: &'a TcpStream,
    metrics: &Metrics,
) -> impl Future<Output = Woken> + Send + 'a {
    let parked = metrics.ws_parked();
    async move {
        let _parked = parked;
        std::future::poll_fn(|cx| {
            if let Poll::Ready(rung) = bell.poll_rung(cx) {
                return Poll::Ready(Woken::Bell(rung));
            }
            if sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Woken::Timer);
            }
            // An error is the next read's to report.
            if tcp.poll_read_ready(cx).is_ready() {
                return Poll::Ready(Woken::Readable);
            }
            Poll::Pending
        })
        .await
    }
}

/// A fresh tungstenite on the parked socket.
pub(in crate::ws) async fn resume(tcp: TcpStream, deflate: bool, shared: &Shared) -> Box<Ws> {
    let limit = deflate.then_some(shared.config.max_message_size);
    let stream = TokioAdapter::new(Deflating::resumed(tcp, limit));
    let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(shared.ws_config)).await;
    Box::new(ws)
}
