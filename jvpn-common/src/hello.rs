//! The HELLO's two MACs and the cookie, computed the same way by the client, the controller and
//! the XDP program (see [`crate::abi`] for the byte diagram).
//!
//! - mac1 is keyed by a key every client derives from the gateway's public key, so a scanner or a
//!   flood of random bytes is refused in XDP without any DH, while a client that knows the gateway
//!   can always compute it. It is a filter, not an authentication: the Noise message authenticates.
//! - mac2 is keyed by the cookie of the HELLO's source address and port, which only someone who
//!   received the gateway's COOKIE_REPLY at that address holds; under load the dataplane passes
//!   only HELLOs with a valid mac2, so spoofed sources cannot reach the controller.
//!
//! Both are SipHash-2-4 over whole little-endian words ([`siphash24_word_fn`]), the form the XDP
//! program can run straight from packet memory.

use crate::abi::{
    COOKIE_LEN, HEADER_LEN, HELLO_LEN, HELLO_MAC1_OFFSET, HELLO_MAC2_OFFSET, HELLO_MAC_LEN,
    HELLO_NOISE_LEN,
};
use crate::maps::TransportBinding;
use crate::siphash::{siphash24_word_fn, siphash24_words, SipKey};
use crate::wire::WireHeader;
use bytemuck::{Pod, Zeroable};

/// Words of the HELLO that mac1 covers.
pub const MAC1_WORDS: usize = HELLO_MAC1_OFFSET / 8;
/// Words of the HELLO that mac2 covers.
pub const MAC2_WORDS: usize = HELLO_MAC2_OFFSET / 8;
const _: () = assert!(HELLO_MAC1_OFFSET.is_multiple_of(8) && HELLO_MAC2_OFFSET.is_multiple_of(8));

/// A HELLO datagram exactly as on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct HelloMessage {
    /// The header: type HELLO, every other field 0.
    pub header: WireHeader,
    /// Noise IK message 1.
    pub noise: [u8; HELLO_NOISE_LEN],
    /// Reserved, zero (aligns the MACs to whole words).
    pub reserved: [u8; 4],
    /// mac1 under the gateway's mac1 key.
    pub mac1: [u8; HELLO_MAC_LEN],
    /// mac2 under the source's cookie, or zero.
    pub mac2: [u8; HELLO_MAC_LEN],
}

const _: () = assert!(core::mem::size_of::<HelloMessage>() == HELLO_LEN);
const _: () = assert!(core::mem::offset_of!(HelloMessage, noise) == HEADER_LEN);
const _: () = assert!(core::mem::offset_of!(HelloMessage, mac1) == HELLO_MAC1_OFFSET);
const _: () = assert!(core::mem::offset_of!(HelloMessage, mac2) == HELLO_MAC2_OFFSET);

impl HelloMessage {
    /// Reads a HELLO from exactly [`HELLO_LEN`] bytes; `None` for any other length.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        (bytes.len() == HELLO_LEN).then(|| bytemuck::pod_read_unaligned(bytes))
    }

    /// The datagram's bytes.
    pub fn as_bytes(&self) -> &[u8; HELLO_LEN] {
        bytemuck::cast_ref(self)
    }

    /// Word `i` of the datagram, little-endian (as SipHash consumes it).
    #[inline(always)]
    fn word(&self, i: usize) -> u64 {
        let b = self.as_bytes();
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    }

    /// The mac1 this HELLO must carry under `key`.
    pub fn compute_mac1(&self, key: SipKey) -> [u8; HELLO_MAC_LEN] {
        siphash24_word_fn::<MAC1_WORDS>(key, |i| self.word(i)).to_le_bytes()
    }

    /// The mac2 this HELLO must carry under `cookie`.
    pub fn compute_mac2(&self, cookie: &[u8; COOKIE_LEN]) -> [u8; HELLO_MAC_LEN] {
        siphash24_word_fn::<MAC2_WORDS>(SipKey::from_bytes(cookie), |i| self.word(i)).to_le_bytes()
    }

    /// Whether mac1 verifies under `key`.
    pub fn mac1_verifies(&self, key: SipKey) -> bool {
        self.compute_mac1(key) == self.mac1
    }

    /// Whether mac2 verifies under `cookie` (a zero mac2 never does: it means "no cookie").
    pub fn mac2_verifies(&self, cookie: &[u8; COOKIE_LEN]) -> bool {
        self.mac2 != [0; HELLO_MAC_LEN] && self.compute_mac2(cookie) == self.mac2
    }

    /// Sets mac1 under `key` (and clears mac2, which covers mac1).
    pub fn seal_mac1(&mut self, key: SipKey) {
        self.mac1 = self.compute_mac1(key);
        self.mac2 = [0; HELLO_MAC_LEN];
    }

    /// Sets mac2 under `cookie`.
    pub fn seal_mac2(&mut self, cookie: &[u8; COOKIE_LEN]) {
        self.mac2 = self.compute_mac2(cookie);
    }
}

