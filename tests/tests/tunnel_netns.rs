//! The Jumping VPN end to end: the real `jvpn gateway` (XDP + TUN) and the real `jvpn client`
//! (TUN) carry a TCP transfer of a known payload while the client jumps between its two uplinks
//! with `jvpn client jump`. The bytes arrive intact, the session id never changes, and its audit
//! reads version 1, then +1 per jump.
//!
//! ```text
//!  +---------- gateway ns ----------+      +------- router ns -------+      +------- client ns --------+
//!  | jvpn gateway (nsenter --net)   |      | ip_forward=1            |      | jvpn client --tun <t>    |
//!  | jvpn0 10.99.0.1/24 (TUN)       |      |                         |      |   <t> 10.99.0.2/24 (TUN) |
//!  | TCP server 10.99.0.1:5201      |      | <rw> 10.201.1.1/24 <====|=wifi=|==> <cw> 10.201.1.2/24    |
//!  | <gw> 10.200.0.1/24 <== XDP ====|=veth=|=> <cl> 10.200.0.2/24    |      |                          |
//!  |  route 10.201.0.0/16 via .0.2  |      | <rl> 10.201.2.1/24 <====|=lte==|==> <cl> 10.201.2.2/24    |
//!  +--------------------------------+      +-------------------------+      +--------------------------+
//! ```
//! The router namespace is the fixture's "client" end of its veth; the client's routes to the
//! gateway go through either uplink, and `--uplink` binds the client's socket to one of them.

use jvpn_tests::gateway::{jvpn_binary, GatewayFixture};
use jvpn_tests::guard::ChildGuard;
use jvpn_tests::netns::{run_ok, unique_name, Netns};
use jvpn_tests::require_root;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PAYLOAD_LEN: usize = 24 << 20;
const JUMPS: u64 = 6;
const SERVER: &str = "10.99.0.1:5201";
/// A port nobody listens on: a reset proves the round trip through the tunnel.
const SERVER_PROBE: &str = "10.99.0.1:5299";

/// A deterministic payload (xorshift), so corruption anywhere shows.
fn payload() -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..PAYLOAD_LEN)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Adds a veth pair `a`@`ns_a` -- `b`@`ns_b`, addresses both ends and brings them up.
fn link(ns_a: &Netns, a: &str, addr_a: &str, ns_b: &Netns, b: &str, addr_b: &str) {
    ns_a.ip(&[
        "link",
        "add",
        a,
        "type",
        "veth",
        "peer",
        "name",
        b,
        "netns",
        ns_b.name(),
    ]);
    ns_a.ip(&["addr", "add", addr_a, "dev", a]);
    ns_b.ip(&["addr", "add", addr_b, "dev", b]);
    ns_a.ip(&["link", "set", a, "up"]);
    ns_b.ip(&["link", "set", b, "up"]);
}

/// Polls `check` until it holds; panics naming `what` after a bound.
fn eventually(what: &str, check: impl FnMut() -> bool) {
    jvpn_tests::probe::eventually_within(what, Duration::from_secs(20), check);
}

/// The running topology, gateway and client.
struct Tunnel {
    /// The `jvpn client` process, killed first when the test ends (fields drop in order).
    _vpn: ChildGuard,
    f: GatewayFixture,
    client: Netns,
    wifi: String,
    lte: String,
    tun: String,
    session: u64,
}

