//! What the client driver counts, and when it last heard from and spoke to the gateway.
//!
//! [`Liveness`] is the hook for the transport-change detection of issue 4: a supervisor compares
//! `last_received` with its own timeout (acknowledgements stopped) and calls
//! [`super::ClientConnection::jump`]. Times are tokio instants, so tests with a paused clock see them
//! move only when the test moves the clock.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use tokio::time::Instant;

/// The counters of one connection, summed over every session and transport it used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionCounters {
    /// Sealed datagrams sent (DATA, KEEPALIVE, control).
    pub sent: u64,
    /// Gateway datagrams the core accepted.
    pub received: u64,
    /// Datagrams refused and dropped: forged, replayed, stale, unexpected, or not from this session.
    pub rejected: u64,
    /// IP packet bytes sent in DATA.
    pub data_bytes_sent: u64,
    /// IP packet bytes received in DATA.
    pub data_bytes_received: u64,
    /// REJECTs that reported a replay of an earlier message of this client (DUPLICATE_NONCE,
    /// NONCE_TOO_OLD): information only, nothing changed on them.
    pub replays_reported: u64,
    /// Completed jumps.
    pub jumps: u64,
    /// Completed handshakes (1 after connect, +1 per re-handshake).
    pub handshakes: u64,
}

/// When the client last sent to and accepted from the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Liveness {
    /// The last datagram sent.
    pub last_sent: Instant,
    /// The last gateway datagram the core accepted.
    pub last_received: Instant,
    /// When the first DATA sent after `last_received` left: DATA the gateway has not answered
    /// since (nothing accepted from it). `None` once anything is accepted. A gateway that stops
    /// answering DATA (dead, or an anycast front now routing to a node that does not hold the
    /// session) shows here long before three keepalive intervals of silence.
    pub unanswered_data_since: Option<Instant>,
}

/// The shared, updatable form of the counters and liveness.
#[derive(Debug)]
pub(crate) struct Stats {
    sent: AtomicU64,
    received: AtomicU64,
    rejected: AtomicU64,
    data_bytes_sent: AtomicU64,
    data_bytes_received: AtomicU64,
    replays_reported: AtomicU64,
    jumps: AtomicU64,
    handshakes: AtomicU64,
    liveness: Mutex<Liveness>,
}

impl Stats {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            sent: AtomicU64::new(0),
            received: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            data_bytes_sent: AtomicU64::new(0),
            data_bytes_received: AtomicU64::new(0),
            replays_reported: AtomicU64::new(0),
            jumps: AtomicU64::new(0),
            handshakes: AtomicU64::new(0),
            liveness: Mutex::new(Liveness {
                last_sent: now,
                last_received: now,
                unanswered_data_since: None,
            }),
        }
    }

    fn liveness_mut(&self) -> std::sync::MutexGuard<'_, Liveness> {
        self.liveness
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn sent(&self, data_bytes: usize) {
        self.sent.fetch_add(1, Relaxed);
        self.data_bytes_sent.fetch_add(data_bytes as u64, Relaxed);
        self.sent_at(Instant::now(), data_bytes > 0);
    }

    /// Counts `datagrams` DATA messages carrying `data_bytes` in all, sent at once.
    pub(crate) fn sent_many(&self, datagrams: usize, data_bytes: usize) {
        self.sent.fetch_add(datagrams as u64, Relaxed);
        self.data_bytes_sent.fetch_add(data_bytes as u64, Relaxed);
        self.sent_at(Instant::now(), datagrams > 0);
    }

    /// Records a send at `now`; `data` when it carried DATA, which now awaits an answer.
    fn sent_at(&self, now: Instant, data: bool) {
        let mut liveness = self.liveness_mut();
        liveness.last_sent = now;
        if data && liveness.unanswered_data_since.is_none() {
            liveness.unanswered_data_since = Some(now);
        }
    }

    /// Records an accepted gateway datagram at `now`: whatever was sent before is answered.
    fn answered_at(&self, now: Instant) {
        let mut liveness = self.liveness_mut();
        liveness.last_received = now;
        liveness.unanswered_data_since = None;
    }

    pub(crate) fn received(&self, data_bytes: usize) {
        self.received.fetch_add(1, Relaxed);
        self.data_bytes_received
            .fetch_add(data_bytes as u64, Relaxed);
        self.answered_at(Instant::now());
    }

    pub(crate) fn rejected(&self) {
        self.rejected.fetch_add(1, Relaxed);
    }

    pub(crate) fn replay_reported(&self) {
        self.replays_reported.fetch_add(1, Relaxed);
    }

    pub(crate) fn jumped(&self) {
        self.jumps.fetch_add(1, Relaxed);
    }

    pub(crate) fn handshake_done(&self) {
        self.handshakes.fetch_add(1, Relaxed);
        self.answered_at(Instant::now());
    }

    pub(crate) fn counters(&self) -> ConnectionCounters {
        ConnectionCounters {
            sent: self.sent.load(Relaxed),
            received: self.received.load(Relaxed),
            rejected: self.rejected.load(Relaxed),
            data_bytes_sent: self.data_bytes_sent.load(Relaxed),
            data_bytes_received: self.data_bytes_received.load(Relaxed),
            replays_reported: self.replays_reported.load(Relaxed),
            jumps: self.jumps.load(Relaxed),
            handshakes: self.handshakes.load(Relaxed),
        }
    }

    pub(crate) fn liveness(&self) -> Liveness {
        *self.liveness_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_awaits_an_answer_until_anything_is_accepted() {
        let stats = Stats::new(Instant::now());
        stats.sent(0);
        assert_eq!(
            stats.liveness().unanswered_data_since,
            None,
            "a KEEPALIVE or control message is not DATA"
        );
        stats.sent(1200);
        let first = stats.liveness().unanswered_data_since.expect("DATA sent");
        stats.sent_many(8, 9600);
        assert_eq!(
            stats.liveness().unanswered_data_since,
            Some(first),
            "the first unanswered DATA counts, not the latest"
        );
        stats.received(0);
        assert_eq!(stats.liveness().unanswered_data_since, None);
        stats.sent_many(2, 2400);
        assert!(stats.liveness().unanswered_data_since.is_some());
        stats.handshake_done();
        assert_eq!(stats.liveness().unanswered_data_since, None);
    }
}
