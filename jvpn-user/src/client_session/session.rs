//! The client's session, sans-IO: what it seals ([`outgoing`]) and how it judges what the gateway
//! sends.
//!
//! [`ClientSessionState`] starts from a finished handshake (session id, keys, the WELCOME at
//! version 1) and owns everything the client must remember about the session: the acknowledged
//! state_version, the client-to-gateway nonce counter (from 1; HELLO carried nonce 0 and is not
//! sealed), the replay window of gateway-to-client nonces (the WELCOME's nonce is its first entry),
//! and the reattach in progress. It does no I/O and reads no clock.
//!
//! [`ClientSessionState::handle`] checks a datagram in this order and stops at the first refusal:
//! header rules and session id, header tag and AEAD seal, body layout, replay window, then the
//! version rules of [`super::versions`]. Nothing is recorded before the seal has opened, so a forged
//! datagram changes nothing. An authenticated message that contradicts the session fails closed:
//! the core closes itself, returns [`SessionRefusal::Ambiguous`], and refuses everything after.
//!
//! A client the gateway no longer knows finds out and starts a new handshake (spec section 6
//! forbids the silent retry): a sealed REJECT TERMINATED (the gateway still holds the session's
//! keys) closes the core at once; without keys the gateway cannot answer at all, so after
//! [`UNANSWERED_REATTACH_LIMIT`] REATTACH_REQUESTs in a row with no fresh authenticated gateway
//! message between them the core closes itself ([`Closed::Unanswered`]). Both closures are fatal
//! ([`SessionRefusal::is_fatal`]): the driver's way out is a new handshake.

use super::body::GatewayMessage;
use super::event::ClientEvent;
use super::refusal::{Closed, SessionRefusal};
use super::versions::{judge, PendingReattach, VersionView};
use crate::crypto::{ClientSession, SealError, SessionKeys};
use jvpn_common::control::{PathResponse, WelcomePayload};
use jvpn_common::replay::{Leap, ReplayWindow};
use jvpn_common::wire::WireHeader;

/// REATTACH_REQUESTs in a row without a fresh authenticated gateway message after which the core
/// closes itself: two whole jumps of the default driver (`ConnectOptions::reattach_attempts`,
/// about 12 s each). A gateway that knows the session answers the first request of a jump that
/// reaches it; one that does not (restarted without its state, or the session evicted) never
/// can, and retrying forever would keep the client off the network.
pub const UNANSWERED_REATTACH_LIMIT: u64 = 12;

/// A copy of everything the core decides with, for logs, tests and status output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientSnapshot {
    /// The session id.
    pub session_id: u64,
    /// The latest acknowledged state_version.
    pub acked_version: u64,
    /// The nonce the next sealed message will carry.
    pub next_nonce: u64,
    /// The highest gateway nonce accepted so far.
    pub newest_gateway_nonce: u64,
    /// The latest reattach attempt number sent (0: none yet).
    pub latest_attempt: u64,
    /// The reattach in progress.
    pub pending: Option<PendingReattach>,
    /// REATTACH_REQUESTs sent since the last fresh authenticated gateway message.
    pub unanswered_reattaches: u64,
    /// Why the core is closed, if it is.
    pub closed: Option<Closed>,
}

/// What [`ClientSessionState::handle_in_place`] made of an accepted datagram.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled<'a> {
    /// DATA: the IP packet for the tunnel device, inside the datagram's buffer.
    Packet(&'a [u8]),
    /// Anything else.
    Event(ClientEvent),
}

/// The client side of one session, without sockets, TUN or timers.
pub struct ClientSessionState {
    session_id: u64,
    keys: SessionKeys,
    welcome: WelcomePayload,
    acked_version: u64,
    next_nonce: u64,
    gateway_nonces: ReplayWindow,
    latest_attempt: u64,
    pending: Option<PendingReattach>,
    /// REATTACH_REQUESTs sent since the last fresh authenticated gateway message.
    unanswered_reattaches: u64,
    closed: Option<Closed>,
    /// Rekeys in flight and the overlap of the previous keys ([`rekey`]).
    rekey: rekey::KeyRotation,
    /// The slot hint every message carries: the gateway node's slot of the session, as the last
    /// accepted gateway message that named one said (`docs/protocol.md`, "Slot hint").
    slot_hint: Option<u32>,
}

