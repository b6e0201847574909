//! Taking a session over from another node of the cluster (spec section 7, option B): a
//! REATTACH_REQUEST for a session this node does not hold, or holds at an older version than the
//! request claims, is looked up in the shared store.
//!
//! The sealed record carries what the node needs: the client's key, the session keys, the
//! version and the binding. The record is only placed in the live table after the request
//! opens under its keys, the client is authorised in this node's config, and this node's lease
//! is alive; then the ordinary reattach runs ([`super::reattach`]): a path challenge, and the
//! compare-and-set that raises the version by one and moves the owner key here in one
//! transaction. The old owner learns it through its owner watch ([`super::ownership`]).
//!
//! The adopted session numbers its gateway-to-client nonces under a fresh cluster epoch
//! ([`crate::store::ClusterMembership::take_epoch`]): above every nonce the previous owner
//! sent, so no nonce is reused under the session's keys and the client's window accepts them.
//!
//! Fail closed: a store that cannot be read, a record that is not ATTACHED or RECOVERING or has no
//! usable keys, a client this node does not authorise, a request that does not open, a fenced
//! node: the session stays unknown here and nothing is written.

use super::core::Controller;
use super::effect::Effect;
use super::epoch::{first_nonce, MAX_EPOCH};
use super::executor::Executor;
use crate::crypto::{open_body, Direction, SessionKeys};
use crate::events::EventRecord;
use crate::session::{Millis, Session, SessionId};
use jvpn_common::control::ReattachRequest;
use jvpn_common::maps::SessionState;
use jvpn_common::{MessageType, RejectReason, WireHeader};
use std::net::SocketAddr;
use std::sync::Arc;

/// Whether a REATTACH_REQUEST claiming `claimed` must be read against the store first: this node
/// holds no copy (`local` is `None`), or its copy is older than the claim. The second happens when
/// the session moved away and back faster than this node's owner watch removed it: judged against
/// the old copy, a valid claim would be refused as VERSION_JUMP. The store decides instead (the
/// request still has to open under the stored keys and match the stored version), and a claim
/// above the stored version is refused there as before.
fn store_has_newer(local: Option<u64>, claimed: u64) -> bool {
    local.is_none_or(|version| claimed > version)
}

/// Why a stored record may not be taken over, if it may not.
pub fn refusal(session: &Session, authorised: bool) -> Option<&'static str> {
    match session.state {
        SessionState::Attached | SessionState::Recovering => {}
        SessionState::Birth => return Some("the stored session was never attached"),
        SessionState::Terminated => return Some("the stored session is terminated"),
    }
    if !authorised {
        return Some("its client is not authorised in this node's config");
    }
    if session.secrets.len() != SessionKeys::STORED_LEN {
        return Some("the stored session has no usable keys");
    }
    None
}

impl Executor {
    /// Whether `datagram` is a REATTACH_REQUEST for a session this clustered node does not hold
    /// while it may serve: its takeover must read the store first
    /// ([`Self::take_over_and_receive`]).
    pub fn needs_takeover(&self, datagram: &[u8]) -> bool {
        let c = self.controller();
        if !c.ownership.clustered() || c.ownership.fenced() {
            return false;
        }
        let Ok(header) = WireHeader::parse(datagram) else {
            return false;
        };
        let local = c
            .sessions
            .lock()
            .get(&header.session_id.get())
            .map(|live| live.session.state_version);
        header.message_type() == Some(MessageType::ReattachRequest)
            && store_has_newer(local, header.state_version.get())
    }

    /// Reads the session `datagram` names from the store, lets the controller decide whether to
    /// take it over ([`Controller::admit_takeover`]), takes a fresh cluster epoch for it and
    /// installs it ([`Controller::adopt`]); then handles the datagram as any other.
    pub async fn take_over_and_receive(self: Arc<Self>, mut datagram: Vec<u8>, from: SocketAddr) {
        self.prepare_takeover(&datagram, from).await;
        self.receive(&mut datagram, from).await;
    }

    async fn prepare_takeover(&self, datagram: &[u8], from: SocketAddr) {
        let c = self.controller();
        let Some(id) = WireHeader::parse(datagram)
            .ok()
            .and_then(|h| SessionId::new(h.session_id.get()))
        else {
            return;
        };
        let store = self.store.clone();
        let session = match tokio::task::spawn_blocking(move || store.get(id)).await {
            Ok(Ok(Some(session))) => session,
            Ok(Ok(None)) | Err(_) => return,
            Ok(Err(e)) => {
                self.bus.publish(refused(id, from, &e.to_string()));
                return;
            }
        };
        let mut out = Vec::new();
        let keys = c.admit_takeover(&session, datagram, from, &mut out);
        self.execute(out).await;
        let Some(keys) = keys else { return };
        let store = self.store.clone();
        let floor = c.epoch;
        let epoch = tokio::task::spawn_blocking(move || {
            store.cluster().map(|cluster| cluster.take_epoch(floor))
        })
        .await;
        match epoch {
            Ok(Some(Ok(epoch))) if epoch <= MAX_EPOCH => {
                c.adopt(session, keys, epoch, from, c.clock.now())
            }
            Ok(Some(Ok(_))) => {
                self.bus.publish(refused(
                    id,
                    from,
                    "the cluster's nonce epochs are exhausted",
                ));
            }
            Ok(Some(Err(e))) => {
                self.bus.publish(refused(id, from, &e.to_string()));
            }
            _ => {}
        }
    }
}

