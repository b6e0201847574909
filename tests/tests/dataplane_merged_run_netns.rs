//! Generic XDP on a veth and merged runs: the peer keeps its UDP segmentation offload (only a
//! native program strips it), so a UDP GSO run crosses the veth as one skb and the generic
//! program sees it whole. The program drops such a frame whole as `MERGED_RUN` (it is longer
//! than any one datagram): none of its datagrams reaches the socket, forged and replayed ones
//! included, and no replay window moves. Since that would drop a local client's bulk traffic
//! too, `jvpn gateway` refuses generic mode on a veth with an error naming driver mode, before
//! it attaches or writes anything. A generic-mode load turns fraglist GRO off, which would merge datagrams
//! for the socket before the program.
//!
//! ```text
//!  +------------------- gateway ns --------------------+       +------------ client ns -------------+
//!  |  UDP 0.0.0.0:51900, no UDP_GRO (as jvpn gateway   |       |  UDP <client>:40000  bound session |
//!  |  behind generic XDP)                              |       |   one sendmsg, UDP_SEGMENT: a run  |
//!  |  <gw> 10.200.0.1/24   rx-gro-list off (the load)  |       |  <cl> 10.200.0.2/24                |
//!  |       XDP jvpn_xdp, generic (skb) mode        <===|=veth==|===>  GSO kept: the run is one skb  |
//!  +---------------------------------------------------+       +------------------------------------+
//!     pins: /sys/fs/bpf/jvpn/<gw>/v<layout>/  (host bpffs)
//! ```

use jvpn_common::{abi, MessageType, RejectReason, SessionState};
use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::guard::PinDirGuard;
use jvpn_tests::jvpn::TestSession;
use jvpn_tests::netns::{run_ok, Netns};
use jvpn_tests::require_root;
use jvpn_tests::topology::{TwoHosts, CLIENT_V4, GATEWAY_V4};
use jvpn_user::dataplane::{Dataplane, DataplaneOptions, PinDir, XdpAttachMode};
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, SockaddrIn};
use std::io::{ErrorKind, IoSlice};
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

/// The gateway's jvpn port.
const PORT: u16 = abi::DEFAULT_PORT;
/// The client's port the session is bound to.
const CLIENT_PORT: u16 = 40000;
/// The session's state_version.
const VERSION: u64 = 3;
/// The sealed body of every datagram: one size, so the datagrams form one GSO run, and three
/// of them are longer than one datagram can be.
const BODY: &[u8] = &[0xab; 600];
/// Upper bound on waiting for a datagram that must come; a failure bound, not a sleep.
const PATIENCE: Duration = Duration::from_secs(5);

/// Whether the offload `name` of `device` in `ns` is on, as `ethtool -k` reports it.
fn offload_on(ns: &Netns, device: &str, name: &str) -> bool {
    let out = run_ok(ns.nsenter("ethtool").args(["-k", device]));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} line in `ethtool -k {device}`:\n{text}"));
    line.contains(": on")
}

