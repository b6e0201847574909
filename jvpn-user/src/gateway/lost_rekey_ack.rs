//! A lost REKEY_ACK costs no new handshake (docs/rekey.md, "A lost REKEY_ACK").
//!
//! Once a rekey commits, the gateway holds version v+1 and the new keys, while the client holds v
//! and the old keys until the REKEY_ACK reaches it. If the ACK is lost, everything the client
//! sends at v is refused: XDP drops it as `STALE_VERSION`, and the controller could not open it
//! under the new keys anyway. So, for [`ACK_RESEND_WINDOW_MS`] after the commit, the session keeps
//! the exact bytes of the REKEY_ACK it sent and the version it left ([`SentAck`]). A DATA,
//! KEEPALIVE or REKEY_INIT of the client at that version gets the same datagram again, only if
//! all of these hold:
//! - its header tag verified. The rekey keeps the header keys, and XDP checks the tag before
//!   the version, so its `STALE_VERSION` drop (read from the event stream) implies it. The
//!   controller's own path acts only on a seal that failed after the tag verified. Nothing
//!   unauthenticated draws an answer.
//! - it came from the session's bound transport, and the ACK goes there. A spoofed source gets
//!   nothing, and nothing is reflected at another address.
//! - the session is still ATTACHED at exactly v+1: no transition since.
//! - it was no smaller than the ACK (frame against frame for an XDP drop), so nothing is
//!   amplified. A REKEY_INIT is as long as a REKEY_ACK; a KEEPALIVE is shorter and draws nothing.
//! - the session's REJECT budget for the bound transport allows it, at most [`ACK_RESENDS`]
//!   times.
//!
//! Resending identical bytes seals nothing, so no nonce is used twice under any key. The client
//! takes the first copy that reaches it: it still holds the ephemeral key of every pending
//! REKEY_INIT, the one the gateway answered included. Its replay window refuses every later copy
//! (the same nonce), so its keys switch once. Nothing here changes a session, its version or its
//! keys; a replayed REKEY_INIT meets the moved version or the new keys and never commits again.
//!
//! The kept ACK is dropped at the first message the controller accepts at the new version (the
//! client switched), once the window passes, and whenever the session transitions again. It is
//! soft state: a gateway restarted between the commit and the ACK has lost it, and the client
//! falls back to a new handshake (docs/rekey.md, "Crash safety").

use super::core::Controller;
use super::counters::Count;
use super::effect::Effect;
use super::replay_notice::frame_fits;
use crate::crypto::SealError;
use crate::dataplane::DataplaneEvent;
use crate::session::{Millis, SessionId};
use jvpn_common::maps::{SessionState, TransportBinding};
use jvpn_common::{MessageType, WireHeader};
use std::net::SocketAddr;

/// How long after a rekey's commit its REKEY_ACK may be sent again. The client retries its
/// REKEY_INIT every second (`ConnectOptions::rekey_wait`) and keeps the ephemeral keys of the
/// last `MAX_PENDING_REKEYS` (4) of them, so the REKEY_INIT the gateway answered is still pending
/// for at least 3 s. A copy arriving later would name an exchange the client has forgotten,
/// which is fatal for the session.
pub const ACK_RESEND_WINDOW_MS: Millis = 3_000;
/// How many times one REKEY_ACK may be sent again.
pub const ACK_RESENDS: u8 = 3;
const _: () = assert!(
    ACK_RESENDS > 0,
    "a lost REKEY_ACK is sent again at least once"
);

/// The REKEY_ACK a rekey's commit sent, kept so it can be sent again (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentAck {
    /// The version the rekey left: the client's until the ACK reaches it.
    pub from_version: u64,
    /// The sealed REKEY_ACK, byte for byte as first sent.
    pub datagram: Vec<u8>,
    /// When it stops being sent again.
    pub until: Millis,
    /// Resends left.
    pub left: u8,
}

/// How large the message that asks for the ACK again was.
#[derive(Clone, Copy, Debug)]
enum Received {
    /// A UDP payload of this many bytes (the controller's own path).
    Payload(usize),
    /// A frame of this many bytes (an XDP drop).
    Frame(u32),
}

