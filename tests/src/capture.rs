//! Recording frames on an interface and sending them again, byte for byte: what an on-path
//! observer (or a slow old path) does to a session's traffic.
//!
//! A [`Capture`] is an `AF_PACKET` socket bound to one interface of one namespace; a thread keeps
//! every frame (with its Ethernet header) that `keep` accepts until [`Capture::stop`]. [`inject`]
//! sends recorded frames out of an interface unchanged, so a frame recorded on the client's old
//! uplink reaches the gateway again with its original addresses, ports, header and tag.
//!
//! The capture turns UDP segmentation offload off on its interface first: `jvpn client` sends runs
//! of datagrams with UDP GSO, which a veth carries as one frame, and a tap would record that frame
//! rather than the datagrams a real wire (and the gateway's XDP program) sees.
#![expect(
    unsafe_code,
    reason = "an AF_PACKET socket bound to one interface: libc calls std does not wrap"
)]

use crate::frames::internet_checksum;
use crate::netns::Netns;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

const ETHERNET_HEADER_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const PROTOCOL_UDP: u8 = 17;
const UDP_HEADER_LEN: usize = 8;
const IPV6_HEADER_LEN: usize = 40;
/// How long a blocked receive waits before the thread looks at its stop flag again.
const POLL_INTERVAL_US: libc::suseconds_t = 50_000;

/// One recorded Ethernet frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    /// The whole frame, Ethernet header included.
    pub bytes: Vec<u8>,
    /// Whether the host sent it (as opposed to received it).
    pub outgoing: bool,
}

/// The UDP view of a frame: addresses and payload of an IPv4 or IPv6 datagram.
#[derive(Clone, Copy, Debug)]
pub struct UdpView<'a> {
    /// Source address and port.
    pub source: SocketAddr,
    /// Destination address and port.
    pub destination: SocketAddr,
    /// The UDP payload.
    pub payload: &'a [u8],
}

impl Frame {
    /// The UDP datagram this frame carries, if it carries one (no IPv6 extension headers, no
    /// IPv4 fragments).
    pub fn udp(&self) -> Option<UdpView<'_>> {
        let b = &self.bytes;
        let ethertype = u16::from_be_bytes([*b.get(12)?, *b.get(13)?]);
        let ip = b.get(ETHERNET_HEADER_LEN..)?;
        let (source, destination, udp) = match ethertype {
            ETHERTYPE_IPV4 => {
                let header_len = usize::from(ip.first()? & 0x0f) * 4;
                let fragment = u16::from_be_bytes([*ip.get(6)?, *ip.get(7)?]) & 0x3fff;
                if *ip.get(9)? != PROTOCOL_UDP || fragment != 0 || header_len < 20 {
                    return None;
                }
                let source: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
                let destination: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
                (
                    IpAddr::V4(Ipv4Addr::from(source)),
                    IpAddr::V4(Ipv4Addr::from(destination)),
                    ip.get(header_len..)?,
                )
            }
            ETHERTYPE_IPV6 => {
                if *ip.get(6)? != PROTOCOL_UDP {
                    return None;
                }
                let source: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
                let destination: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
                (
                    IpAddr::V6(Ipv6Addr::from(source)),
                    IpAddr::V6(Ipv6Addr::from(destination)),
                    ip.get(IPV6_HEADER_LEN..)?,
                )
            }
            _ => return None,
        };
        let source_port = u16::from_be_bytes([*udp.first()?, *udp.get(1)?]);
        let destination_port = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
        let udp_len = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
        let payload = udp.get(UDP_HEADER_LEN..udp_len)?;
        Some(UdpView {
            source: SocketAddr::new(source, source_port),
            destination: SocketAddr::new(destination, destination_port),
            payload,
        })
    }
}

