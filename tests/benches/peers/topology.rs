//! The benchmark's two namespaces and the one veth pair between them, with fixed `jvbp-*` names so
//! that a run killed midway leaves nothing a later run cannot find and remove (the namespaces are
//! the crate's [`Netns`], made with [`Netns::named`]).
//!
//! ```text
//!  +------------- jvbp-cl --------------+          +------------- jvbp-gw --------------+
//!  | iperf3 -c                          |          | iperf3 -s                          |
//!  | boringtun-cli jvbp-wc 10.212.0.2   |          | boringtun-cli jvbp-wg 10.212.0.1   |
//!  | jvpn client, TUN jvbp-ctun         |          | jvpn gateway, TUN jvbp-gtun        |
//!  |   10.213.0.2                       |          |   10.213.0.1, XDP on jvbp-g        |
//!  |            jvbp-c 10.210.0.2 <=====|== veth ==|=====> jvbp-g 10.210.0.1            |
//!  +------------------------------------+          +------------------------------------+
//! ```
//! Only one of the two tunnels runs at a time; the bare rows use the veth addresses.

use jvpn_tests::netns::{run_ok, Netns};
use std::net::Ipv4Addr;

/// The client's (iperf3 client's) namespace.
pub const CLIENT_NS: &str = "jvbp-cl";
/// The gateway's (iperf3 server's) namespace.
pub const GATEWAY_NS: &str = "jvbp-gw";
/// The client's veth end.
pub const CLIENT_IF: &str = "jvbp-c";
/// The gateway's veth end, where jvpn's XDP program attaches.
pub const GATEWAY_IF: &str = "jvbp-g";
/// The gateway's veth address.
pub const GATEWAY_ADDR: Ipv4Addr = Ipv4Addr::new(10, 210, 0, 1);

/// The offloads `ethtool -k` shows that decide aggregation, which the run prints per setup.
const AGGREGATION_OFFLOADS: [&str; 5] = [
    "tcp-segmentation-offload:",
    "generic-segmentation-offload:",
    "generic-receive-offload:",
    "rx-gro-list:",
    "rx-udp-gro-forwarding:",
];

/// The two namespaces; the client's goes first on drop.
#[derive(Debug)]
pub struct Topology {
    /// The client's namespace.
    pub client: Netns,
    /// The gateway's namespace.
    pub gateway: Netns,
}

impl Topology {
    /// Removes leftovers of a killed run and builds the topology of the module diagram.
    pub fn build() -> Self {
        // Netns::named removes a namespace of the same name left by a killed run; the files such
        // a run left on the host go first, as its processes did not live to remove them.
        crate::vpn::remove_host_files();
        let topology = Self {
            client: Netns::named(CLIENT_NS),
            gateway: Netns::named(GATEWAY_NS),
        };
        let (client, gateway) = (&topology.client, &topology.gateway);
        client.ip(&[
            "link", "add", CLIENT_IF, "type", "veth", "peer", "name", GATEWAY_IF, "netns",
            GATEWAY_NS,
        ]);
        client.ip(&["addr", "add", "10.210.0.2/24", "dev", CLIENT_IF]);
        gateway.ip(&["addr", "add", "10.210.0.1/24", "dev", GATEWAY_IF]);
        client.ip(&["link", "set", CLIENT_IF, "up"]);
        gateway.ip(&["link", "set", GATEWAY_IF, "up"]);
        topology
    }
}

/// `ethtool -k DEVICE` in `ns`, reduced to the offloads that decide aggregation.
pub fn offloads(ns: &Netns, device: &str) -> String {
    let out = run_ok(ns.nsenter("ethtool").args(["-k", device]));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|line| AGGREGATION_OFFLOADS.iter().any(|key| line.starts_with(key)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `ethtool -K DEVICE FEATURE on|off` in `ns`.
pub fn set_offload(ns: &Netns, device: &str, feature: &str, on: bool) {
    run_ok(
        ns.nsenter("ethtool")
            .args(["-K", device, feature, if on { "on" } else { "off" }]),
    );
}
