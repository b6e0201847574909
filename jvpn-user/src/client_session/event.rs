//! What an accepted gateway datagram means to the client.

use jvpn_common::control::TerminateCause;
use jvpn_common::RejectReason;
use std::net::SocketAddr;

/// The outcome of a gateway datagram the client core accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// One IP packet for the tunnel device.
    Data(Vec<u8>),
    /// The gateway's keepalive; nothing to deliver.
    Keepalive,
    /// The gateway checks the new transport: send `response` (a sealed PATH_RESPONSE) from the
    /// socket the challenge arrived on.
    PathChallenge {
        /// The sealed PATH_RESPONSE datagram.
        response: Vec<u8>,
        /// The challenge's version, which the REATTACH_ACK must exceed by exactly one.
        version: u64,
        /// The reattach attempt the challenge answers.
        attempt: u64,
    },
    /// The reattach committed: the session is at `new_version`, bound to `binding`. Send from the
    /// new transport from now on.
    ReattachAcked {
        /// The acknowledged version from now on.
        new_version: u64,
        /// The transport the gateway bound, as it sees it (after any NAT).
        binding: SocketAddr,
    },
    /// The gateway refused one of this client's messages; the session state did not change.
    Rejected {
        /// Why.
        reason: RejectReason,
        /// The gateway's version of the session.
        gateway_version: u64,
        /// The nonce of the refused client message.
        rejected_nonce: u64,
    },
    /// The gateway refused a copy of one of this client's earlier messages as a replay
    /// (`RejectReason::is_replay`), perhaps sent by someone else: information only. Nothing
    /// changed, and nothing should: no jump is abandoned and no session torn down on it.
    ReplayReported {
        /// DUPLICATE_NONCE or NONCE_TOO_OLD.
        reason: RejectReason,
        /// The gateway's version of the session.
        gateway_version: u64,
        /// The nonce of the refused copy.
        rejected_nonce: u64,
    },
    /// The rekey committed: the session runs on new keys at `new_version` (docs/rekey.md).
    Rekeyed {
        /// The acknowledged version from now on.
        new_version: u64,
    },
    /// The gateway ended the session; the core is closed.
    Terminated {
        /// Why.
        cause: TerminateCause,
    },
}
