//! What follows a compare-and-set, in two calls, so the shell writes the XDP map the moment a
//! commit is known and seals the reply only after:
//! 1. [`Controller::settle`] applies the store's outcome to the controller's cache (a committed
//!    record installed, a lost race's winner adopted, the counters) and returns a [`Settled`]
//!    that names the map entry to write ([`Settled::map_write`]), if anything committed;
//! 2. the shell writes that entry into the XDP session table;
//! 3. [`Controller::reply`] returns the rest: the events, the route change and the reply the
//!    commit token owes (`effect::Then`: a REATTACH_ACK, a REKEY_ACK, a WELCOME, a REJECT...).
//!
//! The spec's order holds at every step: only a committed version is installed or written into
//! the map (section 7), a version never goes back (the cache and the map both refuse an older
//! one), and an ACK is sealed only once its commit is durable, since `settle` is only called
//! with the store's outcome. Writing the map before sealing the ACK keeps the seal, the events
//! and their log lines out of the commit-to-map latency (`cargo xtask bench controller`).

use super::core::{Applied, ApplyError, Controller};
use super::effect::{CommitToken, Effect, Then};
use crate::crypto::SessionKeys;
use crate::events::EventRecord;
use crate::session::{Millis, Session, SessionEvent, Transition};
use crate::store::{CasOutcome, Expected, StoreError};
use jvpn_common::maps::SessionEntry;
use jvpn_common::RejectReason;
use std::sync::Arc;

/// A compare-and-set's outcome, applied to the controller's cache: the map entry the shell must
/// write now, and what [`Controller::reply`] continues with.
#[must_use = "write its map entry, then hand it to Controller::reply for the events and the reply"]
#[derive(Debug)]
pub struct Settled {
    /// What the commit did.
    result: Result<Applied, ApplyError>,
    /// The committed record's XDP entry, by session id.
    map_write: Option<(u64, SessionEntry)>,
    /// The committed transition's events, published by the reply.
    events: Vec<SessionEvent>,
    /// A lost race's CONCURRENT_MUTATION record, published by the reply.
    refusal: Option<EventRecord>,
    /// The reply the commit owes.
    then: Then,
}

impl Settled {
    /// The session id and entry to write into the XDP session table before
    /// [`Controller::reply`]: the committed record's, or `None` if nothing committed.
    pub fn map_write(&self) -> Option<(u64, &SessionEntry)> {
        self.map_write.as_ref().map(|(id, entry)| (*id, entry))
    }
}

impl Controller {
    /// Applies the outcome of the compare-and-set `token` was issued with: a committed record
    /// is counted and installed in the cache; a lost race installs the winner the store
    /// returned. Seals nothing and publishes nothing: [`Self::reply`] does, after the shell
    /// wrote [`Settled::map_write`] into the map.
    pub fn settle(&self, token: CommitToken, outcome: Result<CasOutcome, StoreError>) -> Settled {
        let CommitToken {
            expected,
            transition,
            keys,
            then,
        } = token;
        let Transition { session, events } = transition;
        let (result, map_write, events, refusal) = match outcome {
            Err(error) => (Err(error.into()), None, Vec::new(), None),
            Ok(CasOutcome::Committed) => {
                for change in events.iter().filter_map(SessionEvent::as_state_change) {
                    self.counters
                        .transition(Some(change.from_state), change.to_state);
                }
                let id = session.id.get();
                let before = self.sessions.install(
                    session.clone(),
                    keys,
                    super::epoch::first_nonce(self.epoch),
                );
                self.client_totals.committed(
                    session.client_key,
                    before.unwrap_or_default(),
                    &events,
                );
                // Cryptokey routing follows the cache in the same step, so no caller ever sees
                // the session installed with the routes of its previous version.
                self.routes.committed(&session);
                let entry = session.map_entry();
                (
                    Ok(Applied::Committed(session)),
                    Some((id, entry)),
                    events,
                    None,
                )
            }
            Ok(CasOutcome::Conflict { current }) => {
                let (error, refusal) = self.lost_race(&session, expected, current, keys);
                (Err(error), None, Vec::new(), Some(refusal))
            }
            Ok(CasOutcome::IdAlreadyIssued) => {
                (Err(ApplyError::IdAlreadyIssued), None, Vec::new(), None)
            }
        };
        Settled {
            result,
            map_write,
            events,
            refusal,
            then,
        }
    }

    /// A compare-and-set lost to a concurrent mutation: installs the winner the store returned
    /// and returns the error and the CONCURRENT_MUTATION record the reply publishes.
    fn lost_race(
        &self,
        session: &Session,
        expected: Expected,
        current: Option<Session>,
        keys: Arc<SessionKeys>,
    ) -> (ApplyError, EventRecord) {
        self.counters.cas_conflict();
        let now_version = current.as_ref().map_or(0, |s| s.state_version);
        if let Some(stored) = current {
            let keys = self
                .sessions
                .snapshot(stored.id.get())
                .map(|(_, k)| k)
                .unwrap_or(keys);
            // In a cluster the winner may be another node ([`super::ownership`]).
            self.install_conflicted(stored, keys);
        }
        tracing::warn!(
            session = %session.id,
            expected = ?expected,
            current = now_version,
            "compare-and-set lost to a concurrent mutation"
        );
        let refusal =
            EventRecord::refusal(Some(session.id.get()), RejectReason::ConcurrentMutation)
                .with_session_version(now_version)
                .with_detail(format!(
                    "expected version {expected:?}, the store holds {now_version}"
                ));
        (
            ApplyError::Conflict {
                current: now_version,
            },
            refusal,
        )
    }

    /// Continues a [`Settled`] commit once its map entry is written: returns what the commit
    /// did and the effects that follow (the events, then the reply its token owes, sealed now).
    pub fn reply(
        &self,
        settled: Settled,
        now: Millis,
    ) -> (Result<Applied, ApplyError>, Vec<Effect>) {
        let Settled {
            result,
            map_write: _,
            events,
            refusal,
            then,
        } = settled;
        let mut out = Vec::with_capacity(events.len() + 2);
        if let Some(record) = refusal {
            out.push(Effect::Publish(record));
        }
        for event in &events {
            self.publish(event, &mut out);
        }
        self.then(then, &result, now, &mut out);
        (result, out)
    }

    /// Pushes the reply a commit's token owes ([`Then`]).
    fn then(
        &self,
        then: Then,
        result: &Result<Applied, ApplyError>,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        match then {
            Then::Nothing => {}
            Then::ReattachAck {
                id,
                to,
                version,
                nonce,
            } => {
                self.after_reattach(id, to, version, nonce, result, now, out);
            }
            Then::RekeyAck {
                id,
                to,
                version,
                nonce,
                datagram,
            } => self.after_rekey(id, to, version, nonce, datagram, result, now, out),
            Then::WornOut { id } => self.after_worn_out(id, result, out),
            Then::Welcome {
                session,
                to,
                datagram,
                reservation,
                client,
                settings,
            } => {
                self.after_welcome(session, to, datagram, reservation, &client, result, out);
                if result.is_ok() {
                    self.recheck_after_reload(&settings, session, now, out);
                }
            }
            Then::ClientRemoved { id } => self.after_revoke(id, result, out),
        }
    }
}
