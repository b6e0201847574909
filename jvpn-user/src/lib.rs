//! jvpn userspace: the dataplane loader, and (to come) the gateway controller, client and CLI.
#![deny(missing_docs)]
pub mod accept;
pub mod cli;
pub mod client_session;
pub mod config;
pub mod control;
pub mod crypto;
pub mod dataplane;
pub mod events;
pub mod gateway;
pub mod metrics;
pub mod session;
pub mod socket_buffers;
pub mod store;
pub mod tun;
pub mod tunnel_client;
