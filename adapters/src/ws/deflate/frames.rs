//! The frame-following state of a socket with permessage-deflate on (see
//! [`super::stream`]): the client's frames read and compressed messages
//! inflated, the server's frames written and large messages compressed.

use std::io::{self, Cursor};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Data, OpCode};

use super::Failure;
use super::codec::{self, InflateError};
use super::header::{HeaderReader, MAX_HEADER, Read, clamp, fragmenting};
use super::stream::COMPRESS_FROM;

/// Bytes made here that wait for their turn (inflated frames for
/// tungstenite, compressed frames for the socket). Empty and unallocated
/// between messages.
#[derive(Debug, Default)]
pub(super) struct Queue {
    bytes: Vec<u8>,
    at: usize,
}

impl Queue {
    fn is_empty(&self) -> bool {
        self.at == self.bytes.len()
    }

    fn push(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    fn consumed(&mut self, n: usize) {
        self.at += n;
        if self.is_empty() {
            // Give the memory back: an idle socket keeps nothing.
            self.bytes = Vec::new();
            self.at = 0;
        }
    }

    /// Hands what fits of the queue to tungstenite.
    fn give(&mut self, buf: &mut ReadBuf<'_>) {
        let n = buf.remaining().min(self.bytes.len() - self.at);
        buf.put_slice(&self.bytes[self.at..self.at + n]);
        self.consumed(n);
    }

    /// Writes the queue to the socket.
    pub(super) fn poll_drain(
        &mut self,
        io: &mut TcpStream,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.is_empty() {
            let n = ready!(Pin::new(&mut *io).poll_write(cx, &self.bytes[self.at..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.consumed(n);
        }
        Poll::Ready(Ok(()))
    }
}

/// A compressed message being collected.
#[derive(Debug)]
struct Incoming {
    opcode: OpCode,
    data: Vec<u8>,
}

/// The frame the reader is in.
#[derive(Debug, Default)]
enum ReadAt {
    /// Between frames: the header's bytes so far.
    #[default]
    Header,
    /// A frame that passes: payload bytes left.
    Passing(u64),
    /// A frame of a compressed message: payload bytes left, the mask, how
    /// far into the payload, and whether it is the message's last frame.
    Taking {
        left: u64,
        mask: [u8; 4],
        offset: usize,
        last: bool,
    },
}

/// The frame the writer is in.
#[derive(Debug, Default)]
enum WriteAt {
    #[default]
    Header,
    /// A frame that passes straight from tungstenite's buffer: bytes left
    /// (its header included).
    Passing(u64),
    /// A message to compress, collected until whole (only when tungstenite's
    /// write split it).
    Collecting {
        header: FrameHeader,
        payload: Vec<u8>,
        len: usize,
    },
}

/// Both directions' state of a socket with the extension on.
#[derive(Debug)]
pub(super) struct Codec {
    limit: usize,
    // Reading.
    read_at: ReadAt,
    header: HeaderReader,
    incoming: Option<Incoming>,
    /// A plain message's fragments are passing (a compressed first frame
    /// now is an error).
    plain_fragments: bool,
    ready: Queue,
    failed: Option<Failure>,
    // Writing.
    write_at: WriteAt,
    out_fragments: bool,
    pub(super) out: Queue,
}

impl Codec {
    pub(super) fn new(limit: usize) -> Self {
        Self {
            limit,
            read_at: ReadAt::Header,
            header: HeaderReader::default(),
            incoming: None,
            plain_fragments: false,
            ready: Queue::default(),
            failed: None,
            write_at: WriteAt::Header,
            out_fragments: false,
            out: Queue::default(),
        }
    }

    /// Nothing of a frame or a message is held in either direction: what
    /// tungstenite was given ends its frames, and what it wrote is out.
    pub(super) fn at_rest(&self) -> bool {
        matches!(self.read_at, ReadAt::Header)
            && self.header.is_empty()
            && self.incoming.is_none()
            && !self.plain_fragments
            && self.ready.is_empty()
            && self.failed.is_none()
            && matches!(self.write_at, WriteAt::Header)
            && !self.out_fragments
            && self.out.is_empty()
    }

    /// The most compressed bytes a message may take: DEFLATE's stored
    /// blocks add 5 bytes per 64 KiB, so anything past this cannot inflate
    /// to within the limit honestly.
    fn compressed_limit(&self) -> usize {
        self.limit + self.limit / 8 + 64
    }

    pub(super) fn poll_read(
        &mut self,
        io: &mut TcpStream,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            if !self.ready.is_empty() {
                self.ready.give(buf);
                return Poll::Ready(Ok(()));
            }
            if let Some(failure) = self.failed {
                return Poll::Ready(Err(failure.into()));
            }
            let mut chunk = [0_u8; 2048];
            let room = buf.remaining().min(chunk.len());
            let mut read = ReadBuf::new(&mut chunk[..room]);
            ready!(Pin::new(&mut *io).poll_read(cx, &mut read))?;
            let read = read.filled();
            if read.is_empty() {
                // End of stream: tungstenite decides what an unfinished frame means.
                return Poll::Ready(Ok(()));
            }
            self.take(read);
        }
    }

    /// Follows `bytes` from the client; what tungstenite should see goes to
    /// `ready`.
    fn take(&mut self, mut bytes: &[u8]) {
        let cap = self.compressed_limit();
        while !bytes.is_empty() && self.failed.is_none() {
            match &mut self.read_at {
                ReadAt::Passing(left) => {
                    let n = clamp(*left, bytes.len());
                    self.ready.push(&bytes[..n]);
                    *left -= n as u64;
                    if *left == 0 {
                        self.read_at = ReadAt::Header;
                    }
                    bytes = &bytes[n..];
                }
                ReadAt::Taking {
                    left,
                    mask,
                    offset,
                    last,
                } => {
                    let n = clamp(*left, bytes.len());
                    let Some(incoming) = self.incoming.as_mut() else {
                        self.failed = Some(Failure::Protocol);
                        return;
                    };
                    if incoming.data.len() + n > cap {
                        self.failed = Some(Failure::TooBig);
                        return;
                    }
                    incoming.data.extend(
                        bytes[..n]
                            .iter()
                            .enumerate()
                            .map(|(i, b)| b ^ mask[(*offset + i) % 4]),
                    );
                    *offset += n;
                    *left -= n as u64;
                    bytes = &bytes[n..];
                    if *left == 0 {
                        let last = *last;
                        self.read_at = ReadAt::Header;
                        if last {
                            self.finish_message();
                        }
                    }
                }
                ReadAt::Header => match self.header.read(&mut bytes) {
                    Read::More => {}
                    Read::Header {
                        header,
                        payload,
                        size,
                    } => self.on_header(&header, payload, size),
                    // A reserved opcode: tungstenite refuses it.
                    Read::Bad { have } => {
                        self.ready.push(&self.header.bytes[..have]);
                        self.read_at = ReadAt::Passing(u64::MAX);
                    }
                },
            }
        }
    }

    /// A client frame's header (`size` bytes of [`Self::header`]).
    fn on_header(&mut self, header: &FrameHeader, len: u64, size: usize) {
        let first_data = matches!(header.opcode, OpCode::Data(Data::Text | Data::Binary));
        let continuation = header.opcode == OpCode::Data(Data::Continue);
        let compressed = if self.incoming.is_some() {
            // Inside a compressed message: control frames pass, a
            // continuation belongs to it, anything else is an error.
            if continuation {
                if header.rsv1 || header.rsv2 || header.rsv3 {
                    self.failed = Some(Failure::Protocol);
                    return;
                }
                true
            } else if first_data {
                self.failed = Some(Failure::Protocol);
                return;
            } else {
                false
            }
        } else if first_data && header.rsv1 {
            // RSV2 and RSV3 mean nothing in permessage-deflate: RFC 6455
            // §5.2 fails the connection (a plain frame's go to tungstenite,
            // which refuses them).
            if self.plain_fragments || header.rsv2 || header.rsv3 {
                self.failed = Some(Failure::Protocol);
                return;
            }
            self.incoming = Some(Incoming {
                opcode: header.opcode,
                data: Vec::new(),
            });
            true
        } else {
            self.plain_fragments = fragmenting(self.plain_fragments, header);
            false
        };
        if !compressed {
            self.ready.push(&self.header.bytes[..size]);
            self.read_at = if len == 0 {
                ReadAt::Header
            } else {
                ReadAt::Passing(len)
            };
            return;
        }
        // tungstenite refuses unmasked client frames; so do we.
        let Some(mask) = header.mask else {
            self.failed = Some(Failure::Protocol);
            return;
        };
        if usize::try_from(len).map_or(true, |len| len > self.compressed_limit()) {
            self.failed = Some(Failure::TooBig);
            return;
        }
        let offset = 0;
        if len == 0 {
            if header.is_final {
                self.finish_message();
            }
            return;
        }
        self.read_at = ReadAt::Taking {
            left: len,
            mask,
            offset,
            last: header.is_final,
        };
    }

    /// The compressed message is whole: inflate it and hand it on as one
    /// plain frame (masked with a zero key, as a client frame must be).
    fn finish_message(&mut self) {
        let Some(mut incoming) = self.incoming.take() else {
            return;
        };
        incoming.data.extend_from_slice(&codec::TAIL);
        match codec::inflate(&incoming.data, self.limit) {
            Ok(payload) => {
                let header = FrameHeader {
                    is_final: true,
                    rsv1: false,
                    rsv2: false,
                    rsv3: false,
                    opcode: incoming.opcode,
                    mask: Some([0; 4]),
                };
                push_frame(&mut self.ready.bytes, &header, &payload);
            }
            Err(InflateError::TooBig) => self.failed = Some(Failure::TooBig),
            Err(InflateError::Invalid) => self.failed = Some(Failure::Invalid),
        }
    }

    pub(super) fn poll_write(
        &mut self,
        io: &mut TcpStream,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.out.poll_drain(io, cx))?;
        match &mut self.write_at {
            WriteAt::Passing(left) => {
                let n = clamp(*left, buf.len());
                let written = ready!(Pin::new(&mut *io).poll_write(cx, &buf[..n]))?;
                *left -= written as u64;
                if *left == 0 {
                    self.write_at = WriteAt::Header;
                }
                Poll::Ready(Ok(written))
            }
            WriteAt::Collecting {
                header,
                payload,
                len,
            } => {
                let n = (*len - payload.len()).min(buf.len());
                payload.extend_from_slice(&buf[..n]);
                if payload.len() == *len {
                    let (header, payload) = (header.clone(), std::mem::take(payload));
                    self.write_at = WriteAt::Header;
                    self.queue_compressed(header, &payload);
                }
                Poll::Ready(Ok(n))
            }
            WriteAt::Header => {
                let mut cursor = Cursor::new(buf);
                let Ok(Some((header, len))) = FrameHeader::parse(&mut cursor) else {
                    // tungstenite writes whole frames, and a frame's end is
                    // never written apart from its start (see `Passing`), so
                    // this does not happen; if it did, from here on
                    // everything would pass as it is.
                    self.write_at = WriteAt::Passing(u64::MAX);
                    return Pin::new(&mut *io).poll_write(cx, buf);
                };
                let size = usize::try_from(cursor.position()).unwrap_or(MAX_HEADER);
                let whole = matches!(header.opcode, OpCode::Data(Data::Text | Data::Binary))
                    && header.is_final
                    && !self.out_fragments;
                self.out_fragments = fragmenting(self.out_fragments, &header);
                let payload_len = usize::try_from(len).unwrap_or(usize::MAX);
                if whole && payload_len >= COMPRESS_FROM {
                    if buf.len() >= size + payload_len {
                        self.queue_compressed(header, &buf[size..size + payload_len]);
                        // Sent in the background of the next write or flush.
                        let _ = self.out.poll_drain(io, cx)?;
                        return Poll::Ready(Ok(size + payload_len));
                    }
                    let payload = buf[size..].to_vec();
                    self.write_at = WriteAt::Collecting {
                        header,
                        payload,
                        len: payload_len,
                    };
                    return Poll::Ready(Ok(buf.len()));
                }
                let total = size as u64 + len;
                self.write_at = WriteAt::Passing(total);
                let n = clamp(total, buf.len());
                let written = ready!(Pin::new(&mut *io).poll_write(cx, &buf[..n]))?;
                if let WriteAt::Passing(left) = &mut self.write_at {
                    *left -= written as u64;
                    if *left == 0 {
                        self.write_at = WriteAt::Header;
                    }
                }
                Poll::Ready(Ok(written))
            }
        }
    }

    /// Queues `payload` as one frame, compressed when that is smaller.
    fn queue_compressed(&mut self, mut header: FrameHeader, payload: &[u8]) {
        match codec::deflate(payload) {
            Some(compressed) => {
                header.rsv1 = true;
                push_frame(&mut self.out.bytes, &header, &compressed);
            }
            None => push_frame(&mut self.out.bytes, &header, payload),
        }
    }
}

/// Appends a frame (`header`, then `payload` masked by its key if it has one).
fn push_frame(out: &mut Vec<u8>, header: &FrameHeader, payload: &[u8]) {
    out.reserve(MAX_HEADER + payload.len());
    // Writing to a Vec cannot fail.
    let _ = header.format(payload.len() as u64, out);
    match header.mask {
        Some(mask) if mask != [0; 4] => {
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        }
        _ => out.extend_from_slice(payload),
    }
}
