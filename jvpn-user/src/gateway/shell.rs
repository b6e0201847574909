//! The I/O shell: [`run`] serves a gateway on the sockets, store, maps and TUN device it is given
//! ([`GatewayIo`]), as mini-redis's `run(listener, shutdown)` does, until `shutdown` completes.
//! What to build them from is the binary's business (`cli::gateway_cmd`, the composition root).
//!
//! One datagram: [`receive_loop`] reads it (with the rest of its UDP GRO run) and dispatches it
//! by message type. DATA and KEEPALIVE
//! are handled inline ([`Gateway::on_traffic`], then cryptokey routing and the TUN write); a
//! HELLO is screened inline and queued for a handshake worker ([`super::handshake`]); control
//! messages (REATTACH_REQUEST, PATH_RESPONSE, TERMINATE) run on their own tasks so their
//! compare-and-sets share group commits. Beside the receive loop run the TUN reader
//! ([`super::tunnel`]), the timers, the HELLO guard's rotation, the dataplane's event stream
//! ([`super::roaming`], [`super::terminated`]), the control socket and the metrics endpoint.

use super::core::{Gateway, GatewayParts};
use super::handshake::HelloJob;
use super::handshake_pool::HandshakePool;
use super::session_map::SessionMap;
use super::{api, io, timers, tunnel, GatewayError};
use crate::config::GatewaySettings;
use crate::datapath::coalesce::TunWrites;
use crate::datapath::gro;
use crate::dataplane::{EventReader, ProgramLogForwarder};
use crate::events::EventRecord;
use crate::session::{SessionMachine, Timers};
use crate::store::SessionStore;
use crate::tun::TunDevice;
use jvpn_common::{MessageType, RejectReason, WireHeader};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, UdpSocket, UnixListener};

/// What the gateway serves on: everything it reads from and writes to, opened by the caller.
pub struct GatewayIo {
    /// The UDP socket every jvpn message arrives on and leaves from ([`super::udp::bind`]).
    pub socket: UdpSocket,
    /// The authoritative session store.
    pub store: Arc<dyn SessionStore>,
    /// The XDP maps (the loaded or adopted dataplane).
    pub map: Box<dyn SessionMap>,
    /// Where the loaded map came from: new maps owe a RECOVERING pass ([`super::reconcile`]).
    pub origin: crate::dataplane::Origin,
    /// The XDP program's security event stream.
    pub dataplane_events: EventReader,
    /// The XDP program's log records, if the object has them.
    pub program_logs: Option<ProgramLogForwarder>,
    /// The TUN device, if the config has a tunnel ([`tunnel::open_device`]).
    pub tun: Option<Arc<TunDevice>>,
    /// The control socket's listener.
    pub control: UnixListener,
    /// The metrics endpoint's listener, if one was asked for.
    pub metrics: Option<TcpListener>,
}

/// What the gateway runs with, validated by the caller.
pub struct RunSettings {
    /// The gateway config (keys, clients, timeouts, tunnel).
    pub config: GatewaySettings,
    /// The state machine's timers, from the config's timeouts.
    pub timers: Timers,
    /// This run's boot epoch ([`super::epoch::advance`]).
    pub epoch: u64,
    /// The interface the dataplane enforces on (reported by `jvpn status`).
    pub iface: String,
    /// The UDP port (reported by `jvpn status`).
    pub port: u16,
    /// The state dir (the store, the RECOVERING debt).
    pub state_dir: PathBuf,
}

/// Runs the gateway on `io` with `settings` until `shutdown` completes or the socket fails.
pub async fn run(
    io: GatewayIo,
    settings: RunSettings,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), GatewayError> {
    let GatewayIo {
        socket,
        store,
        map,
        origin,
        mut dataplane_events,
        program_logs,
        tun,
        control,
        metrics,
    } = io;
    let iface = settings.iface.clone();
    let port = settings.port;
    let epoch = settings.epoch;
    let gateway = Arc::new(
        Gateway::new(GatewayParts {
            settings: settings.config,
            machine: SessionMachine::new(settings.timers),
            store,
            dataplane: map,
            socket,
            epoch,
            iface: settings.iface,
            port,
            state_dir: settings.state_dir,
        })
        .map_err(GatewayError::io("start the store's commit thread"))?,
    );
    let report = gateway.reconcile(origin, gateway.clock.now()).await?;
    tracing::info!(
        %iface,
        port,
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
    tasks.spawn(crate::control::server::run(control, api.clone(), stopped()));
    if let Some(listener) = metrics {
        let registry = Arc::new(crate::metrics::registry(
            gateway.counters.clone(),
            api.clone(),
        ));
        tasks.spawn(crate::metrics::http::serve(listener, registry, stopped()));
    }
    if let Some(forwarder) = program_logs {
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

    // Everything is open: XDP attached, the store open, every socket bound.
    crate::service::serving()?;
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

/// Reads runs of datagrams (UDP GRO: a sender's GSO run, or what the device's GRO merged, in one
/// read) until the socket fails, and dispatches each datagram on its own; the DATA packets of a
/// run that pass every check go into the TUN device together, their TCP segments merged
/// ([`crate::datapath::coalesce`]). Control messages are handled on their own tasks so their
/// commits share group commits.
async fn receive_loop(
    gateway: Arc<Gateway>,
    tun: Option<Arc<TunDevice>>,
    pool: HandshakePool<HelloJob>,
) -> Result<(), GatewayError> {
    if let Err(e) = gro::enable(&gateway.socket) {
        tracing::warn!(error = %e, "no UDP GRO on the gateway socket; reading one datagram at a time");
    }
    let mut run = gro::Received::default();
    let mut writes = TunWrites::default();
    loop {
        run.recv(&gateway.socket)
            .await
            .map_err(io("receive on the gateway socket"))?;
        let Some(from) = run.from() else {
            continue;
        };
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        let now = gateway.clock.now();
        for datagram in run.datagrams_mut() {
            dispatch(&gateway, datagram, from, now, &pool, &mut writes).await;
        }
        if let Some(tun) = &tun {
            if let Err(e) = tun.send_batch(&mut writes).await {
                tracing::warn!(error = %e, "cannot write a packet to the tunnel");
            }
        }
        writes.clear();
    }
}

/// Handles one datagram by message type; an opened DATA packet that cryptokey routing admits
/// goes into `writes`.
async fn dispatch(
    gateway: &Arc<Gateway>,
    datagram: &mut [u8],
    from: SocketAddr,
    now: crate::session::Millis,
    pool: &HandshakePool<HelloJob>,
    writes: &mut TunWrites,
) {
    let header = match WireHeader::parse(datagram) {
        Ok(h) => h,
        Err(e) => {
            gateway.bus.publish(
                EventRecord::refusal(None, RejectReason::Malformed)
                    .with_peer(from)
                    .with_detail(format!("malformed header in the controller: {e:?}")),
            );
            return;
        }
    };
    match header.message_type() {
        Some(MessageType::Data | MessageType::Keepalive) => {
            let id = header.session_id.get();
            let packet = gateway.on_traffic(datagram, from, now).await;
            if let Some(packet) = packet {
                if gateway.admit_upstream(id, packet) {
                    writes.push(packet);
                }
            }
        }
        Some(MessageType::Hello) => {
            if let Some(job) = gateway.screen_hello(datagram, from, now) {
                queue_hello(gateway, pool, job, now);
            }
        }
        Some(
            t @ (MessageType::ReattachRequest | MessageType::PathResponse | MessageType::Terminate),
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
        gateway.counters.reject(RejectReason::HandshakeBusy);
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
