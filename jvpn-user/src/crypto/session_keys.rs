//! The keys of one session, derived from a finished handshake, and the direction each one serves.
//!
//! A session has three keys: the 128-bit header key (SipHash-2-4 key of the header tag, checked by
//! the XDP program) and one ChaCha20-Poly1305 key per direction. They are derived with HKDF over
//! HMAC-BLAKE2s (the same construction Noise uses internally):
//!
//! ```text
//! prk             = HKDF-Extract(salt = handshake hash h, ikm = k_c2g || k_g2c)
//! header_key      = HKDF-Expand(prk, "jvpn v1 header key", 16)
//! client->gateway = HKDF-Expand(prk, "jvpn v1 client to gateway", 32)
//! gateway->client = HKDF-Expand(prk, "jvpn v1 gateway to client", 32)
//! ```
//!
//! `k_c2g` and `k_g2c` are Noise's two split keys. They are not used directly because the header
//! key lives in a BPF map that any root process can dump and serves a different primitive: each key
//! comes out of the PRF under its own label, so knowing one says nothing about the others. Salting
//! with the handshake hash binds every key to the whole transcript, and the version in the labels
//! separates these keys from those of any later protocol version.

use blake2::Blake2s256;
use hkdf::SimpleHkdf;
use jvpn_common::abi::HEADER_KEY_LEN;
use jvpn_common::siphash::SipKey;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Length of a ChaCha20-Poly1305 key.
pub const AEAD_KEY_LEN: usize = 32;

const LABEL_HEADER: &[u8] = b"jvpn v1 header key";
const LABEL_CLIENT_TO_GATEWAY: &[u8] = b"jvpn v1 client to gateway";
const LABEL_GATEWAY_TO_CLIENT: &[u8] = b"jvpn v1 gateway to client";

/// Which way a message travels; it picks the AEAD key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the client, opened by the gateway.
    ClientToGateway,
    /// Sent by the gateway, opened by the client.
    GatewayToClient,
}

/// The secret keys of one session. Both ends derive the same keys from the same handshake.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct SessionKeys {
    header_key: [u8; HEADER_KEY_LEN],
    client_to_gateway: [u8; AEAD_KEY_LEN],
    gateway_to_client: [u8; AEAD_KEY_LEN],
}

impl SessionKeys {
    /// Length of [`SessionKeys::to_stored`]: the header key, then the client-to-gateway key, then
    /// the gateway-to-client key.
    pub const STORED_LEN: usize = HEADER_KEY_LEN + 2 * AEAD_KEY_LEN;

    /// Derives the keys from Noise's handshake hash and its two split keys (initiator to responder,
    /// then responder to initiator), as the module documentation describes.
    pub(crate) fn derive(
        handshake_hash: &[u8],
        initiator_to_responder: &[u8; AEAD_KEY_LEN],
        responder_to_initiator: &[u8; AEAD_KEY_LEN],
    ) -> Self {
        let mut ikm = Zeroizing::new([0u8; 2 * AEAD_KEY_LEN]);
        ikm[..AEAD_KEY_LEN].copy_from_slice(initiator_to_responder);
        ikm[AEAD_KEY_LEN..].copy_from_slice(responder_to_initiator);
        let hkdf = SimpleHkdf::<Blake2s256>::new(Some(handshake_hash), &ikm[..]);
        let mut keys = Self {
            header_key: [0; HEADER_KEY_LEN],
            client_to_gateway: [0; AEAD_KEY_LEN],
            gateway_to_client: [0; AEAD_KEY_LEN],
        };
        for (label, out) in [
            (LABEL_HEADER, &mut keys.header_key[..]),
            (LABEL_CLIENT_TO_GATEWAY, &mut keys.client_to_gateway[..]),
            (LABEL_GATEWAY_TO_CLIENT, &mut keys.gateway_to_client[..]),
        ] {
            hkdf.expand(label, out)
                .expect("HKDF-BLAKE2s expands up to 255 * 32 bytes; these are at most 32");
        }
        keys
    }

