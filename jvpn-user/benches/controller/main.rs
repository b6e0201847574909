//! `cargo xtask bench controller`: reattach transitions per second through the whole controller
//! path (PATH_RESPONSE seal check, compare-and-set on redb with a durable group commit, XDP map
//! update, sealed REATTACH_ACK), and the latency from durable commit to map entry, p50 and p99.
//!
//! Baselines measured in the same run: durable compare-and-sets one at a time (no group commit),
//! and a bare map update. The XDP program is loaded on a veth pair made for the run (in driver
//! mode, as in production) so the map writes are the real ones. Every session jumps twice and
//! only the second round is timed: the first grows the worker threads' heaps ([`reattach_rate`]).
//! Needs root.

use jvpn_common::control::{Body, PathChallenge, PathResponse, ReattachRequest};
use jvpn_common::maps::TransportBinding;
use jvpn_common::wire::Be64;
use jvpn_common::{MessageType, WireHeader};
use jvpn_user::config::GatewaySettings;
use jvpn_user::crypto::{seal_message, Direction, PrivateKey, SessionKeys};
use jvpn_user::dataplane::Origin;
use jvpn_user::dataplane::{Dataplane, DataplaneOptions};
use jvpn_user::gateway::clock::ControllerClock;
use jvpn_user::gateway::{Controller, ControllerParts, Effect, Executor, ExecutorParts, Place};
use jvpn_user::session::{Input, NodeId, Session, SessionId, SessionMachine, Timers};
use jvpn_user::store::{CasRequest, Expected, RedbStore, SessionStore};
use rand::RngCore;
use serde_json::json;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SESSIONS: usize = 20_000;
const SINGLE_CAS: usize = 300;
const IFACE: &str = "jvbench0";
const PEER: &str = "jvbench1";
const PORT: u16 = 51_998;

struct Veth;

impl Veth {
    fn create() -> Self {
        let _ = Command::new("ip").args(["link", "del", IFACE]).output();
        let ok = Command::new("ip")
            .args(["link", "add", IFACE, "type", "veth", "peer", "name", PEER])
            .status()
            .expect("run ip")
            .success();
        assert!(
            ok,
            "cannot create the veth pair {IFACE}/{PEER}: run as root"
        );
        for dev in [IFACE, PEER] {
            Command::new("ip")
                .args(["link", "set", dev, "up"])
                .status()
                .expect("ip link set up");
        }
        Self
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", IFACE]).output();
    }
}

fn now_ms() -> u64 {
    jvpn_user::events::unix_millis_now()
}

