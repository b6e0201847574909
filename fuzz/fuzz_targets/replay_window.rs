//! The replay window (`jvpn_common::replay::ReplayWindow`) against a reference set of every nonce
//! accepted, over an arbitrary sequence of nonces.
//!
//! Safety, checked on every acceptance: no nonce is accepted twice; nothing below `max - window`
//! (the highest accepted nonce minus `REPLAY_WINDOW`) is accepted; nothing at or past `NONCE_LIMIT`
//! is accepted. Precision, checked on every refusal: "too old" exactly when below the window,
//! "exhausted" exactly at or past the limit, never "contended" without a concurrent writer, and
//! "duplicate" only for a nonce accepted before or, as the window's documentation allows, one that
//! shares its slot bit and 32-bit generation with an accepted nonce (2^44 apart: a false duplicate
//! fails closed). A bounded window (client to gateway) refuses as "too far" exactly a nonce more
//! than `NONCE_MAX_LEAP` above `max`; an unbounded one (gateway to client) never does.
#![no_main]

use arbitrary::Arbitrary;
use jvpn_common::abi::{
    NONCE_LIMIT, NONCE_MAX_LEAP, REPLAY_BITS_PER_SLOT, REPLAY_SLOTS, REPLAY_WINDOW,
};
use jvpn_common::replay::{Leap, ReplayWindow};
use jvpn_common::RejectReason;
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;

/// A nonce, mostly near the window's current top so the fuzzer lives where the decisions are.
#[derive(Debug, Arbitrary)]
enum Nonce {
    /// `max + delta`.
    Near(i16),
    /// `max - REPLAY_WINDOW + delta`: around the window's lower edge.
    Edge(i8),
    /// A far leap ahead.
    Ahead(u32),
    /// Exactly 2^44 away from a recent value (a full turn of the 32-bit slot generation).
    Turn(i16, bool),
    /// Anything.
    Any(u64),
    /// Around the limit.
    Limit(i16),
}

/// Nonces a full turn of truncated generations apart share a slot, a bit and a generation tag.
const TURN: u64 = REPLAY_BITS_PER_SLOT * REPLAY_SLOTS as u64 * (1 << 32);

fuzz_target!(|input: (bool, Vec<Nonce>)| {
    let (bounded, nonces) = input;
    let leap = match bounded {
        true => Leap::Bounded,
        false => Leap::Unbounded,
    };
    let window = ReplayWindow::new(leap);
    let mut accepted = BTreeSet::new();
    let mut max = 0u64;
    for nonce in nonces {
        let n = match nonce {
            Nonce::Near(d) => max.saturating_add_signed(i64::from(d)),
            Nonce::Edge(d) => max
                .saturating_sub(REPLAY_WINDOW)
                .saturating_add_signed(i64::from(d)),
            Nonce::Ahead(d) => max.saturating_add(u64::from(d)),
            Nonce::Turn(d, up) => {
                let base = max.saturating_add_signed(i64::from(d));
                if up {
                    base.saturating_add(TURN)
                } else {
                    base.saturating_sub(TURN)
                }
            }
            Nonce::Any(n) => n,
            Nonce::Limit(d) => NONCE_LIMIT.saturating_add_signed(i64::from(d)),
        };
        let in_window = n.saturating_add(REPLAY_WINDOW) >= max;
        let too_far = bounded && n < NONCE_LIMIT && n > max.saturating_add(NONCE_MAX_LEAP);
        match window.check_and_record(n) {
            Ok(()) => {
                assert!(
                    !too_far,
                    "nonce {n} beyond the leap from max {max} accepted"
                );
                assert!(n < NONCE_LIMIT, "nonce {n} at or past the limit accepted");
                assert!(in_window, "nonce {n} below the window (max {max}) accepted");
                assert!(accepted.insert(n), "nonce {n} accepted twice");
                max = max.max(n);
            }
            Err(reject) => match reject.reason() {
                RejectReason::NonceExhausted => assert!(n >= NONCE_LIMIT, "{n} exhausted"),
                RejectReason::NonceTooOld => {
                    assert!(n < NONCE_LIMIT && !in_window, "{n} too old at max {max}")
                }
                RejectReason::DuplicateNonce => {
                    assert!(!too_far, "{n} beyond the leap refused as a duplicate");
                    assert!(n < NONCE_LIMIT && in_window, "{n} duplicate at max {max}");
                    let twin =
                        accepted.contains(&n) || accepted.iter().any(|&m| m % TURN == n % TURN);
                    assert!(twin, "fresh nonce {n} refused as a duplicate (max {max})");
                }
                RejectReason::NonceTooFar => assert!(too_far, "{n} too far at max {max}"),
                other => panic!("nonce {n} refused as {other:?} without contention"),
            },
        }
        assert_eq!(window.max(), max, "the window's max");
    }
});
