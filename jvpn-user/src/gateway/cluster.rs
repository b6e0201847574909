//! The gateway as a node of a cluster: opens the session store `--store` chose, with the node's
//! `[cluster]` settings (spec section 7).
//!
//! The embedded store stays the default. With `--store etcd://...` the sessions live in etcd
//! ([`crate::store::EtcdStore`]), shared by every node; the state directory's embedded store is
//! still opened, for what is the node's own: its lock (one gateway per state directory) and its
//! boot epoch.

use crate::config::gateway::ClusterSettings;
use crate::store::etcd::EtcdOptions;
use crate::store::{EtcdStore, RedbStore, SessionStore, StoreChoice, StoreError};
use std::path::PathBuf;
use std::sync::Arc;

/// Why the chosen store cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// `--store etcd://` without a `[cluster]` table.
    #[error("--store etcd://... needs a [cluster] table in {config} (node_id, key_id, key_file); see docs/cluster.md")]
    NoClusterTable {
        /// The config file.
        config: PathBuf,
    },
    /// The cluster's epoch counter passed the largest epoch a nonce can carry.
    #[error("the cluster's nonce epoch counter reached {epoch}, past the largest usable epoch; start a new cluster prefix (clients re-handshake)")]
    EpochsExhausted {
        /// The epoch the counter gave.
        epoch: u64,
    },
    /// The etcd store could not be reached or set up.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The session store of this gateway: `embedded` unless `choice` names an etcd cluster. With
/// etcd, the embedded store comes back too: hold it while the gateway runs, for its lock on the
/// state directory.
pub fn session_store(
    choice: &StoreChoice,
    cluster: Option<&ClusterSettings>,
    config: &std::path::Path,
    embedded: RedbStore,
) -> Result<(Arc<dyn SessionStore>, Option<RedbStore>), ClusterError> {
    let StoreChoice::Etcd(endpoints) = choice else {
        return Ok((Arc::new(embedded), None));
    };
    let cluster = cluster.ok_or_else(|| ClusterError::NoClusterTable {
        config: config.to_owned(),
    })?;
    let mut options = EtcdOptions::new(endpoints.clone(), cluster.node, cluster.keyring());
    options.lease_ttl = cluster.lease_ttl;
    options.prefix = cluster.prefix.clone();
    options.tls = cluster.tls.clone();
    let store = EtcdStore::connect(options)?;
    tracing::info!(node = cluster.node.get(), endpoints = ?endpoints, "sessions are kept in the etcd cluster");
    Ok((Arc::new(store), Some(embedded)))
}

/// This run's boot epoch: `local` ([`super::epoch::advance`]) on a standalone gateway; in a
/// cluster, an epoch above it and above every epoch any node took before
/// ([`crate::store::ClusterMembership::take_epoch`]), so no two nodes ever number a session's
/// gateway-to-client nonces alike.
pub fn boot_epoch(store: &dyn SessionStore, local: u64) -> Result<u64, ClusterError> {
    let Some(cluster) = store.cluster() else {
        return Ok(local);
    };
    let epoch = cluster.take_epoch(local)?;
    if epoch > super::epoch::MAX_EPOCH {
        return Err(ClusterError::EpochsExhausted { epoch });
    }
    Ok(epoch)
}
