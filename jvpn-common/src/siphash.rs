//! SipHash-2-4 (Aumasson and Bernstein), the keyed hash that tags every jvpn header.
//!
//! The XDP program needs it over exactly 32 bytes with no allocation and no loops it cannot unroll,
//! and no `no_std` crate gives that with an API usable from BPF, so it is written here once and
//! shared. [`siphash24`] takes any message (tested against the authors' vectors);
//! [`siphash24_words`] is the fixed four-word form the dataplane calls on the header.

/// A SipHash-2-4 key split into its two little-endian 64-bit halves (`k0`, `k1`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SipKey {
    /// Bytes 0..8 of the key, little-endian.
    pub k0: u64,
    /// Bytes 8..16 of the key, little-endian.
    pub k1: u64,
}

impl SipKey {
    /// Splits a 128-bit key as the SipHash paper does.
    #[inline(always)]
    pub fn from_bytes(key: &[u8; 16]) -> Self {
        let mut k0 = [0u8; 8];
        let mut k1 = [0u8; 8];
        k0.copy_from_slice(&key[..8]);
        k1.copy_from_slice(&key[8..]);
        Self {
            k0: u64::from_le_bytes(k0),
            k1: u64::from_le_bytes(k1),
        }
    }
}

struct State {
    v0: u64,
    v1: u64,
    v2: u64,
    v3: u64,
}

impl State {
    #[inline(always)]
    fn new(key: SipKey) -> Self {
        Self {
            v0: key.k0 ^ 0x736f_6d65_7073_6575,
            v1: key.k1 ^ 0x646f_7261_6e64_6f6d,
            v2: key.k0 ^ 0x6c79_6765_6e65_7261,
            v3: key.k1 ^ 0x7465_6462_7974_6573,
        }
    }

    #[inline(always)]
    fn round(&mut self) {
        self.v0 = self.v0.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(13);
        self.v1 ^= self.v0;
        self.v0 = self.v0.rotate_left(32);
        self.v2 = self.v2.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(16);
        self.v3 ^= self.v2;
        self.v0 = self.v0.wrapping_add(self.v3);
        self.v3 = self.v3.rotate_left(21);
        self.v3 ^= self.v0;
        self.v2 = self.v2.wrapping_add(self.v1);
        self.v1 = self.v1.rotate_left(17);
        self.v1 ^= self.v2;
        self.v2 = self.v2.rotate_left(32);
    }

    #[inline(always)]
    fn compress(&mut self, m: u64) {
        self.v3 ^= m;
        self.round();
        self.round();
        self.v0 ^= m;
    }

    #[inline(always)]
    fn finish(mut self) -> u64 {
        self.v2 ^= 0xff;
        self.round();
        self.round();
        self.round();
        self.round();
        self.v0 ^ self.v1 ^ self.v2 ^ self.v3
    }
}

/// SipHash-2-4 of `msg` under `key`.
pub fn siphash24(key: SipKey, msg: &[u8]) -> u64 {
    let mut s = State::new(key);
    let mut chunks = msg.chunks_exact(8);
    for chunk in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        s.compress(u64::from_le_bytes(w));
    }
    let rest = chunks.remainder();
    let mut last = [0u8; 8];
    last[..rest.len()].copy_from_slice(rest);
    let b = u64::from_le_bytes(last) | ((msg.len() as u64 & 0xff) << 56);
    s.compress(b);
    s.finish()
}

/// SipHash-2-4 of a 32-byte message given as four little-endian words, as the header tag is
/// computed. Equal to `siphash24(key, bytes)` where `words[i] = u64::from_le_bytes(bytes[8i..8i+8])`.
#[inline(always)]
pub fn siphash24_words(key: SipKey, words: [u64; 4]) -> u64 {
    let mut s = State::new(key);
    s.compress(words[0]);
    s.compress(words[1]);
    s.compress(words[2]);
    s.compress(words[3]);
    s.compress(32u64 << 56);
    s.finish()
}

/// SipHash-2-4 of an `N`-word message whose word `i` (little-endian) is `word(i)`: the form for
/// messages read word by word, as the XDP program reads a HELLO from packet memory. Equal to
/// `siphash24(key, bytes)` over the `8 * N` bytes.
#[inline(always)]
pub fn siphash24_word_fn<const N: usize>(key: SipKey, word: impl Fn(usize) -> u64) -> u64 {
    let mut s = State::new(key);
    let mut i = 0;
    while i < N {
        s.compress(word(i));
        i += 1;
    }
    s.compress(((N as u64 * 8) & 0xff) << 56);
    s.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From the authors' `vectors.h`: key 00..0f, message i = bytes 00..i-1, output as LE bytes.
    const VECTORS: [(usize, [u8; 8]); 10] = [
        (0, [0x31, 0x0e, 0x0e, 0xdd, 0x47, 0xdb, 0x6f, 0x72]),
        (1, [0xfd, 0x67, 0xdc, 0x93, 0xc5, 0x39, 0xf8, 0x74]),
        (2, [0x5a, 0x4f, 0xa9, 0xd9, 0x09, 0x80, 0x6c, 0x0d]),
        (3, [0x2d, 0x7e, 0xfb, 0xd7, 0x96, 0x66, 0x67, 0x85]),
        (4, [0xb7, 0x87, 0x71, 0x27, 0xe0, 0x94, 0x27, 0xcf]),
        (5, [0x8d, 0xa6, 0x99, 0xcd, 0x64, 0x55, 0x76, 0x18]),
        (6, [0xce, 0xe3, 0xfe, 0x58, 0x6e, 0x46, 0xc9, 0xcb]),
        (7, [0x37, 0xd1, 0x01, 0x8b, 0xf5, 0x00, 0x02, 0xab]),
        (8, [0x62, 0x24, 0x93, 0x9a, 0x79, 0xf5, 0xf5, 0x93]),
        (15, [0xe5, 0x45, 0xbe, 0x49, 0x61, 0xca, 0x29, 0xa1]),
    ];

    fn reference_key() -> SipKey {
        let mut k = [0u8; 16];
        for (i, b) in k.iter_mut().enumerate() {
            *b = i as u8;
        }
        SipKey::from_bytes(&k)
    }

    #[test]
    fn matches_the_reference_vectors() {
        let key = reference_key();
        let msg: [u8; 64] = core::array::from_fn(|i| i as u8);
        for (len, expected) in VECTORS {
            assert_eq!(
                siphash24(key, &msg[..len]).to_le_bytes(),
                expected,
                "vector {len}"
            );
        }
    }

    #[test]
    fn word_form_equals_byte_form_over_32_bytes() {
        let key = reference_key();
        for seed in 0u8..16 {
            let msg: [u8; 32] = core::array::from_fn(|i| (i as u8).wrapping_mul(31) ^ seed);
            let words: [u64; 4] = core::array::from_fn(|i| {
                let mut w = [0u8; 8];
                w.copy_from_slice(&msg[i * 8..i * 8 + 8]);
                u64::from_le_bytes(w)
            });
            assert_eq!(siphash24_words(key, words), siphash24(key, &msg));
        }
    }
}
