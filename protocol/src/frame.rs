//! Framing: `0x00 ‖ COBS(postcard(message) ‖ CRC-32/ISO-HDLC little-endian) ‖ 0x00`.
//!
//! COBS removes every zero byte from the body, so `0x00` marks frame boundaries unambiguously;
//! the CRC catches bit flips; postcard gives a compact, schema-checked body. The sender puts a
//! delimiter on both sides of a frame, so garbage or a truncated frame ahead of it is flushed as
//! its own (bad) frame and never merges into the good one.
//!
//! The accumulator is written here rather than taken from `postcard::accumulator` because we
//! need the CRC check between COBS decoding and deserialisation, and a typed report of which
//! stage failed (the link statistics show framing vs CRC errors separately).

use serde::{Serialize, de::DeserializeOwned};

use crate::{MAX_FRAME, MAX_PAYLOAD};

/// Bytes of CRC-32 after the postcard body.
pub const CRC_LEN: usize = 4;

/// Slice-by-16 tables (16 KiB of flash/ROM): several times faster than the byte-wise table.
const CRC: crc::Crc<u32, crc::Table<16>> = crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISO_HDLC);

/// Why a frame could not be encoded or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameError {
    /// More than [`MAX_FRAME`] bytes arrived without a delimiter; they were dropped.
    Overflow,
    /// The bytes between two delimiters are not valid COBS.
    Cobs,
    /// The frame is shorter than its CRC.
    Truncated,
    /// The CRC does not match: bits were corrupted on the way.
    Crc,
    /// CRC fine, but the body is not a valid message of the expected type.
    Decode,
    /// The message does not fit in [`MAX_PAYLOAD`] bytes, or `out` is too small.
    TooLarge,
}

impl core::fmt::Display for FrameError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            FrameError::Overflow => "frame longer than the maximum frame size",
            FrameError::Cobs => "invalid COBS framing",
            FrameError::Truncated => "truncated frame",
            FrameError::Crc => "CRC mismatch",
            FrameError::Decode => "frame body is not a valid message",
            FrameError::TooLarge => "message too large for one frame",
        })
    }
}

impl core::error::Error for FrameError {}

/// Encodes `msg` as one complete frame, delimiters included, into `out`; returns its length.
/// `out` of [`MAX_FRAME`] bytes always suffices for messages of this crate.
pub fn encode_frame<T: Serialize>(msg: &T, out: &mut [u8]) -> Result<usize, FrameError> {
    let mut body = [0u8; MAX_PAYLOAD + CRC_LEN];
    let n = postcard::to_slice(msg, &mut body[..MAX_PAYLOAD]).map_err(|_| FrameError::TooLarge)?.len();
    let crc = CRC.checksum(&body[..n]).to_le_bytes();
    body[n..n + CRC_LEN].copy_from_slice(&crc);
    let body = &body[..n + CRC_LEN];
    if out.len() < cobs::max_encoding_length(body.len()) + 2 {
        return Err(FrameError::TooLarge);
    }
    out[0] = 0;
    let m = cobs::try_encode(body, &mut out[1..]).map_err(|_| FrameError::TooLarge)?;
    out[1 + m] = 0;
    Ok(m + 2)
}

/// Collects bytes from a stream and yields one decoded message per frame.
///
/// Holds at most one frame ([`MAX_FRAME`] bytes); needs no allocator.
#[derive(Debug)]
pub struct FrameDecoder {
    buf: [u8; MAX_FRAME],
    len: usize,
    overflow: bool,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

/// What one call to [`FrameDecoder::feed`] produced.
#[derive(Debug)]
pub struct Fed<'a, T> {
    /// The frame completed by this call, if any.
    pub frame: Option<Result<T, FrameError>>,
    /// Input not yet consumed: feed it again.
    pub rest: &'a [u8],
}

impl FrameDecoder {
    /// A decoder with an empty buffer.
    pub const fn new() -> Self {
        FrameDecoder { buf: [0; MAX_FRAME], len: 0, overflow: false }
    }

    /// Bytes of a partial frame held.
    pub fn pending(&self) -> usize {
        self.len
    }

    /// Consumes `data` up to and including the first delimiter that ends a non-empty frame and
    /// returns that frame, decoded as `T`, with the unconsumed rest. Empty frames (two
    /// delimiters in a row) are skipped silently.
    pub fn feed<'a, T: DeserializeOwned>(&mut self, data: &'a [u8]) -> Fed<'a, T> {
        let mut rest = data;
        while !rest.is_empty() {
            let Some(end) = rest.iter().position(|&b| b == 0) else {
                self.append(rest);
                return Fed { frame: None, rest: &[] };
            };
            self.append(&rest[..end]);
            rest = &rest[end + 1..];
            // A delimiter.
            if self.overflow {
                self.reset();
                return Fed { frame: Some(Err(FrameError::Overflow)), rest };
            }
            if self.len == 0 {
                continue;
            }
            let frame = self.decode_current();
            self.reset();
            return Fed { frame: Some(frame), rest };
        }
        Fed { frame: None, rest: &[] }
    }

    /// Buffers non-delimiter bytes; past the buffer's end they are dropped and the frame is
    /// marked as overflowed.
    fn append(&mut self, bytes: &[u8]) {
        let room = self.buf.len() - self.len;
        if bytes.len() > room {
            self.overflow = true;
        }
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    fn reset(&mut self) {
        self.len = 0;
        self.overflow = false;
    }

    fn decode_current<T: DeserializeOwned>(&mut self) -> Result<T, FrameError> {
        let n = cobs::decode_in_place(&mut self.buf[..self.len]).map_err(|_| FrameError::Cobs)?;
        if n < CRC_LEN {
            return Err(FrameError::Truncated);
        }
        let (body, crc) = self.buf[..n].split_at(n - CRC_LEN);
        let expected = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if CRC.checksum(body) != expected {
            return Err(FrameError::Crc);
        }
        match postcard::take_from_bytes::<T>(body) {
            Ok((msg, [])) => Ok(msg),
            _ => Err(FrameError::Decode),
        }
    }
}
