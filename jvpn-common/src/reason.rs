//! Reason codes: why a packet was dropped by the XDP program or a message rejected by the controller.
//!
//! One enum serves both sides, so a drop counter, a security event, a REJECT body and a log line all
//! name a refusal the same way. The code is the byte carried in events and REJECT bodies, and the
//! index of the reason's slot in the per-CPU counter array.

/// Why a packet or message was refused. Codes are stable: they appear on the wire and in pinned maps.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RejectReason {
    /// Truncated, fragmented, wrong version, unknown type or flags, or a type only the gateway sends.
    Malformed = 1,
    /// HELLO over the per-source rate limit.
    HandshakeRate = 2,
    /// No session with this id.
    UnknownSession = 3,
    /// The header tag does not verify under the session's header key.
    BadTag = 4,
    /// The session is terminated.
    Terminated = 5,
    /// The nonce was already seen in this session and direction.
    DuplicateNonce = 6,
    /// The nonce is older than the replay window.
    NonceTooOld = 7,
    /// DATA or KEEPALIVE while the session is not ATTACHED.
    NotAttached = 8,
    /// The message's state_version is below the session's.
    StaleVersion = 9,
    /// The message's state_version is above the session's.
    VersionJump = 10,
    /// Source address and port are not the session's bound transport.
    TransportMismatch = 11,
    /// The nonce is at or past the limit where the session must already have ended.
    NonceExhausted = 12,
    /// The replay window stayed contended through every retry; dropped rather than guessed.
    ReplayContention = 13,
    /// The compare-and-set lost to a concurrent mutation of the same session.
    ConcurrentMutation = 14,
    /// The AEAD seal of the body did not open.
    BadSeal = 15,
    /// The handshake named a client key that is not authorised.
    UnknownClient = 16,
    /// A HELLO whose timestamp is not newer than the last one accepted from that client.
    HandshakeReplay = 17,
    /// A PATH_RESPONSE did not return the outstanding challenge, or came from another address.
    PathValidation = 18,
    /// The session table is full.
    TableFull = 19,
    /// Ownership of the session is ambiguous (cluster); the reattach is refused.
    OwnershipAmbiguous = 20,
    /// The session's version or nonce reached the safety margin below `u64::MAX`.
    VersionExhausted = 21,
    /// Authenticated REJECT replies for this session are over their rate limit.
    RejectRate = 22,
    /// The nonce is implausibly far above the newest one accepted (more than
    /// `abi::NONCE_MAX_LEAP`): a reflected or forged message must not drag the replay window away.
    NonceTooFar = 23,
    /// A HELLO whose mac1 does not verify under the gateway's public key.
    BadMac = 24,
    /// The gateway is under load and the HELLO carried no valid cookie MAC (mac2) for its source.
    CookieRequired = 25,
    /// The handshake queue is full; the HELLO was not processed.
    HandshakeBusy = 26,
    /// The client already has as many live sessions as its key may hold.
    ClientSessionLimit = 27,
    /// The session entry's replay slot is outside the replay array, or the window there belongs
    /// to another session (a stale entry of a removed session, a reused slot): the packet is
    /// refused rather than checked against a window that is not its session's.
    ReplaySlot = 28,
    /// The UDP payload is longer than any single jvpn datagram (`control::MAX_DATAGRAM_LEN`):
    /// several datagrams laid end to end in one frame (a GSO packet or a GRO merge, which
    /// generic XDP sees whole) or a forgery. Dropped whole, since the program could judge only
    /// the first of them (docs/datapath.md, "Merged runs").
    MergedRun = 29,
    /// The session's line was being rewritten by the controller while the packet read it (its
    /// sequence word odd, or changed during the read): the packet is dropped rather than judged
    /// on a mix of two versions of the session (layout v5, `maps::SessionLine`). The sender's
    /// next packet finds the line whole.
    SessionBusy = 30,
}

/// Number of slots in the per-CPU counter array: slot 0 counts accepted packets, slot
/// [`COUNTER_TO_CONTROLLER`] counts packets passed to the controller, the others are reason codes.
pub const COUNTER_SLOTS: u32 = 32;
/// Counter slot of DATA and KEEPALIVE packets accepted by the XDP program.
pub const COUNTER_ACCEPTED: u32 = 0;
/// Counter slot of HELLO and control messages passed to the controller.
pub const COUNTER_TO_CONTROLLER: u32 = COUNTER_SLOTS - 1;

