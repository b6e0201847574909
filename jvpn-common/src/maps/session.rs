//! The values of the session tables: the session line of the array the XDP program reads
//! ([`SessionLine`], written from a [`SessionEntry`]), the transport it binds
//! ([`TransportBinding`]), the lifecycle state ([`SessionState`]) and the replay window's bitmap
//! ([`ReplayState`]). Their ownership is in the parent module's doc.

use crate::abi::REPLAY_SLOTS;
use crate::wire::Be16;
use bytemuck::{Pod, Zeroable};

/// The lifecycle state of a session (spec section 2).
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Handshake in progress; version 0.
    Birth = 0,
    /// Bound to a validated transport; DATA flows.
    Attached = 1,
    /// The transport was lost; waiting for a reattach.
    Recovering = 2,
    /// Ended; nothing is accepted any more.
    Terminated = 3,
}

impl SessionState {
    /// The state for a byte, or `None` for an unknown byte (which the dataplane treats as terminated).
    #[inline(always)]
    pub const fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0 => Self::Birth,
            1 => Self::Attached,
            2 => Self::Recovering,
            3 => Self::Terminated,
            _ => return None,
        })
    }

    /// The operator-facing name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Birth => "BIRTH",
            Self::Attached => "ATTACHED",
            Self::Recovering => "RECOVERING",
            Self::Terminated => "TERMINATED",
        }
    }
}

/// The transport a session is bound to: the client's source address and UDP port.
///
/// IPv4 addresses are stored IPv4-mapped (`::ffff:a.b.c.d`) so one comparison serves both families.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
pub struct TransportBinding {
    /// Source address, IPv6 or IPv4-mapped.
    pub addr: [u8; 16],
    /// Source UDP port, in network byte order as in the UDP header.
    pub port: Be16,
    /// Explicit padding, zero.
    pub _pad: [u8; 6],
}

impl TransportBinding {
    /// A binding from a raw IPv4 address (network order bytes) and port.
    #[inline(always)]
    pub const fn from_v4(addr: [u8; 4], port: u16) -> Self {
        let mut a = [0u8; 16];
        a[10] = 0xff;
        a[11] = 0xff;
        a[12] = addr[0];
        a[13] = addr[1];
        a[14] = addr[2];
        a[15] = addr[3];
        Self {
            addr: a,
            port: Be16::new(port),
            _pad: [0; 6],
        }
    }

    /// A binding from a raw IPv6 address and port.
    #[inline(always)]
    pub const fn from_v6(addr: [u8; 16], port: u16) -> Self {
        Self {
            addr,
            port: Be16::new(port),
            _pad: [0; 6],
        }
    }

    /// The binding of a socket address.
    pub fn from_socket_addr(sa: core::net::SocketAddr) -> Self {
        match sa {
            core::net::SocketAddr::V4(v4) => Self::from_v4(v4.ip().octets(), v4.port()),
            core::net::SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
                Some(v4) => Self::from_v4(v4.octets(), v6.port()),
                None => Self::from_v6(v6.ip().octets(), v6.port()),
            },
        }
    }

    /// The socket address of this binding (IPv4-mapped addresses come back as IPv4).
    pub fn to_socket_addr(&self) -> core::net::SocketAddr {
        let v6 = core::net::Ipv6Addr::from(self.addr);
        let ip = match v6.to_ipv4_mapped() {
            Some(v4) => core::net::IpAddr::V4(v4),
            None => core::net::IpAddr::V6(v6),
        };
        core::net::SocketAddr::new(ip, self.port.get())
    }
}

/// A session as the controller describes it to the dataplane (`Dataplane::upsert_session`),
/// which lays it out as a [`SessionLine`]. Its layout is also the value of the benchmark's
/// lookup baseline (the session table of layouts 2 to 4, a hash map of these).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SessionEntry {
    /// The session's current state_version.
    pub state_version: u64,
    /// The 128-bit SipHash key of the header tag of client-to-gateway messages (never the
    /// gateway-to-client one: a reflected gateway message must not verify here).
    pub header_key: [u8; 16],
    /// The transport DATA must come from.
    pub transport: TransportBinding,
    /// [`SessionState`] as a byte.
    pub state: u8,
    /// Explicit padding, zero.
    pub _pad: [u8; 3],
    /// The session's slot: the index of its line in the session array (`abi::MAP_SESSIONS`)
    /// and of its window in the replay array, assigned by the dataplane's userspace when the
    /// session enters the table and freed when it leaves. Ignored when written (the dataplane
    /// assigns it), reported when read.
    pub replay_slot: u32,
    /// The session id.
    pub session_id: u64,
}

