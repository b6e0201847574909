//! The plaintext bodies of the handshake payloads and control messages, and their sizes.
//!
//! Every body here is what lies inside an encryption: HELLO and WELCOME carry theirs as the payload
//! of a Noise message (authenticated by the handshake), the others are AEAD-sealed after the header
//! (ChaCha20-Poly1305, the 40-byte header as associated data, [`AEAD_TAG_LEN`] bytes of tag after
//! the ciphertext). Like the header, each body is a `#[repr(C)]` type with byte order in its field
//! types and explicit reserved bytes, read and written with bytemuck; [`Body::from_body`] refuses a
//! wrong length, a non-zero reserved byte or an out-of-range field. All integers are big-endian.
//!
//! ```text
//! HELLO payload (12)           WELCOME payload (40)              REATTACH_REQUEST (16)
//!  0 tai64n seconds (8)         0 session_id (8)                   0 acked_version (8)
//!  8 tai64n nanoseconds (4)     8 ipv4 address (4)                 8 attempt (8)
//!                              12 ipv4 prefix len (1)
//! PATH_CHALLENGE (40)          13 ipv6 prefix len (1)             REATTACH_ACK (32)
//!  0 token (32)                14 tunnel mtu (2)                   0 new_version (8)
//! 32 attempt (8)               16 ipv6 address (16)                8 binding.addr (16)
//!                              32 keepalive interval secs (2)     24 binding.port (2)
//! PATH_RESPONSE (40)           34 reserved = 0 (6)                26 binding reserved = 0 (6)
//!  0 token (32, echoed)
//! 32 attempt (8, echoed)       REJECT (24)                        TERMINATE (8)
//!                               0 reason code (1)                  0 cause (1)
//! KEEPALIVE: empty              1 reserved = 0 (7)                 1 reserved = 0 (7)
//! DATA: one IP packet           8 gateway's state_version (8)
//!                              16 rejected message's nonce (8)
//! ```
//!
//! On the wire a sealed message is `HEADER_LEN + body + AEAD_TAG_LEN` bytes ([`sealed_len`]); a
//! HELLO is exactly `abi::HELLO_LEN` (its Noise message of `HELLO_BODY_LEN` and two MACs) and a WELCOME `HEADER_LEN + WELCOME_BODY_LEN`.

use crate::abi::HEADER_LEN;
use crate::maps::TransportBinding;
use crate::reason::RejectReason;
use crate::wire::{Be64, MessageType};
use bytemuck::{Pod, Zeroable};
use core::mem::size_of;

mod handshake;
mod rekey;
pub use handshake::{HelloPayload, Tai64N, WelcomePayload};
pub use rekey::{RekeyAck, RekeyInit, REKEY_NOISE_LEN};

/// Length of the Poly1305 tag that follows every AEAD ciphertext (the AEAD's overhead).
pub const AEAD_TAG_LEN: usize = 16;
/// Length of an X25519 public key, as carried in Noise messages.
pub const DH_PUBLIC_LEN: usize = 32;
/// Length of a PATH_CHALLENGE token.
pub const PATH_TOKEN_LEN: usize = 32;
/// The attempt number of a PATH_CHALLENGE the gateway sends on its own, not answering a
/// REATTACH_REQUEST: after losing its maps it challenges every RECOVERING session at its last
/// binding, at the RECOVERING version, and the PATH_RESPONSE from there re-attaches the session
/// (docs/protocol.md, "After the gateway lost its maps"). A client's own attempts start at 1.
pub const GATEWAY_CHALLENGE_ATTEMPT: u64 = 0;
/// Length of a HELLO body: Noise IK message 1 = ephemeral key, encrypted static key, encrypted
/// [`HelloPayload`].
pub const HELLO_BODY_LEN: usize =
    DH_PUBLIC_LEN + (DH_PUBLIC_LEN + AEAD_TAG_LEN) + (size_of::<HelloPayload>() + AEAD_TAG_LEN);
