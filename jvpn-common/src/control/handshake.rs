//! The payloads of the handshake's Noise messages: HELLO's timestamp and WELCOME's session and
//! tunnel addresses (layouts in the diagram of [`crate::control`]).

use super::{zero, Body, BodyError, MAX_TUNNEL_MTU, MIN_TUNNEL_MTU};
use crate::wire::{Be16, Be32, Be64, MessageType};
use bytemuck::{Pod, Zeroable};

/// A TAI64N timestamp (seconds since 1970 plus `2^62 + 10`, then nanoseconds), as WireGuard puts in
/// its handshake initiation. Big-endian, so byte order is time order.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct Tai64N {
    /// Seconds, TAI64 label.
    pub seconds: Be64,
    /// Nanoseconds within the second.
    pub nanoseconds: Be32,
}

impl Tai64N {
    /// The TAI64 label of the Unix epoch (WireGuard's constant, including TAI-UTC's 10 s).
    pub const UNIX_EPOCH_LABEL: u64 = 0x4000_0000_0000_000a;

    /// The timestamp of `seconds` and `nanoseconds` since the Unix epoch.
    pub const fn from_unix(seconds: u64, nanoseconds: u32) -> Self {
        Self {
            seconds: Be64::new(seconds.saturating_add(Self::UNIX_EPOCH_LABEL)),
            nanoseconds: Be32::new(nanoseconds),
        }
    }

    fn key(&self) -> (u64, u32) {
        (self.seconds.get(), self.nanoseconds.get())
    }
}

impl PartialOrd for Tai64N {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Tai64N {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

/// The payload of HELLO's Noise message: when the client made it. The gateway refuses one that is
/// not newer than the last accepted from the same client key, so a captured HELLO cannot be replayed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct HelloPayload {
    /// The client's clock when it made the HELLO.
    pub timestamp: Tai64N,
}

impl Body for HelloPayload {
    const MESSAGE_TYPE: MessageType = MessageType::Hello;
    fn check(&self) -> Result<(), BodyError> {
        Ok(())
    }
}

/// The payload of WELCOME's Noise message: the new session and the client's tunnel addresses.
///
/// An address family is "not assigned" when its prefix length is 0 and its address all zero.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct WelcomePayload {
    /// The new session's id (also in the WELCOME header, which the client checks against it).
    pub session_id: Be64,
    /// The client's tunnel IPv4 address.
    pub ipv4: [u8; 4],
    /// Prefix length of the tunnel IPv4 network, 0 if no IPv4 address is assigned.
    pub ipv4_prefix_len: u8,
    /// Prefix length of the tunnel IPv6 network, 0 if no IPv6 address is assigned.
    pub ipv6_prefix_len: u8,
    /// The MTU the client gives its tunnel device.
    pub tunnel_mtu: Be16,
    /// The client's tunnel IPv6 address.
    pub ipv6: [u8; 16],
    /// How often the client sends KEEPALIVE when it has nothing else to send.
    pub keepalive_interval_secs: Be16,
    /// Reserved, zero.
    pub reserved: [u8; 6],
}

impl Body for WelcomePayload {
    const MESSAGE_TYPE: MessageType = MessageType::Welcome;
    fn check(&self) -> Result<(), BodyError> {
        zero(&self.reserved)?;
        if self.session_id.get() == 0 {
            return Err(BodyError::ZeroSessionId);
        }
        for (addr, len, max) in [
            (&self.ipv4[..], self.ipv4_prefix_len, 32),
            (&self.ipv6[..], self.ipv6_prefix_len, 128),
        ] {
            if len > max || (len == 0 && addr.iter().any(|&b| b != 0)) {
                return Err(BodyError::BadPrefix);
            }
        }
        if self.ipv4_prefix_len == 0 && self.ipv6_prefix_len == 0 {
            return Err(BodyError::NoAddress);
        }
        if self.tunnel_mtu.get() < MIN_TUNNEL_MTU {
            return Err(BodyError::MtuTooSmall(self.tunnel_mtu.get()));
        }
        if self.tunnel_mtu.get() > MAX_TUNNEL_MTU {
            return Err(BodyError::MtuTooLarge(self.tunnel_mtu.get()));
        }
        Ok(())
    }
}

const _: () = assert!(core::mem::size_of::<Tai64N>() == 12);
const _: () = assert!(core::mem::size_of::<HelloPayload>() == 12);
const _: () = assert!(core::mem::size_of::<WelcomePayload>() == 40);
const _: () = assert!(core::mem::offset_of!(WelcomePayload, ipv6) == 16);
const _: () = assert!(core::mem::offset_of!(WelcomePayload, keepalive_interval_secs) == 32);
