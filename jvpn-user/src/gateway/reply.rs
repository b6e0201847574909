//! Messages the gateway sends to a session's client: sealed under the session's
//! gateway-to-client key, numbered with its gateway-to-client nonce, carrying the version the
//! caller names and, once the session's XDP entry was written, its slot as the slot hint
//! (`docs/protocol.md`, "Slot hint"). REJECT replies go through the session's REJECT budget for their destination
//! ([`super::reject_budget`]). Also the other side of that coin, shared by every handler of a
//! client message: finding the session a datagram names, and reporting (never answering) one that
//! fails authentication.

use super::core::Controller;
use super::counters::Count;
use super::effect::Effect;
use crate::crypto::{open_body, seal_message, Direction, SealError, SessionKeys};
use crate::events::{EventKind, EventRecord, EventSource};
use crate::session::{Millis, SessionId};
use jvpn_common::abi::HEADER_LEN;
use jvpn_common::control::{Body, Reject};
use jvpn_common::{MessageType, RejectReason, WireHeader};
use std::net::SocketAddr;
use std::sync::Arc;

/// A client's control message that opened and passed the replay window ([`Controller::open_control`]).
pub(super) struct OpenedControl<B> {
    /// The session's id.
    pub(super) id: u64,
    /// The session as the controller holds it.
    pub(super) session: crate::session::Session,
    /// The session's keys.
    pub(super) keys: Arc<SessionKeys>,
    /// The message's header.
    pub(super) header: WireHeader,
    /// The message's body.
    pub(super) body: B,
}

impl Controller {
    /// The shell wrote `id`'s entry into this node's XDP session table at `slot`: every message
    /// sealed to the client from now on names it as its slot hint, which the client echoes.
    pub fn slot_assigned(&self, id: u64, slot: u32) {
        if let Some(live) = self.sessions.lock().get_mut(&id) {
            live.slot = Some(slot);
        }
    }

    /// Names `id`'s slot in a message sealed before the slot was known (the WELCOME: its Noise
    /// message is written while the handshake is processed, before the commit whose map write
    /// assigns the slot) and tags its header again with the gateway-to-client header key. The
    /// body is untouched: its AEAD does not cover the header. A datagram of a session without a
    /// slot (the map write failed) or gone is returned as it was: the hint is only a shortcut.
    pub(super) fn with_slot_hint(&self, id: u64, mut datagram: Vec<u8>) -> Vec<u8> {
        let named = {
            let mut table = self.sessions.lock();
            table
                .get_mut(&id)
                .and_then(|live| Some((live.slot?, live.keys.clone())))
        };
        let Some((slot, keys)) = named else {
            return datagram;
        };
        let Ok(mut header) = WireHeader::parse(&datagram) else {
            return datagram;
        };
        header.set_hinted_slot(Some(slot));
        header.seal(keys.sip_key(Direction::GatewayToClient));
        datagram[..HEADER_LEN].copy_from_slice(header.as_bytes());
        datagram
    }

    /// Seals `body` as a `msg_type` message of session `id` at `version`, or `None` if the
    /// session is gone.
    pub(super) fn seal_for(
        &self,
        id: u64,
        msg_type: MessageType,
        version: u64,
        body: &[u8],
        out: &mut Vec<Effect>,
    ) -> Option<Vec<u8>> {
        let (nonce, keys, slot) = {
            let mut table = self.sessions.lock();
            let live = table.get_mut(&id)?;
            (live.take_nonce(), live.keys.clone(), live.slot)
        };
        let Some(nonce) = nonce else {
            self.counters.count(Count::NonceExhausted);
            tracing::error!(
                session = %SessionId::show(id),
                "not sealed: the gateway-to-client nonces of this epoch are spent; the session ends"
            );
            out.push(Effect::Publish(
                EventRecord::new(EventKind::PolicyEvent, EventSource::Controller)
                    .with_session(id)
                    .with_detail("message not sent: the session's gateway-to-client nonces of this boot epoch are spent"),
            ));
            return None;
        };
        let mut header = WireHeader::new(msg_type, id, version, nonce);
        header.set_hinted_slot(slot);
        match seal_message(&keys, Direction::GatewayToClient, header, body) {
            Ok(datagram) => Some(datagram),
            Err(e) => {
                tracing::error!(session = %SessionId::show(id), error = %e, "cannot seal a reply");
                None
            }
        }
    }

    /// Seals a control body for `to` and pushes its [`Effect::Send`].
    pub(super) fn send_body<B: Body>(
        &self,
        id: u64,
        to: SocketAddr,
        version: u64,
        body: &B,
        out: &mut Vec<Effect>,
    ) {
        if let Some(datagram) = self.seal_for(id, B::MESSAGE_TYPE, version, body.as_body(), out) {
            out.push(Effect::Send { to, datagram });
        }
    }

