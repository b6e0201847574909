//! The replay window against WireGuard's counter self-test, its edges and concurrent use.

use super::*;
use std::vec::Vec;

const W: u64 = REPLAY_WINDOW;
const R: u64 = NONCE_LIMIT;

fn run(steps: &[(u64, bool)]) {
    let w = ReplayWindow::new(Leap::Unbounded);
    for (i, &(n, ok)) in steps.iter().enumerate() {
        assert_eq!(w.check_and_record(n).is_ok(), ok, "step {i}: nonce {n}");
    }
}

/// WireGuard's counter self-test (drivers/net/wireguard/selftest/counter.c), with our W and R.
#[test]
fn wireguard_counter_sequence() {
    run(&[
        (0, true),
        (1, true),
        (1, false),
        (9, true),
        (8, true),
        (7, true),
        (7, false),
        (W + 1, true),
        (W, true),
        (W, false),
        (W - 1, true),
        (2, true),
        (2, false),
        (W + 17, true),
        (3, false),
        (W + 17, false),
        (4 * W + 4, true),
        (3 * W + 4, true),
        (10, false),
        (3 * W + 3, false),
        (3 * W + 2, false),
        (3 * W + 5, true),
        (3 * W + 4, false),
        (0, false),
        (R, false),
        (R - 1, true),
        (R, false),
        (R - 1, false),
        (R - 2, true),
        (R + 1, false),
        (R + 2, false),
        (R - 2, false),
        (R - 3, true),
        (0, false),
    ]);
}

#[test]
fn wireguard_counter_sweeps() {
    let mut steps: Vec<(u64, bool)> = (1..=W).map(|n| (n, true)).collect();
    steps.extend([(0, true), (0, false)]);
    run(&steps);

    let mut steps: Vec<(u64, bool)> = (2..=W + 1).map(|n| (n, true)).collect();
    steps.extend([(1, true), (0, false)]);
    run(&steps);

    run(&(0..=W).rev().map(|n| (n, true)).collect::<Vec<_>>());

    let mut steps: Vec<(u64, bool)> = (1..=W + 1).rev().map(|n| (n, true)).collect();
    steps.push((0, false));
    run(&steps);

    let mut steps: Vec<(u64, bool)> = (1..=W).rev().map(|n| (n, true)).collect();
    steps.extend([(W + 1, true), (0, false)]);
    run(&steps);

    let mut steps: Vec<(u64, bool)> = (1..=W).rev().map(|n| (n, true)).collect();
    steps.extend([(0, true), (W + 1, true)]);
    run(&steps);
}

const L: u64 = NONCE_MAX_LEAP;

/// The leap rule of a client-to-gateway window, in the shape of the self-test: (nonce,
/// expected verdict, `max` after the step). A refusal never moves `max`.
#[test]
fn bounded_leaps() {
    use ReplayReject::{Duplicate, TooFar, TooOld};
    let epoch = 1u64 << 40;
    let steps: &[(u64, Result<(), ReplayReject>, u64)] = &[
        (L + 1, Err(TooFar), 0),
        (L, Ok(()), L),
        (2 * L, Ok(()), 2 * L),
        (2 * L, Err(Duplicate), 2 * L),
        (3 * L + 1, Err(TooFar), 2 * L),
        (2 * L + 1, Ok(()), 2 * L + 1),
        // A reflected gateway message: its nonce carries the boot epoch.
        (epoch | 1, Err(TooFar), 2 * L + 1),
        (epoch + 2 * L + 2, Err(TooFar), 2 * L + 1),
        (2 * L + 2, Ok(()), 2 * L + 2),
        (L, Err(TooOld), 2 * L + 2),
        (3 * L + 2, Ok(()), 3 * L + 2),
        (R - 1, Err(TooFar), 3 * L + 2),
        (R, Err(ReplayReject::Exhausted), 3 * L + 2),
        (3 * L + 3, Ok(()), 3 * L + 3),
    ];
    let w = ReplayWindow::new(Leap::Bounded);
    for (i, &(n, verdict, max)) in steps.iter().enumerate() {
        assert_eq!(w.check_and_record(n), verdict, "step {i}: nonce {n}");
        assert_eq!(w.max(), max, "step {i}: nonce {n}");
    }
}

