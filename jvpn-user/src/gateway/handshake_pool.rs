//! The bounded handshake queue and its fixed pool of worker threads.
//!
//! A HELLO that passed its MACs costs the gateway an X25519 and a Noise read: about 300 us, which
//! on the runtime that also carries the tunnel would stall DATA behind a flood. So HELLOs go into a
//! queue of fixed capacity, drained by a fixed number of plain threads apart from the tokio
//! runtime; a full queue refuses the HELLO at once (`HANDSHAKE_BUSY`, counted by the caller) rather
//! than letting work pile up, and its length tells the gateway when it is under load (then only
//! HELLOs with a cookie are admitted, see `crypto::cookie`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The queue was full; the job was not queued.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("the handshake queue is full ({capacity} HELLOs waiting); raise handshake_queue or handshake_workers if this is not a flood")]
pub struct QueueFull {
    /// The queue's capacity.
    pub capacity: usize,
}

/// A bounded queue of jobs of type `J` and the threads that run them.
pub struct HandshakePool<J: Send + 'static> {
    sender: Option<SyncSender<J>>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    workers: Vec<JoinHandle<()>>,
}

impl<J: Send + 'static> HandshakePool<J> {
    /// Starts `workers` threads (at least one) running `handle` on each job, with room for
    /// `capacity` waiting jobs (at least one).
    pub fn start(
        workers: usize,
        capacity: usize,
        handle: impl Fn(J) + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let capacity = capacity.max(1);
        let (sender, receiver) = sync_channel::<J>(capacity);
        let receiver = Arc::new(Mutex::new(receiver));
        let queued = Arc::new(AtomicUsize::new(0));
        let handle = Arc::new(handle);
        let workers = (0..workers.max(1))
            .map(|i| {
                let (receiver, queued, handle) = (receiver.clone(), queued.clone(), handle.clone());
                std::thread::Builder::new()
                    .name(format!("jvpn-handshake-{i}"))
                    .spawn(move || work(&receiver, &queued, &*handle))
            })
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Self {
            sender: Some(sender),
            queued,
            capacity,
            workers,
        })
    }

    /// Queues `job`, or refuses it at once if the queue is full.
    pub fn try_submit(&self, job: J) -> Result<(), QueueFull> {
        let sender = self.sender.as_ref().expect("the sender lives until drop");
        // Counted before the send so a worker's decrement never runs ahead of it.
        self.queued.fetch_add(1, Ordering::Relaxed);
        match sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::Relaxed);
                Err(QueueFull {
                    capacity: self.capacity,
                })
            }
        }
    }

    /// Jobs waiting (not yet taken by a worker).
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// The queue's capacity.
    pub fn capacity(&self) -> usize {
        self.capacity
    }
}

fn work<J>(receiver: &Mutex<Receiver<J>>, queued: &AtomicUsize, handle: &dyn Fn(J)) {
    loop {
        // The lock is held only while waiting for the next job, never while running one.
        let job = match receiver.lock().unwrap_or_else(|p| p.into_inner()).recv() {
            Ok(job) => job,
            Err(_) => return,
        };
        queued.fetch_sub(1, Ordering::Relaxed);
        handle(job);
    }
}

impl<J: Send + 'static> Drop for HandshakePool<J> {
    fn drop(&mut self) {
        // Closing the queue ends every worker once it has drained it.
        self.sender.take();
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;
    use std::sync::Barrier;

    #[test]
    fn the_queue_holds_its_capacity_and_refuses_the_rest_at_once() {
        let gate = Arc::new(Barrier::new(2));
        let (done_tx, done_rx) = channel();
        let done_tx = Mutex::new(done_tx);
        let worker_gate = gate.clone();
        let pool = HandshakePool::start(1, 4, move |job: u32| {
            if job == 0 {
                worker_gate.wait();
            }
            done_tx.lock().unwrap().send(job).unwrap();
        })
        .unwrap();
        // Job 0 occupies the only worker (blocked on the gate), so jobs 1..=4 fill the queue.
        pool.try_submit(0).unwrap();
        while pool.queued() != 0 {
            std::thread::yield_now();
        }
        for job in 1..=4 {
            pool.try_submit(job).unwrap();
        }
        assert_eq!(pool.queued(), 4);
        assert_eq!(pool.try_submit(5), Err(QueueFull { capacity: 4 }));
        assert_eq!(pool.queued(), 4, "a refused job is not counted");
        gate.wait();
        let done: Vec<u32> = (0..5).map(|_| done_rx.recv().unwrap()).collect();
        assert_eq!(done, [0, 1, 2, 3, 4]);
        assert_eq!(pool.queued(), 0);
        pool.try_submit(6).unwrap();
        assert_eq!(done_rx.recv().unwrap(), 6);
    }

    #[test]
    fn workers_run_jobs_in_parallel_off_the_caller_thread() {
        let workers = 3;
        let barrier = Arc::new(Barrier::new(workers + 1));
        let b = barrier.clone();
        let caller = std::thread::current().id();
        let pool = HandshakePool::start(workers, 8, move |_: ()| {
            assert_ne!(std::thread::current().id(), caller);
            b.wait();
        })
        .unwrap();
        for _ in 0..workers {
            pool.try_submit(()).unwrap();
        }
        // Only returns if all three jobs run at once.
        barrier.wait();
    }
}