    /// Refuses an authenticated message: publishes the event and sends an explicit REJECT (spec
    /// section 6), unless the session's REJECT budget for `to` is spent, which is counted.
    #[expect(
        clippy::too_many_arguments,
        reason = "a REJECT names the session, its destination, the message refused, the reason, the version, a detail and the time; a struct would only name them again"
    )]
    pub(super) fn refuse(
        &self,
        id: u64,
        to: SocketAddr,
        header: &WireHeader,
        reason: RejectReason,
        gateway_version: u64,
        detail: String,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        self.counters.reject(reason);
        self.client_refused(id, reason);
        tracing::warn!(
            session = %SessionId::show(id),
            reason = reason.name(),
            claimed = header.state_version.get(),
            state_version = gateway_version,
            peer = %to,
            %detail,
            "refused"
        );
        let message = header.message_type().unwrap_or(MessageType::Data);
        out.push(Effect::Publish(
            EventRecord::refusal(Some(id), reason)
                .with_peer(to)
                .with_message(message, header.state_version.get(), header.nonce.get())
                .with_session_version(gateway_version)
                .with_detail(detail),
        ));
        self.send_reject(
            id,
            to,
            reason,
            gateway_version,
            header.nonce.get(),
            now,
            out,
        );
    }

    /// Sends a REJECT if the session's budget for `to` allows; the event is the caller's.
    #[expect(
        clippy::too_many_arguments,
        reason = "a REJECT names the session, its destination, the reason, the version, the nonce refused and the time, and goes into the step's effects; a struct would only name them again"
    )]
    pub(super) fn send_reject(
        &self,
        id: u64,
        to: SocketAddr,
        reason: RejectReason,
        gateway_version: u64,
        rejected_nonce: u64,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let allowed = self.sessions.lock().get_mut(&id).is_some_and(|live| {
            let bound = live.session.binding.to_socket_addr();
            live.rejects.take(to, bound, now)
        });
        if !allowed {
            self.counters.count(Count::RejectSuppressed);
            return;
        }
        let body = Reject::new(reason, gateway_version, rejected_nonce);
        self.send_body(id, to, gateway_version, &body, out);
    }

    /// Reports a message that failed authentication here. No reply: an unauthenticated sender
    /// gets nothing to learn from, and nothing changes (the brief's "no unauthenticated message may
    /// change a session").
    pub(super) fn unauthenticated(
        &self,
        header: &WireHeader,
        from: SocketAddr,
        reason: RejectReason,
        out: &mut Vec<Effect>,
    ) {
        self.counters.count(Count::SealFailure);
        let message = header.message_type().unwrap_or(MessageType::Data);
        tracing::warn!(
            session = %SessionId::show(header.session_id.get()),
            reason = reason.name(),
            peer = %from,
            "a datagram failed authentication in the controller"
        );
        out.push(Effect::Publish(
            EventRecord::refusal(Some(header.session_id.get()), reason)
                .with_peer(from)
                .with_message(message, header.state_version.get(), header.nonce.get())
                .with_detail("failed authentication in the controller; nothing changed"),
        ));
    }

    /// The live session a datagram names, or `None` (reported) if it has none.
    pub(super) fn session_of(
        &self,
        datagram: &[u8],
        from: SocketAddr,
        out: &mut Vec<Effect>,
    ) -> Option<(
        u64,
        crate::session::Session,
        std::sync::Arc<crate::crypto::SessionKeys>,
    )> {
        let header = WireHeader::parse(datagram).ok()?;
        let id = header.session_id.get();
        match self.sessions.snapshot(id) {
            Some((session, keys)) => Some((id, session, keys)),
            None => {
                self.unauthenticated(&header, from, RejectReason::UnknownSession, out);
                None
            }
        }
    }

    /// A client's control message of type `B`, opened and admitted: its session's id, state and
    /// keys, its header and its body; or `None` once the refusal it deserved (an unknown
    /// session, a failed seal, a replay) is in `out`.
    pub(super) fn open_control<B: Body>(
        &self,
        datagram: &[u8],
        from: SocketAddr,
        now: Millis,
        out: &mut Vec<Effect>,
    ) -> Option<OpenedControl<B>> {
        let (id, session, keys) = self.session_of(datagram, from, out)?;
        let (header, body) = match open_body::<B>(&keys, Direction::ClientToGateway, datagram) {
            Ok(opened) => opened,
            Err(e) => {
                self.seal_failed(datagram, from, &e, out);
                if let Ok(header) = WireHeader::parse(datagram) {
                    self.answer_under_old_keys(&header, &e, from, datagram.len(), now, out);
                }
                return None;
            }
        };
        if !self.admit_nonce(id, &header, from, datagram.len(), now, out) {
            return None;
        }
        Some(OpenedControl {
            id,
            session,
            keys,
            header,
            body,
        })
    }

    /// Answers a compare-and-set of session `id` that did not commit: the REJECT its error
    /// deserves, at the session's version now (`fallback` if it is gone), to `to`; an error
    /// without a REJECT is logged as `what` not committed.
    #[expect(
        clippy::too_many_arguments,
        reason = "the REJECT's every field, the time and the effects buffer"
    )]
    pub(super) fn refuse_uncommitted(
        &self,
        id: u64,
        to: SocketAddr,
        fallback: u64,
        nonce: u64,
        error: &super::ApplyError,
        what: &str,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let version = self
            .sessions
            .snapshot(id)
            .map_or(fallback, |(s, _)| s.state_version);
        match error.reason() {
            Some(reason) => self.send_reject(id, to, reason, version, nonce, now, out),
            None => {
                tracing::error!(session = %SessionId::show(id), %error, "{what} not committed")
            }
        }
    }

    /// Reports a datagram whose tag or seal failed here.
    pub(super) fn seal_failed(
        &self,
        datagram: &[u8],
        from: SocketAddr,
        error: &SealError,
        out: &mut Vec<Effect>,
    ) {
        if let Ok(header) = WireHeader::parse(datagram) {
            self.unauthenticated(&header, from, error.reason(), out);
        }
    }
}
