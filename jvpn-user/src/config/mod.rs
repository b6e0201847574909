//! Configuration files and key files: `/etc/jvpn/gateway.toml`, the client's config, and what
//! `jvpn keygen` writes.
//!
//! Both config files are read in two stages: the TOML is deserialized into a raw struct whose every
//! value remembers its place in the file, then validated into [`GatewaySettings`] or
//! [`ClientSettings`]. Any problem is a [`ConfigError`] naming the file, the line and column, what
//! is wrong and what to do about it.
//!
//! - [`gateway`]: the gateway's file, its clients and their tunnel addresses (cryptokey routing).
//! - [`client`]: the client's file, and the same settings from the command line.
//! - [`keyfile`]: `jvpn keygen` and the 0600 key files.
//! - [`source`]: located errors and the helpers both files share.

pub mod client;
pub mod gateway;
pub mod keyfile;
pub mod source;

pub use client::{ClientArgsError, ClientSettings};
pub use gateway::{ClientEntry, GatewaySettings, Timeouts, TunnelNetworks, DEFAULT_GATEWAY_CONFIG};
pub use keyfile::{genpsk, keygen, read_private_key_file, read_psk_file, KeyFileError};
pub use source::ConfigError;
