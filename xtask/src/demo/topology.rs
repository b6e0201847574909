//! The demo's network: a client namespace with two uplinks (wifi, lte) to a router namespace, which
//! forwards to the gateway namespace. Dropping the [`Topology`] deletes the namespaces and with them
//! every veth and TUN device in them.

use anyhow::Result;

use crate::netns::{self, NetNs};
use crate::util;

const GATEWAY_NAMESPACE: &str = "jvpn-demo-gw";
const ROUTER_NAMESPACE: &str = "jvpn-demo-router";
const CLIENT_NAMESPACE: &str = "jvpn-demo-client";
/// The gateway's veth, where the XDP program is attached.
pub const GATEWAY_IFACE: &str = "jvpndemo0";
/// The gateway's outer address.
pub const GATEWAY_ADDRESS: &str = "10.200.0.1";

/// One of the client's uplinks to the router.
pub struct Uplink {
    /// The interface in the client namespace.
    pub name: &'static str,
    router_device: &'static str,
    client_address: &'static str,
    router_address: &'static str,
    /// The route's metric: wifi is preferred, as on a laptop.
    metric: &'static str,
}

/// wifi first: the client starts there.
pub const UPLINKS: [Uplink; 2] = [
    Uplink {
        name: "wifi",
        router_device: "rt-wifi",
        client_address: "10.77.1.2",
        router_address: "10.77.1.1",
        metric: "1",
    },
    Uplink {
        name: "lte",
        router_device: "rt-lte",
        client_address: "10.77.2.2",
        router_address: "10.77.2.1",
        metric: "2",
    },
];

/// The demo's namespaces; dropping it deletes them and with them every veth.
pub struct Topology {
    /// Runs `jvpn gateway` (XDP on [`GATEWAY_IFACE`], TUN with 10.99.0.1) and the TCP server.
    pub gateway: NetNs,
    /// Forwards between the uplinks and the gateway.
    pub router: NetNs,
    /// Runs `jvpn client` (TUN with 10.99.0.2) and the TCP sender.
    pub client: NetNs,
}

impl Topology {
    /// Creates the namespaces, veths, addresses and routes.
    pub fn create() -> Result<Self> {
        let t = Topology {
            gateway: NetNs::create(GATEWAY_NAMESPACE)?,
            router: NetNs::create(ROUTER_NAMESPACE)?,
            client: NetNs::create(CLIENT_NAMESPACE)?,
        };
        netns::veth_pair(&t.router, "rt-gw", &t.gateway, GATEWAY_IFACE)?;
        t.router.address_up("rt-gw", "10.200.0.254/24")?;
        t.gateway
            .address_up(GATEWAY_IFACE, &format!("{GATEWAY_ADDRESS}/24"))?;
        t.gateway
            .ip(&["route", "add", "10.77.0.0/16", "via", "10.200.0.254"])?;
        util::run(
            t.router
                .command("sysctl")
                .args(["-qw", "net.ipv4.ip_forward=1"]),
        )?;
        for u in &UPLINKS {
            netns::veth_pair(&t.client, u.name, &t.router, u.router_device)?;
            t.client
                .address_up(u.name, &format!("{}/24", u.client_address))?;
            t.router
                .address_up(u.router_device, &format!("{}/24", u.router_address))?;
            // A route to the gateway through each uplink: `--uplink` (SO_BINDTODEVICE) picks one.
            t.client.ip(&[
                "route",
                "add",
                "10.200.0.0/24",
                "via",
                u.router_address,
                "dev",
                u.name,
                "metric",
                u.metric,
            ])?;
        }
        Ok(t)
    }
}
