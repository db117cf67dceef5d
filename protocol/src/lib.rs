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

pub use endpoints::Endpoint;
pub use frame::{FrameDecoder, FrameError, encode_frame};
/// The bounded containers used in messages, re-exported so users need not match versions.
pub use heapless;
pub use messages::*;

/// Version of the message set. Bumped on any incompatible change; negotiated in [`Hello`].
pub const PROTOCOL_VERSION: u16 = 1;

/// Bytes of model data carried by one [`UploadChunk`]. Large enough that framing overhead stays
/// under 1 % (see `bench/run link`).
pub const MAX_CHUNK: usize = 4096;

/// Bytes of UTF-8 text in one [`TranscriptChunk`]. Longer utterances are split over several
/// chunks with increasing `part`.
pub const MAX_TEXT: usize = 480;

/// Result records carried by one [`Response::Records`] batch.
pub const MAX_RECORDS_PER_BATCH: usize = 8;

/// Largest postcard-encoded message (before CRC and COBS).
pub const MAX_PAYLOAD: usize = MAX_CHUNK + 256;

/// Largest frame on the wire: two delimiters + COBS overhead + payload + CRC-32.
pub const MAX_FRAME: usize = cobs::max_encoding_length(MAX_PAYLOAD + frame::CRC_LEN) + 2;
