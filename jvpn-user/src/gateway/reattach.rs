//! The jump: REATTACH_REQUEST, return-routability by PATH_CHALLENGE / PATH_RESPONSE, then the
//! compare-and-set that moves the session (docs/protocol.md, "Reattach").
//!
//! Nothing changes before the request's seal verifies and its nonce passes the controller's replay
//! window ([`super::replay`]), and the binding only moves after the new
//! address returned a fresh random token, sealed (QUIC path validation, RFC 9000 section 8.2;
//! MOBIKE's return routability check, RFC 4555). A request captured and replayed from another
//! address gets a challenge its sender cannot answer.

use super::core::{Applied, ApplyError, Controller};
use super::effect::{Effect, Then};
use super::live::{PendingChallenge, CHALLENGE_LIFETIME_MS};
use super::reply::OpenedControl;

use crate::session::{Input, Millis, SessionId};
use jvpn_common::control::{
    PathChallenge, PathResponse, ReattachAck, ReattachRequest, PATH_TOKEN_LEN,
};
use jvpn_common::maps::{SessionState, TransportBinding};
use jvpn_common::version::check_version;
use jvpn_common::wire::Be64;
use jvpn_common::RejectReason;
use rand::RngCore;
use std::net::SocketAddr;

/// Whether a REATTACH_REQUEST claiming `claimed` may start path validation of a session in
/// `state` at `current`: the client's acknowledged version must be the current one, or, for a
/// session the gateway moved to RECOVERING while the client was away, the one just before.
pub fn admit_claim(state: SessionState, current: u64, claimed: u64) -> Result<(), RejectReason> {
    match state {
        SessionState::Terminated => Err(RejectReason::Terminated),
        SessionState::Birth => Err(RejectReason::NotAttached),
        SessionState::Attached | SessionState::Recovering => {
            let recovering_gap =
                state == SessionState::Recovering && claimed.checked_add(1) == Some(current);
            if recovering_gap {
                Ok(())
            } else {
                check_version(claimed, current)
            }
        }
    }
}

impl Controller {
    /// Handles a REATTACH_REQUEST from `from`: a PATH_CHALLENGE to the new address, or a REJECT.
    pub(super) fn on_reattach_request(
        &self,
        datagram: &[u8],
        from: SocketAddr,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let Some(OpenedControl {
            id,
            session,
            keys: _,
            header,
            body: request,
        }) = self.open_control::<ReattachRequest>(datagram, from, now, out)
        else {
            return;
        };
        let claimed = request.acked_version.get();
        let current = session.state_version;
        if header.state_version.get() != claimed {
            let detail = format!(
                "header version {} differs from the body's acknowledged version {claimed}",
                header.state_version.get()
            );
            let reason = RejectReason::Malformed;
            return self.refuse(id, from, &header, reason, current, detail, now, out);
        }
        if let Err(reason) = admit_claim(session.state, current, claimed) {
            let detail = format!(
                "REATTACH_REQUEST claims version {claimed}; the session is {} at {current}",
                session.state.name()
            );
            return self.refuse(id, from, &header, reason, current, detail, now, out);
        }
        let binding = TransportBinding::from_socket_addr(from);
        let owned_here = !self.ownership.is_unsure(id);
        if session.state == SessionState::Attached && session.binding == binding && owned_here {
            // Already bound here: nothing to move. Acknowledge the current version.
            let ack = ReattachAck {
                new_version: Be64::new(current),
                binding,
            };
            return self.send_body(id, from, current, &ack, out);
        }
        let mut token = [0u8; PATH_TOKEN_LEN];
        self.with_rng(|rng| rng.fill_bytes(&mut token));
        let attempt = request.attempt.get();
        if let Some(live) = self.sessions.lock().get_mut(&id) {
            live.add_challenge(PendingChallenge {
                token,
                addr: from,
                attempt,
                version: current,
                expires_at: now + CHALLENGE_LIFETIME_MS,
            });
        }
        tracing::info!(
            session = %SessionId::show(id),
            peer = %from,
            state_version = current,
            "path challenge sent"
        );
        let challenge = PathChallenge {
            token,
            attempt: request.attempt,
        };
        self.send_body(id, from, current, &challenge, out);
    }

