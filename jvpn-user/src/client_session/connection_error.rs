//! Why the client driver could not connect, send, receive or jump, and what to do next.

use super::bind::BindError;
use super::refusal::SessionRefusal;
use crate::crypto::HandshakeError;
use jvpn_common::control::TerminateCause;
use jvpn_common::RejectReason;
use std::io;
use std::net::SocketAddr;

/// Why a [`super::ClientConnection`] operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The gateway's name did not resolve.
    #[error("cannot resolve gateway {host}: {source}; check the name and DNS")]
    Resolve {
        /// The name.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The gateway's name resolved to no usable address.
    #[error("gateway {host} resolved to no address of the local binding's IP family")]
    NoAddress {
        /// The name.
        host: String,
    },
    /// A transport could not be opened.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// A socket operation failed.
    #[error("cannot {operation}: {source}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The kernel's error.
        #[source]
        source: io::Error,
    },
    /// The handshake could not start (a key the Noise library refuses).
    #[error("cannot start the handshake: {0}")]
    Handshake(#[from] HandshakeError),
    /// No WELCOME came back.
    #[error("no WELCOME from gateway {gateway} after {attempts} HELLOs; check the address and port, that the gateway runs and its firewall passes UDP, and that each side has the other's public key and the same pre-shared key")]
    HandshakeTimedOut {
        /// The gateway.
        gateway: SocketAddr,
        /// HELLOs sent.
        attempts: u32,
    },
    /// The session core refused; when [`SessionRefusal::is_fatal`], the session is over.
    #[error(transparent)]
    Session(#[from] SessionRefusal),
    /// No REATTACH_ACK came back; the old transport stays in use.
    #[error("no REATTACH_ACK for the jump to {binding} after {attempts} requests; the old transport stays in use; check the new uplink's route to the gateway")]
    ReattachTimedOut {
        /// Where the new transport was.
        binding: String,
        /// REATTACH_REQUESTs sent.
        attempts: u32,
    },
    /// The gateway refused the jump; the old transport stays in use.
    #[error("the gateway rejected the jump to {binding} with {} at state_version {gateway_version}; start a new handshake (`rehandshake`)", reason.name())]
    ReattachRejected {
        /// Where the new transport was.
        binding: String,
        /// The gateway's reason.
        reason: RejectReason,
        /// The gateway's version.
        gateway_version: u64,
    },
    /// The gateway ended the session.
    #[error("terminated by the gateway: {}; connect again", super::refusal::cause_text(*cause))]
    Terminated {
        /// Why.
        cause: TerminateCause,
    },
}

impl ConnectionError {
    /// Whether the session is over (or, for a rejected jump, cannot be trusted to go on): start a
    /// new handshake with [`super::ClientConnection::rehandshake`] or a new connection.
    pub fn needs_rehandshake(&self) -> bool {
        match self {
            Self::Session(e) => e.is_fatal(),
            Self::HandshakeTimedOut { .. }
            | Self::ReattachRejected { .. }
            | Self::Terminated { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(operation: &'static str) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io { operation, source }
    }
}
