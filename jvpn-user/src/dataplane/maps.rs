//! Typed handles on the pinned maps userspace reads and writes. Both a fresh load and an adoption
//! open the maps the same way, from their pins, so the two paths cannot drift apart; opening also
//! checks each pinned map's key and value sizes against this build's types, and rebuilds the
//! replay slot bookkeeping from the session table (`sessions.rs`, `SessionMaps::adopt`).

use super::pins::PinDir;
use super::slots::ReplaySlots;
use super::DataplaneError;
use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray, RingBuf};
use jvpn_common::abi;
use jvpn_common::maps::{EventLoss, ReplayState};
use jvpn_common::{DropCounter, GatewayConfig, SessionEntry};
use std::sync::Mutex;

/// The two per-session maps and the slot bookkeeping, kept under one lock so a
/// read-compare-write of a session, with the slot handed to it or taken back, is atomic with
/// respect to this process.
pub(crate) struct SessionMaps {
    /// Session table, written only by the controller (through this handle).
    pub(crate) sessions: HashMap<MapData, u64, SessionEntry>,
    /// Replay windows by slot: reset by userspace while no entry points at them, written by the
    /// XDP program otherwise.
    pub(crate) replay: Array<MapData, ReplayState>,
    /// Which session owns which replay slot.
    pub(crate) slots: ReplaySlots,
}

/// Every map handle a [`super::Dataplane`] holds.
pub(crate) struct PinnedMaps {
    /// Sessions and replay windows.
    pub(crate) session_maps: Mutex<SessionMaps>,
    /// Capacity of the session table, as created.
    pub(crate) capacity: u32,
    /// Per-CPU packet and byte counters per slot.
    pub(crate) counters: PerCpuArray<MapData, DropCounter>,
    /// Per-CPU counts of events not emitted, per reason.
    pub(crate) event_loss: PerCpuArray<MapData, EventLoss>,
    /// The single config entry.
    pub(crate) config: Mutex<Array<MapData, GatewayConfig>>,
    /// The security event ring; taken by the one event reader.
    pub(crate) events: Mutex<Option<RingBuf<MapData>>>,
}

impl PinnedMaps {
    /// Opens every map userspace uses from `pins`.
    pub(crate) fn open(pins: &PinDir) -> Result<Self, DataplaneError> {
        let sessions_data = open_data(pins, abi::MAP_SESSIONS)?;
        let capacity = sessions_data
            .info()
            .map_err(DataplaneError::map(
                "reading the capacity of",
                abi::MAP_SESSIONS,
            ))?
            .max_entries();
        let sessions = typed(pins, abi::MAP_SESSIONS, sessions_data)?;
        let replay = typed(pins, abi::MAP_REPLAY, open_data(pins, abi::MAP_REPLAY)?)?;
        let session_maps = SessionMaps::adopt(sessions, replay)?;
        Ok(Self {
            session_maps: Mutex::new(session_maps),
            capacity,
            counters: open(pins, abi::MAP_COUNTERS)?,
            event_loss: open(pins, abi::MAP_EVENT_LOSS)?,
            config: Mutex::new(open(pins, abi::MAP_CONFIG)?),
            events: Mutex::new(Some(open(pins, abi::MAP_EVENTS)?)),
        })
    }
}

/// Opens the map pinned as `name`.
fn open_data(pins: &PinDir, name: &'static str) -> Result<MapData, DataplaneError> {
    MapData::from_pin(pins.map(name)).map_err(DataplaneError::map("opening the pin of", name))
}

/// Views `data` as the typed map `T`, or reports a layout mismatch.
fn typed<T>(pins: &PinDir, name: &'static str, data: MapData) -> Result<T, DataplaneError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    let map = Map::from_map_data(data).map_err(DataplaneError::map("identifying", name))?;
    T::try_from(map).map_err(|source| DataplaneError::PinnedLayout {
        path: pins.map(name),
        source: Box::new(source),
    })
}

/// Opens the map pinned as `name` as the typed map `T`.
fn open<T>(pins: &PinDir, name: &'static str) -> Result<T, DataplaneError>
where
    T: TryFrom<Map, Error = aya::maps::MapError>,
{
    typed(pins, name, open_data(pins, name)?)
}
