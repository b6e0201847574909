//! BIRTH: a HELLO from an authorised client becomes a session at version 1 and a WELCOME.
//!
//! Three stages, so the expensive one runs neither on the receive path nor under a lock:
//!
//! 1. [`Controller::handle`] (`screen_hello`), on the receive path, cheap: the exact length, mac1 (`BAD_MAC`),
//!    and under load a valid mac2 for the source, else a COOKIE_REPLY (`COOKIE_REQUIRED`). What
//!    passes goes into the bounded handshake queue (`HANDSHAKE_BUSY` when full, see
//!    [`super::handshake_pool`]).
//! 2. [`Controller::handshake`] (`read_hello`), on a handshake worker thread: the Noise read (one X25519 and
//!    more), with no lock held, then the replay check and the per-client cap, decided and reserved
//!    atomically ([`super::hello_replay`]).
//! 3. `finish_hello`, on the same worker: the new session is created by compare-and-set
//!    from "absent" (which also records its id as issued, so ids are never reused), pushed into the
//!    XDP map, and only then is the WELCOME sent and the reservation committed.

use super::core::{Applied, ApplyError, Controller};
use super::effect::{Effect, Then};
use super::epoch::EPOCH_SHIFT;
use super::hello_replay::Reservation;
use crate::crypto::{AcceptedHandshake, Direction, GatewayHandshake, Secret};
use crate::events::EventRecord;
use crate::session::{Input, Millis, Session, SessionId};
use crate::store::Expected;
use jvpn_common::hello::HelloMessage;
use jvpn_common::maps::TransportBinding;
use jvpn_common::{MessageType, RejectReason, SessionState, WireHeader};
use std::net::SocketAddr;
use std::sync::Arc;

/// A HELLO that passed the cheap checks, waiting for a handshake worker.
#[derive(Debug)]
pub struct HelloJob {
    /// The datagram.
    pub datagram: Vec<u8>,
    /// Its source.
    pub from: SocketAddr,
    /// When it arrived.
    pub now: Millis,
}

/// A HELLO whose handshake verified and whose timestamp is reserved, ready to commit.
#[derive(Debug)]
pub struct ReadHello {
    handshake: GatewayHandshake,
    reservation: Reservation,
    from: SocketAddr,
    now: Millis,
    /// The config the HELLO was read under (its PSK keyed the session); a reload meanwhile is
    /// checked after the commit ([`Controller::recheck_after_reload`]).
    settings: Arc<crate::config::GatewaySettings>,
}

impl Controller {
    /// Stage 1: length, mac1 and, under load, the cookie. Pushes the job to queue
    /// ([`Effect::QueueHello`]), or the refusal (and a COOKIE_REPLY under load).
    pub(super) fn screen_hello(
        &self,
        datagram: &[u8],
        from: SocketAddr,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let Some(hello) = HelloMessage::from_bytes(datagram) else {
            let detail = format!("HELLO of {} bytes", datagram.len());
            return self.refuse_hello(from, RejectReason::Malformed, detail, out);
        };
        if !self.hello_guard.mac1_verifies(&hello) {
            let detail = "mac1 does not verify under this gateway's public key".into();
            return self.refuse_hello(from, RejectReason::BadMac, detail, out);
        }
        let source = TransportBinding::from_socket_addr(from);
        if self.hello_guard.under_load(now) && !self.hello_guard.mac2_verifies(&hello, &source) {
            let reply = self.hello_guard.cookie_reply(&hello, &source);
            out.push(Effect::SendNow {
                to: from,
                datagram: reply,
            });
            let detail = "under load: answered with a COOKIE_REPLY".into();
            return self.refuse_hello(from, RejectReason::CookieRequired, detail, out);
        }
        out.push(Effect::QueueHello(HelloJob {
            datagram: datagram.to_vec(),
            from,
            now,
        }));
    }

    /// Stages 2 and 3 of a queued HELLO (on a handshake worker): returns the effects, which end
    /// with the new session's [`Effect::Commit`] if it was admitted.
    pub fn handshake(&self, job: HelloJob) -> Vec<Effect> {
        let mut out = Vec::new();
        if let Some(read) = self.read_hello(job, &mut out) {
            self.finish_hello(read, &mut out);
        }
        out
    }

    /// Stage 2: the Noise read, then the atomic replay check and reservation and the
    /// per-client cap. No lock is held across the DH.
    fn read_hello(&self, job: HelloJob, out: &mut Vec<Effect>) -> Option<ReadHello> {
        let settings = self.settings.get();
        let handshake =
            GatewayHandshake::read_hello(&settings.private_key, &job.datagram, |client| {
                settings.admission(client, None)
            });
        let handshake = match handshake {
            Ok(h) => h,
            Err(e) => {
                self.refuse_hello(job.from, e.reason(), e.to_string(), out);
                return None;
            }
        };
        let client = *handshake.client_public_key().as_bytes();
        let cap = settings.handshake.max_sessions_per_client;
        let reserved = self.hellos.reserve(client, handshake.timestamp(), cap, || {
            self.live_sessions_of(&client)
        });
        match reserved {
            Ok(reservation) => Some(ReadHello {
                handshake,
                reservation,
                from: job.from,
                now: job.now,
                settings,
            }),
            Err(refusal) => {
                tracing::warn!(peer = %job.from, client = %handshake.client_public_key(), error = %refusal, "HELLO refused");
                self.refuse_hello(job.from, refusal.reason(), refusal.to_string(), out);
                None
            }
        }
    }

