//! The dataplane's counters, summed over CPUs: packets and bytes accepted, passed to the
//! controller and dropped per reason, and the security events not emitted per reason.
//!
//! Nothing is dropped silently: every drop is in a counter here, and every drop whose event did
//! not reach the ring buffer is in [`EventLossTotals`].

use super::{Dataplane, DataplaneError};
use jvpn_common::abi;
use jvpn_common::reason::{COUNTER_ACCEPTED, COUNTER_TO_CONTROLLER};
use jvpn_common::RejectReason;

/// Packets and bytes (whole frames) under one counter slot, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PacketTotals {
    /// Packets.
    pub packets: u64,
    /// Bytes of whole frames.
    pub bytes: u64,
}

impl PacketTotals {
    fn add(self, other: Self) -> Self {
        Self {
            packets: self.packets.saturating_add(other.packets),
            bytes: self.bytes.saturating_add(other.bytes),
        }
    }

    fn since(self, earlier: Self) -> Self {
        Self {
            packets: self.packets.saturating_sub(earlier.packets),
            bytes: self.bytes.saturating_sub(earlier.bytes),
        }
    }
}

/// Security events not emitted for one reason, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventLossTotals {
    /// Over the per-reason per-second event budget.
    pub rate_limited: u64,
    /// The ring buffer had no room.
    pub ring_full: u64,
}

impl EventLossTotals {
    fn add(self, other: Self) -> Self {
        Self {
            rate_limited: self.rate_limited.saturating_add(other.rate_limited),
            ring_full: self.ring_full.saturating_add(other.ring_full),
        }
    }

    fn since(self, earlier: Self) -> Self {
        Self {
            rate_limited: self.rate_limited.saturating_sub(earlier.rate_limited),
            ring_full: self.ring_full.saturating_sub(earlier.ring_full),
        }
    }
}

/// Every counter at one moment. Slots are read one after another, not atomically together.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Indexed by counter slot ([`COUNTER_ACCEPTED`], reason codes, [`COUNTER_TO_CONTROLLER`]).
    slots: Vec<PacketTotals>,
    /// Indexed by reason code.
    event_loss: Vec<EventLossTotals>,
}

impl CounterSnapshot {
    fn slot(&self, slot: u32) -> PacketTotals {
        self.slots.get(slot as usize).copied().unwrap_or_default()
    }

    /// DATA and KEEPALIVE packets the program accepted.
    pub fn accepted(&self) -> PacketTotals {
        self.slot(COUNTER_ACCEPTED)
    }

    /// HELLO and control messages passed to the controller.
    pub fn to_controller(&self) -> PacketTotals {
        self.slot(COUNTER_TO_CONTROLLER)
    }

    /// Packets dropped for `reason` (in monitor mode: that would have been dropped).
    pub fn dropped(&self, reason: RejectReason) -> PacketTotals {
        self.slot(reason.counter_slot())
    }

    /// Every reason with at least one drop, in code order.
    pub fn drops(&self) -> impl Iterator<Item = (RejectReason, PacketTotals)> + '_ {
        RejectReason::ALL
            .into_iter()
            .map(|reason| (reason, self.dropped(reason)))
            .filter(|(_, totals)| totals.packets != 0)
    }

    /// All drops, whatever the reason.
    pub fn total_dropped(&self) -> PacketTotals {
        RejectReason::ALL
            .into_iter()
            .fold(PacketTotals::default(), |sum, r| sum.add(self.dropped(r)))
    }

    /// Events for `reason` that were counted but not emitted.
    pub fn event_loss(&self, reason: RejectReason) -> EventLossTotals {
        self.event_loss
            .get(reason.code() as usize)
            .copied()
            .unwrap_or_default()
    }

    /// Events not emitted, whatever the reason.
    pub fn total_event_loss(&self) -> EventLossTotals {
        self.event_loss
            .iter()
            .fold(EventLossTotals::default(), |sum, l| sum.add(*l))
    }

    /// Whether every counter is zero (as in a delta during which the program counted nothing).
    pub fn is_zero(&self) -> bool {
        self.slots.iter().all(|s| s.packets == 0 && s.bytes == 0)
            && self
                .event_loss
                .iter()
                .all(|l| l.rate_limited == 0 && l.ring_full == 0)
    }

    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &CounterSnapshot) -> CounterSnapshot {
        CounterSnapshot {
            slots: (0..self.slots.len())
                .map(|i| self.slots[i].since(earlier.slots.get(i).copied().unwrap_or_default()))
                .collect(),
            event_loss: (0..self.event_loss.len())
                .map(|i| {
                    self.event_loss[i].since(earlier.event_loss.get(i).copied().unwrap_or_default())
                })
                .collect(),
        }
    }
}

impl Dataplane {
    /// Reads every counter, summed over CPUs.
    pub fn counters(&self) -> Result<CounterSnapshot, DataplaneError> {
        let slots = self
            .maps
            .counters
            .iter()
            .map(|per_cpu| {
                let per_cpu = per_cpu.map_err(DataplaneError::map("reading", abi::MAP_COUNTERS))?;
                Ok(per_cpu.iter().fold(PacketTotals::default(), |sum, c| {
                    sum.add(PacketTotals {
                        packets: c.packets,
                        bytes: c.bytes,
                    })
                }))
            })
            .collect::<Result<Vec<_>, DataplaneError>>()?;
        let event_loss = self
            .maps
            .event_loss
            .iter()
            .map(|per_cpu| {
                let per_cpu =
                    per_cpu.map_err(DataplaneError::map("reading", abi::MAP_EVENT_LOSS))?;
                Ok(per_cpu.iter().fold(EventLossTotals::default(), |sum, l| {
                    sum.add(EventLossTotals {
                        rate_limited: l.rate_limited,
                        ring_full: l.ring_full,
                    })
                }))
            })
            .collect::<Result<Vec<_>, DataplaneError>>()?;
        Ok(CounterSnapshot { slots, event_loss })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(drops: &[(u32, u64)]) -> CounterSnapshot {
        let mut slots = vec![PacketTotals::default(); 32];
        for &(slot, packets) in drops {
            slots[slot as usize] = PacketTotals {
                packets,
                bytes: packets * 100,
            };
        }
        CounterSnapshot {
            slots,
            event_loss: vec![EventLossTotals::default(); 32],
        }
    }

    #[test]
    fn slots_are_read_by_reason_and_deltas_subtract() {
        let bad_tag = RejectReason::BadTag.counter_slot();
        let before = snapshot(&[(COUNTER_ACCEPTED, 5), (bad_tag, 2)]);
        let after = snapshot(&[
            (COUNTER_ACCEPTED, 7),
            (bad_tag, 3),
            (COUNTER_TO_CONTROLLER, 1),
        ]);
        let delta = after.since(&before);
        assert_eq!(delta.accepted().packets, 2);
        assert_eq!(delta.to_controller().packets, 1);
        assert_eq!(delta.dropped(RejectReason::BadTag).bytes, 100);
        assert_eq!(
            delta.drops().collect::<Vec<_>>(),
            vec![(
                RejectReason::BadTag,
                PacketTotals {
                    packets: 1,
                    bytes: 100
                }
            )]
        );
        assert_eq!(after.total_dropped().packets, 3);
    }
}
