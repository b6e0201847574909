//! The client's side of rekeying (docs/rekey.md): REKEY_INIT out, REKEY_ACK in, and the overlap
//! during which gateway messages sealed under the previous keys are still opened.
//!
//! The client starts a rekey at its acknowledged version; if no REKEY_ACK comes it may start
//! another from the same version, and it keeps the ephemeral key of each (at most
//! [`MAX_PENDING_REKEYS`]), because the gateway commits whichever REKEY_INIT reached it and the
//! REKEY_ACK of an earlier one may still be on its way. A REKEY_ACK must carry exactly
//! `acked + 1` and complete one of them; one that completes none means the gateway committed keys
//! the client cannot derive, which is fatal (the two sides no longer share keys). After the
//! switch, DATA and KEEPALIVE the gateway sealed under the previous keys at the previous version
//! (sent before its commit, still in flight) are opened, until the first message sealed under
//! the new keys arrives; then the previous keys are dropped.

use super::super::body::GatewayMessage;
use super::super::event::ClientEvent;
use super::super::refusal::{Ambiguity, Closed, SessionRefusal};
use super::ClientSessionState;
use super::Handled;
use crate::crypto::{open_in_place, Direction, RekeyInitiator, SealError, SessionKeys};
use jvpn_common::abi::HEADER_LEN;
use jvpn_common::control::{RekeyAck, RekeyInit};
use jvpn_common::wire::{Be64, MessageType, WireHeader};

/// REKEY_INITs from one version whose ephemeral keys the client keeps at once.
pub const MAX_PENDING_REKEYS: usize = 4;

/// The rekey state of one client session.
#[derive(Default)]
pub(super) struct KeyRotation {
    /// The rekeys started from the acknowledged version, oldest first.
    pending: Vec<RekeyInitiator>,
    /// The keys before the last rekey and the version they served, until the first gateway
    /// message under the new keys.
    previous: Option<(SessionKeys, u64)>,
    /// The first client nonce sealed under the current keys.
    first_nonce: u64,
    /// Rekeys completed by this session.
    completed: u64,
    /// The datagram as received, kept during the overlap for the previous keys to try
    /// ([`ClientSessionState::open_either`]); reused from datagram to datagram.
    as_received: Vec<u8>,
}

impl KeyRotation {
    /// A rotation for keys first used at client nonce `first_nonce`.
    pub(super) fn new(first_nonce: u64) -> Self {
        Self {
            first_nonce,
            ..Self::default()
        }
    }
}

/// A datagram whose seal opened (in place), and under which keys.
pub(super) struct Opened<'a> {
    pub(super) header: WireHeader,
    pub(super) body: &'a [u8],
    pub(super) under_previous: bool,
}

impl ClientSessionState {
    /// A REKEY_INIT at the acknowledged version with a fresh ephemeral key. Call it when the
    /// current keys are [`ConnectOptions::rekey_after`](super::super::ConnectOptions) old, and
    /// again if no REKEY_ACK came; the gateway answers the first one that reaches it.
    pub fn rekey_init(&mut self) -> Result<Vec<u8>, SessionRefusal> {
        self.ensure_open()?;
        let version = self.acked_version;
        self.rekey.pending.retain(|p| p.version() == version);
        let (initiator, noise) = RekeyInitiator::start(&self.keys, self.session_id, version)
            .map_err(|e| {
                tracing::error!(error = %e, "cannot start a rekey");
                SessionRefusal::Seal(SealError::BadSeal)
            })?;
        let body = RekeyInit {
            acked_version: Be64::new(version),
            noise,
        };
        let datagram = self.seal_control(version, &body)?;
        if self.rekey.pending.len() >= MAX_PENDING_REKEYS {
            self.rekey.pending.remove(0);
        }
        self.rekey.pending.push(initiator);
        Ok(datagram)
    }

    /// Whether a REKEY_INIT from the acknowledged version awaits its REKEY_ACK.
    pub fn rekey_pending(&self) -> bool {
        self.rekey
            .pending
            .iter()
            .any(|p| p.version() == self.acked_version)
    }

    /// How many rekeys this session completed: a change means new keys.
    pub fn rekeys_completed(&self) -> u64 {
        self.rekey.completed
    }

    /// How many messages the client sealed under its current keys.
    pub fn messages_under_current_keys(&self) -> u64 {
        self.next_nonce - self.rekey.first_nonce
    }