fn random_keys() -> SessionKeys {
    let mut stored = [0u8; SessionKeys::STORED_LEN];
    rand::thread_rng().fill_bytes(&mut stored);
    SessionKeys::from_stored(&stored)
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the controller benchmark loads XDP: run it as root"
    );
    let _veth = Veth::create();
    let dir = tempfile::tempdir().expect("temp dir");
    let client_key = PrivateKey::generate().public_key();
    let config = format!(
        "private_key = \"{}\"\n[tunnel]\nipv4 = \"10.99.0.1/24\"\n\
         [[client]]\nname = \"bench\"\npublic_key = \"{}\"\nipv4 = \"10.99.0.2\"\n",
        PrivateKey::generate().to_base64().as_str(),
        client_key.to_base64()
    );
    let settings =
        GatewaySettings::parse(&dir.path().join("gateway.toml"), &config).expect("config");
    let store: Arc<dyn SessionStore> = Arc::new(RedbStore::open(dir.path()).expect("store"));
    let mut options = DataplaneOptions::new(IFACE);
    options.port = PORT;
    let dataplane = Dataplane::load(&options).expect("load the XDP dataplane");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results = runtime.block_on(async {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("socket");
        let sink = std::net::UdpSocket::bind("127.0.0.1:0").expect("sink");
        let sink_addr = sink.local_addr().expect("sink addr");
        let warm = std::net::UdpSocket::bind("127.0.0.1:0").expect("warm-up sink");
        let warm_addr = warm.local_addr().expect("warm-up sink addr");
        let capacity = dataplane.session_capacity();
        let (controller, first) = Controller::new(ControllerParts {
            settings,
            machine: SessionMachine::new(Timers::default()),
            epoch: 1,
            capacity,
            clock: ControllerClock::system(),
            seed: None,
        });
        let exec = Executor::start(
            controller,
            first,
            ExecutorParts {
                socket,
                store: store.clone(),
                map: Box::new(dataplane),
                tun: None,
                place: Place {
                    iface: IFACE.into(),
                    port: PORT,
                    state_dir: dir.path().to_path_buf(),
                },
            },
        )
        .await
        .expect("executor");
        let single = single_cas_rate(&store);
        let (rate, p50, p99) =
            reattach_rate(&exec, &store, &client_key, warm_addr, sink_addr).await;
        drop(exec);
        let upsert = map_upsert_p50(&store);
        Dataplane::adopt(IFACE)
            .and_then(Dataplane::detach)
            .expect("detach");
        (single, rate, p50, p99, upsert)
    });
    let (single, rate, p50, p99, upsert) = results;
    let rows = vec![
        json!({"metric": "controller.reattach_transitions_per_s", "value": rate, "unit": "1/s",
               "baseline": "controller.single_durable_cas_per_s", "ratio": rate / single}),
        json!({"metric": "controller.single_durable_cas_per_s", "value": single, "unit": "1/s",
               "baseline": null, "ratio": null}),
        json!({"metric": "controller.commit_to_map_p50_us", "value": p50, "unit": "us",
               "baseline": "controller.map_upsert_p50_us", "ratio": p50 / upsert}),
        json!({"metric": "controller.commit_to_map_p99_us", "value": p99, "unit": "us",
               "baseline": "controller.map_upsert_p50_us", "ratio": p99 / upsert}),
        json!({"metric": "controller.map_upsert_p50_us", "value": upsert, "unit": "us",
               "baseline": null, "ratio": null}),
    ];
    println!(
        "{:<42} {:>14} {:>6} {:>10}",
        "metric", "value", "unit", "ratio"
    );
    for r in &rows {
        println!(
            "{:<42} {:>14.1} {:>6} {:>10}",
            r["metric"].as_str().unwrap_or_default(),
            r["value"].as_f64().unwrap_or_default(),
            r["unit"].as_str().unwrap_or_default(),
            r["ratio"]
                .as_f64()
                .map_or("-".into(), |x| format!("{x:.2}x")),
        );
    }
    let out_dir = std::env::var_os("JVPN_BENCH_DIR").map_or_else(
        || std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/bench"),
        std::path::PathBuf::from,
    );
    std::fs::create_dir_all(&out_dir).expect("bench dir");
    let path = out_dir.join("controller.json");
    std::fs::write(&path, serde_json::to_string_pretty(&rows).expect("json")).expect("write json");
    println!("wrote {}", path.display());
}

/// Baseline: durable compare-and-sets one at a time, each its own transaction.
fn single_cas_rate(store: &Arc<dyn SessionStore>) -> f64 {
    let machine = SessionMachine::new(Timers::default());
    let start = Instant::now();
    for _ in 0..SINGLE_CAS {
        let id = SessionId::generate(NodeId::SINGLE, &mut rand::thread_rng());
        let t = machine
            .transition(
                &Session::birth(id, [1; 32], now_ms()),
                &handshake_input(),
                now_ms(),
            )
            .expect("handshake transition");
        store
            .compare_and_set(id, Expected::Absent, &t.session, &t.state_changes())
            .expect("single CAS");
    }
    SINGLE_CAS as f64 / start.elapsed().as_secs_f64()
}

fn handshake_input() -> Input {
    let keys = random_keys();
    Input::HandshakeComplete {
        binding: TransportBinding::from_v4([10, 0, 0, 1], 40_000),
        header_key: (*keys.header_key(Direction::ClientToGateway)).into(),
        secrets: keys.to_stored().to_vec().into(),
    }
}