impl Controller {
    /// Keeps the REKEY_ACK just sent for session `id`'s rekey from `from_version`.
    pub(super) fn keep_rekey_ack(&self, id: u64, from_version: u64, datagram: &[u8], now: Millis) {
        if let Some(live) = self.sessions.lock().get_mut(&id) {
            live.sent_ack = Some(SentAck {
                from_version,
                datagram: datagram.to_vec(),
                until: now.saturating_add(ACK_RESEND_WINDOW_MS),
                left: ACK_RESENDS,
            });
        }
    }

    /// Answers an XDP `STALE_VERSION` drop of the client's DATA, KEEPALIVE or REKEY_INIT with its
    /// session's kept REKEY_ACK, if the rules of the module doc allow.
    pub(super) fn answer_stale_drop(
        &self,
        event: &DataplaneEvent,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let Some(message) = event.msg_type else {
            return;
        };
        let received = Received::Frame(event.frame_len);
        let (id, claimed) = (event.session_id, event.state_version);
        self.resend_rekey_ack(id, message, claimed, event.source, received, now, out);
    }

    /// Answers a message whose header tag verified here but whose seal the current keys did not
    /// open (`error`), with its session's kept REKEY_ACK if the rules of the module doc allow:
    /// the controller's path when the XDP program is detached or only monitors.
    pub(super) fn answer_under_old_keys(
        &self,
        header: &WireHeader,
        error: &SealError,
        from: SocketAddr,
        received: usize,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        // BAD_SEAL comes only after the header tag verified (`crypto::open_in_place`).
        let (SealError::BadSeal, Some(message)) = (error, header.message_type()) else {
            return;
        };
        let id = header.session_id.get();
        let claimed = header.state_version.get();
        let received = Received::Payload(received);
        self.resend_rekey_ack(id, message, claimed, from, received, now, out);
    }

    #[expect(
        clippy::too_many_arguments,
        reason = "the rules of the module doc weigh the session, the message, its version, source and size, and the time; the answer goes into the step's effects"
    )]
    fn resend_rekey_ack(
        &self,
        id: u64,
        message: MessageType,
        claimed: u64,
        from: SocketAddr,
        received: Received,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        if !matches!(
            message,
            MessageType::Data | MessageType::Keepalive | MessageType::RekeyInit
        ) {
            return;
        }
        let (to, datagram, left) = {
            let mut table = self.sessions.lock();
            let Some(live) = table.get_mut(&id) else {
                return;
            };
            let Some(sent) = live.sent_ack.as_mut() else {
                return;
            };
            let session = &live.session;
            let current = session.state == SessionState::Attached
                && sent.from_version.checked_add(1) == Some(session.state_version);
            if !current || now >= sent.until || sent.left == 0 {
                live.sent_ack = None;
                return;
            }
            let bound = TransportBinding::from_socket_addr(from) == session.binding;
            if !bound || claimed != sent.from_version {
                return;
            }
            // The binding's own form of the address, whatever form `from` took.
            let to = session.binding.to_socket_addr();
            let fits = match received {
                Received::Payload(len) => sent.datagram.len() <= len,
                Received::Frame(len) => frame_fits(sent.datagram.len(), len, to),
            };
            if !fits {
                return;
            }
            if !live.rejects.take(to, to, now) {
                self.counters.count(Count::RejectSuppressed);
                return;
            }
            sent.left -= 1;
            (to, sent.datagram.clone(), sent.left)
        };
        tracing::info!(
            session = %SessionId::show(id),
            state_version = claimed + 1,
            message = ?message,
            peer = %to,
            resends_left = left,
            "the client still speaks at the version its rekey left (its REKEY_ACK was lost?); sending the same REKEY_ACK again"
        );
        out.push(Effect::Send { to, datagram });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The window outlasts the client's retries no longer than its pending REKEY_INITs do: the
    /// answered one is still pending when the last copy can arrive.
    #[test]
    fn the_window_ends_before_the_client_forgets_the_exchange() {
        use crate::client_session::session::MAX_PENDING_REKEYS;
        let retry = crate::client_session::ConnectOptions::default().rekey_wait;
        let forgotten_after = retry.as_millis() as u64 * (MAX_PENDING_REKEYS as u64 - 1);
        assert!(ACK_RESEND_WINDOW_MS <= forgotten_after);
    }
}
