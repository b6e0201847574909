//! The gateway as one node of a cluster, acting on who owns each session (spec section 7: "the
//! version must be globally consistent, ownership must be unambiguous").
//!
//! [`run`] follows the store's owner keys and this node's lease, when the store is shared
//! ([`crate::store::ClusterMembership`]); on the embedded store it returns at once.
//!
//! - A session this node holds whose owner key now names another node, or vanished with its
//!   owner's lease, is **released**: removed from the live table and from the XDP session map,
//!   with an event. Its packets are then dropped by XDP as `UNKNOWN_SESSION`, and its client's
//!   next reattach here takes it back through the store ([`super::takeover`]).
//! - Once this node's lease is no longer known alive, it is **fenced**: every session it holds
//!   leaves the XDP map and carries no downstream traffic (it stops forwarding), and the store
//!   refuses its mutations, so a reattach gets a REJECT `OWNERSHIP_AMBIGUOUS`. When the lease is
//!   alive again, the node re-reads what it owns and serves that; the rest it releases (they went
//!   to whichever node their clients reached).
//! - A copy held without knowing this node owns it (a takeover not committed here, or a record
//!   a lost compare-and-set installed) is checked against the store's owner key after a
//!   challenge's lifetime and dropped unless this node owns it, so no node keeps, and its timers
//!   never act on, a session another node serves.

use super::core::Controller;
use super::epoch::{first_nonce, MAX_EPOCH};
use super::executor::Executor;
pub use super::ownership_book::Ownership;
use super::ownership_book::{judge, OwnerVerdict, Standing};
use crate::crypto::SessionKeys;
use crate::events::EventRecord;
use crate::session::{Millis, NodeId, Session, SessionId};
use crate::store::etcd::OwnerChange;
use jvpn_common::maps::CONFIG_FLAG_CLUSTER;
use jvpn_common::RejectReason;
use std::sync::Arc;
use std::time::Duration;

/// How often the lease is checked and unfinished takeovers expire.
const TICK: Duration = Duration::from_millis(100);

/// Follows owner changes and the lease until the store's watch ends (see the module doc).
pub async fn run(exec: Arc<Executor>) {
    if exec.store.cluster().is_none() {
        return;
    }
    exec.controller().ownership.set_clustered();
    exec.mark_clustered();
    let store = exec.store.clone();
    let me = match store.cluster() {
        Some(cluster) => cluster.node(),
        None => return,
    };
    let mut changes = loop {
        let store = store.clone();
        let watch = tokio::task::spawn_blocking(move || {
            store.cluster().map(|cluster| cluster.watch_owners())
        })
        .await;
        match watch {
            Ok(Some(Ok(changes))) => break changes,
            Ok(Some(Err(e))) => {
                tracing::error!(error = %e, "cannot watch the session owners; fencing until the watch starts");
                exec.fence();
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => return,
        }
    };
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Some(change) => exec.on_owner_change(me, &change),
                None => {
                    tracing::error!("the owner watch ended; this node fences itself");
                    exec.fence();
                    return;
                }
            },
            _ = tick.tick() => exec.check_standing().await,
        }
    }
}

impl Executor {
    /// Tells the XDP program this gateway is a node of a cluster, so it passes the reattach
    /// messages of sessions it does not hold to the controller ([`super::takeover`]).
    fn mark_clustered(&self) {
        let result = {
            let map = self.map();
            map.config().and_then(|mut config| {
                config.flags |= CONFIG_FLAG_CLUSTER;
                map.set_config(&config)
            })
        };
        if let Err(error) = result {
            tracing::error!(%error, "cannot mark the XDP config as clustered; sessions served by other nodes cannot be taken over here");
        }
    }

    /// Releases the session `change` names if another node owns it now.
    fn on_owner_change(&self, me: NodeId, change: &OwnerChange) {
        let c = self.controller();
        let id = change.id.get();
        if change.owner == Some(me) {
            c.ownership.confirmed(id);
        }
        let held = c.sessions.lock().contains_key(&id);
        if judge(me, held, change) == OwnerVerdict::Keep {
            return;
        }
        let detail = match change.owner {
            Some(node) => format!(
                "node {} owns the session now; removed from this node's table and XDP map, its packets are dropped here",
                node.get()
            ),
            None => "its owner's etcd lease expired; removed from this node's table and XDP map until its client reattaches".into(),
        };
        self.release(id, RejectReason::UnknownSession, detail);
    }

    /// Fences or unfences the node as its lease comes and goes, and checks unsure copies.
    async fn check_standing(&self) {
        let Some(cluster) = self.store.cluster() else {
            return;
        };
        let c = self.controller();
        let now = c.clock.now();
        if !cluster.lease_live() {
            self.fence();
        } else if c.ownership.fenced() && self.restore_owned(now).await {
            // Serving again only once the store said what this node owns.
            c.ownership.set(Standing::Serving);
        }
        let me = cluster.node();
        for id in c.ownership.due(now) {
            let store = self.store.clone();
            let sid = SessionId::new(id);
            let owner = tokio::task::spawn_blocking(move || {
                let cluster = store.cluster()?;
                sid.map(|sid| cluster.owner(sid))
            })
            .await;
            if !matches!(owner, Ok(Some(Ok(Some(node)))) if node == me) {
                self.release(
                    id,
                    RejectReason::UnknownSession,
                    "held here without this node owning it (a takeover not completed, or a lost compare-and-set): removed".into(),
                );
            }
        }
    }

