//! # protocol — the interface-control crate of MIMML
//!
//! Everything that crosses the link between the device (`mimml-device`) and the host (`mimml`)
//! is declared here, in one small `no_std` crate that both sides depend on — the "ICD crate"
//! pattern of postcard-rpc.
//!
//! * [`messages`]: the typed message set. The host sends [`HostFrame`]s (a request id and a
//!   [`Request`]); the device answers each with a [`DeviceFrame`] carrying the same id and a
//!   [`Response`].
//! * [`endpoints`]: the contract — which response answers which request, one type per
//!   endpoint implementing [`Endpoint`], so a client is typed without matching variants by hand.
//! * [`signed`]: the byte layouts a host signs to prove its key ([`Auth`], [`PairConfirm`]),
//!   built by the host and rebuilt by the device from the same functions.
//! * [`frame`]: the wire format. A frame is `0x00 ‖ COBS(postcard(message) ‖ CRC-32) ‖ 0x00`.
//!   The leading delimiter flushes whatever garbage preceded the frame, so a receiver
//!   resynchronises at the very next frame after line noise or a truncated frame.
//!
//! ## Invariants
//! * `protocol` never allocates and never depends on `std` (CI builds it into a `no_std`,
//!   `no_main` binary that fails to link if anything pulls `std` in).
//! * Every message fits in [`MAX_PAYLOAD`] bytes; the tests encode the largest instance of
//!   every variant to prove it.
//! * The decoder never panics on any byte stream (property-tested) and reports, then skips, a
//!   bad frame; the next good frame decodes.
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod endpoints;
pub mod frame;
pub mod messages;
pub mod signed;

pub use endpoints::Endpoint;
pub use frame::{FrameDecoder, FrameError, encode_frame};
/// The bounded containers used in messages, re-exported so users need not match versions.
pub use heapless;
pub use messages::*;

/// Text from the other side of the link (a host's name, a label) as it may be logged or shown on
/// a terminal: control characters (a newline forging a log line, terminal escape sequences) are
/// written as Rust escapes (`\n`, `\u{1b}`), everything else as it is.
#[derive(Debug, Clone, Copy)]
pub struct Escaped<'a>(pub &'a str);

impl core::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        use core::fmt::Write;
        for c in self.0.chars() {
            if c.is_control()
                || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
            {
                for e in c.escape_unicode() {
                    f.write_char(e)?;
                }
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

/// Version of the message set. Bumped on any incompatible change; negotiated in [`Hello`].
pub const PROTOCOL_VERSION: u16 = 5;

/// Bytes of model data carried by one [`UploadChunk`]. Large enough that framing overhead stays
/// under 1 % (see `bench/run link`).
pub const MAX_CHUNK: usize = 4096;

/// Bytes of a bundle manifest in [`UploadBegin`].
pub const MAX_MANIFEST: usize = 1024;

/// Bytes of UTF-8 text in one [`TranscriptChunk`]. Longer utterances are split over several
/// chunks with increasing `part`.
pub const MAX_TEXT: usize = 480;

/// Complete utterances one session takes (a long interview has a few hundred).
pub const MAX_UTTERANCES: u32 = 4096;

/// Bytes of text in one utterance, all parts together.
pub const MAX_UTTERANCE_BYTES: usize = 16 * 1024;

/// Parts of one utterance: enough for [`MAX_UTTERANCE_BYTES`] in chunks of [`MAX_TEXT`].
pub const MAX_PARTS: u16 = (MAX_UTTERANCE_BYTES / MAX_TEXT) as u16 + 1;

/// Bytes of transcript text one session takes, all utterances together.
pub const MAX_SESSION_TEXT_BYTES: usize = 1024 * 1024;

/// Latest session start a host may state (Unix ms, 2200-01-01): later is a broken clock.
pub const MAX_HOST_TIME_MS: u64 = 7_258_118_400_000;

/// Result records carried by one [`Response::Records`] batch.
pub const MAX_RECORDS_PER_BATCH: usize = 8;

/// Largest postcard-encoded message (before CRC and COBS).
pub const MAX_PAYLOAD: usize = MAX_CHUNK + 256;

/// Largest frame on the wire: two delimiters + COBS overhead + payload + CRC-32.
pub const MAX_FRAME: usize = cobs::max_encoding_length(MAX_PAYLOAD + frame::CRC_LEN) + 2;
