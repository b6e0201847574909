//! Round trips, layouts and refusals of every control body.

use super::*;
use crate::abi::HEADER_LEN;
use crate::wire::Be16;
use std::vec::Vec;

fn welcome() -> WelcomePayload {
    WelcomePayload {
        session_id: Be64::new(0x1122_3344_5566_7788),
        ipv4: [10, 77, 0, 2],
        ipv4_prefix_len: 24,
        ipv6_prefix_len: 64,
        tunnel_mtu: Be16::new(DEFAULT_TUNNEL_MTU),
        ipv6: [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        keepalive_interval_secs: Be16::new(10),
        reserved: [0; 6],
    }
}

fn round_trip<T: Body + PartialEq + core::fmt::Debug>(body: T, len: usize) {
    let bytes: Vec<u8> = body.as_body().to_vec();
    assert_eq!(bytes.len(), len, "{:?}", T::MESSAGE_TYPE);
    assert_eq!(T::from_body(&bytes), Ok(body));
    for wrong in [0, len - 1, len + 1] {
        let mut b = bytes.clone();
        b.resize(wrong, 0);
        assert_eq!(
            T::from_body(&b),
            Err(BodyError::WrongLength {
                expected: len,
                got: wrong
            })
        );
    }
}

#[test]
fn every_body_round_trips_at_its_documented_size() {
    round_trip(
        HelloPayload {
            timestamp: Tai64N::from_unix(1_700_000_000, 5),
        },
        12,
    );
    round_trip(welcome(), 40);
    round_trip(
        ReattachRequest {
            acked_version: Be64::new(7),
            attempt: Be64::new(3),
        },
        16,
    );
    let challenge = PathChallenge {
        token: core::array::from_fn(|i| i as u8),
        attempt: Be64::new(3),
    };
    round_trip(challenge, 40);
    round_trip(PathResponse::answering(&challenge), 40);
    round_trip(
        ReattachAck {
            new_version: Be64::new(8),
            binding: TransportBinding::from_v4([192, 0, 2, 1], 40000),
        },
        32,
    );
    round_trip(Reject::new(RejectReason::StaleVersion, 8, 99), 24);
    round_trip(Terminate::new(TerminateCause::IdleTimeout), 8);
}

#[test]
fn layouts_are_the_documented_ones() {
    let w = welcome();
    let b = w.as_body();
    assert_eq!(&b[0..8], &0x1122_3344_5566_7788u64.to_be_bytes());
    assert_eq!(&b[8..12], &[10, 77, 0, 2]);
    assert_eq!((b[12], b[13]), (24, 64));
    assert_eq!(&b[14..16], &DEFAULT_TUNNEL_MTU.to_be_bytes());
    assert_eq!(b[16], 0xfd);
    assert_eq!(&b[32..34], &10u16.to_be_bytes());

    let r = Reject::new(RejectReason::VersionJump, 0x0102, 0x0304);
    let b = r.as_body();
    assert_eq!(b[0], RejectReason::VersionJump.code());
    assert_eq!(&b[8..16], &0x0102u64.to_be_bytes());
    assert_eq!(&b[16..24], &0x0304u64.to_be_bytes());

    let ack = ReattachAck {
        new_version: Be64::new(5),
        binding: TransportBinding::from_v4([198, 51, 100, 7], 0x1234),
    };
    let b = ack.as_body();
    assert_eq!(&b[0..8], &5u64.to_be_bytes());
    assert_eq!(&b[18..24], &[0xff, 0xff, 198, 51, 100, 7]);
    assert_eq!(&b[24..26], &[0x12, 0x34]);

    assert_eq!(HELLO_BODY_LEN, 32 + 32 + 16 + 12 + 16);
    assert_eq!(WELCOME_BODY_LEN, 32 + 40 + 16);
    assert_eq!(sealed_len(0), HEADER_LEN + AEAD_TAG_LEN);
    assert_eq!(DEFAULT_TUNNEL_MTU, 1396);
}

#[test]
fn reserved_bytes_must_be_zero() {
    let mut b = welcome().as_body().to_vec();
    b[39] = 1;
    assert_eq!(WelcomePayload::from_body(&b), Err(BodyError::Reserved));
    let mut b = Reject::new(RejectReason::BadSeal, 1, 1).as_body().to_vec();
    b[1] = 1;
    assert_eq!(Reject::from_body(&b), Err(BodyError::Reserved));
    let mut b = Terminate::new(TerminateCause::Operator).as_body().to_vec();
    b[7] = 1;
    assert_eq!(Terminate::from_body(&b), Err(BodyError::Reserved));
    let mut b = ReattachAck {
        new_version: Be64::new(2),
        binding: TransportBinding::from_v4([192, 0, 2, 1], 1),
    }
    .as_body()
    .to_vec();
    b[31] = 1;
    assert_eq!(ReattachAck::from_body(&b), Err(BodyError::Reserved));
}

#[test]
fn unknown_codes_are_refused() {
    let mut b = Reject::new(RejectReason::BadSeal, 1, 1).as_body().to_vec();
    for code in [0u8, 31, 255] {
        b[0] = code;
        assert_eq!(Reject::from_body(&b), Err(BodyError::UnknownReason(code)));
    }
    let mut b = Terminate::new(TerminateCause::Operator).as_body().to_vec();
    for code in [0u8, 8, 255] {
        b[0] = code;
        assert_eq!(Terminate::from_body(&b), Err(BodyError::UnknownCause(code)));
    }
    for code in 1..=7u8 {
        b[0] = code;
        assert_eq!(Terminate::from_body(&b).map(|t| t.cause), Ok(code));
    }
}

/// A named change to a valid WELCOME payload and the verdict it must get.
type WelcomeCase = (&'static str, fn(&mut WelcomePayload), Result<(), BodyError>);

#[test]
fn welcome_rules_are_enforced() {
    let cases: &[WelcomeCase] = &[
        ("valid", |_| {}, Ok(())),
        (
            "ipv4 only",
            |w| {
                w.ipv6 = [0; 16];
                w.ipv6_prefix_len = 0;
            },
            Ok(()),
        ),
        (
            "session 0",
            |w| w.session_id = Be64::new(0),
            Err(BodyError::ZeroSessionId),
        ),
        (
            "ipv4 /33",
            |w| w.ipv4_prefix_len = 33,
            Err(BodyError::BadPrefix),
        ),
        (
            "ipv6 /129",
            |w| w.ipv6_prefix_len = 129,
            Err(BodyError::BadPrefix),
        ),
        (
            "address without prefix",
            |w| w.ipv4_prefix_len = 0,
            Err(BodyError::BadPrefix),
        ),
        (
            "no address",
            |w| {
                w.ipv4 = [0; 4];
                w.ipv4_prefix_len = 0;
                w.ipv6 = [0; 16];
                w.ipv6_prefix_len = 0;
            },
            Err(BodyError::NoAddress),
        ),
        (
            "tiny mtu",
            |w| w.tunnel_mtu = Be16::new(575),
            Err(BodyError::MtuTooSmall(575)),
        ),
        (
            "huge mtu",
            |w| w.tunnel_mtu = Be16::new(MAX_TUNNEL_MTU + 1),
            Err(BodyError::MtuTooLarge(MAX_TUNNEL_MTU + 1)),
        ),
        (
            "largest mtu",
            |w| w.tunnel_mtu = Be16::new(MAX_TUNNEL_MTU),
            Ok(()),
        ),
    ];
    for (name, mutate, expected) in cases {
        let mut w = welcome();
        mutate(&mut w);
        assert_eq!(
            WelcomePayload::from_body(w.as_body()).map(|_| ()),
            *expected,
            "{name}"
        );
    }
}

#[test]
fn tai64n_byte_order_is_time_order() {
    let times = [
        Tai64N::from_unix(0, 0),
        Tai64N::from_unix(0, 999_999_999),
        Tai64N::from_unix(1, 0),
        Tai64N::from_unix(1_700_000_000, 1),
        Tai64N::from_unix(1_700_000_000, 2),
        Tai64N::from_unix(u64::MAX, 0),
    ];
    for pair in times.windows(2) {
        assert!(pair[0] < pair[1], "{pair:?}");
        assert!(bytemuck::bytes_of(&pair[0]) < bytemuck::bytes_of(&pair[1]));
    }
    assert_eq!(
        bytemuck::bytes_of(&Tai64N::from_unix(0, 0))[..8],
        Tai64N::UNIX_EPOCH_LABEL.to_be_bytes()
    );
}
