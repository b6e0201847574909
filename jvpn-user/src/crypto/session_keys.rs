//! The keys of one session, derived from a finished handshake, and the direction each one serves.
//!
//! A session has four keys, two per direction: a 128-bit header key (SipHash-2-4 key of the header
//! tag) and a ChaCha20-Poly1305 key. They are derived with HKDF over HMAC-BLAKE2s (the same
//! construction Noise uses internally):
//!
//! ```text
//! prk                        = HKDF-Extract(salt = handshake hash h, ikm = k_c2g || k_g2c)
//! header key client->gateway = HKDF-Expand(prk, "jvpn v1 header key client to gateway", 16)
//! header key gateway->client = HKDF-Expand(prk, "jvpn v1 header key gateway to client", 16)
//! client->gateway            = HKDF-Expand(prk, "jvpn v1 client to gateway", 32)
//! gateway->client            = HKDF-Expand(prk, "jvpn v1 gateway to client", 32)
//! ```
//!
//! The header keys differ per direction so that a message of one direction never carries a valid
//! tag in the other: the XDP session map holds only the client-to-gateway key, and a gateway
//! message reflected back to the gateway (DATA and KEEPALIVE travel both ways) fails the tag check
//! there instead of moving the client's replay window to the gateway's nonces.
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

const LABEL_HEADER_CLIENT_TO_GATEWAY: &[u8] = b"jvpn v1 header key client to gateway";
const LABEL_HEADER_GATEWAY_TO_CLIENT: &[u8] = b"jvpn v1 header key gateway to client";
const LABEL_CLIENT_TO_GATEWAY: &[u8] = b"jvpn v1 client to gateway";
const LABEL_GATEWAY_TO_CLIENT: &[u8] = b"jvpn v1 gateway to client";

/// Which way a message travels; it picks the header key and the AEAD key.
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
    header_client_to_gateway: [u8; HEADER_KEY_LEN],
    header_gateway_to_client: [u8; HEADER_KEY_LEN],
    client_to_gateway: [u8; AEAD_KEY_LEN],
    gateway_to_client: [u8; AEAD_KEY_LEN],
}

impl SessionKeys {
    /// Length of [`SessionKeys::to_stored`]: the client-to-gateway header key, the
    /// gateway-to-client header key, then the client-to-gateway and gateway-to-client AEAD keys.
    pub const STORED_LEN: usize = 2 * HEADER_KEY_LEN + 2 * AEAD_KEY_LEN;

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
        let mut keys = Self::zero();
        for (label, out) in [
            (
                LABEL_HEADER_CLIENT_TO_GATEWAY,
                &mut keys.header_client_to_gateway[..],
            ),
            (
                LABEL_HEADER_GATEWAY_TO_CLIENT,
                &mut keys.header_gateway_to_client[..],
            ),
            (LABEL_CLIENT_TO_GATEWAY, &mut keys.client_to_gateway[..]),
            (LABEL_GATEWAY_TO_CLIENT, &mut keys.gateway_to_client[..]),
        ] {
            hkdf.expand(label, out)
                .expect("HKDF-BLAKE2s expands up to 255 * 32 bytes; these are at most 32");
        }
        keys
    }

    /// These AEAD keys with the header keys of `other`: a rekey replaces the AEAD keys only
    /// (`crypto::rekey`).
    pub(crate) fn with_header_keys_of(mut self, other: &SessionKeys) -> Self {
        self.header_client_to_gateway = other.header_client_to_gateway;
        self.header_gateway_to_client = other.header_gateway_to_client;
        self
    }

    /// All-zero keys, for a constructor to fill in at once.
    fn zero() -> Self {
        Self {
            header_client_to_gateway: [0; HEADER_KEY_LEN],
            header_gateway_to_client: [0; HEADER_KEY_LEN],
            client_to_gateway: [0; AEAD_KEY_LEN],
            gateway_to_client: [0; AEAD_KEY_LEN],
        }
    }

    /// The header key of one direction. The XDP session map stores the client-to-gateway one
    /// only, so the dataplane never accepts a tag made for the client.
    pub fn header_key(&self, direction: Direction) -> &[u8; HEADER_KEY_LEN] {
        match direction {
            Direction::ClientToGateway => &self.header_client_to_gateway,
            Direction::GatewayToClient => &self.header_gateway_to_client,
        }
    }

    /// The header key of one direction as SipHash consumes it.
    pub fn sip_key(&self, direction: Direction) -> SipKey {
        SipKey::from_bytes(self.header_key(direction))
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
        let mut at = 0;
        for key in self.stored_parts() {
            out[at..at + key.len()].copy_from_slice(key);
            at += key.len();
        }
        out
    }

    /// The keys in their stored order.
    fn stored_parts(&self) -> [&[u8]; 4] {
        [
            &self.header_client_to_gateway,
            &self.header_gateway_to_client,
            &self.client_to_gateway,
            &self.gateway_to_client,
        ]
    }

    /// Whether `stored` ([`SessionKeys::to_stored`]'s bytes) holds exactly these keys, compared
    /// in constant time without building a second set of keys (the session table asks on every
    /// commit it installs, under its lock).
    pub fn matches_stored(&self, stored: &[u8; Self::STORED_LEN]) -> bool {
        let mut diff = 0u8;
        let mut at = 0;
        for key in self.stored_parts() {
            for (x, y) in key.iter().zip(&stored[at..at + key.len()]) {
                diff |= x ^ y;
            }
            at += key.len();
        }
        diff == 0
    }

    /// The keys from [`SessionKeys::to_stored`]'s bytes.
    pub fn from_stored(stored: &[u8; Self::STORED_LEN]) -> Self {
        let mut keys = Self::zero();
        let (header_c2g, rest) = stored.split_at(HEADER_KEY_LEN);
        let (header_g2c, rest) = rest.split_at(HEADER_KEY_LEN);
        let (c2g, g2c) = rest.split_at(AEAD_KEY_LEN);
        keys.header_client_to_gateway.copy_from_slice(header_c2g);
        keys.header_gateway_to_client.copy_from_slice(header_g2c);
        keys.client_to_gateway.copy_from_slice(c2g);
        keys.gateway_to_client.copy_from_slice(g2c);
        keys
    }
}

