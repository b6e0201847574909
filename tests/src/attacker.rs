//! A hostile host for the tunnel tests: an attacker namespace hung off the tunnel topology's
//! router (so it can reach the gateway's port, and the router can watch and withhold the client's
//! traffic), the jvpn view of recorded frames, the flood and the datagrams it is made of, and
//! the interface drop counters that say how much of it the path itself lost.
//!
//! ```text
//!  gateway ns  <==veth==>  router ns (t.f.hosts.client)  <==wifi/lte==>  client ns
//!  10.200.0.1   XDP           | <r> 10.202.0.1/24
//!                             |
//!                      <a> 10.202.0.2/24   attacker ns (its own address, its own sockets)
//! ```
//!
//! Every datagram is built from `jvpn_common`'s own types ([`WireHeader`], [`MessageType`],
//! `abi`), so the flood's categories are exactly the reasons the XDP program must give.

use crate::capture::Frame;
use crate::netns::{run_ok, unique_name, Netns};
use crate::topology::GATEWAY_V4;
use crate::tunnel::{link, Tunnel};
use crate::wire_client::socket;
use jvpn_common::abi::{DEFAULT_PORT, HEADER_LEN, PROTOCOL_VERSION};
use jvpn_common::wire::Be64;
use jvpn_common::{MessageType, WireHeader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The attacker's own address.
pub const ATTACKER_V4: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 2);
/// The router's address on the attacker's link.
const ROUTER_V4: Ipv4Addr = Ipv4Addr::new(10, 202, 0, 1);
/// The nftables table the router uses to withhold messages.
const WITHHOLD_TABLE: &str = "jvpn_attacker";
/// The flood's size bounds: it runs while `done` is unset, within these.
pub const FLOOD_MIN: u64 = 20_000;
/// See [`FLOOD_MIN`].
pub const FLOOD_MAX: u64 = 80_000;
/// Length of a UDP header: where the jvpn header starts in nftables' transport-header view.
const UDP_HEADER_LEN: usize = 8;

/// An attacker namespace attached to the tunnel's router.
pub struct Attacker {
    /// The attacker's namespace.
    pub ns: Netns,
}

impl Attacker {
    /// Adds the attacker's namespace and link to `t`'s router, with routes both ways between it
    /// and the gateway.
    pub fn on_path(t: &Tunnel) -> Self {
        let ns = Netns::new("a");
        let router = &t.f.hosts.client;
        link(
            router,
            &unique_name("r"),
            &format!("{ROUTER_V4}/24"),
            &ns,
            &unique_name("A"),
            &format!("{ATTACKER_V4}/24"),
        );
        ns.ip(&["route", "add", "default", "via", &ROUTER_V4.to_string()]);
        t.f.hosts
            .gateway
            .ip(&["route", "add", "10.202.0.0/24", "via", "10.200.0.2"]);
        Self { ns }
    }

    /// A UDP socket of the attacker's own, on a fresh port.
    pub fn socket(&self) -> UdpSocket {
        self.ns
            .run(|| socket(SocketAddr::new(ATTACKER_V4.into(), 0)))
    }

    /// Floods the gateway's port until `done` (between [`FLOOD_MIN`] and [`FLOOD_MAX`]
    /// datagrams): garbage and truncated headers, DATA of unknown sessions, and DATA and KEEPALIVE
    /// of `session` with forged tags, with a forged REATTACH_REQUEST now and then. Returns how
    /// many it sent that must be dropped as `[MALFORMED, UNKNOWN_SESSION, BAD_TAG]`.
    pub fn flood(&self, session: u64, done: &AtomicBool) -> [u64; 3] {
        use MessageType::{Data, Keepalive, ReattachRequest};
        const ROUND: usize = 64;
        let socket = self.socket();
        let gateway = SocketAddr::new(GATEWAY_V4.into(), DEFAULT_PORT);
        let mut noise = Noise::new(session);
        let mut sent = [0u64; 3];
        while sent.iter().sum::<u64>() < FLOOD_MIN
            || (!done.load(Ordering::Relaxed) && sent.iter().sum::<u64>() < FLOOD_MAX)
        {
            for i in 0..ROUND {
                let (kind, datagram) = match i % 8 {
                    _ if i == ROUND - 1 => (2, forged(&mut noise, ReattachRequest, session, 1)),
                    0 | 1 => (0, garbage(&mut noise)),
                    2 => (0, truncated_header(&mut noise, session)),
                    3 | 4 => (1, unknown_session(&mut noise, session)),
                    5 | 6 => (2, forged(&mut noise, Data, session, 1)),
                    _ => (2, forged(&mut noise, Keepalive, session, 1)),
                };
                if socket.send_to(&datagram, gateway).is_ok() {
                    sent[kind] += 1;
                }
            }
            // A pause between rounds keeps the flood within what the veths forward without
            // loss; what they do lose is counted by `path_drops`.
            std::thread::sleep(Duration::from_micros(500));
        }
        sent
    }
}

/// The jvpn header of a recorded frame, if it carries a valid one (any destination port).
pub fn jvpn_header(frame: &Frame) -> Option<WireHeader> {
    WireHeader::parse(frame.udp()?.payload).ok()
}

/// Whether `frame` carries a jvpn message of type `kind`.
pub fn is_message(frame: &Frame, kind: MessageType) -> bool {
    jvpn_header(frame).is_some_and(|h| h.message_type() == Some(kind))
}

/// The router interface that holds `address` (e.g. its end of the client's wifi link).
pub fn router_interface(t: &Tunnel, address: Ipv4Addr) -> String {
    let out = t.f.hosts.client.ip(&["-o", "-4", "addr", "show"]);
    let text = String::from_utf8_lossy(&out.stdout);
    let needle = format!("inet {address}/");
    text.lines()
        .find(|l| l.contains(&needle))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no router interface holds {address}:\n{text}"))
        .to_owned()
}