impl RejectReason {
    /// Every reason, in code order.
    pub const ALL: [RejectReason; 30] = [
        Self::Malformed,
        Self::HandshakeRate,
        Self::UnknownSession,
        Self::BadTag,
        Self::Terminated,
        Self::DuplicateNonce,
        Self::NonceTooOld,
        Self::NotAttached,
        Self::StaleVersion,
        Self::VersionJump,
        Self::TransportMismatch,
        Self::NonceExhausted,
        Self::ReplayContention,
        Self::ConcurrentMutation,
        Self::BadSeal,
        Self::UnknownClient,
        Self::HandshakeReplay,
        Self::PathValidation,
        Self::TableFull,
        Self::OwnershipAmbiguous,
        Self::VersionExhausted,
        Self::RejectRate,
        Self::NonceTooFar,
        Self::BadMac,
        Self::CookieRequired,
        Self::HandshakeBusy,
        Self::ClientSessionLimit,
        Self::ReplaySlot,
        Self::MergedRun,
        Self::SessionBusy,
    ];

    /// The code carried in events, REJECT bodies and counter indexes.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// Whether this reason says "that nonce was already used": a duplicate, or one older than
    /// the replay window. A REJECT for it answers a replayed copy of a message the client had
    /// already sent, so the client takes it as information and changes nothing on it.
    pub const fn is_replay(self) -> bool {
        matches!(self, Self::DuplicateNonce | Self::NonceTooOld)
    }

    /// The reason for a code, or `None` for a code this version does not know.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.code() == code)
    }

    /// The operator-facing name, as used in logs, metrics labels and `--json` output.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Malformed => "MALFORMED",
            Self::HandshakeRate => "HANDSHAKE_RATE",
            Self::UnknownSession => "UNKNOWN_SESSION",
            Self::BadTag => "BAD_TAG",
            Self::Terminated => "TERMINATED",
            Self::DuplicateNonce => "DUPLICATE_NONCE",
            Self::NonceTooOld => "NONCE_TOO_OLD",
            Self::NotAttached => "NOT_ATTACHED",
            Self::StaleVersion => "STALE_VERSION",
            Self::VersionJump => "VERSION_JUMP",
            Self::TransportMismatch => "TRANSPORT_MISMATCH",
            Self::NonceExhausted => "NONCE_EXHAUSTED",
            Self::ReplayContention => "REPLAY_CONTENTION",
            Self::ConcurrentMutation => "CONCURRENT_MUTATION",
            Self::BadSeal => "BAD_SEAL",
            Self::UnknownClient => "UNKNOWN_CLIENT",
            Self::HandshakeReplay => "HANDSHAKE_REPLAY",
            Self::PathValidation => "PATH_VALIDATION",
            Self::TableFull => "TABLE_FULL",
            Self::OwnershipAmbiguous => "OWNERSHIP_AMBIGUOUS",
            Self::VersionExhausted => "VERSION_EXHAUSTED",
            Self::RejectRate => "REJECT_RATE",
            Self::NonceTooFar => "NONCE_TOO_FAR",
            Self::BadMac => "BAD_MAC",
            Self::CookieRequired => "COOKIE_REQUIRED",
            Self::HandshakeBusy => "HANDSHAKE_BUSY",
            Self::ClientSessionLimit => "CLIENT_SESSION_LIMIT",
            Self::ReplaySlot => "REPLAY_SLOT",
            Self::MergedRun => "MERGED_RUN",
            Self::SessionBusy => "SESSION_BUSY",
        }
    }

    /// The counter slot of this reason.
    pub const fn counter_slot(self) -> u32 {
        self as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_fit_the_counter_array() {
        for r in RejectReason::ALL {
            assert_eq!(RejectReason::from_code(r.code()), Some(r));
            assert!(
                r.counter_slot() > COUNTER_ACCEPTED && r.counter_slot() < COUNTER_TO_CONTROLLER
            );
        }
        assert_eq!(RejectReason::from_code(0), None);
        assert_eq!(RejectReason::from_code(200), None);
    }
}
