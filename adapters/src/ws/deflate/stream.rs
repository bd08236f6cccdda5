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
//! Until the handshake is done both directions pass untouched. The frame
//! parser then starts on a frame boundary: tungstenite reads nothing past
//! the request (it refuses a request that arrives with bytes after it, and
//! reads no more until its answer is written), so the first byte read after
//! the handshake is the client's first frame. Without the extension the
//! stream stays a plain pass-through for the socket's whole life, and with
//! it an idle socket holds no buffers: the parser's state is a few words,
//! boxed only where compression was negotiated.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::frames::Codec;

/// Messages shorter than this go out uncompressed: on JSON this short,
/// DEFLATE without context saves a few bytes at best (see the benchmark).
pub const COMPRESS_FROM: usize = 256;

/// A TCP stream that, once [`Deflating::deflate_from_now`] says so, speaks
/// permessage-deflate underneath tungstenite.
#[derive(Debug)]
pub(crate) struct Deflating {
    io: TcpStream,
    /// `None`: everything passes (the handshake, or no extension).
    codec: Option<Box<Codec>>,
}

impl Deflating {
    pub(crate) fn new(io: TcpStream) -> Self {
        Self { io, codec: None }
    }

    /// The socket (for the close paths that end it below tungstenite).
    pub(crate) fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.io
    }

    /// After the handshake: the extension was negotiated, with this message
    /// limit (it stays off otherwise).
    pub(crate) fn deflate_from_now(&mut self, limit: usize) {
        self.codec = Some(Box::new(Codec::new(limit)));
    }
}

impl AsyncRead for Deflating {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match &mut this.codec {
            None => Pin::new(&mut this.io).poll_read(cx, buf),
            Some(codec) => codec.poll_read(&mut this.io, cx, buf),
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
        match &mut this.codec {
            None => Pin::new(&mut this.io).poll_write(cx, buf),
            Some(codec) => codec.poll_write(&mut this.io, cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(codec) = &mut this.codec {
            ready!(codec.out.poll_drain(&mut this.io, cx))?;
        }
        Pin::new(&mut this.io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(codec) = &mut this.codec {
            ready!(codec.out.poll_drain(&mut this.io, cx))?;
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}
