//! Every number the gateway controller counts, in one place: transitions, compare-and-set
//! conflicts, refusals by reason, seal failures, suppressed REJECTs, map failures, the tunnel's
//! packets and bytes, and the commit-to-map latency.
//!
//! Each is a relaxed atomic, bumped where the thing happens (no lock, no allocation, so the data
//! path may count). `jvpn stats` reads them through [`Counters::controller_stats`] and
//! [`Counters::tunnel_stats`] (the control protocol's DTOs), and the metrics endpoint
//! ([`crate::metrics`]) reads the same atomics at each scrape, so the two never disagree. What the
//! XDP program counts stays in its per-CPU map and is read from there.

use super::latency::LatencyHistogram;
use crate::control::{ControllerStats, PacketCount, ReasonCount, TunnelStats};
use jvpn_common::{RejectReason, SessionState};
use std::sync::atomic::{AtomicU64, Ordering};

const REASONS: usize = RejectReason::ALL.len();
/// Session states in code order; the transition table's "from" axis adds one row for birth.
pub const STATES: [SessionState; 4] = [
    SessionState::Birth,
    SessionState::Attached,
    SessionState::Recovering,
    SessionState::Terminated,
];

/// A controller event counted by itself (see [`Counters::count`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Count {
    /// A REJECT not sent because its session was over its REJECT budget.
    RejectSuppressed,
    /// A datagram the XDP program passed whose seal (AEAD) or tag failed here.
    SealFailure,
    /// A DATA packet opened.
    DataPacket,
    /// A map update that failed (the store still holds the commit; reconciled at restart).
    MapFailure,
    /// A message not sealed because its session's gateway-to-client nonces of this epoch were
    /// spent (the timers terminate such a session first; nonzero means they were late).
    NonceExhausted,
}

/// The gateway's counters (see the module doc).
#[derive(Debug, Default)]
pub struct Counters {
    /// `[from][to]`, where `from` 0 is "no previous state" (the birth record) and `from` i+1 is
    /// `STATES[i]`.
    transitions: [[AtomicU64; 4]; 5],
    cas_conflicts: AtomicU64,
    /// Indexed like [`RejectReason::ALL`].
    rejects: [AtomicU64; REASONS],
    rejects_suppressed: AtomicU64,
    seal_failures: AtomicU64,
    data_packets: AtomicU64,
    map_failures: AtomicU64,
    nonces_exhausted: AtomicU64,
    upstream_written: AtomicU64,
    upstream_bytes: AtomicU64,
    upstream_foreign_source: AtomicU64,
    downstream_sent: AtomicU64,
    downstream_bytes: AtomicU64,
    downstream_unroutable: AtomicU64,
    /// Time from a durable commit to its XDP map entry being written.
    pub commit_to_map: LatencyHistogram,
}

fn state_index(state: SessionState) -> usize {
    STATES.iter().position(|s| *s == state).unwrap_or(0)
}

