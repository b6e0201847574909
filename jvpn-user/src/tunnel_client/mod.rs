//! `jvpn client`: the VPN client with a TUN device, on top of [`ClientConnection`].
//!
//! It connects, brings up the TUN device with the tunnel address the WELCOME gave, and then runs
//! six loops until shut down: TUN -> session (DATA), session -> TUN, keepalives at the
//! WELCOME's interval, rekeys when the keys are due (docs/rekey.md), a supervisor that reattaches when acknowledgements stop (`liveness`; promptly when DATA goes
//! unanswered, [`unanswered`]), when
//! the gateway REJECTs traffic as TRANSPORT_MISMATCH (a NAT rebinding) or when `jvpn client jump`
//! asks through the [`control`] socket, and a [`route_watch`] that
//! reattaches as soon as the path to the gateway changes (an address, route or link). It fails
//! closed: whenever the session says it cannot be trusted to go on
//! ([`ConnectionError::needs_rehandshake`]) it starts a new handshake rather than guessing. A
//! client the gateway removed (TERMINATE `CLIENT_REMOVED`) tries one new handshake and, if it goes
//! unanswered, stops with [`TunnelClientError::NoLongerAuthorised`].

pub mod control;
mod data;
mod liveness;
pub mod route_watch;
pub mod unanswered;

use crate::client_session::{ClientConnection, ConnectOptions, ConnectionError, LocalBinding};
use crate::config::{ClientSettings, ConfigError};
use crate::session::SessionId;
use crate::tun::{TunDevice, TunError};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use jvpn_common::control::{TerminateCause, WelcomePayload};
use route_watch::{Decision, RouteWatch};
use std::future::Future;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
use tokio::sync::Notify;

pub use control::{control_socket_path, request_jump, ControlRequest};

/// The tunnel device's name when neither the command line nor the config names one.
pub const DEFAULT_CLIENT_TUN: &str = "jvpn0";
/// Keepalive interval when the gateway's WELCOME does not state one.
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(10);

