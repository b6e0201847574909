//! The timers through [`Controller::tick`]: the state machine's timeouts become commits, and a
//! session terminated long enough ago is evicted from the map, then from the table.

use super::*;
use crate::gateway::retention::TERMINATED_RETENTION_MS;
use crate::session::Timers;
use jvpn_common::SessionState;

/// Each tick's effects, by when it runs: nothing due, the keepalive timeout (ATTACHED ->
/// RECOVERING, +1), the idle timeout (-> TERMINATED, +1), and eviction after the retention.
#[test]
fn timeouts_commit_and_terminated_sessions_are_evicted() {
    let h = Harness::new();
    let session = h.session();
    let id = session.welcome.session_id.get();
    let keepalive = Timers::DEFAULT_KEEPALIVE_TIMEOUT;
    let idle = Timers::DEFAULT_IDLE_TIMEOUT;
    let tick = |now: u64| {
        let effects = h.controller.tick(now);
        let commits = effects
            .iter()
            .filter(|e| matches!(e, Effect::Commit { .. }))
            .count();
        let evictions = effects
            .iter()
            .filter(|e| matches!(e, Effect::Evict { .. }))
            .count();
        h.settle(effects, &[], now);
        (commits, evictions)
    };
    let state = |h: &Harness| h.entry(id).map(|e| (e.state, e.state_version));

    assert_eq!(tick(T0 + 1), (0, 0), "nothing due");
    assert_eq!(state(&h), Some((SessionState::Attached as u8, 1)));

    assert_eq!(tick(T0 + keepalive + 1), (1, 0), "the keepalive timeout");
    assert_eq!(state(&h), Some((SessionState::Recovering as u8, 2)));

    let ended = T0 + idle + keepalive + 2;
    assert_eq!(tick(ended), (1, 0), "the idle timeout");
    assert_eq!(state(&h), Some((SessionState::Terminated as u8, 3)));

    assert_eq!(tick(ended + 1), (0, 0), "kept for the retention");
    assert_eq!(
        tick(ended + TERMINATED_RETENTION_MS),
        (0, 1),
        "then evicted"
    );
    assert_eq!(state(&h), None, "gone from the map");
    assert!(
        h.controller.sessions.snapshot(id).is_none(),
        "and the table"
    );
    assert_eq!(tick(ended + TERMINATED_RETENTION_MS + 1), (0, 0));
}
