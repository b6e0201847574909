//! The control socket: how `jvpn status`, `sessions`, `stats`, `audit` and `events` talk to a
//! running `jvpn gateway`.
//!
//! The daemon core implements [`GatewayApi`]; [`server::run`] serves it on a Unix socket
//! (`/run/jvpn/IF.sock`, mode 0600, bound by [`socket::bind_control_socket`]); the CLI uses
//! [`socket_client::ControlClient`]. Requests and responses are newline-delimited JSON
//! ([`protocol`]), built from the plain data types of [`dto`].

pub mod dto;
pub mod ops_dto;
pub mod protocol;
pub mod server;
pub mod socket;
pub mod socket_client;

pub use dto::{
    AuditEntry, ControllerStats, DataplaneStats, PacketCount, ReasonCount, SessionCounts,
    SessionDetail, SessionSummary, StatsReport, StatusReport, TunnelStats,
};
pub use ops_dto::{
    ClientMetrics, ClientShow, EndedSession, JumpShow, ReasonTally, ReloadReport, SessionShow,
    ShowReport, TrafficCount,
};
pub use protocol::{Request, Response};
pub use socket::{bind_control_socket, default_socket_path, SocketError, SocketGuard, RUN_DIR};
pub use socket_client::{ControlClient, ControlClientError};

use crate::events::names::{session_id, session_id_text};
use crate::events::EventSubscription;
use serde::{Deserialize, Serialize};

/// What the control socket can ask of the gateway. The daemon core implements it.
///
/// Methods may block (store reads, a durable commit for `terminate`): the server calls them on
/// tokio's blocking pool, never on a runtime worker. An implementation that lives in async tasks
/// can use `blocking_send` / `blocking_recv` on its channels from these methods.
pub trait GatewayApi: Send + Sync + 'static {
    /// The daemon's identity and session counts.
    fn status(&self) -> StatusReport;
    /// Every session the gateway knows, in any state.
    fn sessions(&self) -> Vec<SessionSummary>;
    /// One session in full, or `None` if the id is unknown.
    fn session(&self, id: u64) -> Option<SessionDetail>;
    /// Ends a session: a CAS to TERMINATED (version +1) with its audit record; returns the
    /// session as it is after the change.
    fn terminate(&self, id: u64) -> Result<SessionSummary, ApiError>;
    /// Every counter, dataplane counters summed over CPUs.
    fn stats(&self) -> StatsReport;
    /// A session's whole history of version increments, oldest first.
    fn audit(&self, id: u64) -> Result<Vec<AuditEntry>, ApiError>;
    /// A subscription to the event stream (recent history, then live records).
    fn subscribe(&self) -> EventSubscription;
    /// Every client and its sessions, `wg show` style.
    fn show(&self) -> ShowReport;
    /// Applies the edited config file; an invalid one, or one changing a setting that needs a
    /// restart, changes nothing.
    fn reload(&self) -> Result<ReloadReport, ApiError>;
    /// Every configured client's totals, for the per-client metrics (not on the control socket).
    fn client_metrics(&self) -> Vec<ClientMetrics>;
}

/// Why the gateway refused or failed a control request. Sent over the socket, so plain data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum ApiError {
    /// No session with this id.
    #[error(
        "no session {} on this gateway; list sessions with `jvpn sessions list`",
        session_id_text(*id)
    )]
    UnknownSession {
        /// The id asked for.
        #[serde(with = "session_id")]
        id: u64,
    },
    /// The session has already ended.
    #[error(
        "session {} is already terminated (version {version})",
        session_id_text(*id)
    )]
    AlreadyTerminated {
        /// The session.
        #[serde(with = "session_id")]
        id: u64,
        /// Its final version.
        version: u64,
    },
    /// The change lost a compare-and-set to a concurrent mutation of the same session.
    #[error(
        "session {} changed while terminating it; check `jvpn sessions show {}` and retry",
        session_id_text(*id),
        session_id_text(*id)
    )]
    ConcurrentMutation {
        /// The session.
        #[serde(with = "session_id")]
        id: u64,
    },
    /// The edited config was refused; nothing changed. The problem names the line or setting.
    #[error("the gateway did not reload its config: {problem}")]
    ReloadRefused {
        /// What is wrong and what to do.
        problem: String,
    },
    /// The request could not be read (bad JSON, unknown request, too long).
    #[error("the gateway refused the request: {problem}; is the jvpn CLI the same version as the daemon?")]
    BadRequest {
        /// What was wrong with it.
        problem: String,
    },
    /// The gateway failed while serving the request; its log says more.
    #[error("the gateway failed to {operation}: {problem}; see the daemon's log")]
    Internal {
        /// What it was doing.
        operation: String,
        /// What went wrong.
        problem: String,
    },
}