impl ClientSessionState {
    /// The session a finished handshake opened. The WELCOME must carry version 1 (BIRTH 0, then
    /// ATTACHED 1); its nonce is the first gateway nonce of the replay window.
    pub fn new(session: ClientSession) -> Result<Self, SessionRefusal> {
        let version = session.header.state_version.get();
        if version != 1 {
            return Err(SessionRefusal::WelcomeVersion(version));
        }
        // Unbounded: a restarted gateway's nonces start at its new boot epoch (2^40 higher).
        let gateway_nonces = ReplayWindow::new(Leap::Unbounded);
        gateway_nonces
            .check_and_record(session.header.nonce.get())
            .map_err(|reason| SessionRefusal::Replayed {
                nonce: session.header.nonce.get(),
                reason,
            })?;
        Ok(Self {
            session_id: session.header.session_id.get(),
            keys: session.keys,
            welcome: session.welcome,
            acked_version: version,
            next_nonce: 1,
            gateway_nonces,
            latest_attempt: 0,
            pending: None,
            unanswered_reattaches: 0,
            closed: None,
            rekey: rekey::KeyRotation::new(1),
            slot_hint: session.header.hinted_slot(),
        })
    }

    /// The session id.
    pub fn session_id(&self) -> u64 {
        self.session_id
    }

    /// The latest state_version the gateway acknowledged.
    pub fn acked_version(&self) -> u64 {
        self.acked_version
    }

    /// The authenticated WELCOME payload: tunnel addresses, MTU, keepalive interval.
    pub fn welcome(&self) -> &WelcomePayload {
        &self.welcome
    }

    /// The reattach in progress, if any.
    pub fn pending_reattach(&self) -> Option<PendingReattach> {
        self.pending
    }

    /// Why the core is closed, if it is.
    pub fn closed(&self) -> Option<Closed> {
        self.closed
    }

    /// Everything the core decides with.
    pub fn snapshot(&self) -> ClientSnapshot {
        ClientSnapshot {
            session_id: self.session_id,
            acked_version: self.acked_version,
            next_nonce: self.next_nonce,
            newest_gateway_nonce: self.gateway_nonces.max(),
            latest_attempt: self.latest_attempt,
            pending: self.pending,
            unanswered_reattaches: self.unanswered_reattaches,
            closed: self.closed,
        }
    }

    /// Judges one datagram from the gateway; see the module documentation for the order of the
    /// checks. A refusal that [`SessionRefusal::is_fatal`] leaves the core closed.
    pub fn handle(&mut self, datagram: &[u8]) -> Result<ClientEvent, SessionRefusal> {
        let mut copy = datagram.to_vec();
        Ok(match self.handle_in_place(&mut copy)? {
            Handled::Packet(packet) => ClientEvent::Data(packet.to_vec()),
            Handled::Event(event) => event,
        })
    }