/// A recording in progress on one interface.
pub struct Capture {
    frames: Arc<Mutex<Vec<Frame>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// An `AF_PACKET` socket for every protocol, bound to `iface`; must run inside the interface's
/// namespace.
fn packet_socket(iface: &str) -> std::io::Result<OwnedFd> {
    let index = nix::net::if_::if_nametoindex(iface).map_err(std::io::Error::from)?;
    let all = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call; the result is checked before it is wrapped.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(all)) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain old data; all-zero is a valid starting value.
    let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    address.sll_family = libc::AF_PACKET as u16;
    address.sll_protocol = all;
    address.sll_ifindex = i32::try_from(index).map_err(std::io::Error::other)?;
    // SAFETY: `address` is a valid sockaddr_ll and the length passed is its size.
    let bound = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            std::ptr::from_ref(&address).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if bound < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let timeout = libc::timeval {
        tv_sec: 0,
        tv_usec: POLL_INTERVAL_US,
    };
    // SAFETY: SO_RCVTIMEO takes a timeval; the pointer and length describe `timeout`.
    let set = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::from_ref(&timeout).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if set < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// Receives one frame; `None` when the receive timed out.
fn receive(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<Option<Frame>> {
    // SAFETY: sockaddr_ll is plain old data; the kernel fills it in.
    let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: `buf` and `from` are valid for writes of the lengths passed.
    let n = unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            0,
            std::ptr::from_mut(&mut from).cast(),
            &mut from_len,
        )
    };
    if n < 0 {
        let error = std::io::Error::last_os_error();
        return match error.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(error),
        };
    }
    let len = usize::try_from(n).expect("recvfrom returned a non-negative length");
    Ok(Some(Frame {
        bytes: buf[..len].to_vec(),
        outgoing: from.sll_pkttype == libc::PACKET_OUTGOING,
    }))
}

impl Capture {
    /// Starts recording the frames on `iface` (in `ns`) that `keep` accepts.
    pub fn start(ns: &Netns, iface: &str, keep: impl Fn(&Frame) -> bool + Send + 'static) -> Self {
        crate::netns::run_ok(ns.command("ethtool").args([
            "-K",
            iface,
            "tx-udp-segmentation",
            "off",
        ]));
        let fd = ns
            .run(|| packet_socket(iface))
            .unwrap_or_else(|e| panic!("an AF_PACKET socket on {iface} in {}: {e}", ns.name()));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let (frames, stop) = (Arc::clone(&frames), Arc::clone(&stop));
            move || {
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    match receive(&fd, &mut buf) {
                        Ok(Some(frame)) if keep(&frame) => {
                            frames.lock().expect("capture lock").push(frame);
                        }
                        Ok(_) => {}
                        Err(e) => panic!("capturing: {e}"),
                    }
                }
            }
        });
        Self {
            frames,
            stop,
            thread: Some(thread),
        }
    }

    /// The frames recorded so far.
    pub fn frames(&self) -> Vec<Frame> {
        self.frames.lock().expect("capture lock").clone()
    }

    /// Stops recording and returns every recorded frame, in order.
    pub fn stop(mut self) -> Vec<Frame> {
        self.finish();
        self.frames()
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        }
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// `template`'s frame (its Ethernet, IP and UDP headers: addresses, ports, MACs) carrying
/// `payload` instead of its own, with the IP and UDP lengths (and the IPv4 header checksum) set
/// for it; [`inject`] completes the UDP checksum. What a spoofing sender makes: another message
/// from exactly the template's source.
pub fn with_payload(template: &Frame, payload: &[u8]) -> Frame {
    let udp = template
        .udp()
        .expect("the template frame carries a UDP datagram");
    let ip_start = ETHERNET_HEADER_LEN;
    let (udp_start, v4) = match udp.source.ip() {
        IpAddr::V4(_) => (
            ip_start + usize::from(template.bytes[ip_start] & 0x0f) * 4,
            true,
        ),
        IpAddr::V6(_) => (ip_start + IPV6_HEADER_LEN, false),
    };
    let udp_len = UDP_HEADER_LEN + payload.len();
    let mut bytes = template.bytes[..udp_start + UDP_HEADER_LEN].to_vec();
    bytes.extend_from_slice(payload);
    let udp_len16 = u16::try_from(udp_len).expect("a payload that fits a datagram");
    bytes[udp_start + 4..udp_start + 6].copy_from_slice(&udp_len16.to_be_bytes());
    if v4 {
        let total = u16::try_from(udp_start - ip_start + udp_len).expect("fits an IPv4 packet");
        bytes[ip_start + 2..ip_start + 4].copy_from_slice(&total.to_be_bytes());
        bytes[ip_start + 10..ip_start + 12].fill(0);
        let sum = internet_checksum(&[&bytes[ip_start..udp_start]]);
        bytes[ip_start + 10..ip_start + 12].copy_from_slice(&sum.to_be_bytes());
    } else {
        bytes[ip_start + 4..ip_start + 6].copy_from_slice(&udp_len16.to_be_bytes());
    }
    Frame {
        bytes,
        outgoing: template.outgoing,
    }
}

