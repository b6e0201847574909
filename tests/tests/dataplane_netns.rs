//! The real XDP program, attached natively to the gateway's veth through the loader, judging real
//! UDP datagrams sent from another namespace: what passes reaches the gateway's sockets, what is
//! refused never does and is counted under its reason and reported as a security event. Once over
//! IPv4 and once over IPv6.
//!
//! ```text
//!  +------------------- gateway ns --------------------+       +------------ client ns -------------+
//!  |  UDP [::]:51900  jvpn socket (what XDP passes)    |       |  UDP <client>:40000  bound session |
//!  |  UDP [::]:9999   other traffic                    |       |  UDP <client>:40001  wrong port    |
//!  |                                                   |       |                                    |
//!  |  <gw> 10.200.0.1/24 fd00:200::1/64                |       |  <cl> 10.200.0.2/24 fd00:200::2/64 |
//!  |       XDP jvpn_xdp, driver mode, pinned link  <===|=veth==|===>                                |
//!  +---------------------------------------------------+       +------------------------------------+
//!     pins: /sys/fs/bpf/jvpn/<gw>/v<layout>/  (host bpffs)
//! ```
//!
//! Every refused datagram is followed by a valid DATA "marker" that reuses the refused datagram's
//! nonce. The marker arriving proves the refused datagram (sent before it on the same path) was
//! judged and not delivered, and that it did not touch the replay window; no test waits on a timer.

use jvpn_common::{abi, MessageType, RejectReason, SessionState, WireHeader};
use jvpn_tests::guard::PinDirGuard;
use jvpn_tests::jvpn::{hello, TestSession};
use jvpn_tests::require_root;
use jvpn_tests::topology::{frame_len, Family, TwoHosts};
use jvpn_user::dataplane::{
    CounterSnapshot, Dataplane, DataplaneOptions, EventReader, PacketTotals,
};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime};

/// The gateway's jvpn port.
const PORT: u16 = abi::DEFAULT_PORT;
/// A UDP port that is not jvpn's.
const OTHER_PORT: u16 = 9999;
/// The client's port the session is bound to.
const CLIENT_PORT: u16 = 40000;
/// Another client port, which the session is not bound to.
const WRONG_PORT: u16 = 40001;
/// The sessions' state_version.
const VERSION: u64 = 5;
/// Upper bound on waiting for a datagram or event that must come; a failure bound, not a sleep.
const PATIENCE: Duration = Duration::from_secs(5);

/// The gateway side: the dataplane, its sockets and its event stream.
struct Gateway {
    dataplane: Dataplane,
    jvpn_socket: UdpSocket,
    other_socket: UdpSocket,
    runtime: tokio::runtime::Runtime,
    events: EventReader,
}

/// The client side: one socket on the bound transport, one on another port.
struct Client {
    bound: UdpSocket,
    wrong_port: UdpSocket,
}

/// Which client socket a datagram leaves from.
#[derive(Clone, Copy, Debug)]
enum From {
    Bound,
    WrongPort,
}

impl Client {
    fn socket(&self, from: From) -> &UdpSocket {
        match from {
            From::Bound => &self.bound,
            From::WrongPort => &self.wrong_port,
        }
    }
}

/// What a refused datagram carries.
enum Datagram {
    /// Built from the nonce the next marker will use.
    WithNonce(Box<dyn Fn(u64) -> Vec<u8>>),
    /// The last datagram the gateway accepted, sent again.
    ReplayOfLastAccepted,
}

/// One row of the refusal table.
struct Refusal {
    name: &'static str,
    from: From,
    datagram: Datagram,
    reason: RejectReason,
}

fn udp_socket(addr: SocketAddr) -> UdpSocket {
    let socket = UdpSocket::bind(addr).unwrap_or_else(|e| panic!("binding {addr}: {e}"));
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    socket
}

/// Receives one datagram, or panics after [`PATIENCE`].
fn receive(socket: &UdpSocket, what: &str) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 2048];
    let (len, from) = socket
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("{what} never reached the gateway socket: {e}"));
    buf.truncate(len);
    (buf, SocketAddr::new(from.ip().to_canonical(), from.port()))
}

impl Gateway {
    fn counters(&self) -> CounterSnapshot {
        self.dataplane.counters().expect("reading counters")
    }
}

