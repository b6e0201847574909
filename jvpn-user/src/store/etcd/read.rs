//! Reads of the clustered store (all linearizable: a read never returns a state older than an
//! acknowledged write) and the watch of owner keys.

use super::layout::KeyKind;
use super::{within, Inner, RecordError};
use crate::session::{NodeId, Session, SessionId, StateChange};
use crate::store::{codec, StoreError};
use etcd_client::{EventType, GetOptions, KvClient, SortOrder, SortTarget, WatchOptions};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pause between tries of a read: a member that is down refuses at once, and the client's
/// balancer may pick it again before it notices.
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// A session's owner changed: `owner` is the new owner, `None` when the owner key went away
/// (its node's lease expired).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OwnerChange {
    /// The session.
    pub id: SessionId,
    /// Its owner now.
    pub owner: Option<NodeId>,
}

impl Inner {
    /// Runs the read `f` until it succeeds or the request timeout passes. Reads change nothing,
    /// so trying again (on another member) is always safe.
    pub(super) async fn read<T, F, Fut>(&self, op: &'static str, mut f: F) -> Result<T, StoreError>
    where
        F: FnMut(KvClient) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match within(left.max(RETRY_PAUSE), op, f(self.client.kv_client())).await {
                Ok(value) => return Ok(value),
                Err(_) if Instant::now() + RETRY_PAUSE < deadline => {
                    tokio::time::sleep(RETRY_PAUSE).await
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Unseals and decodes a session record read from `key`.
    pub(super) fn open_session(&self, key: &str, value: &[u8]) -> Result<Session, StoreError> {
        let plain = self
            .keyring
            .open(key.as_bytes(), value)
            .map_err(|e| record(key, e.into()))?;
        codec::decode_session(&plain).map_err(|e| record(key, e.into()))
    }

    pub(super) async fn get(&self, id: SessionId) -> Result<Option<Session>, StoreError> {
        let key = self.layout.session(id);
        let response = self
            .read("read a session", |mut kv| {
                let key = key.clone();
                async move { kv.get(key, None).await }
            })
            .await?;
        response
            .kvs()
            .first()
            .map(|kv| self.open_session(&key, kv.value()))
            .transpose()
    }

    /// The sessions this node owns (whose owner key names it), in id order: what a node loads
    /// into its maps and serves. Another node's sessions are never forwarded here.
    pub(super) async fn list(&self) -> Result<Vec<Session>, StoreError> {
        let owners = self.layout.owners();
        let owned = self
            .read("list owners", |mut kv| {
                let owners = owners.clone();
                async move { kv.get(owners, Some(sorted_prefix())).await }
            })
            .await?;
        let mut sessions = Vec::new();
        for kv in owned.kvs() {
            let Some(KeyKind::Owner(id)) = self.layout.parse(kv.key()) else {
                continue;
            };
            if parse_node(kv.value()) != Some(self.node) {
                continue;
            }
            if let Some(session) = self.get(id).await? {
                sessions.push(session);
            }
        }
        Ok(sessions)
    }

    pub(super) async fn audit(&self, id: SessionId) -> Result<Vec<StateChange>, StoreError> {
        let key = self.layout.audits(id);
        let response = self
            .read("read an audit", |mut kv| {
                let key = key.clone();
                async move { kv.get(key, Some(sorted_prefix())).await }
            })
            .await?;
        response
            .kvs()
            .iter()
            .map(|kv| {
                let key = String::from_utf8_lossy(kv.key());
                let plain = self
                    .keyring
                    .open(kv.key(), kv.value())
                    .map_err(|e| record(&key, e.into()))?;
                codec::decode_state_change(&plain).map_err(|e| record(&key, e.into()))
            })
            .collect()
    }

    pub(super) async fn is_issued(&self, id: SessionId) -> Result<bool, StoreError> {
        let key = self.layout.issued(id);
        let response = self
            .read("read an issued id", |mut kv| {
                let key = key.clone();
                async move { kv.get(key, Some(GetOptions::new().with_count_only())).await }
            })
            .await?;
        Ok(response.count() > 0)
    }

    pub(super) async fn owner(&self, id: SessionId) -> Result<Option<NodeId>, StoreError> {
        let key = self.layout.owner(id);
        let response = self
            .read("read an owner", |mut kv| {
                let key = key.clone();
                async move { kv.get(key, None).await }
            })
            .await?;
        Ok(response.kvs().first().and_then(|kv| parse_node(kv.value())))
    }

    /// Starts watching every owner key; the watch resumes after the last revision it saw when its
    /// stream breaks, so no change is missed while etcd keeps that history.
    pub(super) async fn watch_owners(
        self: Arc<Self>,
    ) -> Result<tokio::sync::mpsc::UnboundedReceiver<OwnerChange>, StoreError> {
        let (changes, receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut client = self.client.watch_client();
        let prefix = self.layout.owners();
        let start = within(
            self.timeout,
            "watch owners",
            client.watch(prefix.clone(), Some(WatchOptions::new().with_prefix())),
        )
        .await?;
        tokio::spawn(async move {
            let mut stream = start;
            let mut next = 0i64;
            loop {
                while let Ok(Some(response)) = stream.message().await {
                    for event in response.events() {
                        let Some(kv) = event.kv() else { continue };
                        next = next.max(kv.mod_revision() + 1);
                        let Some(KeyKind::Owner(id)) = self.layout.parse(kv.key()) else {
                            continue;
                        };
                        let owner = match event.event_type() {
                            EventType::Put => parse_node(kv.value()),
                            EventType::Delete => None,
                        };
                        if changes.send(OwnerChange { id, owner }).is_err() {
                            return;
                        }
                    }
                }
                tokio::time::sleep(self.timeout / 4).await;
                let mut options = WatchOptions::new().with_prefix();
                if next > 0 {
                    options = options.with_start_revision(next);
                }
                if let Ok(resumed) = client.watch(prefix.clone(), Some(options)).await {
                    stream = resumed;
                }
            }
        });
        Ok(receiver)
    }
}

fn sorted_prefix() -> GetOptions {
    GetOptions::new()
        .with_prefix()
        .with_sort(SortTarget::Key, SortOrder::Ascend)
}

/// The node id an owner key holds.
pub(super) fn parse_node(value: &[u8]) -> Option<NodeId> {
    std::str::from_utf8(value)
        .ok()?
        .parse()
        .ok()
        .map(NodeId::new)
}

fn record(key: &str, source: RecordError) -> StoreError {
    StoreError::EtcdRecord {
        key: key.to_owned(),
        source,
    }
}
