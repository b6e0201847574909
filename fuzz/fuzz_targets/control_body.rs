//! Every control body decoder of `jvpn_common::control` (`Body::from_body` of each body type) on
//! the same arbitrary bytes.
//!
//! Invariants: a body decodes only at exactly its type's length; a decoded body re-encodes to the
//! very bytes it came from and passes its own `check`; a decoded REJECT names a known reason and a
//! decoded TERMINATE a known cause; a decoded WELCOME names a session, an address and a usable MTU.
#![no_main]

use jvpn_common::control::{
    Body, BodyError, HelloPayload, PathChallenge, PathResponse, ReattachAck, ReattachRequest,
    Reject, Terminate, WelcomePayload, MIN_TUNNEL_MTU,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    decodes::<ReattachRequest>(data);
    decodes::<PathChallenge>(data);
    decodes::<PathResponse>(data);
    decodes::<ReattachAck>(data);
    decodes::<HelloPayload>(data);
    if let Some(reject) = decodes::<Reject>(data) {
        assert!(reject.reason().is_some(), "REJECT with an unknown reason");
    }
    if let Some(terminate) = decodes::<Terminate>(data) {
        assert!(
            terminate.cause().is_some(),
            "TERMINATE with an unknown cause"
        );
    }
    if let Some(welcome) = decodes::<WelcomePayload>(data) {
        assert_ne!(welcome.session_id.get(), 0);
        assert!(welcome.ipv4_prefix_len <= 32 && welcome.ipv6_prefix_len <= 128);
        assert!(welcome.ipv4_prefix_len != 0 || welcome.ipv6_prefix_len != 0);
        assert!(welcome.tunnel_mtu.get() >= MIN_TUNNEL_MTU);
    }
});

/// Decodes `data` as a `B`, checking what holds for every body type.
fn decodes<B: Body>(data: &[u8]) -> Option<B> {
    match B::from_body(data) {
        Ok(body) => {
            assert_eq!(data.len(), size_of::<B>(), "decoded at a wrong length");
            assert_eq!(
                body.as_body(),
                data,
                "a decoded body re-encodes to its bytes"
            );
            assert_eq!(body.check(), Ok(()));
            Some(body)
        }
        Err(BodyError::WrongLength { expected, got }) => {
            assert_eq!((expected, got), (size_of::<B>(), data.len()));
            assert_ne!(got, expected);
            None
        }
        Err(error) => {
            assert_eq!(data.len(), size_of::<B>(), "{error} at a wrong length");
            // Every refusal has an operator-facing message.
            assert!(!error.to_string().is_empty());
            None
        }
    }
}
