//! Seal/open round trips, and every way of tampering that must fail.

use super::*;
use jvpn_common::control::{PathChallenge, ReattachRequest, Reject};
use jvpn_common::wire::Be64;

const SESSION: u64 = 0x0102_0304_0506_0708;

fn keys() -> SessionKeys {
    SessionKeys::derive(&[0x11; 32], &[0x22; 32], &[0x33; 32])
}

fn other_keys() -> SessionKeys {
    SessionKeys::derive(&[0x11; 32], &[0x22; 32], &[0x44; 32])
}

fn data_header(nonce: u64) -> WireHeader {
    WireHeader::new(MessageType::Data, SESSION, 3, nonce)
}

fn packet() -> Vec<u8> {
    (0..100u8).collect()
}

#[test]
fn data_and_keepalive_round_trip_both_ways() {
    let keys = keys();
    for direction in [Direction::ClientToGateway, Direction::GatewayToClient] {
        for body in [packet(), Vec::new()] {
            let t = if body.is_empty() {
                MessageType::Keepalive
            } else {
                MessageType::Data
            };
            let header = WireHeader::new(t, SESSION, 3, 77);
            let sealed = seal_message(&keys, direction, header, &body).unwrap();
            assert_eq!(sealed.len(), sealed_len(body.len()));
            if !body.is_empty() {
                assert_ne!(&sealed[HEADER_LEN..HEADER_LEN + body.len()], &body[..]);
            }
            let (opened_header, opened) = open_message(&keys, direction, &sealed).unwrap();
            assert_eq!(opened, body);
            assert!(opened_header.tag_verifies(keys.sip_key(direction)));
            assert_eq!(opened_header.nonce.get(), 77);
            assert_eq!(opened_header.session_id.get(), SESSION);

            let mut in_place = sealed.clone();
            let (_, plain) = open_in_place(&keys, direction, &mut in_place).unwrap();
            assert_eq!(plain, &body[..]);
        }
    }
}

#[test]
fn control_bodies_round_trip_and_check_their_type() {
    let keys = keys();
    let request = ReattachRequest {
        acked_version: Be64::new(3),
        attempt: Be64::new(1),
    };
    let header = WireHeader::new(MessageType::ReattachRequest, SESSION, 3, 5);
    let sealed = seal_body(&keys, Direction::ClientToGateway, header, &request).unwrap();
    let (h, opened): (_, ReattachRequest) =
        open_body(&keys, Direction::ClientToGateway, &sealed).unwrap();
    assert_eq!((h.nonce.get(), opened), (5, request));
    assert_eq!(
        open_body::<PathChallenge>(&keys, Direction::ClientToGateway, &sealed),
        Err(SealError::UnexpectedType {
            expected: MessageType::PathChallenge,
            got: MessageType::ReattachRequest
        })
    );
    let reject = Reject::new(RejectReason::StaleVersion, 4, 5);
    assert!(matches!(
        seal_body(&keys, Direction::GatewayToClient, header, &reject),
        Err(SealError::UnexpectedType { .. })
    ));
    let bad_body = seal_message(
        &keys,
        Direction::GatewayToClient,
        WireHeader::new(MessageType::Reject, SESSION, 4, 1),
        &[0u8; 3],
    )
    .unwrap();
    assert!(matches!(
        open_body::<Reject>(&keys, Direction::GatewayToClient, &bad_body),
        Err(SealError::Body(_))
    ));
}

#[test]
fn every_tampered_byte_is_refused() {
    let keys = keys();
    let sealed =
        seal_message(&keys, Direction::ClientToGateway, data_header(9), &packet()).unwrap();
    let tag_end = HEADER_LEN;
    for i in 0..sealed.len() {
        for bit in [0x01u8, 0x80] {
            let mut forged = sealed.clone();
            forged[i] ^= bit;
            let err = open_message(&keys, Direction::ClientToGateway, &forged).unwrap_err();
            if i < jvpn_common::abi::TAG_OFFSET {
                assert!(
                    matches!(
                        err,
                        SealError::BadTag
                            | SealError::Header(_)
                            | SealError::WrongDirection(..)
                            | SealError::HandshakeMessage(_)
                    ),
                    "header byte {i}: {err:?}"
                );
            } else if i < tag_end {
                assert_eq!(err, SealError::BadTag, "tag byte {i}");
            } else {
                assert_eq!(err, SealError::BadSeal, "body or AEAD tag byte {i}");
            }
        }
    }
}

