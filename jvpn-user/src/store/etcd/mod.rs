//! [`EtcdStore`]: the session store shared by the nodes of a gateway cluster, on etcd (spec
//! section 7, option B). One authoritative version per session across all nodes.
//!
//! A compare-and-set is one etcd transaction: it compares the revisions of the session record and
//! its issued marker read just before (so nothing changed them since the request was checked) and
//! writes the sealed record, its sealed STATE_CHANGE records and the owner key under this node's
//! lease together ([`txn`]). A reattach that lands on another node therefore moves ownership in
//! the transaction that increments the version. A node whose lease has run out refuses mutations
//! ([`StoreError::OwnershipAmbiguous`]); a cluster without quorum accepts none.
//!
//! The trait is synchronous and the etcd client is async: the store owns a one-thread tokio
//! runtime of its own, and each call hands its future to it and waits on a channel. Mutations
//! arrive from the group committer's thread, so no gateway worker waits on etcd for them.
//!
//! - [`layout`]: the keys. - [`seal`]: sealing under the cluster key. - [`options`]: endpoints,
//!   TLS, timeouts. - [`lease`]: the node's lease. - [`txn`]: the compare-and-set transaction and
//!   the re-read of an unknown outcome. - [`read`]: reads and the owner watch. - [`epoch`]: the
//!   cluster-wide nonce epoch counter.

pub mod epoch;
pub mod layout;
pub mod lease;
pub mod options;
pub mod read;
pub mod seal;
pub mod txn;

use super::{BatchItem, CasOutcome, CasRequest, Expected, SessionStore, StoreError};
use crate::session::{NodeId, Session, SessionId, StateChange};
use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};
use layout::Layout;
use lease::NodeLease;
use seal::Keyring;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use options::{parse_store_url, EtcdOptions, EtcdTls, StoreUrlError};
pub use read::OwnerChange;

/// Why a record read from etcd is unusable.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// It does not unseal.
    #[error("{0}")]
    Seal(#[from] seal::SealError),
    /// It unseals but does not decode.
    #[error("{0}; this jvpn does not read it: run the jvpn that wrote it")]
    Codec(#[from] super::CodecError),
    /// The cluster epoch counter holds something other than a number.
    #[error("the cluster epoch counter holds {0:?}, not a number; set it (etcdctl put) above every node's boot epoch")]
    Epoch(String),
}

/// What the store's tasks share.
struct Inner {
    client: Client,
    layout: Layout,
    keyring: Keyring,
    node: NodeId,
    lease: Arc<NodeLease>,
    timeout: Duration,
    max_txn_ops: usize,
}

/// The etcd-backed [`SessionStore`].
pub struct EtcdStore {
    inner: Arc<Inner>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("node", &self.inner.node)
            .field("lease", &self.inner.lease.id())
            .finish()
    }
}

impl EtcdStore {
    /// Connects to the cluster, grants this node's lease and starts renewing it.
    pub fn connect(options: EtcdOptions) -> Result<Self, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("jvpn-etcd")
            .enable_all()
            .build()
            .map_err(|e| StoreError::EtcdRuntime(format!("could not start ({e})")))?;
        let timeout = options.request_timeout;
        let connect = async move {
            let mut client = within(timeout * 2, "connect", async {
                Client::connect(&options.endpoints, Some(connect_options(&options)?)).await
            })
            .await?;
            // A member still starting, or one that is down, refuses at once and the client's
            // balancer may pick it again; an extra lease granted by a retry just expires.
            let deadline = std::time::Instant::now() + timeout * 5;
            let lease = loop {
                let grant = NodeLease::grant(&mut client, options.lease_ttl);
                match within(timeout, "grant the node's lease", grant).await {
                    Ok(lease) => break lease,
                    Err(_) if std::time::Instant::now() < deadline => {
                        tokio::time::sleep(timeout / 16).await
                    }
                    Err(e) => return Err(e),
                }
            };
            tokio::spawn(lease.clone().keep_alive(client.clone()));
            Ok::<_, StoreError>(Inner {
                client,
                layout: Layout::new(&options.prefix),
                keyring: options.keyring,
                node: options.node,
                lease,
                timeout,
                max_txn_ops: options.max_txn_ops,
            })
        };
        // Not `block_on`: the gateway connects from inside its own runtime, where that panics.
        let (done, result) = std::sync::mpsc::sync_channel(1);
        runtime.spawn(async move {
            let _ = done.send(connect.await);
        });
        let inner = result
            .recv()
            .map_err(|_| StoreError::EtcdRuntime("stopped while connecting".into()))??;
        Ok(Self {
            inner: Arc::new(inner),
            runtime: Some(runtime),
        })
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.inner.node
    }

    /// Whether this node's lease is known alive: while it is not, the node accepts no mutation
    /// and must stop forwarding the sessions it owned.
    pub fn lease_live(&self) -> bool {
        self.inner.lease.live()
    }

    /// The node recorded as the owner of `id`, if its lease is alive.
    pub fn owner(&self, id: SessionId) -> Result<Option<NodeId>, StoreError> {
        self.call(move |inner| async move { inner.owner(id).await })
    }

    /// Every change of any session's owner from now on, until the store is dropped.
    pub fn watch_owners(
        &self,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<OwnerChange>, StoreError> {
        self.call(move |inner| async move { inner.watch_owners().await })
    }

    /// Runs `f` on the store's runtime and waits for it from this thread.
    fn call<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Inner>) -> Fut,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| StoreError::EtcdRuntime("has stopped".into()))?;
        let (done, result) = std::sync::mpsc::sync_channel(1);
        let future = f(self.inner.clone());
        runtime.spawn(async move {
            let _ = done.send(future.await);
        });
        result
            .recv()
            .unwrap_or_else(|_| Err(StoreError::EtcdRuntime("stopped during a request".into())))
    }
}