/// The cookie of `source` under the cookie `secret`: the 16-byte mac2 key, two SipHash-2-4 outputs
/// over the binding's three words and a domain word (0, then 1).
#[inline(always)]
pub fn cookie(secret: &[u8; 16], source: &TransportBinding) -> [u8; COOKIE_LEN] {
    let (k0, k1) = cookie_key(SipKey::from_bytes(secret), source);
    let mut out = [0u8; COOKIE_LEN];
    out[..8].copy_from_slice(&k0.to_le_bytes());
    out[8..].copy_from_slice(&k1.to_le_bytes());
    out
}

/// The cookie of `source` as the two halves of its SipHash key (what the XDP program uses).
#[inline(always)]
pub fn cookie_key(secret: SipKey, source: &TransportBinding) -> (u64, u64) {
    let b: &[u8; 24] = bytemuck::cast_ref(source);
    let w = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&b[i * 8..i * 8 + 8]);
        u64::from_le_bytes(w)
    };
    let words = |domain: u64| [w(0), w(1), w(2), domain];
    (
        siphash24_words(secret, words(0)),
        siphash24_words(secret, words(1)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::siphash::siphash24;
    use crate::wire::MessageType;

    fn hello() -> HelloMessage {
        let mut h = HelloMessage::zeroed();
        h.header = WireHeader::new(MessageType::Hello, 0, 0, 0);
        for (i, b) in h.noise.iter_mut().enumerate() {
            *b = i as u8;
        }
        h
    }

    #[test]
    fn macs_are_siphash_over_the_bytes_before_them() {
        let key = SipKey::from_bytes(&[3; 16]);
        let cookie = [9u8; COOKIE_LEN];
        let mut h = hello();
        h.seal_mac1(key);
        h.seal_mac2(&cookie);
        let bytes = h.as_bytes();
        assert_eq!(
            h.mac1,
            siphash24(key, &bytes[..HELLO_MAC1_OFFSET]).to_le_bytes()
        );
        assert_eq!(
            h.mac2,
            siphash24(SipKey::from_bytes(&cookie), &bytes[..HELLO_MAC2_OFFSET]).to_le_bytes()
        );
        assert!(h.mac1_verifies(key) && h.mac2_verifies(&cookie));
        assert!(!h.mac1_verifies(SipKey::from_bytes(&[4; 16])));
        assert!(!h.mac2_verifies(&[8; COOKIE_LEN]));
        for byte in 0..HELLO_MAC1_OFFSET {
            let mut forged = *bytes;
            forged[byte] ^= 1;
            let forged = HelloMessage::from_bytes(&forged).unwrap();
            assert!(!forged.mac1_verifies(key), "byte {byte} is covered by mac1");
            assert!(
                !forged.mac2_verifies(&cookie),
                "byte {byte} is covered by mac2"
            );
        }
    }

    #[test]
    fn a_zero_mac2_never_verifies() {
        let h = hello();
        assert!(!h.mac2_verifies(&[0; COOKIE_LEN]));
    }

    #[test]
    fn cookies_bind_address_and_port() {
        let secret = [5u8; 16];
        let a = TransportBinding::from_v4([192, 0, 2, 1], 4000);
        let other_port = TransportBinding::from_v4([192, 0, 2, 1], 4001);
        let other_addr = TransportBinding::from_v4([192, 0, 2, 2], 4000);
        let c = cookie(&secret, &a);
        assert_ne!(c, cookie(&secret, &other_port));
        assert_ne!(c, cookie(&secret, &other_addr));
        assert_ne!(c, cookie(&[6u8; 16], &a));
        let b: &[u8; 24] = bytemuck::cast_ref(&a);
        let mut first = [0u8; 32];
        first[..24].copy_from_slice(b);
        assert_eq!(
            c[..8],
            siphash24(SipKey::from_bytes(&secret), &first).to_le_bytes()
        );
    }

    #[test]
    fn only_the_exact_length_is_a_hello() {
        let bytes = *hello().as_bytes();
        assert!(HelloMessage::from_bytes(&bytes).is_some());
        assert!(HelloMessage::from_bytes(&bytes[..HELLO_LEN - 1]).is_none());
        let mut longer = bytes.to_vec();
        longer.push(0);
        assert!(HelloMessage::from_bytes(&longer).is_none());
    }
}
