//! The version 1 wire header (see [`crate::abi`] for its byte diagram) and its validation.
//!
//! [`WireHeader`] is the header exactly as it lies in the datagram: every multi-byte field is a
//! big-endian byte array, so it can be read straight out of a packet or a buffer with bytemuck and
//! written back without a hand-rolled serializer.

use crate::abi::{HEADER_LEN, KNOWN_FLAGS, PROTOCOL_VERSION, TAG_OFFSET};
use crate::siphash::{siphash24_words, SipKey};
use bytemuck::{Pod, Zeroable};

macro_rules! big_endian {
    ($name:ident, $int:ty, $n:literal) => {
        /// A big-endian integer as it lies on the wire.
        #[repr(transparent)]
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            /// Encodes a native integer.
            #[inline(always)]
            pub const fn new(v: $int) -> Self {
                Self(v.to_be_bytes())
            }
            /// Decodes to a native integer.
            #[inline(always)]
            pub const fn get(self) -> $int {
                <$int>::from_be_bytes(self.0)
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                self.get().fmt(f)
            }
        }
    };
}
big_endian!(Be16, u16, 2);
big_endian!(Be32, u32, 4);
big_endian!(Be64, u64, 8);

/// Message types, byte 1 of the header.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Client to gateway: first Noise IK message; session_id, state_version, nonce and tag are 0.
    Hello = 1,
    /// Gateway to client: second Noise message; names the new session at version 1.
    Welcome = 2,
    /// Either way: an AEAD-sealed IP packet.
    Data = 3,
    /// Client to gateway: asks to move the session to the transport it arrives from.
    ReattachRequest = 4,
    /// Gateway to client: the reattach committed; carries the new version.
    ReattachAck = 5,
    /// Gateway to client: an authenticated refusal with a reason code.
    Reject = 6,
    /// Either way: ends the session.
    Terminate = 7,
    /// Either way: keeps NAT bindings and liveness; carries no payload.
    Keepalive = 8,
    /// Gateway to client: return-routability check of a new transport (RFC 9000 section 8.2).
    PathChallenge = 9,
    /// Client to gateway: returns the challenge token, sealed, from the new transport.
    PathResponse = 10,
    /// Gateway to client, under load: a cookie for the HELLO's source, sealed to the client
    /// (layout in [`crate::abi`]); session_id, state_version, nonce and tag are 0.
    CookieReply = 11,
    /// Client to gateway: starts a rekey; the body carries a fresh ephemeral key, sealed under the
    /// current keys ([`crate::control::RekeyInit`], docs/rekey.md).
    RekeyInit = 12,
    /// Gateway to client: the rekey committed at the version in the header; the body carries the
    /// gateway's ephemeral key, sealed under the keys the client sealed its REKEY_INIT with.
    RekeyAck = 13,
}

impl MessageType {
    /// The type for a byte, or `None` if this version does not know it.
    #[inline(always)]
    pub const fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::Hello,
            2 => Self::Welcome,
            3 => Self::Data,
            4 => Self::ReattachRequest,
            5 => Self::ReattachAck,
            6 => Self::Reject,
            7 => Self::Terminate,
            8 => Self::Keepalive,
            9 => Self::PathChallenge,
            10 => Self::PathResponse,
            11 => Self::CookieReply,
            12 => Self::RekeyInit,
            13 => Self::RekeyAck,
            _ => return None,
        })
    }

    /// Whether a client may send this type to the gateway. The others only flow gateway to client,
    /// and arriving at the gateway they are malformed.
    #[inline(always)]
    pub const fn sent_by_client(self) -> bool {
        !matches!(
            self,
            Self::Welcome
                | Self::ReattachAck
                | Self::Reject
                | Self::PathChallenge
                | Self::CookieReply
                | Self::RekeyAck
        )
    }
}

/// Why a header is malformed. All of these count as [`crate::RejectReason::Malformed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// Fewer than [`HEADER_LEN`] bytes.
    Truncated,
    /// Byte 0 is not [`PROTOCOL_VERSION`].
    Version,
    /// Byte 1 is not a known type.
    UnknownType,
    /// A flag bit this version does not define is set.
    UnknownFlags,
    /// A HELLO or COOKIE_REPLY (untagged) whose slot hint is not zero.
    Reserved,
    /// HELLO or COOKIE_REPLY with a session id, version, nonce or tag, or another type without a
    /// session id.
    SessionId,
    /// Nonce 0 outside HELLO (nonces start at 1).
    ZeroNonce,
}

