//! Types shared by the jvpn XDP program (`jvpn-ebpf`) and its userspace (`jvpn-user`).
//!
//! Everything that crosses the kernel/user boundary or the wire is defined here, once:
//!
//! - [`abi`]: every size, offset, default and map name; the byte diagram of the wire header.
//! - [`control`]: the plaintext bodies of the handshake payloads and control messages.
//! - [`wire`]: the 40-byte header as a `#[repr(C)]` type with its byte order, and its validation.
//! - [`reason`]: the reason codes for every drop and every reject.
//! - [`maps`]: the values stored in the BPF maps and the security event of the ring buffer.
//! - [`siphash`]: SipHash-2-4, which tags every header.
//! - [`hello`]: the HELLO's mac1 and mac2 and the cookie, shared by client, controller and XDP.
//! - [`replay`]: the lock-free replay window (RFC 6479 style) run by the XDP program on map memory.
//! - [`version`]: the version comparison (stale / jump) and the ceilings against wrap-around.
//!
//! The crate is `no_std` so the XDP program can use it; the `user` feature adds `aya::Pod`
//! implementations for userspace.
#![no_std]
#![deny(missing_docs)]

#[cfg(test)]
extern crate std;

pub mod abi;
pub mod control;
pub mod hello;
pub mod maps;
pub mod reason;
pub mod replay;
pub mod siphash;
pub mod version;
pub mod wire;

pub use maps::{
    DropCounter, GatewayConfig, HandshakeGuard, ReplayState, SecurityEvent, SessionEntry,
    SessionLine, SessionState, TokenBucket, TransportBinding,
};
pub use reason::RejectReason;
pub use wire::{MessageType, WireHeader};
