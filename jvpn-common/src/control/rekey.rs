//! The bodies of REKEY_INIT and REKEY_ACK: one round trip of `Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`
//! carried inside messages sealed under the session's current keys (docs/rekey.md).
//!
//! ```text
//! REKEY_INIT (56), client to gateway         REKEY_ACK (56), gateway to client
//!  0 acked_version (8)                        0 new_version (8)
//!  8 Noise message 1 (48): e (32),            8 Noise message 2 (48): e (32),
//!    empty payload's tag (16)                   empty payload's tag (16)
//! ```
//!
//! Both are AEAD-sealed after the header like every control body, so a rekey message is
//! authenticated twice: by the session's current keys (the seal) and by the pre-shared key of the
//! Noise pattern, which both ends derive from those keys. All integers are big-endian.

use super::{Body, BodyError, AEAD_TAG_LEN, DH_PUBLIC_LEN};
use crate::wire::{Be64, MessageType};
use bytemuck::{Pod, Zeroable};
use core::mem::size_of;

/// Length of each Noise message of the rekey: an ephemeral public key and the tag of an empty
/// payload.
pub const REKEY_NOISE_LEN: usize = DH_PUBLIC_LEN + AEAD_TAG_LEN;

/// REKEY_INIT: the client asks for new session keys, offering a fresh ephemeral key.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct RekeyInit {
    /// The client's acknowledged state_version; it equals the header's (both authenticated).
    pub acked_version: Be64,
    /// Noise message 1 (`psk, e`).
    pub noise: [u8; REKEY_NOISE_LEN],
}

impl Body for RekeyInit {
    const MESSAGE_TYPE: MessageType = MessageType::RekeyInit;
    fn check(&self) -> Result<(), BodyError> {
        Ok(())
    }
}

/// REKEY_ACK: the gateway committed the new keys at `new_version`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct RekeyAck {
    /// The session's state_version after the commit (the header carries the same).
    pub new_version: Be64,
    /// Noise message 2 (`e, ee`).
    pub noise: [u8; REKEY_NOISE_LEN],
}

impl Body for RekeyAck {
    const MESSAGE_TYPE: MessageType = MessageType::RekeyAck;
    fn check(&self) -> Result<(), BodyError> {
        Ok(())
    }
}

const _: () = assert!(size_of::<RekeyInit>() == 8 + REKEY_NOISE_LEN);
const _: () = assert!(size_of::<RekeyAck>() == 8 + REKEY_NOISE_LEN);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_documented_layout_and_refuse_other_lengths() {
        let init = RekeyInit {
            acked_version: Be64::new(7),
            noise: [9; REKEY_NOISE_LEN],
        };
        let bytes = init.as_body();
        assert_eq!(bytes.len(), 56);
        assert_eq!(&bytes[..8], &7u64.to_be_bytes());
        assert_eq!(&bytes[8..], &[9; REKEY_NOISE_LEN]);
        assert_eq!(RekeyInit::from_body(bytes), Ok(init));
        assert_eq!(
            RekeyAck::from_body(&bytes[..55]),
            Err(BodyError::WrongLength {
                expected: 56,
                got: 55
            })
        );
    }
}