/// Why the client could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum TunnelClientError {
    /// The config file or command-line keys are unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The handshake or the session failed.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The TUN device could not be created.
    #[error(transparent)]
    Tun(#[from] TunError),
    /// The control socket could not be used.
    #[error("control socket {}: {source}; is `jvpn client` running with this --tun?", path.display())]
    Control {
        /// The socket path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The running client refused or failed the jump.
    #[error("the client could not jump: {0}")]
    JumpRefused(String),
    /// The gateway ended the session because its config no longer holds this client as it was
    /// (TERMINATE `CLIENT_REMOVED`), and a new handshake went unanswered.
    #[error("the gateway no longer authorises this client: it ended the session ({}) and did not answer a new handshake; ask the gateway's operator whether this key and its addresses are still configured", crate::client_session::refusal::cause_text(*cause))]
    NoLongerAuthorised {
        /// The cause the gateway's TERMINATE gave.
        cause: TerminateCause,
    },
}

/// What `jvpn client` runs with.
#[derive(Clone, Debug)]
pub struct TunnelClientOptions {
    /// Gateway, keys and optional TUN name.
    pub settings: ClientSettings,
    /// The TUN device's name.
    pub tun: String,
    /// The interface to send from at the start, or any.
    pub uplink: Option<String>,
    /// Retries, timeouts and the rekey limits of the session.
    pub connect: ConnectOptions,
}

/// The addresses the WELCOME gave this client.
pub fn tunnel_addresses(welcome: &WelcomePayload) -> Vec<IpNet> {
    let mut addresses = Vec::new();
    let v4 = Ipv4Addr::from(welcome.ipv4);
    if !v4.is_unspecified() {
        if let Ok(net) = Ipv4Net::new(v4, welcome.ipv4_prefix_len) {
            addresses.push(IpNet::V4(net));
        }
    }
    let v6 = Ipv6Addr::from(welcome.ipv6);
    if !v6.is_unspecified() {
        if let Ok(net) = Ipv6Net::new(v6, welcome.ipv6_prefix_len) {
            addresses.push(IpNet::V6(net));
        }
    }
    addresses
}

fn binding(uplink: &Option<String>) -> LocalBinding {
    uplink
        .as_ref()
        .map_or_else(LocalBinding::any, LocalBinding::interface)
}

/// The running client: its connection, device and current uplink.
struct Client {
    connection: ClientConnection,
    tun: TunDevice,
    uplink: Mutex<Option<String>>,
    /// Raised when the gateway says this client's packets arrive from a transport the session
    /// is not bound to (a NAT rebinding); the supervisor reattaches.
    transport_changed: Notify,
    /// The session version the gateway's TRANSPORT_MISMATCH named: a notice that outlived the
    /// reattach it caused (the version moved on) is not acted on twice.
    mismatch_at_version: AtomicU64,
}

impl Client {
    fn uplink(&self) -> Option<String> {
        self.uplink
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Reattaches from `uplink` (or the current one); a jump the session cannot survive becomes a
    /// new handshake. Returns the version the session is at afterwards.
    async fn jump(&self, uplink: Option<String>) -> Result<u64, ConnectionError> {
        self.jump_to(uplink.or_else(|| self.uplink())).await
    }

    /// Reattaches from exactly `uplink`; `None` lets the routing table choose.
    async fn jump_to(&self, uplink: Option<String>) -> Result<u64, ConnectionError> {
        let to = binding(&uplink);
        let result = match self.connection.jump(to.clone()).await {
            Err(e) if e.needs_rehandshake() => {
                tracing::warn!(error = %e, "the jump failed closed; starting a new handshake");
                self.connection.rehandshake(to).await.map(|_| ())
            }
            other => other.map(|_| ()),
        };
        result?;
        *self
            .uplink
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = uplink;
        Ok(self.connection.state_version())
    }

    /// Rekeys the session when its keys are due ([`ClientConnection::run_rekeys`]); a failed
    /// send is retried at the next due time, a closed session is the receive loop's to restart.
    async fn rekey(&self) -> Result<(), TunnelClientError> {
        loop {
            if let Err(e) = self.connection.run_rekeys().await {
                tracing::debug!(error = %e, "a REKEY_INIT was not sent");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Reattaches as soon as the path to the gateway changes under the session ([`route_watch`]).
    /// Without rtnetlink it logs why and leaves reattaching to silence and `jvpn client jump`.
    async fn follow_routes(&self) -> Result<(), TunnelClientError> {
        let mut watch = match RouteWatch::new(self.connection.gateway(), self.tun.name()) {
            Ok(watch) => watch,
            Err(e) => return stop_following_routes(e).await,
        };
        loop {
            let uplink = self.uplink();
            let local = self.connection.local_addr().ip();
            match watch.check(local, uplink.as_deref()) {
                Ok(Decision::Stay) => {}
                Ok(Decision::Stranded(why)) => tracing::warn!("{why}; waiting for a route"),
                Ok(Decision::Reattach { uplink, reason }) => {
                    tracing::warn!("{reason}; reattaching");
                    match self.jump_to(uplink).await {
                        Ok(version) => tracing::info!(
                            state_version = version,
                            "reattached after the path change"
                        ),
                        Err(e) => {
                            tracing::warn!(error = %e, "the reattach failed; trying again at the next change, or when the gateway falls silent")
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot look at the path to the gateway"),
            }
            if let Err(e) = watch.changed().await {
                return stop_following_routes(e).await;
            }
        }
    }

    /// Serves `jvpn client jump` on `listener`.
    async fn serve_control(&self, listener: UnixListener) -> Result<(), TunnelClientError> {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            if BufReader::new(read).read_line(&mut line).await.is_err() {
                continue;
            }
            let answer = match ControlRequest::parse(&line) {
                Some(ControlRequest::Jump { uplink }) => match self.jump(uplink).await {
                    Ok(version) => format!("ok {version}\n"),
                    Err(e) => format!("error {e}\n"),
                },
                None => format!("error unknown request {:?}\n", line.trim()),
            };
            let _ = write.write_all(answer.as_bytes()).await;
        }
    }
}

/// Logs why route changes cannot be watched and never completes: the client goes on without.
async fn stop_following_routes(
    error: route_watch::RouteWatchError,
) -> Result<(), TunnelClientError> {
    tracing::warn!("{error}");
    std::future::pending().await
}

/// Binds the control socket, replacing a stale one.
fn bind_control(path: &std::path::Path) -> Result<UnixListener, TunnelClientError> {
    let control = |source| TunnelClientError::Control {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(control)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(control(e)),
        _ => {}
    }
    UnixListener::bind(path).map_err(control)
}

/// Runs the client until `shutdown` completes, then terminates the session.
pub async fn run(
    options: TunnelClientOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), TunnelClientError> {
    let connection = ClientConnection::connect_with_settings(
        &options.settings,
        binding(&options.uplink),
        options.connect,
    )
    .await?;
    let welcome = connection.welcome();
    let addresses = tunnel_addresses(&welcome);
    let tun = TunDevice::create(&options.tun, welcome.tunnel_mtu.get(), &addresses)?;
    let socket_path = control_socket_path(&options.tun);
    let listener = bind_control(&socket_path)?;
    let interval = connection.keepalive_interval().unwrap_or(DEFAULT_KEEPALIVE);
    tracing::info!(
        session = %SessionId::show(connection.session_id()),
        state_version = connection.state_version(),
        tun = tun.name(),
        ?addresses,
        control = %socket_path.display(),
        "jvpn client connected"
    );
    let client = Arc::new(Client {
        connection,
        tun,
        uplink: Mutex::new(options.uplink),
        transport_changed: Notify::new(),
        mismatch_at_version: AtomicU64::new(0),
    });
    let result = tokio::select! {
        () = shutdown => Ok(()),
        r = client.upstream() => r,
        r = client.downstream() => r,
        r = client.supervise(interval) => r,
        r = client.rekey() => r,
        r = client.follow_routes() => r,
        r = client.serve_control(listener) => r,
    };
    let _ = std::fs::remove_file(&socket_path);
    if let Err(e) = client
        .connection
        .terminate(TerminateCause::ClientClosed)
        .await
    {
        tracing::debug!(error = %e, "the TERMINATE was not sent");
    }
    result
}
