//! The REST listener's connections: how many may be open, how long a
//! request may take to arrive and be answered, and whether a request's
//! client is still there ([`crate::client_presence`]).
//!
//! - **Cap**: at most [`ConnectionLimits::max_connections`] open at once.
//!   One more is answered `503 overloaded` (problem+json, `Retry-After: 1`)
//!   and closed, without reading it, so the process never runs out of
//!   descriptors and a client at the cap learns why.
//! - **Request deadline**: from a connection's opening, or from the first
//!   byte of each next request, to the first byte of its answer:
//!   [`ConnectionLimits::request_deadline`]. A client that trickles a header
//!   or a body (slowloris) loses its connection then. Between requests a
//!   kept-alive connection may stay idle for the listener's idle timeout.
//! - **Presence**: the peer closing or resetting its side marks the
//!   connection's [`Presence`] gone; the edge runs each request under it.
//! - **Unparsable requests**: hyper answers a request head it cannot parse
//!   (more than 100 header fields, a head over its buffer, a garbage request
//!   line) itself, with a bare status and no body, before any handler runs;
//!   poem offers no way to change that. The connection replaces those
//!   answers with problem+json ([`automatic_answer`]), so every refusal a
//!   client gets follows the contract.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::client_presence::Presence;
use crate::problem::Code;

/// The listener's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// From a request's first byte to its answer's first byte.
    pub request_deadline: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            request_deadline: Duration::from_secs(10),
        }
    }
}

impl ConnectionLimits {
    /// A cap that leaves an eighth of `open_files` (the soft descriptor
    /// limit; `None`: unlimited) and 64 more for the database, the
    /// WebSocket listener and files.
    pub fn cap_for(open_files: Option<u64>) -> usize {
        let files = open_files.unwrap_or(1 << 20);
        let cap = (files - files / 8).saturating_sub(64).max(16);
        usize::try_from(cap).unwrap_or(usize::MAX)
    }
}

/// Which connection: the listener's address and the peer's.
type Key = (SocketAddr, SocketAddr);

/// The presence of every open connection of every listener in the process.
static OPEN: LazyLock<Mutex<HashMap<Key, Presence>>> = LazyLock::new(Mutex::default);

/// The presence of the connection between `local` and `remote`, when it is
/// one of ours and still open.
pub fn presence_of(local: &poem::Addr, remote: &poem::Addr) -> Option<Presence> {
    let (poem::Addr::SocketAddr(local), poem::Addr::SocketAddr(remote)) = (local, remote) else {
        return None;
    };
    OPEN.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&(*local, *remote))
        .cloned()
}

/// A [`TcpAcceptor`] that applies [`ConnectionLimits`].
pub struct LimitedAcceptor {
    inner: TcpAcceptor,
    limits: ConnectionLimits,
    open: Arc<AtomicUsize>,
}

impl LimitedAcceptor {
    /// Wraps `inner`.
    pub fn new(inner: TcpAcceptor, limits: ConnectionLimits) -> Self {
        Self {
            inner,
            limits,
            open: Arc::new(AtomicUsize::new(0)),
        }
    }
}

impl std::fmt::Debug for LimitedAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitedAcceptor")
            .field("limits", &self.limits)
            .field("open", &self.open.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

/// A whole HTTP/1.1 problem answer that closes the connection.
fn closing_answer(code: Code, detail: &str, extra_headers: &str) -> String {
    let body = code.body(detail);
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\n{extra_headers}connection: close\r\n\
         cache-control: no-store\r\nx-content-type-options: nosniff\r\n\
         content-length: {}\r\n\r\n{body}",
        code.status(),
        code.title(),
        crate::problem::PROBLEM_JSON,
        body.len()
    )
}

/// What a connection over the cap is told.
static AT_CAP: LazyLock<String> = LazyLock::new(|| {
    closing_answer(
        Code::Overloaded,
        "Too many open connections; retry.",
        "retry-after: 1\r\n",
    )
});

/// hyper's own answers to a head it could not parse, and ours instead.
static UNPARSABLE: LazyLock<[(u16, String); 3]> = LazyLock::new(|| {
    let too_large = closing_answer(
        Code::HeadersTooLarge,
        "The request's head has more than 100 header fields or exceeds its size limit.",
        "",
    );
    [
        (
            400,
            closing_answer(
                Code::BadRequest,
                "The request line or a header field could not be parsed.",
                "",
            ),
        ),
        (431, too_large.clone()),
        // A request line over 64 KiB: the head is too large.
        (414, too_large),
    ]
});

/// Our problem+json answer in place of `written`, when `written` is hyper's
/// automatic answer to an unparsable request: a whole head (`HTTP/1.x`,
/// status 400, 414 or 431, `content-length: 0`, nothing after the head).
/// Handlers never answer like that: every error the edge sends has a body.
fn automatic_answer(written: &[u8]) -> Option<&'static [u8]> {
    let head = std::str::from_utf8(written).ok()?;
    let rest = head
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| head.strip_prefix("HTTP/1.0 "))?;
    let status: u16 = rest.get(..3)?.parse().ok()?;
    let whole_head_without_body =
        head.ends_with("\r\n\r\n") && head.find("\r\n\r\n") == Some(head.len() - 4);
    if !whole_head_without_body || !head.contains("\r\ncontent-length: 0\r\n") {
        return None;
    }
    UNPARSABLE
        .iter()
        .find(|(s, _)| *s == status)
        .map(|(_, answer)| answer.as_bytes())
}