/// Length of a WELCOME body: Noise IK message 2 = ephemeral key, encrypted [`WelcomePayload`].
pub const WELCOME_BODY_LEN: usize = DH_PUBLIC_LEN + (size_of::<WelcomePayload>() + AEAD_TAG_LEN);
/// The tunnel MTU that fits one sealed packet in a 1500-byte link over IPv6 (40) and UDP (8).
pub const DEFAULT_TUNNEL_MTU: u16 = (1500 - 40 - 8 - HEADER_LEN - AEAD_TAG_LEN) as u16;
/// The smallest tunnel MTU a gateway may announce (IPv4's minimum datagram size).
pub const MIN_TUNNEL_MTU: u16 = 576;
/// The largest tunnel MTU a gateway may announce: a standard Ethernet MTU, so the tunnel carries
/// whatever an ordinary link carries. It bounds [`MAX_DATAGRAM_LEN`], by which the XDP program
/// tells one datagram from a merged run of several (docs/datapath.md, "Merged runs"); a larger
/// MTU would only widen the runs it cannot tell apart.
pub const MAX_TUNNEL_MTU: u16 = 1500;
/// The largest UDP payload the protocol produces in either direction: a DATA message carrying a
/// packet of [`MAX_TUNNEL_MTU`] bytes (every other message is shorter, see the assertion below).
/// The XDP program drops a jvpn frame whose UDP payload is longer as `MERGED_RUN`: it can only be
/// several datagrams laid end to end (a GSO packet or a GRO merge seen by generic XDP) or forged.
pub const MAX_DATAGRAM_LEN: usize = sealed_len(MAX_TUNNEL_MTU as usize);
const _: () = assert!(
    crate::abi::HELLO_LEN <= MAX_DATAGRAM_LEN
        && crate::abi::COOKIE_REPLY_LEN <= MAX_DATAGRAM_LEN
        && sealed_len(WELCOME_BODY_LEN) <= MAX_DATAGRAM_LEN
        && sealed_len(size_of::<RekeyInit>()) <= MAX_DATAGRAM_LEN
        && sealed_len(size_of::<RekeyAck>()) <= MAX_DATAGRAM_LEN
        && MIN_TUNNEL_MTU <= DEFAULT_TUNNEL_MTU
        && DEFAULT_TUNNEL_MTU <= MAX_TUNNEL_MTU
);

/// Length on the wire of a message whose plaintext body is `body_len` bytes, AEAD-sealed.
pub const fn sealed_len(body_len: usize) -> usize {
    HEADER_LEN + body_len + AEAD_TAG_LEN
}

/// Why a body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The body is not exactly the length of its type.
    WrongLength {
        /// The length the message type requires.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// A reserved byte is not zero.
    Reserved,
    /// A REJECT names a reason code this version does not know.
    UnknownReason(u8),
    /// A TERMINATE names a cause this version does not know.
    UnknownCause(u8),
    /// A WELCOME names session 0, which only HELLO may carry.
    ZeroSessionId,
    /// A WELCOME prefix length is longer than its address family, or an address is given with
    /// prefix length 0 (which means "not assigned").
    BadPrefix,
    /// A WELCOME assigns no tunnel address at all.
    NoAddress,
    /// A WELCOME announces a tunnel MTU below [`MIN_TUNNEL_MTU`].
    MtuTooSmall(u16),
    /// A WELCOME announces a tunnel MTU above [`MAX_TUNNEL_MTU`].
    MtuTooLarge(u16),
}

impl core::fmt::Display for BodyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::WrongLength { expected, got } => {
                write!(f, "body is {got} bytes, its type needs {expected}")
            }
            Self::Reserved => f.write_str("a reserved byte of the body is not zero"),
            Self::UnknownReason(c) => write!(f, "unknown reject reason code {c}"),
            Self::UnknownCause(c) => write!(f, "unknown terminate cause {c}"),
            Self::ZeroSessionId => f.write_str("WELCOME names session 0"),
            Self::BadPrefix => f.write_str("WELCOME has an invalid prefix length"),
            Self::NoAddress => f.write_str("WELCOME assigns no tunnel address"),
            Self::MtuTooSmall(m) => {
                write!(f, "WELCOME announces tunnel MTU {m} < {MIN_TUNNEL_MTU}")
            }
            Self::MtuTooLarge(m) => {
                write!(f, "WELCOME announces tunnel MTU {m} > {MAX_TUNNEL_MTU}")
            }
        }
    }
}