impl Tunnel {
    /// Builds the topology, starts the gateway and a client on wifi, and waits for its TUN.
    fn up() -> Self {
        require_root();
        let mut f = GatewayFixture::new();
        let router = &f.hosts.client;
        let client = Netns::new("u");
        let (wifi, lte) = (unique_name("W"), unique_name("L"));
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
        client.ip(&[
            "route",
            "add",
            "10.200.0.0/24",
            "via",
            "10.201.1.1",
            "dev",
            &wifi,
            "metric",
            "1",
        ]);
        client.ip(&[
            "route",
            "add",
            "10.200.0.0/24",
            "via",
            "10.201.2.1",
            "dev",
            &lte,
            "metric",
            "2",
        ]);
        f.start(&[]);

        let key = f.dir.path().join("client.key");
        let text = format!("{}\n", f.client.private_key.to_base64().as_str());
        std::fs::write(&key, text).expect("write the client key");
        std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod the client key");
        let tun = unique_name("t");
        let log = std::fs::File::create(f.dir.path().join("client.log")).expect("client log");
        let gateway_public_key = f.gateway_public_key.to_base64();
        let mut vpn = ChildGuard::new(
            Command::new("nsenter")
                .arg(format!("--net={}", client.path().display()))
                .arg(jvpn_binary())
                .args([
                    "client",
                    "--gateway",
                    "10.200.0.1:51900",
                    "--gateway-public-key",
                ])
                .arg(&gateway_public_key)
                .arg("--key")
                .arg(&key)
                .args(["--tun", &tun, "--uplink", &wifi])
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("spawn jvpn client"),
        );
        let client_log =
            || std::fs::read_to_string(f.dir.path().join("client.log")).unwrap_or_default();
        eventually("the client's TUN device", || {
            assert!(
                vpn.child().try_wait().expect("wait").is_none(),
                "jvpn client exited:\n{}",
                client_log()
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
        let session = u64::from_str_radix(&session, 16).expect("hex id");
        Self {
            f,
            client,
            wifi,
            lte,
            tun,
            _vpn: vpn,
            session,
        }
    }

    fn client_log(&self) -> String {
        client_log(&self.f)
    }
}

fn client_log(f: &GatewayFixture) -> String {
    std::fs::read_to_string(f.dir.path().join("client.log")).unwrap_or_default()
}

#[test]
fn a_tcp_transfer_survives_jumps_between_uplinks() {
    let t = Tunnel::up();
    let (f, client, wifi, lte, tun) = (&t.f, &t.client, &t.wifi, &t.lte, &t.tun);

    let listener = f
        .hosts
        .gateway
        .run(|| TcpListener::bind(SERVER).expect("bind the TCP server"));
    let expected = payload();
    let receiver = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("accept");
        let mut received = Vec::with_capacity(PAYLOAD_LEN);
        stream
            .read_to_end(&mut received)
            .expect("read the transfer");
        received
    });
    let data = expected.clone();
    let sender = std::thread::spawn({
        let path = client.path();
        move || {
            jvpn_tests::netns::enter(&path);
            let addr: SocketAddr = SERVER.parse().expect("addr");
            let mut stream =
                TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
            for chunk in data.chunks(64 << 10) {
                stream.write_all(chunk).expect("send through the tunnel");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });

    for jump in 0..JUMPS {
        std::thread::sleep(Duration::from_millis(300));
        let uplink = if jump % 2 == 0 { lte } else { wifi };
        let out = Command::new("nsenter")
            .arg(format!("--net={}", client.path().display()))
            .arg(jvpn_binary())
            .args(["client", "jump", "--tun", tun, "--uplink", uplink])
            .output()
            .expect("run jvpn client jump");
        assert!(
            out.status.success(),
            "jump {jump} failed: {}\nclient log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            t.client_log()
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("jumped; the session is at version {}", jump + 2)
        );
    }
    sender.join().expect("the sender");
    let received = receiver.join().expect("the receiver");
    assert!(
        received == expected,
        "the transfer arrived altered ({} of {PAYLOAD_LEN} bytes)",
        received.len()
    );

    let versions: Vec<u64> = f.audit_versions(t.session);
    assert_eq!(
        versions,
        (1..=JUMPS + 1).collect::<Vec<_>>(),
        "version 1, then +1 per jump"
    );
    let sessions = f.cli_json(&["sessions", "list"]);
    assert_eq!(
        sessions.as_array().expect("a list").len(),
        1,
        "one session, never a new handshake"
    );
}

#[test]
fn the_client_reattaches_by_itself_when_its_uplink_goes_silent() {
    let t = Tunnel::up();
    // The gateway's answers to wifi stop arriving: the client hears nothing for three keepalive
    // intervals (5 s in the fixture), tries wifi, and then whatever route is left (lte).
    t.client.ip(&["link", "set", &t.wifi, "down"]);
    let deadline = Instant::now() + Duration::from_secs(40);
    while t.f.audit_versions(t.session).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no reattach after the uplink went silent; client log:\n{}",
            t.client_log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        t.f.audit_versions(t.session),
        vec![1, 2],
        "one reattach, same session"
    );
    let stream = t.client.run(|| {
        TcpStream::connect_timeout(&SERVER_PROBE.parse().expect("addr"), Duration::from_secs(5))
    });
    assert!(
        stream.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused),
        "the tunnel carries traffic again (a closed port answers with a reset)"
    );
}
