//! Why the client core refused a datagram or a request, and which refusals end the session.
//!
//! Two kinds of refusal exist. Most are *drops*: the datagram is forged, replayed, stale or simply
//! not expected now; the core changes nothing and the session goes on. A few are *fatal*
//! ([`SessionRefusal::is_fatal`]): the gateway, speaking authentically, said something that does not
//! fit the client's view of the session ([`Ambiguity`]), the session ended, or the client's nonces
//! ran out. The core then closes itself for good ([`Closed`]) and refuses everything after; the
//! driver tears the session down and starts a new handshake (spec sections 5 and 10: fail closed,
//! never guess).

use crate::crypto::SealError;
use jvpn_common::control::TerminateCause;
use jvpn_common::replay::ReplayReject;
use jvpn_common::wire::MessageType;
use jvpn_common::RejectReason;

/// An authenticated gateway message that contradicts the client's view of the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ambiguity {
    /// The message carries a version above what the rules allow at this point.
    #[error("{message:?} carries state_version {version} but the acknowledged version is {acked}: an unexpected jump")]
    VersionJump {
        /// The message type.
        message: MessageType,
        /// The version in its header.
        version: u64,
        /// The client's acknowledged version.
        acked: u64,
    },
    /// A REATTACH_ACK names another version than the one its challenge promised.
    #[error("REATTACH_ACK carries state_version {got}, expected exactly {expected}")]
    AckMismatch {
        /// The only version the client could accept.
        expected: u64,
        /// The version the ACK carries.
        got: u64,
    },
    /// The header and the authenticated body name different versions.
    #[error("{message:?} header carries state_version {header} but its body says {body}")]
    BodyMismatch {
        /// The message type.
        message: MessageType,
        /// The version in the header.
        header: u64,
        /// The version in the body.
        body: u64,
    },
    /// A PATH_CHALLENGE answers a reattach attempt this client never made.
    #[error("PATH_CHALLENGE names reattach attempt {attempt}, but the latest sent is {latest}")]
    FutureAttempt {
        /// The attempt the challenge names.
        attempt: u64,
        /// The latest attempt the client sent.
        latest: u64,
    },
    /// The gateway refused a message while holding a version the client does not know.
    #[error("gateway rejected a message with {} while at state_version {gateway_version}, ahead of the acknowledged {acked}", reason.name())]
    RejectedAhead {
        /// The reason the gateway gave.
        reason: RejectReason,
        /// The gateway's version.
        gateway_version: u64,
        /// The client's acknowledged version.
        acked: u64,
    },
    /// Accepting the message would take a version past `u64::MAX`.
    #[error("state_version {0} cannot advance without overflowing")]
    VersionOverflow(u64),
    /// A REKEY_ACK committed new keys at `version` that no REKEY_INIT of this client derives: the
    /// gateway now seals under keys the client does not have.
    #[error("REKEY_ACK at state_version {version} completes none of this client's rekeys (from {acked})")]
    RekeyUnverified {
        /// The version in the REKEY_ACK.
        version: u64,
        /// The client's acknowledged version.
        acked: u64,
    },
}

/// Why the client core is closed. A closed core refuses every datagram and every request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Closed {
    /// The client sent TERMINATE.
    #[error("the client terminated it ({0:?})")]
    ByClient(TerminateCause),
    /// The gateway sent TERMINATE.
    #[error("terminated by the gateway: {}", cause_text(*.0))]
    ByGateway(TerminateCause),
    /// The core failed closed on an ambiguity.
    #[error("it failed closed: {0}")]
    Ambiguous(Ambiguity),
    /// The client's nonces reached the safety margin below `u64::MAX` (spec section 8).
    #[error("its client-to-gateway nonces are exhausted")]
    NonceExhausted,
    /// The gateway answered with a sealed REJECT TERMINATED: it holds the session as ended.
    #[error("the gateway holds it terminated at state_version {0}")]
    TerminatedAtGateway(u64),
    /// This many REATTACH_REQUESTs in a row went unanswered: the gateway no longer knows the
    /// session (or cannot be reached); a new handshake is the way back.
    #[error("{0} REATTACH_REQUESTs in a row went unanswered; the gateway no longer knows it")]
    Unanswered(u64),
}

