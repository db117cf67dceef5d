//! Proves that `protocol` builds without `std`: this crate is `#![no_std]`, defines its own
//! `#[panic_handler]` and is built as a static library with `panic = "abort"`. If anything in
//! `protocol`'s dependency tree pulls in `std`, the build fails with a duplicate `panic_impl`
//! lang item (E0152). `.ci/run` builds it with
//!
//! ```sh
//! cargo build --release --manifest-path nostd-check/Cargo.toml
//! ```
#![no_std]

use protocol::{FrameDecoder, HostFrame, MAX_FRAME, Request, encode_frame};

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}

/// Encodes a frame and decodes it back; 0 on success. Exported so the code is really compiled
/// and kept, not optimised away.
#[unsafe(no_mangle)]
pub extern "C" fn nostd_check_round_trip(nonce: u32) -> i32 {
    let mut buf = [0u8; MAX_FRAME];
    let frame = HostFrame { id: 1, req: Request::Ping(nonce) };
    let Ok(n) = encode_frame(&frame, &mut buf) else {
        return 1;
    };
    let mut dec = FrameDecoder::new();
    match dec.feed::<HostFrame>(&buf[..n]).frame {
        Some(Ok(back)) if back == frame => 0,
        _ => 2,
    }
}