    /// Handles a PATH_RESPONSE from `from`: the return-routability proof, then the CAS (an
    /// [`Effect::Commit`] whose outcome [`Self::after_reattach`] answers).
    pub(super) fn on_path_response(
        &self,
        datagram: &[u8],
        from: SocketAddr,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let Some(OpenedControl {
            id,
            session,
            keys: _,
            header,
            body: response,
        }) = self.open_control::<PathResponse>(datagram, from, now, out)
        else {
            return;
        };
        let challenge = self.sessions.lock().get_mut(&id).and_then(|live| {
            live.take_challenge(&response.token, response.attempt.get(), from, now)
        });
        let current = session.state_version;
        let Some(challenge) = challenge else {
            let detail = "no outstanding challenge matches this token, attempt and address".into();
            let reason = RejectReason::PathValidation;
            return self.refuse(id, from, &header, reason, current, detail, now, out);
        };
        if let Err(reason) = check_version(header.state_version.get(), challenge.version) {
            let detail = format!(
                "PATH_RESPONSE carries version {}; the challenge was issued at {}",
                header.state_version.get(),
                challenge.version
            );
            return self.refuse(id, from, &header, reason, current, detail, now, out);
        }
        let input = Input::ReattachValidated {
            claimed_version: challenge.version,
            new_binding: TransportBinding::from_socket_addr(from),
        };
        let then = Then::ReattachAck {
            id,
            to: from,
            version: current,
            nonce: header.nonce.get(),
        };
        if let Err(e) = self.apply(id, input, now, then, out) {
            self.refuse_uncommitted(
                id,
                from,
                current,
                header.nonce.get(),
                &e,
                "reattach",
                now,
                out,
            );
        }
    }

    /// Answers a validated path once its compare-and-set ran: REATTACH_ACK at the new version,
    /// or the REJECT of why not.
    #[expect(
        clippy::too_many_arguments,
        reason = "the continuation's fields (session, destination, version, nonce), the commit's result and the time, into the step's effects"
    )]
    pub(super) fn after_reattach(
        &self,
        id: u64,
        to: SocketAddr,
        version: u64,
        nonce: u64,
        result: &Result<Applied, ApplyError>,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        match result {
            Ok(Applied::Committed(s)) => {
                let ack = ReattachAck {
                    new_version: Be64::new(s.state_version),
                    binding: s.binding,
                };
                self.send_body(id, to, s.state_version, &ack, out);
            }
            Ok(Applied::Unchanged(_)) => {}
            Err(e) => self.refuse_uncommitted(id, to, version, nonce, e, "reattach", now, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionState::*;

    /// Spec section 4 and 6: a stale or jumping claim is refused with its reason; the
    /// RECOVERING gap (docs/protocol.md) is the one exception, and only in RECOVERING.
    #[test]
    fn claims_are_admitted_only_at_the_current_version() {
        let cases = [
            (Attached, 5, 5, Ok(())),
            (Attached, 5, 4, Err(RejectReason::StaleVersion)),
            (Attached, 5, 6, Err(RejectReason::VersionJump)),
            (Recovering, 5, 5, Ok(())),
            (Recovering, 5, 4, Ok(())),
            (Recovering, 5, 3, Err(RejectReason::StaleVersion)),
            (Recovering, 5, 6, Err(RejectReason::VersionJump)),
            (Terminated, 5, 5, Err(RejectReason::Terminated)),
            (Birth, 0, 0, Err(RejectReason::NotAttached)),
            (Recovering, 0, u64::MAX, Err(RejectReason::VersionJump)),
        ];
        for (state, current, claimed, expected) in cases {
            assert_eq!(
                admit_claim(state, current, claimed),
                expected,
                "{state:?} at {current}, claim {claimed}"
            );
        }
    }
}
