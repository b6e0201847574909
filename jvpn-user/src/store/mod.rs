//! The durable session store: the gateway's single source of truth about sessions.
//!
//! [`SessionStore`] has one mutating operation, compare-and-set on `(session id, expected
//! version)` (spec section 4), and the STATE_CHANGE audit records of the increments it writes are
//! committed in the same transaction (section 11): a version without its audit record cannot exist.
//! Creating a session is a compare-and-set from [`Expected::Absent`]; it also records the id as
//! issued, in the same transaction, and refuses any id issued before, so ids are never reused and no
//! second mutating operation ("reserve an id") is needed. The id is only shown to the client after
//! that commit.
//!
//! - [`redb`]: the embedded default, [`RedbStore`], in a state directory.
//! - [`etcd`]: [`EtcdStore`], the clustered store shared by gateway nodes (`--store etcd://...`).
//! - [`cluster`]: [`ClusterMembership`], what a clustered store adds for the gateway.
//! - [`codec`]: the byte layout of stored records.
//! - [`group`]: [`GroupCommitter`], which batches concurrent CASes into one durable commit.
//! - [`private`]: the state directory's modes (0700, files 0600): it holds session keys.
//! - [`validate`]: the checks every CAS request passes before it may be written.

pub mod cluster;
pub mod codec;
pub mod etcd;
pub mod group;
pub mod private;
pub mod redb;
pub mod validate;

#[cfg(test)]
mod ops_tests;
#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod secret_tests;
#[cfg(test)]
mod tests;

use crate::session::{Session, SessionId, StateChange, Transition};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use self::etcd::EtcdStore;
pub use self::redb::RedbStore;
pub use cluster::ClusterMembership;
pub use codec::CodecError;
pub use group::{CasTicket, GroupCommitter};
pub use validate::MutationRefused;

/// The session store `jvpn gateway` uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreChoice {
    /// The embedded store in the state directory (the default).
    Embedded,
    /// An etcd cluster shared with other gateways: its members' `host:port`.
    Etcd(Vec<String>),
}

/// Where the gateway keeps its store unless told otherwise (`--state-dir`).
pub const DEFAULT_STATE_DIR: &str = "/var/lib/jvpn";

/// What the caller believes the stored session is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// No session with this id was ever issued: the CAS creates it.
    Absent,
    /// The session is stored at this version.
    Version(u64),
}

/// One compare-and-set: the session to write, what must be stored for it to be written, and the
/// STATE_CHANGE records of the increments from the expected version to the new one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CasRequest {
    /// What must be stored now.
    pub expected: Expected,
    /// The session to store; its id names the record.
    pub session: Session,
    /// One STATE_CHANGE per increment, in order, from the expected version (0 and BIRTH for
    /// [`Expected::Absent`]) to `session.state_version`.
    pub audit: Vec<StateChange>,
}

impl CasRequest {
    /// The request that persists `after`, derived by the machine from a session stored at
    /// `expected`, with the machine's STATE_CHANGE events as audit.
    pub fn new(expected: Expected, after: Session, audit: Vec<StateChange>) -> Self {
        Self {
            expected,
            session: after,
            audit,
        }
    }

    /// The request that persists a [`Transition`] of a session stored as `expected`.
    pub fn from_transition(expected: Expected, transition: Transition) -> Self {
        let audit = transition.state_changes();
        Self::new(expected, transition.session, audit)
    }
}

/// The result of a compare-and-set that ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    /// Written, with its audit records, durably.
    Committed,
    /// The stored session is not at the expected version: another mutation won (reject with
    /// `CONCURRENT_MUTATION`). `current` is what is stored now, `None` if nothing is.
    Conflict {
        /// The stored session, if any.
        current: Option<Session>,
    },
    /// A creation named an id this gateway issued before; draw another id.
    IdAlreadyIssued,
}

