//! The compare-and-set transaction of the clustered store, and how an unknown outcome is settled.
//!
//! A batch runs in rounds. Each round reads the sessions it names (record and issued marker, with
//! their revisions), decides every request against what it read exactly as the embedded store
//! does ([`crate::store::validate`]), and sends one transaction: *if* every revision read is still
//! current, *then* write the sealed records, their sealed STATE_CHANGE records and the owner keys
//! under this node's lease. A failed compare means another node wrote in between: the next round
//! re-reads, and the loser sees [`CasOutcome::Conflict`].
//!
//! Each transaction also writes a witness, a key no other transaction can write with the same
//! bytes (the first STATE_CHANGE record of a request, sealed with a fresh nonce, or the issued
//! marker holding a random token). When a transaction gets no answer, its outcome is settled by
//! re-reading the witness before anything else: present with our bytes, it was applied; present
//! with other bytes, another request won; absent, the same transaction is sent again (its compares
//! make it apply at most once). If that does not settle within the deadline, the caller gets
//! [`StoreError::OutcomeUnknown`] and every later request re-reads the session anyway.

use super::{within, Inner};
use crate::session::{Session, SessionId};
use crate::store::redb::keys_at_rest::at_rest;
use crate::store::validate::{self, MutationRefused};
use crate::store::{codec, BatchItem, CasOutcome, CasRequest, Expected, StoreError};
use etcd_client::{Compare, CompareOp, PutOptions, Txn, TxnOp, TxnOpResponse};
use rand::RngCore;
use std::collections::BTreeMap;
use std::time::Instant;

/// Rounds a batch may lose to concurrent writers before it reports the race as conflicts.
const MAX_ROUNDS: usize = 8;

/// What one round read of a session.
#[derive(Clone, Debug)]
struct Read {
    session: Option<Session>,
    session_rev: i64,
    issued_rev: i64,
}

/// One round's transaction.
struct Plan {
    outcomes: Vec<BatchItem>,
    compares: Vec<Compare>,
    writes: Vec<TxnOp>,
    witness: Option<(String, Vec<u8>)>,
}

impl Inner {
    /// Runs `batch` in order; cut into transactions of at most `max_txn_ops` operations.
    pub(super) async fn cas_batch(
        &self,
        batch: Vec<CasRequest>,
    ) -> Result<Vec<BatchItem>, StoreError> {
        let mut outcomes = Vec::with_capacity(batch.len());
        let per_chunk = (self.max_txn_ops / 8).max(1);
        for chunk in batch.chunks(per_chunk) {
            outcomes.extend(self.cas_chunk(chunk).await?);
        }
        Ok(outcomes)
    }

    async fn cas_chunk(&self, batch: &[CasRequest]) -> Result<Vec<BatchItem>, StoreError> {
        for _ in 0..MAX_ROUNDS {
            if !self.lease.live() {
                return Err(self.ambiguous("its lease is not known alive"));
            }
            let reads = self.read_all(batch).await?;
            let plan = self.plan(batch, reads)?;
            let Some(witness) = plan.witness.clone() else {
                return Ok(plan.outcomes);
            };
            let txn = Txn::new()
                .when(plan.compares.clone())
                .and_then(plan.writes.clone());
            if self.commit(txn, &witness, batch[0].session.id).await? {
                return Ok(plan.outcomes);
            }
        }
        // Every round lost a race on some session; the last reads decide as conflicts.
        let reads = self.read_all(batch).await?;
        let mut plan = self.plan(batch, reads)?;
        for item in &mut plan.outcomes {
            if matches!(item, Ok(CasOutcome::Committed)) {
                *item = Ok(CasOutcome::Conflict { current: None });
            }
        }
        Ok(plan.outcomes)
    }

    /// Sends `txn`; whether it was applied. An unanswered transaction is settled by its witness.
    async fn commit(
        &self,
        txn: Txn,
        witness: &(String, Vec<u8>),
        first: SessionId,
    ) -> Result<bool, StoreError> {
        let deadline = Instant::now() + self.timeout * 3;
        loop {
            let mut kv = self.client.kv_client();
            match within(self.timeout, "compare-and-set", kv.txn(txn.clone())).await {
                Ok(response) => return Ok(response.succeeded()),
                Err(StoreError::Etcd { source, .. })
                    if source.to_string().contains("lease not found") =>
                {
                    return Err(self.ambiguous("etcd no longer knows its lease"));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a compare-and-set got no answer; re-reading before anything else")
                }
            }
            // Settle by the witness before doing anything else.
            loop {
                if Instant::now() >= deadline {
                    return Err(StoreError::OutcomeUnknown { id: first });
                }
                let key = witness.0.clone();
                let read = self.read("re-read a witness", |mut kv| {
                    let key = key.clone();
                    async move { kv.get(key, None).await }
                });
                match read.await {
                    Ok(response) => match response.kvs().first() {
                        Some(kv) => return Ok(kv.value() == witness.1.as_slice()),
                        None => break,
                    },
                    Err(_) => tokio::time::sleep(self.timeout / 8).await,
                }
            }
        }
    }