impl core::error::Error for BodyError {}

/// A body with a fixed layout, carried by one message type.
pub trait Body: Pod {
    /// The message type whose body this is.
    const MESSAGE_TYPE: MessageType;

    /// Checks the rules a well-formed body follows beyond its length.
    fn check(&self) -> Result<(), BodyError>;

    /// The body as bytes, ready to seal.
    fn as_body(&self) -> &[u8] {
        bytemuck::bytes_of(self)
    }

    /// Reads and checks a body that must be exactly this type's length.
    fn from_body(body: &[u8]) -> Result<Self, BodyError> {
        if body.len() != size_of::<Self>() {
            return Err(BodyError::WrongLength {
                expected: size_of::<Self>(),
                got: body.len(),
            });
        }
        let parsed: Self = bytemuck::pod_read_unaligned(body);
        parsed.check()?;
        Ok(parsed)
    }
}

fn zero(bytes: &[u8]) -> Result<(), BodyError> {
    if bytes.iter().all(|&b| b == 0) {
        Ok(())
    } else {
        Err(BodyError::Reserved)
    }
}

/// REATTACH_REQUEST: the client asks to move its session to the transport this arrives from.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ReattachRequest {
    /// The latest state_version the gateway acknowledged to this client (spec section 5). It equals
    /// the header's state_version; both are authenticated.
    pub acked_version: Be64,
    /// The client's reattach attempt number, from 1, +1 per new attempt. The gateway echoes it in
    /// PATH_CHALLENGE so the client answers only the challenge of its current attempt.
    pub attempt: Be64,
}

impl Body for ReattachRequest {
    const MESSAGE_TYPE: MessageType = MessageType::ReattachRequest;
    fn check(&self) -> Result<(), BodyError> {
        Ok(())
    }
}

/// PATH_CHALLENGE: the gateway checks that the client really receives at the new address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PathChallenge {
    /// Fresh random bytes the client must return.
    pub token: [u8; PATH_TOKEN_LEN],
    /// The attempt of the REATTACH_REQUEST this answers, or [`GATEWAY_CHALLENGE_ATTEMPT`].
    pub attempt: Be64,
}

impl Body for PathChallenge {
    const MESSAGE_TYPE: MessageType = MessageType::PathChallenge;
    fn check(&self) -> Result<(), BodyError> {
        Ok(())
    }
}

/// PATH_RESPONSE: the client returns the challenge, sealed, from the address it was sent to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct PathResponse {
    /// The token of the PATH_CHALLENGE, unchanged.
    pub token: [u8; PATH_TOKEN_LEN],
    /// The attempt of the PATH_CHALLENGE, unchanged.
    pub attempt: Be64,
}

impl PathResponse {
    /// The response that answers `challenge`.
    pub const fn answering(challenge: &PathChallenge) -> Self {
        Self {
            token: challenge.token,
            attempt: challenge.attempt,
        }
    }
}

impl Body for PathResponse {
    const MESSAGE_TYPE: MessageType = MessageType::PathResponse;
    fn check(&self) -> Result<(), BodyError> {
        Ok(())
    }
}

/// REATTACH_ACK: the reattach committed.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct ReattachAck {
    /// The session's state_version after the commit (the header carries the same).
    pub new_version: Be64,
    /// The transport the session is now bound to, as the gateway saw it.
    pub binding: TransportBinding,
}

impl Body for ReattachAck {
    const MESSAGE_TYPE: MessageType = MessageType::ReattachAck;
    fn check(&self) -> Result<(), BodyError> {
        zero(&self.binding._pad)
    }
}

