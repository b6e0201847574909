//! Frames injected on the client's end of the two-host veth ([`crate::topology::TwoHosts`]),
//! addressed to the gateway's end, so that they reach its XDP program exactly as built (VLAN
//! tags, options, extension headers and all) and, when passed, its stack.

use crate::capture::{inject, Frame};
use crate::gateway::GatewayFixture;
use crate::netns::Netns;

/// The MAC address of `iface` in `ns`.
pub fn mac(ns: &Netns, iface: &str) -> [u8; 6] {
    let out = ns.ip(&["-j", "link", "show", "dev", iface]);
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
    let text = links[0]["address"].as_str().expect("a MAC address");
    let bytes: Vec<u8> = text
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).expect("hex"))
        .collect();
    bytes.try_into().expect("6 bytes")
}

/// The veth between client and gateway, with the addresses frames injected on it need.
pub struct Wire<'a> {
    f: &'a GatewayFixture,
    gateway_mac: [u8; 6],
    client_mac: [u8; 6],
}

impl<'a> Wire<'a> {
    /// The veth of `f`'s topology.
    pub fn new(f: &'a GatewayFixture) -> Self {
        Self {
            f,
            gateway_mac: mac(&f.hosts.gateway, &f.hosts.gateway_if),
            client_mac: mac(&f.hosts.client, &f.hosts.client_if),
        }
    }

    /// Sends `frames` out of the client's end, their Ethernet addresses rewritten to go from it
    /// to the gateway's end (untagged UDP frames get their checksum completed, see
    /// [`inject`]).
    pub fn inject(&self, frames: &[Vec<u8>]) {
        let frames: Vec<Frame> = frames
            .iter()
            .map(|bytes| {
                let mut bytes = bytes.clone();
                bytes[..6].copy_from_slice(&self.gateway_mac);
                bytes[6..12].copy_from_slice(&self.client_mac);
                Frame {
                    bytes,
                    outgoing: false,
                }
            })
            .collect();
        inject(&self.f.hosts.client, &self.f.hosts.client_if, &frames);
    }
}
