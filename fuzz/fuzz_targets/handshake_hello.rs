//! The gateway's HELLO reader (`crypto::GatewayHandshake::read_hello`) with a fixed gateway key, on
//! arbitrary datagrams and on genuine HELLOs of a known client that the fuzzer may alter.
//!
//! Invariants: reading never panics; an arbitrary datagram never decrypts, so the admission callback
//! is never even asked (except for the fixture client's genuine HELLO of the seed corpus, which the
//! fuzzer cannot make anew, and which an admission that says no then refuses); a genuine HELLO is
//! accepted exactly when it is unaltered before its MACs, its client is authorised and its
//! timestamp is newer than the last one accepted, and refused with the matching reason otherwise.
//! mac1 and mac2 are not the reader's to check (XDP and the gateway's screen check them before a
//! HELLO is read), so altering only them changes nothing here.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use jvpn_common::abi::HELLO_MAC1_OFFSET;
use jvpn_common::control::Tai64N;
use jvpn_user::crypto::{
    ClientAdmission, ClientHandshake, ClientIdentity, GatewayHandshake, HandshakeError,
};
use libfuzzer_sys::fuzz_target;
use std::cell::Cell;

/// A HELLO made by the authorised client, then perhaps altered.
#[derive(Debug, Arbitrary)]
struct Genuine {
    /// The HELLO's timestamp.
    timestamp: (u64, u32),
    /// The last timestamp the gateway accepted from this client, if any.
    last_accepted: Option<(u64, u32)>,
    /// Whether the gateway knows the client's key.
    authorised: bool,
    /// XOR masks applied at `index % len`.
    flips: Vec<(u8, u8)>,
    /// Bytes appended.
    extra: Vec<u8>,
}

fn tai64n((seconds, nanoseconds): (u64, u32)) -> Tai64N {
    Tai64N::from_unix(seconds, nanoseconds)
}

// The first byte picks the case: 0, a datagram from the network (the rest of the input, as it
// is); anything else, a genuine HELLO built from the rest of the input.
fuzz_target!(|data: &[u8]| {
    let gateway_key = jvpn_fuzz::gateway_private_key();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        0 => {
            // Only the fixture client's genuine HELLOs (the seed corpus has one) can decrypt: the
            // fuzzer cannot make a new one. Whatever decrypts, admission says no, so nothing is
            // accepted.
            let decrypted_from = Cell::new(None);
            let result = GatewayHandshake::read_hello(&gateway_key, rest, |key| {
                decrypted_from.set(Some(*key));
                None
            });
            assert!(
                result.is_err(),
                "an arbitrary datagram was accepted as a HELLO: {result:?}"
            );
            if let Some(key) = decrypted_from.get() {
                assert_eq!(
                    key,
                    jvpn_fuzz::client_private_key().public_key(),
                    "an arbitrary datagram decrypted as a HELLO"
                );
                assert!(matches!(result, Err(HandshakeError::UnknownClient(_))));
            }
        }
        _ => {
            let Ok(Genuine {
                timestamp,
                last_accepted,
                authorised,
                flips,
                extra,
            }) = Genuine::arbitrary_take_rest(Unstructured::new(rest))
            else {
                return;
            };
            let identity = ClientIdentity {
                private_key: jvpn_fuzz::client_private_key(),
                gateway_public_key: gateway_key.public_key(),
                psk: jvpn_fuzz::psk(),
            };
            let timestamp = tai64n(timestamp);
            let last_accepted = last_accepted.map(tai64n);
            let (_client, hello) =
                ClientHandshake::start(&identity, timestamp).expect("the client makes a HELLO");
            let mut datagram = hello.clone();
            for (index, mask) in flips {
                let at = usize::from(index) % datagram.len();
                datagram[at] ^= mask;
            }
            datagram.extend_from_slice(&extra);
            let client_public = identity.private_key.public_key();
            let asked = Cell::new(false);
            let result = GatewayHandshake::read_hello(&gateway_key, &datagram, |key| {
                asked.set(true);
                assert_eq!(
                    *key, client_public,
                    "the HELLO decrypted to another client key"
                );
                authorised.then(|| ClientAdmission {
                    psk: jvpn_fuzz::psk(),
                    last_timestamp: last_accepted,
                })
            });
            let fresh = last_accepted.is_none_or(|last| timestamp > last);
            let altered = datagram.len() != hello.len()
                || datagram[..HELLO_MAC1_OFFSET] != hello[..HELLO_MAC1_OFFSET];
            match result {
                Ok(handshake) => {
                    assert!(!altered, "an altered HELLO was accepted");
                    assert!(
                        authorised && fresh,
                        "accepted: authorised {authorised}, fresh {fresh}"
                    );
                    assert_eq!(handshake.timestamp(), timestamp);
                    assert_eq!(*handshake.client_public_key(), client_public);
                }
                Err(error) => {
                    if altered {
                        assert!(!asked.get(), "an altered HELLO decrypted");
                        return;
                    }
                    match error {
                        HandshakeError::UnknownClient(_) => assert!(!authorised),
                        HandshakeError::Replay { .. } => assert!(authorised && !fresh),
                        other => panic!("a genuine HELLO was refused: {other}"),
                    }
                }
            }
        }
    }
});
