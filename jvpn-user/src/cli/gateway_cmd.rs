//! `jvpn gateway`: the composition root. It builds what the gateway serves on from the validated
//! options (the config, the store and its boot epoch, the XDP dataplane, the TUN device, the UDP
//! socket, the control socket, the metrics listener) and hands them to [`gateway::run`], which
//! owns none of these choices (mini-redis's `bin/server.rs` and `server::run`).

use super::error::CliError;
use super::validate::GatewayOptions;
use crate::config::GatewaySettings;
use crate::control::bind_control_socket;
use crate::dataplane::{
    refuse_generic_on_veth, Dataplane, DataplaneOptions, PinDir, XdpAttachMode,
};
use crate::gateway::{
    self, cluster, epoch, reconcile, tunnel, udp, GatewayError, GatewayIo, RunSettings,
};
use crate::session::Timers;
use crate::store::RedbStore;
use std::future::Future;

/// Opens everything `options` names and runs the gateway on it until `shutdown` completes.
pub async fn run(
    options: GatewayOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), CliError> {
    let (io, settings, _guards) = open(&options).await?;
    gateway::run(io, settings, shutdown).await?;
    Ok(())
}

/// What must live as long as the gateway runs: the control socket's guard removes the socket
/// when dropped; with a clustered store, the embedded store stays open as the state dir's lock.
struct Guards {
    _control: crate::control::SocketGuard,
    _state_dir_lock: Option<RedbStore>,
}

/// Builds the gateway's I/O and settings, and the guards that must outlive them.
async fn open(options: &GatewayOptions) -> Result<(GatewayIo, RunSettings, Guards), GatewayError> {
    // Before anything is written (the epoch, the recovery debt, the pins): a refused start
    // changes nothing.
    refuse_generic_on_veth(&options.iface, options.xdp_mode)?;
    let config = GatewaySettings::load(&options.config)?;
    let timers = Timers::new(
        config.timeouts.keepalive_timeout.as_millis() as u64,
        config.timeouts.idle_timeout.as_millis() as u64,
    )?;
    // Opening the store creates the state dir 0700 (or narrows it): it holds session keys.
    let redb = RedbStore::open(&options.state_dir)?;
    let epoch = epoch::advance(&options.state_dir, &redb)?;
    let (store, state_dir_lock) = cluster::session_store(
        &options.store,
        config.cluster.as_ref(),
        &options.config,
        redb,
    )?;
    let epoch = cluster::boot_epoch(store.as_ref(), epoch)?;
    let mut dp_options = DataplaneOptions::new(options.iface.clone());
    dp_options.port = options.port;
    dp_options.max_sessions = options.max_sessions;
    dp_options.xdp_mode = options.xdp_mode;
    if !PinDir::new(&dp_options.pin_root, &options.iface)?.has_link() {
        // The maps are lost: every live session owes a move to RECOVERING (see `reconcile`).
        reconcile::RecoveryOwed::new(&options.state_dir)
            .owe()
            .map_err(GatewayError::io(
                "record the owed RECOVERING pass in the state dir",
            ))?;
    }
    let dataplane = Dataplane::open_or_load(&dp_options)?;
    // An adopted link keeps its mode, whatever this run asked for.
    let xdp_mode = dataplane.attach_mode()?;
    refuse_generic_on_veth(&options.iface, xdp_mode)?;
    let origin = dataplane.origin();
    let dataplane_events = dataplane.take_event_reader()?;
    let program_logs = dataplane.take_log_forwarder();

    let tun = tunnel::open_device(&config)?;
    let socket = udp::bind(config.listen, options.port, &options.iface)?;
    crate::socket_buffers::enlarge(&socket);
    let (control, control_guard) = bind_control_socket(&options.socket)?;
    let metrics = match options.metrics {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(GatewayError::io(format!("bind the metrics address {addr}")))?,
        ),
        None => None,
    };
    let io = GatewayIo {
        socket,
        store,
        map: Box::new(dataplane),
        origin,
        dataplane_events,
        program_logs,
        tun,
        control,
        metrics,
    };
    let settings = RunSettings {
        config,
        timers,
        epoch,
        iface: options.iface.clone(),
        port: options.port,
        state_dir: options.state_dir.clone(),
        config_path: options.config.clone(),
        recovery_challenges_per_second: options.recovery_challenges,
        udp_gro: xdp_mode == XdpAttachMode::Driver,
    };
    let guards = Guards {
        _control: control_guard,
        _state_dir_lock: state_dir_lock,
    };
    Ok((io, settings, guards))
}
