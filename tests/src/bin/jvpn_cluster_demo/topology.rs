//! The cluster demo's network. Two gateways of one cluster answer the same service address,
//! 10.200.0.1, as an anycast or ECMP front sees them; the front (the router namespace) routes it
//! and the client pool 10.99.0.0/24 to one of them, and a flip of those two routes moves the
//! client's traffic to the other. The TCP server sits behind the front, so its TCP connection
//! outlives every move.
//!
//! ```text
//!  +----- client ns -----+       +-------------- router ns: the front ---------------+
//!  | jvpn client         |       | ip_forward=1, TCP server 10.98.0.100:5201 (lo)    |
//!  |  TUN 10.99.0.2      |       | 10.200.0.1/32 and 10.99.0.0/24 routed             |
//!  |  10.98.0.0/24 -> TUN|       |   dev to-A, or dev to-B after a flip              |
//!  | uplink 10.77.1.2/24 |=veth==| to-client 10.77.1.1/24                            |
//!  +---------------------+       | to-A 10.200.0.2            to-B 10.200.0.2        |
//!                                +-----||-------------------------||-----------------+
//!                                      || veth                    || veth
//!  +-- gateway A ns: node 1 ----------------+  +-- gateway B ns: node 2 ----------------+
//!  | 10.200.0.1/24, XDP; TUN 10.99.0.1      |  | 10.200.0.1/24, XDP; TUN 10.99.0.1      |
//!  | default via 10.200.0.2                 |  | default via 10.200.0.2                 |
//!  | etcd0 10.231.0.11                      |  | etcd0 10.231.0.12                      |
//!  +------------------||--------------------+  +------------------||--------------------+
//!                     ||                                          ||
//!  +------------------||---- hub ns: bridge br0 ------------------||--------------------+
//!  |  etcd members 10.231.0.1, .2, .3 (each in its own ns); observer 10.231.0.13      |
//!  +-----------------------------------------------------------------------------------+
//! ```
//!
//! The gateways are the cluster tests' [`TwoGateways`]: each starts on a veth of its own whose far
//! end this module moves into the router namespace (the far namespaces stay, empty, until the
//! fixtures drop them). Both far ends carry 10.200.0.2 without a prefix route, so only the
//! front's host route decides which gateway 10.200.0.1 is.

use jvpn_tests::cluster_node::TwoGateways;
use jvpn_tests::netns::{run_ok, Netns};
use jvpn_tests::tunnel::link;

/// The service address both gateways answer on, and their port.
pub const SERVICE: &str = "10.200.0.1:51900";
/// The TCP server behind the front.
pub const SERVER: &str = "10.98.0.100:5201";
/// The network of [`SERVER`], routed into the tunnel by the client.
const SERVER_NETWORK: &str = "10.98.0.0/24";
/// The router's veth names toward gateway A and gateway B.
const FRONT_LEGS: [&str; 2] = ["to-A", "to-B"];

/// The front and the client; the gateways' namespaces belong to their fixtures.
pub struct Front {
    /// Routes the service address and the client pool to one gateway; runs the TCP server.
    pub router: Netns,
    /// Runs `jvpn client` and the TCP sender.
    pub client: Netns,
}

impl Front {
    /// Creates the router and client namespaces, the client's link to the router and the server's
    /// address. Create it before the gateways, so that it outlives them: the gateways' veths end in
    /// the router namespace.
    pub fn new() -> Self {
        let router = Netns::new("r");
        let client = Netns::new("u");
        for setting in [
            "net.ipv4.ip_forward=1",
            // During a flip, packets of one flow arrive from either gateway.
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.default.rp_filter=0",
        ] {
            run_ok(router.command("sysctl").args(["-qw", setting]));
        }
        router.ip(&["addr", "add", "10.98.0.100/32", "dev", "lo"]);
        link(
            &router,
            "to-client",
            "10.77.1.1/24",
            &client,
            "uplink",
            "10.77.1.2/24",
        );
        client.ip(&["route", "add", "default", "via", "10.77.1.1"]);
        Self { router, client }
    }

    /// Moves each gateway's far veth end into the router namespace, gives both gateways their
    /// routes through the front, and routes the service address and the client pool to A.
    pub fn connect(&self, gateways: &TwoGateways) {
        for (gateway, leg) in [&gateways.a, &gateways.b].into_iter().zip(FRONT_LEGS) {
            let hosts = &gateway.hosts;
            hosts.client.ip(&[
                "link",
                "set",
                &hosts.client_if,
                "netns",
                self.router.name(),
                "name",
                leg,
            ]);
            self.router
                .ip(&["addr", "add", "10.200.0.2/24", "dev", leg, "noprefixroute"]);
            self.router.ip(&["link", "set", leg, "up"]);
            hosts
                .gateway
                .ip(&["route", "add", "default", "via", "10.200.0.2"]);
            run_ok(
                hosts
                    .gateway
                    .command("sysctl")
                    .args(["-qw", "net.ipv4.ip_forward=1"]),
            );
        }
        self.route_to(0, "add");
    }

    /// Routes the service address and the client pool to gateway `to` (0 is A, 1 is B): the flip
    /// an anycast or ECMP front makes when its next hop for the address changes.
    pub fn flip_to(&self, to: usize) {
        self.route_to(to, "replace");
    }

    fn route_to(&self, to: usize, verb: &str) {
        let leg = FRONT_LEGS[to];
        self.router
            .ip(&["route", verb, "10.200.0.1/32", "dev", leg]);
        self.router.ip(&[
            "route",
            verb,
            "10.99.0.0/24",
            "via",
            "10.200.0.1",
            "dev",
            leg,
        ]);
    }

    /// Routes [`SERVER_NETWORK`] into the client's tunnel device `tun`, as a client's config
    /// routes the networks behind its gateway.
    pub fn route_service_into(&self, tun: &str) {
        self.client
            .ip(&["route", "add", SERVER_NETWORK, "dev", tun]);
    }
}
