//! The wire header against its byte diagram: parsing, validation, sealing and every refusal.

use super::*;
use crate::siphash::siphash24;

fn key() -> SipKey {
    SipKey::from_bytes(&[7u8; 16])
}

fn data() -> WireHeader {
    WireHeader::new(MessageType::Data, 0x0102_0304_0506_0708, 3, 9)
}

#[test]
fn layout_is_the_documented_one() {
    let h = data();
    let b = h.as_bytes();
    assert_eq!(b[0], 1);
    assert_eq!(b[1], 3);
    assert_eq!(&b[2..8], &[0; 6]);
    assert_eq!(&b[8..16], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&b[16..24], &3u64.to_be_bytes());
    assert_eq!(&b[24..32], &9u64.to_be_bytes());
}

#[test]
fn round_trips_through_bytes() {
    for t in 1..=13u8 {
        let t = MessageType::from_u8(t).unwrap();
        let sessionless = matches!(t, MessageType::Hello | MessageType::CookieReply);
        let mut h = if sessionless {
            WireHeader::new(t, 0, 0, 0)
        } else {
            WireHeader::new(t, u64::MAX, u64::MAX - 1, 1)
        };
        if !sessionless {
            h.seal(key());
        }
        let mut buf = [0u8; 64];
        buf[..HEADER_LEN].copy_from_slice(h.as_bytes());
        assert_eq!(WireHeader::parse(&buf), Ok(h));
        assert_eq!(h.validate(), Ok(t));
    }
}

#[test]
fn tag_covers_exactly_bytes_0_to_32() {
    let mut h = data();
    h.seal(key());
    assert_eq!(h.tag.get(), siphash24(key(), &h.as_bytes()[..TAG_OFFSET]));
    assert!(h.tag_verifies(key()));
    assert!(!h.tag_verifies(SipKey::from_bytes(&[8u8; 16])));
    for byte in 0..TAG_OFFSET {
        let mut bytes = *h.as_bytes();
        bytes[byte] ^= 0x40;
        let forged: WireHeader = bytemuck::cast(bytes);
        assert!(
            !forged.tag_verifies(key()),
            "flipping byte {byte} must break the tag"
        );
    }
}

#[test]
fn every_malformed_case_is_refused() {
    let good = *data().as_bytes();
    type Mutation = fn(&mut [u8; HEADER_LEN]);
    let cases: &[(&str, Mutation, HeaderError)] = &[
        ("version 0", |b| b[0] = 0, HeaderError::Version),
        ("version 2", |b| b[0] = 2, HeaderError::Version),
        ("type 0", |b| b[1] = 0, HeaderError::UnknownType),
        ("type 14", |b| b[1] = 14, HeaderError::UnknownType),
        ("type 255", |b| b[1] = 255, HeaderError::UnknownType),
        ("low flag", |b| b[3] = 1, HeaderError::UnknownFlags),
        ("high flag", |b| b[2] = 0x80, HeaderError::UnknownFlags),
        (
            "data without session",
            |b| b[8..16].fill(0),
            HeaderError::SessionId,
        ),
        ("zero nonce", |b| b[24..32].fill(0), HeaderError::ZeroNonce),
        ("hello with session", |b| b[1] = 1, HeaderError::SessionId),
        (
            "cookie reply with session",
            |b| b[1] = 11,
            HeaderError::SessionId,
        ),
    ];
    for (name, mutate, expected) in cases {
        let mut b = good;
        mutate(&mut b);
        assert_eq!(WireHeader::parse(&b), Err(*expected), "{name}");
    }
    let hello = WireHeader::new(MessageType::Hello, 0, 0, 0);
    let mut b = *hello.as_bytes();
    b[7] = 1;
    assert_eq!(
        WireHeader::parse(&b),
        Err(HeaderError::Reserved),
        "hello with a slot hint"
    );
    let mut b = good;
    b[4..8].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
    assert_eq!(
        WireHeader::parse(&b).map(|h| h.slot_hint.get()),
        Ok(0xdead_beef),
        "a tagged header may carry any slot hint"
    );
    for (field, range) in [("version", 16..24), ("nonce", 24..32), ("tag", 32..40)] {
        let mut b = *hello.as_bytes();
        b[range.end - 1] = 1;
        assert_eq!(
            WireHeader::parse(&b),
            Err(HeaderError::SessionId),
            "hello {field}"
        );
    }
    for len in 0..HEADER_LEN {
        assert_eq!(
            WireHeader::parse(&good[..len]),
            Err(HeaderError::Truncated),
            "{len} bytes"
        );
    }
}

#[test]
fn only_client_types_flow_to_the_gateway() {
    let client: [u8; 7] = [1, 3, 4, 7, 8, 10, 12];
    assert_eq!(MessageType::from_u8(14), None);
    for t in 1..=13u8 {
        let t8 = t;
        let t = MessageType::from_u8(t).unwrap();
        assert_eq!(t.sent_by_client(), client.contains(&t8), "{t:?}");
    }
}
