//! Sessions as the gateway controller sees them: ids, the record, the inputs, the events, and the
//! pure state machine that turns one into the next.
//!
//! - [`id`]: random 64-bit session ids with an owner node, never 0.
//! - [`state`]: the [`Session`] record, [`Millis`] and the [`Timers`].
//! - [`input`]: what can happen to a session ([`Input`]).
//! - [`event`]: STATE_CHANGE, SECURITY_EVENT and POLICY_EVENT ([`SessionEvent`]).
//! - [`machine`]: `(session, input, now) -> Result<Transition, Reject>` ([`SessionMachine`]).
//!
//! Nothing here does I/O: the controller persists each [`Transition`] through
//! [`crate::store::SessionStore::compare_and_set`] and pushes the result into the XDP maps.

pub mod event;
pub mod id;
pub mod input;
pub mod machine;
pub mod state;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod spec_tests;

pub use event::{Cause, Incident, SessionEvent, StateChange};
pub use id::{NodeId, SessionId, SessionIdError, ShownId};
pub use input::{Input, RecoverCause, TerminateCause};
pub use machine::{Reject, SessionMachine, Transition, NONCE_CEILING, VERSION_CEILING};
pub use state::{Millis, Session, Timers, TimersError, CLIENT_KEY_LEN};
