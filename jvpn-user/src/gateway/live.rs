//! The controller's in-memory view of its sessions: the last committed record of each, its keys,
//! its gateway-to-client nonce counter, its client-to-gateway replay window, its outstanding path
//! challenges, its REJECT budgets and its last REKEY_ACK.
//!
//! The store is the truth; this table is a cache of committed records plus the soft state that
//! is not worth a durable write (telemetry, nonces within an epoch, challenges). A record only
//! ever replaces an older version, so concurrent commits cannot move the cache backwards.

use super::epoch::{counter_exhausted, is_last_of_epoch};
use super::lost_rekey_ack::SentAck;
use super::reject_budget::RejectBudget;
use super::rekey::KeyUse;
use super::replay::RxWindow;
use crate::control::TrafficCount;
use crate::crypto::SessionKeys;
use crate::session::{Millis, Session, CLIENT_KEY_LEN};
use jvpn_common::control::PATH_TOKEN_LEN;
use jvpn_common::maps::{SessionState, TransportBinding};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// How long a PATH_CHALLENGE may be answered.
pub const CHALLENGE_LIFETIME_MS: Millis = 5_000;
/// Challenges kept per session: enough for two transports racing, bounded against floods.
pub const MAX_CHALLENGES: usize = 4;

/// A PATH_CHALLENGE sent to a new transport and not yet answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingChallenge {
    /// The random token the client must return.
    pub token: [u8; PATH_TOKEN_LEN],
    /// The address the challenge went to; the response must come from it.
    pub addr: SocketAddr,
    /// The client's reattach attempt.
    pub attempt: u64,
    /// The session version the challenge was issued at; the compare-and-set expects it.
    pub version: u64,
    /// When the challenge stops being valid.
    pub expires_at: Millis,
}

/// One live session.
pub struct LiveSession {
    /// The last committed record (with telemetry applied).
    pub session: Session,
    /// The session's keys.
    pub keys: Arc<SessionKeys>,
    /// The next gateway-to-client nonce.
    pub next_tx_nonce: u64,
    /// The controller's client-to-gateway replay window ([`super::replay`]).
    pub rx: RxWindow,
    /// Outstanding path challenges, oldest first.
    pub challenges: Vec<PendingChallenge>,
    /// REJECT budgets per source address.
    pub rejects: RejectBudget,
    /// Since when and for how many messages the current keys served ([`super::rekey`]).
    pub key_use: KeyUse,
    /// The last rekey's REKEY_ACK, kept for a while in case it was lost ([`super::lost_rekey_ack`]).
    pub sent_ack: Option<SentAck>,
    /// DATA received from the client: inner packets after authentication (`jvpn show`).
    pub upstream: TrafficCount,
    /// DATA sealed to the client: inner packets (`jvpn show`).
    pub downstream: TrafficCount,
    /// The session's slot in this node's XDP session array, once its entry was written there:
    /// the slot hint of every message sealed to the client (`docs/protocol.md`, "Slot hint").
    pub slot: Option<u32>,
}

impl LiveSession {
    /// A live session for a committed record.
    pub fn new(session: Session, keys: Arc<SessionKeys>, first_tx_nonce: u64) -> Self {
        Self {
            key_use: KeyUse::new(session.changed_at, first_tx_nonce, 0),
            session,
            keys,
            next_tx_nonce: first_tx_nonce,
            rx: RxWindow::default(),
            challenges: Vec::new(),
            rejects: RejectBudget::default(),
            sent_ack: None,
            upstream: TrafficCount::default(),
            downstream: TrafficCount::default(),
            slot: None,
        }
    }

    /// Takes the next gateway-to-client nonce, or `None` once the counter reached the last value
    /// of its epoch: the next nonce would lie in the following epoch's range, where a later run
    /// numbers its messages. The timers end the session well before ([`Self::nonce_exhausted`]).
    pub fn take_nonce(&mut self) -> Option<u64> {
        let n = self.next_tx_nonce;
        if is_last_of_epoch(n) {
            return None;
        }
        self.next_tx_nonce = n + 1;
        Some(n)
    }

    /// Whether the gateway-to-client counter entered the margin at the top of its epoch, so the
    /// session must be terminated now (with nonces left for the messages that announce it).
    pub fn nonce_exhausted(&self) -> bool {
        counter_exhausted(self.next_tx_nonce)
    }

