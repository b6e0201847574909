//! The HELLO replay check and the per-client session cap, decided atomically.
//!
//! WireGuard refuses a HELLO whose timestamp is not newer than the last one accepted from that
//! client. Checking it and recording it later, after the session's commit, leaves a window in
//! which two copies of one HELLO both pass the check; so here the check *reserves* the timestamp
//! under one short lock (no DH, no I/O under it): a second copy finds it taken and is refused as a
//! replay. A reservation whose handshake then fails is released on drop, restoring the previous
//! newest timestamp unless a newer HELLO reserved meanwhile; a committed one stays.
//!
//! Under the same lock the client's live sessions plus its reservations in flight are counted
//! against the cap (`max_sessions_per_client`): over it, the HELLO is refused as
//! `CLIENT_SESSION_LIMIT`. Refusing rather than ending the client's oldest session is the
//! fail-closed choice: a HELLO, even a valid one, never changes an existing session.

use jvpn_common::control::Tai64N;
use jvpn_common::RejectReason;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the table knows of one client key.
#[derive(Clone, Copy, Debug)]
struct ClientHellos {
    /// The newest timestamp accepted or reserved.
    newest: Tai64N,
    /// Reservations not yet committed or released.
    pending: u32,
}

/// Why a HELLO was refused here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HelloRefusal {
    /// The timestamp is not newer than one accepted or reserved.
    #[error("HELLO timestamp is not newer than {newest:?}, the newest accepted or in progress: a replay, or the client's clock went back")]
    Replay {
        /// The newest timestamp held for the client.
        newest: Tai64N,
    },
    /// The client holds its cap of sessions.
    #[error("the client already holds {held} live or starting sessions, its cap ({cap}); raise max_sessions_per_client or let old sessions end")]
    SessionLimit {
        /// Live sessions plus reservations in flight.
        held: usize,
        /// The cap.
        cap: usize,
    },
}

impl HelloRefusal {
    /// The reason code of this refusal.
    pub fn reason(&self) -> RejectReason {
        match self {
            Self::Replay { .. } => RejectReason::HandshakeReplay,
            Self::SessionLimit { .. } => RejectReason::ClientSessionLimit,
        }
    }
}

/// The newest HELLO timestamp and the reservations in flight, per client key.
#[derive(Debug, Default)]
pub struct HelloReplay {
    clients: Mutex<HashMap<[u8; 32], ClientHellos>>,
}

impl HelloReplay {
    fn lock(&self) -> MutexGuard<'_, HashMap<[u8; 32], ClientHellos>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Raises the newest timestamp of `client` to `timestamp` (a session recovered from the store).
    pub fn remember(&self, client: [u8; 32], timestamp: Tai64N) {
        let mut clients = self.lock();
        let entry = clients.entry(client).or_insert(ClientHellos {
            newest: timestamp,
            pending: 0,
        });
        entry.newest = entry.newest.max(timestamp);
    }

    /// The newest timestamp held for `client`.
    pub fn newest(&self, client: &[u8; 32]) -> Option<Tai64N> {
        self.lock().get(client).map(|c| c.newest)
    }

    /// Checks and reserves `timestamp` for `client` in one step. `live_sessions` counts the
    /// client's live sessions; it runs under the lock (keep it short, and never take this table's
    /// lock inside it).
    pub fn reserve(
        self: &Arc<Self>,
        client: [u8; 32],
        timestamp: Tai64N,
        cap: usize,
        live_sessions: impl FnOnce() -> usize,
    ) -> Result<Reservation, HelloRefusal> {
        let mut clients = self.lock();
        let entry = clients.get(&client).copied();
        if let Some(held) = entry {
            if timestamp <= held.newest {
                return Err(HelloRefusal::Replay {
                    newest: held.newest,
                });
            }
        }
        let pending = entry.map_or(0, |e| e.pending);
        let held = live_sessions() + pending as usize;
        if held >= cap {
            return Err(HelloRefusal::SessionLimit { held, cap });
        }
        clients.insert(
            client,
            ClientHellos {
                newest: timestamp,
                pending: pending + 1,
            },
        );
        Ok(Reservation {
            table: self.clone(),
            client,
            timestamp,
            previous: entry.map(|e| e.newest),
            committed: false,
        })
    }
}

