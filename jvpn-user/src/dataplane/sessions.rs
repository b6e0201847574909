//! The session table as the controller writes it: whole entries, in version order, each with
//! the replay slot this module assigns (`slots.rs`).
//!
//! The XDP program reads an entry by id and sees either the old value or the new one (a hash map
//! update replaces the element under RCU). This module adds the ordering rule of the versioning
//! model: an entry never moves to an older `state_version`, so a delayed write of an old state can
//! never roll enforcement back. The read-compare-write runs under the session lock, which makes
//! it atomic among the writers of this process; the controller is the table's only writer.
//!
//! A session's replay window follows its entry: a new session gets a free slot whose window is
//! reset to zero naming it, before its entry is published; a replaced entry keeps its slot (and
//! so its window); a removed session's window is reset without an owner after its entry is
//! deleted, and only then is the slot free.

use super::error::map_errno;
use super::maps::SessionMaps;
use super::slots::ReplaySlots;
use super::{Dataplane, DataplaneError};
use aya::maps::{Array, HashMap, MapData, MapError};
use jvpn_common::maps::ReplayState;
use jvpn_common::{abi, SessionEntry};
use std::sync::PoisonError;

/// `BPF_NOEXIST` (include/uapi/linux/bpf.h): create only.
const BPF_NOEXIST: u64 = 1;
/// `BPF_EXIST`: update only.
const BPF_EXIST: u64 = 2;

