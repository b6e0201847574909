//! The security event stream: every drop the XDP program reports through its ring buffer, as a
//! userspace [`DataplaneEvent`] with a socket address, a reason and a wall-clock time.
//!
//! The reader waits on the ring with tokio's `AsyncFd`, drains at most [`BATCH`] records per
//! wake-up and spends a unit of the task's cooperative budget per event handed out, so a flood of
//! drops cannot starve the other tasks of the controller.

use super::{Dataplane, DataplaneError};
use aya::maps::{MapData, RingBuf};
use jvpn_common::maps::TransportBinding;
use jvpn_common::{MessageType, RejectReason, SecurityEvent};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::PoisonError;
use std::time::{Duration, SystemTime};
use tokio::io::unix::AsyncFd;

/// Records drained per wake-up before the reader hands events out again.
const BATCH: usize = 256;

/// A packet the XDP program dropped (or, in monitor mode, would have dropped).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneEvent {
    /// Why it was dropped.
    pub reason: RejectReason,
    /// Source address and port of the packet.
    pub source: SocketAddr,
    /// The header's session id (0 if the header could not be read).
    pub session_id: u64,
    /// The header's state_version.
    pub state_version: u64,
    /// The header's nonce.
    pub nonce: u64,
    /// The header's message type, if the byte names one.
    pub msg_type: Option<MessageType>,
    /// Frame length in bytes.
    pub frame_len: u32,
    /// When, as `CLOCK_MONOTONIC` nanoseconds (the program's `bpf_ktime_get_ns`).
    pub monotonic_ns: u64,
    /// When, on the wall clock (converted at read time).
    pub at: SystemTime,
}

/// Reads [`DataplaneEvent`]s from the ring buffer. There is one per [`Dataplane`].
pub struct EventReader {
    ring: AsyncFd<RingBuf<MapData>>,
    pending: VecDeque<DataplaneEvent>,
    undecodable: u64,
}

// The reader runs in its own task.
const _: () = {
    const fn sendable<T: Send>() {}
    sendable::<EventReader>();
};

impl std::fmt::Debug for EventReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventReader")
            .field("pending", &self.pending.len())
            .field("undecodable", &self.undecodable)
            .finish_non_exhaustive()
    }
}

impl Dataplane {
    /// Takes the security event reader. Must be called inside a tokio runtime; a second call
    /// fails with [`DataplaneError::EventReaderTaken`].
    pub fn take_event_reader(&self) -> Result<EventReader, DataplaneError> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(DataplaneError::NoRuntime {
                what: "the security event reader",
            });
        }
        let ring = self
            .maps
            .events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or(DataplaneError::EventReaderTaken)?;
        let ring =
            super::sys::register_readable(ring).map_err(|source| DataplaneError::RingIo {
                what: "security event",
                source,
            })?;
        Ok(EventReader {
            ring,
            pending: VecDeque::new(),
            undecodable: 0,
        })
    }
}

impl EventReader {
    /// The next event, waiting for one if none is ready.
    pub async fn next(&mut self) -> Result<DataplaneEvent, DataplaneError> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                // Handing out a buffered event awaits nothing; spend budget so a consumer looping
                // on `next` still yields to the scheduler.
                tokio::task::consume_budget().await;
                return Ok(event);
            }
            let mut ready =
                self.ring
                    .readable_mut()
                    .await
                    .map_err(|source| DataplaneError::RingIo {
                        what: "security event",
                        source,
                    })?;
            let clock = Clock::now();
            let ring = ready.get_inner_mut();
            let mut drained = 0;
            while drained < BATCH {
                let Some(record) = ring.next() else { break };
                drained += 1;
                match decode(&record, clock) {
                    Some(event) => self.pending.push_back(event),
                    None => self.undecodable += 1,
                }
            }
            if drained < BATCH {
                // Empty: wait for the next notification. A record that arrived after `ready` was
                // obtained keeps the fd ready (tokio compares readiness ticks), so none is missed.
                ready.clear_ready();
            }
        }
    }

    /// Every event already in the ring or buffered, without waiting.
    pub fn drain_ready(&mut self) -> Vec<DataplaneEvent> {
        let clock = Clock::now();
        let ring = self.ring.get_mut();
        while let Some(record) = ring.next() {
            match decode(&record, clock) {
                Some(event) => self.pending.push_back(event),
                None => self.undecodable += 1,
            }
        }
        self.pending.drain(..).collect()
    }

    /// Records that were not a valid event (wrong size or unknown reason code), skipped.
    pub fn undecodable(&self) -> u64 {
        self.undecodable
    }
}

/// The monotonic and wall clocks read together, to date events.
#[derive(Clone, Copy)]
struct Clock {
    monotonic_ns: u64,
    wall: SystemTime,
}

impl Clock {
    fn now() -> Self {
        let monotonic_ns = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
            .map(|t| Duration::from(t).as_nanos() as u64)
            .unwrap_or(0);
        Self {
            monotonic_ns,
            wall: SystemTime::now(),
        }
    }

    /// The wall-clock time of monotonic instant `ns`.
    fn wall_time_of(self, ns: u64) -> SystemTime {
        if ns <= self.monotonic_ns {
            self.wall - Duration::from_nanos(self.monotonic_ns - ns)
        } else {
            self.wall + Duration::from_nanos(ns - self.monotonic_ns)
        }
    }
}

/// Converts one ring record, or `None` if it is not a [`SecurityEvent`] this build understands.
fn decode(record: &[u8], clock: Clock) -> Option<DataplaneEvent> {
    let raw: SecurityEvent = bytemuck::try_pod_read_unaligned(record).ok()?;
    let reason = RejectReason::from_code(raw.reason)?;
    let source = TransportBinding {
        addr: raw.addr,
        port: raw.port,
        _pad: [0; 6],
    }
    .to_socket_addr();
    Some(DataplaneEvent {
        reason,
        source,
        session_id: raw.session_id,
        state_version: raw.state_version,
        nonce: raw.nonce,
        msg_type: MessageType::from_u8(raw.msg_type),
        frame_len: raw.len,
        monotonic_ns: raw.time_ns,
        at: clock.wall_time_of(raw.time_ns),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_to_events_and_bad_records_are_refused() {
        let binding = TransportBinding::from_v4([10, 0, 0, 2], 4000);
        let raw = SecurityEvent {
            time_ns: 1_000,
            session_id: 7,
            state_version: 3,
            nonce: 9,
            addr: binding.addr,
            port: binding.port,
            reason: RejectReason::BadTag.code(),
            msg_type: MessageType::Data as u8,
            len: 82,
        };
        let clock = Clock {
            monotonic_ns: 3_000,
            wall: SystemTime::UNIX_EPOCH + Duration::from_secs(100),
        };
        let event = decode(bytemuck::bytes_of(&raw), clock).unwrap();
        assert_eq!(event.reason, RejectReason::BadTag);
        assert_eq!(event.source, "10.0.0.2:4000".parse().unwrap());
        assert_eq!(
            (event.session_id, event.state_version, event.nonce),
            (7, 3, 9)
        );
        assert_eq!(event.msg_type, Some(MessageType::Data));
        assert_eq!(event.frame_len, 82);
        assert_eq!(
            event.at,
            SystemTime::UNIX_EPOCH + Duration::from_secs(100) - Duration::from_nanos(2_000)
        );

        assert_eq!(decode(&bytemuck::bytes_of(&raw)[1..], clock), None);
        let unknown = SecurityEvent { reason: 250, ..raw };
        assert_eq!(decode(bytemuck::bytes_of(&unknown), clock), None);
    }
}
