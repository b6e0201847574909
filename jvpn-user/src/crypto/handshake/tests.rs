//! Handshake round trips and every refusal: unknown client, replay, tampering, wrong keys.

use super::*;
use crate::crypto::Direction;
use jvpn_common::control::DEFAULT_TUNNEL_MTU;
use jvpn_common::wire::{Be16, Be64};

struct Fixture {
    gateway_private: PrivateKey,
    client: ClientIdentity,
    psk: PresharedKey,
}

fn fixture() -> Fixture {
    let gateway_private = PrivateKey::generate();
    let psk = PresharedKey::generate();
    let client = ClientIdentity {
        private_key: PrivateKey::generate(),
        gateway_public_key: gateway_private.public_key(),
        psk: psk.clone(),
    };
    Fixture {
        gateway_private,
        client,
        psk,
    }
}

const SESSION: u64 = 0x5e55_1011_dead_beef;

fn welcome_payload() -> WelcomePayload {
    WelcomePayload {
        session_id: Be64::new(SESSION),
        ipv4: [10, 77, 0, 2],
        ipv4_prefix_len: 24,
        ipv6_prefix_len: 0,
        tunnel_mtu: Be16::new(DEFAULT_TUNNEL_MTU),
        ipv6: [0; 16],
        keepalive_interval_secs: Be16::new(10),
        reserved: [0; 6],
    }
}

fn welcome_header() -> WireHeader {
    WireHeader::new(MessageType::Welcome, SESSION, 1, 1)
}

fn t(seconds: u64) -> Tai64N {
    Tai64N::from_unix(seconds, 0)
}

impl Fixture {
    fn admit_all(
        &self,
        last: Option<Tai64N>,
    ) -> impl FnOnce(&PublicKey) -> Option<ClientAdmission> {
        let expected = self.client.private_key.public_key();
        let psk = self.psk.clone();
        move |key| {
            (*key == expected).then_some(ClientAdmission {
                psk,
                last_timestamp: last,
            })
        }
    }

    /// Runs a whole handshake: the client key and timestamp the gateway saw, and both results.
    fn run(&self) -> (PublicKey, Tai64N, ClientSession, AcceptedHandshake) {
        let (mut client, hello) = ClientHandshake::start(&self.client, t(1000)).unwrap();
        let gateway =
            GatewayHandshake::read_hello(&self.gateway_private, &hello, self.admit_all(None))
                .unwrap();
        let (seen_key, seen_timestamp) = (*gateway.client_public_key(), gateway.timestamp());
        let accepted = gateway
            .accept(welcome_header(), &welcome_payload())
            .unwrap();
        let session = client.finish(&accepted.datagram).unwrap();
        (seen_key, seen_timestamp, session, accepted)
    }
}

#[test]
fn both_sides_derive_the_same_keys_and_the_client_learns_its_session() {
    let f = fixture();
    let (seen_key, seen_timestamp, session, accepted) = f.run();
    assert_eq!(session.keys, accepted.keys);
    assert_eq!(session.welcome, welcome_payload());
    assert_eq!(session.header.session_id.get(), SESSION);
    assert_eq!(session.header.state_version.get(), 1);
    assert!(session
        .header
        .tag_verifies(accepted.keys.sip_key(Direction::GatewayToClient)));
    assert_eq!(seen_key, f.client.private_key.public_key());
    assert_eq!(seen_timestamp, t(1000));
    assert_eq!(accepted.datagram.len(), HEADER_LEN + WELCOME_BODY_LEN);

    let (_, _, second, _) = f.run();
    assert_ne!(
        second.keys, session.keys,
        "every handshake yields fresh keys"
    );
}

#[test]
fn an_unknown_client_is_refused() {
    let f = fixture();
    let (_, hello) = ClientHandshake::start(&f.client, t(1)).unwrap();
    let err = GatewayHandshake::read_hello(&f.gateway_private, &hello, |_| None).unwrap_err();
    match &err {
        HandshakeError::UnknownClient(key) => {
            assert_eq!(*key, f.client.private_key.public_key())
        }
        other => panic!("expected UnknownClient, got {other:?}"),
    }
    assert_eq!(err.reason(), RejectReason::UnknownClient);
    assert!(err.to_string().contains("[[client]]"));
}

#[test]
fn a_hello_not_newer_than_the_last_accepted_is_a_replay() {
    let f = fixture();
    let (_, hello) = ClientHandshake::start(&f.client, t(500)).unwrap();
    let first =
        GatewayHandshake::read_hello(&f.gateway_private, &hello, f.admit_all(None)).unwrap();
    let stored = first.timestamp();
    for last in [stored, t(501)] {
        let err = GatewayHandshake::read_hello(&f.gateway_private, &hello, f.admit_all(Some(last)))
            .unwrap_err();
        assert!(matches!(err, HandshakeError::Replay { timestamp, .. } if timestamp == stored));
        assert_eq!(err.reason(), RejectReason::HandshakeReplay);
    }
    let (_, newer) = ClientHandshake::start(&f.client, Tai64N::from_unix(500, 1)).unwrap();
    let accepted =
        GatewayHandshake::read_hello(&f.gateway_private, &newer, f.admit_all(Some(stored)))
            .unwrap();
    assert!(accepted.timestamp() > stored);
}

