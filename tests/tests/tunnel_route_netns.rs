//! The client notices a change of its path to the gateway by itself and reattaches at once: the
//! real `jvpn client` watches rtnetlink, and when the route or address it uses goes away it moves
//! the session to the path the routing table offers now, without a new handshake. Each test
//! checks the client's log for the reason, so it cannot pass through the 15 s silence path (three
//! keepalive intervals of 5 s, logged as "no acknowledgement from the gateway").
//!
//! The topology is [`jvpn_tests::tunnel`]'s:
//!
//! ```text
//!  gateway ns                         router ns                 client ns (jvpn client, TUN 10.99.0.2)
//!  jvpn0 10.99.0.1 (TUN)              ip_forward=1              W 10.201.1.2  route to 10.200.0.0/24 metric 1
//!  <gw> 10.200.0.1 <== XDP ==veth==> 10.200.0.2   <rw> 10.201.1.1 <==wifi==> W
//!                                                 <rl> 10.201.2.1 <==lte===> L 10.201.2.2  route metric 2
//! ```
//! [`Tunnel::up`] pins its client to wifi with `--uplink`; [`RoutedTunnel`] builds the same
//! topology with a client that follows the routing table (no `--uplink`).

use jvpn_tests::gateway::{jvpn_binary, GatewayFixture};
use jvpn_tests::guard::ChildGuard;
use jvpn_tests::netns::{run_ok, unique_name, Netns};
use jvpn_tests::tunnel::{eventually, link, Tunnel};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A port nobody listens on: a reset proves the round trip through the tunnel.
const SERVER_PROBE: &str = "10.99.0.1:5299";
const WIFI_IP: &str = "10.201.1.2";
const LTE_IP: &str = "10.201.2.2";
/// What the silence path logs; a test that sees it did not test the route watch.
const SILENCE: &str = "no acknowledgement from the gateway";

/// [`Tunnel`]'s topology with a client started without `--uplink`.
struct RoutedTunnel {
    /// The client, killed first (fields drop in order).
    _vpn: ChildGuard,
    f: GatewayFixture,
    client: Netns,
    wifi: String,
    lte: String,
    session: u64,
}

impl RoutedTunnel {
    fn up() -> Self {
        jvpn_tests::require_root();
        let mut f = GatewayFixture::new();
        let client = Netns::new("u");
        let (wifi, lte) = (unique_name("W"), unique_name("L"));
        let router = &f.hosts.client;
        let (router_wifi, router_lte) = (unique_name("w"), unique_name("l"));
        link(
            router,
            &router_wifi,
            "10.201.1.1/24",
            &client,
            &wifi,
            "10.201.1.2/24",
        );
        link(
            router,
            &router_lte,
            "10.201.2.1/24",
            &client,
            &lte,
            "10.201.2.2/24",
        );
        run_ok(
            router
                .command("sysctl")
                .args(["-qw", "net.ipv4.ip_forward=1"]),
        );
        f.hosts
            .gateway
            .ip(&["route", "add", "10.201.0.0/16", "via", "10.200.0.2"]);
        for (via, dev, metric) in [("10.201.1.1", &wifi, "1"), ("10.201.2.1", &lte, "2")] {
            client.ip(&[
                "route",
                "add",
                "10.200.0.0/24",
                "via",
                via,
                "dev",
                dev,
                "metric",
                metric,
            ]);
        }
        f.start(&[]);

        let key = f.dir.path().join("client.key");
        std::fs::write(
            &key,
            format!("{}\n", f.client.private_key.to_base64().as_str()),
        )
        .expect("write the client key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod the client key");
        let tun = unique_name("t");
        let log = std::fs::File::create(f.dir.path().join("client.log")).expect("client log");
        let mut vpn = ChildGuard::new(
            Command::new("nsenter")
                .arg(format!("--net={}", client.path().display()))
                .arg(jvpn_binary())
                .args(["client", "--gateway", "10.200.0.1:51900"])
                .arg("--gateway-public-key")
                .arg(f.gateway_public_key.to_base64())
                .arg("--key")
                .arg(&key)
                .args(["--tun", &tun])
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn jvpn client"),
        );
        let log_path = f.dir.path().join("client.log");
        eventually("the client's TUN device", || {
            assert!(
                vpn.child().try_wait().expect("wait").is_none(),
                "jvpn client exited:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
            Command::new("ip")
                .args(["-n", client.name(), "addr", "show", "dev", &tun])
                .output()
                .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("10.99.0.2"))
        });
        let sessions = f.cli_json(&["sessions", "list"]);
        let session = sessions.as_array().expect("a list")[0]["id"]
            .as_str()
            .expect("an id")
            .to_owned();
        Self {
            _vpn: vpn,
            session: u64::from_str_radix(&session, 16).expect("hex id"),
            f,
            client,
            wifi,
            lte,
        }
    }

    fn client_log(&self) -> String {
        std::fs::read_to_string(self.f.dir.path().join("client.log")).unwrap_or_default()
    }
}

/// Waits for the session's second version, then checks it stopped there and the reason logged.
fn assert_one_reattach_because(
    f: &GatewayFixture,
    session: u64,
    client_log: impl Fn() -> String,
    reason: &str,
) {
    eventually("the client's reattach", || {
        f.audit_versions(session).len() >= 2
    });
    assert_eq!(
        f.audit_versions(session),
        vec![1, 2],
        "one reattach, same session"
    );
    let log = client_log();
    assert!(
        log.contains(reason),
        "the client did not log {reason:?}; its log:\n{log}"
    );
    assert!(
        !log.contains(SILENCE),
        "the reattach came from the silence path, not the route watch:\n{log}"
    );
}

/// Connects to a closed port at the gateway's tunnel address from `client`: a refusal is a reset
/// that came back through the tunnel.
fn assert_tunnel_carries_traffic(client: &Netns, client_log: &str) {
    let stream = client.run(|| {
        TcpStream::connect_timeout(&SERVER_PROBE.parse().expect("addr"), Duration::from_secs(5))
    });
    assert!(
        stream.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
        "the tunnel carries traffic again (a closed port answers with a reset); client log:\n{client_log}"
    );
}

#[test]
fn without_an_uplink_the_client_follows_the_routing_table_when_the_wifi_route_goes() {
    let t = RoutedTunnel::up();
    t.client.ip(&[
        "route",
        "del",
        "10.200.0.0/24",
        "via",
        "10.201.1.1",
        "dev",
        &t.wifi,
        "metric",
        "1",
    ]);
    let reason = format!(
        "route to the gateway changed: {WIFI_IP} via {} -> {LTE_IP} via {}",
        t.wifi, t.lte
    );
    assert_one_reattach_because(&t.f, t.session, || t.client_log(), &reason);
    assert_tunnel_carries_traffic(&t.client, &t.client_log());
}

#[test]
fn a_pinned_uplink_that_loses_its_address_gives_way_to_the_routing_table() {
    let t = Tunnel::up();
    t.client
        .ip(&["addr", "del", &format!("{WIFI_IP}/24"), "dev", &t.wifi]);
    let reason = format!(
        "uplink {} lost address {WIFI_IP}; following the routing table: {LTE_IP} via {}",
        t.wifi, t.lte
    );
    assert_one_reattach_because(&t.f, t.session, || t.client_log(), &reason);
    assert_tunnel_carries_traffic(&t.client, &t.client_log());
}