    /// Records a challenge, replacing one to the same address and evicting the oldest beyond
    /// [`MAX_CHALLENGES`].
    pub fn add_challenge(&mut self, challenge: PendingChallenge) {
        self.challenges.retain(|c| c.addr != challenge.addr);
        if self.challenges.len() >= MAX_CHALLENGES {
            self.challenges.remove(0);
        }
        self.challenges.push(challenge);
    }

    /// Removes and returns the challenge that `token`, `attempt` and `from` answer, if it is
    /// still valid at `now`.
    pub fn take_challenge(
        &mut self,
        token: &[u8; PATH_TOKEN_LEN],
        attempt: u64,
        from: SocketAddr,
        now: Millis,
    ) -> Option<PendingChallenge> {
        self.challenges.retain(|c| c.expires_at > now);
        let i = self
            .challenges
            .iter()
            .position(|c| &c.token == token && c.attempt == attempt && c.addr == from)?;
        Some(self.challenges.remove(i))
    }
}

/// The fields of a session's record that DATA and KEEPALIVE are checked against
/// ([`SessionTable::traffic_view`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrafficView {
    /// Lifecycle state: only ATTACHED carries traffic.
    pub state: SessionState,
    /// The current version.
    pub state_version: u64,
    /// The transport traffic must come from.
    pub binding: TransportBinding,
    /// The client's static public key (cryptokey routing).
    pub client_key: [u8; CLIENT_KEY_LEN],
}

/// Every live session of this gateway, by id.
#[derive(Default)]
pub struct SessionTable {
    sessions: Mutex<HashMap<u64, LiveSession>>,
}

impl SessionTable {
    /// Locks the table. Never held across an await or a store commit.
    pub fn lock(&self) -> MutexGuard<'_, HashMap<u64, LiveSession>> {
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What the DATA path checks a datagram against, and the keys, under one lock and without
    /// copying the record (whose key material is a heap allocation): one per datagram otherwise.
    pub fn traffic_view(&self, id: u64) -> Option<(TrafficView, Arc<SessionKeys>)> {
        self.lock().get(&id).map(|l| {
            let s = &l.session;
            let view = TrafficView {
                state: s.state,
                state_version: s.state_version,
                binding: s.binding,
                client_key: s.client_key,
            };
            (view, l.keys.clone())
        })
    }

    /// A copy of the session's record and its keys.
    pub fn snapshot(&self, id: u64) -> Option<(Session, Arc<SessionKeys>)> {
        self.lock()
            .get(&id)
            .map(|l| (l.session.clone(), l.keys.clone()))
    }

    /// Installs a committed record if it is newer than the one held (or the first); the
    /// transport binding of the record held before, if one was (one lock for both).
    pub fn install(
        &self,
        session: Session,
        keys: Arc<SessionKeys>,
        first_tx_nonce: u64,
    ) -> Option<TransportBinding> {
        let mut table = self.lock();
        match table.get_mut(&session.id.get()) {
            Some(live) => {
                let before = live.session.binding;
                if live.session.state_version < session.state_version {
                    live.challenges
                        .retain(|c| c.version >= session.state_version);
                    live.rotate_keys(&session);
                    live.sent_ack = None;
                    live.session = session;
                    // A takeover of a stale copy numbers from its fresh epoch: another node has
                    // sent under the session's keys since. Nonces only go up, so this never
                    // reuses one.
                    live.next_tx_nonce = live.next_tx_nonce.max(first_tx_nonce);
                }
                Some(before)
            }
            None => {
                table.insert(
                    session.id.get(),
                    LiveSession::new(session, keys, first_tx_nonce),
                );
                None
            }
        }
    }

    /// Replaces the record of a session still held, if `session` is newer; whether it is held.
    /// Unlike [`Self::install`], never adds one.
    pub fn refresh(&self, session: Session) -> bool {
        let mut table = self.lock();
        let Some(live) = table.get_mut(&session.id.get()) else {
            return false;
        };
        if live.session.state_version < session.state_version {
            live.challenges
                .retain(|c| c.version >= session.state_version);
            live.sent_ack = None;
            live.session = session;
        }
        true
    }

    /// Applies telemetry: replaces the record if the version is unchanged.
    pub fn telemetry(&self, session: &Session) {
        if let Some(live) = self.lock().get_mut(&session.id.get()) {
            if live.session.state_version == session.state_version {
                live.session.last_rx = live.session.last_rx.max(session.last_rx);
            }
        }
    }

