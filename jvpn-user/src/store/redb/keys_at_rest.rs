//! Keys at rest: a TERMINATED session's keys are removed from its record in the transaction that
//! records the termination ([`at_rest`]), and records an earlier jvpn stored with keys are wiped
//! when the store opens. The audit records never held keys.

use super::{RedbStore, CURRENT};
use crate::session::{Session, SessionId};
use crate::store::{codec, StoreError};
use jvpn_common::abi::HEADER_KEY_LEN;
use jvpn_common::maps::SessionState;
use redb::{ReadableTable, Table};
use std::borrow::Cow;

impl RedbStore {
    /// Removes the keys of TERMINATED records an earlier jvpn stored with them, so no ended
    /// session's keys survive this start.
    pub(super) fn wipe_terminated_keys(
        &self,
        sessions: &mut Table<'_, (u64, u64), &'static [u8]>,
    ) -> Result<(), StoreError> {
        let mut keyed = Vec::new();
        for row in sessions
            .range::<(u64, u64)>(..)
            .map_err(|e| self.db_err("scan sessions", e))?
        {
            let (k, v) = row.map_err(|e| self.db_err("scan sessions", e))?;
            let (id, part) = k.value();
            if part != CURRENT {
                continue;
            }
            // A record that does not decode is reported where it is read (get, list), with its key.
            let Ok(s) = codec::decode_session(v.value()) else {
                tracing::warn!(session = %SessionId::show(id), "a stored session record is corrupt");
                continue;
            };
            if s.state == SessionState::Terminated && holds_keys(&s) {
                keyed.push(s);
            }
        }
        for s in keyed {
            let record = codec::encode_session(&at_rest(&s))
                .map_err(|e| self.corrupt(format!("session {}", s.id), e))?;
            sessions
                .insert((s.id.get(), CURRENT), record.as_slice())
                .map_err(|e| self.db_err("wipe terminated keys", e))?;
            tracing::info!(session = %s.id, "removed the stored keys of a terminated session");
        }
        Ok(())
    }
}

/// The record as it is written: a TERMINATED session's keys are wiped in the same transaction
/// as its termination commits (nothing may use them again; the audit keeps its history).
pub(in crate::store) fn at_rest(session: &Session) -> Cow<'_, Session> {
    if session.state != SessionState::Terminated || !holds_keys(session) {
        return Cow::Borrowed(session);
    }
    let mut wiped = session.clone();
    wiped.wipe_keys();
    Cow::Owned(wiped)
}

fn holds_keys(session: &Session) -> bool {
    !session.secrets.is_empty() || session.header_key != [0; HEADER_KEY_LEN]
}
