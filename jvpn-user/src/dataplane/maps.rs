//! Typed handles on the pinned maps userspace reads and writes. Both a fresh load and an adoption
//! open the maps the same way, from their pins, so the two paths cannot drift apart; opening also
//! checks each pinned map's key and value sizes against this build's types, and rebuilds the
//! slot bookkeeping from the session index (`sessions.rs`, `SessionMaps::adopt`).

use super::lines::SessionLines;
use super::pins::PinDir;
use super::slots::ReplaySlots;
use super::DataplaneError;
use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray, RingBuf};
use jvpn_common::abi;
use jvpn_common::maps::{EventLoss, ReplayState, SessionLine};
use jvpn_common::{DropCounter, GatewayConfig};
use std::sync::Mutex;

/// The three per-session maps and the slot bookkeeping, kept under one lock so a
/// read-compare-write of a session, with the slot handed to it or taken back, is atomic with
/// respect to this process (and the lines' sequence locks have one writer at a time).
pub(crate) struct SessionMaps {
    /// Session lines by slot, written in place by the controller (through this mapping).
    pub(crate) lines: SessionLines,
    /// Slot by session id, written only by the controller.
    pub(crate) index: HashMap<MapData, u64, u32>,
    /// Replay bitmaps by slot: reset by userspace when a slot changes hands, written by the XDP
    /// program otherwise.
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
        let lines_data = open_data(pins, abi::MAP_SESSIONS)?;
        let lines = SessionLines::map(&lines_data)?;
        let capacity = lines.len();
        // Checks the value size against this build's line; the mapping outlives the handle.
        let _: Array<MapData, SessionLine> = typed(pins, abi::MAP_SESSIONS, lines_data)?;
        let index = open(pins, abi::MAP_SESSION_INDEX)?;
        let replay = open(pins, abi::MAP_REPLAY)?;
        let session_maps = SessionMaps::adopt(lines, index, replay)?;
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