#[test]
fn every_tampered_hello_byte_is_refused() {
    let f = fixture();
    let (_, hello) = ClientHandshake::start(&f.client, t(7)).unwrap();
    // The MACs after these bytes are checked before any DH (XDP and the controller's `screen_hello`), and
    // their tampering in `jvpn_common::hello`'s tests.
    for i in 0..jvpn_common::abi::HELLO_MAC1_OFFSET {
        let mut forged = hello.clone();
        forged[i] ^= 0x01;
        let result = GatewayHandshake::read_hello(&f.gateway_private, &forged, f.admit_all(None));
        assert!(result.is_err(), "flipping HELLO byte {i} must be refused");
    }
    for len in [0, HEADER_LEN, hello.len() - 1, hello.len() + 1] {
        let mut cut = hello.clone();
        cut.resize(len, 0);
        let err = GatewayHandshake::read_hello(&f.gateway_private, &cut, f.admit_all(None));
        assert!(
            matches!(err, Err(HandshakeError::Length { .. })),
            "{len} bytes"
        );
    }
}

#[test]
fn every_tampered_welcome_byte_is_refused_and_the_handshake_spent() {
    let f = fixture();
    let len = HEADER_LEN + WELCOME_BODY_LEN;
    for i in 0..len {
        let (mut client, hello) = ClientHandshake::start(&f.client, t(9)).unwrap();
        let gateway =
            GatewayHandshake::read_hello(&f.gateway_private, &hello, f.admit_all(None)).unwrap();
        let mut forged = gateway
            .accept(welcome_header(), &welcome_payload())
            .unwrap()
            .datagram;
        forged[i] ^= 0x01;
        let err = client.finish(&forged).unwrap_err();
        if i >= HEADER_LEN {
            assert!(
                matches!(err, HandshakeError::WelcomeUndecryptable),
                "byte {i}: {err:?}"
            );
            assert!(client.is_spent());
        } else {
            assert!(
                matches!(
                    err,
                    HandshakeError::Header(_)
                        | HandshakeError::UnexpectedType { .. }
                        | HandshakeError::SessionMismatch { .. }
                        | HandshakeError::WelcomeTag
                ),
                "byte {i}: {err:?}"
            );
        }
    }
}

#[test]
fn a_malformed_welcome_leaves_the_handshake_waiting() {
    let f = fixture();
    let (mut client, hello) = ClientHandshake::start(&f.client, t(11)).unwrap();
    let gateway =
        GatewayHandshake::read_hello(&f.gateway_private, &hello, f.admit_all(None)).unwrap();
    let welcome = gateway
        .accept(welcome_header(), &welcome_payload())
        .unwrap()
        .datagram;
    assert!(matches!(
        client.finish(&welcome[..welcome.len() - 1]),
        Err(HandshakeError::Length { .. })
    ));
    assert!(matches!(
        client.finish(&hello),
        Err(HandshakeError::Length { .. })
    ));
    assert!(!client.is_spent());
    assert!(client.finish(&welcome).is_ok());
    assert!(matches!(
        client.finish(&welcome),
        Err(HandshakeError::Spent)
    ));
}

#[test]
fn wrong_gateway_key_or_psk_never_completes() {
    let f = fixture();
    let mut wrong_gateway = f.client.clone();
    wrong_gateway.gateway_public_key = PrivateKey::generate().public_key();
    let (_, hello) = ClientHandshake::start(&wrong_gateway, t(3)).unwrap();
    let err =
        GatewayHandshake::read_hello(&f.gateway_private, &hello, f.admit_all(None)).unwrap_err();
    assert!(matches!(err, HandshakeError::HelloUndecryptable), "{err:?}");
    assert_eq!(err.reason(), RejectReason::BadSeal);

    let mut wrong_psk = f.client.clone();
    wrong_psk.psk = PresharedKey::generate();
    let (mut client, hello) = ClientHandshake::start(&wrong_psk, t(3)).unwrap();
    let gateway =
        GatewayHandshake::read_hello(&f.gateway_private, &hello, f.admit_all(None)).unwrap();
    let welcome = gateway
        .accept(welcome_header(), &welcome_payload())
        .unwrap();
    let err = client.finish(&welcome.datagram).unwrap_err();
    assert!(
        matches!(err, HandshakeError::WelcomeUndecryptable),
        "{err:?}"
    );
}

#[test]
fn the_gateway_refuses_to_welcome_an_inconsistent_session() {
    let f = fixture();
    let cases: [(WireHeader, WelcomePayload); 3] = [
        (
            WireHeader::new(MessageType::Welcome, SESSION + 1, 1, 1),
            welcome_payload(),
        ),
        (
            WireHeader::new(MessageType::Data, SESSION, 1, 1),
            welcome_payload(),
        ),
        (
            welcome_header(),
            WelcomePayload {
                ipv4_prefix_len: 40,
                ..welcome_payload()
            },
        ),
    ];
    for (header, payload) in cases {
        let (_, hello) = ClientHandshake::start(&f.client, t(5)).unwrap();
        let gateway =
            GatewayHandshake::read_hello(&f.gateway_private, &hello, f.admit_all(None)).unwrap();
        assert!(
            gateway.accept(header, &payload).is_err(),
            "{header:?} {payload:?}"
        );
    }
}

#[test]
fn tai64n_of_the_wall_clock_follows_it() {
    let epoch = tai64n(UNIX_EPOCH);
    assert_eq!(epoch, Tai64N::from_unix(0, 0));
    let later = tai64n(UNIX_EPOCH + std::time::Duration::new(1_700_000_000, 42));
    assert_eq!(later, Tai64N::from_unix(1_700_000_000, 42));
}
