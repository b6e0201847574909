//! GRO after native XDP on a veth: a driver-mode load turns the veth's GRO on (so a client's
//! datagrams reach the gateway's `UDP_GRO` socket as runs again), and every datagram of a client's
//! UDP GSO run is still judged on its own before GRO merges what passed. A forged and a replayed
//! datagram hidden inside a run are each dropped under their reason; only the valid ones arrive.
//!
//! ```text
//!  +------------------- gateway ns --------------------+       +------------ client ns -------------+
//!  |  UDP 0.0.0.0:51900  UDP_GRO on (as jvpn gateway)  |       |  UDP <client>:40000  bound session |
//!  |                                                   |       |   one sendmsg, UDP_SEGMENT: a run  |
//!  |  <gw> 10.200.0.1/24   GRO on (set by the load)    |       |  <cl> 10.200.0.2/24                |
//!  |       XDP jvpn_xdp, driver mode, pinned link  <===|=veth==|===>  GSO stripped by the attach    |
//!  +---------------------------------------------------+       +------------------------------------+
//!     pins: /sys/fs/bpf/jvpn/<gw>/v<layout>/  (host bpffs)
//! ```

use jvpn_common::{abi, MessageType, RejectReason};
use jvpn_tests::gso_run::{offload_on, send_run, BoundSession, GatewayGro};
use jvpn_tests::guard::PinDirGuard;
use jvpn_tests::require_root;
use jvpn_tests::topology::{TwoHosts, GATEWAY_V4};
use jvpn_user::dataplane::{Dataplane, DataplaneOptions};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrStorage};
use std::io::IoSliceMut;
use std::net::{SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

/// The gateway's jvpn port.
const PORT: u16 = abi::DEFAULT_PORT;
/// The session's state_version.
const VERSION: u64 = 3;
/// The sealed body of every datagram: one size, so the datagrams form one GSO run.
const BODY: &[u8] = &[0xab; 600];
/// Datagrams in the run of valid ones only.
const CLEAN_RUN: u64 = 8;
/// Upper bound on waiting for a datagram that must come; a failure bound, not a sleep.
const PATIENCE: Duration = Duration::from_secs(5);

/// Reads one GRO run from `socket` and splits it into its datagrams.
fn receive_run(socket: &UdpSocket) -> Vec<Vec<u8>> {
    let mut buffer = vec![0u8; 1 << 16];
    let mut control = nix::cmsg_space!(i32);
    let mut iov = [IoSliceMut::new(&mut buffer)];
    let message = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::empty(),
    )
    .expect("a run of valid datagrams never reached the gateway socket");
    let len = message.bytes;
    let mut segment = len;
    for cmsg in message.cmsgs().expect("control messages") {
        if let ControlMessageOwned::UdpGroSegments(size) = cmsg {
            segment = usize::try_from(size).expect("a positive segment size");
        }
    }
    buffer[..len].chunks(segment).map(<[u8]>::to_vec).collect()
}

/// Reads runs from `socket` until `count` datagrams came; returns them and the number of reads.
fn receive_datagrams(socket: &UdpSocket, count: usize) -> (Vec<Vec<u8>>, usize) {
    let mut received = Vec::new();
    let mut reads = 0;
    while received.len() < count {
        received.extend(receive_run(socket));
        reads += 1;
    }
    (received, reads)
}

#[test]
fn gro_after_native_xdp_still_judges_every_datagram_of_a_run() {
    require_root();
    let hosts = TwoHosts::new();
    assert!(
        !offload_on(&hosts.gateway, &hosts.gateway_if, "generic-receive-offload"),
        "a fresh veth should start with GRO off"
    );
    let mut options = DataplaneOptions::new(hosts.gateway_if.as_str());
    options.port = PORT;
    options.max_sessions = 64;
    let dataplane = hosts
        .gateway
        .run(|| Dataplane::load(&options))
        .expect("loading the dataplane in the gateway namespace");
    let _pins = PinDirGuard::new(dataplane.pin_dir());
    assert!(
        offload_on(&hosts.gateway, &hosts.gateway_if, "generic-receive-offload"),
        "a driver-mode load on a veth turns its GRO on"
    );

    let BoundSession {
        gateway,
        client,
        session,
    } = BoundSession::new(
        &hosts,
        &dataplane,
        (0x6e0_0000_0000_0001, VERSION),
        PORT,
        GatewayGro::On,
        PATIENCE,
    );

    let nonce = abi::REPLAY_WINDOW + 10;
    let valid = |n: u64| session.datagram(MessageType::Data, VERSION, n, BODY);
    let forged = session.datagram_with_bad_tag(MessageType::Data, VERSION, nonce + 1, BODY);
    // The forged datagram takes nonce + 1 first; never touching the window, it leaves that
    // nonce to the valid datagram after it. The fourth replays the first.
    let run = [
        valid(nonce),
        forged,
        valid(nonce + 1),
        valid(nonce),
        valid(nonce + 2),
    ];
    let expected = vec![valid(nonce), valid(nonce + 1), valid(nonce + 2)];

    let before = dataplane.counters().expect("reading counters");
    send_run(&client, SocketAddrV4::new(GATEWAY_V4, PORT), &run);
    assert_eq!(
        receive_datagrams(&gateway, expected.len()).0,
        expected,
        "only the valid datagrams, in order"
    );
    let delta = dataplane
        .counters()
        .expect("reading counters")
        .since(&before);
    assert_eq!(delta.accepted().packets, 3, "{delta:?}");
    assert_eq!(delta.dropped(RejectReason::BadTag).packets, 1, "{delta:?}");
    assert_eq!(
        delta.dropped(RejectReason::DuplicateNonce).packets,
        1,
        "{delta:?}"
    );
    assert_eq!(delta.total_dropped().packets, 2, "{delta:?}");

    // A run of valid datagrams is merged again after the program judged each. (The run above
    // could not be: GRO merges IPv4 datagrams only while their IP ids follow on, and the
    // dropped ones left gaps.)
    let clean: Vec<Vec<u8>> = (nonce + 3..nonce + 3 + CLEAN_RUN).map(valid).collect();
    let before = dataplane.counters().expect("reading counters");
    send_run(&client, SocketAddrV4::new(GATEWAY_V4, PORT), &clean);
    let (received, reads) = receive_datagrams(&gateway, clean.len());
    assert_eq!(received, clean);
    assert!(
        reads < clean.len(),
        "GRO after XDP should merge the run into fewer reads than datagrams ({reads} reads)"
    );
    let delta = dataplane
        .counters()
        .expect("reading counters")
        .since(&before);
    assert_eq!(delta.accepted().packets, CLEAN_RUN, "{delta:?}");
    assert_eq!(delta.total_dropped().packets, 0, "{delta:?}");

    dataplane.detach().expect("detach");
}