/// Reads the request's head (a client may not read an answer it has not
/// finished asking for), answers [`AT_CAP`] and closes, within a second.
async fn refuse(mut io: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut head = Vec::new();
        let mut buf = [0u8; 2048];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 32 * 1024 {
            let n = io.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        io.write_all(AT_CAP.as_bytes()).await?;
        io.shutdown().await
    })
    .await;
}

impl Acceptor for LimitedAcceptor {
    type Io = Limited<TcpStream>;

    fn local_addr(&self) -> Vec<LocalAddr> {
        self.inner.local_addr()
    }

    async fn accept(&mut self) -> io::Result<(Self::Io, LocalAddr, RemoteAddr, Scheme)> {
        loop {
            let (io, local, remote, scheme) = self.inner.accept().await?;
            let taken = self
                .open
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                    (n < self.limits.max_connections).then_some(n + 1)
                });
            if taken.is_err() {
                tokio::spawn(refuse(io));
                continue;
            }
            let key = match (&local.0, &remote.0) {
                (poem::Addr::SocketAddr(l), poem::Addr::SocketAddr(r)) => Some((*l, *r)),
                _ => None,
            };
            let presence = Presence::new();
            if let Some(key) = key {
                OPEN.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key, presence.clone());
            }
            let io = Limited {
                inner: io,
                key,
                presence,
                open: Arc::clone(&self.open),
                deadline_after: self.limits.request_deadline,
                deadline: Some(Box::pin(tokio::time::sleep(self.limits.request_deadline))),
                replacing: None,
            };
            return Ok((io, local, remote, scheme));
        }
    }
}

/// A connection under [`ConnectionLimits`].
pub struct Limited<T> {
    inner: T,
    key: Option<Key>,
    presence: Presence,
    open: Arc<AtomicUsize>,
    deadline_after: Duration,
    /// Armed from a request's first byte until its answer's first byte.
    deadline: Option<Pin<Box<Sleep>>>,
    /// An [`automatic_answer`] being written in place of hyper's: ours, how
    /// much of it is written, and the length of hyper's to report.
    replacing: Option<(&'static [u8], usize, usize)>,
}

impl<T> std::fmt::Debug for Limited<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limited")
            .field("key", &self.key)
            .field("gone", &self.presence.is_gone())
            .finish_non_exhaustive()
    }
}

impl<T> Drop for Limited<T> {
    fn drop(&mut self) {
        self.presence.mark_gone();
        if let Some(key) = self.key {
            OPEN.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&key);
        }
        self.open.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Limited<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before => {
                // End of stream: the peer closed its side.
                this.presence.mark_gone();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) => {
                if this.deadline.is_none() {
                    this.deadline = Some(Box::pin(tokio::time::sleep(this.deadline_after)));
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => {
                this.presence.mark_gone();
                Poll::Ready(Err(e))
            }
            Poll::Pending => {
                let expired = this
                    .deadline
                    .as_mut()
                    .is_some_and(|deadline| deadline.as_mut().poll(cx).is_ready());
                if expired {
                    this.presence.mark_gone();
                    Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the request did not arrive and get answered in time",
                    )))
                } else {
                    Poll::Pending
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> Limited<T> {
    /// Writes the rest of [`Self::replacing`]; once all of it is written,
    /// reports hyper's answer as written.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        while let Some((ours, done, theirs)) = self.replacing.as_mut() {
            if *done == ours.len() {
                let theirs = *theirs;
                self.replacing = None;
                self.deadline = None;
                return Poll::Ready(Ok(theirs));
            }
            match std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, &ours[*done..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => *done += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Ready(Ok(0))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Limited<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none()
            && let Some(ours) = automatic_answer(buf)
        {
            this.replacing = Some((ours, 0, buf.len()));
        }
        if this.replacing.is_some() {
            return this.poll_replacement(cx);
        }
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.deadline = None;
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none()
            && let [first, rest @ ..] = bufs
            && rest.iter().all(|b| b.is_empty())
            && let Some(ours) = automatic_answer(first)
        {
            this.replacing = Some((ours, 0, first.len()));
        }
        if this.replacing.is_some() {
            return this.poll_replacement(cx);
        }
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(written, Poll::Ready(Ok(n)) if n > 0) {
            this.deadline = None;
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_other_descriptors() {
        assert_eq!(ConnectionLimits::cap_for(Some(1024)), 832);
        assert_eq!(ConnectionLimits::cap_for(Some(20_000)), 17_436);
        assert_eq!(ConnectionLimits::cap_for(Some(10)), 16);
    }

    #[test]
    fn the_refusal_is_a_complete_problem_answer() {
        let (head, body) = AT_CAP.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains(&format!("content-length: {}", body.len())),
            "{head}"
        );
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["code"], "overloaded");
        assert_eq!(problem["status"], 503);
    }

    #[test]
    fn only_hypers_bodiless_refusals_are_replaced() {
        let hyper = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                      content-length: 0\r\ndate: Mon, 07 Dec 2026 04:32:19 GMT\r\n\r\n";
        let ours = std::str::from_utf8(automatic_answer(hyper).unwrap()).unwrap();
        assert!(ours.starts_with("HTTP/1.1 431 "), "{ours}");
        assert!(ours.contains(r#""code":"headers_too_large""#), "{ours}");
        let bad = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n";
        assert!(
            std::str::from_utf8(automatic_answer(bad).unwrap())
                .unwrap()
                .contains("bad_request")
        );
        // A handler's answer with a body, an answer split over writes, another
        // status: passed through.
        for passed in [
            &b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}"[..],
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            b"{\"status\":400}",
        ] {
            assert!(automatic_answer(passed).is_none(), "{passed:?}");
        }
    }
}