fn enforces_every_rule(family: Family) {
    require_root();
    let hosts = TwoHosts::new();
    let mut options = DataplaneOptions::new(hosts.gateway_if.as_str());
    options.port = PORT;
    options.max_sessions = 1024;
    options.handshake.mac1_key = jvpn_tests::jvpn::TEST_MAC1_KEY;
    let dataplane = hosts
        .gateway
        .run(|| Dataplane::load(&options))
        .expect("loading the dataplane in the gateway namespace");
    let _pins = PinDirGuard::new(dataplane.pin_dir());
    assert!(hosts.gateway_has_xdp());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let events = {
        let _inside = runtime.enter();
        dataplane.take_event_reader().expect("event reader")
    };
    let (jvpn_socket, other_socket) = hosts.gateway.run(|| {
        (
            udp_socket(SocketAddr::new("::".parse().unwrap(), PORT)),
            udp_socket(SocketAddr::new("::".parse().unwrap(), OTHER_PORT)),
        )
    });
    let mut gateway = Gateway {
        dataplane,
        jvpn_socket,
        other_socket,
        runtime,
        events,
    };
    let client_ip = family.client();
    let client = hosts.client.run(|| Client {
        bound: udp_socket(SocketAddr::new(client_ip, CLIENT_PORT)),
        wrong_port: udp_socket(SocketAddr::new(client_ip, WRONG_PORT)),
    });
    let to_jvpn = SocketAddr::new(family.gateway(), PORT);
    let bound_transport = SocketAddr::new(client_ip, CLIENT_PORT);

    let attached = TestSession::new(0x5e55_0000_0000_0001);
    let recovering = TestSession::new(0x5e55_0000_0000_0002);
    let terminated = TestSession::new(0x5e55_0000_0000_0003);
    let unknown = TestSession::new(0x5e55_0000_0000_0004);
    for (session, state) in [
        (attached, SessionState::Attached),
        (recovering, SessionState::Recovering),
        (terminated, SessionState::Terminated),
    ] {
        gateway
            .dataplane
            .upsert_session(session.id, &session.entry(state, VERSION, bound_transport))
            .unwrap();
    }

    // Other UDP passes untouched and uncounted.
    let before = gateway.counters();
    client
        .bound
        .send_to(b"not jvpn", SocketAddr::new(family.gateway(), OTHER_PORT))
        .unwrap();
    let (payload, from) = receive(&gateway.other_socket, "non-jvpn UDP");
    assert_eq!(
        (payload.as_slice(), from),
        (&b"not jvpn"[..], bound_transport)
    );
    let delta = gateway.counters().since(&before);
    assert!(delta.is_zero(), "non-jvpn UDP was counted: {delta:?}");

    // A HELLO goes to the controller.
    let before = gateway.counters();
    let hello = hello(b"noise handshake bytes");
    client.bound.send_to(&hello, to_jvpn).unwrap();
    assert_eq!(receive(&gateway.jvpn_socket, "HELLO").0, hello);
    let delta = gateway.counters().since(&before);
    assert_eq!(delta.to_controller(), totals(family, &hello));
    assert_eq!(delta.total_dropped().packets, 0);

    // Nonces start past the replay window, so nonce 1 is too old from the first accept on.
    let mut next_nonce = abi::REPLAY_WINDOW + 100;
    let data = |session: TestSession, version: u64| {
        move |nonce: u64| session.datagram(MessageType::Data, version, nonce, b"sealed payload")
    };
    let table = vec![
        Refusal {
            name: "unknown session",
            from: From::Bound,
            datagram: Datagram::WithNonce(Box::new(data(unknown, VERSION))),
            reason: RejectReason::UnknownSession,
        },
        Refusal {
            name: "bad tag",
            from: From::Bound,
            datagram: Datagram::WithNonce(Box::new(move |nonce| {
                attached.datagram_with_bad_tag(MessageType::Data, VERSION, nonce, b"forged")
            })),
            reason: RejectReason::BadTag,
        },
        Refusal {
            name: "stale version",
            from: From::Bound,
            datagram: Datagram::WithNonce(Box::new(data(attached, VERSION - 1))),
            reason: RejectReason::StaleVersion,
        },
        Refusal {
            name: "version jump",
            from: From::Bound,
            datagram: Datagram::WithNonce(Box::new(data(attached, VERSION + 1))),
            reason: RejectReason::VersionJump,
        },
        Refusal {
            name: "wrong source port",
            from: From::WrongPort,
            datagram: Datagram::WithNonce(Box::new(data(attached, VERSION))),
            reason: RejectReason::TransportMismatch,
        },
        Refusal {
            name: "session not attached",
            from: From::Bound,
            datagram: Datagram::WithNonce(Box::new(data(recovering, VERSION))),
            reason: RejectReason::NotAttached,
        },
        Refusal {
            name: "session terminated",
            from: From::Bound,
            datagram: Datagram::WithNonce(Box::new(data(terminated, VERSION))),
            reason: RejectReason::Terminated,
        },
        Refusal {
            name: "truncated header",
            from: From::Bound,
            datagram: Datagram::WithNonce(Box::new(move |nonce| {
                data(attached, VERSION)(nonce)[..abi::HEADER_LEN - 1].to_vec()
            })),
            reason: RejectReason::Malformed,
        },
        Refusal {
            name: "duplicate nonce",
            from: From::Bound,
            datagram: Datagram::ReplayOfLastAccepted,
            reason: RejectReason::DuplicateNonce,
        },
        Refusal {
            name: "nonce older than the window",
            from: From::Bound,
            datagram: Datagram::WithNonce(Box::new(move |_| data(attached, VERSION)(1))),
            reason: RejectReason::NonceTooOld,
        },
    ];

    // A valid DATA on the bound transport is accepted and delivered.
    let mut last_accepted = data(attached, VERSION)(next_nonce);
    let before = gateway.counters();
    client.bound.send_to(&last_accepted, to_jvpn).unwrap();
    let (payload, from) = receive(&gateway.jvpn_socket, "valid DATA");
    assert_eq!(
        (payload.as_slice(), from),
        (last_accepted.as_slice(), bound_transport)
    );
    let delta = gateway.counters().since(&before);
    assert_eq!(delta.accepted(), totals(family, &last_accepted));
    assert_eq!(delta.total_dropped().packets, 0);
    next_nonce += 1;

    for case in &table {
        let refused = match &case.datagram {
            Datagram::WithNonce(build) => build(next_nonce),
            Datagram::ReplayOfLastAccepted => last_accepted.clone(),
        };
        let sender = client.socket(case.from);
        let before = gateway.counters();
        sender.send_to(&refused, to_jvpn).unwrap();

        let marker = data(attached, VERSION)(next_nonce);
        client.bound.send_to(&marker, to_jvpn).unwrap();
        let (payload, _) = receive(
            &gateway.jvpn_socket,
            &format!("the marker after {}", case.name),
        );
        assert_eq!(
            payload, marker,
            "{}: the refused datagram reached the gateway socket",
            case.name
        );
        last_accepted = marker.clone();
        next_nonce += 1;

        let delta = gateway.counters().since(&before);
        assert_eq!(
            delta.dropped(case.reason),
            totals(family, &refused),
            "{}: drop counter",
            case.name
        );
        assert_eq!(
            delta.total_dropped().packets,
            1,
            "{}: exactly one drop",
            case.name
        );
        assert_eq!(
            delta.accepted(),
            totals(family, &marker),
            "{}: the marker",
            case.name
        );

        let events = &mut gateway.events;
        let event = gateway
            .runtime
            .block_on(async { tokio::time::timeout(PATIENCE, events.next()).await })
            .unwrap_or_else(|_| panic!("{}: no security event", case.name))
            .expect("reading the event ring");
        assert_eq!(event.reason, case.reason, "{}", case.name);
        assert_eq!(event.source, sender.local_addr().unwrap(), "{}", case.name);
        assert_eq!(
            event.frame_len,
            frame_len(family, refused.len()),
            "{}",
            case.name
        );
        if refused.len() >= abi::HEADER_LEN {
            let header: WireHeader = jvpn_common::wire::WireHeader::parse(&refused).unwrap();
            assert_eq!(
                (event.session_id, event.state_version, event.nonce),
                (
                    header.session_id.get(),
                    header.state_version.get(),
                    header.nonce.get()
                ),
                "{}: event header fields",
                case.name
            );
            assert_eq!(event.msg_type, Some(MessageType::Data), "{}", case.name);
        } else {
            assert_eq!(event.session_id, 0, "{}: unreadable header", case.name);
        }
        let age = SystemTime::now()
            .duration_since(event.at)
            .unwrap_or_default();
        assert!(
            age < Duration::from_secs(60),
            "{}: event dated {:?}",
            case.name,
            event.at
        );
        assert_eq!(
            gateway.events.drain_ready(),
            vec![],
            "{}: one event per drop",
            case.name
        );
    }
    assert_eq!(gateway.counters().total_event_loss().rate_limited, 0);
    assert_eq!(gateway.events.undecodable(), 0);

    gateway.dataplane.detach().expect("detach");
    assert!(!hosts.gateway_has_xdp());
}

/// One packet of `datagram`'s frame length.
fn totals(family: Family, datagram: &[u8]) -> PacketTotals {
    PacketTotals {
        packets: 1,
        bytes: u64::from(frame_len(family, datagram.len())),
    }
}

#[test]
fn ipv4_dataplane_passes_valid_traffic_and_refuses_the_rest() {
    enforces_every_rule(Family::V4);
}

#[test]
fn ipv6_dataplane_passes_valid_traffic_and_refuses_the_rest() {
    enforces_every_rule(Family::V6);
}