impl Dataplane {
    /// Inserts or replaces the entry of `session_id`.
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
    ) -> Result<(), DataplaneError> {
        if session_id == 0 {
            return Err(DataplaneError::ReservedSessionId);
        }
        let mut guard = self
            .maps
            .session_maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let maps = &mut *guard;
        let current = lookup(&maps.sessions, session_id)?;
        let kept_slot = match current {
            Some(current) if current.state_version > entry.state_version => {
                return Err(DataplaneError::StaleUpdate {
                    session_id,
                    current: current.state_version,
                    attempted: entry.state_version,
                });
            }
            Some(current) if maps.slots.is_owned_by(current.replay_slot, session_id) => {
                Some(current.replay_slot)
            }
            Some(current) => {
                // Only a table written behind this process's back gets here (adoption drops
                // such entries): fail closed onto a window of its own.
                tracing::warn!(
                    session = %format_args!("{session_id:016x}"),
                    slot = current.replay_slot,
                    "the session's entry names a replay slot that is not its own; giving it a fresh window"
                );
                None
            }
            None => None,
        };
        let table_full = DataplaneError::TableFull {
            capacity: self.maps.capacity,
        };
        let slot = match kept_slot {
            Some(slot) => slot,
            None => {
                let slot = maps.slots.allocate(session_id).ok_or(table_full)?;
                if let Err(error) = reset_window(&mut maps.replay, slot, session_id) {
                    maps.slots.release(slot, session_id);
                    return Err(error);
                }
                slot
            }
        };
        let flags = if current.is_some() {
            BPF_EXIST
        } else {
            BPF_NOEXIST
        };
        let entry = SessionEntry {
            session_id,
            replay_slot: slot,
            ..*entry
        };
        let written = maps.sessions.insert(session_id, entry, flags);
        if let Err(error) = written {
            if kept_slot.is_none() {
                free_slot(maps, slot, session_id)?;
            }
            return Err(match map_errno(&error) {
                Some(libc::E2BIG) => DataplaneError::TableFull {
                    capacity: self.maps.capacity,
                },
                _ => DataplaneError::map("writing a session to", abi::MAP_SESSIONS)(error),
            });
        }
        if let Some(old) = current.filter(|c| c.replay_slot != slot) {
            free_slot(maps, old.replay_slot, session_id)?;
        }
        Ok(())
    }

    /// Removes `session_id` and frees its replay window; `Ok(false)` if there was no such
    /// session.
    pub fn remove_session(&self, session_id: u64) -> Result<bool, DataplaneError> {
        let mut guard = self
            .maps
            .session_maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let maps = &mut *guard;
        let Some(entry) = lookup(&maps.sessions, session_id)? else {
            return Ok(false);
        };
        let existed = remove_if_present(&mut maps.sessions, session_id, abi::MAP_SESSIONS)?;
        free_slot(maps, entry.replay_slot, session_id)?;
        Ok(existed)
    }

    /// The entry of `session_id`, if the table has it.
    pub fn session(&self, session_id: u64) -> Result<Option<SessionEntry>, DataplaneError> {
        let maps = self
            .maps
            .session_maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        lookup(&maps.sessions, session_id)
    }

    /// The highest client-to-gateway nonce the XDP program accepted for `session_id`, if it
    /// accepted any (its replay window's `max`).
    pub fn highest_nonce(&self, session_id: u64) -> Result<Option<u64>, DataplaneError> {
        let maps = self
            .maps
            .session_maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let Some(entry) = lookup(&maps.sessions, session_id)? else {
            return Ok(None);
        };
        if !maps.slots.is_owned_by(entry.replay_slot, session_id) {
            return Ok(None);
        }
        let window = maps
            .replay
            .get(&entry.replay_slot, 0)
            .map_err(DataplaneError::map("reading", abi::MAP_REPLAY))?;
        Ok((window.owner == session_id && window.max != 0).then_some(window.max))
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
        for key in maps.sessions.keys() {
            key.map_err(DataplaneError::map(
                "listing sessions of",
                abi::MAP_SESSIONS,
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

/// Looks up `key`; a missing key is `None`.
fn lookup<V: aya::Pod>(
    map: &aya::maps::HashMap<aya::maps::MapData, u64, V>,
    key: u64,
) -> Result<Option<V>, DataplaneError> {
    match map.get(&key, 0) {
        Ok(value) => Ok(Some(value)),
        Err(MapError::KeyNotFound) => Ok(None),
        Err(error) => Err(DataplaneError::map("reading", abi::MAP_SESSIONS)(error)),
    }
}

/// Deletes `key`; whether it was there.
fn remove_if_present<V: aya::Pod>(
    map: &mut aya::maps::HashMap<aya::maps::MapData, u64, V>,
    key: u64,
    name: &'static str,
) -> Result<bool, DataplaneError> {
    match map.remove(&key) {
        Ok(()) => Ok(true),
        Err(error) if map_errno(&error) == Some(libc::ENOENT) => Ok(false),
        Err(MapError::KeyNotFound) => Ok(false),
        Err(error) => Err(DataplaneError::map("deleting from", name)(error)),
    }
}

impl SessionMaps {
    /// The session maps of a pinned dataplane, with the slot bookkeeping rebuilt from its
    /// entries. An entry that cannot keep its slot (out of range, claimed by another entry, or a
    /// window naming another owner) is deleted, with a warning: its packets are refused as
    /// unknown until the controller writes the session again, as new, with a fresh window. A new
    /// load's tables are empty, and this finds nothing to do.
    pub(crate) fn adopt(
        sessions: HashMap<MapData, u64, SessionEntry>,
        replay: Array<MapData, ReplayState>,
    ) -> Result<Self, DataplaneError> {
        let mut entries = Vec::new();
        for item in sessions.iter() {
            let (id, entry) = item.map_err(DataplaneError::map("reading", abi::MAP_SESSIONS))?;
            let owner = match replay.get(&entry.replay_slot, 0) {
                Ok(window) => Some(window.owner),
                Err(MapError::OutOfBounds { .. }) => None,
                Err(error) => return Err(DataplaneError::map("reading", abi::MAP_REPLAY)(error)),
            };
            entries.push((id, entry.replay_slot, owner));
        }
        let (slots, conflicts) = ReplaySlots::rebuild(
            replay.len(),
            entries.iter().map(|&(id, slot, _)| (id, slot)),
        );
        let mut dropped: Vec<u64> = conflicts.iter().map(|c| c.session_id()).collect();
        let mut maps = Self {
            sessions,
            replay,
            slots,
        };
        for &(id, slot, owner) in &entries {
            if owner.is_some_and(|owner| owner != id) && maps.slots.release(slot, id) {
                dropped.push(id);
            }
        }
        for id in dropped {
            tracing::warn!(
                session = %format_args!("{id:016x}"),
                "the adopted session entry names a replay window that is not its own; removed from the table, to be written again with a fresh window"
            );
            remove_if_present(&mut maps.sessions, id, abi::MAP_SESSIONS)?;
        }
        Ok(maps)
    }
}

/// Writes a zeroed window naming `owner` (0: free) at `slot`.
fn reset_window(
    replay: &mut Array<MapData, ReplayState>,
    slot: u32,
    owner: u64,
) -> Result<(), DataplaneError> {
    let window = ReplayState {
        owner,
        ..bytemuck::Zeroable::zeroed()
    };
    replay.set(slot, window, 0).map_err(DataplaneError::map(
        "resetting a window of",
        abi::MAP_REPLAY,
    ))
}

/// Resets `slot`'s window without an owner and frees the slot, if it is `session_id`'s (its
/// entry is already gone or never pointed at it). The slot is freed even if the reset fails:
/// the next owner's window is written whole before use.
fn free_slot(maps: &mut SessionMaps, slot: u32, session_id: u64) -> Result<(), DataplaneError> {
    if !maps.slots.is_owned_by(slot, session_id) {
        return Ok(());
    }
    let reset = reset_window(&mut maps.replay, slot, 0);
    maps.slots.release(slot, session_id);
    reset
}