    /// The header key, as the XDP session map stores it.
    pub fn header_key(&self) -> &[u8; HEADER_KEY_LEN] {
        &self.header_key
    }

    /// The header key as SipHash consumes it.
    pub fn sip_key(&self) -> SipKey {
        SipKey::from_bytes(&self.header_key)
    }

    /// The AEAD key of one direction.
    pub fn aead_key(&self, direction: Direction) -> &[u8; AEAD_KEY_LEN] {
        match direction {
            Direction::ClientToGateway => &self.client_to_gateway,
            Direction::GatewayToClient => &self.gateway_to_client,
        }
    }

    /// The keys as bytes for the gateway's durable store, so sessions outlive a restart.
    pub fn to_stored(&self) -> Zeroizing<[u8; Self::STORED_LEN]> {
        let mut out = Zeroizing::new([0u8; Self::STORED_LEN]);
        out[..HEADER_KEY_LEN].copy_from_slice(&self.header_key);
        out[HEADER_KEY_LEN..HEADER_KEY_LEN + AEAD_KEY_LEN].copy_from_slice(&self.client_to_gateway);
        out[HEADER_KEY_LEN + AEAD_KEY_LEN..].copy_from_slice(&self.gateway_to_client);
        out
    }

    /// The keys from [`SessionKeys::to_stored`]'s bytes.
    pub fn from_stored(stored: &[u8; Self::STORED_LEN]) -> Self {
        let mut keys = Self {
            header_key: [0; HEADER_KEY_LEN],
            client_to_gateway: [0; AEAD_KEY_LEN],
            gateway_to_client: [0; AEAD_KEY_LEN],
        };
        keys.header_key.copy_from_slice(&stored[..HEADER_KEY_LEN]);
        keys.client_to_gateway
            .copy_from_slice(&stored[HEADER_KEY_LEN..HEADER_KEY_LEN + AEAD_KEY_LEN]);
        keys.gateway_to_client
            .copy_from_slice(&stored[HEADER_KEY_LEN + AEAD_KEY_LEN..]);
        keys
    }
}

impl PartialEq for SessionKeys {
    /// Constant-time comparison of all three keys.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (self.to_stored(), other.to_stored());
        a.iter()
            .zip(b.iter())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
    }
}
impl Eq for SessionKeys {}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_bound_to_every_input() {
        let base = SessionKeys::derive(&[1; 32], &[2; 32], &[3; 32]);
        assert_ne!(
            &base.header_key[..],
            &base.client_to_gateway[..HEADER_KEY_LEN]
        );
        assert_ne!(base.client_to_gateway, base.gateway_to_client);
        assert_eq!(base, SessionKeys::derive(&[1; 32], &[2; 32], &[3; 32]));
        for other in [
            SessionKeys::derive(&[9; 32], &[2; 32], &[3; 32]),
            SessionKeys::derive(&[1; 32], &[9; 32], &[3; 32]),
            SessionKeys::derive(&[1; 32], &[2; 32], &[9; 32]),
            SessionKeys::derive(&[1; 32], &[3; 32], &[2; 32]),
        ] {
            assert_ne!(other.header_key, base.header_key);
            assert_ne!(other.client_to_gateway, base.client_to_gateway);
            assert_ne!(other.gateway_to_client, base.gateway_to_client);
        }
    }

    #[test]
    fn stored_form_round_trips() {
        let keys = SessionKeys::derive(&[4; 32], &[5; 32], &[6; 32]);
        let restored = SessionKeys::from_stored(&keys.to_stored());
        assert_eq!(restored, keys);
        assert_eq!(restored.header_key(), keys.header_key());
        assert_eq!(
            restored.aead_key(Direction::GatewayToClient),
            keys.aead_key(Direction::GatewayToClient)
        );
    }
}
