//! A test client that speaks the wire protocol by hand, with the real handshake and sealing code
//! (`jvpn_user::crypto`), so tests can also send what a correct client never would: stale claims,
//! replays, messages from a socket the session is not bound to.

use jvpn_common::control::{
    Body, PathChallenge, PathResponse, ReattachAck, ReattachRequest, Reject, Terminate,
    TerminateCause,
};
use jvpn_common::wire::Be64;
use jvpn_common::{MessageType, RejectReason, WireHeader};
use jvpn_user::crypto::{
    handshake::tai64n, open_message, seal_message, ClientHandshake, ClientIdentity, Direction,
    SessionKeys,
};
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime};

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

/// What a bounded wait for one gateway message on a socket got.
#[derive(Debug)]
pub enum Received {
    /// A message of this session, opened.
    Reply(Reply),
    /// A datagram that does not open under this session's keys (e.g. a late one of a session
    /// this socket held before).
    Unopenable,
    /// Nothing before the deadline.
    Timeout,
}

/// How a jump that may meet a vanished or restarting gateway ended. Only `Acked` changes what
/// the client holds.
#[derive(Debug, PartialEq, Eq)]
pub enum JumpOutcome {
    /// The gateway acknowledged `version` with the session bound to `binding`.
    Acked {
        /// The acknowledged version, now the client's.
        version: u64,
        /// The binding the REATTACH_ACK names.
        binding: SocketAddr,
    },
    /// No acknowledgement in time (the gateway is down, restarting or slow): nothing is known.
    NoAnswer,
    /// A REJECT at a version the client knows, e.g. a lost race: try again.
    Refused(Option<RejectReason>),
    /// A REJECT from a gateway ahead of every version this client was told of: the session is
    /// ambiguous to the client, which must fail closed (spec sections 5, 10) and handshake anew.
    Ahead {
        /// The refusal's reason.
        reason: Option<RejectReason>,
        /// The version the gateway holds.
        gateway_version: u64,
    },
}

impl WireClient {
    /// The handshake from `socket`, bounded by `patience`: `None` if no WELCOME to this HELLO
    /// came in time (the gateway is down, or the session it made was not announced).
    pub fn try_handshake(
        identity: &ClientIdentity,
        socket: &UdpSocket,
        gateway: SocketAddr,
        patience: Duration,
    ) -> Option<Self> {
        let deadline = Instant::now() + patience;
        drain(socket);
        let (mut handshake, hello) =
            ClientHandshake::start(identity, tai64n(SystemTime::now())).expect("HELLO");
        socket.send_to(&hello, gateway).ok()?;
        loop {
            let datagram = receive_until(socket, deadline)?;
            match handshake.finish(&datagram) {
                Ok(session) => {
                    return Some(Self {
                        id: session.header.session_id.get(),
                        acked: session.header.state_version.get(),
                        keys: session.keys,
                        next_nonce: 1,
                        gateway,
                    })
                }
                Err(_) if handshake.is_spent() => return None,
                Err(_) => {}
            }
        }
    }

    /// Waits until `deadline` for one gateway message on `socket`.
    pub fn try_receive(&self, socket: &UdpSocket, deadline: Instant) -> Received {
        let Some(datagram) = receive_until(socket, deadline) else {
            return Received::Timeout;
        };
        match open_message(&self.keys, Direction::GatewayToClient, &datagram) {
            Ok((header, body)) => Received::Reply(Reply { header, body }),
            Err(_) => Received::Unopenable,
        }
    }

    /// The whole jump from `socket` as reattempt `attempt`, as a client facing a gateway that
    /// may vanish would make it: every wait bounded by `patience`, late or stale messages
    /// skipped, and the acknowledged version changed only by an ACK this client may accept
    /// (docs/protocol.md, "Reattach", step 5; an idempotent ACK of the current version too).
    pub fn try_jump(
        &mut self,
        socket: &UdpSocket,
        attempt: u64,
        patience: Duration,
    ) -> JumpOutcome {
        let deadline = Instant::now() + patience;
        let request = self.reattach_request(self.acked, attempt);
        if socket.send_to(&request, self.gateway).is_err() {
            return JumpOutcome::NoAnswer;
        }
        let mut challenged = None;
        loop {
            let reply = match self.try_receive(socket, deadline) {
                Received::Reply(reply) => reply,
                Received::Unopenable => continue,
                Received::Timeout => return JumpOutcome::NoAnswer,
            };
            let version = reply.header.state_version.get();
            match reply.header.message_type() {
                Some(MessageType::PathChallenge) => {
                    let body = reply.body::<PathChallenge>();
                    // A challenge may carry acked + 1 when the gateway moved the session to
                    // RECOVERING meanwhile; one of an earlier attempt is stale.
                    let fresh = version == self.acked || version == self.acked + 1;
                    if body.attempt.get() != attempt || !fresh {
                        continue;
                    }
                    let response = self.path_response(&reply);
                    if socket.send_to(&response, self.gateway).is_err() {
                        return JumpOutcome::NoAnswer;
                    }
                    challenged = Some(version);
                }
                Some(MessageType::ReattachAck) => {
                    let ack = reply.body::<ReattachAck>();
                    let new = ack.new_version.get();
                    // The current version (already bound here), the one after it (this or an
                    // earlier attempt of this version), or the one after this challenge.
                    let acceptable = new == self.acked
                        || new == self.acked + 1
                        || challenged.is_some_and(|c| new == c + 1);
                    if acceptable {
                        self.acked = new;
                        return JumpOutcome::Acked {
                            version: new,
                            binding: ack.binding.to_socket_addr(),
                        };
                    }
                    if new > self.acked {
                        return JumpOutcome::Ahead {
                            reason: None,
                            gateway_version: new,
                        };
                    }
                }
                Some(MessageType::Reject) => {
                    let reject = reply.body::<Reject>();
                    let gateway_version = reject.gateway_version.get();
                    let known = challenged.unwrap_or(self.acked).max(self.acked);
                    if gateway_version > known {
                        return JumpOutcome::Ahead {
                            reason: reject.reason(),
                            gateway_version,
                        };
                    }
                    if gateway_version >= self.acked {
                        return JumpOutcome::Refused(reject.reason());
                    }
                }
                _ => {}
            }
        }
    }
}

/// Discards every datagram already queued on `socket`.
pub fn drain(socket: &UdpSocket) {
    socket.set_nonblocking(true).expect("non-blocking");
    let mut buf = [0u8; 2048];
    while socket.recv(&mut buf).is_ok() {}
    socket.set_nonblocking(false).expect("blocking");
}

/// One datagram on `socket` before `deadline`, or `None`.
fn receive_until(socket: &UdpSocket, deadline: Instant) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        socket.set_read_timeout(Some(left)).expect("read timeout");
        match socket.recv(&mut buf) {
            Ok(len) => {
                buf.truncate(len);
                return Some(buf);
            }
            Err(e) => match e.kind() {
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => return None,
                // An ICMP error an earlier send earned while the gateway was down, or a signal
                // (a CLI child of the test exited): keep waiting.
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::Interrupted => {}
                _ => panic!("receiving on {:?}: {e}", socket.local_addr()),
            },
        }
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
