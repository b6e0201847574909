//! The demo's TCP stream: from the client namespace through the tunnel to the server behind the
//! front, paced, every byte checked at the server ([`jvpn_tests::byte_stream`]).

use crate::topology::{Front, SERVER};
use anyhow::{Context, Result};
use jvpn_tests::byte_stream::{receive, send, Received};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// A running stream.
pub struct Stream {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    received: Arc<AtomicU64>,
    sender: JoinHandle<Result<()>>,
    receiver: JoinHandle<Result<Received>>,
}

/// What the stream carried, once stopped.
pub struct Outcome {
    /// Bytes the client wrote.
    pub sent: u64,
    /// What the server read and how it compared with the stream.
    pub received: Received,
}

impl Outcome {
    /// Every byte written arrived, in order and unaltered.
    pub fn intact(&self) -> bool {
        self.received.bytes == self.sent && self.received.first_mismatch.is_none()
    }
}

impl Stream {
    /// Listens at [`SERVER`] in the router namespace and starts sending from the client's.
    pub fn start(front: &Front) -> Result<Self> {
        let server: SocketAddr = SERVER.parse().expect("a socket address");
        let listener = front
            .router
            .run(|| TcpListener::bind(server))
            .with_context(|| format!("listening on {SERVER} in the router namespace"))?;
        let received = Arc::new(AtomicU64::new(0));
        let receiver = std::thread::spawn({
            let received = Arc::clone(&received);
            move || receive(listener, &received)
        });
        let (stop, sent) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicU64::new(0)),
        );
        let sender = std::thread::spawn({
            let (path, stop, sent) = (front.client.path(), Arc::clone(&stop), Arc::clone(&sent));
            move || send(&path, server, &stop, &sent)
        });
        Ok(Self {
            stop,
            sent,
            received,
            sender,
            receiver,
        })
    }

    /// Bytes the server has read so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Whether the sender gave up (its error comes from [`Self::finish`]).
    pub fn failed(&self) -> bool {
        self.sender.is_finished()
    }

    /// Stops the sender, waits for the server to read to the end and reports.
    pub fn finish(self) -> Result<Outcome> {
        self.stop.store(true, Ordering::Relaxed);
        self.sender
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        let received = self
            .receiver
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
        Ok(Outcome {
            sent: self.sent.load(Ordering::Relaxed),
            received,
        })
    }
}
