//! A TCP transfer of a known payload through the tunnel, from the client namespace to a server
//! in the gateway namespace at the gateway's tunnel address. The receiver publishes how many
//! bytes have arrived, so a test acts (jumps, rebinds a NAT, kills the gateway) at a chosen
//! point of the transfer rather than after a sleep; every wait is bounded and fails with the
//! gateway's and the client's logs.

use crate::tunnel::Tunnel;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The transfer's server: the gateway's tunnel address, so every byte crosses the tunnel.
pub const SERVER: &str = "10.99.0.1:5201";
/// How long either end may wait for the other (accept, a read, a write) before the transfer
/// fails: longer than any outage a test causes (a liveness timeout plus TCP's backoff).
const STALL_PATIENCE: Duration = Duration::from_secs(90);
/// Bytes per write and per read.
const CHUNK: usize = 64 << 10;
/// The sender's ceiling, in bytes per second (160 Mbit/s). Even a debug build's data path now
/// carries more than 1 Gbit/s, and a test that acts at chosen points of the transfer needs it
/// still flowing when it acts: unpaced, 8 MB ended before the fourth jump, and each jump's
/// in-flight datagrams (each dropped as STALE_VERSION with its own event) pushed the session's
/// STATE_CHANGEs out of the gateway's event history.
const PACE_BYTES_PER_SECOND: u64 = 20_000_000;

/// A running transfer.
pub struct Transfer {
    expected: Arc<Vec<u8>>,
    received: Arc<AtomicUsize>,
    /// Set by the sender once every byte is written and its side closed.
    sent_all: Arc<AtomicBool>,
    sender: JoinHandle<()>,
    receiver: JoinHandle<Vec<u8>>,
    started: Instant,
}

impl Transfer {
    /// Listens at [`SERVER`] in the gateway namespace and starts sending `payload` to it from the
    /// client namespace.
    pub fn start(t: &Tunnel, payload: Vec<u8>) -> Self {
        let listener = t.f.hosts.gateway.run(|| {
            let listener = TcpListener::bind(SERVER).expect("bind the TCP server");
            listener
                .set_nonblocking(true)
                .expect("a non-blocking listener");
            listener
        });
        let expected = Arc::new(payload);
        let received = Arc::new(AtomicUsize::new(0));
        let receiver = std::thread::spawn({
            let (received, capacity) = (received.clone(), expected.len());
            move || receive(&listener, &received, capacity)
        });
        let sent_all = Arc::new(AtomicBool::new(false));
        let sender = std::thread::spawn({
            let (path, data, sent_all) = (t.client.path(), expected.clone(), sent_all.clone());
            move || {
                crate::netns::enter(&path);
                send(&data);
                sent_all.store(true, Ordering::Release);
            }
        });
        Self {
            expected,
            received,
            sent_all,
            sender,
            receiver,
            started: Instant::now(),
        }
    }

    /// The payload's length.
    pub fn len(&self) -> usize {
        self.expected.len()
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.expected.is_empty()
    }

    /// Bytes that have arrived so far.
    pub fn received(&self) -> usize {
        self.received.load(Ordering::Acquire)
    }

    /// Waits until at least `bytes` have arrived; panics with the logs after `patience` or if
    /// either end stopped early.
    pub fn wait_for(&self, t: &Tunnel, bytes: usize, patience: Duration) {
        let deadline = Instant::now() + patience;
        while self.received() < bytes {
            let stopped = if self.receiver.is_finished() {
                Some("the receiver stopped early")
            } else if self.sender.is_finished() && !self.sent_all.load(Ordering::Acquire) {
                Some("the sender failed")
            } else {
                None
            };
            assert!(
                stopped.is_none() && Instant::now() < deadline,
                "{}: {} of {bytes} bytes arrived after {:?}\n{}",
                stopped.unwrap_or("the transfer stalled"),
                self.received(),
                self.started.elapsed(),
                t.logs()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (up to `patience`) for the whole payload, checks every byte and returns how long the
    /// transfer took.
    pub fn finish(self, t: &Tunnel, patience: Duration) -> Duration {
        self.wait_for(t, self.len(), patience);
        let elapsed = self.started.elapsed();
        if let Err(panic) = self.sender.join() {
            std::panic::resume_unwind(panic);
        }
        let received = self
            .receiver
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        if let Some(at) = received
            .iter()
            .zip(self.expected.iter())
            .position(|(a, b)| a != b)
        {
            panic!("the transfer arrived altered from byte {at} on");
        }
        assert_eq!(
            received.len(),
            self.expected.len(),
            "the transfer arrived with a different length"
        );
        elapsed
    }
}

/// Accepts one connection (bounded) and reads it to the end, publishing the count as it goes.
fn receive(listener: &TcpListener, received: &AtomicUsize, capacity: usize) -> Vec<u8> {
    let deadline = Instant::now() + STALL_PATIENCE;
    let mut stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "no connection through the tunnel"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).expect("a blocking stream");
    stream
        .set_read_timeout(Some(STALL_PATIENCE))
        .expect("a read timeout");
    let mut data = Vec::with_capacity(capacity);
    let mut buf = vec![0u8; CHUNK];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return data,
            Ok(n) => {
                data.extend_from_slice(&buf[..n]);
                received.store(data.len(), Ordering::Release);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the transfer after {} bytes: {e}", data.len()),
        }
    }
}

/// Connects to [`SERVER`] from the calling thread's namespace and writes `data`, no faster than
/// [`PACE_BYTES_PER_SECOND`].
fn send(data: &[u8]) {
    let addr: SocketAddr = SERVER.parse().expect("addr");
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).expect("connect");
    stream
        .set_write_timeout(Some(STALL_PATIENCE))
        .expect("a write timeout");
    let started = Instant::now();
    let mut sent = 0u64;
    for chunk in data.chunks(CHUNK) {
        stream.write_all(chunk).expect("send through the tunnel");
        sent += chunk.len() as u64;
        let due = Duration::from_micros(sent * 1_000_000 / PACE_BYTES_PER_SECOND);
        if let Some(ahead) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(ahead);
        }
    }
    stream
        .shutdown(Shutdown::Write)
        .expect("close the sending side");
}
