//! The controller's clock: monotonic, so a wall-clock step moves no timer (issue 8, defect 6).
//!
//! The session machine is pure and takes `now`; the controller decides which clock that is. It
//! is this one: Unix milliseconds as the wall clock read when the run started, advanced by the
//! monotonic clock since. Stepping the wall clock (`date -s`, a bad NTP server) therefore neither
//! ages every session at once (a step forward would have terminated them all as idle) nor keeps
//! dead ones alive (a step backward would have held off their timeouts). Every timer decision
//! uses it: keepalive and idle timeouts, challenge lifetimes, REJECT budgets, retention.
//!
//! The session record's times (`created_at`, `changed_at`, `last_rx`) are on this clock too;
//! what is *reported* is wall-clock time: [`ControllerClock::to_wall`] converts a reading for
//! `jvpn sessions`, and the audit records are stamped with the wall clock when committed. The
//! event stream stamps its records with the wall clock itself. Across a restart nothing relies on
//! the old readings: `reconcile` restarts every session's silence at the new run's start (the
//! monotonic clock does not survive a reboot), and terminated sessions are not reloaded.

use crate::events::unix_millis_now;
use crate::session::Millis;
use std::time::Instant;

/// Where the clock reads time from: the system, or a test's hand.
pub trait TimeSource: Send + Sync {
    /// The wall clock, Unix milliseconds.
    fn wall(&self) -> Millis;
    /// A monotonic reading, in milliseconds from an arbitrary origin.
    fn monotonic(&self) -> Millis;
}

/// The system's clocks: `SystemTime` and `Instant` (`CLOCK_MONOTONIC`).
pub struct SystemTimeSource {
    origin: Instant,
}

impl TimeSource for SystemTimeSource {
    fn wall(&self) -> Millis {
        unix_millis_now()
    }

    fn monotonic(&self) -> Millis {
        self.origin.elapsed().as_millis() as Millis
    }
}

/// The controller's clock (see the module doc).
pub struct ControllerClock {
    source: Box<dyn TimeSource>,
    /// The wall clock when the run started.
    wall_at_start: Millis,
    /// The monotonic reading when the run started.
    monotonic_at_start: Millis,
}

impl ControllerClock {
    /// The clock of a run starting now, on the system's clocks.
    pub fn system() -> Self {
        Self::new(Box::new(SystemTimeSource {
            origin: Instant::now(),
        }))
    }

    /// The clock of a run starting now, on `source`'s clocks.
    pub fn new(source: Box<dyn TimeSource>) -> Self {
        Self {
            wall_at_start: source.wall(),
            monotonic_at_start: source.monotonic(),
            source,
        }
    }

    /// The controller's time now: what the session machine and every timer are fed.
    pub fn now(&self) -> Millis {
        let elapsed = self
            .source
            .monotonic()
            .saturating_sub(self.monotonic_at_start);
        self.wall_at_start.saturating_add(elapsed)
    }

    /// The wall-clock time of a reading of this clock, for reports: the reading's age on this
    /// clock, subtracted from the wall clock now.
    pub fn to_wall(&self, reading: Millis) -> Millis {
        let age = self.now().saturating_sub(reading);
        self.source.wall().saturating_sub(age)
    }

    /// The wall clock now, for what is persisted as wall-clock time (the audit).
    pub fn wall(&self) -> Millis {
        self.source.wall()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Input, Session, SessionId, SessionMachine, Timers};
    use jvpn_common::maps::{SessionState, TransportBinding};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    const DAY: Millis = 86_400_000;

    /// Clocks a test sets by hand.
    #[derive(Default)]
    struct HandSource {
        wall: AtomicU64,
        monotonic: AtomicU64,
    }

    impl TimeSource for Arc<HandSource> {
        fn wall(&self) -> Millis {
            self.wall.load(Ordering::SeqCst)
        }
        fn monotonic(&self) -> Millis {
            self.monotonic.load(Ordering::SeqCst)
        }
    }

    impl HandSource {
        /// Time passes: both clocks advance by `ms`.
        fn pass(&self, ms: Millis) {
            self.wall.fetch_add(ms, Ordering::SeqCst);
            self.monotonic.fetch_add(ms, Ordering::SeqCst);
        }

        /// The wall clock is set to `wall`; no time passes.
        fn step_wall_to(&self, wall: Millis) {
            self.wall.store(wall, Ordering::SeqCst);
        }
    }

    fn attached(machine: &SessionMachine, now: Millis) -> Session {
        let id = SessionId::new(7).expect("nonzero");
        let input = Input::HandshakeComplete {
            binding: TransportBinding::from_v4([192, 0, 2, 1], 40_000),
            header_key: [1; 16].into(),
            secrets: vec![2; 64].into(),
        };
        machine
            .transition(&Session::birth(id, [3; 32], now), &input, now)
            .expect("handshake")
            .session
    }

    fn tick(machine: &SessionMachine, s: &Session, now: Millis) -> SessionState {
        machine
            .transition(s, &Input::Tick, now)
            .expect("tick")
            .session
            .state
    }

    fn setup() -> (Arc<HandSource>, ControllerClock, SessionMachine) {
        let hand = Arc::new(HandSource::default());
        hand.step_wall_to(1_795_000_000_000);
        hand.monotonic.store(5_000, Ordering::SeqCst);
        let clock = ControllerClock::new(Box::new(hand.clone()));
        let machine = SessionMachine::new(Timers::new(30_000, 180_000).expect("timers"));
        (hand, clock, machine)
    }

    /// `date -s` a day ahead must not end every session as idle.
    #[test]
    fn a_wall_clock_step_forward_fires_no_timer() {
        let (hand, clock, machine) = setup();
        let s = attached(&machine, clock.now());
        hand.pass(1_000);
        hand.step_wall_to(hand.wall() + DAY);
        assert_eq!(tick(&machine, &s, clock.now()), SessionState::Attached);
        hand.pass(29_000);
        assert_eq!(
            tick(&machine, &s, clock.now()),
            SessionState::Recovering,
            "the keepalive timeout still fires after 30 s of real silence"
        );
    }

    /// A step back must not keep a silent session alive past its idle timeout.
    #[test]
    fn a_wall_clock_step_backward_holds_off_no_timer() {
        let (hand, clock, machine) = setup();
        let s = attached(&machine, clock.now());
        hand.pass(1_000);
        hand.step_wall_to(hand.wall() - DAY);
        hand.pass(179_000);
        assert_eq!(tick(&machine, &s, clock.now()), SessionState::Terminated);
    }

    /// Reports are in wall-clock time: a reading taken before a step is shown by its age.
    #[test]
    fn readings_are_reported_as_wall_clock_time() {
        let (hand, clock, _) = setup();
        let seen = clock.now();
        assert_eq!(clock.to_wall(seen), hand.wall());
        hand.pass(2_000);
        hand.step_wall_to(hand.wall() + DAY);
        assert_eq!(clock.to_wall(seen), hand.wall() - 2_000);
        assert_eq!(clock.wall(), hand.wall());
        assert_eq!(clock.now(), seen + 2_000);
    }
}
