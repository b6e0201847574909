//! The wire header decoder: `WireHeader::parse` and `validate` on arbitrary bytes.
//!
//! Invariants: a parsed header is exactly the first 40 bytes of the input and validates to its own
//! type; HELLO carries no session, version, nonce or tag; every other type carries a session and a
//! nonce; only inputs shorter than a header are `Truncated`; the tag covers bytes 0..32 only.
#![no_main]

use jvpn_common::abi::{HEADER_LEN, TAG_OFFSET};
use jvpn_common::siphash::SipKey;
use jvpn_common::wire::{HeaderError, MessageType, WireHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let parsed = WireHeader::parse(data);
    if data.len() < HEADER_LEN {
        assert_eq!(parsed, Err(HeaderError::Truncated), "short input");
        return;
    }
    let raw: WireHeader = bytemuck::pod_read_unaligned(&data[..HEADER_LEN]);
    assert_eq!(
        parsed.map(|h| h.as_bytes().to_vec()),
        raw.validate().map(|_| data[..HEADER_LEN].to_vec()),
        "parse must be validate of the first {HEADER_LEN} bytes"
    );
    let Ok(header) = parsed else { return };
    let message_type = header.validate().expect("a parsed header validates");
    assert_eq!(header.message_type(), Some(message_type));
    if matches!(message_type, MessageType::Hello | MessageType::CookieReply) {
        assert_eq!(
            (header.session_id.get(), header.state_version.get()),
            (0, 0)
        );
        assert_eq!((header.nonce.get(), header.tag.get()), (0, 0));
    } else {
        assert_ne!(
            header.session_id.get(),
            0,
            "only HELLO and COOKIE_REPLY have session 0"
        );
        assert_ne!(header.nonce.get(), 0, "nonces start at 1");
    }

    // The tag: sealing makes it verify, and it does not depend on the tag bytes themselves.
    let key = SipKey::from_bytes(&[0x5a; 16]);
    let mut sealed = header;
    sealed.seal(key);
    assert!(sealed.tag_verifies(key));
    assert_eq!(sealed.compute_tag(key), header.compute_tag(key));
    assert_eq!(
        sealed.as_bytes()[..TAG_OFFSET],
        header.as_bytes()[..TAG_OFFSET]
    );
});
