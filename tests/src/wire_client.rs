//! A test client that speaks the wire protocol by hand, with the real handshake and sealing code
//! (`jvpn_user::crypto`), so tests can also send what a correct client never would: stale claims,
//! replays, messages from a socket the session is not bound to.

use jvpn_common::control::{
    Body, PathChallenge, PathResponse, ReattachAck, ReattachRequest, Reject, Terminate,
    TerminateCause,
};
use jvpn_common::wire::Be64;
use jvpn_common::{MessageType, WireHeader};
use jvpn_user::crypto::{
    handshake::tai64n, open_message, seal_message, ClientHandshake, ClientIdentity, Direction,
    SessionKeys,
};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, SystemTime};

/// Upper bound on waiting for a reply that must come; a failure bound, not a sleep.
pub const PATIENCE: Duration = Duration::from_secs(5);

/// A session as the test client holds it.
pub struct WireClient {
    /// The session id.
    pub id: u64,
    /// The session keys.
    pub keys: SessionKeys,
    /// The latest acknowledged version.
    pub acked: u64,
    /// The next client-to-gateway nonce.
    pub next_nonce: u64,
    /// Where the gateway is.
    pub gateway: SocketAddr,
}

/// A gateway reply, opened.
#[derive(Debug)]
pub struct Reply {
    /// Its header.
    pub header: WireHeader,
    /// Its decrypted body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The message type.
    pub fn kind(&self) -> MessageType {
        self.header.message_type().expect("a valid header")
    }

    /// The body as `B`, asserting the type.
    pub fn body<B: Body>(&self) -> B {
        assert_eq!(self.kind(), B::MESSAGE_TYPE, "unexpected reply {self:?}");
        B::from_body(&self.body).expect("a well-formed body")
    }
}

/// A UDP socket in the current namespace, bound to `local`, with a receive timeout.
pub fn socket(local: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind(local).unwrap_or_else(|e| panic!("binding {local}: {e}"));
    s.set_read_timeout(Some(PATIENCE)).expect("read timeout");
    s
}

impl WireClient {
    /// Runs the handshake from `socket` to `gateway`.
    pub fn handshake(identity: &ClientIdentity, socket: &UdpSocket, gateway: SocketAddr) -> Self {
        let (mut handshake, hello) =
            ClientHandshake::start(identity, tai64n(SystemTime::now())).expect("HELLO");
        socket.send_to(&hello, gateway).expect("send HELLO");
        let welcome = receive_raw(socket, "WELCOME");
        let session = handshake.finish(&welcome).expect("a valid WELCOME");
        Self {
            id: session.header.session_id.get(),
            acked: session.header.state_version.get(),
            keys: session.keys,
            next_nonce: 1,
            gateway,
        }
    }

    /// Seals a message of `msg_type` claiming `version` with the next nonce.
    pub fn seal(&mut self, msg_type: MessageType, version: u64, body: &[u8]) -> Vec<u8> {
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        let header = WireHeader::new(msg_type, self.id, version, nonce);
        seal_message(&self.keys, Direction::ClientToGateway, header, body).expect("seal")
    }

    /// A DATA message at the acknowledged version.
    pub fn data(&mut self, payload: &[u8]) -> Vec<u8> {
        self.seal(MessageType::Data, self.acked, payload)
    }

    /// A REATTACH_REQUEST claiming `version`.
    pub fn reattach_request(&mut self, version: u64, attempt: u64) -> Vec<u8> {
        let body = ReattachRequest {
            acked_version: Be64::new(version),
            attempt: Be64::new(attempt),
        };
        self.seal(MessageType::ReattachRequest, version, body.as_body())
    }

    /// The PATH_RESPONSE to `challenge`, carrying its version.
    pub fn path_response(&mut self, challenge: &Reply) -> Vec<u8> {
        let body = PathResponse::answering(&challenge.body::<PathChallenge>());
        self.seal(
            MessageType::PathResponse,
            challenge.header.state_version.get(),
            body.as_body(),
        )
    }

    /// A TERMINATE.
    pub fn terminate(&mut self) -> Vec<u8> {
        let body = Terminate::new(TerminateCause::ClientClosed);
        self.seal(MessageType::Terminate, self.acked, body.as_body())
    }

    /// Receives and opens one gateway message on `socket`.
    pub fn receive(&self, socket: &UdpSocket, what: &str) -> Reply {
        let datagram = receive_raw(socket, what);
        let (header, body) = open_message(&self.keys, Direction::GatewayToClient, &datagram)
            .unwrap_or_else(|e| panic!("{what}: the gateway's reply does not open: {e}"));
        Reply { header, body }
    }

    /// The whole jump from `socket`: request, challenge, response, ACK. Returns the new version.
    pub fn jump(&mut self, socket: &UdpSocket) -> u64 {
        let request = self.reattach_request(self.acked, 1);
        socket
            .send_to(&request, self.gateway)
            .expect("send REATTACH_REQUEST");
        let challenge = self.receive(socket, "PATH_CHALLENGE");
        assert_eq!(
            challenge.kind(),
            MessageType::PathChallenge,
            "{challenge:?}"
        );
        let response = self.path_response(&challenge);
        socket
            .send_to(&response, self.gateway)
            .expect("send PATH_RESPONSE");
        let ack = self.receive(socket, "REATTACH_ACK");
        let new_version = ack.body::<ReattachAck>().new_version.get();
        assert_eq!(new_version, challenge.header.state_version.get() + 1);
        self.acked = new_version;
        new_version
    }
}

/// A fresh HELLO of `identity` (timestamped now), for tests that send, withhold or replay it.
pub fn hello(identity: &ClientIdentity) -> Vec<u8> {
    ClientHandshake::start(identity, tai64n(SystemTime::now()))
        .expect("HELLO")
        .1
}

/// Whether `reply` is a REJECT, and its body.
pub fn as_reject(reply: &Reply) -> Option<Reject> {
    (reply.kind() == MessageType::Reject).then(|| reply.body::<Reject>())
}

/// Receives one datagram or panics naming what was awaited.
pub fn receive_raw(socket: &UdpSocket, what: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let len = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
    buf.truncate(len);
    buf
}

/// Asserts nothing arrives on `socket` within `wait` (used only where a reply must NOT come).
pub fn assert_silent(socket: &UdpSocket, wait: Duration, what: &str) {
    socket.set_read_timeout(Some(wait)).expect("read timeout");
    let mut buf = [0u8; 2048];
    if let Ok(len) = socket.recv(&mut buf) {
        panic!("{what}: expected no reply, got {len} bytes");
    }
    socket
        .set_read_timeout(Some(PATIENCE))
        .expect("read timeout");
}
