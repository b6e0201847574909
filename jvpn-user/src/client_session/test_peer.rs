//! A minimal gateway peer on a loopback UDP socket, for the driver's tests.
//!
//! It puts [`TestGateway`]'s real protocol code behind a socket: it answers HELLO with WELCOME,
//! REATTACH_REQUEST with a PATH_CHALLENGE to the request's source, a PATH_RESPONSE that returns
//! the token from that source with the move of the binding and a REATTACH_ACK, and echoes DATA
//! that comes from the bound transport at the current version (what the XDP program would pass)
//! back to the binding. It reports every datagram it saw. It is a test peer, not a gateway: one
//! session, no store, no state machine, no XDP; the real daemon's end-to-end tests are elsewhere.

use super::test_gateway::TestGateway;
use crate::crypto::ClientIdentity;
use jvpn_common::control::{
    Body, PathChallenge, PathResponse, ReattachAck, ReattachRequest, Reject,
};
use jvpn_common::wire::{Be64, MessageType, WireHeader};
use jvpn_common::{RejectReason, TransportBinding};
use std::net::SocketAddr;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// How the peer answers a REATTACH_REQUEST.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ReattachAnswer {
    /// With a PATH_CHALLENGE, as the protocol says.
    Challenge,
    /// Not at all (lost on the new uplink).
    Ignore,
    /// With a REJECT for this reason.
    Reject(RejectReason),
    /// With a REJECT(DUPLICATE_NONCE) of the request (what the gateway sends when a copy of it
    /// is replayed from the bound transport), then with a PATH_CHALLENGE.
    ReplayNoticeThenChallenge,
}

/// What the peer does.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Behaviour {
    /// How many HELLOs to read without answering, before answering.
    pub drop_hellos: usize,
    /// How to answer REATTACH_REQUEST.
    pub reattach: ReattachAnswer,
}

impl Default for Behaviour {
    fn default() -> Self {
        Self {
            drop_hellos: 0,
            reattach: ReattachAnswer::Challenge,
        }
    }
}

/// One datagram the peer received.
#[derive(Clone, Debug)]
pub(crate) struct Seen {
    /// Its type.
    pub message: MessageType,
    /// Its source.
    pub from: SocketAddr,
    /// Its header's state_version.
    pub version: u64,
    /// Its opened body (empty for HELLO).
    pub body: Vec<u8>,
    /// Whether the peer answered it.
    pub answered: bool,
}

/// A running peer; stopped when dropped.
pub(crate) struct TestPeer {
    /// Where it listens.
    pub address: SocketAddr,
    /// The client identity it authorises.
    pub identity: ClientIdentity,
    seen: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
}

impl TestPeer {
    /// Starts a peer on 127.0.0.1.
    pub(crate) async fn start(behaviour: Behaviour) -> Self {
        Self::start_on("127.0.0.1:0".parse().expect("an address"), behaviour).await
    }

    /// Starts a peer on `address`.
    pub(crate) async fn start_on(address: SocketAddr, behaviour: Behaviour) -> Self {
        let socket = UdpSocket::bind(address).await.expect("bind the peer");
        let address = socket.local_addr().expect("peer address");
        let gateway = TestGateway::new();
        let identity = gateway.client_identity();
        let (report, seen) = mpsc::unbounded_channel();
        let task = tokio::spawn(serve(socket, gateway, behaviour, report));
        Self {
            address,
            identity,
            seen,
            task,
        }
    }

    /// The next datagram of type `message` the peer saw, skipping others.
    pub(crate) async fn next(&mut self, message: MessageType) -> Seen {
        loop {
            let seen = self
                .seen
                .recv()
                .await
                .expect("the test peer stopped: it panicked (see above)");
            if seen.message == message {
                return seen;
            }
        }
    }
}

impl Drop for TestPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    socket: UdpSocket,
    mut gateway: TestGateway,
    behaviour: Behaviour,
    report: mpsc::UnboundedSender<Seen>,
) {
    let mut buffer = vec![0u8; u16::MAX as usize];
    let mut binding: Option<SocketAddr> = None;
    let mut challenge: Option<([u8; 32], u64, SocketAddr)> = None;
    let mut hellos_dropped = 0;
    loop {
        let (len, from) = socket.recv_from(&mut buffer).await.expect("peer receive");
        let datagram = &buffer[..len];
        let header = WireHeader::parse(datagram).expect("the client sends valid headers");
        let message = header.message_type().expect("validated");
        let mut reply = None;
        let body = match message {
            MessageType::Hello if hellos_dropped < behaviour.drop_hellos => {
                hellos_dropped += 1;
                gateway.ignore_hello(datagram);
                Vec::new()
            }
            MessageType::Hello => {
                binding = Some(from);
                reply = Some(gateway.accept_hello(datagram));
                Vec::new()
            }
            MessageType::ReattachRequest => {
                let (header, request) = gateway.open_control::<ReattachRequest>(datagram);
                let version = gateway.version;
                reply = match behaviour.reattach {
                    ReattachAnswer::Ignore => None,
                    ReattachAnswer::Reject(reason) => {
                        let reject = Reject::new(reason, version, header.nonce.get());
                        Some(gateway.seal(version, &reject))
                    }
                    ReattachAnswer::Challenge | ReattachAnswer::ReplayNoticeThenChallenge => {
                        if let ReattachAnswer::ReplayNoticeThenChallenge = behaviour.reattach {
                            let notice = Reject::new(
                                RejectReason::DuplicateNonce,
                                version,
                                header.nonce.get(),
                            );
                            let notice = gateway.seal(version, &notice);
                            socket.send_to(&notice, from).await.expect("peer send");
                        }
                        let token: [u8; 32] = rand::random();
                        challenge = Some((token, request.attempt.get(), from));
                        let body = PathChallenge {
                            token,
                            attempt: request.attempt,
                        };
                        Some(gateway.seal(version, &body))
                    }
                };
                request.as_body().to_vec()
            }
            MessageType::PathResponse => {
                let (_, response) = gateway.open_control::<PathResponse>(datagram);
                let expected = challenge
                    .take()
                    .expect("a PATH_RESPONSE answers a challenge");
                assert_eq!(
                    (response.token, response.attempt.get(), from),
                    expected,
                    "the response returns the token of its attempt from the challenged address"
                );
                gateway.version += 1;
                binding = Some(from);
                let ack = ReattachAck {
                    new_version: Be64::new(gateway.version),
                    binding: TransportBinding::from_socket_addr(from),
                };
                reply = Some(gateway.seal(gateway.version, &ack));
                response.as_body().to_vec()
            }
            MessageType::Data => {
                let (header, packet) = gateway.open(datagram);
                if binding == Some(from) && header.state_version.get() == gateway.version {
                    reply = Some(gateway.seal_raw(MessageType::Data, gateway.version, &packet));
                }
                packet
            }
            MessageType::Keepalive | MessageType::Terminate => gateway.open(datagram).1,
            other => panic!("the client sent a {other:?}"),
        };
        let answered = reply.is_some();
        if let Some(reply) = reply {
            socket.send_to(&reply, from).await.expect("peer send");
        }
        let seen = Seen {
            message,
            from,
            version: header.state_version.get(),
            body,
            answered,
        };
        if report.send(seen).is_err() {
            return;
        }
    }
}
