//! The byte stream under tungstenite that compresses and inflates.
//!
//! tungstenite rejects any frame with RSV1 set and cannot compress, so
//! [`Deflating`] sits between the socket and tungstenite and speaks RFC 7692
//! on the wire while tungstenite sees plain RFC 6455:
//!
//! - **Reading**, it follows the client's frames. A compressed message (RSV1
//!   on its first frame) is collected, inflated into at most the message
//!   limit, and handed on as one plain frame; every other frame passes as it
//!   came, byte for byte, and tungstenite judges it (an RSV1 on a control or a
//!   continuation frame included). Control frames between a compressed
//!   message's fragments pass at once.
//! - **Writing**, it follows tungstenite's frames: a whole text or binary
//!   message of at least [`COMPRESS_FROM`] bytes goes out compressed (RSV1)
//!   when that makes it smaller; everything else passes untouched.
//!
//! Until the handshake is done both directions pass untouched; the end of the
//! client's request is found as it passes, so the frame parser starts on the
//! first byte after it. A client that sends frames before the server's answer
//! (RFC 6455 §4.1 forbids it) gets no inflation. Without the extension the
//! stream stays a plain pass-through for the socket's whole life, and with it
//! an idle socket holds no buffers: the parser's state is a few words, boxed
//! only where compression was negotiated.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::frames::Codec;

/// Messages shorter than this go out uncompressed: on JSON this short,
/// DEFLATE without context saves a few bytes at best (see the benchmark).
pub const COMPRESS_FROM: usize = 256;

/// A TCP stream that, once [`Deflating::handshake_done`] says so, speaks
/// permessage-deflate underneath tungstenite.
#[derive(Debug)]
pub(crate) struct Deflating {
    io: TcpStream,
    mode: Mode,
}

#[derive(Debug)]
enum Mode {
    /// Reading the client's request: where it ends (`lf` says how much of
    /// a blank line has been seen).
    Request { lf: u8 },
    /// The request was read; `clean` while nothing followed it.
    Requested { clean: bool },
    /// Everything passes (no extension).
    Plain,
    /// The extension is on.
    Deflate(Box<Codec>),
}

impl Deflating {
    pub(crate) fn new(io: TcpStream) -> Self {
        Self {
            io,
            mode: Mode::Request { lf: 0 },
        }
    }

    /// The socket (for the close paths that end it below tungstenite).
    pub(crate) fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.io
    }

    /// After the handshake: the extension was negotiated (`Some` with the
    /// message limit) or not. Returns whether it is on; it is not when the
    /// client sent bytes before our answer.
    pub(crate) fn handshake_done(&mut self, deflate: Option<usize>) -> bool {
        let clean = matches!(self.mode, Mode::Requested { clean: true });
        self.mode = match deflate {
            Some(limit) if clean => Mode::Deflate(Box::new(Codec::new(limit))),
            _ => Mode::Plain,
        };
        matches!(self.mode, Mode::Deflate(_))
    }
}

/// Where the blank line ending an HTTP request (`\n\n` or `\n\r\n`, as
/// httparse accepts) ends in `bytes`, carrying `lf` over reads.
fn request_end(lf: &mut u8, bytes: &[u8]) -> Option<usize> {
    for (i, &b) in bytes.iter().enumerate() {
        *lf = match (*lf, b) {
            (1 | 2, b'\n') => return Some(i + 1),
            (_, b'\n') => 1,
            (1, b'\r') => 2,
            _ => 0,
        };
    }
    None
}

impl AsyncRead for Deflating {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.mode {
            Mode::Request { lf } => {
                let start = buf.filled().len();
                ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                let read = &buf.filled()[start..];
                if let Some(end) = request_end(lf, read) {
                    this.mode = Mode::Requested {
                        clean: end == read.len(),
                    };
                }
                Poll::Ready(Ok(()))
            }
            Mode::Requested { clean } => {
                let start = buf.filled().len();
                ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
                if buf.filled().len() > start {
                    *clean = false;
                }
                Poll::Ready(Ok(()))
            }
            Mode::Plain => Pin::new(&mut this.io).poll_read(cx, buf),
            Mode::Deflate(codec) => codec.poll_read(&mut this.io, cx, buf),
        }
    }
}

impl AsyncWrite for Deflating {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match &mut this.mode {
            Mode::Deflate(codec) => codec.poll_write(&mut this.io, cx, buf),
            _ => Pin::new(&mut this.io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Mode::Deflate(codec) = &mut this.mode {
            ready!(codec.out.poll_drain(&mut this.io, cx))?;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Mode::Deflate(codec) = &mut this.mode {
            ready!(codec.out.poll_drain(&mut this.io, cx))?;
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::request_end;

    #[test]
    fn finds_the_end_of_a_request() {
        let mut lf = 0;
        let request = b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
        assert_eq!(request_end(&mut lf, request), Some(request.len()));
        let mut lf = 0;
        assert_eq!(
            request_end(&mut lf, b"GET / HTTP/1.1\nHost: x\n\nabc"),
            Some(24)
        );
        // Split over reads.
        let mut lf = 0;
        assert_eq!(
            request_end(&mut lf, b"GET / HTTP/1.1\r\nHost: x\r\n\r"),
            None
        );
        assert_eq!(request_end(&mut lf, b"\n\x81"), Some(1));
        let mut lf = 0;
        assert_eq!(request_end(&mut lf, b"a\rb\r\nc\r\r\n"), None);
    }
}
