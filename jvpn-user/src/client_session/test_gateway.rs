//! The gateway side of the protocol for the client's tests, built from the real gateway-side
//! crypto (`GatewayHandshake`, `seal_message` gateway-to-client, `open_message` client-to-gateway).
//!
//! It holds what a gateway holds for one session (keys, session id, version, its nonce counter and
//! the client's replay window) and seals exactly what the gateway sends; the tests choose versions
//! and attempts to drive the client core into each case. It is not a gateway: no store, no state
//! machine, no XDP.

use crate::crypto::handshake::tai64n;
use crate::crypto::{
    open_body, open_message, seal_body, seal_message, ClientAdmission, ClientHandshake,
    ClientIdentity, Direction, GatewayHandshake, PresharedKey, PrivateKey, SessionKeys,
};
use jvpn_common::control::{Body, Tai64N, WelcomePayload, DEFAULT_TUNNEL_MTU};
use jvpn_common::replay::{Leap, ReplayWindow};
use jvpn_common::wire::{Be16, Be64, MessageType, WireHeader};
use std::time::SystemTime;

/// The session id the test gateway hands out.
pub(crate) const TEST_SESSION: u64 = 0x7e57_0000_5e55_1011;
/// The keepalive interval the test gateway announces, in seconds.
pub(crate) const TEST_KEEPALIVE_SECS: u16 = 15;

/// One gateway, one client key, at most one session.
pub(crate) struct TestGateway {
    private_key: PrivateKey,
    client: ClientIdentity,
    keys: Option<SessionKeys>,
    /// The session's state_version as this gateway holds it.
    pub version: u64,
    /// The next gateway-to-client nonce (boot epoch 1, as `(epoch << 40) | counter`).
    next_nonce: u64,
    client_nonces: ReplayWindow,
    /// The newest HELLO timestamp read; an older or equal one is refused as a replay.
    last_timestamp: Option<Tai64N>,
    /// The slot hint of the messages it seals (the session's slot in its XDP table).
    pub slot: Option<u32>,
}

impl TestGateway {
    /// A gateway and an authorised client identity for it.
    pub(crate) fn new() -> Self {
        let private_key = PrivateKey::generate();
        let client = ClientIdentity {
            private_key: PrivateKey::generate(),
            gateway_public_key: private_key.public_key(),
            psk: PresharedKey::generate(),
        };
        Self {
            private_key,
            client,
            keys: None,
            version: 0,
            next_nonce: (1 << 40) | 1,
            // Unbounded, unlike the XDP program's window: tests jump the client's nonce
            // (`set_next_nonce_for_test`); the leap rule is tested in jvpn-common and xdp_reflection.
            client_nonces: ReplayWindow::new(Leap::Unbounded),
            last_timestamp: None,
            slot: None,
        }
    }

    /// What the client needs to start a handshake with this gateway.
    pub(crate) fn client_identity(&self) -> ClientIdentity {
        self.client.clone()
    }

    /// Reads a HELLO and answers WELCOME: BIRTH(0) -> ATTACHED(1).
    pub(crate) fn accept_hello(&mut self, hello: &[u8]) -> Vec<u8> {
        self.accept_hello_at(hello, 1)
    }

    /// Reads a HELLO and answers WELCOME with its header at `version` (1 unless a test needs a
    /// gateway that breaks the protocol).
    pub(crate) fn accept_hello_at(&mut self, hello: &[u8], version: u64) -> Vec<u8> {
        let handshake = self.read_hello(hello);
        let welcome = WelcomePayload {
            session_id: Be64::new(TEST_SESSION),
            ipv4: [10, 77, 0, 2],
            ipv4_prefix_len: 24,
            ipv6_prefix_len: 0,
            tunnel_mtu: Be16::new(DEFAULT_TUNNEL_MTU),
            ipv6: [0; 16],
            keepalive_interval_secs: Be16::new(TEST_KEEPALIVE_SECS),
            reserved: [0; 6],
        };
        self.version = version;
        let nonce = self.take_nonce();
        let header = WireHeader::new(MessageType::Welcome, TEST_SESSION, version, nonce);
        let accepted = handshake.accept(header, &welcome).expect("WELCOME seals");
        self.keys = Some(accepted.keys);
        self.client_nonces = ReplayWindow::new(Leap::Unbounded);
        accepted.datagram
    }

