//! The session table as the controller writes it: whole entries, in version order.
//!
//! The XDP program reads an entry by id and sees either the old value or the new one (a hash map
//! update replaces the element under RCU). This module adds the ordering rule of the versioning
//! model: an entry never moves to an older `state_version`, so a delayed write of an old state can
//! never roll enforcement back. The read-compare-write runs under the session lock, which makes
//! it atomic among the writers of this process; the controller is the table's only writer.

use super::error::map_errno;
use super::{Dataplane, DataplaneError};
use aya::maps::MapError;
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
    /// fit. A new session always starts with a fresh replay window. The entry's `session_id` is
    /// written as `session_id`: the XDP program refuses an entry that names another session.
    pub fn upsert_session(
        &self,
        session_id: u64,
        entry: &SessionEntry,
    ) -> Result<(), DataplaneError> {
        if session_id == 0 {
            return Err(DataplaneError::ReservedSessionId);
        }
        let mut maps = self
            .maps
            .session_maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let flags = match lookup(&maps.sessions, session_id)? {
            Some(current) if current.state_version > entry.state_version => {
                return Err(DataplaneError::StaleUpdate {
                    session_id,
                    current: current.state_version,
                    attempted: entry.state_version,
                });
            }
            Some(_) => BPF_EXIST,
            None => {
                // A window can outlive its session when a packet was in flight during removal;
                // a new session must never inherit it.
                remove_if_present(&mut maps.replay, session_id, abi::MAP_REPLAY)?;
                BPF_NOEXIST
            }
        };
        let entry = SessionEntry {
            session_id,
            ..*entry
        };
        maps.sessions
            .insert(session_id, entry, flags)
            .map_err(|error| match map_errno(&error) {
                Some(libc::E2BIG) => DataplaneError::TableFull {
                    capacity: self.maps.capacity,
                },
                _ => DataplaneError::map("writing a session to", abi::MAP_SESSIONS)(error),
            })
    }

    /// Removes `session_id` and its replay window; `Ok(false)` if there was no such session.
    pub fn remove_session(&self, session_id: u64) -> Result<bool, DataplaneError> {
        let mut maps = self
            .maps
            .session_maps
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let existed = remove_if_present(&mut maps.sessions, session_id, abi::MAP_SESSIONS)?;
        remove_if_present(&mut maps.replay, session_id, abi::MAP_REPLAY)?;
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
        Ok(lookup(&maps.replay, session_id)?.map(|state| state.max))
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
