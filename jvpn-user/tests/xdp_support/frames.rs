//! Frames for the XDP program, built by hand (Ethernet, optional 802.1Q tag, IPv4 or IPv6, UDP)
//! because the program reads exactly these bytes; checksums are left at zero since XDP runs
//! before the stack checks them.

use super::PORT;
use bytemuck::Zeroable;
use jvpn_common::abi::{COOKIE_LEN, HEADER_KEY_LEN};
use jvpn_common::hello::HelloMessage;
use jvpn_common::siphash::SipKey;
use jvpn_common::{MessageType, TransportBinding, WireHeader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// A UDP datagram to be framed.
#[derive(Clone, Debug)]
pub struct Udp {
    /// Source address and port.
    pub source: SocketAddr,
    /// Destination address and port.
    pub destination: SocketAddr,
    /// An 802.1Q tag with this VLAN id.
    pub vlan: Option<u16>,
    /// Sent as the first fragment of a fragmented packet (IPv4 MF flag, IPv6 fragment header).
    pub fragment: bool,
    /// IPv6 only: extension headers before UDP (see [`ipv6`]).
    pub ipv6_extensions: Vec<u8>,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

impl Udp {
    /// A datagram from `source` to `destination`.
    pub fn new(source: SocketAddr, destination: SocketAddr, payload: Vec<u8>) -> Self {
        Self {
            source,
            destination,
            vlan: None,
            fragment: false,
            ipv6_extensions: Vec::new(),
            payload,
        }
    }

    /// The Ethernet frame carrying it.
    pub fn frame(&self) -> Vec<u8> {
        let mut udp = Vec::with_capacity(8 + self.payload.len());
        udp.extend_from_slice(&self.source.port().to_be_bytes());
        udp.extend_from_slice(&self.destination.port().to_be_bytes());
        udp.extend_from_slice(&(8 + self.payload.len() as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&self.payload);
        let (ether_type, ip) = match (self.source.ip(), self.destination.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (
                0x0800u16,
                ipv4(s.octets(), d.octets(), 17, self.fragment, &udp),
            ),
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let ip = ipv6(
                    s.octets(),
                    d.octets(),
                    &self.ipv6_extensions,
                    self.fragment,
                    &udp,
                );
                (0x86dd, ip)
            }
            _ => panic!("source and destination of one family"),
        };
        let mut frame = vec![0x02, 0, 0, 0, 0, 0x01, 0x02, 0, 0, 0, 0, 0x02];
        if let Some(vlan) = self.vlan {
            frame.extend_from_slice(&0x8100u16.to_be_bytes());
            frame.extend_from_slice(&vlan.to_be_bytes());
        }
        frame.extend_from_slice(&ether_type.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame
    }
}

/// An IPv4 packet (20-byte header) around `payload`.
pub fn ipv4(
    source: [u8; 4],
    destination: [u8; 4],
    protocol: u8,
    more_fragments: bool,
    payload: &[u8],
) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let flags: u16 = if more_fragments { 0x2000 } else { 0x4000 };
    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&total.to_be_bytes());
    ip.extend_from_slice(&[0, 1]);
    ip.extend_from_slice(&flags.to_be_bytes());
    ip.extend_from_slice(&[64, protocol, 0, 0]);
    ip.extend_from_slice(&source);
    ip.extend_from_slice(&destination);
    ip.extend_from_slice(payload);
    ip
}

/// An IPv6 packet around a UDP datagram, after 8-byte extension headers of the given types
/// (hop-by-hop 0 or destination options 60, each holding one PadN option), and a fragment header
/// (offset 0, more fragments) if `fragment`.
pub fn ipv6(
    source: [u8; 16],
    destination: [u8; 16],
    extensions: &[u8],
    fragment: bool,
    udp: &[u8],
) -> Vec<u8> {
    let mut chain: Vec<u8> = extensions.to_vec();
    if fragment {
        chain.push(44);
    }
    chain.push(17);
    let mut ext = Vec::new();
    for pair in chain.windows(2) {
        let (kind, next) = (pair[0], pair[1]);
        match kind {
            // Fragment header: offset 0, M flag set, identification 1.
            44 => ext.extend_from_slice(&[next, 0, 0, 1, 0, 0, 0, 1]),
            _ => ext.extend_from_slice(&[next, 0, 1, 4, 0, 0, 0, 0]),
        }
    }
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&((ext.len() + udp.len()) as u16).to_be_bytes());
    ip.extend_from_slice(&[chain[0], 64]);
    ip.extend_from_slice(&source);
    ip.extend_from_slice(&destination);
    ip.extend_from_slice(&ext);
    ip.extend_from_slice(udp);
    ip
}

