//! The REST listener's connections: how many may be open, how long a
//! request may take to arrive and be answered, and whether a request's
//! client is still there ([`crate::client_presence`]).
//!
//! - **Cap**: at most [`ConnectionLimits::max_connections`] open at once.
//!   At the cap, the connection idle the longest between requests (a
//!   kept-alive one whose answer is written) is closed to make room; when
//!   none is idle, the new one is answered `503 overloaded` (problem+json,
//!   `Retry-After: 1`) and closed, so the process never runs out of
//!   descriptors and a client at the cap learns why. (Security review 2,
//!   finding 3: 50 idle keep-alive sockets of one client kept every other
//!   client out for 55 s.)
//! - **Per address**: at most [`ConnectionLimits::max_per_address`] from one
//!   client address block (an IPv6 client by its /64), loopback and
//!   `TRUSTED_PROXIES` exempt ([`crate::net::address_cap`]): one more is
//!   answered `429 too_many_connections` and closed.
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;

use poem::http::uri::Scheme;
use poem::listener::{Acceptor, TcpAcceptor};
use poem::web::{LocalAddr, RemoteAddr};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::client_presence::Presence;
use crate::net::IpNet;
use crate::net::address_cap::{AddressCap, Slot};
use crate::problem::Code;

/// The listener's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Open connections at most.
    pub max_connections: usize,
    /// From a request's first byte to its answer's first byte.
    pub request_deadline: Duration,
    /// Open connections at most from one client address block.
    pub max_per_address: usize,
}

/// `API_MAX_CONNECTIONS_PER_ADDRESS`'s default: far above what a browser
/// (6 per origin) or a NAT of a few dozen people opens, far below the cap.
pub const DEFAULT_MAX_PER_ADDRESS: usize = 256;

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            max_connections: 10_000,
            request_deadline: Duration::from_secs(10),
            max_per_address: DEFAULT_MAX_PER_ADDRESS,
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

/// Milliseconds since the process's first connection: when a connection
/// went idle (0: it is busy).
fn now_ms() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    u64::try_from(START.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1
}

/// What the listener knows of one open connection.
#[derive(Debug, Default)]
struct Idle {
    /// When its last answer was flushed and no request byte came since
    /// ([`now_ms`]), or 0 while a request is arriving or being answered.
    since: AtomicU64,
    /// Closed to make room at the cap: its next read is the end of stream.
    shed: AtomicBool,
    waker: AtomicWaker,
}

/// The listener's open connections.
#[derive(Debug, Default)]
struct Registry {
    open: Mutex<HashMap<u64, Arc<Idle>>>,
    next: AtomicU64,
}

impl Registry {
    /// Admits a connection when fewer than `max` are open and not being
    /// shed, or when the longest-idle one can be shed to make room.
    fn admit(&self, max: usize) -> Option<(u64, Arc<Idle>)> {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let shedding = open
            .values()
            .filter(|c| c.shed.load(Ordering::SeqCst))
            .count();
        if open.len() - shedding >= max {
            let victim = open
                .values()
                .filter(|c| !c.shed.load(Ordering::SeqCst))
                .filter_map(|c| {
                    let since = c.since.load(Ordering::SeqCst);
                    (since != 0).then_some((since, c))
                })
                .min_by_key(|(since, _)| *since)
                .map(|(_, c)| c)?;
            victim.shed.store(true, Ordering::SeqCst);
            victim.waker.wake();
        }
        let id = self.next.fetch_add(1, Ordering::SeqCst);
        let idle = Arc::new(Idle::default());
        open.insert(id, Arc::clone(&idle));
        Some((id, idle))
    }

    fn remove(&self, id: u64) {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
    }
}

/// A [`TcpAcceptor`] that applies [`ConnectionLimits`].
pub struct LimitedAcceptor {
    inner: TcpAcceptor,
    limits: ConnectionLimits,
    registry: Arc<Registry>,
    per_address: AddressCap,
}

impl LimitedAcceptor {
    /// Wraps `inner`; connections from `trusted_proxies` (and loopback) are
    /// not bounded per address.
    pub fn new(inner: TcpAcceptor, limits: ConnectionLimits, trusted_proxies: Vec<IpNet>) -> Self {
        Self {
            inner,
            limits,
            registry: Arc::default(),
            per_address: AddressCap::new(limits.max_per_address, trusted_proxies),
        }
    }
}

impl std::fmt::Debug for LimitedAcceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LimitedAcceptor")
            .field("limits", &self.limits)
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

/// What a connection over its address's cap is told.
static AT_ADDRESS_CAP: LazyLock<String> = LazyLock::new(|| {
    closing_answer(
        Code::TooManyConnections,
        "Too many open connections from this address; retry.",
        "retry-after: 1\r\n",
    )
});

/// Reads the request's head (a client may not read an answer it has not
/// finished asking for), answers `answer` and closes, within a second.
async fn refuse(mut io: TcpStream, answer: &'static str) {
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
        io.write_all(answer.as_bytes()).await?;
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
            let address_slot = match &remote.0 {
                poem::Addr::SocketAddr(peer) => match self.per_address.take(peer.ip()) {
                    Some(slot) => slot,
                    None => {
                        tokio::spawn(refuse(io, &AT_ADDRESS_CAP));
                        continue;
                    }
                },
                _ => None,
            };
            let Some((id, idle)) = self.registry.admit(self.limits.max_connections) else {
                tokio::spawn(refuse(io, &AT_CAP));
                continue;
            };
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
                id,
                idle,
                registry: Arc::clone(&self.registry),
                _address_slot: address_slot,
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
    id: u64,
    idle: Arc<Idle>,
    registry: Arc<Registry>,
    /// The connection's slot of its address's cap, given back when dropped.
    _address_slot: Option<Slot>,
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
        self.registry.remove(self.id);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Limited<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        // Shed at the cap: the end of stream, which hyper takes for the
        // client closing an idle connection.
        this.idle.waker.register(cx.waker());
        if this.idle.shed.load(Ordering::SeqCst) {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() == before => {
                // End of stream: the peer closed its side.
                this.presence.mark_gone();
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Ok(())) => {
                this.idle.since.store(0, Ordering::SeqCst);
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

impl<T> Limited<T> {
    /// Part of an answer was written: the request deadline is met. The
    /// connection counts as idle once the answer is flushed ([`Self::flushed`]).
    fn answered(&mut self) {
        self.deadline = None;
    }

    /// Everything written is flushed: after an answer (no request begun
    /// since, so no deadline armed), the connection is idle from now until
    /// the next request's first byte.
    fn flushed(&mut self) {
        if self.deadline.is_none() && self.idle.since.load(Ordering::SeqCst) == 0 {
            self.idle.since.store(now_ms(), Ordering::SeqCst);
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
                self.answered();
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
            this.answered();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(flushed, Poll::Ready(Ok(()))) {
            self.flushed();
        }
        flushed
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
            this.answered();
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
