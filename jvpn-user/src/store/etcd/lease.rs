//! The node's etcd lease: the owner keys of its sessions live under it, and it is what makes this
//! node's ownership provable.
//!
//! [`NodeLease`] keeps the lease alive from the store's runtime. It tracks, on this node's clock,
//! a conservative deadline: the time a renewal was *sent* plus the TTL etcd granted. etcd expires
//! the lease no earlier than that, so while the deadline is ahead this node still owns what it
//! owned; once it passes, the node must assume its owner keys are gone: it refuses mutations
//! ([`NodeLease::live`] is false) and stops forwarding. A lease etcd reports expired is replaced
//! by a new one, so the node serves again once it reaches a quorum; sessions it owned under the old
//! lease have lost their owner and are taken by whichever node their client reaches next.

use etcd_client::Client;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The lease of this node and how long it is known to be alive.
#[derive(Debug)]
pub struct NodeLease {
    id: AtomicI64,
    valid_until: Mutex<Instant>,
    ttl: Duration,
}

impl NodeLease {
    /// Grants a lease of `ttl` (whole seconds, at least 1).
    pub async fn grant(
        client: &mut Client,
        ttl: Duration,
    ) -> Result<Arc<Self>, etcd_client::Error> {
        let sent = Instant::now();
        let granted = client.lease_grant(ttl_secs(ttl), None).await?;
        Ok(Arc::new(Self {
            id: AtomicI64::new(granted.id()),
            valid_until: Mutex::new(sent + Duration::from_secs(granted.ttl().max(0) as u64)),
            ttl,
        }))
    }

    /// The lease id, for the owner keys written under it.
    pub fn id(&self) -> i64 {
        self.id.load(Ordering::Acquire)
    }

    /// Whether the lease is known alive now.
    pub fn live(&self) -> bool {
        Instant::now() < *self.valid_until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Renews the lease every third of its TTL until the task is dropped with the runtime.
    pub async fn keep_alive(self: Arc<Self>, mut client: Client) {
        let period = self.ttl / 3;
        loop {
            tokio::time::sleep(period).await;
            let sent = Instant::now();
            match tokio::time::timeout(period, self.renew(&mut client)).await {
                Ok(Ok(ttl)) if ttl > 0 => self.extend(sent, ttl),
                // etcd answers a renewal of an expired lease with TTL 0; the client reports that
                // as "lease not found".
                Ok(Ok(_)) => self.replace(&mut client, sent).await,
                Ok(Err(e)) if e.to_string().contains("lease not found") => {
                    self.replace(&mut client, sent).await
                }
                Ok(Err(e)) => {
                    tracing::warn!(lease = self.id(), error = %e, "renewing the node's etcd lease failed; mutations stop when it runs out")
                }
                Err(_) => tracing::warn!(
                    lease = self.id(),
                    "renewing the node's etcd lease timed out; mutations stop when it runs out"
                ),
            }
        }
    }

    /// Grants a new lease in place of the expired one.
    async fn replace(&self, client: &mut Client, sent: Instant) {
        tracing::warn!(
            lease = self.id(),
            "the node's etcd lease expired; its sessions lost their owner; granting a new lease"
        );
        if let Ok(granted) = client.lease_grant(ttl_secs(self.ttl), None).await {
            self.id.store(granted.id(), Ordering::Release);
            self.extend(sent, granted.ttl());
        }
    }

    /// One renewal; the TTL etcd granted (0 if the lease is gone).
    async fn renew(&self, client: &mut Client) -> Result<i64, etcd_client::Error> {
        let (mut keeper, mut responses) = client.lease_keep_alive(self.id()).await?;
        keeper.keep_alive().await?;
        Ok(responses.message().await?.map_or(0, |r| r.ttl()))
    }

    fn extend(&self, sent: Instant, ttl: i64) {
        *self.valid_until.lock().unwrap_or_else(|e| e.into_inner()) =
            sent + Duration::from_secs(ttl.max(0) as u64);
    }
}

fn ttl_secs(ttl: Duration) -> i64 {
    ttl.as_secs().max(1) as i64
}
