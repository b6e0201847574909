//! AF_XDP receive of accepted DATA on a real veth: the benchmark object's `jvpn_bench_rx_xsk`,
//! attached in driver mode to the receiving end, redirects every UDP datagram to its port into an
//! AF_XDP socket (bound to queue 0, copy mode: a veth has no zero-copy), which reads exactly the
//! datagrams sent, byte for byte and in order, and none of them reaches the UDP stack; datagrams
//! to another port still go to the stack. The socket path the benchmark compares it with
//! (`jvpn_bench_rx_pass`, a `UDP_GRO` socket read with `recvmmsg`) is checked the same way: GRO
//! runs split back into exactly the datagrams sent. These are the paths `cargo xtask bench rx`
//! measures, so it cannot report figures for a path that does not deliver.
//!
//! ```text
//!  +---------------------- receiver ns ("gateway") ----------------------+       +---- sender ns ----+
//!  |  AF_XDP socket, queue 0 <-- XSKMAP[rx_queue_index] <-- port 51820   |       |  UDP socket,      |
//!  |  UDP 0.0.0.0:51820 (must stay empty)  UDP 0.0.0.0:51821 (passed)    |       |  UDP_SEGMENT runs |
//!  |  <gw> 10.200.0.1/24   XDP jvpn_bench_rx_xsk, driver mode        <===|=veth==|===> <cl> 10.200.0.2|
//!  +---------------------------------------------------------------------+       +-------------------+
//!   (the socket-path test: XDP jvpn_bench_rx_pass, GRO on at <gw>, UDP_GRO socket on 51820)
//! ```

use std::net::{SocketAddrV4, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use jvpn_tests::gro_batch::SocketReceiver;
use jvpn_tests::netns::enter;
use jvpn_tests::require_root;
use jvpn_tests::topology::{TwoHosts, GATEWAY_V4};
use jvpn_tests::xsk::{BindMode, XskDrops, XskReceiver};
use jvpn_tests::xsk_rx::{udp_payload, AttachedRx, GsoSender, RxProgram, RX_PORT};

/// Datagrams sent to the redirected port.
const DATAGRAMS: usize = 300;
/// Datagrams per GSO run: far below the veth's 256-frame ring, so nothing is lost before XDP.
const PER_RUN: usize = 20;
/// A jvpn DATA's size: 40-byte header and a 1,400-byte body.
const DATAGRAM_LEN: usize = 1_440;
/// A port the program must leave to the stack.
const OTHER_PORT: u16 = RX_PORT + 1;
/// Datagrams sent to the other port.
const OTHER_DATAGRAMS: usize = 10;
/// Upper bound on waiting for datagrams that must come; a failure bound, not a sleep.
const PATIENCE: Duration = Duration::from_secs(5);

/// Sends the [`DATAGRAMS`] to [`RX_PORT`] from the sender's namespace, in GSO runs.
fn send_all(hosts: &TwoHosts) {
    hosts.client.run(|| {
        let sender = GsoSender::connect(SocketAddrV4::new(GATEWAY_V4, RX_PORT));
        for first in (0..DATAGRAMS).step_by(PER_RUN) {
            let run: Vec<u8> = (first..first + PER_RUN).flat_map(datagram).collect();
            sender
                .send_run(&run, DATAGRAM_LEN as u16)
                .expect("sending a run");
            std::thread::sleep(Duration::from_millis(1));
        }
    });
}

/// Datagram `index`: its index, then a pattern that depends on it.
fn datagram(index: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; DATAGRAM_LEN];
    bytes[..8].copy_from_slice(&(index as u64).to_be_bytes());
    for (offset, byte) in bytes.iter_mut().enumerate().skip(8) {
        *byte = (offset * 7 + index * 13) as u8;
    }
    bytes
}

/// What the receiving side saw.
struct Received {
    mode: BindMode,
    payloads: Vec<Vec<u8>>,
    foreign_frames: usize,
    drops: XskDrops,
    seen: u64,
    on_redirected_port_socket: usize,
    on_other_port_socket: usize,
}

/// Counts what `socket` holds now without waiting.
fn drain(socket: &UdpSocket) -> usize {
    socket.set_nonblocking(true).expect("non-blocking");
    let mut buffer = [0u8; 2048];
    std::iter::from_fn(|| socket.recv(&mut buffer).ok()).count()
}

