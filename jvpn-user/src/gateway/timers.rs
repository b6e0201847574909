//! The timers: once a second every live session is shown the time, and the state machine decides
//! whether its keepalive timeout (-> RECOVERING) or idle timeout (-> TERMINATED) is due; sessions
//! terminated long enough ago are evicted ([`super::retention`]). A session whose
//! gateway-to-client nonce counter entered the margin at the top of its epoch is terminated
//! instead ([`super::live::LiveSession::nonce_exhausted`]). Time is the controller's monotonic
//! clock ([`super::clock`]): a wall-clock step fires no timer and holds off none.
//!
//! [`Controller::tick`] decides; the shell calls it every [`TICK`] and performs its effects
//! (each due transition's compare-and-set, the evictions).

use super::core::Controller;
use super::effect::Effect;
use super::retention::TERMINATED_RETENTION_MS;
use crate::session::{Input, Millis, TerminateCause};
use jvpn_common::maps::SessionState;
use std::time::Duration;

/// How often the timers run.
pub const TICK: Duration = Duration::from_secs(1);

impl Controller {
    /// Shows every live session the time `now`: returns the due transitions' commits and the
    /// evictions of sessions terminated long enough ago.
    pub fn tick(&self, now: Millis) -> Vec<Effect> {
        let mut out = Vec::new();
        for id in self.sessions.ids() {
            let (live, spent) = self.sessions.lock().get(&id).map_or((false, false), |l| {
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
                let _ = self.apply_input(id, input, now, &mut out);
            }
        }
        self.evict_terminated(now, TERMINATED_RETENTION_MS, &mut out);
        out
    }
}