    /// Reads every session `batch` names, with revisions, in one linearizable transaction.
    async fn read_all(
        &self,
        batch: &[CasRequest],
    ) -> Result<BTreeMap<SessionId, Read>, StoreError> {
        let ids: Vec<SessionId> = {
            let mut ids: Vec<_> = batch.iter().map(|r| r.session.id).collect();
            ids.sort();
            ids.dedup();
            ids
        };
        let gets: Vec<TxnOp> = ids
            .iter()
            .flat_map(|&id| {
                [
                    TxnOp::get(self.layout.session(id), None),
                    TxnOp::get(self.layout.issued(id), None),
                ]
            })
            .collect();
        let response = self
            .read("read sessions", |mut kv| {
                let txn = Txn::new().and_then(gets.clone());
                async move { kv.txn(txn).await }
            })
            .await?;
        let responses = response.op_responses();
        let mut reads = BTreeMap::new();
        for (i, &id) in ids.iter().enumerate() {
            let first_kv = |at: usize| match responses.get(at) {
                Some(TxnOpResponse::Get(get)) => get.kvs().first().cloned(),
                _ => None,
            };
            let session_kv = first_kv(2 * i);
            let issued_kv = first_kv(2 * i + 1);
            let key = self.layout.session(id);
            reads.insert(
                id,
                Read {
                    session: session_kv
                        .as_ref()
                        .map(|kv| self.open_session(&key, kv.value()))
                        .transpose()?,
                    session_rev: session_kv.map_or(0, |kv| kv.mod_revision()),
                    issued_rev: issued_kv.map_or(0, |kv| kv.mod_revision()),
                },
            );
        }
        Ok(reads)
    }

    /// Decides each request against `reads` (and the earlier requests of the batch) and builds
    /// the transaction that writes those that pass.
    fn plan(
        &self,
        batch: &[CasRequest],
        reads: BTreeMap<SessionId, Read>,
    ) -> Result<Plan, StoreError> {
        let mut compares = Vec::new();
        for (&id, read) in &reads {
            compares.push(Compare::mod_revision(
                self.layout.session(id),
                CompareOp::Equal,
                read.session_rev,
            ));
            compares.push(Compare::mod_revision(
                self.layout.issued(id),
                CompareOp::Equal,
                read.issued_rev,
            ));
        }
        let mut state = reads;
        let mut plan = Plan {
            outcomes: Vec::new(),
            compares,
            writes: Vec::new(),
            witness: None,
        };
        for request in batch {
            let outcome = self.decide(request, &mut state, &mut plan);
            plan.outcomes.push(outcome);
        }
        Ok(plan)
    }

    fn decide(
        &self,
        request: &CasRequest,
        state: &mut BTreeMap<SessionId, Read>,
        plan: &mut Plan,
    ) -> BatchItem {
        let id = request.session.id;
        let read = state.get_mut(&id).expect("every id of the batch was read");
        match (request.expected, &read.session) {
            (Expected::Absent, _) if read.issued_rev != 0 => {
                return Ok(CasOutcome::IdAlreadyIssued)
            }
            (Expected::Absent, _) => {}
            (Expected::Version(v), Some(s)) if s.state_version == v => {}
            (Expected::Version(_), current) => {
                return Ok(CasOutcome::Conflict {
                    current: current.clone(),
                })
            }
        }
        validate::check(id, read.session.as_ref(), &request.session, &request.audit)?;
        let record = codec::encode_session(&at_rest(&request.session))
            .map_err(|_| MutationRefused::SecretsTooLong(request.session.secrets.len()))?;
        let session_key = self.layout.session(id);
        plan.writes.push(TxnOp::put(
            session_key.clone(),
            self.keyring.seal(session_key.as_bytes(), &record),
            None,
        ));
        for change in &request.audit {
            let key = self.layout.audit(id, change.to_version);
            let sealed = self
                .keyring
                .seal(key.as_bytes(), &codec::encode_state_change(change));
            if plan.witness.is_none() {
                plan.witness = Some((key.clone(), sealed.clone()));
            }
            plan.writes.push(TxnOp::put(key, sealed, None));
        }
        let owner = PutOptions::new().with_lease(self.lease.id());
        plan.writes.push(TxnOp::put(
            self.layout.owner(id),
            self.node.get().to_string(),
            Some(owner),
        ));
        if request.expected == Expected::Absent {
            let mut token = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut token);
            let value = format!("{} {}", request.session.created_at, hex(&token)).into_bytes();
            let key = self.layout.issued(id);
            if plan.witness.is_none() {
                plan.witness = Some((key.clone(), value.clone()));
            }
            plan.writes.push(TxnOp::put(key, value, None));
            read.issued_rev = -1;
        }
        read.session = Some(request.session.clone());
        Ok(CasOutcome::Committed)
    }

    pub(super) fn ambiguous(&self, why: &'static str) -> StoreError {
        StoreError::OwnershipAmbiguous {
            node: self.node.get(),
            why,
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
