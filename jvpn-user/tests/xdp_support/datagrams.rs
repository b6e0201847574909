//! jvpn datagrams for the XDP program: a header sealed under a session's header key with a
//! filler body, and HELLOs with a valid mac1 (and a mac2 under a cookie) under the tests' key.
//! [`super::frames`] wraps them into frames.

use bytemuck::Zeroable;
use jvpn_common::abi::{COOKIE_LEN, HEADER_KEY_LEN};
use jvpn_common::hello::HelloMessage;
use jvpn_common::siphash::SipKey;
use jvpn_common::{MessageType, TransportBinding, WireHeader};
use std::net::SocketAddr;

/// A header of `msg_type`, sealed under `key` (HELLO stays unsealed), followed by `body_len` bytes.
pub fn message(
    msg_type: MessageType,
    session_id: u64,
    version: u64,
    nonce: u64,
    key: &[u8; HEADER_KEY_LEN],
    body_len: usize,
) -> Vec<u8> {
    hinted_message(msg_type, session_id, version, nonce, key, body_len, None)
}

/// As [`message`], with the header's slot hint naming `slot` (covered by the tag).
pub fn hinted_message(
    msg_type: MessageType,
    session_id: u64,
    version: u64,
    nonce: u64,
    key: &[u8; HEADER_KEY_LEN],
    body_len: usize,
    slot: Option<u32>,
) -> Vec<u8> {
    let mut header = WireHeader::new(msg_type, session_id, version, nonce);
    header.set_hinted_slot(slot);
    if msg_type != MessageType::Hello {
        header.seal(SipKey::from_bytes(key));
    }
    let mut bytes = header.as_bytes().to_vec();
    bytes.resize(bytes.len() + body_len, 0xab);
    bytes
}

/// The mac1 key of the tests' config (`xdp_support::config`).
pub const MAC1_KEY: [u8; 16] = [0x4d; 16];

/// A HELLO datagram with a valid mac1 under [`MAC1_KEY`] and, given a cookie, a mac2
/// under it; `seed` varies its Noise bytes.
pub fn hello(seed: u8, cookie: Option<[u8; COOKIE_LEN]>) -> Vec<u8> {
    hello_with_key(seed, &MAC1_KEY, cookie)
}

/// As [`hello`], with mac1 under `mac1_key`.
pub fn hello_with_key(seed: u8, mac1_key: &[u8; 16], cookie: Option<[u8; COOKIE_LEN]>) -> Vec<u8> {
    let mut hello = HelloMessage::zeroed();
    hello.header = WireHeader::new(MessageType::Hello, 0, 0, 0);
    for (i, b) in hello.noise.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(7) ^ seed;
    }
    hello.seal_mac1(SipKey::from_bytes(mac1_key));
    if let Some(cookie) = cookie {
        hello.seal_mac2(&cookie);
    }
    hello.as_bytes().to_vec()
}

/// The cookie of `source` under `secret`, as the gateway would give it.
pub fn cookie_for(secret: &[u8; 16], source: SocketAddr) -> [u8; COOKIE_LEN] {
    jvpn_common::hello::cookie(secret, &TransportBinding::from_socket_addr(source))
}
