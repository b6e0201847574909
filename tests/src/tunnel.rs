//! The tunnel topology of the end-to-end tests: the real `jvpn gateway` (XDP + TUN) and the real
//! `jvpn client` (TUN) with two uplinks, wifi and lte, through a router namespace.
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
//! The router namespace is the fixture's "client" end of its veth (`f.hosts.client`); the client's
//! routes to the gateway go through either uplink, and `--uplink` binds the client's socket to one
//! of them.

use crate::gateway::{jvpn_binary, GatewayFixture};
use crate::guard::ChildGuard;
use crate::netns::{run_ok, unique_name, Netns};
use crate::require_root;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A deterministic payload (xorshift), so corruption anywhere shows.
pub fn payload(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Adds a veth pair `a`@`ns_a` -- `b`@`ns_b`, addresses both ends and brings them up.
pub fn link(ns_a: &Netns, a: &str, addr_a: &str, ns_b: &Netns, b: &str, addr_b: &str) {
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

/// Polls `check` until it holds; panics naming `what` after 20 s.
pub fn eventually(what: &str, check: impl FnMut() -> bool) {
    crate::probe::eventually_within(what, Duration::from_secs(20), check);
}

/// The running topology, gateway and client.
pub struct Tunnel {
    /// The `jvpn client` process, killed first when the test ends (fields drop in order).
    _vpn: ChildGuard,
    /// The gateway, its namespace and the router namespace (`f.hosts.client`).
    pub f: GatewayFixture,
    /// The client's namespace.
    pub client: Netns,
    /// The client's wifi uplink.
    pub wifi: String,
    /// The client's lte uplink.
    pub lte: String,
    /// The client's TUN device.
    pub tun: String,
    /// The client's session id.
    pub session: u64,
}

impl Tunnel {
    /// Builds the topology, starts the gateway and a client on wifi, and waits for its TUN.
    pub fn up() -> Self {
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

    /// The `jvpn client` log so far.
    pub fn client_log(&self) -> String {
        client_log(&self.f)
    }

    /// Runs `jvpn client jump --uplink <uplink>` in the client namespace; asserts it succeeded and
    /// returns the version it reports.
    pub fn jump(&self, uplink: &str) -> u64 {
        let out = self.jump_command(uplink);
        assert!(
            out.status.success(),
            "jvpn client jump --uplink {uplink} failed: {}\nclient log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.client_log()
        );
        let text = String::from_utf8_lossy(&out.stdout);
        text.trim()
            .strip_prefix("jumped; the session is at version ")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("unexpected jump output: {text}"))
    }

    /// Runs `jvpn client jump --uplink <uplink>` in the client namespace and returns its output.
    pub fn jump_command(&self, uplink: &str) -> Output {
        Command::new("nsenter")
            .arg(format!("--net={}", self.client.path().display()))
            .arg(jvpn_binary())
            .args(["client", "jump", "--tun", &self.tun, "--uplink", uplink])
            .output()
            .expect("run jvpn client jump")
    }
}

fn client_log(f: &GatewayFixture) -> String {
    std::fs::read_to_string(f.dir.path().join("client.log")).unwrap_or_default()
}
