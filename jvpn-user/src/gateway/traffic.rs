//! DATA, KEEPALIVE and TERMINATE from clients.
//!
//! DATA and KEEPALIVE reach the controller only after the XDP program checked their tag, version,
//! binding and nonce; the controller does not rely on it (the program may be detached or in
//! monitor mode): it opens their seal, passes the nonce through its own replay window
//! ([`super::replay`]), re-checks version and binding, then records the traffic as telemetry: no
//! version change (spec section 3); a KEEPALIVE is answered with one. An AEAD failure on a packet
//! the XDP program accepted is counted and reported (a forged tag or a wrong key), and the packet
//! goes nowhere. DATA is handled inline in the receive loop: the replay check is a few atomic
//! operations under the session table's lock, held for no await.

use super::core::Gateway;
use super::counters::Count;
use crate::crypto::{open_body, open_in_place, Direction};
use crate::events::EventRecord;
use crate::session::{Input, Millis, TerminateCause, NONCE_CEILING};
use jvpn_common::control::Terminate;
use jvpn_common::maps::{SessionState, TransportBinding};
use jvpn_common::version::check_version;
use jvpn_common::{MessageType, RejectReason};
use std::net::SocketAddr;

impl Gateway {
    /// Handles DATA or KEEPALIVE; returns the opened inner packet of a DATA message.
    pub async fn on_traffic<'a>(
        &self,
        datagram: &'a mut [u8],
        from: SocketAddr,
        now: Millis,
    ) -> Option<&'a mut [u8]> {
        let (id, session, keys) = self.session_of(datagram, from)?;
        let original = *jvpn_common::WireHeader::parse(datagram).ok()?.as_bytes();
        let (header, payload) = match open_in_place(&keys, Direction::ClientToGateway, datagram) {
            Ok(opened) => opened,
            Err(e) => {
                let header = bytemuck::cast(original);
                self.unauthenticated(&header, from, e.reason());
                return None;
            }
        };
        if !self.admit_nonce(id, &header, from) {
            return None;
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
            self.bus.publish(
                EventRecord::refusal(Some(id), reason)
                    .with_peer(from)
                    .with_message(
                        header.message_type().unwrap_or(MessageType::Data),
                        header.state_version.get(),
                        header.nonce.get(),
                    )
                    .with_session_version(session.state_version)
                    .with_detail("refused by the controller after the dataplane passed it"),
            );
            return None;
        }
        if let Some(live) = self.sessions.lock().get_mut(&id) {
            live.session.last_rx = live.session.last_rx.max(now);
            if header.msg_type == MessageType::Data as u8 {
                live.upstream.add(payload.len());
            }
        }
        if header.nonce.get() > NONCE_CEILING {
            let input = Input::NonceObserved {
                highest: header.nonce.get(),
            };
            let _ = self.apply(id, input, now).await;
            return None;
        }
        if header.msg_type == MessageType::Data as u8 {
            self.counters.count(Count::DataPacket);
            Some(payload)
        } else {
            // A KEEPALIVE is answered in kind: the client's acknowledgement that the path works
            // both ways, whose absence makes it reattach.
            let version = session.state_version;
            if let Some(reply) = self.seal_for(id, MessageType::Keepalive, version, &[]) {
                self.send(&reply, from).await;
            }
            None
        }
    }

    /// Handles a TERMINATE from the client: the session ends (+1, STATE_CHANGE).
    pub async fn on_terminate(&self, datagram: &[u8], from: SocketAddr, now: Millis) {
        let Some((id, _, keys)) = self.session_of(datagram, from) else {
            return;
        };
        match open_body::<Terminate>(&keys, Direction::ClientToGateway, datagram) {
            Ok((header, _)) if !self.admit_nonce(id, &header, from) => {}
            Ok(_) => {
                let input = Input::Terminate {
                    cause: TerminateCause::Client,
                };
                let _ = self.apply(id, input, now).await;
            }
            Err(e) => self.seal_failed(datagram, from, &e),
        }
    }
}
