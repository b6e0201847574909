//! The event bus: numbers every record, keeps a short history, fans records out to subscribers,
//! and turns every loss into a counted EVENTS_LOST notice.
//!
//! The history is two queues: audit records (STATE_CHANGE, one per version increment) and
//! everything else. A burst of refusals, legitimate (about a thousand STALE_VERSION drops of
//! datagrams in flight at each jump of a fast transfer) or hostile (a flood), then evicts only
//! refusals, never the audit trail a late `jvpn events` reader came for.
//!
//! Publishing takes one short lock, under which the sequence number is assigned and the record is
//! handed to the broadcast channel, so channel order is sequence order and the stream has one total
//! order whichever task published. A subscriber that falls more than the channel's capacity behind
//! does not stall the gateway: it skips ahead and receives one EVENTS_LOST notice for the records it
//! missed, and the bus's loss counters grow by the same count.

use super::record::{EventKind, EventRecord, EventSource};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

/// Records a subscriber may fall behind by before it loses some (the broadcast channel's capacity).
pub const DEFAULT_SUBSCRIBER_CAPACITY: usize = 4096;
/// Recent records other than STATE_CHANGE kept for `jvpn events` without `--follow`.
pub const DEFAULT_HISTORY: usize = 1024;
/// Recent STATE_CHANGE records kept for `jvpn events` without `--follow`, apart from the others.
pub const DEFAULT_AUDIT_HISTORY: usize = 4096;

/// Records lost so far, by where they were lost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StreamLosses {
    /// Security events the XDP program could not emit (ring buffer full or over budget).
    pub dataplane: u64,
    /// Records skipped by subscribers that fell behind, summed over subscribers.
    pub subscribers: u64,
}

impl StreamLosses {
    /// All losses.
    pub fn total(&self) -> u64 {
        self.dataplane.saturating_add(self.subscribers)
    }
}

#[derive(Debug, Default)]
struct LossCounters {
    dataplane: AtomicU64,
    subscribers: AtomicU64,
}

#[derive(Debug)]
struct Sequencer {
    /// Sequence number of the next record; the first is 1 so 0 can mean "before anything".
    next_seq: u64,
    /// Recent records other than STATE_CHANGE, oldest first.
    history: BoundedHistory,
    /// Recent STATE_CHANGE records, oldest first.
    audit_history: BoundedHistory,
}

/// The newest `limit` records of one kind of history, oldest first.
#[derive(Debug)]
struct BoundedHistory {
    records: VecDeque<EventRecord>,
    limit: usize,
}

impl BoundedHistory {
    fn new(limit: usize) -> Self {
        Self {
            records: VecDeque::with_capacity(limit),
            limit,
        }
    }

    fn push(&mut self, record: &EventRecord) {
        if self.limit == 0 {
            return;
        }
        if self.records.len() == self.limit {
            self.records.pop_front();
        }
        self.records.push_back(record.clone());
    }
}

impl Sequencer {
    /// Both histories merged into one queue in sequence order.
    fn backlog(&self) -> VecDeque<EventRecord> {
        let mut merged =
            VecDeque::with_capacity(self.history.records.len() + self.audit_history.records.len());
        let mut other = self.history.records.iter().peekable();
        let mut audit = self.audit_history.records.iter().peekable();
        loop {
            let next = match (other.peek(), audit.peek()) {
                (Some(o), Some(a)) if o.seq < a.seq => other.next(),
                (Some(_), Some(_)) | (None, Some(_)) => audit.next(),
                (Some(_), None) => other.next(),
                (None, None) => break,
            };
            merged.extend(next.cloned());
        }
        merged
    }
}

/// The gateway's one ordered event stream. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct EventBus {
    sequencer: Mutex<Sequencer>,
    sender: broadcast::Sender<EventRecord>,
    losses: Arc<LossCounters>,
}

impl Default for EventBus {
    fn default() -> Self {
        Self::with_audit_history(
            DEFAULT_SUBSCRIBER_CAPACITY,
            DEFAULT_HISTORY,
            DEFAULT_AUDIT_HISTORY,
        )
    }
}