/// Creates the sessions in the store and loads them as a restart would, then moves every one of
/// them twice: each jump is a REATTACH_REQUEST from a new address, its PATH_CHALLENGE, and the
/// PATH_RESPONSE driven through the controller and the executor, all 20,000 in flight at once.
/// The first round (to `warm`) is not timed: the runtime's worker threads grow their heaps in it
/// (glibc arenas: `sysmalloc`, `mprotect`, first-touch page faults, about a tenth of the round's
/// CPU samples), as a running gateway's have long done. The second round (to `sink`) is timed.
async fn reattach_rate(
    exec: &Arc<Executor>,
    store: &Arc<dyn SessionStore>,
    client_key: &jvpn_user::crypto::PublicKey,
    warm: SocketAddr,
    sink: SocketAddr,
) -> (f64, f64, f64) {
    let machine = SessionMachine::new(Timers::default());
    let mut sessions = Vec::with_capacity(SESSIONS);
    let mut batch = Vec::with_capacity(SESSIONS);
    for _ in 0..SESSIONS {
        let keys = random_keys();
        let id = SessionId::generate(NodeId::SINGLE, &mut rand::thread_rng());
        let input = Input::HandshakeComplete {
            binding: TransportBinding::from_v4([10, 0, 0, 1], 40_000),
            header_key: (*keys.header_key(Direction::ClientToGateway)).into(),
            secrets: keys.to_stored().to_vec().into(),
        };
        let birth = Session::birth(id, *client_key.as_bytes(), now_ms());
        let t = machine
            .transition(&birth, &input, now_ms())
            .expect("handshake transition");
        batch.push(CasRequest::from_transition(Expected::Absent, t));
        sessions.push((id.get(), keys));
    }
    for chunk in batch.chunks(store.max_batch().max(1)) {
        store
            .compare_and_set_batch(chunk)
            .expect("sessions created");
    }
    let controller = exec.controller();
    let loaded = exec
        .reconcile(Origin::Adopted, controller.clock().now())
        .await
        .expect("sessions loaded");
    // The single-CAS baseline ran on the same store first: its sessions load too, and stay idle.
    assert_eq!(loaded.loaded, SESSIONS + SINGLE_CAS);

    jump_all(exec, &sessions, 0, warm).await;
    let counters = controller.counters();
    counters.commit_to_map.reset();
    let elapsed = jump_all(exec, &sessions, 1, sink).await;
    let h = &counters.commit_to_map;
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    (
        SESSIONS as f64 / elapsed.as_secs_f64(),
        us(h.quantile(0.5)),
        us(h.quantile(0.99)),
    )
}

/// Jump `round` (0 or 1) of every session to `to`: challenges them all (untimed), then drives
/// their PATH_RESPONSEs, all in flight at once, and returns how long those took. Checks that
/// every one committed.
async fn jump_all(
    exec: &Arc<Executor>,
    sessions: &[(u64, SessionKeys)],
    round: u64,
    to: SocketAddr,
) -> Duration {
    let controller = exec.controller();
    // Version 1 before the first jump, 2 before the second; two nonces per round.
    let (version, nonce) = (round + 1, 2 * round + 1);
    // Every challenge is issued and answered at the same controller time, so none expires
    // while the others are set up.
    let issued = controller.clock().now();
    let mut datagrams = Vec::with_capacity(SESSIONS);
    let mut effects = Vec::new();
    for (id, keys) in sessions {
        let request = ReattachRequest {
            acked_version: Be64::new(version),
            attempt: Be64::new(1),
        };
        let header = WireHeader::new(MessageType::ReattachRequest, *id, version, nonce);
        let mut datagram =
            seal_message(keys, Direction::ClientToGateway, header, request.as_body())
                .expect("seal");
        controller.handle(&mut datagram, to, issued, &mut effects);
        let challenge = effects
            .drain(..)
            .find_map(|e| match e {
                Effect::Send { datagram, .. } => jvpn_user::crypto::open_body::<PathChallenge>(
                    keys,
                    Direction::GatewayToClient,
                    &datagram,
                )
                .ok()
                .map(|(_, c)| c),
                _ => None,
            })
            .expect("a PATH_CHALLENGE");
        let header = WireHeader::new(MessageType::PathResponse, *id, version, nonce + 1);
        let body = PathResponse::answering(&challenge);
        datagrams.push(
            seal_message(keys, Direction::ClientToGateway, header, body.as_body()).expect("seal"),
        );
    }
    let counters = controller.counters();
    let before = counters.controller_stats().transitions;
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for mut datagram in datagrams {
        let exec = exec.clone();
        tasks.spawn(async move {
            let mut effects = Vec::new();
            exec.controller()
                .handle(&mut datagram, to, issued, &mut effects);
            exec.execute(effects).await;
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = start.elapsed();
    let committed = counters.controller_stats().transitions - before;
    assert_eq!(
        committed as usize, SESSIONS,
        "every reattach of round {round} committed"
    );
    elapsed
}

/// Baseline: a bare map update of one session entry, median over many, on the pinned maps.
fn map_upsert_p50(store: &Arc<dyn SessionStore>) -> f64 {
    let session = store
        .list()
        .expect("list")
        .into_iter()
        .next()
        .expect("a session");
    let dataplane = Dataplane::adopt(IFACE).expect("adopt the pinned maps");
    let mut samples: Vec<f64> = (0..2_000)
        .map(|_| {
            let start = Instant::now();
            dataplane
                .upsert_session(session.id.get(), &session.map_entry())
                .expect("upsert");
            start.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}
