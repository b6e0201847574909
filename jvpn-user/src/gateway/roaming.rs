//! A client whose address changed under it (NAT rebinding) is told so at once.
//!
//! When a NAT gives a client a new outer port, the client's sealed DATA and KEEPALIVE arrive from
//! a transport the session is not bound to, and the XDP program drops them as
//! `TRANSPORT_MISMATCH`. The client cannot see that: its own address did not change. Rather than
//! leave it to notice the silence (three keepalive intervals), the controller reads the drop from
//! the event stream and sends a sealed REJECT(TRANSPORT_MISMATCH) to the address the packet came
//! from; the NAT carries it back to the client, which reattaches at once from where it is (the
//! usual REATTACH_REQUEST, PATH_CHALLENGE, PATH_RESPONSE and CAS: nothing moves without them).
//!
//! Only a drop that passed the header tag and claimed the session's current version is answered
//! (the XDP program checks the tag, then the version, then the transport), so an unauthenticated
//! sender learns nothing. A replayed packet sent from an attacker's own address gets a REJECT
//! sent to the attacker, which it cannot use; the session's REJECT budget for that address, and the
//! bound on new addresses per second ([`super::reject_budget`]), bound how many.

use super::core::Controller;
use super::effect::Effect;
use crate::dataplane::DataplaneEvent;
use crate::session::{Millis, SessionId};
use jvpn_common::maps::{SessionState, TransportBinding};
use jvpn_common::{MessageType, RejectReason};

impl Controller {
    /// Answers a dataplane drop that means "the client's transport changed" with a REJECT to the
    /// transport it came from, one of a terminated session with a REJECT TERMINATED
    /// ([`super::terminated`]), a replay from the bound transport with a REJECT of its reason
    /// ([`super::replay_notice`]), and the client's messages at the version its rekey left with
    /// the same REKEY_ACK again ([`super::lost_rekey_ack`]); ignores every other drop.
    pub fn on_dataplane_drop(&self, event: &DataplaneEvent, now: Millis) -> Vec<Effect> {
        let mut out = Vec::new();
        self.answer_drop(event, now, &mut out);
        out
    }

    fn answer_drop(&self, event: &DataplaneEvent, now: Millis, out: &mut Vec<Effect>) {
        if event.reason == RejectReason::Terminated {
            return self.tell_terminated(event, now, out);
        }
        if event.reason.is_replay() {
            return self.answer_replayed_drop(event, now, out);
        }
        if event.reason == RejectReason::StaleVersion {
            return self.answer_stale_drop(event, now, out);
        }
        if event.reason != RejectReason::TransportMismatch
            || !matches!(
                event.msg_type,
                Some(MessageType::Data | MessageType::Keepalive)
            )
        {
            return;
        }
        let Some((session, _)) = self.sessions.snapshot(event.session_id) else {
            return;
        };
        let from = event.source;
        let current = session.state == SessionState::Attached
            && event.state_version == session.state_version
            && TransportBinding::from_socket_addr(from) != session.binding;
        if !current {
            return;
        }
        tracing::info!(
            session = %SessionId::show(event.session_id),
            peer = %from,
            bound = %session.binding.to_socket_addr(),
            "traffic from a new transport; telling the client to reattach"
        );
        self.send_reject(
            event.session_id,
            from,
            RejectReason::TransportMismatch,
            session.state_version,
            event.nonce,
            now,
            out,
        );
    }
}