    /// Reads a HELLO without answering it (a lost WELCOME); its timestamp becomes the newest.
    pub(crate) fn ignore_hello(&mut self, hello: &[u8]) {
        self.read_hello(hello);
    }

    /// Reads a HELLO as a gateway does, refusing a timestamp not newer than the last one read.
    fn read_hello(&mut self, hello: &[u8]) -> GatewayHandshake {
        let expected = self.client.private_key.public_key();
        let admission = ClientAdmission {
            psk: self.client.psk.clone(),
            last_timestamp: self.last_timestamp,
        };
        let handshake = GatewayHandshake::read_hello(&self.private_key, hello, |key| {
            (*key == expected).then_some(admission)
        })
        .expect("the test client's HELLO is valid and newer than the last one");
        self.last_timestamp = Some(handshake.timestamp());
        handshake
    }

    /// A client session established with this gateway, as the client core starts from it.
    pub(crate) fn handshake(&mut self) -> crate::crypto::ClientSession {
        let (mut client, hello) =
            ClientHandshake::start(&self.client, tai64n(SystemTime::now())).expect("HELLO");
        let welcome = self.accept_hello(&hello);
        client.finish(&welcome).expect("WELCOME opens")
    }

    fn keys(&self) -> &SessionKeys {
        self.keys
            .as_ref()
            .expect("no session yet: run the handshake first")
    }

    fn take_nonce(&mut self) -> u64 {
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        nonce
    }

    /// A sealed gateway-to-client message of `message_type` at `version` with a raw body.
    pub(crate) fn seal_raw(
        &mut self,
        message_type: MessageType,
        version: u64,
        body: &[u8],
    ) -> Vec<u8> {
        let mut header = WireHeader::new(message_type, TEST_SESSION, version, self.take_nonce());
        header.set_hinted_slot(self.slot);
        seal_message(self.keys(), Direction::GatewayToClient, header, body).expect("seals")
    }

    /// A sealed gateway-to-client control message at `version`.
    pub(crate) fn seal<B: Body>(&mut self, version: u64, body: &B) -> Vec<u8> {
        let mut header = WireHeader::new(B::MESSAGE_TYPE, TEST_SESSION, version, self.take_nonce());
        header.set_hinted_slot(self.slot);
        seal_body(self.keys(), Direction::GatewayToClient, header, body).expect("seals")
    }

    /// Opens a client message as the gateway does: seal, then the client's replay window.
    pub(crate) fn open(&self, datagram: &[u8]) -> (WireHeader, Vec<u8>) {
        let (header, body) = open_message(self.keys(), Direction::ClientToGateway, datagram)
            .expect("the client's message opens under the session keys");
        self.client_nonces
            .check_and_record(header.nonce.get())
            .expect("the client never repeats a nonce");
        (header, body)
    }

    /// Answers a REKEY_INIT as the gateway does (docs/rekey.md): the exchange under the current
    /// keys, version +1, a REKEY_ACK sealed under the keys of the REKEY_INIT; then the new keys.
    pub(crate) fn rekey(&mut self, init: &[u8]) -> Vec<u8> {
        let (header, body) = self.open_control::<jvpn_common::control::RekeyInit>(init);
        let (new_keys, noise) = crate::crypto::rekey::respond(
            self.keys(),
            TEST_SESSION,
            header.state_version.get(),
            &body.noise,
        )
        .expect("the REKEY_INIT's exchange verifies");
        self.version += 1;
        let ack = jvpn_common::control::RekeyAck {
            new_version: jvpn_common::wire::Be64::new(self.version),
            noise,
        };
        let datagram = self.seal(self.version, &ack);
        self.keys = Some(new_keys);
        datagram
    }

    /// Opens a client control message of type `B`.
    pub(crate) fn open_control<B: Body>(&self, datagram: &[u8]) -> (WireHeader, B) {
        let (header, body) = open_body::<B>(self.keys(), Direction::ClientToGateway, datagram)
            .expect("the client's control message opens");
        self.client_nonces
            .check_and_record(header.nonce.get())
            .expect("the client never repeats a nonce");
        (header, body)
    }
}
