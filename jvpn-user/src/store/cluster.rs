//! What a gateway needs of a store shared by a cluster, beyond compare-and-set (spec section 7):
//! which node it is, whether its lease still proves its ownership, the stream of owner changes,
//! and epochs that are fresh across every node.
//!
//! [`crate::store::SessionStore::cluster`] hands it out; the embedded store has none, so a
//! standalone gateway never runs the cluster code paths.

use super::etcd::OwnerChange;
use super::StoreError;
use crate::session::{NodeId, SessionId};

/// The clustered side of a session store ([`super::EtcdStore`] implements it).
pub trait ClusterMembership: Send + Sync {
    /// This node's id.
    fn node(&self) -> NodeId;
    /// Whether this node's lease is known alive: while it is not, the node must neither mutate
    /// nor forward the sessions it owned.
    fn lease_live(&self) -> bool;
    /// Every change of any session's owner from now on.
    fn watch_owners(&self)
        -> Result<tokio::sync::mpsc::UnboundedReceiver<OwnerChange>, StoreError>;
    /// The node recorded as the owner of `id`, if its lease is alive.
    fn owner(&self, id: SessionId) -> Result<Option<NodeId>, StoreError>;
    /// A nonce epoch above `floor` and above every epoch any node of the cluster took before:
    /// gateway-to-client nonces numbered under it were never used by any node, so a session
    /// that moves between nodes never reuses a nonce under its keys, and its client, whose
    /// window only moves up, accepts them.
    fn take_epoch(&self, floor: u64) -> Result<u64, StoreError>;
}
