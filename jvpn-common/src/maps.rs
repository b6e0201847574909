//! Values stored in the BPF maps, and the security event record of the ring buffer.
//!
//! Ownership is split so no word has two writers at once: the controller writes a
//! [`SessionLine`] under its sequence lock (every field but `max`, which it writes only when it
//! hands the slot to a session), the session index and [`GatewayConfig`], and resets a
//! [`ReplayState`] only while its slot is being handed out or taken back; the XDP program
//! writes a line's `max` and the [`ReplayState`] between those resets, and [`TokenBucket`],
//! [`DropCounter`], [`EventLoss`] and [`EventBudget`]. Map integers are native-endian unless
//! their type says otherwise.

use crate::wire::Be16;
use bytemuck::{Pod, Zeroable};

mod session;

pub use session::{ReplayState, SessionEntry, SessionLine, SessionState, TransportBinding};

/// Dataplane mode, in [`GatewayConfig::mode`].
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataplaneMode {
    /// Drop what the rules refuse (the default).
    Enforce = 0,
    /// Count and report what the rules would refuse, but pass it (for staged rollouts).
    Monitor = 1,
}

/// [`GatewayConfig::flags`]: the gateway is a node of a cluster. A REATTACH_REQUEST or
/// PATH_RESPONSE of a session not in the map may belong to a session another node served, so it
/// goes to the controller (which looks it up in the shared store) instead of being dropped as
/// `UNKNOWN_SESSION`, within the per-source HELLO budget, since it is not authenticated here.
pub const CONFIG_FLAG_CLUSTER: u8 = 1;
/// [`GatewayConfig::flags`]: the program is attached in generic (skb) mode. Written when the
/// program is loaded and kept by every later write; the program does not read it. A gateway that
/// adopts the pinned link learns from it how the program runs (the link keeps the mode it was
/// attached in), and leaves `UDP_GRO` off on its socket in generic mode (docs/datapath.md,
/// "Merged runs").
pub const CONFIG_FLAG_GENERIC_XDP: u8 = 2;

/// The dataplane's configuration, the single entry of the config map. Written by the controller.
///
/// Until a port is set the program passes everything: an unconfigured program must not black-hole
/// the interface.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GatewayConfig {
    /// The gateway's UDP port, network byte order; 0 means not configured.
    pub port: Be16,
    /// [`DataplaneMode`] as a byte.
    pub mode: u8,
    /// `CONFIG_FLAG_*` bits; 0 is a standalone gateway (the byte was padding before, always 0).
    pub flags: u8,
    /// HELLO tokens added per second, per source address.
    pub hello_rate: u32,
    /// HELLO bucket size per source address.
    pub hello_burst: u32,
    /// Security events emitted per reason per CPU per second; the rest are counted in [`EventLoss`].
    pub events_per_second: u32,
    /// The HELLO guard: MAC keys, cookie secrets and global budgets.
    pub handshake: HandshakeGuard,
}

/// The HELLO guard of the config map (see `crate::hello`), written by the controller: the mac1 key
/// at start, the cookie secrets at every rotation, `under_load` as its handshake queue fills.
///
/// The budgets are token buckets per CPU (XDP runs on every receiving CPU at once, and a shared
/// bucket would need atomics on the hot path): the gateway-wide rate is the per-CPU rate times the
/// receiving CPUs, and the controller sets the per-CPU figures accordingly.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct HandshakeGuard {
    /// The SipHash key of mac1, derived from the gateway's public key. All zero until the
    /// controller sets it, which refuses every HELLO (fail closed: no controller, no handshake).
    pub mac1_key: [u8; 16],
    /// The current cookie secret.
    pub cookie_secret: [u8; 16],
    /// The previous cookie secret, still accepted for one rotation period.
    pub previous_cookie_secret: [u8; 16],
    /// HELLOs per second per CPU passed without a cookie while not under load.
    pub global_rate: u32,
    /// Burst of the global budget, per CPU.
    pub global_burst: u32,
    /// Cookie-less HELLOs per second per CPU passed under load for a COOKIE_REPLY.
    pub cookie_rate: u32,
    /// Burst of the cookie budget, per CPU.
    pub cookie_burst: u32,
    /// Non-zero while the controller is under load: every HELLO then needs a valid mac2.
    pub under_load: u8,
    /// Explicit padding, zero.
    pub _pad: [u8; 7],
}

/// Packets and bytes under one counter slot, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct DropCounter {
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted (whole frames).
    pub bytes: u64,
}

