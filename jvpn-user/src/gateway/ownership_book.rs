//! What a cluster node knows of its own ownership, without I/O: whether it may serve
//! ([`Standing`]), what an owner change means for a session it holds ([`judge`]), the copies it
//! holds without knowing it owns them, and the sessions it released lately ([`Ownership`]).
//! [`super::ownership`] acts on it.

use super::live::{LiveSession, CHALLENGE_LIFETIME_MS};
use crate::session::{Millis, NodeId};
use crate::store::etcd::OwnerChange;
use std::collections::HashMap;
use std::sync::Mutex;

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
#[derive(Default)]
pub struct Ownership {
    /// Whether the gateway is a node of a cluster (set once its owner watch starts).
    clustered: std::sync::atomic::AtomicBool,
    standing: Mutex<Standing>,
    /// Session id -> when the copy is checked against the store's owner key.
    unsure: Mutex<HashMap<u64, Millis>>,
    /// Sessions released lately, kept for a challenge's lifetime with their nonce counters: a
    /// compare-and-set in flight when the release came still answers its client (a sealed
    /// REJECT) without numbering a gateway nonce twice.
    released: Mutex<HashMap<u64, (LiveSession, Millis)>>,
}

impl Ownership {
    /// Records that the gateway is a node of a cluster.
    pub fn set_clustered(&self) {
        self.clustered
            .store(true, std::sync::atomic::Ordering::Release);
    }

    /// Whether the gateway is a node of a cluster: a standalone gateway owns all it holds.
    pub fn clustered(&self) -> bool {
        self.clustered.load(std::sync::atomic::Ordering::Acquire)
    }

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
    pub(super) fn confirmed(&self, id: u64) {
        self.unsure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Takes the unsure copies whose check is due at `now`.
    pub(super) fn due(&self, now: Millis) -> Vec<u64> {
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

    /// Keeps a released session until `now` + the challenge lifetime.
    pub(super) fn bury(&self, id: u64, live: LiveSession, now: Millis) {
        let mut released = self.released.lock().unwrap_or_else(|p| p.into_inner());
        released.retain(|_, (_, until)| *until > now);
        released.insert(id, (live, now + CHALLENGE_LIFETIME_MS));
    }

    /// Takes back a session released lately, if it is still kept.
    pub(super) fn exhume(&self, id: u64) -> Option<LiveSession> {
        self.released
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id)
            .map(|(live, _)| live)
    }

    /// Sets the standing; the one it replaced.
    pub(super) fn set(&self, standing: Standing) -> Standing {
        std::mem::replace(
            &mut *self.standing.lock().unwrap_or_else(|p| p.into_inner()),
            standing,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::SessionId;

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