/// A message reflected back to its sender (DATA and KEEPALIVE travel both ways) fails at the
/// header tag, which is all the XDP program checks: each direction has its own header key.
#[test]
fn the_wrong_direction_key_or_session_keys_never_open() {
    let keys = keys();
    for (sent, reflected) in [
        (Direction::ClientToGateway, Direction::GatewayToClient),
        (Direction::GatewayToClient, Direction::ClientToGateway),
    ] {
        for header in [
            data_header(1),
            WireHeader::new(MessageType::Keepalive, SESSION, 3, 1),
        ] {
            let body = if header.msg_type == MessageType::Data as u8 {
                packet()
            } else {
                Vec::new()
            };
            let sealed = seal_message(&keys, sent, header, &body).unwrap();
            assert_eq!(
                open_message(&keys, reflected, &sealed),
                Err(SealError::BadTag),
                "{header:?} sent {sent:?}, opened {reflected:?}"
            );
        }
    }
    let sealed =
        seal_message(&keys, Direction::ClientToGateway, data_header(1), &packet()).unwrap();
    assert_eq!(
        open_message(&other_keys(), Direction::ClientToGateway, &sealed),
        Err(SealError::BadTag)
    );
}

#[test]
fn a_retagged_header_with_another_nonce_or_version_does_not_open() {
    // Whoever knows the header key (it sits in a BPF map) can re-tag a header; the AEAD still
    // binds the body to the original nonce and header.
    let keys = keys();
    let sealed =
        seal_message(&keys, Direction::ClientToGateway, data_header(1), &packet()).unwrap();
    for forged_header in [
        data_header(2),
        WireHeader::new(MessageType::Data, SESSION, 4, 1),
        WireHeader::new(MessageType::Keepalive, SESSION, 3, 1),
    ] {
        let mut retagged = forged_header;
        retagged.seal(keys.sip_key(Direction::ClientToGateway));
        let mut forged = sealed.clone();
        forged[..HEADER_LEN].copy_from_slice(retagged.as_bytes());
        assert_eq!(
            open_message(&keys, Direction::ClientToGateway, &forged),
            Err(SealError::BadSeal),
            "{forged_header:?}"
        );
    }
}

#[test]
fn the_aead_nonce_is_the_packet_nonce_as_wireguard_lays_it() {
    let nonce = aead_nonce(0x0102_0304_0506_0708);
    assert_eq!(nonce.as_slice(), &[0, 0, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1]);
}

#[test]
fn handshake_types_wrong_directions_and_short_datagrams_are_refused() {
    let keys = keys();
    let refused: [(MessageType, Direction); 4] = [
        (MessageType::ReattachAck, Direction::ClientToGateway),
        (MessageType::PathChallenge, Direction::ClientToGateway),
        (MessageType::ReattachRequest, Direction::GatewayToClient),
        (MessageType::PathResponse, Direction::GatewayToClient),
    ];
    for (t, direction) in refused {
        let header = WireHeader::new(t, SESSION, 1, 1);
        assert_eq!(
            seal_message(&keys, direction, header, &[]),
            Err(SealError::WrongDirection(t, direction))
        );
        let opposite = match direction {
            Direction::ClientToGateway => Direction::GatewayToClient,
            Direction::GatewayToClient => Direction::ClientToGateway,
        };
        let sealed = seal_message(&keys, opposite, header, &[]).unwrap();
        assert_eq!(
            open_message(&keys, direction, &sealed),
            Err(SealError::WrongDirection(t, direction))
        );
    }
    let welcome = WireHeader::new(MessageType::Welcome, SESSION, 1, 1);
    assert_eq!(
        seal_message(&keys, Direction::GatewayToClient, welcome, &[]),
        Err(SealError::HandshakeMessage(MessageType::Welcome))
    );
    // Found by the aead_open fuzz target: a COOKIE_REPLY (session 0, tag 0 by the wire rules) was
    // sealed, and its computed tag then made the header malformed at the other end.
    let cookie = WireHeader::new(MessageType::CookieReply, 0, 0, 0);
    assert_eq!(
        seal_message(&keys, Direction::GatewayToClient, cookie, &[]),
        Err(SealError::HandshakeMessage(MessageType::CookieReply))
    );
    assert_eq!(
        seal_message(&keys, Direction::ClientToGateway, data_header(0), &[]),
        Err(SealError::Header(HeaderError::ZeroNonce))
    );
    let sealed = seal_message(&keys, Direction::ClientToGateway, data_header(1), &[]).unwrap();
    for len in 0..sealed.len() {
        assert_eq!(
            open_message(&keys, Direction::ClientToGateway, &sealed[..len]),
            Err(SealError::Truncated(len))
        );
    }
}

