//! jvpn datagrams and session entries as a client would build them, from `jvpn_common` only.

use jvpn_common::abi::HELLO_LEN;
use jvpn_common::hello::HelloMessage;
use jvpn_common::maps::TransportBinding;
use jvpn_common::siphash::SipKey;
use jvpn_common::{MessageType, SessionEntry, SessionState, WireHeader};
use std::net::SocketAddr;

/// A session's identity and keys as a test client holds them.
#[derive(Clone, Copy, Debug)]
pub struct TestSession {
    /// The session id.
    pub id: u64,
    /// The 128-bit header key.
    pub header_key: [u8; 16],
}

impl TestSession {
    /// A session with id `id` and a key derived from it (distinct per session).
    pub fn new(id: u64) -> Self {
        let mut header_key = [0u8; 16];
        header_key[..8].copy_from_slice(&id.to_le_bytes());
        header_key[8..].copy_from_slice(&(!id).to_le_bytes());
        Self { id, header_key }
    }

    /// The table entry of this session in `state` at `version`, bound to `transport`.
    pub fn entry(&self, state: SessionState, version: u64, transport: SocketAddr) -> SessionEntry {
        SessionEntry {
            state_version: version,
            header_key: self.header_key,
            transport: TransportBinding::from_socket_addr(transport),
            state: state as u8,
            _pad: [0; 3],
            replay_slot: 0,
            session_id: self.id,
        }
    }

    /// A datagram of `msg_type` with a correct tag and `body` after the header.
    pub fn datagram(
        &self,
        msg_type: MessageType,
        version: u64,
        nonce: u64,
        body: &[u8],
    ) -> Vec<u8> {
        let mut header = WireHeader::new(msg_type, self.id, version, nonce);
        header.seal(SipKey::from_bytes(&self.header_key));
        [header.as_bytes().as_slice(), body].concat()
    }

    /// The same datagram with one bit of its tag flipped.
    pub fn datagram_with_bad_tag(
        &self,
        msg_type: MessageType,
        version: u64,
        nonce: u64,
        body: &[u8],
    ) -> Vec<u8> {
        let mut datagram = self.datagram(msg_type, version, nonce, body);
        datagram[jvpn_common::abi::TAG_OFFSET] ^= 0x01;
        datagram
    }
}

/// The mac1 key tests load a bare dataplane with (`DataplaneOptions::handshake.mac1_key`).
pub const TEST_MAC1_KEY: [u8; 16] = [0x4d; 16];

/// A HELLO datagram of the exact length: header with session 0, version 0, nonce 0, tag 0, `noise`
/// repeated as its Noise bytes, and mac1 under [`TEST_MAC1_KEY`].
pub fn hello(noise: &[u8]) -> Vec<u8> {
    let mut hello = HelloMessage::from_bytes(&[0; HELLO_LEN]).expect("a HELLO's length");
    hello.header = WireHeader::new(MessageType::Hello, 0, 0, 0);
    for (b, n) in hello.noise.iter_mut().zip(noise.iter().cycle()) {
        *b = *n;
    }
    hello.seal_mac1(SipKey::from_bytes(&TEST_MAC1_KEY));
    hello.as_bytes().to_vec()
}