    /// Ids of every session held.
    pub fn ids(&self) -> Vec<u64> {
        self.lock().keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn challenge(addr: &str, token: u8, version: u64) -> PendingChallenge {
        PendingChallenge {
            token: [token; PATH_TOKEN_LEN],
            addr: addr.parse().expect("addr"),
            attempt: 1,
            version,
            expires_at: 10_000,
        }
    }

    #[test]
    fn a_challenge_is_answered_once_from_its_address_and_in_time() {
        let keys = Arc::new(SessionKeys::from_stored(&[1; SessionKeys::STORED_LEN]));
        let id = crate::session::SessionId::new(5).expect("nonzero");
        let mut live = LiveSession::new(Session::birth(id, [0; 32], 0), keys, 1);
        live.add_challenge(challenge("192.0.2.1:1000", 7, 3));
        let other: SocketAddr = "192.0.2.2:1000".parse().expect("addr");
        let right: SocketAddr = "192.0.2.1:1000".parse().expect("addr");
        assert!(live
            .take_challenge(&[7; PATH_TOKEN_LEN], 1, other, 0)
            .is_none());
        assert!(live
            .take_challenge(&[8; PATH_TOKEN_LEN], 1, right, 0)
            .is_none());
        assert!(live
            .take_challenge(&[7; PATH_TOKEN_LEN], 2, right, 0)
            .is_none());
        assert!(live
            .take_challenge(&[7; PATH_TOKEN_LEN], 1, right, 10_000)
            .is_none());
        live.add_challenge(challenge("192.0.2.1:1000", 7, 3));
        assert!(live
            .take_challenge(&[7; PATH_TOKEN_LEN], 1, right, 0)
            .is_some());
        assert!(live
            .take_challenge(&[7; PATH_TOKEN_LEN], 1, right, 0)
            .is_none());
    }

    #[test]
    fn the_nonce_counter_ends_the_session_before_the_next_epoch() {
        use crate::gateway::epoch::{first_nonce, COUNTER_MARGIN, EPOCH_SHIFT};
        let keys = Arc::new(SessionKeys::from_stored(&[1; SessionKeys::STORED_LEN]));
        let id = crate::session::SessionId::new(5).expect("nonzero");
        let next_epoch = first_nonce(8) & !1;
        let mut live = LiveSession::new(Session::birth(id, [0; 32], 0), keys.clone(), 1);
        live.next_tx_nonce = next_epoch - 1 - COUNTER_MARGIN - 1;
        assert!(!live.nonce_exhausted());
        assert!(live.take_nonce().is_some());
        assert!(live.nonce_exhausted(), "the margin starts here");

        let mut live = LiveSession::new(Session::birth(id, [0; 32], 0), keys, next_epoch - 3);
        assert_eq!(live.take_nonce(), Some(next_epoch - 3));
        assert_eq!(live.take_nonce(), Some(next_epoch - 2));
        assert_eq!(
            live.take_nonce(),
            None,
            "the last counter value is never used"
        );
        assert_eq!(live.take_nonce(), None);
        assert_eq!(
            live.next_tx_nonce >> EPOCH_SHIFT,
            7,
            "still in its own epoch"
        );

        // What the timers then apply: a termination recorded as NONCE_EXHAUSTED.
        use crate::session::{Cause, Input, SessionMachine, TerminateCause, Timers};
        let machine = SessionMachine::new(Timers::default());
        let born = Session::birth(id, [0; 32], 0);
        let attached = machine
            .transition(
                &born,
                &Input::HandshakeComplete {
                    binding: jvpn_common::maps::TransportBinding::from_v4([10, 0, 0, 1], 1),
                    header_key: [1; 16].into(),
                    secrets: vec![2; 8].into(),
                },
                0,
            )
            .expect("handshake")
            .session;
        let ended = machine
            .transition(
                &attached,
                &Input::Terminate {
                    cause: TerminateCause::NonceExhausted,
                },
                1,
            )
            .expect("terminate");
        let changes = ended.state_changes();
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].cause, Cause::NonceExhausted);
    }

    #[test]
    fn challenges_are_bounded() {
        let keys = Arc::new(SessionKeys::from_stored(&[1; SessionKeys::STORED_LEN]));
        let id = crate::session::SessionId::new(5).expect("nonzero");
        let mut live = LiveSession::new(Session::birth(id, [0; 32], 0), keys, 1);
        for port in 0..10u16 {
            live.add_challenge(challenge(&format!("192.0.2.1:{}", 1000 + port), 1, 1));
        }
        assert_eq!(live.challenges.len(), MAX_CHALLENGES);
    }
}
