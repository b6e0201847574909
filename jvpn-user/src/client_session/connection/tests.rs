//! The driver over loopback UDP against [`TestPeer`] (the real protocol code behind a socket): the
//! handshake and its retries, DATA both ways, jumps to a new socket by address and by interface,
//! an unanswered and a rejected jump, a re-handshake, keepalives. The tokio clock is paused, so
//! every wait passes without sleeping.
//!
//! ```text
//!   ClientConnection (127.0.0.1:a) --+
//!   after a jump    (127.0.0.1:b) --+--> TestPeer (127.0.0.1:p)
//! ```

use super::*;
use crate::client_session::bind::BindError;
use crate::client_session::test_gateway::{TestGateway, TEST_KEEPALIVE_SECS, TEST_SESSION};
use crate::client_session::test_peer::{Behaviour, ReattachAnswer, Seen, TestPeer};
use jvpn_common::control::{Body, ReattachRequest};
use jvpn_common::wire::MessageType;
use jvpn_common::RejectReason;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn connected(behaviour: Behaviour) -> (TestPeer, ClientConnection) {
    let peer = TestPeer::start(behaviour).await;
    let connection = ClientConnection::connect(
        peer.identity.clone(),
        peer.address,
        LocalBinding::ip(LOOPBACK),
        ConnectOptions::default(),
    )
    .await
    .expect("connects to the test peer");
    (peer, connection)
}

/// Sends `packet`, and receives the peer's echo of it; returns what the peer saw.
async fn echo(peer: &mut TestPeer, connection: &ClientConnection, packet: &[u8]) -> Seen {
    connection.send(packet).await.expect("send");
    let seen = peer.next(MessageType::Data).await;
    assert!(
        seen.answered,
        "the peer echoes DATA from the bound transport: {seen:?}"
    );
    assert_eq!(
        connection.recv().await.expect("recv"),
        ClientEvent::Data(packet.to_vec())
    );
    seen
}

#[tokio::test(start_paused = true)]
async fn connects_and_carries_data_both_ways() {
    let (mut peer, connection) = connected(Behaviour::default()).await;
    assert_eq!(connection.session_id(), TEST_SESSION);
    assert_eq!(connection.state_version(), 1);
    assert_eq!(connection.local_addr().ip(), LOOPBACK);
    let seen = echo(&mut peer, &connection, b"\x45ping").await;
    assert_eq!((seen.from, seen.version), (connection.local_addr(), 1));
    let counters = connection.counters();
    assert_eq!(
        (
            counters.sent,
            counters.received,
            counters.rejected,
            counters.handshakes
        ),
        (1, 1, 0, 1)
    );
    assert_eq!(
        (counters.data_bytes_sent, counters.data_bytes_received),
        (5, 5)
    );
}

#[tokio::test(start_paused = true)]
async fn hello_is_resent_with_a_fresh_timestamp_until_a_welcome_answers() {
    // The peer refuses (panics on) a HELLO not newer than the last one it read.
    let behaviour = Behaviour {
        drop_hellos: 2,
        ..Behaviour::default()
    };
    let (mut peer, connection) = connected(behaviour).await;
    let mut answered = Vec::new();
    for _ in 0..3 {
        answered.push(peer.next(MessageType::Hello).await.answered);
    }
    assert_eq!(answered, [false, false, true]);
    assert_eq!(connection.state_version(), 1);
    echo(&mut peer, &connection, b"late but fine").await;
}

#[tokio::test(start_paused = true)]
async fn handshake_gives_up_when_nobody_answers() {
    // A port nobody listens on: every HELLO draws an ICMP port unreachable.
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let gateway = closed.local_addr().unwrap();
    drop(closed);
    let identity = TestGateway::new().client_identity();
    let error = ClientConnection::connect(
        identity,
        gateway,
        LocalBinding::any(),
        ConnectOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            ConnectionError::HandshakeTimedOut { attempts: 5, .. }
        ),
        "{error}"
    );
    assert!(error.needs_rehandshake());
}

#[tokio::test(start_paused = true)]
async fn jump_moves_the_session_to_a_new_socket_after_path_validation() {
    let (mut peer, connection) = connected(Behaviour::default()).await;
    echo(&mut peer, &connection, b"before").await;
    let old = connection.local_addr();

    let version = connection.jump(LocalBinding::ip(LOOPBACK)).await.unwrap();
    let new = connection.local_addr();
    assert_eq!((version, connection.state_version()), (2, 2));
    assert_ne!(new, old, "a jump opens a new transport");

    let request = peer.next(MessageType::ReattachRequest).await;
    assert_eq!((request.from, request.version), (new, 1));
    let body = ReattachRequest::from_body(&request.body).unwrap();
    assert_eq!((body.acked_version.get(), body.attempt.get()), (1, 1));
    let response = peer.next(MessageType::PathResponse).await;
    assert_eq!((response.from, response.version), (new, 1));

    let seen = echo(&mut peer, &connection, b"after").await;
    assert_eq!((seen.from, seen.version), (new, 2));
    assert_eq!(connection.session_id(), TEST_SESSION);
    assert_eq!(connection.counters().jumps, 1);
}

