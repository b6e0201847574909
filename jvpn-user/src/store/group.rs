//! Group commit: many concurrent compare-and-sets share one durable transaction.
//!
//! A durable commit costs an fsync, which bounds one-at-a-time commits to a few hundred or
//! thousand per second. [`GroupCommitter`] owns a thread that takes every request queued while
//! the previous commit was running and commits them together with
//! [`SessionStore::compare_and_set_batch`]; each caller still gets its own outcome, and the
//! outcome is only delivered after the batch is durable. Requests are applied in submission
//! order, so two CASes on one session in the same batch behave as they would one after the other
//! (the second sees the first's version and loses if it expected the old one).
//!
//! The queue is unbounded: the controller bounds what it has in flight.

use super::{CasOutcome, CasRequest, SessionStore, StoreError};
use std::sync::{mpsc, Arc};
use std::thread;
use tokio::sync::oneshot;

type Reply = oneshot::Sender<Result<CasOutcome, StoreError>>;

/// Batches compare-and-sets from any number of threads or tasks into group commits.
pub struct GroupCommitter {
    queue: Option<mpsc::Sender<(CasRequest, Reply)>>,
    worker: Option<thread::JoinHandle<()>>,
}

/// The pending outcome of a submitted compare-and-set.
#[derive(Debug)]
pub struct CasTicket(oneshot::Receiver<Result<CasOutcome, StoreError>>);

impl CasTicket {
    /// Waits for the outcome from async code.
    pub async fn outcome(self) -> Result<CasOutcome, StoreError> {
        self.0.await.unwrap_or(Err(StoreError::CommitterStopped))
    }

    /// Waits for the outcome from a plain thread (not from inside an async runtime).
    pub fn wait(self) -> Result<CasOutcome, StoreError> {
        self.0
            .blocking_recv()
            .unwrap_or(Err(StoreError::CommitterStopped))
    }
}

impl GroupCommitter {
    /// Most requests committed in one transaction unless told otherwise.
    pub const DEFAULT_MAX_BATCH: usize = 1024;

    /// Starts the committer thread over `store`, committing at most `max_batch` requests per
    /// transaction (at least 1).
    pub fn spawn(store: Arc<dyn SessionStore>, max_batch: usize) -> std::io::Result<Self> {
        let (queue, requests) = mpsc::channel();
        let max_batch = max_batch.min(store.max_batch()).max(1);
        let worker = thread::Builder::new()
            .name("jvpn-store-commit".into())
            .spawn(move || run(store.as_ref(), &requests, max_batch))?;
        Ok(Self {
            queue: Some(queue),
            worker: Some(worker),
        })
    }

    /// Queues `request` for the next group commit.
    pub fn submit(&self, request: CasRequest) -> CasTicket {
        let (reply, outcome) = oneshot::channel();
        if let Some(queue) = &self.queue {
            // A send only fails once the worker is gone; the dropped reply then reads as
            // `CommitterStopped`.
            let _ = queue.send((request, reply));
        }
        CasTicket(outcome)
    }
}

impl Drop for GroupCommitter {
    /// Commits what is queued, then stops the thread.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn run(store: &dyn SessionStore, requests: &mpsc::Receiver<(CasRequest, Reply)>, max_batch: usize) {
    while let Ok(first) = requests.recv() {
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match requests.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (batch, replies): (Vec<CasRequest>, Vec<Reply>) = batch.into_iter().unzip();
        match store.compare_and_set_batch(&batch) {
            Ok(items) => {
                for ((request, reply), item) in batch.iter().zip(replies).zip(items) {
                    let id = request.session.id;
                    let _ = reply.send(item.map_err(|source| StoreError::Refused { id, source }));
                }
            }
            Err(e) => {
                let e = Arc::new(e);
                for reply in replies {
                    let _ = reply.send(Err(StoreError::GroupCommit(Arc::clone(&e))));
                }
            }
        }
    }
}
