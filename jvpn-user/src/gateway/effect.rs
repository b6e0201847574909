//! What the [`Controller`](super::Controller) asks the shell to do: its handlers decide, and
//! return [`Effect`]s instead of performing I/O (boringtun's `TunnResult`, jvpn's own
//! `client_session`). The shell ([`super::executor`]) performs them in order.
//!
//! A compare-and-set is the one effect whose result the controller needs: [`Effect::Commit`]
//! carries a [`CommitToken`] (the transition, the keys and what to do next), and the shell hands
//! the token back with the store's outcome to [`Controller::settle`](super::Controller::settle),
//! which installs a committed record and names its map entry; the shell writes the entry, then
//! [`Controller::reply`](super::Controller::reply) returns the effects that follow (the events,
//! the reply, sealed only then). A step that commits ends with its `Commit`: nothing after it
//! in the same step depends on its outcome.

use super::handshake::HelloJob;
use super::hello_replay::Reservation;
use crate::crypto::SessionKeys;
use crate::events::EventRecord;
use crate::session::Transition;
use crate::store::{CasRequest, Expected};
use jvpn_common::maps::SessionEntry;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;

/// One thing the shell must do for the controller.
#[derive(Debug)]
pub enum Effect {
    /// Send `datagram` to `to` on the gateway socket; a failure is logged (the client retries).
    Send {
        /// The destination.
        to: SocketAddr,
        /// The sealed datagram.
        datagram: Vec<u8>,
    },
    /// Send without waiting for socket space (a COOKIE_REPLY on the receive path): dropped if the
    /// socket buffer is full, since the receive path must never wait for a client under load.
    SendNow {
        /// The destination.
        to: SocketAddr,
        /// The datagram.
        datagram: Vec<u8>,
    },
    /// Write the opened DATA packet at `packet` of the datagram the step was given into the TUN
    /// device (in place: the hot path copies nothing).
    WriteTun {
        /// Where the inner packet lies in the handled datagram.
        packet: Range<usize>,
    },
    /// Run a compare-and-set in the store (through the group committer, so concurrent ones
    /// share a durable commit), then hand its outcome and the token to
    /// [`Controller::settle`](super::Controller::settle), write the map entry it names, and
    /// perform what [`Controller::reply`](super::Controller::reply) returns.
    Commit {
        /// The request to commit (boxed: the largest effect, and the rarest).
        request: Box<CasRequest>,
        /// What the controller continues with.
        token: Box<CommitToken>,
    },
    /// Write a session's entry into the XDP session table (an older version never overwrites a
    /// newer one).
    UpsertMap {
        /// The session id.
        session: u64,
        /// The entry.
        entry: SessionEntry,
    },
    /// Remove a terminated session from the XDP map, then tell
    /// [`Controller::evicted`](super::Controller::evicted) if it went.
    Evict {
        /// The session id.
        session: u64,
    },
    /// Write the HELLO guard (mac1 key, cookie secrets, load flag) into the XDP config map.
    PushHelloGuard {
        /// When it was decided (the guard's push time).
        now: u64,
    },
    /// Publish a record on the event stream.
    Publish(EventRecord),
    /// Queue a screened HELLO for a handshake worker (the DH runs off the receive path).
    QueueHello(HelloJob),
}

/// What the controller continues with once a compare-and-set's outcome is known. Opaque to the
/// shell, which only carries it from [`Effect::Commit`] back to
/// [`Controller::settle`](super::Controller::settle).
pub struct CommitToken {
    pub(super) expected: Expected,
    pub(super) transition: Transition,
    pub(super) keys: Arc<SessionKeys>,
    pub(super) then: Then,
}

impl fmt::Debug for CommitToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys are secret: never printed.
        f.debug_struct("CommitToken")
            .field("expected", &self.expected)
            .field("session", &self.transition.session.id)
            .field("version", &self.transition.session.state_version)
            .field("then", &self.then)
            .finish_non_exhaustive()
    }
}

/// The reply a committed (or refused) transition owes.
#[derive(Debug)]
pub(super) enum Then {
    /// Nothing (timers, TERMINATE, the operator, a nonce observation).
    Nothing,
    /// A validated path: REATTACH_ACK on commit, a REJECT (within budget) otherwise.
    ReattachAck {
        /// The session.
        id: u64,
        /// Where the PATH_RESPONSE came from.
        to: SocketAddr,
        /// The version the session had when the response arrived.
        version: u64,
        /// The PATH_RESPONSE's nonce, named in a REJECT.
        nonce: u64,
    },
    /// A rekey: the REKEY_ACK (sealed before the commit) on commit, a REJECT otherwise
    /// ([`super::rekey`]).
    RekeyAck {
        /// The session.
        id: u64,
        /// Where the REKEY_INIT came from.
        to: SocketAddr,
        /// The version the session had when it arrived.
        version: u64,
        /// The REKEY_INIT's nonce, named in a REJECT.
        nonce: u64,
        /// The sealed REKEY_ACK.
        datagram: Vec<u8>,
    },
    /// Worn-out keys ended the session: tell the client why ([`super::rekey`]).
    WornOut {
        /// The session.
        id: u64,
    },
    /// A new session: commit the HELLO reservation and send the WELCOME.
    Welcome {
        /// The new session.
        session: u64,
        /// The client's address.
        to: SocketAddr,
        /// The sealed WELCOME.
        datagram: Vec<u8>,
        /// The HELLO timestamp reservation to commit.
        reservation: Reservation,
        /// The client's configured name (logged).
        client: String,
        /// The config the HELLO was read under: a reload since is checked
        /// ([`Controller::recheck_after_reload`](super::Controller::recheck_after_reload)).
        settings: Arc<crate::config::GatewaySettings>,
    },
    /// A session revoked by a reload: on commit, the client is sent a sealed TERMINATE
    /// (`CLIENT_REMOVED`) at the new version.
    ClientRemoved {
        /// The session.
        id: u64,
    },
}

impl CommitToken {
    /// The cause of the transition's first state change, for crash injection
    /// ([`super::fault::AFTER_CAS`]).
    pub fn cause(&self) -> &'static str {
        self.transition
            .events
            .iter()
            .find_map(crate::session::SessionEvent::as_state_change)
            .map_or("", |c| c.cause.name())
    }
}
