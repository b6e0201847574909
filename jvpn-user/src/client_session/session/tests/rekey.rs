//! Rekeying as the client core lives it (docs/rekey.md): REKEY_INIT, the REKEY_ACK at exactly one
//! above that switches the keys, the overlap during which gateway DATA sealed under the previous
//! keys at the previous version still opens, and the REKEY_ACKs that fail closed.

use super::*;
use jvpn_common::control::{RekeyAck, REKEY_NOISE_LEN};

#[test]
fn a_rekey_switches_the_keys_one_version_up_with_an_overlap_of_the_old_ones() {
    let (mut gateway, mut client) = established();
    let init = client.rekey_init().unwrap();
    assert!(client.rekey_pending());
    // Sealed under the old keys before the gateway's commit, still in flight after it.
    let late = gateway.seal_raw(MessageType::Data, 1, b"late");
    let later = gateway.seal_raw(MessageType::Data, 1, b"later");
    let ack = gateway.rekey(&init);
    assert_eq!(
        client.handle(&ack),
        Ok(ClientEvent::Rekeyed { new_version: 2 })
    );
    assert_eq!(client.acked_version(), 2);
    assert_eq!(client.rekeys_completed(), 1);
    assert!(!client.rekey_pending());
    assert_eq!(client.messages_under_current_keys(), 0);

    assert_eq!(
        client.handle(&late),
        Ok(ClientEvent::Data(b"late".to_vec())),
        "the previous keys still open what was sent before the commit"
    );
    let fresh = gateway.seal_raw(MessageType::Data, 2, b"new");
    assert_eq!(
        client.handle(&fresh),
        Ok(ClientEvent::Data(b"new".to_vec()))
    );
    assert!(
        matches!(
            client.handle(&later),
            Err(SessionRefusal::Unauthenticated(_))
        ),
        "the first message under the new keys ends the overlap"
    );

    // The client seals under the new keys at the new version; the gateway opens it.
    let data = client.seal_data(b"up").unwrap();
    let (header, body) = gateway.open(&data);
    assert_eq!((header.state_version.get(), body), (2, b"up".to_vec()));
    assert_eq!(client.messages_under_current_keys(), 1);
}

#[test]
fn the_ack_of_an_earlier_rekey_init_still_completes_it() {
    let (mut gateway, mut client) = established();
    let first = client.rekey_init().unwrap();
    let _second = client.rekey_init().unwrap();
    let ack = gateway.rekey(&first);
    assert_eq!(
        client.handle(&ack),
        Ok(ClientEvent::Rekeyed { new_version: 2 })
    );
    let data = gateway.seal_raw(MessageType::Data, 2, b"x");
    assert_eq!(client.handle(&data), Ok(ClientEvent::Data(b"x".to_vec())));
}

#[test]
fn a_rekey_ack_the_client_cannot_complete_fails_closed() {
    let forged = |version: u64| RekeyAck {
        new_version: Be64::new(version),
        noise: [0x42; REKEY_NOISE_LEN],
    };
    // No rekey asked for: the gateway would run on keys the client cannot derive.
    let (mut gateway, mut client) = established();
    let datagram = gateway.seal(2, &forged(2));
    assert!(matches!(
        client.handle(&datagram),
        Err(SessionRefusal::Ambiguous(Ambiguity::RekeyUnverified {
            version: 2,
            acked: 1
        }))
    ));
    assert!(client.closed().is_some());

    // Asked for, but the ACK's exchange is not this client's.
    let (mut gateway, mut client) = established();
    client.rekey_init().unwrap();
    let datagram = gateway.seal(2, &forged(2));
    assert!(client.handle(&datagram).unwrap_err().is_fatal());

    // Two versions up, or header and body disagreeing: ambiguous.
    let (mut gateway, mut client) = established();
    client.rekey_init().unwrap();
    let datagram = gateway.seal(3, &forged(3));
    assert!(client.handle(&datagram).unwrap_err().is_fatal());
    let (mut gateway, mut client) = established();
    client.rekey_init().unwrap();
    let datagram = gateway.seal(2, &forged(5));
    assert!(client.handle(&datagram).unwrap_err().is_fatal());

    // At the acknowledged version it explains nothing and changes nothing.
    let (mut gateway, mut client) = established();
    client.rekey_init().unwrap();
    let datagram = gateway.seal(1, &forged(1));
    assert!(matches!(
        client.handle(&datagram),
        Err(SessionRefusal::Unexpected { .. })
    ));
    assert!(client.closed().is_none() && client.rekey_pending());
}

