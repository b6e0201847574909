//! The plain data of the operator commands `jvpn show` and `jvpn reload`: what the gateway answers
//! and what `--json` prints. The JSON shape is stable: fields are only ever added.
//!
//! In [`ShowReport`], what is per session (endpoint, state, version, handshake, last jump, bytes
//! and packets each way, counted by the controller), what is per client (the controller's
//! refusals of its sessions' messages, and the XDP drops of its packets reported on the
//! rate-limited event stream, a lower bound) and what is gateway-wide (the XDP program's exact
//! drops by reason: its counters are per CPU and per reason, not per session, because a dropped
//! packet often names no session it can be trusted to belong to).

use super::dto::ReasonCount;
use crate::events::names::{named, session_id};
use jvpn_common::SessionState;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// `jvpn reload`: what the edited config changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadReport {
    /// Clients newly authorised, by name.
    pub added: Vec<String>,
    /// Clients no longer authorised, by their old name.
    pub removed: Vec<String>,
    /// Clients whose pre-shared key or addresses changed (their sessions were terminated).
    pub changed: Vec<String>,
    /// Clients only renamed (`old -> new`); their sessions go on.
    pub renamed: Vec<String>,
    /// Clients exactly as before.
    pub unchanged: usize,
    /// Sessions terminated by the reload.
    pub terminated: Vec<EndedSession>,
}

/// A session a reload terminated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndedSession {
    /// Session id (16 hex digits).
    #[serde(with = "session_id")]
    pub id: u64,
    /// Its final version (TERMINATED).
    pub version: u64,
}

/// `jvpn show`: the gateway, then each client and its sessions, in the spirit of `wg show`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShowReport {
    /// The gateway's static public key (base64).
    pub public_key: String,
    /// The interface the XDP program enforces on.
    pub iface: String,
    /// The UDP port.
    pub port: u16,
    /// Every configured client in config order, then any client no longer configured that still
    /// has sessions in the table.
    pub clients: Vec<ClientShow>,
    /// Gateway-wide XDP drops by reason (only the reasons with drops).
    pub drops: Vec<ReasonCount>,
}

/// One client in [`ShowReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientShow {
    /// Its configured name (its public key if no longer configured).
    pub name: String,
    /// Its static public key (base64).
    pub public_key: String,
    /// Whether the running config authorises it.
    pub configured: bool,
    /// Its tunnel addresses and allowed networks.
    pub allowed_ips: Vec<String>,
    /// Its sessions the gateway holds (live, and terminated ones within retention), oldest first.
    pub sessions: Vec<SessionShow>,
    /// The controller's refusals of its sessions' messages, by reason (since start or since it
    /// was added; only reasons that occurred).
    #[serde(default)]
    pub refusals: Vec<ReasonTally>,
    /// XDP drops of its sessions' packets reported on the event stream, by reason: a lower bound
    /// (the stream is rate-limited); the gateway-wide [`ShowReport::drops`] are exact.
    #[serde(default)]
    pub dataplane_drops: Vec<ReasonTally>,
}

/// How many times a reason occurred.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasonTally {
    /// The reason.
    #[serde(with = "named")]
    pub reason: jvpn_common::RejectReason,
    /// How many times.
    pub count: u64,
}

impl ReasonTally {
    /// The tallies of `(reason, count)` pairs.
    pub fn all(pairs: &[(jvpn_common::RejectReason, u64)]) -> Vec<Self> {
        pairs
            .iter()
            .map(|&(reason, count)| Self { reason, count })
            .collect()
    }
}

/// One session in [`ShowReport`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionShow {
    /// Session id (16 hex digits).
    #[serde(with = "session_id")]
    pub id: u64,
    /// Its state.
    #[serde(with = "named")]
    pub state: SessionState,
    /// Its `state_version`.
    pub version: u64,
    /// The transport it is bound to (absent before the first binding).
    pub endpoint: Option<SocketAddr>,
    /// When its handshake completed (Unix ms).
    pub handshake_ms: u64,
    /// When it last received an authenticated message (Unix ms).
    pub last_seen_ms: u64,
    /// Its last change of transport, if any.
    pub last_jump: Option<JumpShow>,
    /// Bytes and packets of DATA received from the client (inner packets, after authentication).
    pub rx: TrafficCount,
    /// Bytes and packets of DATA sealed to the client (inner packets).
    pub tx: TrafficCount,
}

/// A change of transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct JumpShow {
    /// When it was committed (Unix ms).
    pub at_ms: u64,
    /// The transport before.
    pub from: SocketAddr,
    /// The transport after.
    pub to: SocketAddr,
    /// The version it committed.
    pub version: u64,
}

/// Packets and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrafficCount {
    /// Packets.
    pub packets: u64,
    /// Bytes.
    pub bytes: u64,
}

impl TrafficCount {
    /// Counts one packet of `bytes`.
    pub fn add(&mut self, bytes: usize) {
        self.packets += 1;
        self.bytes += bytes as u64;
    }
}

/// One configured client's totals, for the per-client families on `/metrics`
/// (`gateway::client_totals`). Not part of the control protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientMetrics {
    /// The client's configured name (the `client` label).
    pub client: String,
    /// DATA received from it (inner packets), over all its sessions.
    pub upstream: TrafficCount,
    /// DATA sealed to it (inner packets), over all its sessions.
    pub downstream: TrafficCount,
    /// Handshakes completed (sessions started).
    pub handshakes: u64,
    /// Reattaches committed.
    pub jumps: u64,
    /// Commits that moved a session to a different transport (address or port).
    pub endpoint_changes: u64,
    /// Sessions ended, for any reason.
    pub terminations: u64,
    /// The controller's refusals of its messages, by reason.
    pub refusals: Vec<(jvpn_common::RejectReason, u64)>,
    /// XDP drops of its packets reported on the event stream, by reason (a lower bound: the
    /// stream is rate-limited; the gateway-wide `dataplane_drops_total` is exact).
    pub dataplane_drops: Vec<(jvpn_common::RejectReason, u64)>,
}