impl Controller {
    /// Decides whether the stored `session` may be taken over for `datagram` (a
    /// REATTACH_REQUEST): its keys if so. Refusals are pushed as events into `out`.
    pub(super) fn admit_takeover(
        &self,
        session: &Session,
        datagram: &[u8],
        from: SocketAddr,
        out: &mut Vec<Effect>,
    ) -> Option<Arc<SessionKeys>> {
        let authorised = self
            .settings
            .get()
            .clients()
            .iter()
            .any(|c| c.public_key.as_bytes() == &session.client_key);
        if let Some(why) = refusal(session, authorised) {
            out.push(Effect::Publish(refused(session.id, from, why)));
            return None;
        }
        let stored = <&[u8; SessionKeys::STORED_LEN]>::try_from(session.secrets.as_slice()).ok()?;
        let keys = Arc::new(SessionKeys::from_stored(stored));
        if let Err(e) = open_body::<ReattachRequest>(&keys, Direction::ClientToGateway, datagram) {
            // Nothing is installed for a request that does not authenticate.
            self.seal_failed(datagram, from, &e, out);
            return None;
        }
        Some(keys)
    }

    /// Places the stored `session` in the live table, numbering its gateway nonces under
    /// `epoch`, as a copy this node does not own yet: the reattach that follows commits it.
    pub(super) fn adopt(
        &self,
        mut session: Session,
        keys: Arc<SessionKeys>,
        epoch: u64,
        from: SocketAddr,
        now: Millis,
    ) {
        // The stored last_rx is on the previous owner's clock; give the session a full
        // keepalive period on this one.
        session.last_rx = now;
        let (id, version) = (session.id, session.state_version);
        self.hellos
            .remember(session.client_key, session.hello_timestamp);
        self.ownership.unsure(id.get(), now);
        self.sessions.install(session, keys, first_nonce(epoch));
        tracing::info!(session = %id, state_version = version, peer = %from, epoch, "taking the session over from the cluster's store");
    }
}

/// The event of a takeover this node refused; the request then meets an unknown session.
fn refused(id: SessionId, from: SocketAddr, why: &str) -> EventRecord {
    tracing::warn!(session = %id, peer = %from, why, "not taking the session over");
    EventRecord::refusal(Some(id.get()), RejectReason::OwnershipAmbiguous)
        .with_peer(from)
        .with_detail(format!("not taken over from the cluster's store: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(state: SessionState, secrets: usize) -> Session {
        let mut session = Session::birth(SessionId::new(3).expect("nonzero"), [1; 32], 0);
        session.state = state;
        session.secrets = vec![0; secrets].into();
        session
    }

    #[test]
    fn a_claim_is_read_against_the_store_when_this_node_holds_no_copy_or_an_older_one() {
        let cases = [
            (None, 1, true),
            (None, 40, true),
            (Some(26), 27, true),
            (Some(26), 26, false),
            (Some(26), 25, false),
            (Some(u64::MAX - 1), u64::MAX, true),
            (Some(u64::MAX), u64::MAX, false),
        ];
        for (local, claimed, expected) in cases {
            assert_eq!(
                store_has_newer(local, claimed),
                expected,
                "local copy {local:?}, claim {claimed}"
            );
        }
    }

    #[test]
    fn only_a_live_session_of_an_authorised_client_with_keys_is_taken_over() {
        let keys = SessionKeys::STORED_LEN;
        let cases = [
            (SessionState::Attached, keys, true, true),
            (SessionState::Recovering, keys, true, true),
            (SessionState::Birth, keys, true, false),
            (SessionState::Terminated, keys, true, false),
            (SessionState::Attached, keys, false, false),
            (SessionState::Attached, 0, true, false),
            (SessionState::Attached, keys - 1, true, false),
        ];
        for (state, secrets, authorised, taken) in cases {
            assert_eq!(
                refusal(&stored(state, secrets), authorised).is_none(),
                taken,
                "{state:?}, {secrets} key bytes, authorised {authorised}"
            );
        }
    }
}
