//! The session maps of a [`TestDataplane`]: sessions, their index entries and lines, and their
//! replay windows, written with the same steps and in the same order as the dataplane's
//! `upsert_session` and `remove_session`.

use super::TestDataplane;
use aya::maps::{Array, HashMap, MapData};
use bytemuck::Zeroable;
use jvpn_common::abi::{MAP_REPLAY, MAP_SESSIONS, MAP_SESSION_INDEX};
use jvpn_common::maps::{ReplayState, SessionLine};
use jvpn_common::{SessionEntry, SessionState};

impl TestDataplane {
    /// Inserts or replaces a session, naming `id` in the entry as the controller does.
    pub fn set_session(&mut self, id: u64, entry: SessionEntry) {
        self.set_raw_session(
            id,
            SessionEntry {
                session_id: id,
                ..entry
            },
        );
    }

    /// Writes `entry` into `id`'s slot (a new session's window zeroed and its line's `max`
    /// reset first) and indexes `id` there; otherwise exactly as given, even if the entry names
    /// another session.
    pub fn set_raw_session(&mut self, id: u64, entry: SessionEntry) {
        let replay_slot = match self.slot_of(id) {
            Some(slot) => slot,
            None => {
                let slot = self.slots.allocate(id).expect("a free slot");
                if slot < self.replay_len() {
                    self.write_window(slot, Zeroable::zeroed());
                }
                self.write_line(slot, SessionLine::zeroed());
                self.slot_of.insert(id, slot);
                slot
            }
        };
        self.set_exact_session(
            id,
            SessionEntry {
                replay_slot,
                ..entry
            },
        );
    }

    /// Writes `entry` into the line at its `replay_slot` exactly as given (keeping the line's
    /// `max`), and indexes `id` at that slot.
    pub fn set_exact_session(&mut self, id: u64, entry: SessionEntry) {
        let slot = entry.replay_slot;
        let max = self.line(slot).max;
        self.write_line(slot, SessionLine::of(&entry, 0, max));
        self.set_index(id, slot);
    }

    /// Points the index entry of `id` at `slot`, and at nothing else.
    pub fn set_index(&mut self, id: u64, slot: u32) {
        let mut map: HashMap<&mut MapData, u64, u32> =
            HashMap::try_from(self.ebpf.map_mut(MAP_SESSION_INDEX).expect("session index"))
                .expect("session index type");
        map.insert(id, slot, 0).expect("indexing a session");
    }

    /// Deletes the index entry of `id`, leaving its line and slot.
    pub fn remove_index(&mut self, id: u64) {
        let mut map: HashMap<&mut MapData, u64, u32> =
            HashMap::try_from(self.ebpf.map_mut(MAP_SESSION_INDEX).expect("session index"))
                .expect("session index type");
        map.remove(&id).expect("deleting an index entry");
    }

    /// The line at `slot`.
    pub fn line(&self, slot: u32) -> SessionLine {
        let map: Array<&MapData, SessionLine> =
            Array::try_from(self.ebpf.map(MAP_SESSIONS).expect("session array"))
                .expect("session array type");
        map.get(&slot, 0)
            .unwrap_or_else(|e| panic!("reading session line {slot}: {e}"))
    }

    /// Writes the line at `slot` as given (sequence word included).
    pub fn write_line(&mut self, slot: u32, line: SessionLine) {
        let mut map: Array<&mut MapData, SessionLine> =
            Array::try_from(self.ebpf.map_mut(MAP_SESSIONS).expect("session array"))
                .expect("session array type");
        map.set(slot, line, 0)
            .unwrap_or_else(|e| panic!("writing session line {slot}: {e}"));
    }

    /// The slot `id` owns, if any.
    pub fn slot_of(&self, id: u64) -> Option<u32> {
        self.slot_of.get(&id).copied()
    }

    /// Number of windows of the replay array.
    pub fn replay_len(&self) -> u32 {
        let map: Array<&MapData, ReplayState> =
            Array::try_from(self.ebpf.map(MAP_REPLAY).expect("replay map"))
                .expect("replay map type");
        map.len()
    }

    /// The replay bitmaps at `slot`.
    pub fn window(&self, slot: u32) -> ReplayState {
        let map: Array<&MapData, ReplayState> =
            Array::try_from(self.ebpf.map(MAP_REPLAY).expect("replay map"))
                .expect("replay map type");
        map.get(&slot, 0)
            .unwrap_or_else(|e| panic!("reading replay window {slot}: {e}"))
    }

    /// Writes the replay bitmaps at `slot` as given.
    pub fn write_window(&mut self, slot: u32, window: ReplayState) {
        let mut map: Array<&mut MapData, ReplayState> =
            Array::try_from(self.ebpf.map_mut(MAP_REPLAY).expect("replay map"))
                .expect("replay map type");
        map.set(slot, window, 0)
            .unwrap_or_else(|e| panic!("writing replay window {slot}: {e}"));
    }

    /// The newest nonce the session's replay window accepted (its line's `max`), or `None` if
    /// the session has no slot or its window accepted nothing yet.
    pub fn replay_max(&self, id: u64) -> Option<u64> {
        let line = self.line(self.slot_of(id)?);
        assert_eq!(
            line.session_id, id,
            "the line of {id:x} names another session"
        );
        (line.max != 0).then_some(line.max)
    }

    /// Deletes a session's index entry, then clears its line, zeroes its window and frees its
    /// slot.
    pub fn remove_session(&mut self, id: u64) {
        let mut map: HashMap<&mut MapData, u64, u32> =
            HashMap::try_from(self.ebpf.map_mut(MAP_SESSION_INDEX).expect("session index"))
                .expect("session index type");
        map.remove(&id).expect("deleting a session");
        if let Some(slot) = self.slot_of.remove(&id) {
            self.write_line(
                slot,
                SessionLine {
                    state: SessionState::Terminated as u8,
                    ..Zeroable::zeroed()
                },
            );
            if slot < self.replay_len() {
                self.write_window(slot, Zeroable::zeroed());
            }
            self.slots.release(slot, id);
        }
    }
}
