//! How long a TERMINATED session stays in the live table and the XDP map.
//!
//! A session that ended keeps its map entry for [`TERMINATED_RETENTION_MS`], so late packets of
//! it are dropped as `TERMINATED` (which tells an operator what they are) rather than as
//! `UNKNOWN_SESSION`, and `jvpn sessions` shows how it ended. Then it is evicted from both: the
//! table and the map hold live sessions, not every session there ever was, so a gateway whose
//! clients reconnect all day never fills its session table with the dead. The store keeps the
//! record and its audit history (`jvpn audit ID`), and its id stays issued, never reused.
//! A HELLO that finds the table full evicts terminated sessions at once before it gives up.

use super::core::Gateway;
use crate::session::{Millis, SessionId};
use jvpn_common::maps::SessionState;

/// How long a terminated session stays in the table and the map.
pub const TERMINATED_RETENTION_MS: Millis = 60_000;

impl Gateway {
    /// Evicts the sessions that have been TERMINATED for at least `retention` from the live
    /// table and the XDP map; returns how many went. A session whose map entry cannot be removed
    /// stays in the table, so the next call retries it (the table mirrors the map).
    pub fn evict_terminated(&self, now: Millis, retention: Millis) -> usize {
        let expired: Vec<u64> = self
            .sessions
            .lock()
            .iter()
            .filter(|(_, live)| {
                live.session.state == SessionState::Terminated
                    && now.saturating_sub(live.session.changed_at) >= retention
            })
            .map(|(id, _)| *id)
            .collect();
        let mut evicted = 0;
        for id in expired {
            if self.remove_from_map(id) {
                let gone = self.sessions.lock().remove(&id);
                if let Some(live) = gone {
                    self.fold_client_traffic(&live);
                }
                evicted += 1;
            }
        }
        if evicted > 0 {
            tracing::debug!(evicted, "terminated sessions evicted");
        }
        evicted
    }

    /// Removes a terminated session's entry (and replay window) from the XDP map; whether the
    /// map no longer holds it. A failure is logged, and the caller may retry.
    pub fn remove_from_map(&self, id: u64) -> bool {
        let removed = self
            .dataplane
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove_session(id);
        match removed {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(
                    session = %SessionId::show(id),
                    error = %e,
                    "cannot remove a terminated session from the XDP map"
                );
                false
            }
        }
    }
}
