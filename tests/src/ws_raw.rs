//! A WebSocket client that writes and reads frames byte by byte, for what
//! tungstenite's client cannot do: permessage-deflate (RSV1, compressed
//! payloads) and the malformed frames RFC 7692 says a server must refuse.
//! Compression is flate2's, not the server's code.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

/// Opcodes (RFC 6455 §5.2).
pub const CONTINUATION: u8 = 0x0;
/// A text frame.
pub const TEXT: u8 = 0x1;
/// A close frame.
pub const CLOSE: u8 = 0x8;
/// A ping.
pub const PING: u8 = 0x9;
/// A pong.
pub const PONG: u8 = 0xA;

/// The sync-flush tail a sender drops (RFC 7692 §7.2.1).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// One frame from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// FIN.
    pub fin: bool,
    /// RSV1: the message is compressed.
    pub rsv1: bool,
    /// The opcode.
    pub opcode: u8,
    /// The payload as sent (still compressed when `rsv1`).
    pub payload: Vec<u8>,
}

/// A raw client over one TCP connection.
#[derive(Debug)]
pub struct RawWs {
    tcp: TcpStream,
    buf: Vec<u8>,
    /// The server's `Sec-WebSocket-Extensions` answer, if any.
    pub extensions: Option<String>,
    /// Bytes of frames received so far (headers included).
    pub wire_bytes_in: usize,
}

