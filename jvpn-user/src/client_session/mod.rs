//! The client's session, without the TUN device (that is [`crate::tunnel_client`]): the sans-IO
//! core and its UDP driver, usable on their own by tests, the demo and other front ends.
//!
//! - [`session`]: the sans-IO core, [`ClientSessionState`]: it seals what the client sends and
//!   judges what the gateway sends, with the version rules of [`versions`] (spec sections 5 and
//!   10: track the acknowledged version, refuse lower versions, fail closed on unexpected jumps).
//! - [`event`] and [`refusal`]: what an accepted datagram means, and why one was refused.
//! - [`connection`]: the tokio driver, [`ClientConnection`]: handshake over UDP with retries,
//!   send and receive, the make-before-break jump to a new transport, re-handshake, keepalives.
//! - [`bind`]: where a transport lives ([`LocalBinding`]: an interface, a source address, or any).
//! - [`options`], [`stats`], [`connection_error`]: the driver's timeouts, counters and errors.
//!
//! ```no_run
//! # async fn demo(settings: jvpn_user::config::ClientSettings) -> Result<(), Box<dyn std::error::Error>> {
//! use jvpn_user::client_session::{ClientConnection, ConnectOptions, LocalBinding};
//! let connection = ClientConnection::connect_with_settings(
//!     &settings,
//!     LocalBinding::interface("wifi"),
//!     ConnectOptions::default(),
//! )
//! .await?;
//! connection.send(b"\x45...an IPv4 packet...").await?;
//! let version = connection.jump(LocalBinding::interface("lte")).await?;
//! assert_eq!(version, 2);
//! # Ok(()) }
//! ```

pub mod bind;
mod birth;
mod body;
pub mod connection;
pub mod connection_error;
pub mod event;
pub mod options;
pub mod refusal;
pub mod session;
pub mod stats;
#[cfg(test)]
mod test_gateway;
#[cfg(test)]
mod test_peer;
pub mod versions;

pub use bind::{BindError, LocalBinding};
pub use connection::receive::ReceiveBatch;
pub use connection::ClientConnection;
pub use connection_error::ConnectionError;
pub use event::ClientEvent;
pub use options::ConnectOptions;
pub use refusal::{Ambiguity, Closed, SessionRefusal};
pub use session::{ClientSessionState, ClientSnapshot, Handled};
pub use stats::{ConnectionCounters, Liveness};
pub use versions::PendingReattach;
