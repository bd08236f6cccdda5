//! Frame headers read off a byte stream that may cut them anywhere, and a
//! follower that only knows where the client's frames begin and end.
//!
//! A connection may hand its socket back and drop tungstenite's state while
//! idle (see `connection::parking`) only when tungstenite holds nothing of
//! the client's: no part of a frame and no part of a fragmented message.
//! tungstenite cannot say so, but the stream under it sees every byte it is
//! given: [`Boundary`] follows them (the compressing layer follows them
//! anyway, see [`super::frames`]).

use std::io::Cursor;

use tungstenite::protocol::frame::FrameHeader;
use tungstenite::protocol::frame::coding::{Data, OpCode};

/// The longest frame header (RFC 6455 §5.2, a masked client frame).
pub(super) const MAX_HEADER: usize = 14;

/// A frame header's bytes so far.
#[derive(Debug, Default)]
pub(super) struct HeaderReader {
    pub(super) bytes: [u8; MAX_HEADER],
    len: usize,
}

/// What [`HeaderReader::read`] found.
#[derive(Debug)]
pub(super) enum Read {
    /// The header goes on in the next bytes.
    More,
    /// A whole header of `size` bytes (the first of [`HeaderReader::bytes`])
    /// announcing `payload` bytes.
    Header {
        header: FrameHeader,
        payload: u64,
        size: usize,
    },
    /// Not a header we can parse (a reserved opcode): its first `have`
    /// bytes are in [`HeaderReader::bytes`].
    Bad { have: usize },
}

impl HeaderReader {
    /// Takes header bytes from the front of `bytes`, leaving the rest.
    pub(super) fn read(&mut self, bytes: &mut &[u8]) -> Read {
        let n = (MAX_HEADER - self.len).min(bytes.len());
        self.bytes[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        let have = self.len + n;
        let mut cursor = Cursor::new(&self.bytes[..have]);
        match FrameHeader::parse(&mut cursor) {
            Ok(None) => {
                self.len = have;
                *bytes = &bytes[n..];
                Read::More
            }
            Ok(Some((header, payload))) => {
                let size = usize::try_from(cursor.position()).unwrap_or(MAX_HEADER);
                *bytes = &bytes[size - self.len..];
                self.len = 0;
                Read::Header {
                    header,
                    payload,
                    size,
                }
            }
            Err(_) => {
                self.len = 0;
                *bytes = &bytes[n..];
                Read::Bad { have }
            }
        }
    }

    /// No header begun.
    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Whether a fragmented data message is open after a frame with `header`,
/// given whether one was before it (control frames change nothing).
pub(super) fn fragmenting(before: bool, header: &FrameHeader) -> bool {
    match header.opcode {
        OpCode::Data(Data::Text | Data::Binary) => !header.is_final,
        OpCode::Data(Data::Continue) if header.is_final => false,
        _ => before,
    }
}

/// Where the client's frames begin and end, for a socket without the
/// extension (the bytes pass untouched: this only watches them).
#[derive(Debug, Default)]
pub(super) struct Boundary {
    header: HeaderReader,
    /// Payload bytes of the current frame still to come.
    left: u64,
    /// A fragmented message is open.
    fragments: bool,
    /// A header we could not parse: where frames end is no longer known
    /// (tungstenite refuses it and the connection ends anyway).
    lost: bool,
}

impl Boundary {
    /// Follows bytes read from the client.
    pub(super) fn follow(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() && !self.lost {
            if self.left > 0 {
                let n = clamp(self.left, bytes.len());
                self.left -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            match self.header.read(&mut bytes) {
                Read::More => {}
                Read::Header {
                    header, payload, ..
                } => {
                    self.left = payload;
                    self.fragments = fragmenting(self.fragments, &header);
                }
                Read::Bad { .. } => self.lost = true,
            }
        }
    }

    /// Every byte so far ends a frame, and no message is open.
    pub(super) fn at_rest(&self) -> bool {
        !self.lost && self.header.is_empty() && self.left == 0 && !self.fragments
    }
}

/// `left` capped at `len`.
pub(super) fn clamp(left: u64, len: usize) -> usize {
    usize::try_from(left).map_or(len, |left| left.min(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn frame(opcode: OpCode, is_final: bool, payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader {
            is_final,
            opcode,
            mask: Some([1, 2, 3, 4]),
            ..FrameHeader::default()
        };
        let mut out = Vec::new();
        header.format(payload.len() as u64, &mut out).unwrap();
        out.extend_from_slice(payload);
        out
    }

    /// Follows `bytes` cut into pieces of `step`; whether at rest after each.
    fn follow_in_steps(bytes: &[u8], step: usize) -> (Boundary, Vec<bool>) {
        let mut boundary = Boundary::default();
        let rests = bytes
            .chunks(step)
            .map(|piece| {
                boundary.follow(piece);
                boundary.at_rest()
            })
            .collect();
        (boundary, rests)
    }

    #[test]
    fn rests_only_between_frames_however_the_bytes_are_cut() {
        let text = frame(OpCode::Data(Data::Text), true, &[b'x'; 300]);
        for step in [1, 2, 7, 13, 64, 1000] {
            let (boundary, rests) = follow_in_steps(&text, step);
            assert!(boundary.at_rest(), "step {step}");
            // Only the last piece ends the frame.
            assert!(rests[..rests.len() - 1].iter().all(|r| !r), "step {step}");
        }
    }

    #[test]
    fn a_fragmented_message_is_open_until_its_last_frame() {
        use tungstenite::protocol::frame::coding::Control;
        let mut boundary = Boundary::default();
        boundary.follow(&frame(OpCode::Data(Data::Text), false, b"he"));
        assert!(!boundary.at_rest());
        // A ping between fragments leaves the message open.
        boundary.follow(&frame(OpCode::Control(Control::Ping), true, b"p"));
        assert!(!boundary.at_rest());
        boundary.follow(&frame(OpCode::Data(Data::Continue), false, b"ll"));
        assert!(!boundary.at_rest());
        boundary.follow(&frame(OpCode::Data(Data::Continue), true, b"o"));
        assert!(boundary.at_rest());
    }

    #[test]
    fn an_unparsable_header_is_never_at_rest() {
        let mut boundary = Boundary::default();
        // Opcode 3 is reserved.
        boundary.follow(&[0x83, 0x80, 0, 0, 0, 0]);
        assert!(!boundary.at_rest());
        boundary.follow(&frame(OpCode::Data(Data::Text), true, b"x"));
        assert!(!boundary.at_rest());
    }
}
