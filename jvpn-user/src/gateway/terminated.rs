//! A client still talking to a session the gateway has TERMINATED is told so (spec section 6:
//! silent ignore is forbidden).
//!
//! For [`super::retention::TERMINATED_RETENTION_MS`] a terminated session keeps its map entry
//! and its keys, and the XDP program drops its client's packets as `TERMINATED`, after their tag
//! verified. The controller reads the drop from the event stream and sends a sealed
//! `REJECT{TERMINATED, current version}` to the address the packet came from, within the
//! session's REJECT budget; the client, on it, starts a new handshake instead of reattaching to
//! a session that will never answer. A sender replaying a captured packet from its own address
//! gets a REJECT it cannot open, and the budget bounds how many.
//!
//! A session the gateway does not know at all (evicted, or a gateway restarted with an empty
//! state directory) has no keys, so nothing can be sealed: the XDP program drops its packets as
//! `UNKNOWN_SESSION` and the client finds out from the silence (a bounded number of unanswered
//! REATTACH_REQUESTs, `client_session::session`).

use super::core::Controller;
use super::effect::Effect;
use crate::crypto::SessionKeys;
use crate::dataplane::DataplaneEvent;
use crate::session::{Millis, SessionId};
use jvpn_common::maps::SessionState;
use jvpn_common::RejectReason;

impl Controller {
    /// Answers a `TERMINATED` drop of a session whose keys the gateway still holds.
    pub(super) fn tell_terminated(
        &self,
        event: &DataplaneEvent,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let Some((session, _)) = self.sessions.snapshot(event.session_id) else {
            return;
        };
        // A session loaded without usable keys (an older record format) cannot seal anything.
        let has_keys = session.secrets.len() == SessionKeys::STORED_LEN;
        if session.state != SessionState::Terminated || !has_keys {
            return;
        }
        tracing::info!(
            session = %SessionId::show(event.session_id),
            peer = %event.source,
            state_version = session.state_version,
            "traffic for a terminated session; telling the client"
        );
        self.send_reject(
            event.session_id,
            event.source,
            RejectReason::Terminated,
            session.state_version,
            event.nonce,
            now,
            out,
        );
    }
}
