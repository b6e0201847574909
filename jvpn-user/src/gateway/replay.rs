//! The controller's own client-to-gateway replay window (issue 8, defect 3).
//!
//! The XDP program keeps the session's c2g replay window and drops a replay before it reaches the
//! controller. The controller does not count on that: the program may be detached, attached in
//! generic or monitor mode, or a datagram may come in some other way. So every client message
//! that reaches the controller (DATA, KEEPALIVE, REATTACH_REQUEST, PATH_RESPONSE, TERMINATE)
//! passes this window too, after its seal opened (an unauthenticated datagram never advances it)
//! and before it has any effect (a TUN write, a KEEPALIVE answer, a challenge, a commit). With
//! the program enforcing, both windows see the same stream, since XDP passes each nonce at most
//! once, and this one refuses nothing.
//!
//! A refusal is a counted SECURITY_EVENT (`DUPLICATE_NONCE`, `NONCE_TOO_OLD`, or whatever reason
//! the shared algorithm gives) and no reply: whoever sends a replay is not the one who needs to
//! hear about it, and a REJECT to the address a replay claims would reflect it at a third party.
//!
//! Restarts. Dataplane adopted (the pins survived): the XDP window still holds every nonce it
//! accepted, but this window starts empty, so it starts with a *floor*: every nonce at or below
//! the highest one XDP accepted is refused ([`RxWindow::above`]), and a message captured before
//! the restart is refused after it even with XDP bypassed. A genuine packet reordered across the
//! restart is refused with it, as is one XDP accepted between the socket's bind and the seeding
//! (it waits in the socket below the floor): a few packets lost at a restart, never a replay let
//! through. Dataplane lost (a reboot, a detach): no window
//! survived anywhere, but every live session was moved to RECOVERING, which increments its
//! version (`reconcile`), so old DATA and KEEPALIVE claim a version that is no longer current
//! and are refused as NOT_ATTACHED / STALE_VERSION, a captured REATTACH_REQUEST gets at most a
//! challenge its sender cannot answer, and a captured PATH_RESPONSE answers no challenge.

use super::core::Controller;
use super::effect::Effect;
use crate::events::EventRecord;
use crate::session::SessionId;
use jvpn_common::replay::{Leap, ReplayWindow};
use jvpn_common::{MessageType, RejectReason, WireHeader};
use std::net::SocketAddr;

/// One session's c2g replay window in the controller.
pub struct RxWindow {
    /// Every nonce at or below this is refused: the highest nonce the dataplane had accepted
    /// when this run adopted it (0 for a session of this run, or after the maps were lost).
    floor: u64,
    /// The nonces accepted in this run.
    window: ReplayWindow,
}

impl Default for RxWindow {
    /// The window of a session born in this run: nothing refused yet. Its leaps are unbounded,
    /// unlike XDP's: the controller records a nonce only after the message's seal opened, so a
    /// reflected or forged message, which the leap rule exists for, never gets here.
    fn default() -> Self {
        Self::above(0)
    }
}

impl RxWindow {
    /// A window that refuses every nonce up to and including `highest`, the highest nonce the
    /// dataplane accepted before this run (see the module doc).
    pub fn above(highest: u64) -> Self {
        Self {
            floor: highest,
            window: ReplayWindow::new(Leap::Unbounded),
        }
    }

    /// Accepts `nonce` exactly once, or says why not. Lock-free: the window is atomic.
    pub fn check(&self, nonce: u64) -> Result<(), RejectReason> {
        if nonce <= self.floor {
            return Err(RejectReason::NonceTooOld);
        }
        self.window.check_and_record(nonce).map_err(|r| r.reason())
    }

    /// The highest nonce known accepted: this run's, or the floor it started from.
    pub fn highest(&self) -> u64 {
        self.floor.max(self.window.max())
    }
}

impl Controller {
    /// Passes an opened message's nonce through session `id`'s [`RxWindow`]. `false` if it was
    /// refused, which is counted and reported here; the caller then drops the message. Call it
    /// only after the seal opened, and before the message has any effect.
    pub(super) fn admit_nonce(
        &self,
        id: u64,
        header: &WireHeader,
        from: SocketAddr,
        out: &mut Vec<Effect>,
    ) -> bool {
        let nonce = header.nonce.get();
        let verdict = self
            .sessions
            .lock()
            .get(&id)
            .map(|live| (live.rx.check(nonce), live.session.state_version));
        let Some((Err(reason), version)) = verdict else {
            // Admitted, or the session left the table meanwhile (its handler finds that out).
            return true;
        };
        self.counters.reject(reason);
        let message = header.message_type().unwrap_or(MessageType::Data);
        tracing::warn!(
            session = %SessionId::show(id),
            reason = reason.name(),
            ?message,
            nonce,
            peer = %from,
            "the controller refused a replayed message"
        );
        out.push(Effect::Publish(
            EventRecord::refusal(Some(id), reason)
                .with_peer(from)
                .with_message(message, header.state_version.get(), nonce)
                .with_session_version(version)
                .with_detail("refused by the controller's replay window; nothing changed"),
        ));
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jvpn_common::abi::REPLAY_WINDOW;

    /// The window the controller wires in front of every client message: each nonce once, the
    /// reason of each refusal, and the floor a restart with adopted maps starts from.
    #[test]
    fn each_nonce_is_admitted_once_and_refusals_carry_their_reason() {
        let fresh = RxWindow::default();
        let restarted = RxWindow::above(100);
        let cases: [(&RxWindow, u64, Result<(), RejectReason>); 10] = [
            (&fresh, 1, Ok(())),
            (&fresh, 1, Err(RejectReason::DuplicateNonce)),
            (&fresh, 3, Ok(())),
            (&fresh, 2, Ok(())),
            (&fresh, 3 + REPLAY_WINDOW + 1, Ok(())),
            (&fresh, 2, Err(RejectReason::NonceTooOld)),
            (&restarted, 100, Err(RejectReason::NonceTooOld)),
            (&restarted, 42, Err(RejectReason::NonceTooOld)),
            (&restarted, 101, Ok(())),
            (&restarted, 101, Err(RejectReason::DuplicateNonce)),
        ];
        for (i, (window, nonce, expected)) in cases.into_iter().enumerate() {
            assert_eq!(window.check(nonce), expected, "step {i}: nonce {nonce}");
        }
        assert_eq!(fresh.highest(), 3 + REPLAY_WINDOW + 1);
        assert_eq!(RxWindow::above(100).highest(), 100);
        assert_eq!(restarted.highest(), 101);
    }
}
