//! Rekeying, the gateway's side (docs/rekey.md): REKEY_INIT in, the key exchange, the
//! compare-and-set that installs the new keys (version +1, cause REKEY), REKEY_ACK out; and the
//! reject-after rule that ends a session whose keys are worn out.
//!
//! Nothing changes before the REKEY_INIT's seal opens under the current keys, its nonce passes
//! the controller's replay window and its claim names the current version of an ATTACHED session
//! from the bound transport (the XDP program enforces the same before passing it here). The Noise
//! exchange runs before the commit; the new keys become the session's only through the
//! compare-and-set ([`Effect::Commit`]), which writes them into the store with the STATE_CHANGE
//! audit record before [`Controller::settle`] installs them and the shell writes the map entry;
//! [`Controller::reply`] then publishes the events and its continuation ([`Then::RekeyAck`])
//! sends the REKEY_ACK. The REKEY_ACK is sealed
//! under the keys the client sealed its REKEY_INIT with (it cannot open anything else yet), with a
//! gateway-to-client nonce taken before the commit: a nonce is never sealed twice under any key,
//! whatever happens after. The ACK is kept for a while and sent again, byte for byte, if the
//! client goes on at the version the rekey left ([`super::lost_rekey_ack`]).

use super::core::{Applied, ApplyError, Controller};
use super::effect::{Effect, Then};
use super::reply::OpenedControl;
use crate::crypto::{rekey, seal_message, Direction, SessionKeys};
use crate::session::{Input, Millis, SessionId};
use crate::store::Expected;
use jvpn_common::control::{
    Body, RekeyAck, RekeyInit, Terminate, TerminateCause as WireTerminateCause, REKEY_NOISE_LEN,
};
use jvpn_common::maps::{SessionState, TransportBinding};
use jvpn_common::version::check_version;
use jvpn_common::wire::{Be64, WireHeader};
use jvpn_common::RejectReason;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// When a session's keys are worn out: the gateway's reject-after limits (docs/rekey.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RejectAfter {
    /// Keys older than this end the session.
    pub age: Duration,
    /// Keys that sealed or opened more messages than this (in either direction) end the session.
    pub messages: u64,
}

impl RejectAfter {
    /// Whether keys installed at `keys_at`, which carried `messages` messages, may no longer be
    /// used at `now`. A clock that went backwards counts as no time elapsed.
    pub fn worn_out(&self, keys_at: Millis, now: Millis, messages: u64) -> bool {
        let age = now.saturating_sub(keys_at);
        u128::from(age) >= self.age.as_millis() || messages >= self.messages
    }
}

/// How long and how much a session's current keys have served: soft state of the live table.
/// A restart starts it again from the record's last transition, which is the last rekey unless
/// a reattach came after it (docs/rekey.md: the limit is then late by at most that gap).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyUse {
    /// When the keys were installed.
    pub since: Millis,
    /// The gateway-to-client nonce counter when they were.
    pub tx_from: u64,
    /// The highest client-to-gateway nonce accepted when they were.
    pub rx_from: u64,
}

impl KeyUse {
    /// Keys installed at `since`, with both nonce counters where they are.
    pub fn new(since: Millis, tx_from: u64, rx_from: u64) -> Self {
        Self {
            since,
            tx_from,
            rx_from,
        }
    }

    /// Messages carried under these keys, the larger direction.
    pub fn messages(&self, next_tx: u64, rx_highest: u64) -> u64 {
        next_tx
            .saturating_sub(self.tx_from)
            .max(rx_highest.saturating_sub(self.rx_from))
    }
}

impl super::live::LiveSession {
    /// Takes the keys of a newer committed `session` if they differ from the current ones (a
    /// rekey committed): the keys always follow the record, so a commit that lost a race never
    /// installs keys of another version. A record without keys (TERMINATED) keeps the old ones,
    /// which still seal its REJECTs.
    pub fn rotate_keys(&mut self, session: &crate::session::Session) {
        let Ok(stored) = <&[u8; SessionKeys::STORED_LEN]>::try_from(session.secrets.as_slice())
        else {
            return;
        };
        if !self.keys.matches_stored(stored) {
            self.keys = Arc::new(SessionKeys::from_stored(stored));
            self.key_use = KeyUse::new(session.changed_at, self.next_tx_nonce, self.rx.highest());
        }
    }

    /// Whether the current keys are worn out at `now` under `limits`.
    pub fn keys_worn_out(&self, limits: &RejectAfter, now: Millis) -> bool {
        let messages = self.key_use.messages(self.next_tx_nonce, self.rx.highest());
        limits.worn_out(self.key_use.since, now, messages)
    }
}

/// Whether a REKEY_INIT claiming `claimed` from `from` may start a key exchange for a session in
/// `state` at `current` bound to `binding`.
pub fn admit_rekey(
    state: SessionState,
    current: u64,
    binding: TransportBinding,
    claimed: u64,
    from: SocketAddr,
) -> Result<(), RejectReason> {
    match state {
        SessionState::Terminated => return Err(RejectReason::Terminated),
        SessionState::Birth | SessionState::Recovering => return Err(RejectReason::NotAttached),
        SessionState::Attached => {}
    }
    check_version(claimed, current)?;
    if TransportBinding::from_socket_addr(from) != binding {
        return Err(RejectReason::TransportMismatch);
    }
    Ok(())
}

