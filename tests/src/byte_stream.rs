//! The demos' TCP stream through the tunnel: a deterministic byte stream (xorshift64) that both
//! ends compute, a paced sender that writes it until told to stop, and a receiver that compares
//! every byte with it. `cargo xtask demo` and `cargo xtask demo --cluster` both carry one, and
//! the tests' fixed payloads ([`crate::tunnel::payload`]) are its first bytes.

use anyhow::{Context, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// The sender writes a chunk, then pauses: about 8 MiB/s, so a demo's recordings stay small.
const CHUNK: usize = 16 << 10;
const PACE: Duration = Duration::from_millis(2);

/// The deterministic byte stream (xorshift64) both ends of the TCP stream compute.
pub struct ByteStream(u64);

impl ByteStream {
    /// The stream from its first byte.
    pub fn new() -> Self {
        Self(0x9e37_79b9_7f4a_7c15)
    }

    /// Fills `buf` with the stream's next bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for byte in buf {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            *byte = self.0 as u8;
        }
    }
}

impl Default for ByteStream {
    fn default() -> Self {
        Self::new()
    }
}

/// What the receiver saw.
#[derive(Clone, Copy, Debug)]
pub struct Received {
    /// Bytes read until the sender closed its side.
    pub bytes: u64,
    /// Offset of the first byte that differs from the stream, if any does.
    pub first_mismatch: Option<u64>,
}

/// Accepts one connection on `listener` and reads it to the end, checking every byte against
/// the stream; `progress` follows the bytes read.
pub fn receive(listener: TcpListener, progress: &AtomicU64) -> Result<Received> {
    let (mut stream, _) = listener
        .accept()
        .context("accepting the tunnel's TCP stream")?;
    let (mut buf, mut expected) = (vec![0u8; 64 << 10], vec![0u8; 64 << 10]);
    let mut reference = ByteStream::new();
    let mut received = Received {
        bytes: 0,
        first_mismatch: None,
    };
    loop {
        let n = stream
            .read(&mut buf)
            .context("reading the tunnel's TCP stream")?;
        if n == 0 {
            return Ok(received);
        }
        reference.fill(&mut expected[..n]);
        if received.first_mismatch.is_none() {
            if let Some(i) = (0..n).find(|&i| buf[i] != expected[i]) {
                received.first_mismatch = Some(received.bytes + i as u64);
            }
        }
        received.bytes += n as u64;
        progress.store(received.bytes, Ordering::Relaxed);
    }
}

/// From the network namespace at `netns`, connects to `server` and writes the stream, paced,
/// until `stop` is raised; `sent` counts the bytes written. Then closes its side.
pub fn send(netns: &Path, server: SocketAddr, stop: &AtomicBool, sent: &AtomicU64) -> Result<()> {
    crate::netns::enter(netns);
    let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(10))
        .with_context(|| format!("connecting to {server} through the tunnel"))?;
    let mut source = ByteStream::new();
    let mut chunk = vec![0u8; CHUNK];
    while !stop.load(Ordering::Relaxed) {
        source.fill(&mut chunk);
        stream
            .write_all(&chunk)
            .context("sending through the tunnel")?;
        sent.fetch_add(CHUNK as u64, Ordering::Relaxed);
        std::thread::sleep(PACE);
    }
    stream
        .shutdown(Shutdown::Write)
        .context("closing the tunnel's TCP stream")
}