/// Sends `datagrams` (all one size) to `to` in one `sendmsg` with `UDP_SEGMENT`.
fn send_run(socket: &UdpSocket, to: SocketAddrV4, datagrams: &[Vec<u8>]) {
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

/// The next datagram on `socket`, which must come.
fn receive(socket: &UdpSocket) -> Vec<u8> {
    let mut buffer = vec![0u8; 1 << 16];
    let len = socket
        .recv(&mut buffer)
        .expect("a datagram that passed XDP never reached the gateway socket");
    buffer.truncate(len);
    buffer
}

#[test]
fn generic_xdp_on_a_veth_drops_a_gso_run_whole_and_none_of_it_reaches_the_socket() {
    require_root();
    let hosts = TwoHosts::new();
    // Fraglist GRO would merge datagrams for the socket before generic XDP: the load turns it
    // off.
    run_ok(
        hosts
            .gateway
            .nsenter("ethtool")
            .args(["-K", &hosts.gateway_if, "rx-gro-list", "on"]),
    );
    assert!(offload_on(&hosts.gateway, &hosts.gateway_if, "rx-gro-list"));
    let mut options = DataplaneOptions::new(hosts.gateway_if.as_str());
    options.port = PORT;
    options.max_sessions = 64;
    options.xdp_mode = XdpAttachMode::Skb;
    let dataplane = hosts
        .gateway
        .run(|| Dataplane::load(&options))
        .expect("loading the dataplane in generic mode (the library allows it)");
    let _pins = PinDirGuard::new(dataplane.pin_dir());
    assert_eq!(dataplane.attach_mode().unwrap(), XdpAttachMode::Skb);
    assert!(
        !offload_on(&hosts.gateway, &hosts.gateway_if, "rx-gro-list"),
        "a generic-mode load turns fraglist GRO off"
    );

    let gateway = hosts.gateway.run(|| {
        let socket = UdpSocket::bind(("0.0.0.0", PORT)).expect("binding the jvpn port");
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        socket
    });
    let client_ip = CLIENT_V4.into();
    let client = hosts
        .client
        .run(|| UdpSocket::bind(SocketAddr::new(client_ip, CLIENT_PORT)).unwrap());
    let session = TestSession::new(0x6e1_0000_0000_0001);
    dataplane
        .upsert_session(
            session.id,
            &session.entry(
                SessionState::Attached,
                VERSION,
                SocketAddr::new(client_ip, CLIENT_PORT),
            ),
        )
        .unwrap();
    let to = SocketAddrV4::new(GATEWAY_V4, PORT);
    let nonce = abi::REPLAY_WINDOW + 10;
    let valid = |n: u64| session.datagram(MessageType::Data, VERSION, n, BODY);

    // A valid first datagram hiding a forged one, a replay of the first and a stale one.
    let hostile = [
        valid(nonce),
        session.datagram_with_bad_tag(MessageType::Data, VERSION, nonce + 1, BODY),
        valid(nonce),
        session.datagram(MessageType::Data, VERSION - 1, nonce + 2, BODY),
    ];
    // And a clean run, as a `jvpn client` sends its bulk traffic.
    let clean: Vec<Vec<u8>> = (nonce + 3..nonce + 6).map(valid).collect();
    for (what, run, first) in [
        ("hostile", &hostile[..], nonce),
        ("clean", &clean[..], nonce + 3),
    ] {
        let before = dataplane.counters().expect("reading counters");
        send_run(&client, to, run);
        // Sent alone after the run, on the same path: it can only arrive first if nothing of
        // the run reached the socket, and it is accepted only if the run moved no window.
        let lone = valid(first);
        client.send_to(&lone, to).expect("sending one datagram");
        assert_eq!(
            receive(&gateway),
            lone,
            "{what} run: nothing of it came first"
        );
        let delta = dataplane
            .counters()
            .expect("reading counters")
            .since(&before);
        assert_eq!(
            delta.dropped(RejectReason::MergedRun).packets,
            1,
            "{what} run: {delta:?}"
        );
        assert_eq!(delta.total_dropped().packets, 1, "{what} run: {delta:?}");
        assert_eq!(delta.accepted().packets, 1, "{what} run: {delta:?}");
    }
    gateway
        .set_nonblocking(true)
        .expect("a non-blocking socket");
    let mut buffer = [0u8; 2048];
    assert_eq!(
        gateway.recv(&mut buffer).map_err(|e| e.kind()),
        Err(ErrorKind::WouldBlock),
        "nothing else reached the socket"
    );
    dataplane.detach().expect("detach");
}

#[test]
fn the_gateway_refuses_generic_xdp_on_a_veth_and_changes_nothing() {
    require_root();
    let mut gateway = GatewayFixture::new();
    gateway.extra_args = vec!["--xdp-mode".into(), "skb".into()];
    gateway.spawn(&[]);
    let status = gateway.wait_exit(Duration::from_secs(20));
    let log = gateway.log();
    assert!(!status.success(), "the gateway started:\n{log}");
    let iface = gateway.hosts.gateway_if.clone();
    assert!(
        log.contains(&format!("{iface} is a veth"))
            && log.contains("--xdp-mode driver")
            && log.contains("MERGED_RUN"),
        "the error names the veth, driver mode and why:\n{log}"
    );
    let pins = PinDir::new(Path::new(abi::PIN_ROOT), &iface).expect("pin dir");
    assert!(!pins.has_link(), "nothing was attached to {iface}");
    assert!(
        !gateway.dir.path().join("state").exists(),
        "a refused start writes nothing (no store, no epoch)"
    );
}
