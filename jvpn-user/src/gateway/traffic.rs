//! DATA, KEEPALIVE and TERMINATE from clients.
//!
//! DATA and KEEPALIVE reach the controller only after the XDP program checked their tag, version,
//! binding and nonce; the controller does not rely on it (the program may be detached or in
//! monitor mode): it opens their seal, passes the nonce through its own replay window
//! ([`super::replay`]), re-checks version and binding, then records the traffic as telemetry: no
//! version change (spec section 3); a KEEPALIVE is answered with one. An AEAD failure on a packet
//! the XDP program accepted is counted and reported (a forged tag or a wrong key), and the packet
//! goes nowhere. An opened DATA packet passes cryptokey routing ([`super::tunnel`]) and becomes
//! an [`Effect::WriteTun`] pointing into the datagram, opened in place: the replay check is a few
//! atomic operations under the session table's lock, and nothing is copied or allocated.

use super::core::Controller;
use super::counters::Count;
use super::effect::Effect;
use crate::crypto::{open_body, open_in_place, Direction};
use crate::events::EventRecord;
use crate::session::{Input, Millis, TerminateCause, NONCE_CEILING};
use jvpn_common::control::Terminate;
use jvpn_common::maps::{SessionState, TransportBinding};
use jvpn_common::version::check_version;
use jvpn_common::{MessageType, RejectReason};
use std::net::SocketAddr;

impl Controller {
    /// Handles DATA or KEEPALIVE: an admitted DATA packet becomes an [`Effect::WriteTun`].
    pub(super) fn on_traffic(
        &self,
        datagram: &mut [u8],
        from: SocketAddr,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let Ok(id) = jvpn_common::WireHeader::parse(datagram).map(|h| h.session_id.get()) else {
            return;
        };
        // What the checks below need, without a copy of the record: this runs per datagram.
        let Some((session, keys)) = self.sessions.traffic_view(id) else {
            // The slow path reports the unknown session.
            let _ = self.session_of(datagram, from, out);
            return;
        };
        let Ok(original) = jvpn_common::WireHeader::parse(datagram).map(|h| *h.as_bytes()) else {
            return;
        };
        let base = datagram.as_ptr() as usize;
        let received = datagram.len();
        let (header, payload) = match open_in_place(&keys, Direction::ClientToGateway, datagram) {
            Ok(opened) => opened,
            Err(e) => {
                let header = bytemuck::cast(original);
                self.unauthenticated(&header, from, e.reason(), out);
                self.answer_under_old_keys(&header, &e, from, received, now, out);
                return;
            }
        };
        if !self.admit_nonce(id, &header, from, received, now, out) {
            return;
        }
        // In the XDP program's order: state, version, transport.
        let refusal = if session.state != SessionState::Attached {
            Err(RejectReason::NotAttached)
        } else {
            check_version(header.state_version.get(), session.state_version).and_then(|()| {
                if TransportBinding::from_socket_addr(from) == session.binding {
                    Ok(())
                } else {
                    Err(RejectReason::TransportMismatch)
                }
            })
        };
        if let Err(reason) = refusal {
            self.counters.reject(reason);
            self.client_refused(id, reason);
            out.push(Effect::Publish(
                EventRecord::refusal(Some(id), reason)
                    .with_peer(from)
                    .with_message(
                        header.message_type().unwrap_or(MessageType::Data),
                        header.state_version.get(),
                        header.nonce.get(),
                    )
                    .with_session_version(session.state_version)
                    .with_detail("refused by the controller after the dataplane passed it"),
            ));
            return;
        }
        if let Some(live) = self.sessions.lock().get_mut(&id) {
            live.session.last_rx = live.session.last_rx.max(now);
            // At the current version under the current keys: the client has every REKEY_ACK.
            live.sent_ack = None;
            if header.msg_type == MessageType::Data as u8 {
                live.upstream.add(payload.len());
            }
        }
        if header.nonce.get() > NONCE_CEILING {
            let input = Input::NonceObserved {
                highest: header.nonce.get(),
            };
            let _ = self.apply_input(id, input, now, out);
            return;
        }
        if header.msg_type == MessageType::Data as u8 {
            self.counters.count(Count::DataPacket);
            if self.tunnel && self.admit_upstream(id, session.client_key, payload, out) {
                let start = payload.as_ptr() as usize - base;
                out.push(Effect::WriteTun {
                    packet: start..start + payload.len(),
                });
            }
        } else {
            // A KEEPALIVE is answered in kind: the client's acknowledgement that the path works
            // both ways, whose absence makes it reattach.
            let version = session.state_version;
            if let Some(reply) = self.seal_for(id, MessageType::Keepalive, version, &[], out) {
                out.push(Effect::Send {
                    to: from,
                    datagram: reply,
                });
            }
        }
    }

    /// Handles a TERMINATE from the client: the session ends (+1, STATE_CHANGE).
    pub(super) fn on_terminate(
        &self,
        datagram: &[u8],
        from: SocketAddr,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let Some((id, _, keys)) = self.session_of(datagram, from, out) else {
            return;
        };
        match open_body::<Terminate>(&keys, Direction::ClientToGateway, datagram) {
            Ok((header, _)) if !self.admit_nonce(id, &header, from, datagram.len(), now, out) => {}
            Ok(_) => {
                let input = Input::Terminate {
                    cause: TerminateCause::Client,
                };
                let _ = self.apply_input(id, input, now, out);
            }
            Err(e) => self.seal_failed(datagram, from, &e, out),
        }
    }
}