    /// Opens a gateway datagram in place under the current keys or, during the overlap, the
    /// previous ones. A failed open leaves the datagram zeroed (ring decrypts while it
    /// authenticates), so during the overlap, and only then, the datagram is copied first for
    /// the previous keys to try, into a buffer the session keeps (no allocation per datagram).
    pub(super) fn open_either<'a>(
        &mut self,
        datagram: &'a mut [u8],
    ) -> Result<Opened<'a>, SessionRefusal> {
        let refusal = |e: SealError| match e {
            SealError::BadTag | SealError::BadSeal => SessionRefusal::Unauthenticated(e),
            other => SessionRefusal::Malformed(other),
        };
        let KeyRotation {
            previous,
            as_received,
            ..
        } = &mut self.rekey;
        let Some((previous, _)) = previous.as_ref() else {
            let (header, body) =
                open_in_place(&self.keys, Direction::GatewayToClient, datagram).map_err(refusal)?;
            let len = body.len();
            return Ok(Opened {
                header,
                body: &datagram[HEADER_LEN..HEADER_LEN + len],
                under_previous: false,
            });
        };
        as_received.clear();
        as_received.extend_from_slice(datagram);
        let opened = match open_in_place(&self.keys, Direction::GatewayToClient, datagram) {
            Ok((header, body)) => (header, body.len(), false),
            Err(SealError::BadSeal) => {
                datagram.copy_from_slice(as_received);
                let (header, body) = open_in_place(previous, Direction::GatewayToClient, datagram)
                    .map_err(refusal)?;
                (header, body.len(), true)
            }
            Err(e) => return Err(refusal(e)),
        };
        let (header, len, under_previous) = opened;
        // open_in_place's body is the datagram between the header and the tag.
        Ok(Opened {
            header,
            body: &datagram[HEADER_LEN..HEADER_LEN + len],
            under_previous,
        })
    }

    /// A message opened under the current keys ends the overlap.
    pub(super) fn current_keys_heard(&mut self) {
        self.rekey.previous = None;
    }

    /// Judges a message opened under the previous keys: only DATA and KEEPALIVE at the version
    /// those keys served, sent before the gateway's commit.
    pub(super) fn accept_under_previous<'a>(
        &self,
        version: u64,
        message: GatewayMessage<'a>,
    ) -> Result<Handled<'a>, SessionRefusal> {
        let served = self.rekey.previous.as_ref().map(|(_, v)| *v);
        match message {
            GatewayMessage::Data(packet) if Some(version) == served => Ok(Handled::Packet(packet)),
            GatewayMessage::Keepalive if Some(version) == served => {
                Ok(Handled::Event(ClientEvent::Keepalive))
            }
            other => Err(SessionRefusal::StaleVersion {
                message: other.message_type(),
                version,
                acked: self.acked_version,
            }),
        }
    }

    /// Acts on a REKEY_ACK the generic version rules let through (not below `acked`).
    pub(super) fn on_rekey_ack(
        &mut self,
        version: u64,
        ack: RekeyAck,
    ) -> Result<ClientEvent, SessionRefusal> {
        let acked = self.acked_version;
        if ack.new_version.get() != version {
            return Err(self.fail(Ambiguity::BodyMismatch {
                message: MessageType::RekeyAck,
                header: version,
                body: ack.new_version.get(),
            }));
        }
        if version == acked {
            return Err(SessionRefusal::Unexpected {
                message: MessageType::RekeyAck,
                version,
            });
        }
        if acked.checked_add(1) != Some(version) {
            return Err(self.fail(Ambiguity::VersionJump {
                message: MessageType::RekeyAck,
                version,
                acked,
            }));
        }
        let pending = std::mem::take(&mut self.rekey.pending);
        let new_keys = pending
            .into_iter()
            .filter(|p| p.version() == acked)
            .find_map(|p| p.finish(&self.keys, &ack.noise).ok());
        let Some(new_keys) = new_keys else {
            return Err(self.fail(Ambiguity::RekeyUnverified { version, acked }));
        };
        let old = std::mem::replace(&mut self.keys, new_keys);
        self.rekey.previous = Some((old, acked));
        self.rekey.first_nonce = self.next_nonce;
        self.rekey.completed += 1;
        self.acked_version = version;
        Ok(ClientEvent::Rekeyed {
            new_version: version,
        })
    }

    fn fail(&mut self, ambiguity: Ambiguity) -> SessionRefusal {
        self.closed = Some(Closed::Ambiguous(ambiguity));
        SessionRefusal::Ambiguous(ambiguity)
    }
}