/// The 40-byte header, exactly as on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct WireHeader {
    /// Protocol version, [`PROTOCOL_VERSION`].
    pub version: u8,
    /// [`MessageType`] as a byte.
    pub msg_type: u8,
    /// Flags; no bit is defined yet.
    pub flags: Be16,
    /// The slot hint (layout v5, issue 10): the session's slot in the gateway node's session
    /// array, so the XDP program finds the session by index instead of by a hash lookup. The
    /// gateway writes it into its headers, the client echoes the last one it accepted; 0 means
    /// "none". Covered by the tag like every field before it, but never trusted: the program
    /// checks the slot's session id and falls back to its hash index (docs/protocol.md, "Slot
    /// hint"). Zero in HELLO and COOKIE_REPLY, which carry no tag.
    pub slot_hint: Be32,
    /// The session, 0 only in HELLO.
    pub session_id: Be64,
    /// The sender's view of the session's state_version.
    pub state_version: Be64,
    /// Per session and direction, from 1, +1 per message.
    pub nonce: Be64,
    /// SipHash-2-4 of bytes `0..TAG_OFFSET` under the session's header key.
    pub tag: Be64,
}

const _: () = assert!(core::mem::size_of::<WireHeader>() == HEADER_LEN);
const _: () = assert!(core::mem::offset_of!(WireHeader, tag) == TAG_OFFSET);

impl WireHeader {
    /// A header for `msg_type` with an empty tag; call [`WireHeader::seal`] before sending.
    pub const fn new(
        msg_type: MessageType,
        session_id: u64,
        state_version: u64,
        nonce: u64,
    ) -> Self {
        Self {
            version: PROTOCOL_VERSION,
            msg_type: msg_type as u8,
            flags: Be16::new(0),
            slot_hint: Be32::new(0),
            session_id: Be64::new(session_id),
            state_version: Be64::new(state_version),
            nonce: Be64::new(nonce),
            tag: Be64::new(0),
        }
    }

    /// Reads and validates the header at the start of `buf`.
    pub fn parse(buf: &[u8]) -> Result<Self, HeaderError> {
        let bytes = buf.get(..HEADER_LEN).ok_or(HeaderError::Truncated)?;
        let h: WireHeader = bytemuck::pod_read_unaligned(bytes);
        h.validate()?;
        Ok(h)
    }

    /// The slot named by the slot hint, if there is one (the hint is the slot plus one, so 0
    /// means none and slot 0 is still reachable).
    #[inline(always)]
    pub fn hinted_slot(&self) -> Option<u32> {
        self.slot_hint.get().checked_sub(1)
    }

    /// Sets the slot hint to name `slot` (see [`WireHeader::hinted_slot`]), or to none. Call
    /// before [`WireHeader::seal`]: the tag covers the hint.
    #[inline(always)]
    pub fn set_hinted_slot(&mut self, slot: Option<u32>) {
        self.slot_hint = Be32::new(slot.map_or(0, |s| s.wrapping_add(1)));
    }

    /// The message type, if the header is valid.
    #[inline(always)]
    pub fn message_type(&self) -> Option<MessageType> {
        MessageType::from_u8(self.msg_type)
    }

    /// Checks every field rule of the wire format except the tag, which needs the session's key.
    #[inline(always)]
    pub fn validate(&self) -> Result<MessageType, HeaderError> {
        if self.version != PROTOCOL_VERSION {
            return Err(HeaderError::Version);
        }
        let Some(t) = MessageType::from_u8(self.msg_type) else {
            return Err(HeaderError::UnknownType);
        };
        if self.flags.get() & !KNOWN_FLAGS != 0 {
            return Err(HeaderError::UnknownFlags);
        }
        let sid = self.session_id.get();
        if matches!(t, MessageType::Hello | MessageType::CookieReply) {
            if self.slot_hint.get() != 0 {
                return Err(HeaderError::Reserved);
            }
            if sid != 0
                || self.state_version.get() != 0
                || self.nonce.get() != 0
                || self.tag.get() != 0
            {
                return Err(HeaderError::SessionId);
            }
        } else {
            if sid == 0 {
                return Err(HeaderError::SessionId);
            }
            if self.nonce.get() == 0 {
                return Err(HeaderError::ZeroNonce);
            }
        }
        Ok(t)
    }

    /// The bytes the tag covers as the four little-endian words SipHash consumes.
    #[inline(always)]
    pub fn tag_words(&self) -> [u64; 4] {
        let b: &[u8; HEADER_LEN] = bytemuck::cast_ref(self);
        let w = |i: usize| {
            u64::from_le_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        [w(0), w(8), w(16), w(24)]
    }

    /// The tag this header must carry under `key`.
    #[inline(always)]
    pub fn compute_tag(&self, key: SipKey) -> u64 {
        siphash24_words(key, self.tag_words())
    }

    /// Whether the tag verifies under `key`.
    #[inline(always)]
    pub fn tag_verifies(&self, key: SipKey) -> bool {
        self.compute_tag(key) == self.tag.get()
    }

    /// Sets the tag for `key`.
    pub fn seal(&mut self, key: SipKey) {
        self.tag = Be64::new(self.compute_tag(key));
    }

    /// The header as bytes, ready to send.
    pub fn as_bytes(&self) -> &[u8; HEADER_LEN] {
        bytemuck::cast_ref(self)
    }
}

#[cfg(test)]
mod tests;
