//! A replayed message gets an explicit REJECT (spec section 6.2: "silent ignore is forbidden"),
//! without handing the replayer a reflector or the client a reason to give up.
//!
//! Where a replay is found: the XDP program's replay window (a `DUPLICATE_NONCE` or
//! `NONCE_TOO_OLD` drop, read from the event stream through [`Controller::on_dataplane_drop`]),
//! or the controller's own window ([`super::replay`]) when the program did not enforce. Either
//! way the refusal is counted and published as a SECURITY_EVENT, and a sealed
//! `REJECT{DUPLICATE_NONCE | NONCE_TOO_OLD, current version, the nonce}` is sent only if all of:
//! - the replay arrived from the session's **bound transport**, and the REJECT goes there. A
//!   replay's source address is the sender's choice; answering any other address would reflect
//!   traffic at whoever the attacker names. A replay from elsewhere keeps its own handling (XDP
//!   drops a DATA/KEEPALIVE from another address as `TRANSPORT_MISMATCH` before its nonce is
//!   looked at, which [`super::roaming`] answers; a control message from elsewhere is only
//!   reported).
//! - the session's REJECT budget for that address allows it ([`super::reject_budget`]): at most
//!   `REJECTS_PER_SECOND` a second, the bound transport's bucket being the client's own.
//! - the REJECT is no larger than the datagram that caused it ([`fits`]), so a replay gains no
//!   amplification. A KEEPALIVE (`sealed_len(0)`) is shorter than a REJECT, so a replayed
//!   KEEPALIVE gets only the event; DATA, REATTACH_REQUEST, PATH_RESPONSE and TERMINATE are long
//!   enough.
//! - the session holds keys and is not TERMINATED (that drop is [`super::terminated`]'s).
//!
//! The client takes such a REJECT as information (`RejectReason::is_replay`): it counts and logs
//! it and changes nothing, so a REJECT into the genuine client's session cannot make it abandon a
//! jump or its session.
//!
//! XDP drops reach the controller through the ring buffer, whose events are rate-limited per
//! reason and CPU (`GatewayConfig::events_per_second`): past that rate a replay is still dropped
//! and counted, but not answered, as ICMP errors are rate-limited. In monitor mode the program
//! passes what it would drop, so a replay can be answered twice, once per window; both answers
//! come out of the same budget.

use super::core::Controller;
use super::effect::Effect;
use crate::crypto::SessionKeys;
use crate::dataplane::DataplaneEvent;
use crate::session::{Millis, SessionId};
use jvpn_common::control::{sealed_len, Reject};
use jvpn_common::maps::{SessionState, TransportBinding};
use jvpn_common::RejectReason;
use std::net::SocketAddr;

/// Bytes in front of a UDP payload in the smallest Ethernet frame that carries it: the Ethernet
/// header (14), an IPv4 header without options (20) or an IPv6 header (40), the UDP header (8).
/// Protocol constants of Ethernet, IP and UDP, not of jvpn's wire format.
const fn frame_overhead(ipv4: bool) -> usize {
    14 + if ipv4 { 20 } else { 40 } + 8
}

/// Whether a REJECT is no larger than a datagram of `received` bytes (UDP payload).
pub(super) const fn fits(received: usize) -> bool {
    sealed_len(size_of::<Reject>()) <= received
}

/// Whether a datagram of `payload` bytes sent to `to` is no larger than a received frame of
/// `frame_len` bytes: the answer's own frame is the smallest one that carries it to `to`'s family.
pub(super) fn frame_fits(payload: usize, frame_len: u32, to: SocketAddr) -> bool {
    let ipv4 = to.ip().to_canonical().is_ipv4();
    payload + frame_overhead(ipv4) <= frame_len as usize
}

/// Whether a REJECT sent to `to` is no larger than a frame of `frame_len` bytes.
fn fits_frame(frame_len: u32, to: SocketAddr) -> bool {
    frame_fits(sealed_len(size_of::<Reject>()), frame_len, to)
}

impl Controller {
    /// Answers a replay refused by the controller's window, if the rules of the module doc allow:
    /// `received` is the refused datagram's length.
    #[expect(
        clippy::too_many_arguments,
        reason = "the answer names the session, the refusal, where the replay came from, its size, its nonce and the time, and goes into the step's effects; a struct would only name them again"
    )]
    pub(super) fn answer_replay(
        &self,
        id: u64,
        reason: RejectReason,
        from: SocketAddr,
        received: usize,
        nonce: u64,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        if fits(received) {
            self.reject_replay(id, reason, from, nonce, now, out);
        }
    }

    /// Answers an XDP `DUPLICATE_NONCE` / `NONCE_TOO_OLD` drop, if the rules of the module doc
    /// allow.
    pub(super) fn answer_replayed_drop(
        &self,
        event: &DataplaneEvent,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        if fits_frame(event.frame_len, event.source) {
            let id = event.session_id;
            self.reject_replay(id, event.reason, event.source, event.nonce, now, out);
        }
    }

    /// Sends the REJECT to session `id`'s bound transport if `from` is it (the budget permitting).
    fn reject_replay(
        &self,
        id: u64,
        reason: RejectReason,
        from: SocketAddr,
        nonce: u64,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        if !reason.is_replay() {
            return;
        }
        let Some((session, _)) = self.sessions.snapshot(id) else {
            return;
        };
        let has_keys = session.secrets.len() == SessionKeys::STORED_LEN;
        let bound = TransportBinding::from_socket_addr(from) == session.binding;
        if !bound || !has_keys || session.state == SessionState::Terminated {
            return;
        }
        // The binding's own form of the address, whatever form `from` took (IPv4-mapped or not).
        let to = session.binding.to_socket_addr();
        tracing::info!(
            session = %SessionId::show(id),
            reason = reason.name(),
            nonce,
            peer = %to,
            "a replay from the bound transport; telling the client"
        );
        self.send_reject(id, to, reason, session.state_version, nonce, now, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A REJECT never outgrows what caused it: no reply to a KEEPALIVE-sized replay, one to a
    /// REJECT-sized or larger one; by frame, the family's own headers count on both sides.
    #[test]
    fn a_reject_is_never_larger_than_the_replay() {
        let reject = sealed_len(size_of::<Reject>());
        assert!(!fits(sealed_len(0)), "a KEEPALIVE is shorter than a REJECT");
        assert!(!fits(reject - 1));
        assert!(fits(reject));
        let v4: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let mapped: SocketAddr = "[::ffff:192.0.2.1]:4000".parse().unwrap();
        let v6: SocketAddr = "[2001:db8::1]:4000".parse().unwrap();
        let frame_v4 = (reject + 42) as u32;
        assert!(fits_frame(frame_v4, v4) && fits_frame(frame_v4, mapped));
        assert!(!fits_frame(frame_v4 - 1, v4) && !fits_frame(frame_v4 - 1, mapped));
        assert!(
            !fits_frame(frame_v4, v6),
            "IPv6 headers are 20 bytes longer"
        );
        assert!(fits_frame(frame_v4 + 20, v6));
    }
}
