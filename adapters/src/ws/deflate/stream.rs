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
//!
//! After the handshake the stream also knows when tungstenite holds nothing
//! of the connection ([`Deflating::at_rest`]): its last read found the
//! socket empty, every byte it was given ends a frame of a closed message,
//! and everything it wrote went out. Then the connection may hand the socket
//! back and drop tungstenite's state until the socket has something to say.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::frames::Codec;
use super::header::Boundary;

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
    /// The client's frames, followed once the handshake is done and when
    /// there is no codec (which follows them itself).
    boundary: Option<Boundary>,
    /// The last read found nothing to read.
    read_blocked: bool,
    /// The last write took all it was given.
    write_clean: bool,
}

impl Deflating {
    pub(crate) fn new(io: TcpStream) -> Self {
        Self {
            io,
            codec: None,
            boundary: None,
            read_blocked: false,
            write_clean: true,
        }
    }

    /// A socket handed back by [`Self::into_tcp`], between frames and with
    /// the extension on or not as it was (`Some(limit)`).
    pub(crate) fn resumed(io: TcpStream, deflate: Option<usize>) -> Self {
        let mut stream = Self::new(io);
        stream.after_handshake(deflate);
        stream
    }

    /// The socket itself; with [`Self::compressing`], all there is to keep
    /// when [`Self::at_rest`].
    pub(crate) fn into_tcp(self) -> TcpStream {
        self.io
    }

    /// Whether the extension is on.
    pub(crate) fn compressing(&self) -> bool {
        self.codec.is_some()
    }

    /// Whether tungstenite holds nothing of the connection (see the module):
    /// dropping it and starting afresh on the socket loses nothing.
    pub(crate) fn at_rest(&self) -> bool {
        let frames_closed = match (&self.codec, &self.boundary) {
            (Some(codec), _) => codec.at_rest(),
            (None, Some(boundary)) => boundary.at_rest(),
            (None, None) => false,
        };
        frames_closed && self.read_blocked && self.write_clean
    }

    /// The socket (for the close paths that end it below tungstenite).
    pub(crate) fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.io
    }

    /// The handshake is done: frames from here on, compressed with this
    /// message limit if the extension was negotiated (`Some`).
    pub(crate) fn after_handshake(&mut self, deflate: Option<usize>) {
        // tungstenite holds nothing of the client's yet: it refuses a
        // request with bytes after it, and a fresh one on a parked socket
        // has read nothing.
        self.read_blocked = true;
        match deflate {
            Some(limit) => self.codec = Some(Box::new(Codec::new(limit))),
            None => self.boundary = Some(Boundary::default()),
        }
    }
}

impl AsyncRead for Deflating {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = match &mut this.codec {
            None => {
                let before = buf.filled().len();
                let polled = Pin::new(&mut this.io).poll_read(cx, buf);
                if let (Poll::Ready(Ok(())), Some(boundary)) = (&polled, &mut this.boundary) {
                    boundary.follow(&buf.filled()[before..]);
                }
                polled
            }
            Some(codec) => codec.poll_read(&mut this.io, cx, buf),
        };
        this.read_blocked = polled.is_pending();
        polled
    }
}

impl AsyncWrite for Deflating {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = match &mut this.codec {
            None => Pin::new(&mut this.io).poll_write(cx, buf),
            Some(codec) => codec.poll_write(&mut this.io, cx, buf),
        };
        this.write_clean = matches!(polled, Poll::Ready(Ok(n)) if n == buf.len());
        polled
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