impl RawWs {
    /// Upgrades `GET path` on `addr`, offering `offer` as
    /// `Sec-WebSocket-Extensions` when given; fails unless the answer is 101.
    ///
    /// # Errors
    /// Connection failures, a refusal, or an answer that is not HTTP.
    pub async fn connect(addr: SocketAddr, path: &str, offer: Option<&str>) -> Result<Self> {
        let mut tcp = TcpStream::connect(addr).await?;
        let offer = offer
            .map(|o| format!("Sec-WebSocket-Extensions: {o}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n{offer}\r\n"
        );
        tcp.write_all(request.as_bytes()).await?;
        let mut buf = Vec::new();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0_u8; 1024];
            let n = timeout(Duration::from_secs(5), tcp.read(&mut chunk))
                .await
                .context("waiting for the handshake's answer")??;
            ensure!(n > 0, "closed during the handshake");
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        ensure!(head.starts_with("HTTP/1.1 101"), "refused: {head}");
        let extensions = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-extensions")
                .then(|| value.trim().to_owned())
        });
        Ok(Self {
            tcp,
            buf: buf[end..].to_vec(),
            extensions,
            wire_bytes_in: 0,
        })
    }

    /// Sends one frame, masked as a client's must be.
    ///
    /// # Errors
    /// The socket failed.
    pub async fn send_frame(
        &mut self,
        fin: bool,
        rsv1: bool,
        opcode: u8,
        payload: &[u8],
    ) -> Result<()> {
        self.send_bytes(&frame(fin, rsv1, opcode, payload)).await
    }

    /// Sends bytes as they are (a frame cut anywhere, with [`frame`]).
    ///
    /// # Errors
    /// The socket failed.
    pub async fn send_bytes(&mut self, bytes: &[u8]) -> Result<()> {
        self.tcp.write_all(bytes).await?;
        Ok(())
    }

    /// Sends `text` as one compressed text message.
    ///
    /// # Errors
    /// The socket failed.
    pub async fn send_compressed(&mut self, text: &str) -> Result<()> {
        let payload = compress(text.as_bytes());
        self.send_frame(true, true, TEXT, &payload).await
    }

    /// The next frame.
    ///
    /// # Errors
    /// Nothing within `within`, or the connection ended.
    pub async fn recv_frame(&mut self, within: Duration) -> Result<Frame> {
        timeout(within, self.read_frame())
            .await
            .context("no frame in time")?
    }

    async fn read_frame(&mut self) -> Result<Frame> {
        loop {
            if let Some((frame, used)) = parse(&self.buf)? {
                self.buf.drain(..used);
                self.wire_bytes_in += used;
                return Ok(frame);
            }
            let mut chunk = [0_u8; 8192];
            let n = self.tcp.read(&mut chunk).await?;
            if n == 0 {
                bail!("the connection ended");
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// The next text message (inflated if compressed) and whether it came
    /// compressed; pings and pongs are skipped.
    ///
    /// # Errors
    /// A close, a fragment (the server sends whole messages), or a timeout.
    pub async fn recv_text(&mut self, within: Duration) -> Result<(String, bool)> {
        loop {
            let frame = self.recv_frame(within).await?;
            match frame.opcode {
                PING | PONG => {}
                TEXT => {
                    ensure!(frame.fin, "a fragment");
                    let payload = if frame.rsv1 {
                        inflate(&frame.payload)?
                    } else {
                        frame.payload
                    };
                    return Ok((String::from_utf8(payload)?, frame.rsv1));
                }
                other => bail!("expected text, got opcode {other} {:?}", frame.payload),
            }
        }
    }

    /// The code of the server's close frame, skipping anything before it.
    ///
    /// # Errors
    /// No close frame within `within`.
    pub async fn expect_close(&mut self, within: Duration) -> Result<u16> {
        loop {
            let frame = self.recv_frame(within).await?;
            if frame.opcode == CLOSE {
                ensure!(frame.payload.len() >= 2, "a close without a code");
                return Ok(u16::from_be_bytes([frame.payload[0], frame.payload[1]]));
            }
        }
    }
}

/// A server frame (unmasked) at the start of `buf`, and its length.
fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>> {
    if buf.len() < 2 {
        return Ok(None);
    }
    ensure!(buf[1] & 0x80 == 0, "a masked server frame");
    let (len, start) = match buf[1] & 0x7f {
        126 if buf.len() >= 4 => (usize::from(u16::from_be_bytes([buf[2], buf[3]])), 4),
        127 if buf.len() >= 10 => {
            let bytes: [u8; 8] = buf[2..10].try_into()?;
            (usize::try_from(u64::from_be_bytes(bytes))?, 10)
        }
        126 | 127 => return Ok(None),
        n => (usize::from(n), 2),
    };
    if buf.len() < start + len {
        return Ok(None);
    }
    let frame = Frame {
        fin: buf[0] & 0x80 != 0,
        rsv1: buf[0] & 0x40 != 0,
        opcode: buf[0] & 0x0f,
        payload: buf[start..start + len].to_vec(),
    };
    Ok(Some((frame, start + len)))
}

/// One client frame's bytes, masked: FIN, RSV1, opcode, payload.
#[must_use]
pub fn frame(fin: bool, rsv1: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode];
    let len = payload.len();
    if let Ok(short) = u8::try_from(len)
        && short < 126
    {
        frame.push(0x80 | short);
    } else if let Ok(len) = u16::try_from(len) {
        frame.push(0x80 | 126);
        frame.extend_from_slice(&len.to_be_bytes());
    } else {
        frame.push(0x80 | 127);
        frame.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Raw DEFLATE of `data` with a sync flush, the tail dropped, fresh context.
///
/// # Panics
/// Never for inputs of test size.
#[must_use]
pub fn compress(data: &[u8]) -> Vec<u8> {
    compress_with(data, Compression::default())
}

/// [`compress`] at `level`.
///
/// # Panics
/// Never for inputs of test size.
#[must_use]
pub fn compress_with(data: &[u8], level: Compression) -> Vec<u8> {
    let mut compress = Compress::new(level, false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    compress
        .compress_vec(data, &mut out, FlushCompress::Sync)
        .expect("deflate");
    assert_eq!(compress.total_in(), data.len() as u64, "output room");
    assert!(out.ends_with(&TAIL));
    out.truncate(out.len() - TAIL.len());
    out
}

/// Inflates a compressed message's payload (its tail restored).
///
/// # Errors
/// Invalid DEFLATE data.
pub fn inflate(payload: &[u8]) -> Result<Vec<u8>> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&TAIL);
    let mut decompress = Decompress::new(false);
    let mut out = Vec::with_capacity(256 * 1024);
    decompress.decompress_vec(&input, &mut out, FlushDecompress::Sync)?;
    ensure!(decompress.total_in() == input.len() as u64, "output room");
    Ok(out)
}
