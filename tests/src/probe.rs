//! What the end-to-end tests ask of a running gateway and its client namespace: sockets, polled
//! conditions, counters and events, read through the real `jvpn` CLI.

use crate::gateway::GatewayFixture;
use crate::require_root;
use crate::topology::Family;
use crate::wire_client::socket;
use jvpn_common::abi::DEFAULT_PORT;
use jvpn_common::RejectReason;
use serde_json::Value;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A fixture whose gateway is already running (with `env` added to its environment).
pub fn started(env: &[(&str, &str)]) -> GatewayFixture {
    require_root();
    let mut f = GatewayFixture::new();
    f.start(env);
    f
}

/// The gateway's jvpn address in `family`.
pub fn gateway(family: Family) -> SocketAddr {
    SocketAddr::new(family.gateway(), DEFAULT_PORT)
}

/// A UDP socket in the client namespace on `port`.
pub fn client_socket(f: &GatewayFixture, family: Family, port: u16) -> UdpSocket {
    f.hosts
        .client
        .run(|| socket(SocketAddr::new(family.client(), port)))
}

/// Polls `check` until it holds; panics with `what` after 10 s. For state that another process
/// reaches asynchronously (a commit, a counter); never a fixed sleep.
pub fn eventually(what: &str, check: impl FnMut() -> bool) {
    eventually_within(what, Duration::from_secs(10), check);
}

/// Polls `check` until it holds; panics with `what` after `patience`.
pub fn eventually_within(what: &str, patience: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + patience;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Packets the XDP program dropped for `reason`, per `jvpn stats`.
pub fn drops(f: &GatewayFixture, reason: RejectReason) -> u64 {
    let stats = f.cli_json(&["stats"]);
    stats["dataplane"]["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .find(|d| d["reason"] == reason.name())
        .map_or(0, |d| d["packets"].as_u64().expect("packets"))
}

/// DATA and KEEPALIVE packets the XDP program accepted, per `jvpn stats`.
pub fn accepted(f: &GatewayFixture) -> u64 {
    f.cli_json(&["stats"])["dataplane"]["accepted"]["packets"]
        .as_u64()
        .expect("accepted packets")
}

/// Whether any event so far satisfies `pred`.
pub fn has_event(f: &GatewayFixture, pred: impl Fn(&Value) -> bool) -> bool {
    f.events().iter().any(pred)
}

/// A session id as the CLI prints it.
pub fn session_hex(id: u64) -> String {
    format!("{id:016x}")
}

/// Inner packets the gateway's TUN received from sessions, per `jvpn stats`.
pub fn tun_upstream(f: &GatewayFixture) -> u64 {
    f.cli_json(&["stats"])["tunnel"]["upstream"]["packets"]
        .as_u64()
        .expect("tunnel.upstream.packets")
}
