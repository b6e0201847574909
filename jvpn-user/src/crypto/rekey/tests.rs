use super::*;
use crate::crypto::Direction;

fn keys(seed: u8) -> SessionKeys {
    SessionKeys::derive(&[seed; 32], &[seed + 1; 32], &[seed + 2; 32])
}

#[test]
fn both_ends_derive_the_same_fresh_aead_keys_and_keep_the_header_keys() {
    let current = keys(1);
    let (initiator, init) = RekeyInitiator::start(&current, 42, 7).expect("start");
    let (gateway_keys, ack) = respond(&current, 42, 7, &init).expect("respond");
    let client_keys = initiator.finish(&current, &ack).expect("finish");
    assert_eq!(client_keys, gateway_keys);
    for direction in [Direction::ClientToGateway, Direction::GatewayToClient] {
        assert_ne!(
            client_keys.aead_key(direction),
            current.aead_key(direction),
            "the AEAD keys change"
        );
        assert_eq!(
            client_keys.header_key(direction),
            current.header_key(direction),
            "the header keys stay (the XDP entry keeps verifying)"
        );
    }
    assert_ne!(
        client_keys.aead_key(Direction::ClientToGateway),
        client_keys.aead_key(Direction::GatewayToClient)
    );
}

#[test]
fn every_rekey_draws_fresh_ephemerals() {
    let current = keys(1);
    let derive = || {
        let (initiator, init) = RekeyInitiator::start(&current, 42, 7).expect("start");
        let (_, ack) = respond(&current, 42, 7, &init).expect("respond");
        initiator.finish(&current, &ack).expect("finish")
    };
    assert_ne!(derive(), derive(), "the same keys rekeyed twice differ");
}

/// Hostile inputs: message 1 under other keys, for another session or version, or altered;
/// message 2 of another rekey. Each is refused and yields no keys.
#[test]
fn a_message_made_for_anything_else_is_refused() {
    let current = keys(1);
    let (_, init) = RekeyInitiator::start(&current, 42, 7).expect("start");
    let mut altered = init;
    altered[40] ^= 1;
    let cases: [(&SessionKeys, u64, u64, [u8; REKEY_NOISE_LEN], &str); 4] = [
        (&keys(9), 42, 7, init, "other keys"),
        (&current, 43, 7, init, "another session"),
        (&current, 42, 8, init, "another version"),
        (&current, 42, 7, altered, "altered"),
    ];
    for (gateway_keys, session, version, message, what) in cases {
        assert!(
            matches!(
                respond(gateway_keys, session, version, &message),
                Err(RekeyError::Unverified { .. })
            ),
            "{what}"
        );
    }

    let (initiator, _) = RekeyInitiator::start(&current, 42, 7).expect("start");
    let (_, other_init) = RekeyInitiator::start(&current, 42, 7).expect("start");
    let (_, other_ack) = respond(&current, 42, 7, &other_init).expect("respond");
    assert!(
        matches!(
            initiator.finish(&current, &other_ack),
            Err(RekeyError::Unverified { .. })
        ),
        "the answer to another REKEY_INIT completes nothing"
    );
}
