//! The gateway daemon: the single authority over session state on a node.
//!
//! - [`core`]: [`Gateway`] and [`Gateway::apply`], the one path by which a session changes
//!   (state machine, compare-and-set with audit, cache, XDP map, events).
//! - [`handshake`]: HELLO -> session at version 1 -> WELCOME, in three stages.
//! - [`handshake_pool`]: the bounded handshake queue and its worker threads.
//! - [`hello_guard`]: mac1 key, cookie secrets, "under load", and their push into XDP.
//! - [`hello_replay`]: the atomic HELLO replay reservation and the per-client session cap.
//! - [`reattach`]: REATTACH_REQUEST, PATH_CHALLENGE / PATH_RESPONSE, the reattach CAS.
//! - [`traffic`]: DATA, KEEPALIVE, TERMINATE.
//! - [`tunnel`]: the TUN data path and cryptokey routing.
//! - [`reply`]: sealed replies and REJECTs, within [`reject_budget`] per (session, source).
//! - [`replay`]: the controller's own client-to-gateway replay window, behind XDP's.
//! - [`clock`]: the monotonic clock every timer and the state machine read.
//! - [`reconcile`]: start-up from the store, with or without surviving maps.
//! - [`timers`]: keepalive and idle timeouts.
//! - [`retention`]: terminated sessions leave the table and the map after a while.
//! - [`roaming`]: a client whose NAT mapping changed is told to reattach.
//! - [`udp`]: the gateway's UDP socket, bound to `listen` and to the XDP interface.
//! - [`api`]: what the control socket and the metrics read.
//! - [`live`], [`epoch`], [`fault`], [`latency`]: the session cache, the nonce epoch, crash
//!   injection, the commit-to-map latency histogram.
//!
//! [`run`] wires them to a UDP socket (bound to the config's `listen` address and to the
//! dataplane's interface), the pinned XDP dataplane, the redb store, the control
//! socket and the metrics endpoint, and runs until shut down. The XDP program stays attached
//! when the gateway stops: enforcement outlives the controller, and the next start adopts it.

pub mod api;
pub mod clock;
pub mod cluster;
pub mod core;
pub mod epoch;
pub mod fault;
pub mod handshake;
pub mod handshake_pool;
pub mod hello_guard;
pub mod hello_replay;
pub mod latency;
pub mod live;
pub mod reattach;
pub mod reconcile;
pub mod reject_budget;
pub mod replay;
pub mod reply;
pub mod retention;
pub mod roaming;
pub mod terminated;
pub mod timers;
pub mod traffic;
pub mod tunnel;
pub mod udp;

pub use self::core::{Applied, ApplyError, Gateway, GatewayParts};

use crate::cli::GatewayOptions;
use crate::config::{ConfigError, GatewaySettings};
use crate::control::{bind_control_socket, SocketError};
use crate::dataplane::{Dataplane, DataplaneError, DataplaneOptions};
use crate::events::EventRecord;
use crate::session::{SessionMachine, Timers, TimersError};
use crate::store::{RedbStore, StoreError};
use crate::tun::TunDevice;
use handshake::HelloJob;
use handshake_pool::HandshakePool;
use jvpn_common::{MessageType, RejectReason, WireHeader};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GatewayError {
    let what = what.into();
    move |source| GatewayError::Io { what, source }
}

