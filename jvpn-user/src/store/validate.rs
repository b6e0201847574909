//! The checks a compare-and-set request passes before it may be written, whatever the backend.
//!
//! They make the store enforce the versioning contract on its own rather than trust the
//! controller: a version only goes up (spec section 9), each increment carries exactly its
//! STATE_CHANGE record (section 11), an ended session never changes, and nothing but a
//! termination passes the version ceiling (section 8).

use crate::session::{Session, SessionId, StateChange, VERSION_CEILING};
use jvpn_common::maps::SessionState;

/// Most bytes of opaque key material a session may carry.
pub const MAX_SECRETS_LEN: usize = u16::MAX as usize;

/// Why a compare-and-set request is invalid. These are controller bugs, not races: a lost race is
/// [`super::CasOutcome::Conflict`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MutationRefused {
    /// The record's id is not the id the request names.
    #[error("the record carries id {record}, not the id the request names")]
    IdMismatch {
        /// The id inside the record.
        record: SessionId,
    },
    /// The new version does not increase the stored one (a creation may start at 0 in BIRTH).
    #[error("version {new} does not increase the stored version {current}")]
    NotAnIncrement {
        /// The stored (or, for a creation, initial) version.
        current: u64,
        /// The version the request writes.
        new: u64,
    },
    /// A creation at version 0 must be in BIRTH.
    #[error("a session created at version 0 must be in BIRTH, not {0}")]
    BornOutsideBirth(&'static str),
    /// The audit does not have one record per increment.
    #[error("{given} STATE_CHANGE records for {increments} increments")]
    AuditCount {
        /// Increments the request makes.
        increments: u64,
        /// Records it carries.
        given: usize,
    },
    /// An audit record does not continue the chain from the stored state to the new one.
    #[error("STATE_CHANGE record {index} does not continue the chain from the stored state")]
    AuditChain {
        /// Position of the first record that does not fit.
        index: usize,
    },
    /// The stored session is TERMINATED.
    #[error("the session is TERMINATED; an ended session never changes")]
    AfterTermination,
    /// A live session past the ceiling (spec section 8: it must have been terminated).
    #[error("version {0} passes the ceiling for a session that is not TERMINATED")]
    PastCeiling(u64),
    /// More key material than a record holds.
    #[error("{0} bytes of secrets; a session holds at most {MAX_SECRETS_LEN}")]
    SecretsTooLong(usize),
}

/// Checks that writing `new` with `audit` over `stored` (`None`: a creation) is a valid mutation
/// of session `id`. Whether `stored` is at the expected version is the caller's compare.
pub fn check(
    id: SessionId,
    stored: Option<&Session>,
    new: &Session,
    audit: &[StateChange],
) -> Result<(), MutationRefused> {
    if new.id != id {
        return Err(MutationRefused::IdMismatch { record: new.id });
    }
    if new.secrets.len() > MAX_SECRETS_LEN {
        return Err(MutationRefused::SecretsTooLong(new.secrets.len()));
    }
    let (base_state, base_version) = match stored {
        Some(s) if s.state == SessionState::Terminated => {
            return Err(MutationRefused::AfterTermination)
        }
        Some(s) => (s.state, s.state_version),
        None => (SessionState::Birth, 0),
    };
    let is_birth_record = stored.is_none() && new.state_version == 0;
    if is_birth_record && new.state != SessionState::Birth {
        return Err(MutationRefused::BornOutsideBirth(new.state.name()));
    }
    if new.state_version <= base_version && !is_birth_record {
        return Err(MutationRefused::NotAnIncrement {
            current: base_version,
            new: new.state_version,
        });
    }
    if new.state_version > VERSION_CEILING && new.state != SessionState::Terminated {
        return Err(MutationRefused::PastCeiling(new.state_version));
    }
    let increments = new.state_version - base_version;
    if increments != audit.len() as u64 {
        return Err(MutationRefused::AuditCount {
            increments,
            given: audit.len(),
        });
    }
    let (mut state, mut version) = (base_state, base_version);
    for (index, record) in audit.iter().enumerate() {
        let continues = record.session == id
            && record.from_state == state
            && state != SessionState::Terminated
            && record.from_version == version
            && record.to_version == version + 1;
        if !continues {
            return Err(MutationRefused::AuditChain { index });
        }
        (state, version) = (record.to_state, record.to_version);
    }
    if state != new.state {
        return Err(MutationRefused::AuditChain {
            index: audit.len().saturating_sub(1),
        });
    }
    Ok(())
}
