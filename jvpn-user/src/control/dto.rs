//! The plain data the gateway hands to the operator CLI: status, sessions, counters, audit history.
//!
//! These types are the control protocol's vocabulary and the [`GatewayApi`](super::GatewayApi)'s
//! return values. They carry no behaviour and no references into the daemon, so the daemon core
//! builds them from its own state and the CLI prints them. Spelling follows
//! [`crate::events::names`]: session ids are 16 hex digits, states and reasons are upper-case names.

use crate::events::names::{named, opt_named, session_id};
use crate::events::StreamLosses;
use jvpn_common::reason::{COUNTER_ACCEPTED, COUNTER_TO_CONTROLLER};
use jvpn_common::{DropCounter, RejectReason, SessionState};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// `jvpn status`: what the daemon is and what it is doing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReport {
    /// The jvpn version of the daemon (`CARGO_PKG_VERSION`).
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
    /// The interface the XDP program is attached to.
    pub iface: String,
    /// The UDP port the gateway serves.
    pub port: u16,
    /// XDP attach mode in use: `driver`, `skb`, or `none` when the dataplane is not attached.
    pub xdp_mode: String,
    /// Where the durable session store lives.
    pub state_dir: String,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Sessions by state.
    pub sessions: SessionCounts,
    /// The session table's size limit.
    pub max_sessions: u32,
    /// Event records lost so far.
    pub events_lost: StreamLosses,
}

/// Number of sessions in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionCounts {
    /// Handshake in progress.
    pub birth: u64,
    /// Bound to a transport.
    pub attached: u64,
    /// Waiting for a reattach.
    pub recovering: u64,
    /// Ended, still remembered (audit history, id never reused).
    pub terminated: u64,
}

impl SessionCounts {
    /// The count for `state`.
    pub fn get(&self, state: SessionState) -> u64 {
        match state {
            SessionState::Birth => self.birth,
            SessionState::Attached => self.attached,
            SessionState::Recovering => self.recovering,
            SessionState::Terminated => self.terminated,
        }
    }

    /// Counts one more session in `state`.
    pub fn add(&mut self, state: SessionState) {
        let slot = match state {
            SessionState::Birth => &mut self.birth,
            SessionState::Attached => &mut self.attached,
            SessionState::Recovering => &mut self.recovering,
            SessionState::Terminated => &mut self.terminated,
        };
        *slot = slot.saturating_add(1);
    }
}

/// One line of `jvpn sessions list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionSummary {
    /// The session id.
    #[serde(with = "session_id")]
    pub id: u64,
    /// The current state.
    #[serde(with = "named")]
    pub state: SessionState,
    /// The current state_version.
    pub version: u64,
    /// The bound transport, if any.
    pub peer: Option<SocketAddr>,
    /// The client, as named in the gateway's config (or its public key when unnamed).
    pub client: String,
    /// When the session was born, Unix milliseconds.
    pub created_ms: u64,
    /// When the last packet or message of the session was seen, Unix milliseconds.
    pub last_seen_ms: Option<u64>,
}

/// `jvpn sessions show ID`: one session in full.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDetail {
    /// What the list shows.
    #[serde(flatten)]
    pub summary: SessionSummary,
    /// The client's static public key, base64.
    pub client_key: String,
    /// When the session last changed version, Unix milliseconds.
    pub last_transition_ms: u64,
    /// The highest nonce the XDP program accepted from the client (0 before the first).
    pub rx_nonce: u64,
    /// The next nonce the gateway will send with.
    pub tx_nonce: u64,
    /// A reattach awaiting return-routability, if one is in progress.
    pub pending_path: Option<SocketAddr>,
}

/// Packets and bytes, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PacketCount {
    /// Packets.
    pub packets: u64,
    /// Bytes (whole frames).
    pub bytes: u64,
}

impl PacketCount {
    /// Sums one counter slot's per-CPU values.
    pub fn sum_per_cpu(per_cpu: &[DropCounter]) -> Self {
        per_cpu.iter().fold(Self::default(), |acc, c| Self {
            packets: acc.packets.wrapping_add(c.packets),
            bytes: acc.bytes.wrapping_add(c.bytes),
        })
    }
}

/// Drops (dataplane) or refusals (controller) under one reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonCount {
    /// The reason.
    #[serde(with = "named")]
    pub reason: RejectReason,
    /// How many, summed over CPUs.
    #[serde(flatten)]
    pub count: PacketCount,
}