/// A header of `msg_type`, sealed under `key` (HELLO stays unsealed), followed by `body_len` bytes.
pub fn message(
    msg_type: MessageType,
    session_id: u64,
    version: u64,
    nonce: u64,
    key: &[u8; HEADER_KEY_LEN],
    body_len: usize,
) -> Vec<u8> {
    let mut header = WireHeader::new(msg_type, session_id, version, nonce);
    if msg_type != MessageType::Hello {
        header.seal(SipKey::from_bytes(key));
    }
    let mut bytes = header.as_bytes().to_vec();
    bytes.resize(bytes.len() + body_len, 0xab);
    bytes
}

/// A HELLO datagram with a valid mac1 under [`super::MAC1_KEY`] and, given a cookie, a mac2
/// under it; `seed` varies its Noise bytes.
pub fn hello(seed: u8, cookie: Option<[u8; COOKIE_LEN]>) -> Vec<u8> {
    hello_with_key(seed, &super::MAC1_KEY, cookie)
}

/// As [`hello`], with mac1 under `mac1_key`.
pub fn hello_with_key(seed: u8, mac1_key: &[u8; 16], cookie: Option<[u8; COOKIE_LEN]>) -> Vec<u8> {
    let mut hello = HelloMessage::zeroed();
    hello.header = WireHeader::new(MessageType::Hello, 0, 0, 0);
    for (i, b) in hello.noise.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7) ^ seed;
    }
    hello.seal_mac1(SipKey::from_bytes(mac1_key));
    if let Some(cookie) = cookie {
        hello.seal_mac2(&cookie);
    }
    hello.as_bytes().to_vec()
}

/// The cookie of `source` under `secret`, as the gateway would give it.
pub fn cookie_for(secret: &[u8; 16], source: SocketAddr) -> [u8; COOKIE_LEN] {
    jvpn_common::hello::cookie(secret, &TransportBinding::from_socket_addr(source))
}

/// How the frames of one table run are addressed.
pub struct Family {
    /// The client's address, the sessions' bound transport.
    pub client: SocketAddr,
    /// The client's address with another port.
    pub other_port: SocketAddr,
    /// The gateway, at [`PORT`].
    pub gateway: SocketAddr,
    /// The 802.1Q tag of every frame.
    pub vlan: Option<u16>,
}

impl Family {
    /// IPv4 addresses.
    pub fn v4(vlan: Option<u16>) -> Self {
        let client = Ipv4Addr::new(192, 0, 2, 10);
        Self {
            client: SocketAddr::new(client.into(), 40_000),
            other_port: SocketAddr::new(client.into(), 40_001),
            gateway: SocketAddr::new(Ipv4Addr::new(198, 51, 100, 1).into(), PORT),
            vlan,
        }
    }

    /// IPv6 addresses.
    pub fn v6(vlan: Option<u16>) -> Self {
        let client: Ipv6Addr = "2001:db8::10".parse().unwrap();
        Self {
            client: SocketAddr::new(client.into(), 40_000),
            other_port: SocketAddr::new(client.into(), 40_001),
            gateway: SocketAddr::new("2001:db8::1".parse::<Ipv6Addr>().unwrap().into(), PORT),
            vlan,
        }
    }

    /// A datagram from `source` to the gateway.
    pub fn udp(&self, source: SocketAddr, payload: Vec<u8>) -> Udp {
        let mut udp = Udp::new(source, self.gateway, payload);
        udp.vlan = self.vlan;
        udp
    }

    /// The frame of a datagram from the client to the gateway.
    pub fn frame(&self, payload: Vec<u8>) -> Vec<u8> {
        self.udp(self.client, payload).frame()
    }
}
