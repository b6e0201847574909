//! The receive side of AF_XDP (`PF_XDP` sockets): frames an XDP program redirects into an XSKMAP
//! slot land in a memory area shared with the kernel (the UMEM) and are read from a ring without
//! the UDP stack or a system call per datagram. [`XskReceiver`] owns one socket bound to one
//! receive queue, its UMEM and its rings, and recycles each batch of read frames to the fill ring
//! in one step.
//!
//! Measured against the gateway's socket path by `cargo xtask bench rx` (BENCHMARKS.md, "rx");
//! the gateway does not use it. It lives in the tests crate, not in jvpn-user, because the crate it
//! rests on (xdpilone) is EUPL-1.2, which the product's licence does not take in.

mod receiver;
mod sys;

pub use receiver::{BindMode, XskDrops, XskReceiver, FRAME_SIZE};

/// What can go wrong setting an AF_XDP socket up.
#[derive(Debug, thiserror::Error)]
pub enum XskError {
    /// The frame count is not a power of two, or zero.
    #[error("an AF_XDP receiver needs a power-of-two number of frames (got {0}); pick e.g. 4096")]
    FrameCount(u32),
    /// Mapping the UMEM failed.
    #[error("mapping {bytes} bytes of UMEM for AF_XDP failed: {source}; check `ulimit -l` and free memory")]
    Umem {
        /// The area's size.
        bytes: usize,
        /// The kernel's error.
        source: std::io::Error,
    },
    /// A step of the socket's setup failed. Binding fails with `EBUSY` while another socket
    /// holds the queue, and for a moment after one closed (the kernel lets go of the queue in
    /// deferred work).
    #[error(
        "AF_XDP socket on interface index {ifindex}, queue {queue}: {step} failed: {source}; \
         the kernel needs CONFIG_XDP_SOCKETS and root, and only one socket may hold a queue"
    )]
    Setup {
        /// The interface.
        ifindex: u32,
        /// The receive queue.
        queue: u32,
        /// Which step failed.
        step: &'static str,
        /// The kernel's error.
        source: std::io::Error,
    },
    /// Putting the socket into the program's XSKMAP failed.
    #[error("adding the AF_XDP socket of queue {queue} to the XSKMAP failed: {source}")]
    Register {
        /// The receive queue (the map slot).
        queue: u32,
        /// aya's error.
        source: aya::maps::MapError,
    },
    /// Waiting for frames failed.
    #[error("waiting on the AF_XDP socket of queue {queue} failed: {source}")]
    Wait {
        /// The receive queue.
        queue: u32,
        /// The kernel's error.
        source: std::io::Error,
    },
}