/// Events that did not reach the ring buffer, per reason, per CPU.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EventLoss {
    /// Not emitted because the reason was over its per-second event budget.
    pub rate_limited: u64,
    /// Not emitted because the ring buffer had no room.
    pub ring_full: u64,
}

/// Per-reason per-CPU event budget state (a fixed one-second window).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EventBudget {
    /// Start of the current window, `bpf_ktime_get_ns` time.
    pub window_start_ns: u64,
    /// Events emitted in the current window.
    pub emitted: u64,
}

/// Key of the HELLO rate limiter: a source address, IPv4-mapped, or an IPv6 /64 (the low
/// [`crate::abi::IPV6_BUCKET_PREFIX_BYTES`].. bytes zero).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct SourceKey {
    /// The source address, or its /64 for IPv6.
    pub addr: [u8; 16],
}

impl SourceKey {
    /// The bucket of a source address: IPv4 per address, IPv6 per /64.
    #[inline(always)]
    pub fn of(addr: &[u8; 16]) -> Self {
        // Byte by byte: a slice comparison would call memcmp, which BPF has not.
        let mut v4_mapped = addr[10] == 0xff && addr[11] == 0xff;
        let mut i = 0;
        while i < 10 {
            v4_mapped &= addr[i] == 0;
            i += 1;
        }
        let mut key = *addr;
        if !v4_mapped {
            let mut i = crate::abi::IPV6_BUCKET_PREFIX_BYTES;
            while i < 16 {
                key[i] = 0;
                i += 1;
            }
        }
        Self { addr: key }
    }
}

/// A token bucket for HELLOs from one source address.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct TokenBucket {
    /// Tokens available, in billionths of a token (so refill is `elapsed_ns * rate`).
    pub nano_tokens: u64,
    /// `bpf_ktime_get_ns` time of the last refill.
    pub last_ns: u64,
}

/// One nano-token unit: a whole token is this many.
pub const NANO_TOKENS_PER_TOKEN: u64 = 1_000_000_000;

/// A packet the XDP program dropped, as streamed through the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SecurityEvent {
    /// `bpf_ktime_get_ns` time of the drop (CLOCK_MONOTONIC).
    pub time_ns: u64,
    /// The header's session id (0 if the header could not be read).
    pub session_id: u64,
    /// The header's state_version.
    pub state_version: u64,
    /// The header's nonce.
    pub nonce: u64,
    /// Source address, IPv6 or IPv4-mapped.
    pub addr: [u8; 16],
    /// Source UDP port, network byte order.
    pub port: Be16,
    /// [`crate::RejectReason`] code.
    pub reason: u8,
    /// The header's message type byte (0 if it could not be read).
    pub msg_type: u8,
    /// Frame length in bytes.
    pub len: u32,
}

const _: () = assert!(core::mem::size_of::<SecurityEvent>() == 56);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_sources_share_a_bucket_per_64_and_ipv4_per_address() {
        let v6 = |s: &str| s.parse::<core::net::Ipv6Addr>().unwrap().octets();
        let a = SourceKey::of(&v6("2001:db8:1:2::10"));
        assert_eq!(a, SourceKey::of(&v6("2001:db8:1:2:ffff:1:2:3")));
        assert_ne!(a, SourceKey::of(&v6("2001:db8:1:3::10")));
        assert_eq!(a.addr, v6("2001:db8:1:2::"));
        let v4 = |o: [u8; 4]| TransportBinding::from_v4(o, 1).addr;
        assert_ne!(
            SourceKey::of(&v4([192, 0, 2, 1])),
            SourceKey::of(&v4([192, 0, 2, 2]))
        );
        assert_eq!(SourceKey::of(&v4([192, 0, 2, 1])).addr, v4([192, 0, 2, 1]));
    }
}

#[cfg(feature = "user")]
mod pod {
    //! `aya::Pod` for every map type, so userspace reads and writes them without byte juggling.
    use super::*;

    macro_rules! aya_pod {
        ($($t:ty),*) => {$(
            // SAFETY: `$t` is `#[repr(C)]`, `Copy`, has no padding (explicit pad fields, checked by
            // bytemuck's `Pod` derive) and every bit pattern is valid.
            unsafe impl aya::Pod for $t {}
        )*};
    }
    aya_pod!(
        SessionEntry,
        SessionLine,
        ReplayState,
        GatewayConfig,
        HandshakeGuard,
        DropCounter,
        EventLoss,
        EventBudget,
        SourceKey,
        TokenBucket,
        SecurityEvent,
        TransportBinding
    );
}
