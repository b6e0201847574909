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
//!   leaves the table and the map (it stops forwarding), and the store refuses its mutations
//!   (`OWNERSHIP_AMBIGUOUS`). When the lease is alive again, the node re-reads what it owns and
//!   serves that; its other sessions went to whichever node their clients reached.
//! - A copy held without knowing this node owns it (a takeover not committed here, or a record
//!   a lost compare-and-set installed) is checked against the store's owner key after a
//!   challenge's lifetime and dropped unless this node owns it, so no node keeps, and its timers
//!   never act on, a session another node serves.

use super::core::Gateway;
use super::epoch::first_nonce;
use super::live::CHALLENGE_LIFETIME_MS;
use crate::crypto::SessionKeys;
use crate::events::EventRecord;
use crate::session::{Millis, NodeId, SessionId};
use crate::store::etcd::OwnerChange;
use jvpn_common::maps::CONFIG_FLAG_CLUSTER;
use jvpn_common::RejectReason;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the lease is checked and unfinished takeovers expire.
const TICK: Duration = Duration::from_millis(100);

/// What an owner change means for a session this node holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerVerdict {
    /// Nothing to do: this node owns it, or does not hold it.
    Keep,
    /// Another node owns it, or nobody provably does: stop serving it here.
    Release,
}

/// Decides what `change` means on node `me`, which holds the session iff `held`.
pub fn judge(me: NodeId, held: bool, change: &OwnerChange) -> OwnerVerdict {
    if held && change.owner != Some(me) {
        OwnerVerdict::Release
    } else {
        OwnerVerdict::Keep
    }
}

/// Whether this node may serve its sessions now.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Standing {
    /// Its lease is alive: it serves what it owns.
    #[default]
    Serving,
    /// Its lease is not known alive: it serves nothing until it is again.
    Fenced,
}

/// The ownership bookkeeping a gateway keeps: its standing, and the copies it holds without
/// knowing it owns them (a takeover not yet committed, or a record a lost compare-and-set
/// installed).
#[derive(Debug, Default)]
pub struct Ownership {
    standing: Mutex<Standing>,
    /// Session id -> when the copy is checked against the store's owner key.
    unsure: Mutex<HashMap<u64, Millis>>,
}

impl Ownership {
    /// Whether the node is fenced (takes nothing over while it is).
    pub fn fenced(&self) -> bool {
        *self.standing.lock().unwrap_or_else(|p| p.into_inner()) == Standing::Fenced
    }

    /// Records that this node holds session `id` without knowing it owns it: until its own
    /// commit shows up in the owner watch, a reattach of it must be committed here (even from
    /// its bound address), and at `now` + the challenge lifetime the copy is checked against the
    /// store's owner key and dropped if another node owns it.
    pub fn unsure(&self, id: u64, now: Millis) {
        self.unsure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, now + CHALLENGE_LIFETIME_MS + 1_000);
    }

    /// Whether this node holds `id` without knowing it owns it.
    pub fn is_unsure(&self, id: u64) -> bool {
        self.unsure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&id)
    }

    /// This node's ownership of `id` was confirmed (its owner key names this node).
    fn confirmed(&self, id: u64) {
        self.unsure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Takes the unsure copies whose check is due at `now`.
    fn due(&self, now: Millis) -> Vec<u64> {
        let mut unsure = self.unsure.lock().unwrap_or_else(|p| p.into_inner());
        let due: Vec<u64> = unsure
            .iter()
            .filter(|(_, &at)| at <= now)
            .map(|(&id, _)| id)
            .collect();
        for id in &due {
            unsure.remove(id);
        }
        due
    }

    /// Sets the standing; the one it replaced.
    fn set(&self, standing: Standing) -> Standing {
        std::mem::replace(
            &mut *self.standing.lock().unwrap_or_else(|p| p.into_inner()),
            standing,
        )
    }
}

/// Follows owner changes and the lease until the store's watch ends (see the module doc).
pub async fn run(gateway: Arc<Gateway>) {
    if gateway.store.cluster().is_none() {
        return;
    }
    gateway.mark_clustered();
    let store = gateway.store.clone();
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
                gateway.fence(gateway.clock.now());
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => return,
        }
    };
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            change = changes.recv() => match change {
                Some(change) => gateway.on_owner_change(me, &change),
                None => {
                    tracing::error!("the owner watch ended; this node fences itself");
                    gateway.fence(gateway.clock.now());
                    return;
                }
            },
            _ = tick.tick() => gateway.check_standing().await,
        }
    }
}

impl Gateway {
    /// Tells the XDP program this gateway is a node of a cluster, so it passes the reattach
    /// messages of sessions it does not hold to the controller ([`super::takeover`]).
    fn mark_clustered(&self) {
        let dataplane = self.dataplane.lock().unwrap_or_else(|p| p.into_inner());
        let result = dataplane.config().and_then(|mut config| {
            config.flags |= CONFIG_FLAG_CLUSTER;
            dataplane.set_config(&config)
        });
        if let Err(error) = result {
            tracing::error!(%error, "cannot mark the XDP config as clustered; sessions served by other nodes cannot be taken over here");
        }
    }

