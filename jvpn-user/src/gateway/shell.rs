//! The I/O shell: [`run`] serves a gateway on the sockets, store, maps and TUN device it is given
//! ([`GatewayIo`]), as mini-redis's `run(listener, shutdown)` does, until `shutdown` completes.
//! What to build them from is the binary's business (`cli::gateway_cmd`, the composition root).
//!
//! One datagram: [`receive_loop`] reads it (with the rest of its UDP GRO run),
//! [`Controller::handle`] decides what it does, and the
//! [`Executor`] performs the effects: a KEEPALIVE's answer inline, DATA's TUN write with the run's
//! others (merged), a
//! screened HELLO into the handshake workers' queue ([`super::handshake`]), and a step that
//! commits (REATTACH via PATH_RESPONSE, TERMINATE) on its own task, so concurrent
//! compare-and-sets share group commits. Beside the receive loop run the TUN reader
//! ([`super::tunnel`]), the timers ([`Controller::tick`]), the HELLO guard's rotation, the
//! dataplane's event stream ([`Controller::on_dataplane_drop`]), the control socket and the
//! metrics endpoint.

use super::clock::ControllerClock;
use super::core::{Controller, ControllerParts};
use super::effect::Effect;
use super::executor::{Executor, ExecutorParts, Place};
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
    /// The config file `config` was read from: `jvpn reload` and SIGHUP read it again.
    pub config_path: PathBuf,
    /// PATH_CHALLENGEs a second to RECOVERING sessions after lost maps ([`super::recovery`]);
    /// 0 sends none.
    pub recovery_challenges_per_second: u32,
    /// Whether the socket reads runs of datagrams (`UDP_GRO`). Only behind a driver-mode
    /// program, which judges every frame before GRO merges them; behind generic XDP, which runs
    /// after GRO, the socket's `UDP_GRO` would have the stack merge the wire's datagrams into
    /// runs before the program, which drops them whole (docs/datapath.md, "Merged runs").
    pub udp_gro: bool,
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
    let recovery_pace = settings.recovery_challenges_per_second;
    let udp_gro = settings.udp_gro;
    let (controller, first) = Controller::new(ControllerParts {
        settings: settings.config,
        machine: SessionMachine::new(settings.timers),
        epoch,
        capacity: map.session_capacity(),
        clock: ControllerClock::system(),
        seed: None,
    });
    let exec = Executor::start(
        controller,
        first,
        ExecutorParts {
            socket,
            store,
            map,
            tun,
            place: Place {
                iface: settings.iface,
                port,
                state_dir: settings.state_dir,
            },
        },
    )
    .await
    .map_err(GatewayError::io("start the store's commit thread"))?;
    let report = exec
        .reconcile(origin, exec.controller().clock().now())
        .await?;
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
    let config_path = settings.config_path.clone();
    let api: Arc<dyn crate::control::GatewayApi> =
        Arc::new(api::GatewayHandle(exec.clone(), config_path.clone()));
    tasks.spawn(super::reload::on_sighup(exec.clone(), config_path));
    tasks.spawn(crate::control::server::run(control, api.clone(), stopped()));
    if let Some(listener) = metrics {
        let registry = Arc::new(crate::metrics::registry(
            exec.controller().counters().clone(),
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
        let exec = exec.clone();
        tasks.spawn(async move {
            loop {
                match dataplane_events.next().await {
                    Ok(event) => {
                        exec.bus().publish(EventRecord::from_dataplane(&event));
                        let controller = exec.controller();
                        controller.client_dropped(event.session_id, event.reason);
                        let now = controller.clock().now();
                        let effects = controller.on_dataplane_drop(&event, now);
                        exec.execute(effects).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "the dataplane event stream failed");
                        return;
                    }
                }
            }
        });
    }
    tasks.spawn(report_dataplane_losses(exec.clone()));
    tasks.spawn(guard_hellos(exec.clone()));
    tasks.spawn(run_timers(exec.clone()));
    tasks.spawn(super::recovery::run(exec.clone(), recovery_pace));
    tasks.spawn(super::ownership::run(exec.clone()));
    if let Some(tun) = exec.tun() {
        tasks.spawn(tunnel::run_tun_reader(exec.clone(), tun.clone()));
    }

    // Everything is open: XDP attached, the store open, every socket bound.
    crate::service::serving()?;
    let pool = start_handshake_pool(&exec)?;
    let receive = receive_loop(exec.clone(), pool, udp_gro);
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

/// Most runs read (the first awaited, the rest already queued) before their packets are written
/// to the TUN device: 4 runs of about 20 datagrams fill a 64 KiB superpacket.
const MAX_RUNS_PER_TUN_WRITE: usize = 4;

/// Reads runs of datagrams (UDP GRO: a sender's GSO run, or what the device's GRO merged, in one
/// read; with `udp_gro` false, one datagram a read) until the socket fails. Each datagram is handled and its step performed on its own, as
/// before; the DATA packets of a run that passed every check ([`Effect::WriteTun`]) are taken out
/// of their steps and written to the TUN device together at the end of the run (or of up to
/// [`MAX_RUNS_PER_TUN_WRITE`] runs, when more were already queued), consecutive TCP segments of a
/// flow merged ([`crate::datapath::coalesce`]).
async fn receive_loop(
    exec: Arc<Executor>,
    pool: HandshakePool<HelloJob>,
    udp_gro: bool,
) -> Result<(), GatewayError> {
    if !udp_gro {
        tracing::info!("no UDP GRO on the gateway socket behind generic XDP; one datagram a read");
    } else if let Err(e) = gro::enable(exec.socket()) {
        tracing::warn!(error = %e, "no UDP GRO on the gateway socket; reading one datagram at a time");
    }
    let mut run = gro::Received::default();
    let mut writes = TunWrites::default();
    let mut effects = Vec::new();
    loop {
        run.recv(exec.socket())
            .await
            .map_err(io("receive on the gateway socket"))?;
        let mut runs = 1;
        loop {
            handle_run(&exec, &pool, &mut run, &mut writes, &mut effects).await;
            // Runs that already wait are opened before the TUN write, so that a flow's segments
            // of several runs leave as one superpacket (and the inner TCP stack answers it with
            // one ACK, which costs a seal and a send back).
            if runs == MAX_RUNS_PER_TUN_WRITE || writes.is_empty() {
                break;
            }
            match run.try_recv(exec.socket()) {
                Ok(true) => runs += 1,
                Ok(false) => break,
                Err(e) => return Err(io("receive on the gateway socket")(e)),
            }
        }
        if let Some(tun) = exec.tun() {
            if let Err(e) = tun.send_batch(&mut writes).await {
                tracing::warn!(error = %e, "cannot write a packet to the tunnel");
            }
        }
        writes.clear();
    }
}

/// Handles each datagram of one run and performs its step; the DATA packets it admitted go into
/// `writes` for the caller to write to the TUN device.
async fn handle_run(
    exec: &Arc<Executor>,
    pool: &HandshakePool<HelloJob>,
    run: &mut gro::Received,
    writes: &mut TunWrites,
    effects: &mut Vec<Effect>,
) {
    let Some(from) = run.from() else {
        return;
    };
    let from = SocketAddr::new(from.ip().to_canonical(), from.port());
    let controller = exec.controller();
    let now = controller.clock().now();
    for datagram in run.datagrams_mut() {
        if exec.needs_takeover(datagram) {
            // The store read of a takeover must not hold up the receive loop.
            let (exec, datagram) = (exec.clone(), datagram.to_vec());
            tokio::spawn(async move { exec.take_over_and_receive(datagram, from).await });
            continue;
        }
        controller.handle(datagram, from, now, effects);
        effects.retain(|effect| match effect {
            Effect::WriteTun { packet } => {
                if let Some(packet) = datagram.get(packet.clone()) {
                    writes.push(packet);
                }
                false
            }
            _ => true,
        });
        exec.run_step(effects, datagram, Some(pool)).await;
    }
}

/// Starts the handshake workers: each runs a HELLO's handshake (the DH) on its own thread and
/// hands the effects (the new session's commit) back to the runtime.
fn start_handshake_pool(exec: &Arc<Executor>) -> Result<HandshakePool<HelloJob>, GatewayError> {
    let limits = exec.controller().settings.get().handshake;
    let runtime = tokio::runtime::Handle::current();
    let exec = exec.clone();
    HandshakePool::start(limits.workers, limits.queue, move |job: HelloJob| {
        let effects = exec.controller().handshake(job);
        if !effects.is_empty() {
            let exec = exec.clone();
            runtime.spawn(async move { exec.execute(effects).await });
        }
    })
    .map_err(io("start the handshake worker threads"))
}

/// Runs the timers ([`Controller::tick`]) every [`timers::TICK`] until the task is dropped.
/// Each due transition commits on its own task, so the sessions a network outage timed out
/// together share group commits instead of one fsync each; the next tick waits for them.
async fn run_timers(exec: Arc<Executor>) {
    let mut interval = tokio::time::interval(timers::TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let controller = exec.controller();
        let (commits, rest): (Vec<_>, Vec<_>) = controller
            .tick(controller.clock().now())
            .into_iter()
            .partition(|e| matches!(e, Effect::Commit { .. }));
        let mut running = tokio::task::JoinSet::new();
        for commit in commits {
            let exec = exec.clone();
            running.spawn(async move { exec.execute(vec![commit]).await });
        }
        exec.execute(rest).await;
        while running.join_next().await.is_some() {}
    }
}

/// Rotates the cookie secret and pushes the HELLO guard into XDP when it changes (load ending).
async fn guard_hellos(exec: Arc<Executor>) {
    let mut interval = tokio::time::interval(Duration::from_millis(100));
    loop {
        interval.tick().await;
        let now = exec.controller().clock().now();
        if exec.controller().hello_guard.tick(now) {
            exec.push_hello_guard(now);
        }
    }
}

/// Once a second, turns the dataplane's per-CPU event-loss counters into EVENTS_LOST records.
async fn report_dataplane_losses(exec: Arc<Executor>) {
    let mut reported = 0u64;
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    loop {
        interval.tick().await;
        let total = exec.map().counters().map(|c| {
            let loss = c.total_event_loss();
            loss.rate_limited + loss.ring_full
        });
        match total {
            Ok(total) if total > reported => {
                exec.bus().report_dataplane_loss(total - reported);
                reported = total;
            }
            Ok(total) => reported = total,
            Err(e) => tracing::warn!(error = %e, "cannot read the dataplane counters"),
        }
    }
}
