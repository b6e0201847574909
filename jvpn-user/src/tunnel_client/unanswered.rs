//! When the client stops waiting for a gateway that no longer answers its DATA.
//!
//! A TCP stream through the tunnel is answered within a round trip. When its DATA goes unanswered,
//! the gateway is gone or no longer holds the session: an anycast or ECMP front that now routes
//! the client's address to another gateway of the cluster, whose XDP drops DATA of a session it
//! does not own (docs/cluster.md), or a gateway restarting. Waiting for three keepalive intervals
//! of silence (15-30 s) stalls the stream that long; instead the client probes once with a
//! KEEPALIVE, which a gateway holding the session always answers, and reattaches when the probe
//! goes unanswered too. The reattach reaches whichever node the front routes to, which takes the
//! session over by compare-and-set. Traffic that needs no answer (a one-way UDP stream) costs one
//! KEEPALIVE per [`UNANSWERED_PATIENCE`] and no reattach, since the probe is answered.
//!
//! The rule is a pure function of the liveness and the clock, so it is tested without a socket.

use crate::client_session::Liveness;
use std::time::Duration;
use tokio::time::Instant;

/// How long DATA may go unanswered before the client probes with a KEEPALIVE: several round
/// trips of any path a VPN runs over, and of a gateway under load.
pub const UNANSWERED_PATIENCE: Duration = Duration::from_secs(1);
/// How long the probe may go unanswered before the client reattaches.
pub const PROBE_PATIENCE: Duration = Duration::from_secs(1);

/// What the supervisor does about unanswered DATA at one tick.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Everything sent was answered, or it is too early to tell.
    Wait,
    /// Send a KEEPALIVE now and remember when.
    Probe,
    /// The probe went unanswered as well: reattach.
    Reattach,
}

/// The step due at `now`, given the liveness and when the last probe was sent (`probed_at`).
pub fn step(liveness: &Liveness, probed_at: Option<Instant>, now: Instant) -> Step {
    let Some(since) = liveness.unanswered_data_since else {
        return Step::Wait;
    };
    match probed_at {
        // A probe of this stretch of silence is out: wait for it, then give up on the gateway.
        Some(probe) if probe >= since => {
            if now.saturating_duration_since(probe) >= PROBE_PATIENCE {
                Step::Reattach
            } else {
                Step::Wait
            }
        }
        _ if now.saturating_duration_since(since) >= UNANSWERED_PATIENCE => Step::Probe,
        _ => Step::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn unanswered_data_leads_to_one_probe_then_a_reattach() {
        let t0 = Instant::now();
        let liveness = |unanswered: Option<u64>| Liveness {
            last_sent: t0,
            last_received: t0,
            unanswered_data_since: unanswered.map(|at| t0 + ms(at)),
        };
        // (DATA unanswered since, probe sent at, now) -> step; times in ms after t0.
        let table: [(Option<u64>, Option<u64>, u64, Step); 9] = [
            (None, None, 60_000, Step::Wait),
            (None, Some(100), 60_000, Step::Wait),
            (Some(0), None, 999, Step::Wait),
            (Some(0), None, 1_000, Step::Probe),
            (Some(0), Some(1_000), 1_999, Step::Wait),
            (Some(0), Some(1_000), 2_000, Step::Reattach),
            (Some(0), Some(1_000), 9_000, Step::Reattach),
            // A probe of an earlier stretch (answered since) does not count for this one.
            (Some(5_000), Some(1_000), 5_500, Step::Wait),
            (Some(5_000), Some(1_000), 6_000, Step::Probe),
        ];
        for (unanswered, probed, now, expected) in table {
            assert_eq!(
                step(
                    &liveness(unanswered),
                    probed.map(|at| t0 + ms(at)),
                    t0 + ms(now)
                ),
                expected,
                "unanswered since {unanswered:?}, probed at {probed:?}, now {now}"
            );
        }
    }
}
