//! DEFLATE for whole messages (public for the `ws_deflate` benchmark), with one compressor and one decompressor per
//! thread (uWebSockets' "shared compressor"): both sides negotiate
//! `no_context_takeover`, so each message starts from a fresh state and no
//! socket keeps one.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// RFC 7692 §7.2.1: a sync flush ends with these four bytes; the sender
/// drops them and the receiver appends them before inflating.
pub const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Compression level: the fastest. Our messages are short JSON; a higher
/// level buys a few per cent of bytes for several times the CPU (see the
/// `ws_deflate` benchmark).
const LEVEL: Compression = Compression::fast();

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// It would pass the message limit (inflation stopped there).
    TooBig,
    /// Not valid DEFLATE data.
    Invalid,
}

thread_local! {
    static DEFLATER: RefCell<Option<Compress>> = const { RefCell::new(None) };
    static INFLATER: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Compresses `payload` (one whole message) without the sync-flush tail;
/// `None` when that would not make it smaller.
pub fn deflate(payload: &[u8]) -> Option<Vec<u8>> {
    DEFLATER.with(|cell| {
        let mut cell = cell.borrow_mut();
        let compress = cell.get_or_insert_with(|| Compress::new(LEVEL, false));
        compress.reset();
        // Room for the payload's size plus the tail: anything longer is no gain.
        let mut out = Vec::with_capacity(payload.len() + TAIL.len());
        loop {
            let consumed = usize::try_from(compress.total_in()).ok()?;
            compress
                .compress_vec(&payload[consumed..], &mut out, FlushCompress::Sync)
                .ok()?;
            let done = compress.total_in() == payload.len() as u64;
            // With every byte in and room left, the sync flush is complete.
            if done && out.len() < out.capacity() {
                break;
            }
            if out.len() == out.capacity() {
                return None;
            }
        }
        if !out.ends_with(&TAIL) {
            return None;
        }
        out.truncate(out.len() - TAIL.len());
        (out.len() < payload.len()).then_some(out)
    })
}

/// Inflates one message's compressed payload, its frames' payloads joined
/// and [`TAIL`] appended, into at most `limit` bytes: inflation stops the
/// moment the output would pass `limit`, so a bomb costs `limit + 1` bytes
/// of output, never what it would inflate to.
///
/// # Errors
/// [`InflateError`]: past `limit`, or not DEFLATE.
pub fn inflate(compressed: &[u8], limit: usize) -> Result<Vec<u8>, InflateError> {
    INFLATER.with(|cell| {
        let mut cell = cell.borrow_mut();
        let decompress = cell.get_or_insert_with(|| Decompress::new(false));
        decompress.reset(false);
        let mut out = Vec::with_capacity(limit.min(compressed.len().saturating_mul(4)) + 1);
        loop {
            if out.len() == out.capacity() {
                if out.len() > limit {
                    return Err(InflateError::TooBig);
                }
                // Grow, but never past limit + 1.
                let more = out.len().max(1024).min(limit + 1 - out.len());
                out.reserve_exact(more);
            }
            let consumed =
                usize::try_from(decompress.total_in()).map_err(|_| InflateError::Invalid)?;
            let before = out.len();
            let status = decompress
                .decompress_vec(&compressed[consumed..], &mut out, FlushDecompress::Sync)
                .map_err(|_| InflateError::Invalid)?;
            if out.len() > limit {
                return Err(InflateError::TooBig);
            }
            let all_in = decompress.total_in() == compressed.len() as u64;
            match status {
                // A final block ends the stream: what follows it is ignored.
                Status::StreamEnd => return Ok(out),
                _ if all_in && out.len() < out.capacity() => return Ok(out),
                // No input taken and no output made with room to spare: stuck.
                _ if out.len() == before
                    && decompress.total_in() as usize == consumed
                    && out.len() < out.capacity() =>
                {
                    return Err(InflateError::Invalid);
                }
                _ => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut data = deflate(payload).expect("compressible");
        data.extend_from_slice(&TAIL);
        data
    }

    #[test]
    fn round_trips_and_shrinks_json() {
        let json = format!(
            r#"{{"type":"echo","payload":{{"items":[{}]}}}}"#,
            (0..400)
                .map(|i| format!(r#"{{"id":{i},"name":"item {i}"}}"#))
                .collect::<Vec<_>>()
                .join(",")
        );
        let compressed = framed(json.as_bytes());
        assert!(compressed.len() * 4 < json.len(), "{}", compressed.len());
        assert_eq!(
            inflate(&compressed, 64 * 1024).unwrap(),
            json.as_bytes(),
            "same bytes back"
        );
    }

    #[test]
    fn messages_that_do_not_shrink_stay_as_they_are() {
        // xorshift: bytes DEFLATE finds nothing in.
        let mut x = 0x9e37_79b9_u32;
        let random: Vec<u8> = (0..2000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x.to_le_bytes()[0]
            })
            .collect();
        assert_eq!(deflate(&random), None);
        assert_eq!(deflate(b"{}"), None);
    }

    /// RFC 7692 §7.2.3.1: "Hello" compressed without context takeover.
    #[test]
    fn inflates_the_rfc_example() {
        let hello = [
            0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0x00, 0xff, 0xff,
        ];
        assert_eq!(inflate(&hello, 100).unwrap(), b"Hello");
        // The same with a BFINAL block (§7.2.3.5 allows one).
        let final_block = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        let mut data = final_block.to_vec();
        data.extend_from_slice(&TAIL);
        assert_eq!(inflate(&data, 100).unwrap(), b"Hello");
    }

    /// 1 MiB of zeros at the best compression: about 1 KiB.
    pub(crate) fn bomb() -> Vec<u8> {
        let zeros = vec![0_u8; 1024 * 1024];
        let mut compress = Compress::new(Compression::best(), false);
        let mut out = Vec::with_capacity(4096);
        compress
            .compress_vec(&zeros, &mut out, FlushCompress::Sync)
            .unwrap();
        assert_eq!(compress.total_in(), zeros.len() as u64);
        out
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0_u8; 64 * 1024];
        let bomb = bomb();
        assert!(bomb.len() < 1100, "1 MiB of zeros in {} bytes", bomb.len());
        // Warm the thread's decompressor first: its 43 KB state is made
        // once per thread, not per message.
        let _ = inflate(&framed(b"warm up the decompressor: warm up"), 100);
        let (result, peak) = crate::system::alloc_meter::peak_during(|| inflate(&bomb, 64 * 1024));
        assert_eq!(result, Err(InflateError::TooBig));
        // The output stops at the limit: nothing near the bomb's 1 MiB.
        assert!(peak <= 64 * 1024 + 1024, "{peak} bytes at the peak");
        let (_, whole) = crate::system::alloc_meter::peak_during(|| inflate(&bomb, 2 << 20));
        assert!(whole > 1 << 20, "the meter sees a full inflation: {whole}");
        // Exactly at the limit is fine.
        let at_limit = framed(&zeros[..64 * 1024]);
        assert_eq!(inflate(&at_limit, 64 * 1024).unwrap().len(), 64 * 1024);
    }

    #[test]
    fn garbage_is_invalid() {
        // BTYPE 11 is reserved.
        assert_eq!(
            inflate(&[0xff, 0xff, 0xff, 0x00, 0x00, 0xff, 0xff], 1000),
            Err(InflateError::Invalid)
        );
        // A stored block whose length and its complement disagree.
        assert_eq!(
            inflate(&[0x00, 0x05, 0x00, 0x05, 0x00, 1, 2, 3, 4, 5], 1000),
            Err(InflateError::Invalid)
        );
    }
}