/// Runs the gateway with `options` until `shutdown` completes.
pub async fn run(
    options: GatewayOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError> {
    let settings = GatewaySettings::load(&options.config)?;
    let timers = Timers::new(
        settings.timeouts.keepalive_timeout.as_millis() as u64,
        settings.timeouts.idle_timeout.as_millis() as u64,
    )?;
    // Opening the store creates the state dir 0700 (or narrows it): it holds session keys.
    let redb = RedbStore::open(&options.state_dir)?;
    let epoch = epoch::advance(&options.state_dir, &redb)?;
    let (store, _state_dir_lock) = cluster::session_store(
        &options.store,
        settings.cluster.as_ref(),
        &options.config,
        redb,
    )?;
    let mut dp_options = DataplaneOptions::new(options.iface.clone());
    dp_options.port = options.port;
    dp_options.max_sessions = options.max_sessions;
    dp_options.xdp_mode = options.xdp_mode;
    if !crate::dataplane::PinDir::new(&dp_options.pin_root, &options.iface)?.has_link() {
        // The maps are lost: every live session owes a move to RECOVERING (see `reconcile`).
        reconcile::RecoveryOwed::new(&options.state_dir)
            .owe()
            .map_err(io("record the owed RECOVERING pass in the state dir"))?;
    }
    let dataplane = Dataplane::open_or_load(&dp_options)?;
    let origin = dataplane.origin();
    let mut dataplane_events = dataplane.take_event_reader()?;
    let log_forwarder = dataplane.take_log_forwarder();

    let tun = open_tunnel(&settings)?;
    let socket = udp::bind(settings.listen, options.port, &options.iface)?;
    crate::socket_buffers::enlarge(&socket);
    let (control_listener, _control_guard) = bind_control_socket(&options.socket)?;

    let gateway = Arc::new(
        Gateway::new(core::GatewayParts {
            settings,
            machine: SessionMachine::new(timers),
            store,
            dataplane,
            socket,
            epoch,
            iface: options.iface.clone(),
            port: options.port,
            state_dir: options.state_dir.clone(),
        })
        .map_err(io("start the store's commit thread"))?,
    );
    let report = gateway.reconcile(origin, gateway.clock.now()).await?;
    tracing::info!(
        iface = %options.iface,
        port = options.port,
        dataplane = ?origin,
        epoch,
        loaded = report.loaded,
        recovered = report.recovered,
        "jvpn gateway running"
    );

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let mut tasks = tokio::task::JoinSet::new();
    let api: Arc<dyn crate::control::GatewayApi> = Arc::new(api::GatewayHandle(gateway.clone()));
    tasks.spawn(crate::control::server::run(
        control_listener,
        api.clone(),
        stopped(),
    ));
    if let Some(addr) = options.metrics {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(io(format!("bind the metrics address {addr}")))?;
        let registry = Arc::new(gateway.metrics.registry(api.clone()));
        tasks.spawn(crate::metrics::http::serve(listener, registry, stopped()));
    }
    if let Some(forwarder) = log_forwarder {
        tasks.spawn(async move {
            if let Err(e) = forwarder.run().await {
                tracing::warn!(error = %e, "the XDP program log stream stopped");
            }
        });
    }
    {
        let gateway = gateway.clone();
        tasks.spawn(async move {
            loop {
                match dataplane_events.next().await {
                    Ok(event) => {
                        gateway.bus.publish(EventRecord::from_dataplane(&event));
                        gateway.on_dataplane_drop(&event, gateway.clock.now()).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the dataplane event stream failed");
                        return;
                    }
                }
            }
        });
    }
    tasks.spawn(report_dataplane_losses(gateway.clone()));
    tasks.spawn(guard_hellos(gateway.clone()));
    tasks.spawn(timers::run(gateway.clone()));
    if let Some(tun) = &tun {
        tasks.spawn(tunnel::run_tun_reader(gateway.clone(), tun.clone()));
    }

    let pool = start_handshake_pool(&gateway)?;
    let receive = receive_loop(gateway.clone(), tun, pool);
    tokio::pin!(shutdown);
    let result = tokio::select! {
        () = &mut shutdown => Ok(()),
        r = receive => r,
    };
    tracing::info!("jvpn gateway stopping; the XDP program stays attached and enforcing");
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while tasks.len() > 1 {
            if tasks.join_next().await.is_none() {
                break;
            }
        }
    })
    .await;
    tasks.abort_all();
    result
}

/// Reads datagrams until the socket fails; control messages are handled on their own tasks so
/// their commits share group commits.
async fn receive_loop(
    gateway: Arc<Gateway>,
    tun: Option<Arc<TunDevice>>,
    pool: HandshakePool<HelloJob>,
) -> Result<(), GatewayError> {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (len, from) = gateway
            .socket
            .recv_from(&mut buf)
            .await
            .map_err(io("receive on the gateway socket"))?;
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        let now = gateway.clock.now();
        let datagram = &mut buf[..len];
        let header = match WireHeader::parse(datagram) {
            Ok(h) => h,
            Err(e) => {
                gateway.bus.publish(
                    EventRecord::refusal(None, RejectReason::Malformed)
                        .with_peer(from)
                        .with_detail(format!("malformed header in the controller: {e:?}")),
                );
                continue;
            }
        };
        match header.message_type() {
            Some(MessageType::Data | MessageType::Keepalive) => {
                let id = header.session_id.get();
                let packet = gateway.on_traffic(datagram, from, now).await;
                if let (Some(packet), Some(tun)) = (packet, &tun) {
                    if gateway.admit_upstream(id, packet) {
                        if let Err(e) = tun.send(packet).await {
                            tracing::warn!(error = %e, "cannot write a packet to the tunnel");
                        }
                    }
                }
            }
            Some(MessageType::Hello) => {
                if let Some(job) = gateway.screen_hello(datagram, from, now) {
                    queue_hello(&gateway, &pool, job, now);
                }
            }
            Some(
                t @ (MessageType::ReattachRequest
                | MessageType::PathResponse
                | MessageType::Terminate),
            ) => {
                let gateway = gateway.clone();
                let datagram = datagram.to_vec();
                tokio::spawn(async move {
                    match t {
                        MessageType::ReattachRequest => {
                            gateway.on_reattach_request(&datagram, from, now).await
                        }
                        MessageType::PathResponse => {
                            gateway.on_path_response(&datagram, from, now).await
                        }
                        _ => gateway.on_terminate(&datagram, from, now).await,
                    }
                });
            }
            _ => {
                gateway.bus.publish(
                    EventRecord::refusal(Some(header.session_id.get()), RejectReason::Malformed)
                        .with_peer(from)
                        .with_detail("a message type only the gateway sends"),
                );
            }
        }
    }
}

