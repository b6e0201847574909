//! The gateway daemon: the single authority over session state on a node.
//!
//! Follow one datagram: [`shell::run`] receives it on the UDP socket and hands it, by message
//! type, to the [`Gateway`]'s handler for it ([`traffic`] for DATA and KEEPALIVE, [`reattach`] for
//! REATTACH_REQUEST and PATH_RESPONSE, [`handshake`] for HELLO). A handler authenticates it
//! ([`crate::crypto`]), passes its nonce through the controller's replay window ([`replay`]) and
//! asks the pure state machine ([`crate::session`]) what it does; a version increment goes through
//! [`Gateway::apply`] in [`core`] (compare-and-set in the store with its audit, the session cache in
//! [`live`], the XDP map through [`session_map`], the event stream), and the answer leaves through
//! [`reply`]. An opened DATA packet goes into the TUN device after cryptokey routing ([`tunnel`]).
//!
//! - [`shell`]: [`run`], the I/O shell: the receive loop, the TUN reader, the timers, the control
//!   socket, the metrics endpoint; it is given its sockets, store, maps and TUN device
//!   ([`GatewayIo`]), which the binary's composition root (`cli::gateway_cmd`) builds.
//! - [`core`]: [`Gateway`] and [`Gateway::apply`], the one path by which a session changes.
//! - [`session_map`]: what the controller needs of the XDP maps, as a trait the dataplane
//!   implements (and the unit tests fake).
//! - [`handshake`]: HELLO -> session at version 1 -> WELCOME, in three stages.
//! - [`handshake_pool`]: the bounded handshake queue and its worker threads.
//! - [`hello_guard`]: mac1 key, cookie secrets, "under load", and their push into XDP.
//! - [`hello_replay`]: the atomic HELLO replay reservation and the per-client session cap.
//! - [`reattach`]: REATTACH_REQUEST, PATH_CHALLENGE / PATH_RESPONSE, the reattach CAS.
//! - [`ownership`], [`ownership_book`], [`takeover`]: in a cluster, releasing sessions another node owns, fencing
//!   when the lease lapses, and taking a session over from the shared store.
//! - [`traffic`]: DATA, KEEPALIVE, TERMINATE.
//! - [`routes`]: cryptokey routing: which client owns each tunnel address, which session carries it.
//! - [`tunnel`]: the TUN data path.
//! - [`reply`]: sealed replies and REJECTs, within [`reject_budget`] per (session, source).
//! - [`replay`]: the controller's own client-to-gateway replay window, behind XDP's.
//! - [`counters`]: every counter `jvpn stats` and the metrics read.
//! - [`clock`]: the monotonic clock every timer and the state machine read.
//! - [`reconcile`]: start-up from the store, with or without surviving maps.
//! - [`timers`]: keepalive and idle timeouts.
//! - [`retention`]: terminated sessions leave the table and the map after a while.
//! - [`roaming`], [`terminated`]: XDP drops answered with a REJECT.
//! - [`udp`]: the gateway's UDP socket, bound to `listen` and to the XDP interface.
//! - [`api`]: what the control socket and the metrics read.
//! - [`epoch`], [`fault`], [`latency`]: the nonce epoch, crash injection, the commit-to-map
//!   latency histogram.
//!
//! The XDP program stays attached when the gateway stops: enforcement outlives the controller,
//! and the next start adopts it.

pub mod api;
pub mod clock;
pub mod cluster;
pub mod core;
pub mod counters;
pub mod epoch;
pub mod fault;
pub mod handshake;
pub mod handshake_pool;
pub mod hello_guard;
pub mod hello_replay;
pub mod latency;
pub mod live;
pub mod ownership;
pub mod ownership_book;
pub mod reattach;
pub mod reconcile;
pub mod reject_budget;
pub mod replay;
pub mod reply;
pub mod retention;
pub mod roaming;
pub mod routes;
pub mod session_map;
pub mod shell;
pub mod takeover;
pub mod terminated;
pub mod timers;
pub mod traffic;
pub mod tunnel;
pub mod udp;

#[cfg(test)]
mod tests;

pub use self::core::{Applied, ApplyError, Gateway, GatewayParts};
pub use session_map::SessionMap;
pub use shell::{run, GatewayIo, RunSettings};

use crate::config::ConfigError;
use crate::control::SocketError;
use crate::dataplane::DataplaneError;
use crate::session::TimersError;
use crate::store::StoreError;

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The config file is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The timeouts in the config are inconsistent.
    #[error("bad timeouts in the gateway config: {0}")]
    Timers(#[from] TimersError),
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The clustered store could not be opened.
    #[error(transparent)]
    Cluster(#[from] cluster::ClusterError),
    /// The boot epoch could not be advanced.
    #[error(transparent)]
    Epoch(#[from] epoch::EpochError),
    /// The XDP dataplane could not be loaded or adopted.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),
    /// The control socket could not be bound.
    #[error(transparent)]
    ControlSocket(#[from] SocketError),
    /// The tunnel device could not be created.
    #[error(transparent)]
    Tun(#[from] crate::tun::TunError),
    /// Capabilities could not be dropped or systemd not told the gateway is ready.
    #[error(transparent)]
    Service(#[from] crate::service::ServiceError),
    /// A socket could not be bound or a thread started.
    #[error("cannot {what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl GatewayError {
    /// Wraps an I/O error as the failure to do `what`.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GatewayError {
        let what = what.into();
        move |source| GatewayError::Io { what, source }
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GatewayError {
    GatewayError::io(what)
}