    /// Sessions of `client` not terminated.
    fn live_sessions_of(&self, client: &[u8; 32]) -> usize {
        self.sessions
            .lock()
            .values()
            .filter(|l| {
                l.session.client_key == *client && l.session.state != SessionState::Terminated
            })
            .count()
    }

    /// Counts, logs and publishes the refusal of a HELLO from `from`.
    pub(super) fn refuse_hello(
        &self,
        from: SocketAddr,
        reason: RejectReason,
        detail: String,
        out: &mut Vec<Effect>,
    ) {
        self.counters.reject(reason);
        tracing::debug!(peer = %from, reason = reason.name(), detail, "HELLO refused");
        out.push(Effect::Publish(
            EventRecord::refusal(None, reason)
                .with_peer(from)
                .with_message(MessageType::Hello, 0, 0)
                .with_detail(detail),
        ));
    }

    /// Stage 3: the new session's compare-and-set from "absent"; the WELCOME waits for it
    /// ([`Self::after_welcome`]).
    fn finish_hello(&self, read: ReadHello, out: &mut Vec<Effect>) {
        let ReadHello {
            handshake,
            reservation,
            from,
            now,
            settings,
        } = read;
        // Refuse before committing: a session the XDP table cannot hold would exist in the store
        // with every packet of it dropped. The cache holds exactly what the map holds.
        let capacity = self.capacity;
        if self.sessions.lock().len() >= capacity && self.evict_terminated(now, 0, out) == 0 {
            self.counters.reject(RejectReason::TableFull);
            tracing::error!(capacity, peer = %from, "session table full; HELLO refused");
            out.push(Effect::Publish(
                EventRecord::refusal(None, RejectReason::TableFull)
                    .with_peer(from)
                    .with_message(MessageType::Hello, 0, 0)
                    .with_detail(format!(
                        "the session table holds {capacity} sessions; raise --max-sessions"
                    )),
            ));
            return;
        }
        let client = *handshake.client_public_key();
        let timestamp = handshake.timestamp();
        let Some(entry) = settings.client(&client).cloned() else {
            return;
        };
        let node = settings.node_id();
        let id = self.with_rng(|rng| SessionId::generate(node, rng));
        let welcome = settings.welcome_payload(&entry, id.get());
        // The WELCOME takes counter 0 of this run's epoch; the session's later messages follow.
        let header = WireHeader::new(MessageType::Welcome, id.get(), 1, self.epoch << EPOCH_SHIFT);
        let accepted: AcceptedHandshake = match handshake.accept(header, &welcome) {
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
            Err(reject) => return self.publish(&reject.event, out),
        };
        let then = Then::Welcome {
            session: id.get(),
            to: from,
            datagram: accepted.datagram,
            reservation,
            client: entry.name,
            settings,
        };
        let keys = Arc::new(accepted.keys);
        self.commit(Expected::Absent, transition, keys, then, out);
    }

    /// Once the new session's compare-and-set ran: on commit, the reservation is kept and the
    /// WELCOME sent; otherwise the reservation is released (dropped) and the client retries.
    #[expect(
        clippy::too_many_arguments,
        reason = "the continuation's fields (session, client address, WELCOME, reservation, client name) and the commit's result, into the step's effects"
    )]
    pub(super) fn after_welcome(
        &self,
        session: u64,
        to: SocketAddr,
        datagram: Vec<u8>,
        reservation: Reservation,
        client: &str,
        result: &Result<Applied, ApplyError>,
        out: &mut Vec<Effect>,
    ) {
        match result {
            Ok(applied) => {
                reservation.commit();
                let (Applied::Committed(s) | Applied::Unchanged(s)) = applied;
                tracing::info!(session = %s.id, client, peer = %to, "session born");
                let datagram = self.with_slot_hint(session, datagram);
                out.push(Effect::Send { to, datagram });
            }
            Err(ApplyError::IdAlreadyIssued) => {
                // 48 random bits collided with an id issued before: the client's HELLO retry
                // draws a new one.
                out.push(Effect::Publish(
                    EventRecord::refusal(Some(session), RejectReason::OwnershipAmbiguous)
                        .with_peer(to)
                        .with_detail("drawn session id was issued before; the client will retry"),
                ));
            }
            Err(e) => {
                tracing::error!(peer = %to, error = %e, "cannot create the session");
            }
        }
    }
}
