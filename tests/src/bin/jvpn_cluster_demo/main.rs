//! `cargo xtask demo --cluster`, which builds this binary and runs it as root: a client's TCP
//! stream moves from gateway A to gateway B of one cluster and back, while both gateways' event
//! streams show the moves.
//!
//! A real three-member etcd (each member in its own namespace, [`EtcdCluster`]), two real `jvpn
//! gateway`s on it (`--store etcd://`, XDP attached, one identity; the cluster tests'
//! [`TwoGateways`]), and the real `jvpn client` dialing the service address both gateways answer
//! on. The front routes that address to A; each move flips it to the other gateway (the network
//! is drawn in [`topology`]). The client's DATA then reaches a node that does not hold the
//! session and is dropped there; the client notices its DATA going unanswered, probes, and
//! reattaches; the new node takes the session over from etcd by compare-and-set at version + 1,
//! and the node left behind releases it from its XDP map, so it drops the session's packets
//! from then on.
//!
//! Exit status 0 when every check of the summary held, 1 when one failed or a step did not
//! finish in time, 130 after Ctrl-C or SIGTERM. Namespaces, processes, pins and etcd's data
//! directories are owned by guards, removed on every way out (a panic unwinds through them too).

mod events;
mod stream;
mod summary;
mod topology;

use anyhow::{anyhow, bail, Context, Result};
use events::{ClientLogTail, EventEcho};
use jvpn_tests::cluster_node::{TwoGateways, NODE_A, NODE_B};
use jvpn_tests::etcd_cluster::EtcdCluster;
use jvpn_tests::netns::unique_name;
use jvpn_tests::vpn_client::{client_log, start_client};
use jvpn_user::session::{NodeId, SessionId};
use jvpn_user::store::SessionStore;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use stream::Stream;
use summary::{Drops, Facts, Move};
use topology::{Front, SERVER, SERVICE};

/// Set by the Ctrl-C/SIGTERM handler; every wait polls it.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Exit status after Ctrl-C, as shells report a process ended by SIGINT.
const INTERRUPTED_EXIT_STATUS: u8 = 130;
/// Traffic on each gateway before the next move, so the stream is seen to go on.
const DWELL: Duration = Duration::from_secs(2);
/// How long a move may take (flip to takeover, flip to new bytes): a failure bound, not a sleep.
const MOVE_PATIENCE: Duration = Duration::from_secs(30);
/// The demo's steps, as [`step`] numbers them.
const STEPS: usize = 9;

/// The error of a wait cut short by Ctrl-C.
#[derive(Debug, thiserror::Error)]
#[error("interrupted (Ctrl-C or SIGTERM)")]
struct Interrupted;

