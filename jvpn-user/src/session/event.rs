//! What the state machine tells the world: a STATE_CHANGE for every version increment (spec
//! section 11), and a SECURITY_EVENT or POLICY_EVENT for every refusal (spec section 6).
//!
//! [`StateChange`] is also the audit record the store commits together with the increment it
//! describes, so its cause has a stable numeric code.

use super::id::SessionId;
use super::state::Millis;
use jvpn_common::maps::{SessionState, TransportBinding};
use jvpn_common::RejectReason;

/// Why a transition happened. Codes are stable: they are stored in audit records.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The handshake completed and bound the first transport (BIRTH to ATTACHED).
    HandshakeComplete = 1,
    /// A path-validated reattach moved the session to a transport.
    Reattach = 2,
    /// Nothing arrived for the keepalive timeout.
    KeepaliveTimeout = 3,
    /// Nothing arrived for the idle timeout.
    IdleTimeout = 4,
    /// An operator ended the session (`jvpn sessions terminate`).
    OperatorTerminate = 5,
    /// The client asked to end the session.
    ClientClose = 6,
    /// A policy ended the session.
    PolicyTerminate = 7,
    /// A policy moved the session to RECOVERING.
    PolicyRecover = 8,
    /// The gateway restarted and the pinned maps were lost: packets captured before must never be
    /// accepted again, so the session moves to RECOVERING at a new version.
    DataplaneLost = 9,
    /// The next version would have entered the safety margin below `u64::MAX` (spec section 8).
    VersionExhausted = 10,
    /// A nonce entered the safety margin below `u64::MAX` (spec section 8).
    NonceExhausted = 11,
    /// The session was still in BIRTH when the gateway restarted; its handshake cannot resume.
    HandshakeAbandoned = 12,
    /// The session's AEAD keys were replaced by a rekey (docs/rekey.md); ATTACHED to ATTACHED.
    Rekey = 13,
    /// The keys reached their reject-after age or message count without a rekey: the session
    /// ends rather than run on worn-out keys.
    RekeyTimeout = 14,
}

impl Cause {
    /// Every cause, in code order.
    pub const ALL: [Cause; 14] = [
        Self::HandshakeComplete,
        Self::Reattach,
        Self::KeepaliveTimeout,
        Self::IdleTimeout,
        Self::OperatorTerminate,
        Self::ClientClose,
        Self::PolicyTerminate,
        Self::PolicyRecover,
        Self::DataplaneLost,
        Self::VersionExhausted,
        Self::NonceExhausted,
        Self::HandshakeAbandoned,
        Self::Rekey,
        Self::RekeyTimeout,
    ];

    /// The stored code.
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The cause for a stored code, or `None` for a code this version does not know.
    pub fn from_code(code: u8) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.code() == code)
    }

    /// The operator-facing name, as used in logs and `--json` output.
    pub const fn name(self) -> &'static str {
        match self {
            Self::HandshakeComplete => "HANDSHAKE_COMPLETE",
            Self::Reattach => "REATTACH",
            Self::KeepaliveTimeout => "KEEPALIVE_TIMEOUT",
            Self::IdleTimeout => "IDLE_TIMEOUT",
            Self::OperatorTerminate => "OPERATOR_TERMINATE",
            Self::ClientClose => "CLIENT_CLOSE",
            Self::PolicyTerminate => "POLICY_TERMINATE",
            Self::PolicyRecover => "POLICY_RECOVER",
            Self::DataplaneLost => "DATAPLANE_LOST",
            Self::VersionExhausted => "VERSION_EXHAUSTED",
            Self::NonceExhausted => "NONCE_EXHAUSTED",
            Self::HandshakeAbandoned => "HANDSHAKE_ABANDONED",
            Self::Rekey => "REKEY",
            Self::RekeyTimeout => "REKEY_TIMEOUT",
        }
    }
}

/// STATE_CHANGE: one version increment of one session, and its audit record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// The session.
    pub session: SessionId,
    /// State before the increment.
    pub from_state: SessionState,
    /// State after the increment.
    pub to_state: SessionState,
    /// Version before the increment.
    pub from_version: u64,
    /// Version after the increment: always `from_version + 1`.
    pub to_version: u64,
    /// Why.
    pub cause: Cause,
    /// When.
    pub at: Millis,
    /// The transport the session is bound to after the increment (all zero when none: before
    /// the handshake, or in records written before the binding was kept).
    pub binding: TransportBinding,
}

impl std::fmt::Display for StateChange {
    /// The log line of an increment, with both versions (spec section 11).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "session {} {} v{} -> {} v{} ({})",
            self.session,
            self.from_state.name(),
            self.from_version,
            self.to_state.name(),
            self.to_version,
            self.cause.name()
        )
    }
}

/// A refusal or a forced decision, reported as a SECURITY_EVENT or POLICY_EVENT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incident {
    /// The session concerned.
    pub session: SessionId,
    /// The reason code, as in the REJECT reply and the drop counters.
    pub reason: RejectReason,
    /// The session's state_version when it happened.
    pub version: u64,
    /// When.
    pub at: Millis,
    /// What happened, for operators (e.g. the claimed and the current version).
    pub detail: String,
}

/// Everything the machine reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// A version increment (exactly one per increment).
    StateChange(StateChange),
    /// A refusal that points at an attack or a broken peer: stale or jumping versions, replays,
    /// messages to ended sessions.
    Security(Incident),
    /// A refusal or forced transition decided by local policy: operator actions on ended
    /// sessions, exhaustion of the version or nonce space.
    Policy(Incident),
}

impl std::fmt::Display for Incident {
    /// The log line of a refusal: reason, session, version and detail.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} session {} at v{}: {}",
            self.reason.name(),
            self.session,
            self.version,
            self.detail
        )
    }
}

impl SessionEvent {
    /// The event kind as named in the event stream.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::StateChange(_) => "STATE_CHANGE",
            Self::Security(_) => "SECURITY_EVENT",
            Self::Policy(_) => "POLICY_EVENT",
        }
    }

    /// The STATE_CHANGE inside, if this is one.
    pub fn as_state_change(&self) -> Option<&StateChange> {
        match self {
            Self::StateChange(c) => Some(c),
            _ => None,
        }
    }

    /// The incident inside, if this is a SECURITY_EVENT or POLICY_EVENT.
    pub fn as_incident(&self) -> Option<&Incident> {
        match self {
            Self::Security(i) | Self::Policy(i) => Some(i),
            Self::StateChange(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cause_codes_round_trip_and_are_distinct() {
        for (i, c) in Cause::ALL.iter().enumerate() {
            assert_eq!(Cause::from_code(c.code()), Some(*c));
            assert_eq!(usize::from(c.code()), i + 1, "codes follow ALL's order");
        }
        assert_eq!(Cause::from_code(0), None);
        assert_eq!(Cause::from_code(255), None);
    }

    #[test]
    fn section11_the_log_line_of_an_increment_names_both_versions() {
        let change = StateChange {
            session: SessionId::new(0xab).unwrap(),
            from_state: SessionState::Attached,
            to_state: SessionState::Recovering,
            from_version: 1,
            to_version: 2,
            cause: Cause::KeepaliveTimeout,
            at: 0,
            binding: TransportBinding::default(),
        };
        assert_eq!(
            change.to_string(),
            "session 00000000000000ab ATTACHED v1 -> RECOVERING v2 (KEEPALIVE_TIMEOUT)"
        );
    }
}
