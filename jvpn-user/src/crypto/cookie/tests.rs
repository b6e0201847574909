use super::*;
use crate::crypto::handshake::{tai64n, ClientHandshake, ClientIdentity};
use crate::crypto::keys::{PresharedKey, PrivateKey};
use jvpn_common::abi::{COOKIE_ROTATION_SECS, HELLO_LEN};
use std::time::SystemTime;

fn identity(gateway: &PrivateKey) -> ClientIdentity {
    ClientIdentity {
        private_key: PrivateKey::generate(),
        gateway_public_key: gateway.public_key(),
        psk: PresharedKey::none(),
    }
}

fn source() -> TransportBinding {
    TransportBinding::from_v4([192, 0, 2, 7], 40_000)
}

#[test]
fn a_client_hello_carries_mac1_under_the_key_derived_from_the_gateway() {
    let gateway = PrivateKey::generate();
    let (_, datagram) =
        ClientHandshake::start(&identity(&gateway), tai64n(SystemTime::now())).unwrap();
    assert_eq!(datagram.len(), HELLO_LEN);
    let hello = HelloMessage::from_bytes(&datagram).unwrap();
    assert!(hello.mac1_verifies(mac1_sip_key(&gateway.public_key())));
    assert!(!hello.mac1_verifies(mac1_sip_key(&PrivateKey::generate().public_key())));
    assert_eq!(hello.mac2, [0; HELLO_MAC_LEN], "no cookie yet, no mac2");
}

#[test]
fn the_cookie_exchange_gives_a_mac2_the_gateway_and_xdp_accept_for_that_source_only() {
    let gateway = PrivateKey::generate();
    let secrets = CookieSecrets::generate(0);
    let (mut client, datagram) =
        ClientHandshake::start(&identity(&gateway), tai64n(SystemTime::now())).unwrap();
    let hello = HelloMessage::from_bytes(&datagram).unwrap();
    assert!(!secrets.mac2_verifies(&hello, &source()));
    let reply = seal_cookie_reply(
        &gateway.public_key(),
        &secrets.cookie_for(&source()),
        &hello.mac1,
    );
    assert_eq!(reply.len(), COOKIE_REPLY_LEN);
    assert!(is_cookie_reply(&reply));
    let (cookie, resent) = client.accept_cookie(&reply).unwrap();
    assert_eq!(
        cookie,
        jvpn_common::hello::cookie(secrets.current(), &source())
    );
    let resent = HelloMessage::from_bytes(&resent).unwrap();
    assert_eq!(resent.noise, hello.noise, "the same HELLO, now with mac2");
    assert!(resent.mac1_verifies(mac1_sip_key(&gateway.public_key())));
    assert!(secrets.mac2_verifies(&resent, &source()));
    let elsewhere = TransportBinding::from_v4([192, 0, 2, 7], 40_001);
    assert!(!secrets.mac2_verifies(&resent, &elsewhere));
}

#[test]
fn a_cookie_reply_for_another_hello_or_gateway_or_altered_is_refused() {
    let gateway = PrivateKey::generate();
    let cookie = [7u8; COOKIE_LEN];
    let (mut client, datagram) =
        ClientHandshake::start(&identity(&gateway), tai64n(SystemTime::now())).unwrap();
    let mac1 = HelloMessage::from_bytes(&datagram).unwrap().mac1;
    let mut other_mac1 = mac1;
    other_mac1[0] ^= 1;
    let for_other_hello = seal_cookie_reply(&gateway.public_key(), &cookie, &other_mac1);
    let from_other_gateway =
        seal_cookie_reply(&PrivateKey::generate().public_key(), &cookie, &mac1);
    let mut altered = seal_cookie_reply(&gateway.public_key(), &cookie, &mac1);
    *altered.last_mut().unwrap() ^= 1;
    for (name, reply) in [
        ("another HELLO", for_other_hello),
        ("another gateway", from_other_gateway),
        ("altered", altered),
    ] {
        assert_eq!(
            client.accept_cookie(&reply),
            Err(CookieError::Undecryptable),
            "{name}"
        );
    }
    assert_eq!(
        client.accept_cookie(&datagram),
        Err(CookieError::NotACookieReply(HELLO_LEN))
    );
}

#[test]
fn rotation_keeps_the_previous_secret_for_one_period() {
    let mut secrets = CookieSecrets::generate(1000);
    let mut hello = <HelloMessage as bytemuck::Zeroable>::zeroed();
    hello.seal_mac2(&secrets.cookie_for(&source()));
    assert!(!secrets.rotate_if_due(1000 + COOKIE_ROTATION_SECS - 1));
    assert!(secrets.rotate_if_due(1000 + COOKIE_ROTATION_SECS));
    assert!(secrets.mac2_verifies(&hello, &source()), "previous secret");
    assert!(secrets.rotate_if_due(1000 + 2 * COOKIE_ROTATION_SECS));
    assert!(
        !secrets.mac2_verifies(&hello, &source()),
        "two rotations old"
    );
}