fn main() -> ExitCode {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("cluster demo: run it as root (`cargo xtask demo --cluster` in a root shell): it creates network namespaces and loads XDP programs");
        return ExitCode::FAILURE;
    }
    if let Err(e) = ctrlc::set_handler(|| {
        eprintln!("\ninterrupted: cleaning up");
        INTERRUPTED.store(true, Ordering::SeqCst);
    }) {
        eprintln!("cluster demo: cannot install the Ctrl-C handler: {e}");
        return ExitCode::FAILURE;
    }
    match run() {
        Ok(()) => {
            println!(
                "\ncluster demo: done; processes stopped, namespaces, pins and etcd's data removed"
            );
            ExitCode::SUCCESS
        }
        Err(e) if e.is::<Interrupted>() => ExitCode::from(INTERRUPTED_EXIT_STATUS),
        Err(e) => {
            eprintln!("\ncluster demo FAILED: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Announces step `number` of [`STEPS`], or stops there once Ctrl-C was pressed.
fn step(number: usize, what: &str) -> Result<()> {
    interrupted()?;
    println!("\n[{number}/{STEPS}] {what}");
    Ok(())
}

fn interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(Interrupted.into())
    } else {
        Ok(())
    }
}

/// Polls `check` until it holds and returns how long that took; fails naming `what` after
/// `patience`, or at once after Ctrl-C.
fn wait_for(what: &str, patience: Duration, mut check: impl FnMut() -> bool) -> Result<Duration> {
    let started = Instant::now();
    loop {
        interrupted()?;
        if check() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > patience {
            bail!("{what}: not within {patience:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sleeps `how_long` in short steps, so Ctrl-C is not held up.
fn dwell(how_long: Duration) -> Result<()> {
    let until = Instant::now() + how_long;
    while Instant::now() < until {
        interrupted()?;
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn run() -> Result<()> {
    step(
        1,
        "starting a three-member etcd, each member in its own namespace",
    )?;
    let mut cluster = EtcdCluster::start();
    println!("  members at {}", cluster.endpoints().join(", "));
    // Before the gateways, so it is dropped after them: their veths end in its router.
    let front = Front::new();

    step(
        2,
        "starting gateway A (node 1) and gateway B (node 2): `jvpn gateway --store etcd://...`, \
         XDP attached, one identity",
    )?;
    let gateways = TwoGateways::start(&mut cluster);
    for (label, gateway) in [("A", &gateways.a), ("B", &gateways.b)] {
        let status = gateway.cli(&["status"]);
        for line in String::from_utf8_lossy(&status.stdout).lines() {
            println!("  {label} | {line}");
        }
    }

    step(
        3,
        "the front: 10.200.0.1 (both gateways' address) and the client pool routed to A",
    )?;
    front.connect(&gateways);

    step(
        4,
        "following both gateways' event streams (`jvpn events --follow`)",
    )?;
    let _events = [
        EventEcho::start(&gateways.a, "A"),
        EventEcho::start(&gateways.b, "B"),
    ];

    step(
        5,
        &format!("starting `jvpn client --gateway {SERVICE}` in the client namespace"),
    )?;
    let tun = unique_name("t");
    let client = start_client(&gateways.a, &front.client, SERVICE, &tun, &[]);
    front.route_service_into(&tun);
    let id = only_session(&gateways.a)?;
    let store = &gateways.observer.store;
    println!(
        "  session {id} at version {}, owned by node {} (per etcd)",
        version(store, id)?,
        store
            .owner(id)?
            .map_or_else(|| "none".to_owned(), |n| n.get().to_string())
    );

    step(
        6,
        &format!("TCP stream to {SERVER} behind the front, through the tunnel"),
    )?;
    let stream = Stream::start(&front)?;
    wait_for(
        "the stream's first bytes at the server",
        MOVE_PATIENCE,
        || stream.received() > 0,
    )?;
    dwell(DWELL)?;

    let mut moves = Vec::new();
    let mut client_says = ClientLogTail::default();
    client_says.print_new(&client_log(&gateways.a));
    for (to, label, node) in [(1, "B", NODE_B), (0, "A", NODE_A)] {
        let taking_over = if to == 0 { &gateways.a } else { &gateways.b };
        let number = moves.len() + 1;
        step(
            6 + number,
            &format!("move {number}: the front flips 10.200.0.1 to gateway {label}"),
        )?;
        let drops_before = Drops::of(taking_over);
        println!(
            "  + ip -n {} route replace 10.200.0.1/32 dev to-{label} (and the client pool)",
            front.router.name()
        );
        front.flip_to(to);
        let flipped = Instant::now();
        let took = wait_for(
            &format!("gateway {label} taking the session over"),
            MOVE_PATIENCE,
            || store.owner(id).ok().flatten() == Some(NodeId::new(node)),
        )?;
        let dropped_before = Drops::of(taking_over).since(&drops_before);
        let at_takeover = stream.received();
        wait_for("the stream going on after the move", MOVE_PATIENCE, || {
            stream.failed() || stream.received() > at_takeover
        })?;
        let resumed = flipped.elapsed();
        let at_version = version(store, id)?;
        client_says.print_new(&client_log(&gateways.a));
        println!(
            "  gateway {label} (node {node}) owns the session at version {at_version}, {:.2} s after the flip; \
             {} bytes through so far",
            took.as_secs_f64(),
            stream.received()
        );
        // A created the session; B has held it once it was moved there.
        let held_before = to == 0 || moves.iter().any(|m: &Move| m.to == label);
        moves.push(Move {
            to: label,
            held_before,
            version: at_version,
            took,
            resumed,
            dropped_before,
        });
        dwell(DWELL)?;
    }

    step(
        STEPS,
        "stopping the stream and the client (its TERMINATE goes to A)",
    )?;
    let outcome = stream.finish()?;
    let hex = format!("{:016x}", id.get());
    let released = [
        summary::released_to(&gateways.a, &hex, NODE_B),
        summary::released_to(&gateways.b, &hex, NODE_A),
    ];
    let audit = gateways.a.cli_json(&["audit", &hex]);
    drop(client);

    println!("\n[summary]");
    let failed = summary::print(&Facts {
        id: &hex,
        moves: &moves,
        outcome: &outcome,
        audit,
        released,
    });
    if !failed.is_empty() {
        return Err(anyhow!("{}", failed.join("; ")));
    }
    Ok(())
}

/// The one session gateway A lists.
fn only_session(gateway: &jvpn_tests::gateway::GatewayFixture) -> Result<SessionId> {
    let sessions = gateway.cli_json(&["sessions", "list"]);
    let list = sessions
        .as_array()
        .context("`jvpn sessions list` printed no list")?;
    let [only] = list.as_slice() else {
        bail!("expected one session on gateway A, it lists {}", list.len());
    };
    let hex = only["id"].as_str().context("a session without an id")?;
    hex.parse()
        .map_err(|e| anyhow!("`jvpn sessions list` printed session id {hex}: {e}"))
}

/// The session's version in etcd.
fn version(store: &impl SessionStore, id: SessionId) -> Result<u64> {
    Ok(store
        .get(id)?
        .with_context(|| format!("session {id} is not in etcd"))?
        .state_version)
}
