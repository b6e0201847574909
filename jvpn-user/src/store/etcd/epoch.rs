//! The cluster's nonce epoch counter, one etcd key (`P/e`) that only goes up.
//!
//! Each node numbers its gateway-to-client nonces under an epoch (`gateway::epoch`). In a
//! cluster, two nodes serve the same session's keys in turn, so their epochs must never be equal
//! and a node taking a session over must number above the previous owner: both hold if every
//! epoch comes from one counter that a compare-and-set raises. A raise whose answer is lost is
//! simply taken again: an epoch may be skipped, never handed out twice.

use super::{within, Inner};
use crate::store::StoreError;
use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use std::time::Instant;

impl Inner {
    /// Raises the counter to `max(counter, floor) + 1` and returns the new value.
    pub(super) async fn take_epoch(&self, floor: u64) -> Result<u64, StoreError> {
        let key = self.layout.epoch();
        let deadline = Instant::now() + self.timeout * 3;
        loop {
            let read = self
                .read("read the cluster epoch", |mut kv| {
                    let key = key.clone();
                    async move { kv.get(key, None).await }
                })
                .await?;
            let (current, revision) = match read.kvs().first() {
                Some(kv) => (parse_epoch(kv.value(), &key)?, kv.mod_revision()),
                None => (0, 0),
            };
            let next = current.max(floor) + 1;
            let txn = Txn::new()
                .when([Compare::mod_revision(
                    key.clone(),
                    CompareOp::Equal,
                    revision,
                )])
                .and_then([TxnOp::put(key.clone(), next.to_string(), None)]);
            let mut kv = self.client.kv_client();
            match within(self.timeout, "raise the cluster epoch", kv.txn(txn)).await {
                Ok(response) if response.succeeded() => return Ok(next),
                // Another node raised it in between, or the answer was lost: read and try again.
                Ok(_) | Err(_) if Instant::now() < deadline => {}
                Ok(_) => {
                    return Err(StoreError::OwnershipAmbiguous {
                        node: self.node.get(),
                        why: "the cluster epoch kept changing under it",
                    })
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn parse_epoch(value: &[u8], key: &str) -> Result<u64, StoreError> {
    std::str::from_utf8(value)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| StoreError::EtcdRecord {
            key: key.to_owned(),
            source: super::RecordError::Epoch(String::from_utf8_lossy(value).into_owned()),
        })
}
