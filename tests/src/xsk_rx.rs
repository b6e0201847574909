//! The receive side of accepted DATA, two ways, for the `xsk_rx_netns` test and `cargo xtask bench
//! rx`: the benchmark object's XDP programs (`jvpn_bench_rx_pass`, `jvpn_bench_rx_xsk`) attached in
//! driver mode to the receiving veth end ([`RxProgram`], [`AttachedRx`]), a UDP socket read as the
//! gateway's best path reads ([`crate::gro_batch::SocketReceiver`]: `UDP_GRO`, `recvmmsg`, 16 MiB
//! buffer), an
//! AF_XDP socket ([`jvpn_tests::xsk::XskReceiver`]), and a sender of UDP GSO runs ([`GsoSender`]).

use std::io::IoSlice;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;

use aya::maps::{Array, MapData, PerCpuArray, XskMap};
use aya::programs::xdp::XdpMode;
use aya::programs::Xdp;
use aya::{Ebpf, EbpfLoader};
use jvpn_user::socket_buffers::TUNNEL_SOCKET_BUFFER_BYTES;
use nix::sys::socket::{sendmsg, setsockopt, sockopt, ControlMessage, MsgFlags};

/// The UDP port the programs treat as accepted DATA.
pub const RX_PORT: u16 = 51_820;
/// The programs' port map (entry 0: the port, host order).
const MAP_PORT: &str = "JVPN_BENCH_RX_PORT";
/// The programs' XSKMAP (one slot per receive queue).
const MAP_XSK: &str = "JVPN_BENCH_XSK";
/// Frames to the port the programs saw (per CPU).
const MAP_SEEN: &str = "JVPN_BENCH_RX_SEEN";
/// Bytes of Ethernet header in front of the IP header on a veth.
const ETHERNET_HEADER: usize = 14;
/// Bytes of a UDP header.
const UDP_HEADER: usize = 8;
/// The most one GSO send or one GRO read carries (the kernel's limits).
pub const MAX_RUN_BYTES: usize = 65_507;
/// The most datagrams one GSO send carries (`UDP_MAX_SEGMENTS`).
pub const MAX_RUN_DATAGRAMS: usize = 64;

/// Which program decides where a datagram to [`RX_PORT`] goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxProgram {
    /// `XDP_PASS`: on to the UDP stack and the socket.
    Pass,
    /// Redirect into the AF_XDP socket of the frame's receive queue.
    Xsk,
}

impl RxProgram {
    /// The program's name in the benchmark object.
    fn name(self) -> &'static str {
        match self {
            RxProgram::Pass => "jvpn_bench_rx_pass",
            RxProgram::Xsk => "jvpn_bench_rx_xsk",
        }
    }
}

/// A receive program attached in driver mode to an interface of the calling thread's namespace;
/// detached when dropped.
#[derive(Debug)]
pub struct AttachedRx {
    objects: Ebpf,
}

impl AttachedRx {
    /// Loads the benchmark object, sets the port to [`RX_PORT`] and attaches `program` to `iface`
    /// in driver mode, as the gateway attaches its program.
    pub fn attach(iface: &str, program: RxProgram) -> Self {
        let mut objects = EbpfLoader::new()
            .load(jvpn_user::dataplane::object::JVPN_BENCH_OBJECT)
            .expect("loading the benchmark object");
        let mut port: Array<&mut MapData, u32> = Array::try_from(
            objects
                .map_mut(MAP_PORT)
                .expect("the benchmark object's port map"),
        )
        .expect("an array map");
        port.set(0, u32::from(RX_PORT), 0)
            .expect("setting the port");
        let xdp: &mut Xdp = objects
            .program_mut(program.name())
            .expect("the receive program")
            .try_into()
            .expect("an XDP program");
        xdp.load()
            .unwrap_or_else(|e| panic!("the verifier refused {}: {e:#?}", program.name()));
        xdp.attach(iface, XdpMode::Driver).unwrap_or_else(|e| {
            panic!(
                "attaching {} to {iface} in driver mode: {e}",
                program.name()
            )
        });
        Self { objects }
    }

    /// The program's XSKMAP, to put a socket into.
    pub fn xsk_map(&mut self) -> XskMap<&mut MapData> {
        XskMap::try_from(self.objects.map_mut(MAP_XSK).expect("the XSKMAP")).expect("an XSKMAP")
    }

    /// Frames to [`RX_PORT`] the program has seen so far, over all CPUs.
    pub fn seen(&self) -> u64 {
        let seen: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.objects.map(MAP_SEEN).expect("the seen counter"))
                .expect("a per-CPU array");
        seen.get(&0, 0)
            .expect("reading the seen counter")
            .iter()
            .sum()
    }
}

/// The UDP payload of an Ethernet + IPv4 + UDP frame and its destination port, or `None` if the
/// frame is not one.
pub fn udp_payload(frame: &[u8]) -> Option<(u16, &[u8])> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    let ip = frame.get(ETHERNET_HEADER..)?;
    let (&version_ihl, &protocol) = (ip.first()?, ip.get(9)?);
    if ethertype != 0x0800 || version_ihl >> 4 != 4 || protocol != 17 {
        return None;
    }
    let udp = ip.get(usize::from(version_ihl & 0x0f) * 4..)?;
    let port = u16::from_be_bytes([*udp.get(2)?, *udp.get(3)?]);
    let length = usize::from(u16::from_be_bytes([*udp.get(4)?, *udp.get(5)?]));
    Some((port, udp.get(UDP_HEADER..length)?))
}

/// A connected UDP socket that sends runs of equal-sized datagrams in one `sendmsg` each
/// (`UDP_SEGMENT`), so the sender is cheap per datagram.
#[derive(Debug)]
pub struct GsoSender {
    socket: UdpSocket,
}

impl GsoSender {
    /// A socket connected to `to`, with a 16 MiB send buffer.
    pub fn connect(to: SocketAddrV4) -> Self {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).expect("binding the sender");
        setsockopt(&socket, sockopt::SndBufForce, &TUNNEL_SOCKET_BUFFER_BYTES)
            .expect("SO_SNDBUFFORCE (root)");
        socket.connect(to).expect("connecting the sender");
        Self { socket }
    }

    /// Sends `run` as datagrams of `size` bytes (the last may be shorter) in one `sendmsg`.
    pub fn send_run(&self, run: &[u8], size: u16) -> std::io::Result<()> {
        let segment = [ControlMessage::UdpGsoSegments(&size)];
        sendmsg::<()>(
            self.socket.as_raw_fd(),
            &[IoSlice::new(run)],
            &segment,
            MsgFlags::empty(),
            None,
        )
        .map(drop)
        .map_err(std::io::Error::from)
    }
}
