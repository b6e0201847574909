//! What the controller needs of the XDP maps, as a trait: the session table (written in version
//! order), the config entry that carries the HELLO guard, the per-CPU counters and the replay
//! windows. [`Dataplane`] implements it on the pinned maps; the controller's unit tests implement
//! it on a `HashMap`, so every handler runs without root or a kernel (as aya's own map tests
//! override the syscall).

use crate::dataplane::{CounterSnapshot, Dataplane, DataplaneError, Origin};
use jvpn_common::maps::{GatewayConfig, SessionEntry};

/// The XDP maps as the controller writes and reads them. Every call is short (one map syscall)
/// and made under the gateway's map lock, so updates land in version order.
pub trait SessionMap: Send {
    /// Inserts or replaces `session_id`'s entry and returns its slot (its slot hint); refuses an
    /// older version ([`DataplaneError::StaleUpdate`]) and a new session that does not fit
    /// ([`DataplaneError::TableFull`]).
    fn upsert_session(&self, session_id: u64, entry: &SessionEntry) -> Result<u32, DataplaneError>;
    /// Removes `session_id`'s entry and replay window; whether it was there.
    fn remove_session(&self, session_id: u64) -> Result<bool, DataplaneError>;
    /// The highest client-to-gateway nonce the program accepted for `session_id`.
    fn highest_nonce(&self, session_id: u64) -> Result<Option<u64>, DataplaneError>;
    /// How many sessions the table holds at most.
    fn session_capacity(&self) -> u32;
    /// The config entry.
    fn config(&self) -> Result<GatewayConfig, DataplaneError>;
    /// Replaces the config entry.
    fn set_config(&self, config: &GatewayConfig) -> Result<(), DataplaneError>;
    /// The program's counters, summed over CPUs.
    fn counters(&self) -> Result<CounterSnapshot, DataplaneError>;
    /// Whether this run loaded the program or adopted it from its pins.
    fn origin(&self) -> Origin;
}

impl SessionMap for Dataplane {
    fn upsert_session(&self, session_id: u64, entry: &SessionEntry) -> Result<u32, DataplaneError> {
        Dataplane::upsert_session(self, session_id, entry)
    }

    fn remove_session(&self, session_id: u64) -> Result<bool, DataplaneError> {
        Dataplane::remove_session(self, session_id)
    }

    fn highest_nonce(&self, session_id: u64) -> Result<Option<u64>, DataplaneError> {
        Dataplane::highest_nonce(self, session_id)
    }

    fn session_capacity(&self) -> u32 {
        Dataplane::session_capacity(self)
    }

    fn config(&self) -> Result<GatewayConfig, DataplaneError> {
        Dataplane::config(self)
    }

    fn set_config(&self, config: &GatewayConfig) -> Result<(), DataplaneError> {
        Dataplane::set_config(self, config)
    }

    fn counters(&self) -> Result<CounterSnapshot, DataplaneError> {
        Dataplane::counters(self)
    }

    fn origin(&self) -> Origin {
        Dataplane::origin(self)
    }
}
