//! Where packets of the tunnel's userspace path are dropped: a UDP socket whose receive buffer was
//! full (`RcvbufErrors` of `/proc/net/snmp`, per namespace) and a TUN device whose queue toward
//! its reader was full (the device's `tx.dropped`). Read before and after a throughput test.

use jvpn_tests::netns::{run_ok, Netns};

/// Drop counters of one namespace and its TUN device.
#[derive(Clone, Copy, Debug, Default)]
pub struct Drops {
    /// UDP datagrams dropped for a full socket receive buffer.
    pub udp_receive_buffer: u64,
    /// Packets the TUN device dropped because its reader did not keep up.
    pub tun_queue: u64,
}

impl Drops {
    /// Reads the counters of `ns` and its TUN device `tun`.
    pub fn read(ns: &Netns, tun: &str) -> Self {
        let snmp = run_ok(ns.command("cat").arg("/proc/net/snmp"));
        let snmp = String::from_utf8_lossy(&snmp.stdout);
        let mut udp = snmp.lines().filter(|line| line.starts_with("Udp:"));
        let udp_receive_buffer = match (udp.next(), udp.next()) {
            (Some(names), Some(values)) => names
                .split_whitespace()
                .zip(values.split_whitespace())
                .find(|(name, _)| *name == "RcvbufErrors")
                .and_then(|(_, value)| value.parse().ok())
                .unwrap_or(0),
            _ => 0,
        };
        let link = ns.ip(&["-s", "-j", "link", "show", "dev", tun]);
        let link: serde_json::Value =
            serde_json::from_slice(&link.stdout).expect("`ip -j link` prints JSON");
        let tun_queue = link[0]["stats64"]["tx"]["dropped"].as_u64().unwrap_or(0);
        Self {
            udp_receive_buffer,
            tun_queue,
        }
    }

    /// The counts since `earlier`.
    pub fn since(self, earlier: Self) -> Self {
        Self {
            udp_receive_buffer: self.udp_receive_buffer - earlier.udp_receive_buffer,
            tun_queue: self.tun_queue - earlier.tun_queue,
        }
    }
}
