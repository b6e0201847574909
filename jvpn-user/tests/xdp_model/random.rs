//! The generator's randomness (a seeded SplitMix64) and the bodies it puts behind headers.

use jvpn_common::siphash::SipKey;
use jvpn_common::WireHeader;

/// SplitMix64: small, fast and the same on every machine, so a seed names a run.
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with `percent` % probability.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Builds the datagram of a header: the tag under `key` (none for `None`) and a body. The
/// test-run world fills bodies with noise; the netns sample seals real DATA for its session.
pub trait Bodies {
    /// The datagram for `header`, tagged under `key` if given.
    fn datagram(&mut self, header: WireHeader, key: Option<&[u8; 16]>, rng: &mut Rng) -> Vec<u8>;
}

/// Header tagged under the key, followed by 0 to 63 random bytes.
pub struct RandomBodies;

impl Bodies for RandomBodies {
    fn datagram(
        &mut self,
        mut header: WireHeader,
        key: Option<&[u8; 16]>,
        rng: &mut Rng,
    ) -> Vec<u8> {
        if let Some(key) = key {
            header.seal(SipKey::from_bytes(key));
        }
        let len = rng.below(64) as usize;
        [header.as_bytes().as_slice(), &rng.bytes(len)].concat()
    }
}