impl Controller {
    /// Handles a REKEY_INIT from `from`: the key exchange and the compare-and-set of the new keys
    /// (an [`Effect::Commit`] whose outcome [`Self::after_rekey`] answers), or a REJECT.
    pub(super) fn on_rekey_init(
        &self,
        datagram: &[u8],
        from: SocketAddr,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let Some(OpenedControl {
            id,
            session,
            keys,
            header,
            body: init,
        }) = self.open_control::<RekeyInit>(datagram, from, now, out)
        else {
            return;
        };
        let claimed = init.acked_version.get();
        let current = session.state_version;
        let refusal = if header.state_version.get() != claimed {
            Some((
                RejectReason::Malformed,
                format!(
                    "header version {} differs from the body's acknowledged version {claimed}",
                    header.state_version.get()
                ),
            ))
        } else {
            admit_rekey(session.state, current, session.binding, claimed, from)
                .err()
                .map(|reason| {
                    let detail = format!(
                        "REKEY_INIT claims version {claimed} from {from}; the session is {} at {current}",
                        session.state.name()
                    );
                    (reason, detail)
                })
        };
        if let Some((reason, detail)) = refusal {
            return self.refuse(id, from, &header, reason, current, detail, now, out);
        }
        let (new_keys, noise) = match rekey::respond(&keys, id, claimed, &init.noise) {
            Ok(done) => done,
            Err(e) => {
                let reason = RejectReason::BadSeal;
                return self.refuse(id, from, &header, reason, current, e.to_string(), now, out);
            }
        };
        let Some(ack) = self.seal_rekey_ack(id, &keys, current, noise) else {
            return;
        };
        let input = Input::Rekey {
            claimed_version: claimed,
            secrets: new_keys.to_stored().to_vec().into(),
        };
        let then = Then::RekeyAck {
            id,
            to: from,
            version: current,
            nonce: header.nonce.get(),
            datagram: ack,
        };
        // As `apply`, but the commit carries the new keys.
        match self.machine.transition(&session, &input, now) {
            Err(reject) => {
                self.counters.reject(reject.reason);
                self.publish(&reject.event, out);
                let nonce = header.nonce.get();
                self.send_reject(id, from, reject.reason, current, nonce, now, out);
            }
            Ok(t) => self.commit(Expected::Version(current), t, Arc::new(new_keys), then, out),
        }
    }

    /// Answers a REKEY_INIT once its compare-and-set ran: the REKEY_ACK sealed before the commit,
    /// or the REJECT of why not.
    #[expect(
        clippy::too_many_arguments,
        reason = "the continuation's fields (session, destination, version, nonce, the sealed ACK), the commit's result and the time, into the step's effects"
    )]
    pub(super) fn after_rekey(
        &self,
        id: u64,
        to: SocketAddr,
        version: u64,
        nonce: u64,
        datagram: Vec<u8>,
        result: &Result<Applied, ApplyError>,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        match result {
            Ok(Applied::Committed(s)) if s.state == SessionState::Attached => {
                tracing::info!(
                    session = %SessionId::show(id),
                    state_version = s.state_version,
                    "rekeyed"
                );
                self.keep_rekey_ack(id, version, &datagram, now);
                out.push(Effect::Send { to, datagram });
            }
            Ok(_) => {}
            Err(e) => self.refuse_uncommitted(id, to, version, nonce, e, "rekey", now, out),
        }
    }

    /// Tells the client of a session the timers ended for worn-out keys why, with a sealed
    /// TERMINATE(REKEY_TIMEOUT) to its binding (its keys still open it), and says so in the log.
    pub(super) fn after_worn_out(
        &self,
        id: u64,
        result: &Result<Applied, ApplyError>,
        out: &mut Vec<Effect>,
    ) {
        let Ok(Applied::Committed(s)) = result else {
            return;
        };
        let limits = self.settings.get().timeouts.reject_after();
        tracing::warn!(
            session = %SessionId::show(id),
            state_version = s.state_version,
            reject_after_ms = limits.age.as_millis() as u64,
            reject_after_messages = limits.messages,
            "session terminated: its keys reached the reject-after limit without a rekey (REKEY_TIMEOUT); the client must start a new handshake"
        );
        let terminate = Terminate::new(WireTerminateCause::RekeyTimeout);
        let to = s.binding.to_socket_addr();
        self.send_body(id, to, s.state_version, &terminate, out);
    }

    /// REKEY_ACK at `current + 1`, sealed under the keys of the REKEY_INIT (`old`), with a nonce
    /// of the session's gateway-to-client counter.
    fn seal_rekey_ack(
        &self,
        id: u64,
        old: &SessionKeys,
        current: u64,
        noise: [u8; REKEY_NOISE_LEN],
    ) -> Option<Vec<u8>> {
        let new_version = current.checked_add(1)?;
        let nonce = self.sessions.lock().get_mut(&id)?.take_nonce()?;
        let body = RekeyAck {
            new_version: Be64::new(new_version),
            noise,
        };
        let header = WireHeader::new(RekeyAck::MESSAGE_TYPE, id, new_version, nonce);
        seal_message(old, Direction::GatewayToClient, header, body.as_body())
            .inspect_err(|e| {
                tracing::error!(session = %SessionId::show(id), error = %e, "cannot seal REKEY_ACK")
            })
            .ok()
    }
}

#[cfg(test)]
mod tests;
