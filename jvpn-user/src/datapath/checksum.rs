//! The Internet checksum (RFC 1071) the IP and TCP headers carry, in the two halves the data path
//! needs: an unfolded sum that can be seeded and extended (pseudo-headers, headers shared by many
//! segments), and the folded, complemented field value.

/// One's complement sum of `bytes` as big-endian 16-bit words, unfolded, added to `sum`.
pub(crate) fn add_words(mut sum: u64, bytes: &[u8]) -> u64 {
    let mut words = bytes.chunks_exact(2);
    for word in &mut words {
        sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u64::from(*last) << 8;
    }
    sum
}

/// Folds an unfolded sum to 16 bits.
pub(crate) fn fold(mut sum: u64) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum over `bytes` plus `seed`; a zero result is sent as 0xffff (the same
/// value in one's complement, and the only form UDP accepts).
pub(crate) fn checksum(seed: u64, bytes: &[u8]) -> [u8; 2] {
    match !fold(add_words(seed, bytes)) {
        0 => [0xff, 0xff],
        sum => sum.to_be_bytes(),
    }
}