/// Current wall-clock time in Unix milliseconds (0 if the clock is before 1970).
pub fn unix_millis_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl EventBus {
    /// A bus whose subscribers may fall `subscriber_capacity` records behind before losing some,
    /// and which keeps the last `history` records of each history (audit and other) for late
    /// readers.
    pub fn new(subscriber_capacity: usize, history: usize) -> Self {
        Self::with_audit_history(subscriber_capacity, history, history)
    }

    /// Like [`new`](Self::new), keeping the last `history` records other than STATE_CHANGE and,
    /// apart from them, the last `audit_history` STATE_CHANGE records.
    pub fn with_audit_history(
        subscriber_capacity: usize,
        history: usize,
        audit_history: usize,
    ) -> Self {
        let (sender, _) = broadcast::channel(subscriber_capacity.max(1));
        Self {
            sequencer: Mutex::new(Sequencer {
                next_seq: 1,
                history: BoundedHistory::new(history),
                audit_history: BoundedHistory::new(audit_history),
            }),
            sender,
            losses: Arc::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Sequencer> {
        // A panic while holding the lock cannot leave the sequencer half-updated in a way that
        // matters (the worst is one record missing from history), so keep going.
        self.sequencer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes `record` stamped with the current wall-clock time; returns its sequence number.
    pub fn publish(&self, record: EventRecord) -> u64 {
        self.publish_at(record, unix_millis_now())
    }

    /// Publishes `record` stamped with `time_ms` (Unix milliseconds); returns its sequence number.
    /// Any `seq` or `time_ms` already in the record is replaced.
    pub fn publish_at(&self, mut record: EventRecord, time_ms: u64) -> u64 {
        let mut seq = self.lock();
        record.seq = seq.next_seq;
        record.time_ms = time_ms;
        seq.next_seq += 1;
        if record.kind == EventKind::StateChange {
            seq.audit_history.push(&record);
        } else {
            seq.history.push(&record);
        }
        // No subscriber is not an error: the record is in the history for later readers.
        let _ = self.sender.send(record);
        seq.next_seq - 1
    }

    /// Reports `lost` more security events that the XDP program could not emit (the increase of
    /// its loss counters since the last report), publishing one EVENTS_LOST notice. Zero is ignored.
    pub fn report_dataplane_loss(&self, lost: u64) -> Option<u64> {
        if lost == 0 {
            return None;
        }
        self.losses.dataplane.fetch_add(lost, Ordering::Relaxed);
        Some(self.publish(EventRecord::events_lost(
            EventSource::Dataplane,
            lost,
            "the XDP program could not emit these security events (ring buffer full or over its \
             per-second budget); the drops themselves are in `jvpn stats`",
        )))
    }

    /// Records lost so far.
    pub fn losses(&self) -> StreamLosses {
        StreamLosses {
            dataplane: self.losses.dataplane.load(Ordering::Relaxed),
            subscribers: self.losses.subscribers.load(Ordering::Relaxed),
        }
    }

    /// The sequence number of the last record published (0 before the first).
    pub fn last_seq(&self) -> u64 {
        self.lock().next_seq - 1
    }

    /// A new subscription: the recent history, then every record published from now on, with no
    /// gap and no duplicate between the two.
    pub fn subscribe(&self) -> EventSubscription {
        let seq = self.lock();
        EventSubscription {
            backlog: seq.backlog(),
            receiver: self.sender.subscribe(),
            last_seq: seq.next_seq - 1,
            losses: Arc::clone(&self.losses),
        }
    }
}

/// One reader's view of the stream: the history at the time it subscribed, then live records.
#[derive(Debug)]
pub struct EventSubscription {
    backlog: VecDeque<EventRecord>,
    receiver: broadcast::Receiver<EventRecord>,
    /// The last sequence number this reader has been given or skipped.
    last_seq: u64,
    losses: Arc<LossCounters>,
}

impl EventSubscription {
    /// Takes the history recorded before this subscription (oldest first); later calls return nothing.
    pub fn take_backlog(&mut self) -> Vec<EventRecord> {
        self.backlog.drain(..).collect()
    }

    /// The next record: first the backlog, then live records. A reader that fell behind gets one
    /// EVENTS_LOST notice in place of the records it missed. `None` once the bus is gone.
    pub async fn recv(&mut self) -> Option<EventRecord> {
        if let Some(r) = self.backlog.pop_front() {
            return Some(r);
        }
        match self.receiver.recv().await {
            Ok(r) => Some(self.delivered(r)),
            Err(RecvError::Lagged(n)) => Some(self.skipped(n)),
            Err(RecvError::Closed) => None,
        }
    }

    /// Like [`recv`](Self::recv) but returns `None` at once when no record is ready.
    pub fn try_recv(&mut self) -> Option<EventRecord> {
        if let Some(r) = self.backlog.pop_front() {
            return Some(r);
        }
        match self.receiver.try_recv() {
            Ok(r) => Some(self.delivered(r)),
            Err(TryRecvError::Lagged(n)) => Some(self.skipped(n)),
            Err(TryRecvError::Empty | TryRecvError::Closed) => None,
        }
    }

    fn delivered(&mut self, record: EventRecord) -> EventRecord {
        self.last_seq = record.seq;
        record
    }

    /// The notice for `n` skipped records. It takes the sequence number of the last record it
    /// replaces, so the reader's sequence stays strictly increasing and `seq - lost + 1 ..= seq`
    /// is exactly the skipped range.
    fn skipped(&mut self, n: u64) -> EventRecord {
        self.losses.subscribers.fetch_add(n, Ordering::Relaxed);
        self.last_seq += n;
        let mut notice = EventRecord::events_lost(
            EventSource::Controller,
            n,
            "this reader fell behind the stream and skipped these records",
        );
        notice.seq = self.last_seq;
        notice.time_ms = unix_millis_now();
        notice
    }
}

#[cfg(test)]
mod tests;
