//! The timers: once a second every live session is shown the time, and the state machine decides
//! whether its keepalive timeout (-> RECOVERING) or idle timeout (-> TERMINATED) is due; sessions
//! terminated long enough ago are evicted ([`super::retention`]). Time is the controller's
//! monotonic clock ([`super::clock`]): a wall-clock step fires no timer and holds off none.

use super::core::Gateway;
use super::retention::TERMINATED_RETENTION_MS;
use crate::session::Input;
use jvpn_common::maps::SessionState;
use std::sync::Arc;
use std::time::Duration;

/// How often the timers run.
pub const TICK: Duration = Duration::from_secs(1);

/// Runs the timers until the task is dropped.
pub async fn run(gateway: Arc<Gateway>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = gateway.clock.now();
        for id in gateway.sessions.ids() {
            let live = gateway
                .sessions
                .snapshot(id)
                .is_some_and(|(s, _)| s.state != SessionState::Terminated);
            if live {
                let _ = gateway.apply(id, Input::Tick, now).await;
            }
        }
        gateway.evict_terminated(now, TERMINATED_RETENTION_MS);
    }
}