impl Drop for EtcdStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks; from inside another runtime that panics. Nothing here needs a
        // graceful end: the lease simply runs out.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl super::ClusterMembership for EtcdStore {
    fn node(&self) -> NodeId {
        self.inner.node
    }

    fn lease_live(&self) -> bool {
        EtcdStore::lease_live(self)
    }

    fn watch_owners(
        &self,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<OwnerChange>, StoreError> {
        EtcdStore::watch_owners(self)
    }

    fn owner(&self, id: SessionId) -> Result<Option<NodeId>, StoreError> {
        EtcdStore::owner(self, id)
    }

    fn take_epoch(&self, floor: u64) -> Result<u64, StoreError> {
        self.call(move |inner| async move { inner.take_epoch(floor).await })
    }
}

impl SessionStore for EtcdStore {
    fn compare_and_set(
        &self,
        id: SessionId,
        expected: Expected,
        new: &Session,
        audit: &[StateChange],
    ) -> Result<CasOutcome, StoreError> {
        let request = CasRequest::new(expected, new.clone(), audit.to_vec());
        let mut items =
            self.call(move |inner| async move { inner.cas_batch(vec![request]).await })?;
        match items.pop() {
            Some(item) => item.map_err(|source| StoreError::Refused { id, source }),
            None => Err(StoreError::OutcomeUnknown { id }),
        }
    }

    fn compare_and_set_batch(&self, batch: &[CasRequest]) -> Result<Vec<BatchItem>, StoreError> {
        let batch = batch.to_vec();
        self.call(move |inner| async move { inner.cas_batch(batch).await })
    }

    fn get(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        self.call(move |inner| async move { inner.get(id).await })
    }

    /// The sessions this node owns: a node serves those, and only those.
    fn list(&self) -> Result<Vec<Session>, StoreError> {
        self.call(move |inner| async move { inner.list().await })
    }

    fn audit(&self, id: SessionId) -> Result<Vec<StateChange>, StoreError> {
        self.call(move |inner| async move { inner.audit(id).await })
    }

    fn is_issued(&self, id: SessionId) -> Result<bool, StoreError> {
        self.call(move |inner| async move { inner.is_issued(id).await })
    }

    fn cluster(&self) -> Option<&dyn super::ClusterMembership> {
        Some(self)
    }

    fn max_batch(&self) -> usize {
        // A request writes its record, its owner, usually one or two audit records, and for a
        // creation its issued marker; compares take two per session.
        (self.inner.max_txn_ops / 8).max(1)
    }
}

fn connect_options(options: &EtcdOptions) -> Result<ConnectOptions, etcd_client::Error> {
    let mut connect = ConnectOptions::new()
        .with_timeout(options.request_timeout)
        .with_connect_timeout(options.request_timeout)
        .with_keep_alive(options.request_timeout, options.request_timeout)
        // A member cut off from the leader answers "no leader" at once instead of hanging.
        .with_require_leader(true);
    if let Some(tls) = &options.tls {
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| {
                etcd_client::Error::InvalidArgs(format!("cannot read {}: {e}", path.display()))
            })
        };
        let mut config = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&tls.ca)?));
        if let Some((cert, key)) = &tls.client {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        if let Some(domain) = &tls.domain {
            config = config.domain_name(domain.clone());
        }
        connect = connect.with_tls(config);
    }
    Ok(connect)
}

/// `future`, failing with [`StoreError::EtcdTimeout`] after `after`.
async fn within<T>(
    after: Duration,
    op: &'static str,
    future: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(after, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(StoreError::Etcd {
            op,
            source: Box::new(e),
        }),
        Err(_) => Err(StoreError::EtcdTimeout { op, after }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jvpn_common::RejectReason;

    #[test]
    fn cluster_failures_are_refused_as_ownership_ambiguous_and_others_get_no_reason() {
        let id = SessionId::new(1).unwrap();
        let ambiguous = Some(RejectReason::OwnershipAmbiguous);
        let cases: Vec<(StoreError, Option<RejectReason>)> = vec![
            (
                StoreError::OwnershipAmbiguous {
                    node: 1,
                    why: "test",
                },
                ambiguous,
            ),
            (StoreError::OutcomeUnknown { id }, ambiguous),
            (
                StoreError::EtcdTimeout {
                    op: "test",
                    after: Duration::from_secs(1),
                },
                ambiguous,
            ),
            (
                StoreError::GroupCommit(Arc::new(StoreError::EtcdTimeout {
                    op: "test",
                    after: Duration::from_secs(1),
                })),
                ambiguous,
            ),
            (StoreError::CommitterStopped, None),
            (StoreError::EtcdRuntime("test".into()), None),
        ];
        for (error, want) in cases {
            assert_eq!(error.reject_reason(), want, "{error}");
        }
    }
}