/// A REKEY_ACK lost on the way and sent again by the gateway, byte for byte
/// (`gateway::lost_rekey_ack`): the first copy to arrive switches the keys, even after the client
/// retried its REKEY_INIT; every later copy is a replay that changes nothing, before and after
/// the overlap ends.
#[test]
fn a_rekey_ack_sent_again_switches_the_keys_exactly_once() {
    let (mut gateway, mut client) = established();
    let first = client.rekey_init().unwrap();
    let ack = gateway.rekey(&first);
    // The ACK is lost; the client retries, each retry with a fresh ephemeral key.
    for _ in 1..MAX_PENDING_REKEYS {
        client.rekey_init().unwrap();
    }
    assert_eq!(
        client.handle(&ack),
        Ok(ClientEvent::Rekeyed { new_version: 2 }),
        "the copy completes the REKEY_INIT the gateway answered"
    );
    let again = client.handle(&ack);
    assert!(
        matches!(again, Err(SessionRefusal::Replayed { .. })),
        "{again:?}"
    );
    let fresh = gateway.seal_raw(MessageType::Data, 2, b"new");
    assert_eq!(
        client.handle(&fresh),
        Ok(ClientEvent::Data(b"new".to_vec()))
    );
    let after_overlap = client.handle(&ack);
    assert!(
        matches!(after_overlap, Err(SessionRefusal::Unauthenticated(_))),
        "{after_overlap:?}"
    );
    assert_eq!((client.acked_version(), client.rekeys_completed()), (2, 1));
    assert!(client.closed().is_none());
    let data = client.seal_data(b"up").unwrap();
    let (header, body) = gateway.open(&data);
    assert_eq!((header.state_version.get(), body), (2, b"up".to_vec()));
}

/// Why the gateway resends for a bounded window: an ACK arriving after the client dropped the
/// ephemeral key of the REKEY_INIT it answers names keys the client cannot derive (fail closed).
#[test]
fn a_rekey_ack_for_a_forgotten_exchange_fails_closed() {
    let (mut gateway, mut client) = established();
    let first = client.rekey_init().unwrap();
    let ack = gateway.rekey(&first);
    for _ in 0..MAX_PENDING_REKEYS {
        client.rekey_init().unwrap();
    }
    assert!(client.handle(&ack).unwrap_err().is_fatal());
}

/// During the overlap every datagram is copied into one buffer the session reuses before the
/// current keys try it: datagrams of different lengths, a forged one between them, and each in
/// place, still open to exactly what was sealed under the previous keys.
#[test]
fn the_overlap_copy_reuses_one_buffer_across_lengths_and_a_forgery() {
    let (mut gateway, mut client) = established();
    let init = client.rekey_init().unwrap();
    let long = gateway.seal_raw(MessageType::Data, 1, &[7u8; 1200]);
    let short = gateway.seal_raw(MessageType::Data, 1, b"s");
    let mut forged = gateway.seal_raw(MessageType::Data, 1, b"forged");
    let last = forged.len() - 1;
    forged[last] ^= 1;
    let middle = gateway.seal_raw(MessageType::Data, 1, &[9u8; 300]);
    let ack = gateway.rekey(&init);
    assert_eq!(
        client.handle(&ack),
        Ok(ClientEvent::Rekeyed { new_version: 2 })
    );
    let mut opened = |datagram: &[u8]| {
        let mut buffer = datagram.to_vec();
        match client.handle_in_place(&mut buffer) {
            Ok(Handled::Packet(packet)) => Ok(packet.to_vec()),
            Ok(Handled::Event(event)) => panic!("not DATA: {event:?}"),
            Err(e) => Err(e),
        }
    };
    assert_eq!(opened(&long), Ok(vec![7u8; 1200]));
    assert_eq!(opened(&short), Ok(b"s".to_vec()));
    assert!(matches!(
        opened(&forged),
        Err(SessionRefusal::Unauthenticated(_))
    ));
    assert_eq!(opened(&middle), Ok(vec![9u8; 300]));
}