/// Whether `frame` is a UDP datagram the host sent to `port`.
pub fn outgoing_udp_to(frame: &Frame, port: u16) -> bool {
    frame.outgoing && frame.udp().is_some_and(|u| u.destination.port() == port)
}

/// The frame with its UDP checksum computed. A host's outgoing frames on a veth carry only the
/// pseudo-header part of it (checksum offload: the stack leaves the rest to the "hardware"), so
/// a recorded frame sent again as is would be dropped by the receiver for a bad checksum.
fn with_udp_checksum(frame: &Frame) -> Vec<u8> {
    let mut bytes = frame.bytes.clone();
    let Some(udp) = frame.udp() else {
        return bytes;
    };
    let udp_len = udp.payload.len() + UDP_HEADER_LEN;
    let udp_start = ETHERNET_HEADER_LEN
        + match udp.source.ip() {
            IpAddr::V4(_) => usize::from(frame.bytes[ETHERNET_HEADER_LEN] & 0x0f) * 4,
            IpAddr::V6(_) => IPV6_HEADER_LEN,
        };
    let (source, destination): (Vec<u8>, Vec<u8>) = match (udp.source.ip(), udp.destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => (s.octets().to_vec(), d.octets().to_vec()),
        (IpAddr::V6(s), IpAddr::V6(d)) => (s.octets().to_vec(), d.octets().to_vec()),
        _ => return bytes,
    };
    bytes[udp_start + 6] = 0;
    bytes[udp_start + 7] = 0;
    let udp_len = u16::try_from(udp_len).expect("a UDP datagram's length fits its field");
    let sum = internet_checksum(&[
        &source,
        &destination,
        &[0, PROTOCOL_UDP],
        &udp_len.to_be_bytes(),
        &bytes[udp_start..udp_start + usize::from(udp_len)],
    ]);
    let checksum = match sum {
        0 => 0xffff,
        c => c,
    };
    bytes[udp_start + 6..udp_start + 8].copy_from_slice(&checksum.to_be_bytes());
    bytes
}

/// Sends `frames` out of `iface` (in `ns`) as recorded, with only the UDP checksum completed
/// (see [`with_udp_checksum`]).
pub fn inject(ns: &Netns, iface: &str, frames: &[Frame]) {
    ns.run(|| {
        let fd =
            packet_socket(iface).unwrap_or_else(|e| panic!("an AF_PACKET socket on {iface}: {e}"));
        for frame in frames {
            let bytes = with_udp_checksum(frame);
            // SAFETY: the socket is bound to `iface`, so send(2) needs no address; the pointer
            // and length describe `bytes`.
            let sent = unsafe { libc::send(fd.as_raw_fd(), bytes.as_ptr().cast(), bytes.len(), 0) };
            assert!(
                sent >= 0,
                "injecting a frame on {iface}: {}",
                std::io::Error::last_os_error()
            );
        }
    });
}
