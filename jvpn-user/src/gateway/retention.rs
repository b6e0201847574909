//! How long a TERMINATED session stays in the live table and the XDP map.
//!
//! A session that ended keeps its map entry for [`TERMINATED_RETENTION_MS`], so late packets of
//! it are dropped as `TERMINATED` (which tells an operator what they are) rather than as
//! `UNKNOWN_SESSION`, and `jvpn sessions` shows how it ended. Then it is evicted from both: the
//! table and the map hold live sessions, not every session there ever was, so a gateway whose
//! clients reconnect all day never fills its session table with the dead. The store keeps the
//! record and its audit history (`jvpn audit ID`), and its id stays issued, never reused.
//! A HELLO that finds the table full evicts terminated sessions at once before it gives up.

use super::core::Controller;
use super::effect::Effect;
use crate::session::{Millis, SessionId};
use jvpn_common::maps::SessionState;

/// How long a terminated session stays in the table and the map.
pub const TERMINATED_RETENTION_MS: Millis = 60_000;

impl Controller {
    /// Pushes an [`Effect::Evict`] for every session TERMINATED for at least `retention`;
    /// returns how many. The shell removes each from the XDP map and, if it went, reports it
    /// ([`Self::evicted`]), which removes it from the table: the table mirrors the map, and a
    /// failed removal is retried by the next call.
    pub(super) fn evict_terminated(
        &self,
        now: Millis,
        retention: Millis,
        out: &mut Vec<Effect>,
    ) -> usize {
        let before = out.len();
        out.extend(
            self.sessions
                .lock()
                .iter()
                .filter(|(_, live)| {
                    live.session.state == SessionState::Terminated
                        && now.saturating_sub(live.session.changed_at) >= retention
                })
                .map(|(id, _)| Effect::Evict { session: *id }),
        );
        out.len() - before
    }

    /// A terminated session's map entry (and replay window) is gone: it leaves the table.
    pub fn evicted(&self, id: u64) {
        if self.sessions.lock().remove(&id).is_some() {
            tracing::debug!(session = %SessionId::show(id), "terminated session evicted");
        }
    }
}
