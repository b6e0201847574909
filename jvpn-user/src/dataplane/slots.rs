//! Slots: which line of the session array (`abi::MAP_SESSIONS`), and the replay window at the
//! same index of the replay array (`abi::MAP_REPLAY`), each session has. The XDP program reaches
//! the line by the header's slot hint or the session index, and the window by the same index;
//! this module hands the slots out and takes them back. Pure bookkeeping: the map writes that go
//! with each step are `sessions.rs`'s.
//!
//! The rules that keep a slot from ever serving two sessions (the XDP side checks the line's
//! session id, see `jvpn-ebpf/src/session.rs` and `replay.rs`):
//!
//! - a slot has at most one owner, and a session at most one slot;
//! - a slot is handed out with its window zeroed and its line naming its owner, before the index
//!   points at it;
//! - a freed slot is cleared and goes to the back of the queue: never-used slots are handed out
//!   first, then the longest-freed, so a packet still in flight on a removed session's slot
//!   (an RCU read section, microseconds) is long done before its slot serves anyone else.

use std::collections::VecDeque;

/// Why an entry found in an adopted session table cannot keep the slot it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotConflict {
    /// The slot is outside the replay array.
    OutOfRange {
        /// The session whose entry names it.
        session_id: u64,
        /// The slot named.
        slot: u32,
    },
    /// Another entry claimed the slot first.
    Taken {
        /// The session whose entry names it.
        session_id: u64,
        /// The slot named.
        slot: u32,
        /// The session that holds it.
        owner: u64,
    },
}

impl SlotConflict {
    /// The session whose entry cannot keep its slot.
    pub fn session_id(&self) -> u64 {
        match *self {
            Self::OutOfRange { session_id, .. } | Self::Taken { session_id, .. } => session_id,
        }
    }
}

/// The owner of every slot of one replay array, and the order free slots are handed out in.
#[derive(Debug)]
pub struct ReplaySlots {
    /// Owner session id per slot; 0 (never a session id) while the slot is free.
    owners: Vec<u64>,
    /// Slots at and above this index were never handed out.
    unused_from: u32,
    /// Freed slots below `unused_from`, oldest first.
    freed: VecDeque<u32>,
}

impl ReplaySlots {
    /// Every slot of an array of `capacity` elements free.
    pub fn new(capacity: u32) -> Self {
        Self {
            owners: vec![0; capacity as usize],
            unused_from: 0,
            freed: VecDeque::new(),
        }
    }

    /// The slots of an adopted table, from the `(session id, slot)` of each index entry:
    /// each entry keeps its slot unless the slot is out of range or an earlier entry claimed it
    /// (a table written by something else than this module); those come back as conflicts and
    /// own nothing. The slots no entry claims are free, lowest first.
    pub fn rebuild(
        capacity: u32,
        entries: impl IntoIterator<Item = (u64, u32)>,
    ) -> (Self, Vec<SlotConflict>) {
        let mut slots = Self::new(capacity);
        let mut conflicts = Vec::new();
        for (session_id, slot) in entries {
            match slots.owners.get(slot as usize).copied() {
                None => conflicts.push(SlotConflict::OutOfRange { session_id, slot }),
                Some(0) => {
                    slots.owners[slot as usize] = session_id;
                    slots.unused_from = slots.unused_from.max(slot + 1);
                }
                Some(owner) => conflicts.push(SlotConflict::Taken {
                    session_id,
                    slot,
                    owner,
                }),
            }
        }
        slots.freed = (0..slots.unused_from)
            .filter(|&s| slots.owners[s as usize] == 0)
            .collect();
        (slots, conflicts)
    }

    /// Number of slots of the array.
    pub fn capacity(&self) -> u32 {
        self.owners.len() as u32
    }

    /// Whether `slot` is `session_id`'s.
    pub fn is_owned_by(&self, slot: u32, session_id: u64) -> bool {
        session_id != 0 && self.owners.get(slot as usize) == Some(&session_id)
    }

    /// A free slot for `session_id` (a never-used one if any is left, else the longest-freed),
    /// now owned by it; `None` when every slot is taken. The caller writes the zeroed window
    /// naming its owner before publishing an entry that points at it.
    pub fn allocate(&mut self, session_id: u64) -> Option<u32> {
        assert_ne!(session_id, 0, "session id 0 is reserved for HELLO");
        let slot = if (self.unused_from as usize) < self.owners.len() {
            self.unused_from += 1;
            self.unused_from - 1
        } else {
            self.freed.pop_front()?
        };
        self.owners[slot as usize] = session_id;
        Some(slot)
    }

    /// Frees `slot` if it is `session_id`'s (after its entry was deleted); whether it was.
    pub fn release(&mut self, slot: u32, session_id: u64) -> bool {
        if !self.is_owned_by(slot, session_id) {
            return false;
        }
        self.owners[slot as usize] = 0;
        self.freed.push_back(slot);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_used_slots_go_first_then_the_longest_freed() {
        let mut slots = ReplaySlots::new(4);
        assert_eq!(slots.allocate(10), Some(0));
        assert_eq!(slots.allocate(11), Some(1));
        assert!(slots.release(0, 10));
        assert_eq!(slots.allocate(12), Some(2), "unused before freed");
        assert_eq!(slots.allocate(13), Some(3));
        assert!(slots.release(3, 13));
        assert_eq!(slots.allocate(14), Some(0), "the longest-freed first");
        assert_eq!(slots.allocate(15), Some(3));
        assert_eq!(slots.allocate(16), None, "full");
        assert!(slots.is_owned_by(3, 15) && !slots.is_owned_by(3, 13));
    }

    #[test]
    fn only_the_owner_frees_a_slot_and_only_once() {
        let mut slots = ReplaySlots::new(2);
        let a = slots.allocate(7).unwrap();
        assert!(!slots.release(a, 8), "not its slot");
        assert!(!slots.release(5, 7), "out of range");
        assert!(slots.release(a, 7));
        assert!(!slots.release(a, 7), "freed already");
        assert!(
            !slots.is_owned_by(a, 0),
            "a free slot is nobody's, not session 0's"
        );
        let b = slots.allocate(9).unwrap();
        let c = slots.allocate(10).unwrap();
        assert_ne!(b, c);
        assert_eq!(
            slots.allocate(11),
            None,
            "one freed slot was handed out once"
        );
    }

    #[test]
    fn an_adopted_table_keeps_its_slots_and_reports_conflicts() {
        let (mut slots, conflicts) =
            ReplaySlots::rebuild(5, [(100, 3), (101, 0), (102, 3), (103, 9)]);
        assert_eq!(
            conflicts,
            vec![
                SlotConflict::Taken {
                    session_id: 102,
                    slot: 3,
                    owner: 100
                },
                SlotConflict::OutOfRange {
                    session_id: 103,
                    slot: 9
                },
            ]
        );
        assert!(slots.is_owned_by(3, 100) && slots.is_owned_by(0, 101));
        assert_eq!(conflicts[1].session_id(), 103);
        // Unused above the highest claimed slot first, then the holes below it, lowest first.
        assert_eq!(slots.allocate(1), Some(4));
        assert_eq!(slots.allocate(2), Some(1));
        assert_eq!(slots.allocate(3), Some(2));
        assert_eq!(slots.allocate(4), None);
    }
}
