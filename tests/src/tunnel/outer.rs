//! The outside of the tunnel topology: what [`TunnelOptions`] choose (the outer family, a NAT on
//! wifi, the client's arguments, the gateway's extra config) and the addresses of each outer
//! family ([`OuterPlan`]), with the veth helper the topology is wired with. The diagram is
//! [`super`]'s.

use crate::netns::Netns;
use crate::topology::Family;

/// Adds a veth pair `a`@`ns_a` -- `b`@`ns_b`, addresses both ends and brings them up. IPv6
/// addresses skip duplicate address detection, so they are usable at once.
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
    for (ns, name, addr) in [(ns_a, a, addr_a), (ns_b, b, addr_b)] {
        let mut args = vec!["addr", "add", addr, "dev", name];
        if addr.contains(':') {
            args.push("nodad");
        }
        ns.ip(&args);
    }
    ns_a.ip(&["link", "set", a, "up"]);
    ns_b.ip(&["link", "set", b, "up"]);
}

/// How [`super::Tunnel::up_with`] builds the outside of the tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelOptions {
    /// The IP family of the client's uplinks and of the gateway address the client dials.
    pub outer: Family,
    /// Puts a masquerading [`crate::nat::Nat`] namespace between the client's wifi uplink and
    /// the router (IPv4 only).
    pub nat_on_wifi: bool,
    /// Starts the client with `--uplink <wifi>`; without it the client follows the routing table
    /// (which prefers wifi, metric 1, over lte, metric 2).
    pub pin_wifi: bool,
    /// More `jvpn client` arguments (e.g. `--rekey-after-ms`).
    pub client_args: &'static [&'static str],
    /// Top-level lines added to the gateway's config (e.g. `reject_after_ms = 2000`).
    pub gateway_config: &'static str,
    /// Environment of the gateway's first start (e.g. `JVPN_FAULT`).
    pub gateway_env: &'static [(&'static str, &'static str)],
}

impl Default for TunnelOptions {
    /// IPv4 outside, no NAT, the client pinned to wifi: the topology of [`super::Tunnel::up`].
    fn default() -> Self {
        Self {
            outer: Family::V4,
            nat_on_wifi: false,
            pin_wifi: true,
            client_args: &[],
            gateway_config: "",
            gateway_env: &[],
        }
    }
}

/// The addresses of one outer family: the uplinks' subnets and the gateway's address.
pub(super) struct OuterPlan {
    /// `ip` family flag.
    pub(super) flag: &'static str,
    /// Router and client ends of wifi, with prefix.
    pub(super) wifi: (&'static str, &'static str),
    /// Router and client ends of lte, with prefix.
    pub(super) lte: (&'static str, &'static str),
    /// The router's end of the gateway veth (the gateway's next hop to the uplinks).
    pub(super) router_on_gateway_link: &'static str,
    /// The prefix that covers every uplink subnet, as the gateway routes it.
    pub(super) uplinks: &'static str,
    /// The gateway veth's subnet, as the client routes it.
    pub(super) gateway_subnet: &'static str,
    /// The sysctl that makes the router forward.
    pub(super) forwarding: &'static str,
    /// `--gateway` for the client.
    pub(super) gateway: &'static str,
    /// The gateway's address alone.
    pub(super) gateway_ip: &'static str,
}

impl OuterPlan {
    pub(super) fn of(family: Family) -> Self {
        match family {
            Family::V4 => Self {
                flag: "-4",
                wifi: ("10.201.1.1/24", "10.201.1.2/24"),
                lte: ("10.201.2.1/24", "10.201.2.2/24"),
                router_on_gateway_link: "10.200.0.2",
                uplinks: "10.201.0.0/16",
                gateway_subnet: "10.200.0.0/24",
                forwarding: "net.ipv4.ip_forward=1",
                gateway: "10.200.0.1:51900",
                gateway_ip: "10.200.0.1",
            },
            Family::V6 => Self {
                flag: "-6",
                wifi: ("fd00:201:1::1/64", "fd00:201:1::2/64"),
                lte: ("fd00:201:2::1/64", "fd00:201:2::2/64"),
                router_on_gateway_link: "fd00:200::2",
                uplinks: "fd00:201::/32",
                gateway_subnet: "fd00:200::/64",
                forwarding: "net.ipv6.conf.all.forwarding=1",
                gateway: "[fd00:200::1]:51900",
                gateway_ip: "fd00:200::1",
            },
        }
    }
}

/// Strips the prefix length from `addr/len`.
pub(crate) fn host(cidr: &str) -> &str {
    cidr.split_once('/').map_or(cidr, |(host, _)| host)
}