#[tokio::test(start_paused = true)]
async fn jumps_by_interface_name_and_versions_count_up_by_one() {
    let (mut peer, connection) = connected(Behaviour::default()).await;
    assert_eq!(
        connection
            .jump(LocalBinding::interface("lo"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(connection.local_binding(), LocalBinding::interface("lo"));
    echo(&mut peer, &connection, b"via lo").await;
    for expected in 3..=6 {
        let to = if expected % 2 == 0 {
            LocalBinding::interface("lo")
        } else {
            LocalBinding::ip(LOOPBACK)
        };
        assert_eq!(connection.jump(to).await.unwrap(), expected);
        let seen = echo(&mut peer, &connection, b"each jump").await;
        assert_eq!(seen.version, expected);
    }
    assert_eq!(connection.counters().jumps, 5);
}

#[tokio::test(start_paused = true)]
async fn carries_data_and_jumps_over_ipv6() {
    let loopback6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    let mut peer = TestPeer::start_on(SocketAddr::new(loopback6, 0), Behaviour::default()).await;
    let connection = ClientConnection::connect(
        peer.identity.clone(),
        peer.address,
        LocalBinding::any(),
        ConnectOptions::default(),
    )
    .await
    .expect("connects over IPv6");
    assert_eq!(connection.local_addr().ip(), loopback6);
    echo(&mut peer, &connection, b"\x60over ipv6").await;
    assert_eq!(
        connection.jump(LocalBinding::ip(loopback6)).await.unwrap(),
        2
    );
    let seen = echo(&mut peer, &connection, b"\x60after the jump").await;
    assert_eq!((seen.from, seen.version), (connection.local_addr(), 2));
}

#[tokio::test(start_paused = true)]
async fn mismatched_families_are_refused_before_anything_is_sent() {
    let peer = TestPeer::start(Behaviour::default()).await;
    let error = ClientConnection::connect(
        peer.identity.clone(),
        peer.address,
        LocalBinding::ip(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ConnectOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(error, ConnectionError::Bind(BindError::Family { .. })),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn unanswered_jump_times_out_and_keeps_the_old_transport() {
    let behaviour = Behaviour {
        reattach: ReattachAnswer::Ignore,
        ..Behaviour::default()
    };
    let (mut peer, connection) = connected(behaviour).await;
    let old = connection.local_addr();
    let error = connection
        .jump(LocalBinding::ip(LOOPBACK))
        .await
        .unwrap_err();
    assert!(
        matches!(error, ConnectionError::ReattachTimedOut { attempts: 6, .. }),
        "{error}"
    );
    assert!(!error.needs_rehandshake());
    assert_eq!(
        (connection.local_addr(), connection.state_version()),
        (old, 1)
    );
    assert_eq!(echo(&mut peer, &connection, b"still here").await.from, old);
}

/// A REJECT(DUPLICATE_NONCE) arriving while a jump waits for its challenge is information: the
/// jump goes on and completes, and the REJECT is counted, not returned.
#[tokio::test(start_paused = true)]
async fn a_replay_reject_during_a_jump_does_not_stop_it() {
    let behaviour = Behaviour {
        reattach: ReattachAnswer::ReplayNoticeThenChallenge,
        ..Behaviour::default()
    };
    let (mut peer, connection) = connected(behaviour).await;
    let old = connection.local_addr();
    assert_eq!(
        connection.jump(LocalBinding::ip(LOOPBACK)).await.unwrap(),
        2
    );
    assert_ne!(connection.local_addr(), old);
    let counters = connection.counters();
    assert_eq!((counters.replays_reported, counters.jumps), (1, 1));
    assert_eq!(
        echo(&mut peer, &connection, b"moved").await.from,
        connection.local_addr()
    );
}

#[tokio::test(start_paused = true)]
async fn rejected_jump_is_reported_and_a_rehandshake_starts_over() {
    let reason = RejectReason::OwnershipAmbiguous;
    let behaviour = Behaviour {
        reattach: ReattachAnswer::Reject(reason),
        ..Behaviour::default()
    };
    let (mut peer, connection) = connected(behaviour).await;
    let error = connection
        .jump(LocalBinding::ip(LOOPBACK))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            ConnectionError::ReattachRejected { reason: r, gateway_version: 1, .. } if r == reason
        ),
        "{error}"
    );
    assert!(error.needs_rehandshake());

    let old = connection.local_addr();
    connection
        .rehandshake(LocalBinding::ip(LOOPBACK))
        .await
        .unwrap();
    assert_ne!(connection.local_addr(), old);
    assert_eq!(connection.state_version(), 1);
    assert_eq!(connection.counters().handshakes, 2);
    echo(&mut peer, &connection, b"new session").await;
}

/// `got` is `expected`, up to the timer wheel's millisecond rounding.
fn assert_about(got: Duration, expected: Duration) {
    assert!(
        got >= expected && got <= expected + Duration::from_millis(2),
        "{got:?}, expected {expected:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn keepalives_fill_every_silence_of_one_interval() {
    let (mut peer, connection) = connected(Behaviour::default()).await;
    let connection = Arc::new(connection);
    let interval = connection
        .keepalive_interval()
        .expect("the peer asks for keepalives");
    assert_eq!(interval, Duration::from_secs(TEST_KEEPALIVE_SECS.into()));
    let keepalives = tokio::spawn({
        let connection = connection.clone();
        async move { connection.run_keepalives(interval).await }
    });

    let quiet_since = connection.liveness().last_sent;
    let first = peer.next(MessageType::Keepalive).await;
    assert_eq!((first.from, first.version), (connection.local_addr(), 1));
    assert_about(connection.liveness().last_sent - quiet_since, interval);

    // Traffic resets the timer: the next keepalive comes one interval after the last DATA.
    tokio::time::advance(interval / 3).await;
    connection.send(b"traffic").await.unwrap();
    let data_at = connection.liveness().last_sent;
    peer.next(MessageType::Keepalive).await;
    assert_about(connection.liveness().last_sent - data_at, interval);
    keepalives.abort();
}