impl PartialEq for SessionKeys {
    /// Constant-time comparison of all four keys.
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

    /// The stored form matches its own keys and nothing that differs in any byte of any key.
    #[test]
    fn stored_keys_match_only_their_own_bytes() {
        let keys = SessionKeys::derive(&[1; 32], &[2; 32], &[3; 32]);
        let stored = keys.to_stored();
        assert!(keys.matches_stored(&stored));
        for at in [
            0,
            HEADER_KEY_LEN,
            2 * HEADER_KEY_LEN,
            SessionKeys::STORED_LEN - 1,
        ] {
            let mut other = *stored;
            other[at] ^= 1;
            assert!(!keys.matches_stored(&other), "byte {at} differs");
            assert_eq!(
                SessionKeys::from_stored(&other) == keys,
                keys.matches_stored(&other)
            );
        }
    }

    #[test]
    fn keys_are_distinct_and_bound_to_every_input() {
        let base = SessionKeys::derive(&[1; 32], &[2; 32], &[3; 32]);
        let parts = base.stored_parts();
        for (i, a) in parts.iter().enumerate() {
            for b in &parts[i + 1..] {
                assert_ne!(
                    a[..HEADER_KEY_LEN],
                    b[..HEADER_KEY_LEN],
                    "two keys are equal"
                );
            }
        }
        assert_eq!(base, SessionKeys::derive(&[1; 32], &[2; 32], &[3; 32]));
        for other in [
            SessionKeys::derive(&[9; 32], &[2; 32], &[3; 32]),
            SessionKeys::derive(&[1; 32], &[9; 32], &[3; 32]),
            SessionKeys::derive(&[1; 32], &[2; 32], &[9; 32]),
            SessionKeys::derive(&[1; 32], &[3; 32], &[2; 32]),
        ] {
            assert_ne!(
                other.header_client_to_gateway,
                base.header_client_to_gateway
            );
            assert_ne!(
                other.header_gateway_to_client,
                base.header_gateway_to_client
            );
            assert_ne!(other.client_to_gateway, base.client_to_gateway);
            assert_ne!(other.gateway_to_client, base.gateway_to_client);
        }
    }

    #[test]
    fn stored_form_round_trips() {
        let keys = SessionKeys::derive(&[4; 32], &[5; 32], &[6; 32]);
        let restored = SessionKeys::from_stored(&keys.to_stored());
        assert_eq!(restored, keys);
        for direction in [Direction::ClientToGateway, Direction::GatewayToClient] {
            assert_eq!(restored.header_key(direction), keys.header_key(direction));
        }
        assert_eq!(
            restored.aead_key(Direction::GatewayToClient),
            keys.aead_key(Direction::GatewayToClient)
        );
    }
}