    /// [`Self::handle`] without a copy: the datagram is opened where it lies, and a DATA packet
    /// is handed out inside it. On a refusal the buffer's contents are unspecified.
    pub fn handle_in_place<'a>(
        &mut self,
        datagram: &'a mut [u8],
    ) -> Result<Handled<'a>, SessionRefusal> {
        self.ensure_open()?;
        let header = WireHeader::parse(datagram)
            .map_err(|e| SessionRefusal::Malformed(SealError::Header(e)))?;
        if header.session_id.get() != self.session_id {
            return Err(SessionRefusal::WrongSession {
                expected: self.session_id,
                got: header.session_id.get(),
            });
        }
        let rekey::Opened {
            header,
            body,
            under_previous,
        } = self.open_either(datagram)?;
        let message_type = header
            .message_type()
            .expect("open_in_place validated the header");
        let message = GatewayMessage::decode(message_type, body)?;
        let nonce = header.nonce.get();
        self.gateway_nonces
            .check_and_record(nonce)
            .map_err(|reason| SessionRefusal::Replayed { nonce, reason })?;
        // Authentic and fresh (a replayed answer does not count): the gateway knows the session.
        self.unanswered_reattaches = 0;
        let version = header.state_version.get();
        if under_previous {
            return self.accept_under_previous(version, message);
        }
        let view = VersionView {
            acked: self.acked_version,
            pending: self.pending,
        };
        if let Err(refusal) = judge(view, version, &message) {
            if let SessionRefusal::Ambiguous(ambiguity) = refusal {
                self.closed = Some(Closed::Ambiguous(ambiguity));
            }
            return Err(refusal);
        }
        self.current_keys_heard();
        // Echo the gateway's slot. A REATTACH_ACK may come from another node (a takeover), so
        // its hint replaces ours even when it names none; the others only teach one. A hint is
        // only a shortcut for the gateway's XDP program: a stale one costs time, not a packet.
        let hint = header.hinted_slot();
        if hint.is_some() || matches!(message, GatewayMessage::ReattachAck(_)) {
            self.slot_hint = hint;
        }
        self.apply(version, message)
    }

    /// Acts on a message whose version the rules accepted.
    fn apply<'a>(
        &mut self,
        version: u64,
        message: GatewayMessage<'a>,
    ) -> Result<Handled<'a>, SessionRefusal> {
        Ok(Handled::Event(match message {
            GatewayMessage::Data(packet) => return Ok(Handled::Packet(packet)),
            GatewayMessage::Keepalive => ClientEvent::Keepalive,
            GatewayMessage::PathChallenge(challenge) => {
                let response = self.seal_control(version, &PathResponse::answering(&challenge))?;
                // With nothing pending, the rules accept only the gateway's own challenge, which
                // starts a reattach to where it arrived.
                let pending = self.pending.get_or_insert(PendingReattach {
                    attempt: challenge.attempt.get(),
                    challenged_version: None,
                });
                pending.challenged_version = Some(version);
                ClientEvent::PathChallenge {
                    response,
                    version,
                    attempt: challenge.attempt.get(),
                }
            }
            GatewayMessage::ReattachAck(ack) => {
                self.acked_version = version;
                self.pending = None;
                ClientEvent::ReattachAcked {
                    new_version: version,
                    binding: ack.binding.to_socket_addr(),
                }
            }
            GatewayMessage::Reject(reject)
                if reject.reason() == Some(jvpn_common::RejectReason::Terminated) =>
            {
                let closed = Closed::TerminatedAtGateway(version);
                self.closed = Some(closed);
                return Err(SessionRefusal::Closed(closed));
            }
            GatewayMessage::Reject(reject) if reject.reason().is_some_and(|r| r.is_replay()) => {
                ClientEvent::ReplayReported {
                    reason: reject
                        .reason()
                        .expect("Reject::from_body refuses unknown reason codes"),
                    gateway_version: reject.gateway_version.get(),
                    rejected_nonce: reject.rejected_nonce.get(),
                }
            }
            GatewayMessage::Reject(reject) => ClientEvent::Rejected {
                reason: reject
                    .reason()
                    .expect("Reject::from_body refuses unknown reason codes"),
                gateway_version: reject.gateway_version.get(),
                rejected_nonce: reject.rejected_nonce.get(),
            },
            GatewayMessage::RekeyAck(ack) => self.on_rekey_ack(version, ack)?,
            GatewayMessage::Terminate(terminate) => {
                let cause = terminate
                    .cause()
                    .expect("Terminate::from_body refuses unknown causes");
                self.closed = Some(Closed::ByGateway(cause));
                ClientEvent::Terminated { cause }
            }
        }))
    }

    fn ensure_open(&self) -> Result<(), SessionRefusal> {
        match self.closed {
            Some(closed) => Err(SessionRefusal::Closed(closed)),
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for ClientSessionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSessionState")
            .field("snapshot", &self.snapshot())
            .finish_non_exhaustive()
    }
}

mod outgoing;
mod rekey;
pub use rekey::MAX_PENDING_REKEYS;
#[cfg(test)]
mod tests;
