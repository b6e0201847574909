//! The AEAD open path (`crypto::open_in_place`, `open_message`, `open_body`) with fixed session
//! keys, on arbitrary datagrams and on genuine sealed messages the fuzzer then alters.
//!
//! Invariants: opening never panics; a message sealed for one direction opens in that direction to
//! exactly its header and body and never in the other; any altered byte makes it refuse; a body
//! that decodes as its type opens through `open_body` to the same value.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use jvpn_common::control::{
    Body, PathChallenge, PathResponse, ReattachAck, ReattachRequest, Reject, RekeyAck, RekeyInit,
    Terminate,
};
use jvpn_common::wire::{MessageType, WireHeader};
use jvpn_user::crypto::{
    open_body, open_in_place, open_message, seal_message, Direction, SessionKeys,
};
use libfuzzer_sys::fuzz_target;

/// A message sealed with the session keys, then perhaps altered.
#[derive(Debug, Arbitrary)]
struct Sealed {
    to_gateway: bool,
    msg_type: u8,
    session_id: u64,
    state_version: u64,
    nonce: u64,
    body: Vec<u8>,
    /// XOR masks applied at `index % len` of the sealed datagram.
    flips: Vec<(u16, u8)>,
    /// Bytes cut from the end.
    cut: u8,
}

fn direction(to_gateway: bool) -> Direction {
    if to_gateway {
        Direction::ClientToGateway
    } else {
        Direction::GatewayToClient
    }
}

fn other(direction: Direction) -> Direction {
    match direction {
        Direction::ClientToGateway => Direction::GatewayToClient,
        Direction::GatewayToClient => Direction::ClientToGateway,
    }
}

// The first byte picks the case: 0 and 1, a datagram from the network (the rest of the input, as
// it is) opened as sent to the gateway or to the client; anything else, a sealed message built
// from the rest of the input.
fuzz_target!(|data: &[u8]| {
    let keys = jvpn_fuzz::session_keys();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        0 | 1 => {
            let direction = direction(mode == 0);
            open_every_way(&keys, direction, rest);
            let _ = open_in_place(&keys, direction, &mut rest.to_vec());
        }
        _ => {
            let Ok(Sealed {
                to_gateway,
                msg_type,
                session_id,
                state_version,
                nonce,
                body,
                flips,
                cut,
            }) = Sealed::arbitrary_take_rest(Unstructured::new(rest))
            else {
                return;
            };
            let direction = direction(to_gateway);
            let Some(message_type) = MessageType::from_u8(msg_type) else {
                return;
            };
            let header = WireHeader::new(message_type, session_id, state_version, nonce);
            let Ok(sealed) = seal_message(&keys, direction, header, &body) else {
                return;
            };
            let (opened_header, opened_body) =
                open_message(&keys, direction, &sealed).expect("a sealed message opens");
            assert_eq!(opened_body, body);
            assert_eq!(opened_header.as_bytes()[..32], header.as_bytes()[..32]);
            assert!(
                open_message(&keys, other(direction), &sealed).is_err(),
                "a message opened in the direction it was not sealed for"
            );
            open_every_way(&keys, direction, &sealed);
            if let Some(expected) = body_of(message_type, &body) {
                assert_eq!(
                    open_typed(&keys, direction, message_type, &sealed),
                    Some(expected)
                );
            }

            let mut altered = sealed.clone();
            for (index, mask) in flips {
                let at = usize::from(index) % altered.len();
                altered[at] ^= mask;
            }
            altered.truncate(altered.len() - usize::from(cut).min(altered.len()));
            if altered != sealed {
                assert!(
                    open_message(&keys, direction, &altered).is_err(),
                    "an altered message opened"
                );
            }
            open_every_way(&keys, direction, &altered);
        }
    }
});

/// Opens `datagram` as every control body type; none may panic, and a success must agree with
/// `open_message`.
fn open_every_way(keys: &SessionKeys, direction: Direction, datagram: &[u8]) {
    let plain = open_message(keys, direction, datagram);
    for message_type in [
        MessageType::ReattachRequest,
        MessageType::PathChallenge,
        MessageType::PathResponse,
        MessageType::ReattachAck,
        MessageType::Reject,
        MessageType::Terminate,
        MessageType::RekeyInit,
        MessageType::RekeyAck,
    ] {
        if let Some(typed) = open_typed(keys, direction, message_type, datagram) {
            let (_, body) = plain
                .as_ref()
                .expect("open_body opened what open_message refused");
            assert_eq!(Some(typed), body_of(message_type, body));
        }
    }
}

/// A decoded body as bytes, so the body types can be compared in one place.
fn body_of(message_type: MessageType, body: &[u8]) -> Option<Vec<u8>> {
    fn bytes<B: Body>(body: &[u8]) -> Option<Vec<u8>> {
        B::from_body(body).ok().map(|b| b.as_body().to_vec())
    }
    match message_type {
        MessageType::ReattachRequest => bytes::<ReattachRequest>(body),
        MessageType::PathChallenge => bytes::<PathChallenge>(body),
        MessageType::PathResponse => bytes::<PathResponse>(body),
        MessageType::ReattachAck => bytes::<ReattachAck>(body),
        MessageType::Reject => bytes::<Reject>(body),
        MessageType::Terminate => bytes::<Terminate>(body),
        MessageType::RekeyInit => bytes::<RekeyInit>(body),
        MessageType::RekeyAck => bytes::<RekeyAck>(body),
        _ => None,
    }
}

/// `open_body` for the body type of `message_type`, its body as bytes.
fn open_typed(
    keys: &SessionKeys,
    direction: Direction,
    message_type: MessageType,
    datagram: &[u8],
) -> Option<Vec<u8>> {
    fn open<B: Body>(keys: &SessionKeys, direction: Direction, datagram: &[u8]) -> Option<Vec<u8>> {
        let (header, body) = open_body::<B>(keys, direction, datagram).ok()?;
        assert_eq!(header.msg_type, B::MESSAGE_TYPE as u8);
        Some(body.as_body().to_vec())
    }
    match message_type {
        MessageType::ReattachRequest => open::<ReattachRequest>(keys, direction, datagram),
        MessageType::PathChallenge => open::<PathChallenge>(keys, direction, datagram),
        MessageType::PathResponse => open::<PathResponse>(keys, direction, datagram),
        MessageType::ReattachAck => open::<ReattachAck>(keys, direction, datagram),
        MessageType::Reject => open::<Reject>(keys, direction, datagram),
        MessageType::Terminate => open::<Terminate>(keys, direction, datagram),
        MessageType::RekeyInit => open::<RekeyInit>(keys, direction, datagram),
        MessageType::RekeyAck => open::<RekeyAck>(keys, direction, datagram),
        _ => None,
    }
}