/// The dataplane's counters: what the XDP program accepted, passed up and dropped.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneStats {
    /// DATA and KEEPALIVE accepted.
    pub accepted: PacketCount,
    /// HELLO and control messages passed to the controller.
    pub to_controller: PacketCount,
    /// Drops by reason, in reason-code order, zero counts included.
    pub drops: Vec<ReasonCount>,
}

impl DataplaneStats {
    /// Builds the totals from the per-CPU counter array: `slots` yields each slot index with its
    /// per-CPU values (as read from the `JVPN_COUNTERS` per-CPU array). Slots that name no known
    /// reason are ignored.
    pub fn from_per_cpu<'a>(slots: impl IntoIterator<Item = (u32, &'a [DropCounter])>) -> Self {
        let mut out = Self {
            drops: RejectReason::ALL
                .into_iter()
                .map(|reason| ReasonCount {
                    reason,
                    count: PacketCount::default(),
                })
                .collect(),
            ..Self::default()
        };
        for (slot, per_cpu) in slots {
            let sum = PacketCount::sum_per_cpu(per_cpu);
            if slot == COUNTER_ACCEPTED {
                out.accepted = sum;
            } else if slot == COUNTER_TO_CONTROLLER {
                out.to_controller = sum;
            } else if let Some(entry) = out
                .drops
                .iter_mut()
                .find(|d| d.reason.counter_slot() == slot)
            {
                entry.count = sum;
            }
        }
        out
    }

    /// All drops, whatever the reason.
    pub fn dropped(&self) -> PacketCount {
        self.drops
            .iter()
            .fold(PacketCount::default(), |acc, d| PacketCount {
                packets: acc.packets.wrapping_add(d.count.packets),
                bytes: acc.bytes.wrapping_add(d.count.bytes),
            })
    }
}

/// The controller's own counters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControllerStats {
    /// Committed version increments (one per STATE_CHANGE record).
    pub transitions: u64,
    /// Compare-and-set attempts that lost to a concurrent mutation.
    pub cas_conflicts: u64,
    /// Messages refused by the controller, by reason (only reasons seen at least once).
    pub rejects: Vec<ReasonCount>,
    /// Datagrams the XDP program passed whose seal (AEAD) failed in the controller: a forged
    /// header tag or a wrong key. Each is also a refusal event.
    #[serde(default)]
    pub seal_failures: u64,
    /// REJECT replies not sent because the session was over its REJECT budget.
    #[serde(default)]
    pub rejects_suppressed: u64,
    /// XDP map updates that failed after their commit (reconciled at the next start).
    #[serde(default)]
    pub map_failures: u64,
}

/// The tunnel's data path: packets between sessions and the gateway's TUN device.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TunnelStats {
    /// Opened DATA packets written to the TUN device (bytes: the inner IP packets).
    pub upstream: PacketCount,
    /// Opened DATA packets dropped by cryptokey routing: an inner source the session's client
    /// does not own, or not an IP packet.
    pub upstream_foreign_source: u64,
    /// Packets read from the TUN device, sealed and sent to their session's current binding.
    pub downstream: PacketCount,
    /// Packets read from the TUN device with no attached session to carry them.
    pub downstream_unroutable: u64,
}

/// `jvpn stats`: every counter the gateway keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatsReport {
    /// The XDP program's counters, summed over CPUs.
    pub dataplane: DataplaneStats,
    /// The controller's counters.
    pub controller: ControllerStats,
    /// The tunnel's data path (all zero when the gateway runs without a tunnel).
    #[serde(default)]
    pub tunnel: TunnelStats,
    /// Event records lost so far.
    pub events_lost: StreamLosses,
}

/// One committed version increment of a session, as stored with its CAS (spec section 11).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// The session.
    #[serde(with = "session_id")]
    pub session: u64,
    /// The version this entry committed.
    pub version: u64,
    /// The state before (absent for the birth entry).
    #[serde(default, with = "opt_named")]
    pub from_state: Option<SessionState>,
    /// The state after.
    #[serde(with = "named")]
    pub to_state: SessionState,
    /// Commit time, Unix milliseconds.
    pub time_ms: u64,
    /// What caused it, e.g. `HANDSHAKE`, `REATTACH`, `KEEPALIVE_TIMEOUT`, `OPERATOR`.
    pub cause: String,
    /// The transport bound after the change, if any.
    pub peer: Option<SocketAddr>,
}