    /// Stops forwarding every held session: this node cannot prove it owns any of them. They
    /// leave the XDP map (their packets are dropped there) and carry no downstream traffic, but
    /// stay in the table, so a reattach still gets its authenticated REJECT
    /// `OWNERSHIP_AMBIGUOUS` from the store's refusal.
    pub fn fence(&self) {
        let c = self.controller();
        if c.ownership.set(Standing::Fenced) == Standing::Fenced {
            return;
        }
        tracing::warn!("this node's etcd lease is not known alive: it stops forwarding its sessions and accepts no mutation until the lease is renewed");
        for id in c.sessions.ids() {
            self.remove_from_map(id);
            let version = c.sessions.snapshot(id).map_or(0, |(s, _)| s.state_version);
            self.bus.publish(
                EventRecord::refusal(Some(id), RejectReason::OwnershipAmbiguous)
                    .with_session_version(version)
                    .with_detail("this node's etcd lease is not known alive: removed from its XDP map, no traffic forwarded"),
            );
        }
    }

    /// Loads into the table and the map the sessions the store says this node owns (whether it
    /// could read them; the node stays fenced until it could), numbering their gateway nonces
    /// under a fresh cluster epoch: this node may have sent some under its own epoch before it
    /// was fenced. Sessions it holds but no longer owns are released.
    async fn restore_owned(&self, now: Millis) -> bool {
        let c = self.controller();
        let store = self.store.clone();
        let floor = c.epoch;
        let read = tokio::task::spawn_blocking(move || {
            let cluster = store.cluster()?;
            let taken = cluster.take_epoch(floor);
            Some(taken.and_then(|epoch| store.list().map(|owned| (epoch, owned))))
        })
        .await;
        let (epoch, owned) = match read {
            Ok(Some(Ok((epoch, owned)))) if epoch <= MAX_EPOCH => (epoch, owned),
            Ok(Some(Ok(_))) => {
                tracing::error!("the cluster's nonce epochs are exhausted; serving none");
                return false;
            }
            Ok(Some(Err(e))) => {
                tracing::error!(error = %e, "cannot re-read the sessions this node owns; serving none");
                return false;
            }
            _ => return false,
        };
        tracing::info!(
            owned = owned.len(),
            "this node's etcd lease is alive again; serving the sessions it owns"
        );
        let owned_ids: std::collections::HashSet<u64> = owned.iter().map(|s| s.id.get()).collect();
        for id in c.sessions.ids() {
            if !owned_ids.contains(&id) {
                self.release(
                    id,
                    RejectReason::UnknownSession,
                    "no longer owned by this node after its lease lapsed: removed".into(),
                );
            }
        }
        for mut session in owned {
            let Ok(stored) = <&[u8; SessionKeys::STORED_LEN]>::try_from(session.secrets.as_slice())
            else {
                continue;
            };
            session.last_rx = now;
            let keys = Arc::new(SessionKeys::from_stored(stored));
            c.sessions
                .install(session.clone(), keys, first_nonce(epoch));
            self.push_map(session.id.get(), &session.map_entry());
            c.routes.committed(&session);
        }
        true
    }

    /// Removes session `id` from the table and the XDP map, and reports why.
    pub fn release(&self, id: u64, reason: RejectReason, detail: String) {
        let c = self.controller();
        let removed = c.sessions.lock().remove(&id);
        let Some(live) = removed else { return };
        self.remove_from_map(id);
        let version = live.session.state_version;
        tracing::info!(session = %SessionId::show(id), state_version = version, %detail, "session released");
        self.bus.publish(
            EventRecord::refusal(Some(id), reason)
                .with_session_version(version)
                .with_detail(detail),
        );
        c.ownership.bury(id, live, c.clock.now());
    }
}

impl Controller {
    /// Installs the record a lost compare-and-set read. Standalone, as any committed record. In a
    /// cluster the winner may be another node: only a copy still held is refreshed (and becomes
    /// unsure); a session released meanwhile is not brought back fresh, since a new entry would
    /// number its gateway nonces from the start of this node's epoch again, under the same keys.
    pub(super) fn install_conflicted(&self, stored: Session, keys: Arc<SessionKeys>) {
        let id = stored.id.get();
        if !self.ownership.clustered() {
            self.sessions.install(stored, keys, first_nonce(self.epoch));
            return;
        }
        if !self.sessions.refresh(stored.clone()) {
            // Released while the compare-and-set was in flight: back, with its own nonce
            // counter, so the loser's REJECT can be sealed; unsure, so it forwards nothing.
            let Some(mut live) = self.ownership.exhume(id) else {
                return;
            };
            if live.session.state_version < stored.state_version {
                live.session = stored;
            }
            self.sessions.lock().entry(id).or_insert(live);
        }
        self.ownership.unsure(id, self.clock.now());
    }

    /// Whether this node forwards session `id`'s traffic: not while fenced, and not a copy it
    /// holds without knowing it owns it.
    pub(super) fn serves(&self, id: u64) -> bool {
        !self.ownership.fenced() && !self.ownership.is_unsure(id)
    }
}
