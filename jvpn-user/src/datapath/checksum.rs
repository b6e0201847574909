//! The Internet checksum (RFC 1071) the IP and TCP headers carry, in the two halves the data path
//! needs: an unfolded sum that can be seeded and extended (pseudo-headers, headers shared by many
//! segments), and the folded, complemented field value.

/// One's complement sum of `bytes` as big-endian 16-bit words (an odd last byte padded with a
/// zero), unfolded, added to `sum`. The value may differ from a word-by-word sum but folds to the
/// same checksum.
///
/// Eight bytes are added at a time into a 128-bit accumulator: since 2^16 = 1 modulo 0xffff, a
/// sum of big-endian 64-bit words folds to the same 16 bits as the sum of their 16-bit words, and
/// this loop is what the data path spends its checksum time in (every segment cut or merged).
pub(crate) fn add_words(mut sum: u64, bytes: &[u8]) -> u64 {
    let mut quads = bytes.chunks_exact(8);
    let mut wide: u128 = 0;
    for quad in &mut quads {
        let word: [u8; 8] = quad.try_into().expect("chunks_exact gives 8 bytes");
        wide += u128::from(u64::from_be_bytes(word));
    }
    // Four 32-bit pieces of the accumulator: each below 2^32, so `sum` cannot overflow for any
    // packet, and 2^32 = 1 modulo 0xffff keeps the fold the same.
    for shift in [0u32, 32, 64, 96] {
        sum += ((wide >> shift) & 0xffff_ffff) as u64;
    }
    let mut words = quads.remainder().chunks_exact(2);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition: 16-bit big-endian words one by one.
    fn word_by_word(mut sum: u64, bytes: &[u8]) -> u64 {
        let mut words = bytes.chunks_exact(2);
        for word in &mut words {
            sum += u64::from(u16::from_be_bytes([word[0], word[1]]));
        }
        if let [last] = words.remainder() {
            sum += u64::from(*last) << 8;
        }
        sum
    }

    #[test]
    fn the_wide_sum_folds_as_the_word_by_word_sum_for_every_length_and_seed() {
        let mut state = 0x1234_5678_9abc_def0_u64;
        let mut bytes = Vec::new();
        for len in 0..200 {
            bytes.clear();
            for _ in 0..len {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                bytes.push((state >> 56) as u8);
            }
            for seed in [0, 6, 0xffff, 0x1_2345] {
                assert_eq!(
                    fold(add_words(seed, &bytes)),
                    fold(word_by_word(seed, &bytes)),
                    "length {len}, seed {seed:#x}"
                );
            }
        }
    }

    #[test]
    fn a_64_kib_run_of_all_ones_does_not_overflow_and_folds_to_all_ones() {
        let bytes = vec![0xff; 65_536 + 3];
        assert_eq!(fold(add_words(0, &bytes)), fold(word_by_word(0, &bytes)));
        assert_eq!(fold(add_words(0, &[0xff; 64])), 0xffff);
        assert_eq!(checksum(0, &[]), [0xff, 0xff]);
    }
}