/// Why the client core refused a datagram or a request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionRefusal {
    /// The session is closed; nothing more is accepted or sent.
    #[error("the session is closed: {0}; start a new handshake")]
    Closed(Closed),
    /// The datagram breaks the wire format, is a handshake message, travels the wrong way, or its
    /// authenticated body is invalid.
    #[error("datagram is not a valid gateway message ({0}); dropped")]
    Malformed(SealError),
    /// The datagram names another session (for example one replaced by a new handshake).
    #[error("datagram names session {got:#x}, not this client's {expected:#x}; dropped")]
    WrongSession {
        /// This client's session.
        expected: u64,
        /// The session the datagram names.
        got: u64,
    },
    /// The header tag or the AEAD seal does not verify: forged or corrupted. Nothing changed.
    #[error("datagram failed authentication ({0}): forged or corrupted, dropped; nothing changed")]
    Unauthenticated(SealError),
    /// The gateway nonce was already seen, or is older than the replay window.
    #[error("gateway nonce {nonce} refused ({}): a replayed or very late datagram, dropped", reason.reason().name())]
    Replayed {
        /// The nonce.
        nonce: u64,
        /// Why the window refused it.
        reason: ReplayReject,
    },
    /// The message carries a version below the acknowledged one: an older message.
    #[error("{message:?} carries state_version {version}, below the acknowledged {acked}: stale, dropped")]
    StaleVersion {
        /// The message type.
        message: MessageType,
        /// The version in its header.
        version: u64,
        /// The client's acknowledged version.
        acked: u64,
    },
    /// DATA or KEEPALIVE at the version the pending REATTACH_ACK will confirm, before that ACK.
    #[error("{message:?} carries state_version {version}, which the REATTACH_ACK still on its way will confirm; dropped")]
    AheadOfAck {
        /// The message type.
        message: MessageType,
        /// The version in its header.
        version: u64,
    },
    /// An authenticated message that no request of this client explains (a late duplicate reply).
    #[error("unexpected {message:?} at state_version {version}: no reattach of this client is waiting for it; dropped")]
    Unexpected {
        /// The message type.
        message: MessageType,
        /// The version in its header.
        version: u64,
    },
    /// A PATH_CHALLENGE for an earlier reattach attempt.
    #[error("PATH_CHALLENGE for reattach attempt {attempt}, the current attempt is {current}: stale, dropped")]
    StaleAttempt {
        /// The attempt the challenge names.
        attempt: u64,
        /// The client's current attempt.
        current: u64,
    },
    /// The gateway's message contradicts the client's view: the core closed itself.
    #[error("session state is ambiguous ({0}); the session is closed, start a new handshake")]
    Ambiguous(Ambiguity),
    /// The client's nonces reached the safety margin: the core closed itself.
    #[error("client-to-gateway nonces reached the safety margin below u64::MAX; the session is closed, start a new handshake")]
    NonceExhausted,
    /// The WELCOME does not start the session at version 1 (BIRTH 0, then ATTACHED 1).
    #[error("WELCOME carries state_version {0}, a new session starts at 1; start a new handshake")]
    WelcomeVersion(u64),
    /// A message could not be sealed (the payload is too long).
    #[error("cannot seal the message: {0}")]
    Seal(SealError),
}

impl SessionRefusal {
    /// Whether the session cannot go on: tear it down and start a new handshake.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Self::Closed(_) | Self::Ambiguous(_) | Self::NonceExhausted | Self::WelcomeVersion(_)
        )
    }
}

/// What a TERMINATE's cause means, for the operator of the client.
pub fn cause_text(cause: TerminateCause) -> &'static str {
    match cause {
        TerminateCause::ClientClosed => "the client closed the session",
        TerminateCause::Operator => "an operator terminated the session",
        TerminateCause::IdleTimeout => "nothing was received for the idle timeout",
        TerminateCause::Exhausted => "the session's versions or nonces are exhausted",
        TerminateCause::Ambiguity => "the session state was ambiguous, so it failed closed",
        TerminateCause::RekeyTimeout => {
            "the session's keys wore out without a rekey, so the gateway ended it (docs/rekey.md)"
        }
        TerminateCause::ClientRemoved => {
            "client removed: the gateway's config no longer authorises this key as the session was keyed (removed, or its key or addresses changed)"
        }
    }
}