const _: () = assert!(core::mem::size_of::<SessionEntry>() == 64);

/// One session's line of the session array (`abi::MAP_SESSIONS`, layout v5): everything the
/// accept path reads, in one cache line, and the replay window's `max`.
///
/// The controller writes a line in place through a memory map, under a sequence lock: `seq` odd,
/// the fields, `seq` even (release). The XDP program reads `seq`, copies the fields, reads `seq`
/// again, and refuses the packet (`SESSION_BUSY`) if it was odd or moved: it never judges a mix of
/// two versions of a session. `max` is outside the lock: the XDP program moves it with
/// compare-and-swap (`crate::replay`), and the controller writes it only when it hands the slot
/// to a session (to 0) or takes it back.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct SessionLine {
    /// Sequence word of the lock: odd while the controller rewrites the line.
    pub seq: u32,
    /// [`SessionState`] as a byte.
    pub state: u8,
    /// Explicit padding, zero.
    pub _pad: u8,
    /// The bound transport's UDP port, network byte order.
    pub port: Be16,
    /// The session whose line this is; 0 while the slot is free (no session id is 0). The XDP
    /// program checks it against the header's session id, so a slot hint, a stale index entry or
    /// a reused slot never acts on another session's line.
    pub session_id: u64,
    /// The session's current state_version.
    pub state_version: u64,
    /// The highest client-to-gateway nonce accepted (0 before the first): the replay window's
    /// head, here so the window costs only the bitmap line of the nonce.
    pub max: u64,
    /// The SipHash key of client-to-gateway header tags (never the gateway-to-client one).
    pub header_key: [u8; 16],
    /// The bound transport's address, IPv6 or IPv4-mapped.
    pub addr: [u8; 16],
}

const _: () = assert!(core::mem::size_of::<SessionLine>() == crate::abi::SESSION_LINE_LEN);

impl SessionLine {
    /// The transport DATA must come from.
    #[inline(always)]
    pub fn transport(&self) -> TransportBinding {
        TransportBinding {
            addr: self.addr,
            port: self.port,
            _pad: [0; 6],
        }
    }

    /// The line of `entry` with sequence word `seq` and replay head `max`.
    pub fn of(entry: &SessionEntry, seq: u32, max: u64) -> Self {
        Self {
            seq,
            state: entry.state,
            _pad: 0,
            port: entry.transport.port,
            session_id: entry.session_id,
            state_version: entry.state_version,
            max,
            header_key: entry.header_key,
            addr: entry.transport.addr,
        }
    }

    /// The entry this line describes, at `slot`.
    pub fn entry(&self, slot: u32) -> SessionEntry {
        SessionEntry {
            state_version: self.state_version,
            header_key: self.header_key,
            transport: self.transport(),
            state: self.state,
            _pad: [0; 3],
            replay_slot: slot,
            session_id: self.session_id,
        }
    }
}

/// The replay bitmaps of one session (client to gateway direction), one element of the replay
/// array, at the session's slot; the window's head (`max`) is in the session's [`SessionLine`].
/// Userspace zeroes it when it hands the slot to a session and when it takes it back; in between
/// only the XDP program writes it, with atomic operations; see [`crate::replay`] for the
/// algorithm.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct ReplayState {
    /// Slot `i` holds the nonces of blocks `b` with `b % REPLAY_SLOTS == i`: generation in the high
    /// 32 bits, a bitmap of the block's 32 nonces in the low 32.
    pub slots: [u64; REPLAY_SLOTS],
}

const _: () = assert!(core::mem::size_of::<ReplayState>() == 8 * REPLAY_SLOTS);
