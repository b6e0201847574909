//! The session table as the controller writes it (layout v5): each session in a slot (`slots.rs`),
//! its line in the session array written in place under its sequence lock (`lines.rs`), its
//! slot in the session index, its replay window at the same slot.
//!
//! The XDP program reads a line whole or refuses the packet (`SESSION_BUSY`), so it sees the old
//! session or the new one, never a mix. This module adds the ordering rule of the versioning
//! model: a session never moves to an older `state_version`, so a delayed write of an old state
//! can never roll enforcement back. The read-compare-write runs under the session lock, which
//! makes it atomic among the writers of this process; the controller is the table's only writer.
//!
//! A session's slot follows it: a new session gets a free slot whose window is zeroed and whose
//! line is written naming it, and only then its index entry (so the program never finds a slot
//! through the index before its line is the session's); a replaced session keeps its slot (and
//! so its window); a removed session's index entry is deleted first, then its line cleared and
//! its window zeroed, and only then is the slot free.

use super::error::map_errno;
use super::lines::SessionLines;
use super::maps::SessionMaps;
use super::slots::ReplaySlots;
use super::{Dataplane, DataplaneError};
use aya::maps::{Array, HashMap, MapData, MapError};
use jvpn_common::maps::ReplayState;
use jvpn_common::{abi, SessionEntry};
use std::sync::PoisonError;

impl Dataplane {
    /// Inserts or replaces the entry of `session_id`, and returns its slot (the gateway writes it
    /// into its headers as the slot hint, `docs/protocol.md` "Slot hint").
    ///
    /// Refuses with [`DataplaneError::StaleUpdate`] if the table holds the session at a higher
    /// `state_version` (an equal version is rewritten, so replaying the controller's store after
    /// a restart is harmless), and with [`DataplaneError::TableFull`] if a new session does not
    /// fit. A new session always starts with a fresh replay window; a replaced one keeps its
    /// window. The entry's `session_id` and `replay_slot` are this module's to set: whatever the
    /// caller put there is replaced.
    pub fn upsert_session(
        &self,
        session_id: u64,
        entry: &SessionEntry,
    ) -> Result<u32, DataplaneError> {
        if session_id == 0 {
            return Err(DataplaneError::ReservedSessionId);
        }
        let mut guard = self
            .maps
            .session_maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let maps = &mut *guard;
        let entry = SessionEntry {
            session_id,
            ..*entry
        };
        if let Some(current) = maps.current(session_id)? {
            if current.state_version > entry.state_version {
                return Err(DataplaneError::StaleUpdate {
                    session_id,
                    current: current.state_version,
                    attempted: entry.state_version,
                });
            }
            maps.lines.update(current.replay_slot, &entry);
            return Ok(current.replay_slot);
        }
        let slot = maps
            .slots
            .allocate(session_id)
            .ok_or(DataplaneError::TableFull {
                capacity: self.maps.capacity,
            })?;
        if let Err(error) = reset_window(&mut maps.replay, slot) {
            maps.slots.release(slot, session_id);
            return Err(error);
        }
        maps.lines.assign(slot, &entry);
        if let Err(error) = maps.index.insert(session_id, slot, 0) {
            maps.lines.clear(slot);
            maps.slots.release(slot, session_id);
            return Err(match map_errno(&error) {
                Some(libc::E2BIG) => DataplaneError::TableFull {
                    capacity: self.maps.capacity,
                },
                _ => DataplaneError::map("indexing a session in", abi::MAP_SESSION_INDEX)(error),
            });
        }
        Ok(slot)
    }

    /// Removes `session_id` and frees its slot; `Ok(false)` if there was no such session.
    pub fn remove_session(&self, session_id: u64) -> Result<bool, DataplaneError> {
        let mut guard = self
            .maps
            .session_maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let maps = &mut *guard;
        let Some(current) = maps.current(session_id)? else {
            return Ok(false);
        };
        let existed = remove_if_present(&mut maps.index, session_id)?;
        maps.free_slot(current.replay_slot, session_id)?;
        Ok(existed)
    }

    /// The entry of `session_id`, if the table has it (`replay_slot` is its slot).
    pub fn session(&self, session_id: u64) -> Result<Option<SessionEntry>, DataplaneError> {
        let maps = self
            .maps
            .session_maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        maps.current(session_id)
    }

    /// The highest client-to-gateway nonce the XDP program accepted for `session_id`, if it
    /// accepted any (its replay window's head, in its line).
    pub fn highest_nonce(&self, session_id: u64) -> Result<Option<u64>, DataplaneError> {
        let maps = self
            .maps
            .session_maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(current) = maps.current(session_id)? else {
            return Ok(None);
        };
        let line = maps.lines.read(current.replay_slot);
        Ok(line
            .filter(|l| l.session_id == session_id && l.max != 0)
            .map(|l| l.max))
    }

