//! The timers: once a second every live session is shown the time, and the state machine decides
//! whether its keepalive timeout (-> RECOVERING) or idle timeout (-> TERMINATED) is due; sessions
//! terminated long enough ago are evicted ([`super::retention`]). A session whose
//! gateway-to-client nonce counter entered the margin at the top of its epoch is terminated
//! instead ([`super::live::LiveSession::nonce_exhausted`]). Time is the controller's monotonic
//! clock ([`super::clock`]): a wall-clock step fires no timer and holds off none.

use super::core::Gateway;
use super::retention::TERMINATED_RETENTION_MS;
use crate::session::{Input, TerminateCause};
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
            let (live, spent) = gateway
                .sessions
                .lock()
                .get(&id)
                .map_or((false, false), |l| {
                    (
                        l.session.state != SessionState::Terminated,
                        l.nonce_exhausted(),
                    )
                });
            let input = if spent {
                Input::Terminate {
                    cause: TerminateCause::NonceExhausted,
                }
            } else {
                Input::Tick
            };
            if live {
                let _ = gateway.apply(id, input, now).await;
            }
        }
        gateway.evict_terminated(now, TERMINATED_RETENTION_MS);
    }
}