/// Starts the handshake workers: each reads a HELLO (the DH) on its own thread and hands the
/// verified handshake back to the runtime to commit.
fn start_handshake_pool(gateway: &Arc<Gateway>) -> Result<HandshakePool<HelloJob>, GatewayError> {
    let limits = gateway.settings.handshake;
    let runtime = tokio::runtime::Handle::current();
    let worker_gateway = gateway.clone();
    HandshakePool::start(limits.workers, limits.queue, move |job: HelloJob| {
        if let Some(read) = worker_gateway.read_hello(job) {
            let gateway = worker_gateway.clone();
            runtime.spawn(async move { gateway.finish_hello(read).await });
        }
    })
    .map_err(io("start the handshake worker threads"))
}

/// Queues a screened HELLO; a full queue refuses it (HANDSHAKE_BUSY). A queue an eighth full or
/// more puts the gateway under load (cookies required).
fn queue_hello(gateway: &Gateway, pool: &HandshakePool<HelloJob>, job: HelloJob, now: u64) {
    let from = job.from;
    let result = pool.try_submit(job);
    if pool.queued() >= (pool.capacity() / 8).max(1) || result.is_err() {
        let was = gateway.hello_guard.under_load(now);
        gateway.hello_guard.mark_load(now);
        if !was {
            gateway.push_hello_guard(now);
        }
    }
    if let Err(full) = result {
        gateway.metrics.reject(RejectReason::HandshakeBusy);
        gateway.bus.publish(
            EventRecord::refusal(None, RejectReason::HandshakeBusy)
                .with_peer(from)
                .with_message(MessageType::Hello, 0, 0)
                .with_detail(full.to_string()),
        );
    }
}

/// Rotates the cookie secret and pushes the HELLO guard into XDP when it changes (load ending).
async fn guard_hellos(gateway: Arc<Gateway>) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        interval.tick().await;
        let now = gateway.clock.now();
        if gateway.hello_guard.tick(now) {
            gateway.push_hello_guard(now);
        }
    }
}

/// Creates the TUN device with the gateway's tunnel addresses, if the config has a tunnel.
fn open_tunnel(settings: &GatewaySettings) -> Result<Option<Arc<TunDevice>>, GatewayError> {
    let addresses: Vec<ipnet::IpNet> = settings
        .tunnel
        .ipv4
        .map(ipnet::IpNet::V4)
        .into_iter()
        .chain(settings.tunnel.ipv6.map(ipnet::IpNet::V6))
        .collect();
    if addresses.is_empty() {
        return Ok(None);
    }
    let tun = TunDevice::create(&settings.tun, settings.mtu, &addresses)?;
    tracing::info!(
        tun = tun.name(),
        mtu = settings.mtu,
        ?addresses,
        "tunnel device up"
    );
    Ok(Some(Arc::new(tun)))
}

/// Once a second, turns the dataplane's per-CPU event-loss counters into EVENTS_LOST records.
async fn report_dataplane_losses(gateway: Arc<Gateway>) {
    let mut reported = 0u64;
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        let total = {
            let dataplane = gateway.dataplane.lock().unwrap_or_else(|p| p.into_inner());
            dataplane.counters().map(|c| {
                let loss = c.total_event_loss();
                loss.rate_limited + loss.ring_full
            })
        };
        match total {
            Ok(total) if total > reported => {
                gateway.bus.report_dataplane_loss(total - reported);
                reported = total;
            }
            Ok(total) => reported = total,
            Err(e) => tracing::warn!(error = %e, "cannot read the dataplane counters"),
        }
    }
}
