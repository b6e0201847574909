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
//!
//! [`TunnelOptions`] vary the outside of the tunnel (the inside stays IPv4, 10.99.0.0/24):
//! - `outer: Family::V6`: the uplinks are fd00:201:1::/64 (wifi) and fd00:201:2::/64 (lte), the
//!   router forwards IPv6, and the client dials the gateway at `[fd00:200::1]:51900`.
//! - `nat_on_wifi`: a [`Nat`] namespace (see [`crate::nat`]) sits between the client's wifi uplink
//!   and the router, which it reaches at 10.201.3.1/24 (IPv4 only).

use crate::byte_stream::ByteStream;
use crate::gateway::{jvpn_binary, GatewayFixture};
use crate::guard::ChildGuard;
use crate::nat::Nat;
use crate::netns::{run_ok, unique_name, Netns};
use crate::require_root;
use crate::topology::Family;
use crate::vpn_client::{client_log, start_client};
use outer::OuterPlan;
use std::process::Output;
use std::time::Duration;

mod outer;
pub(crate) use outer::host;
pub use outer::{link, TunnelOptions};

/// A deterministic payload: the first `len` bytes of [`ByteStream`], so corruption anywhere shows.
pub fn payload(len: usize) -> Vec<u8> {
    let mut payload = vec![0u8; len];
    ByteStream::new().fill(&mut payload);
    payload
}

/// Polls `check` until it holds; panics naming `what` after 20 s.
pub fn eventually(what: &str, check: impl FnMut() -> bool) {
    crate::probe::eventually_within(what, Duration::from_secs(20), check);
}

/// The running topology, gateway and client.
pub struct Tunnel {
    /// The `jvpn client` process, killed first when the test ends (fields drop in order).
    vpn: ChildGuard,
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
    /// How the outside was built.
    pub options: TunnelOptions,
    /// The NAT between wifi and the router, with `nat_on_wifi`.
    pub nat: Option<Nat>,
}

impl Tunnel {
    /// Builds the topology (IPv4 outside, no NAT), starts the gateway and a client on wifi, and
    /// waits for its TUN.
    pub fn up() -> Self {
        Self::up_with(TunnelOptions::default())
    }

    /// Builds the topology as `options` say, starts the gateway and a client on wifi, and waits
    /// for its TUN.
    pub fn up_with(options: TunnelOptions) -> Self {
        require_root();
        assert!(
            !options.nat_on_wifi || options.outer == Family::V4,
            "the NAT namespace masquerades IPv4 only"
        );
        let plan = OuterPlan::of(options.outer);
        let mut f = GatewayFixture::new();
        let router = &f.hosts.client;
        let client = Netns::new("u");
        let (wifi, lte) = (unique_name("W"), unique_name("L"));
        let nat = if options.nat_on_wifi {
            Some(Nat::between(&client, &wifi, router))
        } else {
            let router_wifi = unique_name("w");
            link(
                router,
                &router_wifi,
                plan.wifi.0,
                &client,
                &wifi,
                plan.wifi.1,
            );
            None
        };
        let router_lte = unique_name("l");
        link(router, &router_lte, plan.lte.0, &client, &lte, plan.lte.1);
        run_ok(router.command("sysctl").args(["-qw", plan.forwarding]));
        f.hosts.gateway.ip(&[
            plan.flag,
            "route",
            "add",
            plan.uplinks,
            "via",
            plan.router_on_gateway_link,
        ]);
        let wifi_next_hop = nat
            .as_ref()
            .map_or(host(plan.wifi.0), |n| n.inside_address());
        for (uplink, next_hop, metric) in
            [(&wifi, wifi_next_hop, "1"), (&lte, host(plan.lte.0), "2")]
        {
            client.ip(&[
                plan.flag,
                "route",
                "add",
                plan.gateway_subnet,
                "via",
                next_hop,
                "dev",
                uplink,
                "metric",
                metric,
            ]);
        }
        if !options.gateway_config.is_empty() {
            let path = f.dir.path().join("gateway.toml");
            let config = std::fs::read_to_string(&path).expect("read the gateway config");
            std::fs::write(&path, format!("{}\n{config}", options.gateway_config))
                .expect("write the gateway config");
        }
        f.start(options.gateway_env);
        // IPv6 neighbour discovery can hold the first packets for seconds while the link-local
        // addresses finish duplicate address detection; a HELLO held that long is sent again and
        // both arrive, making two sessions. Start the client once both paths answer.
        let gateway_ip = plan.gateway_ip;
        for uplink in [&wifi, &lte] {
            eventually(&format!("a ping to {gateway_ip} over {uplink}"), || {
                client
                    .command("ping")
                    .args(["-c", "1", "-W", "1", "-I", uplink, gateway_ip])
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
        }

        let tun = unique_name("t");
        let pin = options.pin_wifi.then_some(["--uplink", wifi.as_str()]);
        let args: Vec<&str> = pin
            .iter()
            .flatten()
            .copied()
            .chain(options.client_args.iter().copied())
            .collect();
        let vpn = start_client(&f, &client, plan.gateway, &tun, &args);
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
            vpn,
            session,
            options,
            nat,
        }
    }

    /// The `jvpn client` log so far.
    pub fn client_log(&self) -> String {
        client_log(&self.f)
    }

    /// Waits up to `patience` for the `jvpn client` to exit by itself and returns its status;
    /// panics with both logs if it is still running.
    pub fn wait_client_exit(&mut self, patience: Duration) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + patience;
        loop {
            if let Some(status) = self.vpn.exited() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "jvpn client still runs after {patience:?}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The gateway's and the client's logs, for a failure message.
    pub fn logs(&self) -> String {
        format!(
            "gateway log:\n{}\nclient log:\n{}",
            self.f.log(),
            self.client_log()
        )
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
        self.client
            .nsenter(jvpn_binary())
            .args(["client", "jump", "--tun", &self.tun, "--uplink", uplink])
            .output()
            .expect("run jvpn client jump")
    }

    /// The session's row in `jvpn sessions list --json`; panics unless it is the only one.
    pub fn only_session(&self) -> serde_json::Value {
        let sessions = self.f.cli_json(&["sessions", "list"]);
        let sessions = sessions
            .as_array()
            .expect("sessions list prints a JSON array");
        assert_eq!(
            sessions.len(),
            1,
            "one session, never a new handshake: {sessions:?}\nclient log:\n{}\ngateway log:\n{}",
            self.client_log(),
            self.f.log()
        );
        assert_eq!(
            sessions[0]["id"],
            format!("{:016x}", self.session),
            "the session id never changes"
        );
        sessions[0].clone()
    }

    /// The session's transport binding as the gateway sees it (`peer` in `jvpn sessions list`).
    pub fn peer(&self) -> std::net::SocketAddr {
        let row = self.only_session();
        row["peer"]
            .as_str()
            .unwrap_or_else(|| panic!("the session has no transport: {row}"))
            .parse()
            .expect("peer is an address:port")
    }
}