fn reason_index(reason: RejectReason) -> usize {
    RejectReason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(0)
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

fn load(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl Counters {
    /// Counts one committed version increment (where its STATE_CHANGE record is made).
    pub fn transition(&self, from: Option<SessionState>, to: SessionState) {
        let row = from.map_or(0, |s| state_index(s) + 1);
        bump(&self.transitions[row][state_index(to)]);
    }

    /// Counts one compare-and-set that lost to a concurrent mutation.
    pub fn cas_conflict(&self) {
        bump(&self.cas_conflicts);
    }

    /// Counts one message refused by the controller.
    pub fn reject(&self, reason: RejectReason) {
        bump(&self.rejects[reason_index(reason)]);
    }

    /// Counts one `what`.
    pub fn count(&self, what: Count) {
        bump(match what {
            Count::RejectSuppressed => &self.rejects_suppressed,
            Count::SealFailure => &self.seal_failures,
            Count::DataPacket => &self.data_packets,
            Count::MapFailure => &self.map_failures,
            Count::NonceExhausted => &self.nonces_exhausted,
        });
    }

    /// Counts an opened DATA packet of `bytes` written to the TUN device.
    pub fn upstream(&self, bytes: usize) {
        bump(&self.upstream_written);
        add(&self.upstream_bytes, bytes);
    }

    /// Counts an opened DATA packet dropped by cryptokey routing.
    pub fn upstream_foreign_source(&self) {
        bump(&self.upstream_foreign_source);
    }

    /// Counts a packet of `bytes` read from the TUN device and sent to its session.
    pub fn downstream(&self, bytes: usize) {
        bump(&self.downstream_sent);
        add(&self.downstream_bytes, bytes);
    }

    /// Counts a packet read from the TUN device that no attached session carries.
    pub fn downstream_unroutable(&self) {
        bump(&self.downstream_unroutable);
    }

    /// Committed transitions from `from` (`None`: the birth record) to `to`.
    pub fn transitions(&self, from: Option<SessionState>, to: SessionState) -> u64 {
        let row = from.map_or(0, |s| state_index(s) + 1);
        load(&self.transitions[row][state_index(to)])
    }

    /// Refusals by the controller with `reason`.
    pub fn rejects(&self, reason: RejectReason) -> u64 {
        load(&self.rejects[reason_index(reason)])
    }

    /// DATA packets opened.
    pub fn data_packets(&self) -> u64 {
        load(&self.data_packets)
    }

    /// Messages not sealed because their session's nonces of this epoch were spent.
    pub fn nonces_exhausted(&self) -> u64 {
        load(&self.nonces_exhausted)
    }

    /// The controller's counters as `jvpn stats` reports them.
    pub fn controller_stats(&self) -> ControllerStats {
        ControllerStats {
            transitions: self.transitions.iter().flatten().map(load).sum(),
            cas_conflicts: load(&self.cas_conflicts),
            rejects: RejectReason::ALL
                .into_iter()
                .map(|reason| (reason, self.rejects(reason)))
                .filter(|(_, n)| *n > 0)
                .map(|(reason, packets)| ReasonCount {
                    reason,
                    count: PacketCount { packets, bytes: 0 },
                })
                .collect(),
            seal_failures: load(&self.seal_failures),
            rejects_suppressed: load(&self.rejects_suppressed),
            map_failures: load(&self.map_failures),
        }
    }

    /// The tunnel's counters as `jvpn stats` reports them.
    pub fn tunnel_stats(&self) -> TunnelStats {
        TunnelStats {
            upstream: PacketCount {
                packets: load(&self.upstream_written),
                bytes: load(&self.upstream_bytes),
            },
            upstream_foreign_source: load(&self.upstream_foreign_source),
            downstream: PacketCount {
                packets: load(&self.downstream_sent),
                bytes: load(&self.downstream_bytes),
            },
            downstream_unroutable: load(&self.downstream_unroutable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_report_what_was_counted() {
        let c = Counters::default();
        c.transition(None, SessionState::Attached);
        c.transition(Some(SessionState::Attached), SessionState::Recovering);
        c.cas_conflict();
        c.reject(RejectReason::StaleVersion);
        c.reject(RejectReason::StaleVersion);
        c.count(Count::SealFailure);
        c.count(Count::RejectSuppressed);
        c.count(Count::MapFailure);
        c.upstream(100);
        c.upstream(50);
        c.upstream_foreign_source();
        c.downstream(10);
        c.downstream_unroutable();
        let s = c.controller_stats();
        assert_eq!((s.transitions, s.cas_conflicts), (2, 1));
        assert_eq!(s.rejects.len(), 1);
        assert_eq!(s.rejects[0].reason, RejectReason::StaleVersion);
        assert_eq!(s.rejects[0].count.packets, 2);
        assert_eq!(
            (s.seal_failures, s.rejects_suppressed, s.map_failures),
            (1, 1, 1)
        );
        assert_eq!(
            c.transitions(Some(SessionState::Attached), SessionState::Recovering),
            1
        );
        let t = c.tunnel_stats();
        assert_eq!((t.upstream.packets, t.upstream.bytes), (2, 150));
        assert_eq!((t.downstream.packets, t.downstream.bytes), (1, 10));
        assert_eq!((t.upstream_foreign_source, t.downstream_unroutable), (1, 1));
    }
}
