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

use jvpn_common::{abi, MessageType, RejectReason};
use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::gso_run::{offload_on, send_run, BoundSession, GatewayGro};
use jvpn_tests::guard::PinDirGuard;
use jvpn_tests::netns::run_ok;
use jvpn_tests::require_root;
use jvpn_tests::topology::{TwoHosts, GATEWAY_V4};
use jvpn_user::dataplane::{Dataplane, DataplaneOptions, PinDir, XdpAttachMode};
use std::io::ErrorKind;
use std::net::{SocketAddrV4, UdpSocket};
use std::path::Path;
use std::time::Duration;

/// The gateway's jvpn port.
const PORT: u16 = abi::DEFAULT_PORT;
/// The session's state_version.
const VERSION: u64 = 3;
/// The sealed body of every datagram: one size, so the datagrams form one GSO run, and three
/// of them are longer than one datagram can be.
const BODY: &[u8] = &[0xab; 600];
/// Upper bound on waiting for a datagram that must come; a failure bound, not a sleep.
const PATIENCE: Duration = Duration::from_secs(5);

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

    let BoundSession {
        gateway,
        client,
        session,
    } = BoundSession::new(
        &hosts,
        &dataplane,
        (0x6e1_0000_0000_0001, VERSION),
        PORT,
        GatewayGro::Off,
        PATIENCE,
    );
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
