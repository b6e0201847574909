//! A NAT box for the end-to-end tests: a namespace that masquerades UDP from its inside link to
//! its outside link with nftables, from random ports of a range, and that can be made to forget
//! its mappings, as a home router does when its public address changes.
//!
//! ```text
//!   client ns                 nat ns (masquerade, random ports)           router ns
//!   <cw> 10.201.1.2/24 <==> <ni> 10.201.1.1/24   <no> 10.201.3.2/24 <==> <rn> 10.201.3.1/24
//! ```
//!
//! The outside subnet lies in 10.201.0.0/16, which the tunnel fixture's gateway already routes to
//! the router.

use crate::netns::{run_ok, unique_name, Netns};
use crate::tunnel::{host, link};
use std::net::Ipv4Addr;
use std::ops::RangeInclusive;

/// The NAT's inside address with prefix: the client's next hop.
const INSIDE: &str = "10.201.1.1/24";
/// The client's address on the inside link.
const CLIENT: &str = "10.201.1.2/24";
/// The NAT's outside address with prefix: the source the gateway sees.
const OUTSIDE: &str = "10.201.3.2/24";
/// The router's end of the outside link: the NAT's default route.
const ROUTER: &str = "10.201.3.1/24";
/// The nftables table and chain that hold the masquerade rule.
const TABLE: &str = "ip jvpn_nat";
const CHAIN: &str = "post";

/// A masquerading namespace between a client's uplink and a router.
#[derive(Debug)]
pub struct Nat {
    /// The NAT's namespace.
    pub ns: Netns,
    /// The NAT's outside interface (towards the router).
    pub outside_if: String,
}

impl Nat {
    /// The source ports of the mappings the NAT makes until [`Nat::rebind`].
    pub const PORTS: RangeInclusive<u16> = 40000..=49999;

    /// Creates the NAT namespace, links it to `client_if` in `client` and to `router`, and
    /// masquerades UDP leaving towards the router from random [`Nat::PORTS`].
    pub fn between(client: &Netns, client_if: &str, router: &Netns) -> Self {
        let ns = Netns::new("n");
        let (inside_if, outside_if, router_if) =
            (unique_name("ni"), unique_name("no"), unique_name("rn"));
        link(&ns, &inside_if, INSIDE, client, client_if, CLIENT);
        link(&ns, &outside_if, OUTSIDE, router, &router_if, ROUTER);
        run_ok(ns.command("sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
        let nat = Self { ns, outside_if };
        nat.default_route();
        nat.nft(&format!("add table {TABLE}"));
        nat.nft(&format!(
            "add chain {TABLE} {CHAIN} {{ type nat hook postrouting priority srcnat; policy accept; }}"
        ));
        nat.nft(&nat.masquerade_rules(&Self::PORTS));
        nat
    }

    /// The NAT's inside address: the client's next hop towards the gateway.
    pub fn inside_address(&self) -> &'static str {
        host(INSIDE)
    }

    /// The NAT's outside address: the source address of every mapping.
    pub fn outside_address(&self) -> Ipv4Addr {
        host(OUTSIDE).parse().expect("a valid IPv4 address")
    }

    /// Makes the NAT forget every mapping and map new flows from random `ports`: the rules change
    /// first, then the outside address goes and comes back, which makes the kernel drop the
    /// masquerade's connection-tracking entries of that address. Packets of a known flow get a
    /// new mapping (a new source port) from then on.
    pub fn rebind(&self, ports: &RangeInclusive<u16>) {
        // One nft transaction: flushed and refilled by separate commands, the chain briefly lets
        // packets of existing flows out untranslated (seen here: the client's own address
        // reached the gateway).
        self.nft(&format!(
            "flush chain {TABLE} {CHAIN}; {}",
            self.masquerade_rules(ports)
        ));
        self.ns
            .ip(&["addr", "del", OUTSIDE, "dev", &self.outside_if]);
        self.ns
            .ip(&["addr", "add", OUTSIDE, "dev", &self.outside_if]);
        self.default_route();
    }

    fn default_route(&self) {
        self.ns
            .ip(&["route", "add", "default", "via", host(ROUTER)]);
    }

    /// The nft commands that masquerade UDP from random `ports`, and anything else (the fixture's
    /// pings) as it comes.
    fn masquerade_rules(&self, ports: &RangeInclusive<u16>) -> String {
        let out = format!("add rule {TABLE} {CHAIN} oifname \"{}\"", self.outside_if);
        format!(
            "{out} meta l4proto udp masquerade to :{}-{} random; {out} masquerade",
            ports.start(),
            ports.end()
        )
    }

    /// Runs nft commands (`;`-separated: one transaction) in the NAT's namespace.
    fn nft(&self, command: &str) {
        run_ok(self.ns.command("nft").arg(command));
    }
}
