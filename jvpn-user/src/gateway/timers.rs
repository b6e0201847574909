//! The timers: once a second every live session is shown the time, and the state machine decides
//! whether its keepalive timeout (-> RECOVERING) or idle timeout (-> TERMINATED) is due; sessions
//! terminated long enough ago are evicted ([`super::retention`]). A session whose
//! gateway-to-client nonce counter entered the margin at the top of its epoch is terminated
//! instead ([`super::live::LiveSession::nonce_exhausted`]), and so is one whose keys are older or
//! more used than the reject-after limits allow ([`super::rekey`]: never kept on worn-out keys). Time is the controller's monotonic
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
    let reject_after = gateway.settings.timeouts.reject_after();
    loop {
        interval.tick().await;
        let now = gateway.clock.now();
        for id in gateway.sessions.ids() {
            let (live, spent, worn_out) =
                gateway
                    .sessions
                    .lock()
                    .get(&id)
                    .map_or((false, false, false), |l| {
                        (
                            l.session.state != SessionState::Terminated,
                            l.nonce_exhausted(),
                            l.keys_worn_out(&reject_after, now),
                        )
                    });
            let input = if spent {
                Input::Terminate {
                    cause: TerminateCause::NonceExhausted,
                }
            } else if worn_out {
                Input::Terminate {
                    cause: TerminateCause::RekeyTimeout,
                }
            } else {
                Input::Tick
            };
            if live {
                let result = gateway.apply(id, input, now).await;
                if worn_out {
                    gateway.worn_out_terminated(id, result).await;
                }
            }
        }
        gateway.evict_terminated(now, TERMINATED_RETENTION_MS);
    }
}
