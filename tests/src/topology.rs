//! The two-host topology every end-to-end test starts from: a gateway namespace and a client
//! namespace joined by one veth pair, with IPv4 and IPv6 addresses on both ends.
//!
//! ```text
//!   +---------- gateway ns -----------+        +----------- client ns -----------+
//!   |  <gw>  10.200.0.1/24            |  veth  |  <cl>  10.200.0.2/24            |
//!   |        fd00:200::1/64           |<======>|        fd00:200::2/64           |
//!   +---------------------------------+        +---------------------------------+
//! ```
//!
//! The namespaces are private to the test, so every test uses the same addresses.

use crate::netns::{unique_name, Netns};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The gateway end's IPv4 address.
pub const GATEWAY_V4: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// The client end's IPv4 address.
pub const CLIENT_V4: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 2);
/// The gateway end's IPv6 address.
pub const GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 1);
/// The client end's IPv6 address.
pub const CLIENT_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x200, 0, 0, 0, 0, 0, 2);

/// IP version of an outer header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// Bytes of the IP header the kernel puts on a UDP datagram (no options).
    pub fn ip_header_len(self) -> u32 {
        match self {
            Family::V4 => 20,
            Family::V6 => 40,
        }
    }

    /// The gateway's address in this family.
    pub fn gateway(self) -> IpAddr {
        match self {
            Family::V4 => GATEWAY_V4.into(),
            Family::V6 => GATEWAY_V6.into(),
        }
    }

    /// The client's address in this family.
    pub fn client(self) -> IpAddr {
        match self {
            Family::V4 => CLIENT_V4.into(),
            Family::V6 => CLIENT_V6.into(),
        }
    }
}

/// Length of the Ethernet header in front of every frame XDP sees on a veth.
pub const ETHERNET_HEADER_LEN: u32 = 14;
/// Length of a UDP header.
pub const UDP_HEADER_LEN: u32 = 8;

/// The frame length XDP sees for a UDP datagram of `payload` bytes.
pub fn frame_len(family: Family, payload: usize) -> u32 {
    ETHERNET_HEADER_LEN + family.ip_header_len() + UDP_HEADER_LEN + payload as u32
}

/// A gateway namespace and a client namespace joined by a veth pair.
#[derive(Debug)]
pub struct TwoHosts {
    /// Holds the gateway's end, `gateway_if`.
    pub gateway: Netns,
    /// Holds the client's end, `client_if`.
    pub client: Netns,
    /// The gateway's interface: the one XDP attaches to.
    pub gateway_if: String,
    /// The client's interface.
    pub client_if: String,
}

impl TwoHosts {
    /// Creates both namespaces and the veth pair, addresses both ends (IPv6 without duplicate
    /// address detection, so addresses are usable at once) and brings them up.
    pub fn new() -> Self {
        let gateway = Netns::new("g");
        let client = Netns::new("c");
        let gateway_if = unique_name("G");
        let client_if = unique_name("C");
        gateway.ip(&[
            "link",
            "add",
            &gateway_if,
            "type",
            "veth",
            "peer",
            "name",
            &client_if,
            "netns",
            client.name(),
        ]);
        for (ns, ifname, v4, v6) in [
            (&gateway, &gateway_if, GATEWAY_V4, GATEWAY_V6),
            (&client, &client_if, CLIENT_V4, CLIENT_V6),
        ] {
            ns.ip(&["addr", "add", &format!("{v4}/24"), "dev", ifname]);
            ns.ip(&["addr", "add", &format!("{v6}/64"), "dev", ifname, "nodad"]);
            ns.ip(&["link", "set", ifname, "up"]);
        }
        Self {
            gateway,
            client,
            gateway_if,
            client_if,
        }
    }

    /// Whether an XDP program is attached to the gateway's interface, per `ip link show`.
    pub fn gateway_has_xdp(&self) -> bool {
        let out = self.gateway.ip(&["link", "show", "dev", &self.gateway_if]);
        String::from_utf8_lossy(&out.stdout).contains("xdp")
    }
}

impl Default for TwoHosts {
    fn default() -> Self {
        Self::new()
    }
}
