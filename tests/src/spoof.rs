//! Datagrams from sources that are not ours: IPv4 + UDP packets written whole, sent from a raw
//! socket (`IPPROTO_RAW`, so the kernel takes our IP header as it is) as fast as it goes. What a
//! flood from spoofed sources looks like to the gateway: the `hello_flood_netns` test and
//! `cargo xtask bench flood` both send through here.

use crate::attacker::Noise;
use jvpn_common::hello::HelloMessage;
use jvpn_common::siphash::SipKey;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::atomic::{AtomicBool, Ordering};

/// The IPv4 header's length without options.
const IPV4_HEADER_LEN: usize = 20;
/// The UDP header's length.
const UDP_HEADER_LEN: usize = 8;
/// Where the IPv4 header holds the destination address.
const IPV4_DESTINATION: std::ops::Range<usize> = 16..20;

/// IPv4 + UDP + `payload` from `from` to `to`. The kernel fills in the IP checksum (and the
/// packet id) of a raw `IPPROTO_RAW` send; the UDP checksum is 0, "none", which IPv4 allows.
pub fn ipv4_udp(from: SocketAddrV4, to: SocketAddrV4, payload: &[u8]) -> Vec<u8> {
    let udp_len = u16::try_from(UDP_HEADER_LEN + payload.len()).expect("a datagram under 64 KiB");
    let total = u16::try_from(IPV4_HEADER_LEN).expect("20") + udp_len;
    // Version 4, IHL 5; DSCP 0; total length; id 0; DF; TTL 64; protocol UDP; checksum 0.
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&from.ip().octets());
    p.extend_from_slice(&to.ip().octets());
    p.extend_from_slice(&from.port().to_be_bytes());
    p.extend_from_slice(&to.port().to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    p
}

/// A HELLO like `template` (a real client's, so its length and header are right) with fresh Noise
/// bytes from `noise` and a valid mac1 under `mac1_key`: what an attacker who knows the gateway's
/// public key floods with. Each is new to the gateway's replay and handshake checks.
pub fn fresh_hello(template: &[u8], noise: &mut Noise, mac1_key: SipKey) -> Vec<u8> {
    let mut hello = HelloMessage::from_bytes(template).expect("a HELLO template");
    let bytes = noise.bytes(hello.noise.len());
    hello.noise.copy_from_slice(&bytes);
    hello.seal_mac1(mac1_key);
    hello.as_bytes().to_vec()
}

/// A raw IPv4 socket that sends packets built by [`ipv4_udp`], in the namespace it was opened in.
#[derive(Debug)]
pub struct RawSender {
    socket: Socket,
}

impl RawSender {
    /// Opens the socket in the calling thread's namespace; panics if this process may not
    /// (raw sockets need `CAP_NET_RAW`).
    pub fn open() -> Self {
        let socket = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )
        .unwrap_or_else(|e| panic!("opening a raw IPv4 socket (needs root): {e}"));
        Self { socket }
    }

    /// Sends `packets` in rotation, to the destination address each carries, until `done` is set
    /// and at least `at_least` went out; returns how many the kernel took (a full send buffer
    /// refuses some: they are not counted).
    pub fn flood(&self, packets: &[Vec<u8>], at_least: u64, done: &AtomicBool) -> u64 {
        let destinations: Vec<SockAddr> = packets.iter().map(|p| destination(p)).collect();
        let mut sent = 0u64;
        while !done.load(Ordering::Relaxed) || sent < at_least {
            for (packet, to) in packets.iter().zip(&destinations) {
                if matches!(self.socket.send_to(packet, to), Ok(n) if n > 0) {
                    sent += 1;
                }
            }
        }
        sent
    }
}

/// Sets its flag when dropped: the stop signal of a [`RawSender::flood`] running in a scoped
/// thread, so that a panic in the code measured under the flood stops the flood too (otherwise the
/// scope would wait for it forever, and the panic would never be reported).
#[derive(Debug)]
pub struct StopOnDrop<'a>(pub &'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The destination of an IPv4 packet, as `sendto` wants it (the port is ignored for raw sockets).
fn destination(packet: &[u8]) -> SockAddr {
    let octets: [u8; 4] = packet[IPV4_DESTINATION].try_into().expect("an IPv4 header");
    SockAddr::from(SocketAddrV4::new(Ipv4Addr::from(octets), 0))
}
