//! BIRTH: a HELLO from an authorised client becomes a session at version 1 and a WELCOME.
//!
//! The Noise handshake is verified first (`crypto::GatewayHandshake`); the new session is then
//! created by compare-and-set from "absent" (which also records its id as issued, so ids are
//! never reused), pushed into the XDP map, and only then is the WELCOME sent.

use super::core::{ApplyError, Gateway};
use super::epoch::EPOCH_SHIFT;
use crate::crypto::{Direction, GatewayHandshake, Secret};
use crate::events::EventRecord;
use crate::session::{Input, Millis, NodeId, Session, SessionId};
use crate::store::Expected;
use jvpn_common::maps::TransportBinding;
use jvpn_common::{MessageType, RejectReason, WireHeader};
use std::net::SocketAddr;
use std::sync::Arc;

impl Gateway {
    /// Handles a HELLO datagram from `from`.
    pub async fn on_hello(&self, datagram: &[u8], from: SocketAddr, now: Millis) {
        let handshake = {
            let timestamps = self
                .hello_timestamps
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            GatewayHandshake::read_hello(&self.settings.private_key, datagram, |client| {
                self.settings
                    .admission(client, timestamps.get(client.as_bytes()).copied())
            })
        };
        let handshake = match handshake {
            Ok(h) => h,
            Err(e) => {
                self.metrics.reject(e.reason());
                tracing::warn!(peer = %from, reason = e.reason().name(), error = %e, "HELLO refused");
                self.bus.publish(
                    EventRecord::refusal(None, e.reason())
                        .with_peer(from)
                        .with_message(MessageType::Hello, 0, 0)
                        .with_detail(e.to_string()),
                );
                return;
            }
        };
        // Refuse before committing: a session the XDP table cannot hold would exist in the store
        // with every packet of it dropped. The cache holds exactly what the map holds.
        let capacity = self
            .dataplane
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .session_capacity() as usize;
        if self.sessions.lock().len() >= capacity && self.evict_terminated(now, 0) == 0 {
            self.metrics.reject(RejectReason::TableFull);
            tracing::error!(capacity, peer = %from, "session table full; HELLO refused");
            self.bus.publish(
                EventRecord::refusal(None, RejectReason::TableFull)
                    .with_peer(from)
                    .with_message(MessageType::Hello, 0, 0)
                    .with_detail(format!(
                        "the session table holds {capacity} sessions; raise --max-sessions"
                    )),
            );
            return;
        }
        let client = *handshake.client_public_key();
        let timestamp = handshake.timestamp();
        let Some(entry) = self.settings.client(&client).cloned() else {
            return;
        };
        let id = SessionId::generate(NodeId::SINGLE, &mut rand::thread_rng());
        let welcome = self.settings.welcome_payload(&entry, id.get());
        // The WELCOME takes counter 0 of this run's epoch; the session's later messages follow.
        let header = WireHeader::new(MessageType::Welcome, id.get(), 1, self.epoch << EPOCH_SHIFT);
        let accepted = match handshake.accept(header, &welcome) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(peer = %from, error = %e, "cannot write the WELCOME");
                return;
            }
        };
        let binding = TransportBinding::from_socket_addr(from);
        let mut birth = Session::birth(id, *client.as_bytes(), now);
        birth.hello_timestamp = timestamp;
        let input = Input::HandshakeComplete {
            binding,
            header_key: Secret::new(*accepted.keys.header_key(Direction::ClientToGateway)),
            secrets: Secret::new(accepted.keys.to_stored().to_vec()),
        };
        let transition = match self.machine.transition(&birth, &input, now) {
            Ok(t) => t,
            Err(reject) => {
                self.publish(&reject.event);
                return;
            }
        };
        match self
            .commit(Expected::Absent, transition, Arc::new(accepted.keys))
            .await
        {
            Ok(_) => {
                self.remember_hello(*client.as_bytes(), timestamp);
                tracing::info!(
                    session = %format_args!("{:016x}", id.get()),
                    client = %entry.name,
                    peer = %from,
                    "session born"
                );
                self.send(&accepted.datagram, from).await;
            }
            Err(ApplyError::IdAlreadyIssued) => {
                // 48 random bits collided with an id issued before: the client's HELLO retry
                // draws a new one.
                self.bus.publish(
                    EventRecord::refusal(Some(id.get()), RejectReason::OwnershipAmbiguous)
                        .with_peer(from)
                        .with_detail("drawn session id was issued before; the client will retry"),
                );
            }
            Err(e) => {
                tracing::error!(peer = %from, error = %e, "cannot create the session");
            }
        }
    }
}