/// REJECT: an authenticated refusal of one message (spec section 6: never a silent ignore).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Reject {
    /// A [`RejectReason`] code.
    pub reason: u8,
    /// Reserved, zero.
    pub reserved: [u8; 7],
    /// The state_version the gateway holds for the session.
    pub gateway_version: Be64,
    /// The nonce of the refused message, so the client knows which one it was.
    pub rejected_nonce: Be64,
}

impl Reject {
    /// A REJECT of the message with `rejected_nonce` for `reason`.
    pub const fn new(reason: RejectReason, gateway_version: u64, rejected_nonce: u64) -> Self {
        Self {
            reason: reason.code(),
            reserved: [0; 7],
            gateway_version: Be64::new(gateway_version),
            rejected_nonce: Be64::new(rejected_nonce),
        }
    }

    /// The reason, if the code is known (always so after [`Body::from_body`]).
    pub fn reason(&self) -> Option<RejectReason> {
        RejectReason::from_code(self.reason)
    }
}

impl Body for Reject {
    const MESSAGE_TYPE: MessageType = MessageType::Reject;
    fn check(&self) -> Result<(), BodyError> {
        zero(&self.reserved)?;
        self.reason()
            .map(|_| ())
            .ok_or(BodyError::UnknownReason(self.reason))
    }
}

/// Why a session ended, carried in TERMINATE.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TerminateCause {
    /// The client closed the session.
    ClientClosed = 1,
    /// An operator terminated it (`jvpn sessions terminate`).
    Operator = 2,
    /// Nothing was received for the idle timeout.
    IdleTimeout = 3,
    /// The version or nonce reached the safety margin below `u64::MAX` (spec section 8).
    Exhausted = 4,
    /// A peer found the session state ambiguous and failed closed (spec sections 5 and 10).
    Ambiguity = 5,
    /// The session's keys reached their reject-after age or message count without a rekey
    /// (docs/rekey.md): the gateway never keeps a session on worn-out keys.
    RekeyTimeout = 6,
    /// The gateway's config no longer authorises the client as the session was keyed: the client
    /// was removed, or its key, pre-shared key or addresses changed (`jvpn reload`).
    ClientRemoved = 7,
}

impl TerminateCause {
    /// The cause for a byte, or `None` for one this version does not know.
    pub const fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            1 => Self::ClientClosed,
            2 => Self::Operator,
            3 => Self::IdleTimeout,
            4 => Self::Exhausted,
            5 => Self::Ambiguity,
            6 => Self::RekeyTimeout,
            7 => Self::ClientRemoved,
            _ => return None,
        })
    }
}

/// TERMINATE: the sender ended the session.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
pub struct Terminate {
    /// A [`TerminateCause`].
    pub cause: u8,
    /// Reserved, zero.
    pub reserved: [u8; 7],
}

impl Terminate {
    /// A TERMINATE for `cause`.
    pub const fn new(cause: TerminateCause) -> Self {
        Self {
            cause: cause as u8,
            reserved: [0; 7],
        }
    }

    /// The cause, if known (always so after [`Body::from_body`]).
    pub const fn cause(&self) -> Option<TerminateCause> {
        TerminateCause::from_u8(self.cause)
    }
}

impl Body for Terminate {
    const MESSAGE_TYPE: MessageType = MessageType::Terminate;
    fn check(&self) -> Result<(), BodyError> {
        zero(&self.reserved)?;
        self.cause()
            .map(|_| ())
            .ok_or(BodyError::UnknownCause(self.cause))
    }
}

const _: () = assert!(size_of::<ReattachRequest>() == 16);
const _: () = assert!(size_of::<PathChallenge>() == 40);
const _: () = assert!(size_of::<PathResponse>() == 40);
const _: () = assert!(size_of::<ReattachAck>() == 32);
const _: () = assert!(size_of::<Reject>() == 24);
const _: () = assert!(core::mem::offset_of!(Reject, rejected_nonce) == 16);
const _: () = assert!(size_of::<Terminate>() == 8);
const _: () = assert!(HELLO_BODY_LEN == 108 && HELLO_BODY_LEN == crate::abi::HELLO_NOISE_LEN);
const _: () = assert!(WELCOME_BODY_LEN == 88);

#[cfg(test)]
mod tests;
