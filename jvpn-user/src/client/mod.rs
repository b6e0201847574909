//! The client library: the session logic of `jvpn client` without the TUN device, usable on its
//! own by tests, the demo and other front ends.
//!
//! - [`session`]: the sans-IO core, [`ClientSessionState`]: it seals what the client sends and
//!   judges what the gateway sends, with the version rules of [`versions`] (spec sections 5 and
//!   10: track the acknowledged version, refuse lower versions, fail closed on unexpected jumps).
//! - [`event`] and [`error`]: what an accepted datagram means, and why one was refused.

mod body;
pub mod error;
pub mod event;
pub mod session;
#[cfg(test)]
mod test_gateway;
pub mod versions;

pub use error::{Ambiguity, ClientError, Closed};
pub use event::ClientEvent;
pub use session::{ClientSessionState, ClientSnapshot};
pub use versions::PendingReattach;