/// A gateway-to-client window takes the leap of a gateway restart (a new boot epoch).
#[test]
fn unbounded_windows_take_an_epoch_leap() {
    let w = ReplayWindow::new(Leap::Unbounded);
    for n in [(1 << 40) | 5, (2 << 40) | 1, (9 << 40) | 1] {
        assert_eq!(w.check_and_record(n), Ok(()), "nonce {n:#x}");
    }
    assert_eq!(w.check_and_record((2 << 40) | 2), Err(ReplayReject::TooOld));
}

#[test]
fn refusals_carry_their_reason() {
    let w = ReplayWindow::new(Leap::Unbounded);
    assert_eq!(w.check_and_record(5), Ok(()));
    assert_eq!(w.check_and_record(5), Err(ReplayReject::Duplicate));
    assert_eq!(w.check_and_record(5 + W + 1), Ok(()));
    assert_eq!(w.check_and_record(0), Err(ReplayReject::TooOld));
    assert_eq!(w.check_and_record(R), Err(ReplayReject::Exhausted));
    assert_eq!(
        ReplayReject::Duplicate.reason(),
        RejectReason::DuplicateNonce
    );
    assert_eq!(ReplayReject::TooOld.reason(), RejectReason::NonceTooOld);
    assert_eq!(ReplayReject::TooFar.reason(), RejectReason::NonceTooFar);
}

/// Found by the `replay_window` fuzz target: a nonce a full turn of the 32-bit slot generation
/// (2^44) above an accepted one finds that one's bit under its own generation tag. It is refused
/// as a duplicate (failing closed, as the module doc allows), and must not move `max` on its way
/// out, or every genuine nonce after it is too old.
#[test]
fn a_refused_false_duplicate_leaves_the_window_where_it_was() {
    const TURN: u64 = REPLAY_BITS_PER_SLOT * REPLAY_SLOTS as u64 * (1 << 32);
    // Only an unbounded window (the client's gateway-to-client one) lets such a leap through.
    let w = ReplayWindow::new(Leap::Unbounded);
    assert_eq!(w.check_and_record(0), Ok(()));
    assert_eq!(w.check_and_record(TURN), Err(ReplayReject::Duplicate));
    assert_eq!(w.max(), 0, "a refused nonce moved the window");
    assert_eq!(w.check_and_record(1), Ok(()), "a genuine next nonce");
}

#[test]
fn window_is_at_least_2048_wide() {
    const { assert!(REPLAY_WINDOW >= 2048) };
}

/// Four threads race every nonce of a range, twice each: no nonce is ever accepted twice.
#[test]
fn concurrent_same_nonces_are_accepted_at_most_once() {
    use core::sync::atomic::{AtomicU8, Ordering};
    use std::sync::Arc;

    const NONCES: usize = 20_000;
    let w = Arc::new(ReplayWindow::new(Leap::Bounded));
    let accepted: Arc<Vec<AtomicU8>> = Arc::new((0..=NONCES).map(|_| AtomicU8::new(0)).collect());
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (w, accepted) = (w.clone(), accepted.clone());
            std::thread::spawn(move || {
                for n in 1..=NONCES {
                    for _ in 0..2 {
                        match w.check_and_record(n as u64) {
                            Ok(()) => {
                                accepted[n].fetch_add(1, Ordering::SeqCst);
                            }
                            Err(ReplayReject::Duplicate | ReplayReject::TooOld) => {}
                            Err(e) => panic!("nonce {n}: unexpected {e:?}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut total = 0;
    for (n, c) in accepted.iter().enumerate() {
        let c = c.load(Ordering::SeqCst);
        assert!(c <= 1, "nonce {n} accepted {c} times");
        total += c as usize;
    }
    assert!(
        total >= NONCES / 2,
        "the window refused most nonces: {total}"
    );
}