#[test]
fn af_xdp_reads_exactly_the_datagrams_redirected_to_it_and_the_stack_none_of_them() {
    require_root();
    let hosts = TwoHosts::new();
    let (ready_tx, ready_rx) = mpsc::channel();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let received = std::thread::scope(|scope| {
        let hosts = &hosts;
        let receiver = scope.spawn(move || {
            enter(&hosts.gateway.path());
            let mut program = AttachedRx::attach(&hosts.gateway_if, RxProgram::Xsk);
            let ifindex = nix::net::if_::if_nametoindex(hosts.gateway_if.as_str())
                .expect("the receiving veth's index");
            let mut xsk = XskReceiver::bind(ifindex, 0, 4096).expect("binding the AF_XDP socket");
            xsk.register(&mut program.xsk_map())
                .expect("registering the socket");
            let redirected_port = UdpSocket::bind(("0.0.0.0", RX_PORT)).expect("bind");
            let other_port = UdpSocket::bind(("0.0.0.0", OTHER_PORT)).expect("bind");
            ready_tx.send(()).expect("the test is waiting");
            sent_rx.recv().expect("the sender finished");
            let mut payloads = Vec::new();
            let mut foreign_frames = 0;
            let deadline = Instant::now() + PATIENCE;
            while payloads.len() < DATAGRAMS && Instant::now() < deadline {
                xsk.wait(Duration::from_millis(100)).expect("poll");
                xsk.receive(64, |frame| match udp_payload(frame) {
                    Some((RX_PORT, payload)) => payloads.push(payload.to_vec()),
                    _ => foreign_frames += 1,
                });
            }
            // Anything more (duplicates) would be on the ring by now.
            std::thread::sleep(Duration::from_millis(100));
            xsk.receive(64, |_| foreign_frames += 1);
            let deadline = Instant::now() + PATIENCE;
            let mut on_other_port_socket = drain(&other_port);
            while on_other_port_socket < OTHER_DATAGRAMS && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                on_other_port_socket += drain(&other_port);
            }
            Received {
                mode: xsk.mode(),
                payloads,
                foreign_frames,
                drops: xsk.drops(),
                seen: program.seen(),
                on_redirected_port_socket: drain(&redirected_port),
                on_other_port_socket,
            }
        });
        ready_rx.recv().expect("the receiver is set up");
        send_all(hosts);
        hosts.client.run(|| {
            let other = GsoSender::connect(SocketAddrV4::new(GATEWAY_V4, OTHER_PORT));
            let run: Vec<u8> = (0..OTHER_DATAGRAMS).flat_map(datagram).collect();
            other
                .send_run(&run, DATAGRAM_LEN as u16)
                .expect("sending to the other port");
        });
        sent_tx.send(()).expect("the receiver is waiting");
        receiver.join().expect("the receiver thread")
    });

    assert_eq!(
        received.mode,
        BindMode::Copy,
        "a veth has no zero-copy AF_XDP, so the kernel must bind in copy mode"
    );
    assert_eq!(
        received.payloads.len(),
        DATAGRAMS,
        "the AF_XDP socket must read every datagram sent to port {RX_PORT} (drops {:?}, the \
         program saw {})",
        received.drops,
        received.seen
    );
    for (index, payload) in received.payloads.iter().enumerate() {
        assert!(
            *payload == datagram(index),
            "datagram {index} arrived out of order or altered"
        );
    }
    assert_eq!(
        received.foreign_frames, 0,
        "no other frame may be redirected"
    );
    assert_eq!(
        received.drops,
        XskDrops::default(),
        "nothing dropped at the socket"
    );
    assert_eq!(
        received.seen, DATAGRAMS as u64,
        "the program matched each datagram once"
    );
    assert_eq!(
        received.on_redirected_port_socket, 0,
        "a redirected datagram must bypass the UDP stack"
    );
    assert_eq!(
        received.on_other_port_socket, OTHER_DATAGRAMS,
        "datagrams to another port must still reach the stack"
    );
}

#[test]
fn the_socket_path_splits_gro_runs_back_into_exactly_the_datagrams_sent() {
    require_root();
    let hosts = TwoHosts::new();
    jvpn_tests::netns::run_ok(hosts.gateway.command("ethtool").args([
        "-K",
        &hosts.gateway_if,
        "gro",
        "on",
    ]));
    let (ready_tx, ready_rx) = mpsc::channel();
    let (sent_tx, sent_rx) = mpsc::channel::<()>();
    let (payloads, seen) = std::thread::scope(|scope| {
        let hosts = &hosts;
        let receiver = scope.spawn(move || {
            enter(&hosts.gateway.path());
            let program = AttachedRx::attach(&hosts.gateway_if, RxProgram::Pass);
            let mut socket = SocketReceiver::bind(Duration::from_millis(100));
            ready_tx.send(()).expect("the test is waiting");
            sent_rx.recv().expect("the sender finished");
            let mut payloads = Vec::new();
            let deadline = Instant::now() + PATIENCE;
            while payloads.len() < DATAGRAMS && Instant::now() < deadline {
                socket.receive(|datagram| payloads.push(datagram.to_vec()));
            }
            // A miscounted run would show as more (or fewer) datagrams; read what else came.
            socket.receive(|datagram| payloads.push(datagram.to_vec()));
            (payloads, program.seen())
        });
        ready_rx.recv().expect("the receiver is set up");
        send_all(hosts);
        sent_tx.send(()).expect("the receiver is waiting");
        receiver.join().expect("the receiver thread")
    });
    assert_eq!(
        seen, DATAGRAMS as u64,
        "the program matched each datagram once"
    );
    assert_eq!(
        payloads.len(),
        DATAGRAMS,
        "the socket must read every datagram sent, each on its own"
    );
    for (index, payload) in payloads.iter().enumerate() {
        assert!(
            *payload == datagram(index),
            "datagram {index} arrived out of order or altered"
        );
    }
}