#[test]
fn reasons_match_the_dataplane_codes() {
    assert_eq!(SealError::BadTag.reason(), RejectReason::BadTag);
    assert_eq!(SealError::BadSeal.reason(), RejectReason::BadSeal);
    assert_eq!(SealError::Truncated(3).reason(), RejectReason::Malformed);
}

/// The wire format did not change with the AEAD's implementation: a DATA message sealed here
/// opens with the RustCrypto ChaCha20-Poly1305 (RFC 8439) under the same key, nonce and
/// associated data, and one that crate seals opens here; a flipped tag bit fails both ways.
#[test]
fn the_seal_is_rfc_8439_chacha20_poly1305_byte_for_byte() {
    use chacha20poly1305::aead::AeadInPlace as _;
    use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit as _, Nonce as RcNonce, Tag as RcTag};
    let keys = keys();
    let direction = Direction::ClientToGateway;
    let reference = ChaCha20Poly1305::new(Key::from_slice(keys.aead_key(direction)));
    let body: Vec<u8> = (0..1_400u32).map(|i| (i * 7) as u8).collect();
    let nonce = 0x0a0b_0c0d_0e0f_1011;

    let sealed = seal_message(&keys, direction, data_header(nonce), &body).expect("sealed");
    let mut copy = sealed.clone();
    let (head, rest) = copy.split_at_mut(HEADER_LEN);
    let (payload, tag) = rest.split_at_mut(rest.len() - AEAD_TAG_LEN);
    reference
        .decrypt_in_place_detached(
            RcNonce::from_slice(&aead_nonce(nonce)),
            head,
            payload,
            RcTag::from_slice(tag),
        )
        .expect("the reference implementation opens our seal");
    assert_eq!(payload, &body[..]);

    let mut theirs = sealed[..HEADER_LEN].to_vec();
    theirs.extend_from_slice(&body);
    let (head, payload) = theirs.split_at_mut(HEADER_LEN);
    let tag = reference
        .encrypt_in_place_detached(RcNonce::from_slice(&aead_nonce(nonce)), head, payload)
        .expect("the reference seals");
    theirs.extend_from_slice(&tag);
    assert_eq!(theirs, sealed, "both implementations seal the same bytes");
    let (_, opened) = open_in_place(&keys, direction, &mut theirs).expect("we open theirs");
    assert_eq!(opened, &body[..]);

    let mut flipped = sealed;
    *flipped.last_mut().expect("a tag") ^= 1;
    assert_eq!(
        open_in_place(&keys, direction, &mut flipped).map(|_| ()),
        Err(SealError::BadSeal)
    );
}

/// What callers that try a second key rely on knowing: a failed open does not leave the
/// ciphertext behind (ring zeroes it), so they must copy before the first try.
#[test]
fn a_failed_open_leaves_no_plaintext_and_no_ciphertext() {
    let keys = keys();
    let sealed = seal_message(
        &keys,
        Direction::GatewayToClient,
        data_header(9),
        b"secret body",
    )
    .expect("sealed");
    let mut tried = sealed.clone();
    assert_eq!(
        open_in_place(&other_keys(), Direction::GatewayToClient, &mut tried).map(|_| ()),
        Err(SealError::BadTag)
    );
    let mut wrong_aead = sealed.clone();
    *wrong_aead.last_mut().expect("a tag") ^= 0x80;
    assert_eq!(
        open_in_place(&keys, Direction::GatewayToClient, &mut wrong_aead).map(|_| ()),
        Err(SealError::BadSeal)
    );
    let body = &wrong_aead[HEADER_LEN..wrong_aead.len() - AEAD_TAG_LEN];
    assert!(
        !body.windows(6).any(|w| w == b"secret"),
        "no plaintext left"
    );
    assert_ne!(body, &sealed[HEADER_LEN..sealed.len() - AEAD_TAG_LEN]);
}
