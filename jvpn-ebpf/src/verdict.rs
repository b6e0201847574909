//! What the rules decide about a packet: a verdict for what passes, a refusal with its reason and
//! the packet's identifying fields for what is dropped.

use jvpn_common::{RejectReason, TransportBinding, WireHeader};

/// Why a packet passes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not jvpn traffic (or no port configured): passed untouched and uncounted.
    NotJvpn,
    /// DATA or KEEPALIVE that passed every rule.
    Accepted,
    /// HELLO or a control message for the controller, which alone decides on it.
    ToController,
}

/// The identifying fields of a refused packet, as far as they could be read, for its event.
#[derive(Clone, Copy)]
pub struct Seen {
    /// Source address (IPv4-mapped for IPv4) and port.
    pub source: TransportBinding,
    /// The header's message type byte, 0 if the header was not read.
    pub msg_type: u8,
    /// The header's session id.
    pub session_id: u64,
    /// The header's state_version.
    pub state_version: u64,
    /// The header's nonce.
    pub nonce: u64,
}

impl Seen {
    /// What is known before the jvpn header is read.
    #[inline(always)]
    pub fn source(source: TransportBinding) -> Self {
        Self {
            source,
            msg_type: 0,
            session_id: 0,
            state_version: 0,
            nonce: 0,
        }
    }

    /// Adds the (not yet validated) header fields.
    #[inline(always)]
    pub fn header(mut self, header: &WireHeader) -> Self {
        self.msg_type = header.msg_type;
        self.session_id = header.session_id.get();
        self.state_version = header.state_version.get();
        self.nonce = header.nonce.get();
        self
    }

    /// The refusal of this packet for `reason`.
    #[inline(always)]
    pub fn refuse(self, reason: RejectReason) -> Refusal {
        Refusal { reason, seen: self }
    }
}

/// A packet the rules refuse.
#[derive(Clone, Copy)]
pub struct Refusal {
    /// The first rule it broke.
    pub reason: RejectReason,
    /// What it claimed to be.
    pub seen: Seen,
}
