//! The byte layouts that hosts sign and devices verify: wire contract, built here by both sides.
//!
//! A host proves its key with an ed25519 signature over one of these messages; the device
//! rebuilds the same bytes and verifies. Each starts with a context string naming the purpose and
//! its version, so a signature made for one purpose never verifies for another. The device id is
//! ended by a zero byte, so no id is a prefix of another's message.
//!
//! | message          | bytes                                                               |
//! |------------------|---------------------------------------------------------------------|
//! | [`auth_message`] | [`AUTH_CONTEXT`] ‖ device id ‖ 0 ‖ challenge ‖ host key             |
//! | [`pair_message`] | [`PAIR_CONTEXT`] ‖ device id ‖ 0 ‖ challenge ‖ code (LE u32) ‖ host key |

use heapless::Vec;

use crate::messages::{AUTH_CONTEXT, PAIR_CONTEXT, PublicKey, ShortStr};

/// The longest signed message: the pairing one with a device id of [`ShortStr`]'s capacity.
pub const MAX_SIGNED: usize = 128;

/// A message to sign or verify, built without an allocator.
pub type SignedMessage = Vec<u8, MAX_SIGNED>;

/// What an [`Auth`](crate::Auth) signs: [`AUTH_CONTEXT`] ‖ device id ‖ 0 ‖ challenge ‖ host key.
pub fn auth_message(device_id: &ShortStr, challenge: &[u8; 32], host_key: &PublicKey) -> SignedMessage {
    build(&[AUTH_CONTEXT, device_id.as_bytes(), &[0], challenge, host_key])
}

/// What a [`PairConfirm`](crate::PairConfirm) signs: [`PAIR_CONTEXT`] ‖ device id ‖ 0 ‖ challenge
/// ‖ code (little-endian u32) ‖ host key.
pub fn pair_message(device_id: &ShortStr, challenge: &[u8; 32], code: u32, host_key: &PublicKey) -> SignedMessage {
    build(&[PAIR_CONTEXT, device_id.as_bytes(), &[0], challenge, &code.to_le_bytes(), host_key])
}

fn build(parts: &[&[u8]]) -> SignedMessage {
    let mut m = SignedMessage::new();
    for p in parts {
        // Cannot fail: the context strings, a `ShortStr` and the fixed-size fields together
        // stay under `MAX_SIGNED` (a test builds the longest of each).
        let _ = m.extend_from_slice(p);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn longest_id() -> ShortStr {
        let mut id = ShortStr::new();
        while id.push('x').is_ok() {}
        id
    }

    #[test]
    fn the_longest_messages_fit_whole() {
        let id = longest_id();
        let auth = auth_message(&id, &[1; 32], &[2; 32]);
        assert_eq!(auth.len(), AUTH_CONTEXT.len() + id.len() + 1 + 32 + 32);
        let pair = pair_message(&id, &[1; 32], 999_999, &[2; 32]);
        assert_eq!(pair.len(), PAIR_CONTEXT.len() + id.len() + 1 + 32 + 4 + 32);
        assert!(pair.len() <= MAX_SIGNED);
    }

    #[test]
    fn the_layout_is_the_documented_one() {
        let id = ShortStr::try_from("dev-1").expect("fits");
        let pair = pair_message(&id, &[7; 32], 0x0102_0304, &[9; 32]);
        let (context, rest) = pair.split_at(PAIR_CONTEXT.len());
        assert_eq!(context, PAIR_CONTEXT);
        assert_eq!(&rest[..6], b"dev-1\0");
        assert_eq!(&rest[6..38], &[7; 32]);
        assert_eq!(&rest[38..42], &[4, 3, 2, 1]);
        assert_eq!(&rest[42..], &[9; 32]);
        // A purpose's signature never verifies for the other: the contexts differ.
        assert_ne!(auth_message(&id, &[7; 32], &[9; 32])[..PAIR_CONTEXT.len()], pair[..PAIR_CONTEXT.len()]);
    }
}
