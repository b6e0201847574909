//! The gateway daemon: the single authority over session state on a node, as a sans-IO core (the
//! [`Controller`]) and an I/O shell (the [`Executor`] and [`run`]).
//!
//! Follow one datagram, in four files:
//! 1. [`shell`]: the receive loop reads it from the UDP socket and calls
//!    [`Controller::handle`] with a reusable effects buffer.
//! 2. [`dispatch`]: `handle` reads the header and calls the handler of its message type:
//!    [`traffic`] (DATA, KEEPALIVE, TERMINATE), [`reattach`] (REATTACH_REQUEST, PATH_RESPONSE),
//!    [`rekey`] (REKEY_INIT), [`handshake`] (HELLO). A handler authenticates the datagram
//!    ([`crate::crypto`]), passes its nonce through the controller's replay window ([`replay`]),
//!    asks the pure state machine
//!    ([`crate::session`]) what it does, and pushes [`Effect`]s: a sealed reply or REJECT
//!    ([`reply`]), an event, the opened packet's TUN write (after cryptokey routing,
//!    [`tunnel`]), or, for a version increment, a compare-and-set ([`Controller::apply_input`] in
//!    [`core`]) carrying a token that says how to continue.
//! 3. [`executor`]: the shell performs the effects in order; a compare-and-set goes through the
//!    group committer on its own task, and its outcome goes back to [`Controller::settle`]
//!    ([`settle`]), which installs the session and names its map entry; the shell writes the
//!    entry at once, then [`Controller::reply`] returns the events and the reply the commit owes
//!    (`effect::Then`), sealed only then.
//! 4. [`effect`]: every effect there is, and the commit token.
//!
//! Adding a message type: a handler `impl Controller` method pushing effects, and its arm in
//! [`dispatch`]. Adding an effect: a variant in [`effect`] and its arm in
//! [`Executor::perform`](executor). Timers come in through [`Controller::tick`], XDP drops through
//! [`Controller::on_dataplane_drop`] ([`roaming`], [`terminated`], [`replay_notice`],
//! [`lost_rekey_ack`]), HELLO handshakes (on the
//! worker threads of [`handshake_pool`]) through [`Controller::handshake`]; each returns effects.
//!
//! - [`core`]: the [`Controller`], its private state and [`Controller::apply_input`], the one
//!   path by which a session changes; [`settle`]: what follows its compare-and-set.
//! - [`session_map`]: what the shell needs of the XDP maps, as a trait the dataplane
//!   implements (and the unit tests fake).
//! - [`hello_guard`]: mac1 key, cookie secrets, "under load".
//! - [`hello_replay`]: the atomic HELLO replay reservation and the per-client session cap.
//! - [`rekey`]: REKEY_INIT -> new keys by CAS (cause REKEY) -> REKEY_ACK; the reject-after rule.
//! - [`lost_rekey_ack`]: the same REKEY_ACK again, for a while, to a client still at the version
//!   its rekey left.
//! - [`routes`]: cryptokey routing: which client owns each tunnel address, which session carries it.
//! - [`reject_budget`]: how many REJECTs per (session, source).
//! - [`replay_notice`]: the REJECT a replay from the bound transport gets (spec 6.2).
//! - [`report`]: machine events logged and published.
//! - [`live`]: the session table (records, keys, nonces, challenges, budgets).
//! - [`counters`]: every counter `jvpn stats` and the metrics read.
//! - [`client_totals`]: per-client totals for the metrics, their label bound.
//! - [`clock`]: the monotonic clock every timer and the state machine read.
//! - [`reconcile`]: start-up from the store, with or without surviving maps (shell side).
//! - [`timers`], [`retention`]: keepalive and idle timeouts, worn-out keys; terminated sessions leave the
//!   table and the map after a while.
//! - [`recovery`]: after lost maps, the paced PATH_CHALLENGE of every RECOVERING session at its
//!   last binding (a controller step per challenge, paced by the shell).
//! - [`ownership`], [`ownership_book`], [`takeover`]: in a cluster, releasing sessions another
//!   node owns, fencing when the lease lapses, and taking a session over from the shared store
//!   (the store read in the shell, the decision in the controller).
//! - [`udp`]: the gateway's UDP socket, bound to `listen` and to the XDP interface.
//! - [`api`]: what the control socket and the metrics read.
//! - [`show`]: `jvpn show`, per client and session.
//! - [`reload`]: `jvpn reload` and SIGHUP apply an edited config; the running config.
//! - [`epoch`], [`fault`], [`latency`]: the nonce epoch, crash injection, the commit-to-map
//!   latency histogram.
//!
//! The XDP program stays attached when the gateway stops: enforcement outlives the controller,
//! and the next start adopts it.

pub mod api;
pub mod client_totals;
pub mod clock;
pub mod cluster;
pub mod core;
pub mod counters;
pub mod dispatch;
pub mod effect;
pub mod epoch;
pub mod executor;
pub mod fault;
pub mod handshake;
pub mod handshake_pool;
pub mod hello_guard;
pub mod hello_replay;
pub mod latency;
pub mod live;
pub mod lost_rekey_ack;
pub mod ownership;
pub mod ownership_book;
pub mod reattach;
pub mod reconcile;
pub mod recovery;
pub mod reject_budget;
pub mod rekey;
pub mod reload;
pub mod replay;
pub mod replay_notice;
pub mod reply;
pub mod report;
pub mod retention;
pub mod roaming;
pub mod routes;
pub mod session_map;
pub mod settle;
pub mod shell;
pub mod show;
pub mod takeover;
pub mod terminated;
pub mod timers;
pub mod traffic;
pub mod tunnel;
pub mod udp;

#[cfg(test)]
mod tests;

pub use self::core::{Applied, ApplyError, Controller, ControllerParts, Decision};
pub use effect::Effect;
pub use executor::{Executor, ExecutorParts, Place};
pub use session_map::SessionMap;
pub use settle::Settled;
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