/// A reserved HELLO timestamp: [`Reservation::commit`] once the session is committed, or drop it
/// to release.
#[derive(Debug)]
pub struct Reservation {
    table: Arc<HelloReplay>,
    client: [u8; 32],
    timestamp: Tai64N,
    previous: Option<Tai64N>,
    committed: bool,
}

impl Reservation {
    /// The session exists: the timestamp stays the client's newest accepted.
    pub fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut clients = self.table.lock();
        let Some(entry) = clients.get_mut(&self.client) else {
            return;
        };
        entry.pending = entry.pending.saturating_sub(1);
        if self.committed || entry.newest != self.timestamp {
            return;
        }
        match self.previous {
            Some(previous) => entry.newest = previous,
            None if entry.pending == 0 => {
                clients.remove(&self.client);
            }
            // Another reservation is in flight; keep ours as the floor (fail closed).
            None => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    const CLIENT: [u8; 32] = [7; 32];

    fn t(secs: u64) -> Tai64N {
        Tai64N::from_unix(secs, 0)
    }

    #[test]
    fn two_identical_hellos_at_once_make_exactly_one_reservation() {
        for _ in 0..50 {
            let table = Arc::new(HelloReplay::default());
            let barrier = Arc::new(Barrier::new(8));
            let outcomes: Vec<bool> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..8)
                    .map(|_| {
                        let (table, barrier) = (table.clone(), barrier.clone());
                        s.spawn(move || {
                            barrier.wait();
                            // Held to the end of the thread, as a handshake in flight holds it.
                            let r = table.reserve(CLIENT, t(100), 8, || 0);
                            let ok = r.is_ok();
                            if let Ok(r) = r {
                                r.commit();
                            }
                            ok
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 1, "{outcomes:?}");
        }
    }

    #[test]
    fn a_replay_is_refused_while_in_flight_and_after_commit() {
        let table = Arc::new(HelloReplay::default());
        let first = table.reserve(CLIENT, t(100), 8, || 0).unwrap();
        assert_eq!(
            table.reserve(CLIENT, t(100), 8, || 0).unwrap_err(),
            HelloRefusal::Replay { newest: t(100) }
        );
        first.commit();
        assert!(table.reserve(CLIENT, t(100), 8, || 0).is_err());
        assert!(table.reserve(CLIENT, t(99), 8, || 0).is_err());
        assert!(table.reserve(CLIENT, t(101), 8, || 0).is_ok());
    }

    #[test]
    fn a_failed_handshake_releases_its_timestamp() {
        let table = Arc::new(HelloReplay::default());
        table.reserve(CLIENT, t(100), 8, || 0).unwrap().commit();
        drop(table.reserve(CLIENT, t(200), 8, || 0).unwrap());
        assert_eq!(table.newest(&CLIENT), Some(t(100)));
        assert!(table.reserve(CLIENT, t(150), 8, || 0).is_ok());
        // A first HELLO that fails leaves nothing behind.
        let other = [8; 32];
        drop(table.reserve(other, t(5), 8, || 0).unwrap());
        assert_eq!(table.newest(&other), None);
    }

    #[test]
    fn a_newer_reservation_is_not_undone_by_an_older_release() {
        let table = Arc::new(HelloReplay::default());
        let older = table.reserve(CLIENT, t(100), 8, || 0).unwrap();
        let newer = table.reserve(CLIENT, t(200), 8, || 0).unwrap();
        drop(older);
        assert_eq!(table.newest(&CLIENT), Some(t(200)));
        newer.commit();
        assert_eq!(table.newest(&CLIENT), Some(t(200)));
    }

    #[test]
    fn live_and_pending_sessions_count_against_the_cap() {
        let table = Arc::new(HelloReplay::default());
        assert_eq!(
            table.reserve(CLIENT, t(1), 3, || 3).unwrap_err(),
            HelloRefusal::SessionLimit { held: 3, cap: 3 }
        );
        let a = table.reserve(CLIENT, t(2), 3, || 1).unwrap();
        let b = table.reserve(CLIENT, t(3), 3, || 1).unwrap();
        assert_eq!(
            table.reserve(CLIENT, t(4), 3, || 1).unwrap_err().reason(),
            RejectReason::ClientSessionLimit
        );
        drop(a);
        b.commit();
        assert!(table.reserve(CLIENT, t(5), 3, || 2).is_ok());
    }
}
