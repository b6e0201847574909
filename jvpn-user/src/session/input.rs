//! What can happen to a session: the inputs of the state machine.
//!
//! Inputs are facts the controller has already established (a handshake verified, a new path
//! validated, a timer read): the machine decides what they mean for the session's state and
//! version, and nothing else. Authentication and path validation happen before an input exists.

use super::event::Cause;
use super::state::Millis;
use crate::crypto::Secret;
use jvpn_common::abi::HEADER_KEY_LEN;
use jvpn_common::maps::TransportBinding;

/// One input of the session state machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// The Noise handshake verified: bind the first transport and install the keys it derived.
    /// BIRTH v0 becomes ATTACHED v1.
    HandshakeComplete {
        /// The transport the HELLO came from.
        binding: TransportBinding,
        /// The client-to-gateway header tag key derived by the handshake (the XDP map's).
        header_key: Secret<[u8; HEADER_KEY_LEN]>,
        /// The AEAD keys derived by the handshake, opaque here.
        secrets: Secret<Vec<u8>>,
    },
    /// Authenticated traffic was seen at `at`. Telemetry: updates `last_rx`, never the version.
    Traffic {
        /// When the traffic was seen.
        at: Millis,
    },
    /// The highest nonce seen in either direction. Telemetry, unless it entered the safety margin
    /// below `u64::MAX`, which ends the session (spec section 8).
    NonceObserved {
        /// The highest nonce seen.
        highest: u64,
    },
    /// Time passed: apply the keepalive and idle timeouts as of `now`.
    Tick,
    /// A REATTACH_REQUEST whose seal verified and whose new path returned its PATH_CHALLENGE.
    ReattachValidated {
        /// The client's last acknowledged version, from the request.
        claimed_version: u64,
        /// The validated transport to move to.
        new_binding: TransportBinding,
    },
    /// A REKEY_INIT whose seal and key exchange verified (`crypto::rekey`): install the new keys.
    /// ATTACHED at `claimed_version` becomes ATTACHED at the next version (docs/rekey.md).
    Rekey {
        /// The client's acknowledged version, from the request; it must be the current one.
        claimed_version: u64,
        /// The new keys (header and AEAD keys of both directions, as the store keeps them).
        secrets: Secret<Vec<u8>>,
    },
    /// End the session.
    Terminate {
        /// Who ended it.
        cause: TerminateCause,
    },
    /// Force an explicit move to RECOVERING (spec section 3, "policy forces explicit state
    /// transition"); a session still in BIRTH cannot recover and ends instead.
    ForceRecover {
        /// Why.
        cause: RecoverCause,
    },
}

/// Who ends a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TerminateCause {
    /// An operator (`jvpn sessions terminate`).
    Operator,
    /// The client, by an authenticated close.
    Client,
    /// A local policy.
    Policy,
    /// The gateway-to-client nonce counter of this run's epoch is nearly spent; a nonce must
    /// never carry into the next epoch's range (rekeying would keep the session; not yet).
    NonceExhausted,
    /// The keys reached their reject-after age or message count without a rekey
    /// (docs/rekey.md).
    RekeyTimeout,
}

/// Why a session is forced to RECOVERING.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecoverCause {
    /// The gateway restarted without its pinned maps.
    DataplaneLost,
    /// A local policy.
    Policy,
}

impl From<TerminateCause> for Cause {
    fn from(c: TerminateCause) -> Self {
        match c {
            TerminateCause::Operator => Cause::OperatorTerminate,
            TerminateCause::Client => Cause::ClientClose,
            TerminateCause::Policy => Cause::PolicyTerminate,
            TerminateCause::NonceExhausted => Cause::NonceExhausted,
            TerminateCause::RekeyTimeout => Cause::RekeyTimeout,
        }
    }
}

impl From<RecoverCause> for Cause {
    fn from(c: RecoverCause) -> Self {
        match c {
            RecoverCause::DataplaneLost => Cause::DataplaneLost,
            RecoverCause::Policy => Cause::PolicyRecover,
        }
    }
}