    /// Number of sessions in the table. Walks every key (one syscall each), so it costs O(n):
    /// for metrics and tests, not for a per-packet path.
    pub fn session_count(&self) -> Result<u32, DataplaneError> {
        let maps = self
            .maps
            .session_maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut count = 0u32;
        for key in maps.index.keys() {
            key.map_err(DataplaneError::map(
                "listing sessions of",
                abi::MAP_SESSION_INDEX,
            ))?;
            count += 1;
        }
        Ok(count)
    }

    /// Capacity of the session table, fixed at load time.
    pub fn session_capacity(&self) -> u32 {
        self.maps.capacity
    }
}

impl SessionMaps {
    /// The session maps of a pinned dataplane, with the slot bookkeeping rebuilt from its index.
    /// An index entry that cannot keep its slot (out of range, claimed by another entry, or a
    /// line naming another session) is deleted, with a warning: its packets are refused as
    /// unknown until the controller writes the session again, as new, with a fresh slot. A new
    /// load's tables are empty, and this finds nothing to do.
    pub(crate) fn adopt(
        lines: SessionLines,
        index: HashMap<MapData, u64, u32>,
        replay: Array<MapData, ReplayState>,
    ) -> Result<Self, DataplaneError> {
        let mut entries = Vec::new();
        for item in index.iter() {
            let (id, slot) =
                item.map_err(DataplaneError::map("reading", abi::MAP_SESSION_INDEX))?;
            entries.push((id, slot));
        }
        let capacity = lines.len().min(replay.len());
        let (slots, conflicts) = ReplaySlots::rebuild(capacity, entries.iter().copied());
        let mut dropped: Vec<u64> = conflicts.iter().map(|c| c.session_id()).collect();
        let mut maps = Self {
            lines,
            index,
            replay,
            slots,
        };
        for &(id, slot) in &entries {
            let named = maps.lines.read(slot).map(|l| l.session_id);
            if named.is_some_and(|named| named != id) && maps.slots.release(slot, id) {
                dropped.push(id);
            }
        }
        for id in dropped {
            tracing::warn!(
                session = %format_args!("{id:016x}"),
                "the adopted session index names a slot that is not the session's; removed from the table, to be written again in a fresh slot"
            );
            remove_if_present(&mut maps.index, id)?;
        }
        Ok(maps)
    }

    /// The entry of `session_id` as its line holds it, if the index names a slot whose line is
    /// the session's.
    fn current(&self, session_id: u64) -> Result<Option<SessionEntry>, DataplaneError> {
        let slot = match self.index.get(&session_id, 0) {
            Ok(slot) => slot,
            Err(MapError::KeyNotFound) => return Ok(None),
            Err(error) => {
                return Err(DataplaneError::map("reading", abi::MAP_SESSION_INDEX)(
                    error,
                ))
            }
        };
        if !self.slots.is_owned_by(slot, session_id) {
            return Ok(None);
        }
        Ok(self
            .lines
            .read(slot)
            .filter(|l| l.session_id == session_id)
            .map(|l| l.entry(slot)))
    }

    /// Clears `slot`'s line, zeroes its window and frees the slot, if it is `session_id`'s (its
    /// index entry is already gone). The slot is freed even if the reset fails: the next owner's
    /// window is zeroed before use.
    fn free_slot(&mut self, slot: u32, session_id: u64) -> Result<(), DataplaneError> {
        if !self.slots.is_owned_by(slot, session_id) {
            return Ok(());
        }
        self.lines.clear(slot);
        let reset = reset_window(&mut self.replay, slot);
        self.slots.release(slot, session_id);
        reset
    }
}

/// Deletes `key` from the index; whether it was there.
fn remove_if_present(
    index: &mut HashMap<MapData, u64, u32>,
    key: u64,
) -> Result<bool, DataplaneError> {
    match index.remove(&key) {
        Ok(()) => Ok(true),
        Err(error) if map_errno(&error) == Some(libc::ENOENT) => Ok(false),
        Err(MapError::KeyNotFound) => Ok(false),
        Err(error) => Err(DataplaneError::map("deleting from", abi::MAP_SESSION_INDEX)(error)),
    }
}

/// Zeroes the replay bitmaps at `slot`.
fn reset_window(replay: &mut Array<MapData, ReplayState>, slot: u32) -> Result<(), DataplaneError> {
    replay
        .set(slot, <ReplayState as bytemuck::Zeroable>::zeroed(), 0)
        .map_err(DataplaneError::map(
            "resetting a window of",
            abi::MAP_REPLAY,
        ))
}
