//! The benchmark's namespaces and links, with fixed `jvbt-*` names so that a run killed midway
//! leaves nothing a later run cannot find and remove ([`remove_leftovers`]).
//!
//! ```text
//!  +------- jvbt-gw --------+      +-------- jvbt-rt --------+      +-------- jvbt-cl ---------+
//!  | jvpn gateway, XDP on   |      | ip_forward=1            |      | jvpn client --tun jvbt-tun|
//!  |   jvbt-g; TUN jvbt-gtun|      | nft table inet jvbt     |      |  jvbt-tun 10.99.0.2/24    |
//!  |   10.99.0.1/24         |      |  (cuts an uplink)       |      |                           |
//!  | iperf3 -s, UDP receiver|      | jvbt-rw 10.201.1.1 <====|=wifi=|==> jvbt-wifi 10.201.1.2  |
//!  | jvbt-g 10.200.0.1 <====|=veth=|=> jvbt-rg 10.200.0.2    |      |                           |
//!  | route 10.201/16 via .2 |      | jvbt-rl 10.201.2.1 <====|=lte==|==> jvbt-lte 10.201.2.2   |
//!  +------------------------+      +-------------------------+      +---------------------------+
//! ```
//! The client reaches 10.200.0.0/24 through wifi (metric 1) or lte (metric 2); a socket bound to
//! an uplink (`SO_BINDTODEVICE`) takes that uplink's route. The layout is the one of the tunnel
//! end-to-end tests ([`crate::tunnel`]) with fixed names: the tests' unique names would not let a
//! later run find what a killed one left.

use crate::netns::{remove_leftover, run_ok, Netns};
use crate::tunnel::link;
use std::net::Ipv4Addr;

/// The gateway's namespace.
pub const GATEWAY_NS: &str = "jvbt-gw";
/// The router's namespace.
pub const ROUTER_NS: &str = "jvbt-rt";
/// The client's namespace.
pub const CLIENT_NS: &str = "jvbt-cl";
/// The gateway's veth end, where the XDP program attaches.
pub const GATEWAY_IF: &str = "jvbt-g";
/// The gateway's TUN device (in its namespace).
pub const GATEWAY_TUN: &str = "jvbt-gtun";
/// The client's TUN device; it also names the client's control socket.
pub const CLIENT_TUN: &str = "jvbt-tun";
/// The client's uplinks, in the order a [`Uplink`] index names them.
pub const UPLINKS: [&str; 2] = ["jvbt-wifi", "jvbt-lte"];
/// The router's ends of the uplinks, in the same order.
const ROUTER_UPLINKS: [&str; 2] = ["jvbt-rw", "jvbt-rl"];
/// The gateway's address on its veth.
pub const GATEWAY_ADDR: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// The gateway's address inside the tunnel.
pub const TUNNEL_GATEWAY_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// The client's address inside the tunnel (what the gateway's config assigns).
pub const TUNNEL_CLIENT_ADDR: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

/// One of the client's two uplinks: 0 is wifi, 1 is lte.
pub type Uplink = usize;

/// The uplink that is not `uplink`.
pub fn other(uplink: Uplink) -> Uplink {
    1 - uplink
}

/// Removes what a killed earlier run left: its namespaces (and what ran in them), its pins and its
/// control socket.
pub fn remove_leftovers() {
    for name in [CLIENT_NS, ROUTER_NS, GATEWAY_NS] {
        remove_leftover(name);
    }
    super::daemons::remove_host_files();
}

/// The three namespaces; fields drop (and namespaces go) client first.
#[derive(Debug)]
pub struct Topology {
    /// The client's namespace.
    pub client: Netns,
    /// The router's namespace.
    pub router: Netns,
    /// The gateway's namespace.
    pub gateway: Netns,
}

impl Topology {
    /// Removes leftovers of earlier runs and builds the topology of the module diagram.
    pub fn build() -> Self {
        remove_leftovers();
        let gateway = Netns::named(GATEWAY_NS);
        let router = Netns::named(ROUTER_NS);
        let client = Netns::named(CLIENT_NS);
        let topology = Self {
            client,
            router,
            gateway,
        };
        let Self {
            client,
            router,
            gateway,
        } = &topology;
        link(
            gateway,
            GATEWAY_IF,
            "10.200.0.1/24",
            router,
            "jvbt-rg",
            "10.200.0.2/24",
        );
        for (i, subnet) in [1, 2].into_iter().enumerate() {
            link(
                router,
                ROUTER_UPLINKS[i],
                &format!("10.201.{subnet}.1/24"),
                client,
                UPLINKS[i],
                &format!("10.201.{subnet}.2/24"),
            );
            client.ip(&[
                "route",
                "add",
                "10.200.0.0/24",
                "via",
                &format!("10.201.{subnet}.1"),
                "dev",
                UPLINKS[i],
                "metric",
                &(i + 1).to_string(),
            ]);
        }
        gateway.ip(&["route", "add", "10.201.0.0/16", "via", "10.200.0.2"]);
        run_ok(
            router
                .command("sysctl")
                .args(["-qw", "net.ipv4.ip_forward=1"]),
        );
        topology.nft(&["add", "table", "inet", "jvbt"]);
        topology.nft(&[
            "add",
            "chain",
            "inet",
            "jvbt",
            "forward",
            "{ type filter hook forward priority 0 ; policy accept ; }",
        ]);
        topology
    }

    fn nft(&self, args: &[&str]) {
        run_ok(self.router.command("nft").args(args));
    }

    /// Makes the router drop everything forwarded from or to `uplink`, as if it went dead.
    pub fn cut(&self, uplink: Uplink) {
        for direction in ["iifname", "oifname"] {
            self.nft(&[
                "add",
                "rule",
                "inet",
                "jvbt",
                "forward",
                direction,
                ROUTER_UPLINKS[uplink],
                "drop",
            ]);
        }
    }

    /// Undoes every [`Topology::cut`].
    pub fn restore(&self) {
        self.nft(&["flush", "chain", "inet", "jvbt", "forward"]);
    }
}