    /// In a cluster, records that this node holds `id` without knowing it owns it
    /// ([`Ownership::unsure`]); a standalone gateway owns everything it holds.
    pub fn unsure_of(&self, id: u64) {
        if self.store.cluster().is_some() {
            self.ownership.unsure(id, self.clock.now());
        }
    }

    /// Releases the session `change` names if another node owns it now.
    fn on_owner_change(&self, me: NodeId, change: &OwnerChange) {
        let id = change.id.get();
        if change.owner == Some(me) {
            self.ownership.confirmed(id);
        }
        let held = self.sessions.lock().contains_key(&id);
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

    /// Fences or unfences the node as its lease comes and goes, and lapses unfinished takeovers.
    async fn check_standing(&self) {
        let Some(cluster) = self.store.cluster() else {
            return;
        };
        let now = self.clock.now();
        let live = cluster.lease_live();
        if !live {
            self.fence(now);
        } else if self.ownership.set(Standing::Serving) == Standing::Fenced {
            self.restore_owned(now).await;
        }
        let me = cluster.node();
        for id in self.ownership.due(now) {
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

    /// Stops serving every held session: this node cannot prove it owns any of them.
    pub fn fence(&self, _now: Millis) {
        if self.ownership.set(Standing::Fenced) == Standing::Fenced {
            return;
        }
        tracing::warn!("this node's etcd lease is not known alive: it stops forwarding its sessions and accepts no mutation until the lease is renewed");
        for id in self.sessions.ids() {
            self.release(
                id,
                RejectReason::OwnershipAmbiguous,
                "this node's etcd lease is not known alive: removed from its table and XDP map"
                    .into(),
            );
        }
    }

    /// Loads into the table and the map the sessions the store says this node owns.
    async fn restore_owned(&self, now: Millis) {
        let store = self.store.clone();
        let owned = match tokio::task::spawn_blocking(move || store.list()).await {
            Ok(Ok(owned)) => owned,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot re-read the sessions this node owns; serving none");
                return;
            }
            Err(_) => return,
        };
        tracing::info!(
            owned = owned.len(),
            "this node's etcd lease is alive again; serving the sessions it owns"
        );
        for mut session in owned {
            let Ok(stored) = <&[u8; SessionKeys::STORED_LEN]>::try_from(session.secrets.as_slice())
            else {
                continue;
            };
            session.last_rx = now;
            let keys = Arc::new(SessionKeys::from_stored(stored));
            self.sessions
                .install(session.clone(), keys, first_nonce(self.epoch));
            self.push_map(&session);
            self.routes.committed(&session);
        }
    }

    /// Removes session `id` from the table and the XDP map, and reports why.
    pub fn release(&self, id: u64, reason: RejectReason, detail: String) {
        let removed = self.sessions.lock().remove(&id);
        let Some(live) = removed else { return };
        self.remove_from_map(id);
        tracing::info!(session = %SessionId::show(id), state_version = live.session.state_version, %detail, "session released");
        self.bus.publish(
            EventRecord::refusal(Some(id), reason)
                .with_session_version(live.session.state_version)
                .with_detail(detail),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_session_is_released_unless_this_node_owns_it() {
        let me = NodeId::new(1);
        let id = SessionId::new(7).expect("nonzero");
        let change = |owner: Option<u16>| OwnerChange {
            id,
            owner: owner.map(NodeId::new),
        };
        let cases = [
            (true, Some(1), OwnerVerdict::Keep),
            (true, Some(2), OwnerVerdict::Release),
            (true, None, OwnerVerdict::Release),
            (false, Some(2), OwnerVerdict::Keep),
            (false, None, OwnerVerdict::Keep),
            (false, Some(1), OwnerVerdict::Keep),
        ];
        for (held, owner, want) in cases {
            assert_eq!(
                judge(me, held, &change(owner)),
                want,
                "held {held}, owner {owner:?}"
            );
        }
    }

    #[test]
    fn an_unsure_copy_is_checked_after_its_challenge_unless_confirmed() {
        let ownership = Ownership::default();
        ownership.unsure(9, 1_000);
        ownership.unsure(8, 1_000);
        assert!(ownership.is_unsure(9));
        assert!(!ownership.is_unsure(7));
        ownership.confirmed(8);
        assert!(!ownership.is_unsure(8), "its owner key names this node");
        assert!(ownership.due(1_000 + CHALLENGE_LIFETIME_MS).is_empty());
        assert_eq!(
            ownership.due(1_000 + CHALLENGE_LIFETIME_MS + 1_000),
            vec![9]
        );
        assert!(ownership.due(u64::MAX).is_empty(), "checked once");
        assert!(!ownership.is_unsure(9));
    }
}
