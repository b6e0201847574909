//! UDP GSO runs against the gateway's XDP program: a jvpn session bound to a client socket in
//! the client namespace of a [`TwoHosts`], a gateway socket on the jvpn port, and the sending of
//! several datagrams as one run (`UDP_SEGMENT`), which a veth carries as one skb. Shared by the
//! tests of native XDP with GRO after it and of generic XDP with merged runs.

use crate::jvpn::TestSession;
use crate::netns::{run_ok, Netns};
use crate::topology::{TwoHosts, CLIENT_V4};
use jvpn_common::SessionState;
use jvpn_user::dataplane::Dataplane;
use nix::sys::socket::{sendmsg, setsockopt, sockopt, ControlMessage, MsgFlags, SockaddrIn};
use std::io::IoSlice;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The client's port the session is bound to.
pub const CLIENT_PORT: u16 = 40000;

/// A session in the dataplane bound to `client`, and the two sockets of its path.
pub struct BoundSession {
    /// The gateway's socket on the jvpn port, in the gateway namespace, with a read timeout.
    pub gateway: UdpSocket,
    /// The client's socket, on [`CLIENT_V4`]:[`CLIENT_PORT`] in the client namespace.
    pub client: UdpSocket,
    /// The session, written ATTACHED into `dataplane` at the version given.
    pub session: TestSession,
}

/// How the gateway's socket reads runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatewayGro {
    /// `UDP_GRO` on: the kernel may hand a run over in one read (as `jvpn gateway` behind
    /// native XDP).
    On,
    /// `UDP_GRO` off (as `jvpn gateway` behind generic XDP).
    Off,
}

impl BoundSession {
    /// Binds the gateway's socket on `port` (reads time out after `patience`) and the client's,
    /// and writes session `id` at `version`, bound to the client's socket, into `dataplane`.
    pub fn new(
        hosts: &TwoHosts,
        dataplane: &Dataplane,
        (id, version): (u64, u64),
        port: u16,
        gro: GatewayGro,
        patience: Duration,
    ) -> Self {
        let gateway = hosts.gateway.run(|| {
            let socket = UdpSocket::bind(("0.0.0.0", port)).expect("binding the jvpn port");
            socket.set_read_timeout(Some(patience)).unwrap();
            if gro == GatewayGro::On {
                setsockopt(&socket, sockopt::UdpGroSegment, &true).expect("UDP_GRO on the socket");
            }
            socket
        });
        let client_addr = SocketAddr::new(CLIENT_V4.into(), CLIENT_PORT);
        let client = hosts
            .client
            .run(|| UdpSocket::bind(client_addr).expect("binding the client's socket"));
        let session = TestSession::new(id);
        dataplane
            .upsert_session(
                session.id,
                &session.entry(SessionState::Attached, version, client_addr),
            )
            .expect("writing the session into the dataplane");
        Self {
            gateway,
            client,
            session,
        }
    }
}

/// Sends `datagrams` (all one size) to `to` in one `sendmsg` with `UDP_SEGMENT`.
pub fn send_run(socket: &UdpSocket, to: SocketAddrV4, datagrams: &[Vec<u8>]) {
    let size = u16::try_from(datagrams[0].len()).expect("a datagram fits a u16");
    assert!(datagrams.iter().all(|d| d.len() == datagrams[0].len()));
    sendmsg(
        socket.as_raw_fd(),
        &[IoSlice::new(&datagrams.concat())],
        &[ControlMessage::UdpGsoSegments(&size)],
        MsgFlags::empty(),
        Some(&SockaddrIn::from(to)),
    )
    .expect("sending a UDP GSO run");
}

/// Whether the offload `name` (`generic-receive-offload`, `rx-gro-list`...) of `device` in `ns`
/// is on, as `ethtool -k` reports it.
pub fn offload_on(ns: &Netns, device: &str, name: &str) -> bool {
    let out = run_ok(ns.nsenter("ethtool").args(["-k", device]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} line in `ethtool -k {device}`:\n{text}"));
    line.contains(": on")
}