/// Why the store could not do what was asked. Each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory cannot be created or written.
    #[error("state dir {dir} is not usable ({source}); pass --state-dir DIR or run as root")]
    StateDirUnusable {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The state directory or a file in it cannot be made private.
    #[error(transparent)]
    Private(#[from] private::PrivacyError),
    /// Another process holds the store.
    #[error(
        "store {path} is locked by another jvpn gateway{}; stop it (`jvpn status` names it) or pass another --state-dir",
        owner.map(|pid| format!(" (pid {pid})")).unwrap_or_default()
    )]
    Locked {
        /// The store file.
        path: PathBuf,
        /// The pid that last opened it, if it recorded one.
        owner: Option<u32>,
    },
    /// The store was written by an incompatible version of jvpn.
    #[error(
        "store {path} has format {found}, this jvpn reads format {supported}; run the jvpn that wrote it, or move the file aside to start empty"
    )]
    IncompatibleFormat {
        /// The store file.
        path: PathBuf,
        /// The format found.
        found: u64,
        /// The format this build reads and writes.
        supported: u64,
    },
    /// An operation of the embedded database failed.
    #[error(
        "store {path}: {op} failed: {source}; check free space and permissions of the state dir"
    )]
    Database {
        /// The store file.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// redb's error.
        source: Box<::redb::Error>,
    },
    /// A stored record does not decode.
    #[error(
        "store {path}: record {key} is corrupt ({source}); move the file aside and restart (clients re-handshake)"
    )]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// Which record.
        key: String,
        /// What is wrong with it.
        source: CodecError,
    },
    /// The request itself is invalid: a controller bug, never an expected race.
    #[error("compare-and-set on session {id} refused: {source}")]
    Refused {
        /// The session.
        id: SessionId,
        /// What is wrong with the request.
        source: MutationRefused,
    },
    /// The group commit that carried this request failed as a whole.
    #[error("the group commit carrying this compare-and-set failed: {0}")]
    GroupCommit(Arc<StoreError>),
    /// The group committer is gone (the gateway is stopping).
    #[error("the store's group committer has stopped; the gateway is shutting down")]
    CommitterStopped,
    /// An etcd request failed.
    #[error("etcd store: {op} failed: {source}; check that a majority of the etcd members in --store is reachable from this node")]
    Etcd {
        /// What was being done.
        op: &'static str,
        /// The client's error.
        source: Box<etcd_client::Error>,
    },
    /// An etcd request did not answer in time.
    #[error("etcd store: {op} got no answer within {after:?}; check that a majority of the etcd members in --store is reachable from this node")]
    EtcdTimeout {
        /// What was being done.
        op: &'static str,
        /// The time it was given.
        after: Duration,
    },
    /// The store's own runtime could not start or has stopped.
    #[error("etcd store: its I/O thread {0}; restart the gateway")]
    EtcdRuntime(String),
    /// A record in etcd does not unseal or decode.
    #[error("etcd store: record {key} is unreadable: {source}")]
    EtcdRecord {
        /// The etcd key.
        key: String,
        /// What is wrong with it.
        source: etcd::RecordError,
    },
    /// This node cannot prove it owns its sessions (its lease ran out or etcd refused it): it
    /// accepts no mutation until it can (REJECT `OWNERSHIP_AMBIGUOUS`).
    #[error("node {node}: ownership of its sessions is ambiguous ({why}); no mutation is accepted until its etcd lease is renewed; check this node's link to the etcd members")]
    OwnershipAmbiguous {
        /// This node.
        node: u16,
        /// What showed it.
        why: &'static str,
    },
    /// A compare-and-set got no answer and re-reading the store did not settle whether it was
    /// applied. Nothing acts on the session until a later re-read does.
    #[error("the outcome of the compare-and-set on session {id} is unknown (etcd did not answer and re-reads did not settle it); the session is re-read before its next mutation")]
    OutcomeUnknown {
        /// The (first) session of the request.
        id: SessionId,
    },
}

impl StoreError {
    /// The REJECT reason a client gets when its mutation failed with this error, if any: a node
    /// that cannot reach its cluster's quorum or prove its lease cannot tell who owns the
    /// session, so it refuses with `OWNERSHIP_AMBIGUOUS` (spec section 7) rather than guess.
    pub fn reject_reason(&self) -> Option<jvpn_common::reason::RejectReason> {
        match self {
            Self::OwnershipAmbiguous { .. }
            | Self::OutcomeUnknown { .. }
            | Self::Etcd { .. }
            | Self::EtcdTimeout { .. } => {
                Some(jvpn_common::reason::RejectReason::OwnershipAmbiguous)
            }
            Self::GroupCommit(cause) => cause.reject_reason(),
            _ => None,
        }
    }
}

/// Per-item result of a batch: an outcome, or the reason the item was refused unwritten.
pub type BatchItem = Result<CasOutcome, MutationRefused>;

/// The authoritative session store. Thread-safe; every mutation is a compare-and-set.
pub trait SessionStore: Send + Sync {
    /// Writes `new` (and `audit`) iff the stored state of `id` is `expected`, in one durable
    /// transaction. A request that does not increase the version, whose audit records do not
    /// chain from the expected version to the new one, or that mutates a TERMINATED session is
    /// refused with [`StoreError::Refused`] and writes nothing.
    fn compare_and_set(
        &self,
        id: SessionId,
        expected: Expected,
        new: &Session,
        audit: &[StateChange],
    ) -> Result<CasOutcome, StoreError>;

    /// Runs `batch` in order in one durable transaction (group commit): a later item sees the
    /// writes of earlier ones. Returns one result per item; an `Err` means nothing was written.
    fn compare_and_set_batch(&self, batch: &[CasRequest]) -> Result<Vec<BatchItem>, StoreError>;

    /// The stored session, if any.
    fn get(&self, id: SessionId) -> Result<Option<Session>, StoreError>;

    /// Every stored session, in id order.
    fn list(&self) -> Result<Vec<Session>, StoreError>;

    /// The session's whole history: its STATE_CHANGE records in version order.
    fn audit(&self, id: SessionId) -> Result<Vec<StateChange>, StoreError>;

    /// Whether `id` was ever issued on this gateway (even if its record is gone).
    fn is_issued(&self, id: SessionId) -> Result<bool, StoreError>;

    /// The cluster this store is shared by, if it is: a standalone store has none.
    fn cluster(&self) -> Option<&dyn ClusterMembership> {
        None
    }

    /// Most requests one [`SessionStore::compare_and_set_batch`] should carry (a group
    /// committer cuts its batches to this). Unbounded unless the backend says otherwise.
    fn max_batch(&self) -> usize {
        usize::MAX
    }
}