/// Makes the router drop every `kind` message forwarded from `source` to the gateway's port
/// (an on-path attacker keeping a message from arriving), until [`release`].
pub fn withhold(t: &Tunnel, source: Ipv4Addr, port: u16, kind: MessageType) {
    let rules = format!(
        "table inet {WITHHOLD_TABLE} {{\n\
         chain forward {{\n\
         type filter hook forward priority 0; policy accept;\n\
         ip saddr {source} udp dport {port} @th,{},8 {} drop\n\
         }}\n}}\n",
        type_bit(),
        kind as u8
    );
    install_rules(t, &rules);
}

/// Makes the router drop the first `kind` message (of `len` bytes of UDP payload) the gateway
/// sends towards the client, and only that one (a path that loses one datagram); [`lost`] says
/// how many it dropped. Until [`release`].
pub fn lose_first(t: &Tunnel, kind: MessageType, len: usize) {
    // An nftables quota counts the IP bytes of what reaches it, and matches until they pass it:
    // one such message fits under it in either family (IPv6's header is the longer, 40 bytes),
    // two never do.
    let one = len + UDP_HEADER_LEN + 40;
    let rules = format!(
        "table inet {WITHHOLD_TABLE} {{\n\
         chain forward {{\n\
         type filter hook forward priority 0; policy accept;\n\
         udp sport {DEFAULT_PORT} @th,{},8 {} quota until {one} bytes counter drop\n\
         }}\n}}\n",
        type_bit(),
        kind as u8
    );
    install_rules(t, &rules);
}

/// How many messages the rule of [`lose_first`] dropped.
pub fn lost(t: &Tunnel) -> u64 {
    let out =
        run_ok(
            t.f.hosts
                .client
                .command("nft")
                .args(["list", "table", "inet", WITHHOLD_TABLE]),
        );
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no counter in the table:\n{text}"))
}

/// Where the message type byte lies in nftables' transport-header view, in bits.
fn type_bit() -> usize {
    (UDP_HEADER_LEN + core::mem::offset_of!(WireHeader, msg_type)) * 8
}

/// Loads `rules` into the router's nftables.
fn install_rules(t: &Tunnel, rules: &str) {
    let mut nft =
        t.f.hosts
            .client
            .command("nft")
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nft");
    std::io::Write::write_all(nft.stdin.as_mut().expect("nft stdin"), rules.as_bytes())
        .expect("write the nft rules");
    let out = nft.wait_with_output().expect("wait for nft");
    assert!(
        out.status.success(),
        "nft refused the rule:\n{rules}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Removes the rule [`withhold`] or [`lose_first`] installed.
pub fn release(t: &Tunnel) {
    run_ok(
        t.f.hosts
            .client
            .command("nft")
            .args(["delete", "table", "inet", WITHHOLD_TABLE]),
    );
}

/// A small deterministic generator (xorshift64), so a flood is the same at every run.
pub struct Noise(u64);

impl Noise {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Random bytes that are not a jvpn header: anything of at least [`HEADER_LEN`] bytes with a
/// wrong protocol version, or fewer bytes than a header (down to an empty datagram). MALFORMED.
pub fn garbage(noise: &mut Noise) -> Vec<u8> {
    let len = (noise.next_u64() % (2 * HEADER_LEN as u64 + 1)) as usize;
    let mut bytes = noise.bytes(len);
    if let Some(first) = bytes.first_mut() {
        if *first == PROTOCOL_VERSION {
            *first = PROTOCOL_VERSION.wrapping_add(1);
        }
    }
    bytes
}

/// A well-formed DATA header cut short. MALFORMED.
pub fn truncated_header(noise: &mut Noise, session: u64) -> Vec<u8> {
    let header = WireHeader::new(MessageType::Data, session, 1, noise.next_u64() | 1);
    let len = (noise.next_u64() % HEADER_LEN as u64) as usize;
    header.as_bytes()[..len].to_vec()
}

/// A well-formed DATA datagram for a random session id other than `avoid`. UNKNOWN_SESSION.
pub fn unknown_session(noise: &mut Noise, avoid: u64) -> Vec<u8> {
    let id = match noise.next_u64() {
        0 => 1,
        id if id == avoid => !id,
        id => id,
    };
    forged(noise, MessageType::Data, id, 1)
}

/// A well-formed `kind` datagram for `session` at `version` whose tag is random: without the
/// session's header key nobody can do better. BAD_TAG (with odds of 2^-64 against).
pub fn forged(noise: &mut Noise, kind: MessageType, session: u64, version: u64) -> Vec<u8> {
    let mut header = WireHeader::new(kind, session, version, noise.next_u64() | 1);
    header.tag = Be64::new(noise.next_u64());
    let body_len = (noise.next_u64() % 64) as usize;
    [header.as_bytes().as_slice(), &noise.bytes(body_len)].concat()
}

/// Frames dropped on any interface of `namespaces` (received or sent), per `ip -s link`.
pub fn path_drops(namespaces: &[&Netns]) -> u64 {
    namespaces
        .iter()
        .map(|ns| {
            let out = ns.ip(&["-s", "-j", "link", "show"]);
            let links: serde_json::Value =
                serde_json::from_slice(&out.stdout).expect("ip -j prints JSON");
            links
                .as_array()
                .expect("a list of links")
                .iter()
                .map(|l| {
                    l["stats64"]["rx"]["dropped"].as_u64().unwrap_or(0)
                        + l["stats64"]["tx"]["dropped"].as_u64().unwrap_or(0)
                })
                .sum::<u64>()
        })
        .sum()
}
