//! The client's config file: the raw TOML and the validated [`ClientSettings`].
//!
//! ```toml
//! gateway = "vpn.example.net:51900"     # host:port of the gateway ([v6]:port for IPv6; port
//!                                       # defaults to 51900)
//! gateway_public_key = "<base64>"       # `jvpn keygen` printed it on the gateway
//! private_key_file = "client.key"       # or private_key = "<base64>"; made by `jvpn keygen`
//! psk_file = "psk"                      # or psk = "<base64>"; the gateway's for this client
//!                                       # (none: the all-zero key, as in WireGuard)
//! tun = "jvpn0"                         # tunnel device (optional)
//! rekey_after_ms = 120000               # rekey keys this old (optional; default 120 s)
//! rekey_after_messages = 1152921504606846976  # or that sealed this many messages (2^60)
//! ```
//!
//! Key file paths are relative to the config file's directory. The same settings can come from the
//! command line instead; [`ClientSettings::from_parts`] validates those.

use super::keyfile::{self, KeyFileError};
use super::source::{ConfigError, Source};
use crate::crypto::handshake::ClientIdentity;
use crate::crypto::keys::{KeyParseError, PresharedKey, PrivateKey, PublicKey};
use crate::crypto::SecretText;
use crate::iface::{check_interface_name, InterfaceNameError};
use jvpn_common::abi::DEFAULT_PORT;
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

/// The client config file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClientConfig {
    gateway: Spanned<String>,
    gateway_public_key: Spanned<String>,
    private_key: Option<Spanned<SecretText>>,
    private_key_file: Option<Spanned<String>>,
    psk: Option<Spanned<SecretText>>,
    psk_file: Option<Spanned<String>>,
    tun: Option<Spanned<String>>,
    rekey_after_ms: Option<Spanned<u64>>,
    rekey_after_messages: Option<Spanned<u64>>,
}

/// Why a `host:port` text is not a gateway address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GatewayAddressError {
    /// No host.
    #[error(
        "has no host; write it as host:port, e.g. vpn.example.net:51900 or [2001:db8::1]:51900"
    )]
    NoHost,
    /// The port is not a number from 1 to 65535.
    #[error("has port {0:?}, which is not a number from 1 to 65535")]
    BadPort(String),
    /// An IPv6 address without brackets, or an unclosed bracket.
    #[error("is ambiguous; put an IPv6 address in brackets: [2001:db8::1]:51900")]
    Brackets,
    /// The host has whitespace or a bracket in it, so it names no host and would not read back.
    #[error(
        "has host {0:?}, which holds whitespace or a bracket; write a host name or an address"
    )]
    BadHost(String),
}

/// Splits `host[:port]` (`[v6]:port` for IPv6 literals) into host and port (default 51900).
pub fn parse_gateway_address(text: &str) -> Result<(String, u16), GatewayAddressError> {
    let text = text.trim();
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(GatewayAddressError::Brackets)?;
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or(GatewayAddressError::Brackets)?,
                ),
            ),
        }
    } else {
        match text.split_once(':') {
            Some((_, rest)) if rest.contains(':') => return Err(GatewayAddressError::Brackets),
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(GatewayAddressError::NoHost);
    }
    if host.contains(|c: char| c.is_whitespace() || c == '[' || c == ']') {
        return Err(GatewayAddressError::BadHost(host.to_owned()));
    }
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| GatewayAddressError::BadPort(p.to_owned()))?,
    };
    Ok((host.to_owned(), port))
}

/// Why client settings given on the command line were refused.
#[derive(Debug, thiserror::Error)]
pub enum ClientArgsError {
    /// `--gateway` is not `host:port`.
    #[error("--gateway {0:?} {1}")]
    Gateway(String, GatewayAddressError),
    /// `--gateway-public-key` is not a key.
    #[error("--gateway-public-key {0}")]
    GatewayPublicKey(KeyParseError),
    /// A key file could not be used.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// `--tun` is not an interface name.
    #[error("--tun {0}")]
    Tun(#[source] InterfaceNameError),
}

/// The validated client configuration.
#[derive(Clone, Debug)]
pub struct ClientSettings {
    /// The gateway's host name or address (no brackets).
    pub gateway_host: String,
    /// The gateway's UDP port.
    pub gateway_port: u16,
    /// The gateway's static public key.
    pub gateway_public_key: PublicKey,
    /// The client's static private key.
    pub private_key: PrivateKey,
    /// The pre-shared key.
    pub psk: PresharedKey,
    /// The tunnel device's name, if configured.
    pub tun: Option<String>,
    /// Rekey keys this old, if configured (docs/rekey.md).
    pub rekey_after: Option<std::time::Duration>,
    /// Rekey keys that sealed this many messages, if configured.
    pub rekey_after_messages: Option<u64>,
}

impl ClientSettings {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = Source::read(path)?;
        Self::parse(path, &text)
    }

    /// Validates config `text`; `path` names it in errors and anchors relative key file paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let source = Source { path, text };
        let raw: RawClientConfig = source.parse()?;
        let (gateway_host, gateway_port) =
            parse_gateway_address(raw.gateway.get_ref()).map_err(|e| {
                source.at(
                    &raw.gateway,
                    format!("gateway {:?} {e}", raw.gateway.get_ref()),
                )
            })?;
        let gateway_public_key = PublicKey::from_base64(raw.gateway_public_key.get_ref())
            .map_err(|e| source.at(&raw.gateway_public_key, format!("gateway_public_key {e}")))?;
        let private_key = source
            .private_key("private_key", &raw.private_key, &raw.private_key_file)?
            .ok_or_else(|| {
                source.error(
                    0..0,
                    "no client private key: set private_key_file = \"FILE\" (create it with \
                     `jvpn keygen`) or private_key = \"<base64>\"",
                )
            })?;
        let psk = source
            .psk("psk", &raw.psk, &raw.psk_file)?
            .unwrap_or_else(PresharedKey::none);
        let tun = raw
            .tun
            .as_ref()
            .map(|tun| source.interface_name("tun", tun))
            .transpose()?;
        let at_least_one = |field: &Option<Spanned<u64>>, name: &str| match field {
            Some(v) if *v.get_ref() == 0 => Err(source.at(v, format!("{name} must be at least 1"))),
            Some(v) => Ok(Some(*v.get_ref())),
            None => Ok(None),
        };
        let rekey_after = at_least_one(&raw.rekey_after_ms, "rekey_after_ms")?
            .map(std::time::Duration::from_millis);
        let rekey_after_messages = at_least_one(&raw.rekey_after_messages, "rekey_after_messages")?;
        Ok(Self {
            gateway_host,
            gateway_port,
            gateway_public_key,
            private_key,
            psk,
            tun,
            rekey_after,
            rekey_after_messages,
        })
    }

    /// Validates settings given on the command line (`--gateway`, `--gateway-public-key`, `--key`,
    /// `--psk`, `--tun`).
    pub fn from_parts(
        gateway: &str,
        gateway_public_key: &str,
        private_key_file: &Path,
        psk_file: Option<&Path>,
        tun: Option<&str>,
    ) -> Result<Self, ClientArgsError> {
        let (gateway_host, gateway_port) = parse_gateway_address(gateway)
            .map_err(|e| ClientArgsError::Gateway(gateway.to_owned(), e))?;
        let gateway_public_key = PublicKey::from_base64(gateway_public_key)
            .map_err(ClientArgsError::GatewayPublicKey)?;
        let private_key = keyfile::read_private_key_file(private_key_file)?;
        let psk = match psk_file {
            Some(path) => keyfile::read_psk_file(path)?,
            None => PresharedKey::none(),
        };
        if let Some(tun) = tun {
            check_interface_name(tun).map_err(ClientArgsError::Tun)?;
        }
        Ok(Self {
            gateway_host,
            gateway_port,
            gateway_public_key,
            private_key,
            psk,
            tun: tun.map(str::to_owned),
            rekey_after: None,
            rekey_after_messages: None,
        })
    }

    /// What the handshake needs.
    pub fn identity(&self) -> ClientIdentity {
        ClientIdentity {
            private_key: self.private_key.clone(),
            gateway_public_key: self.gateway_public_key,
            psk: self.psk.clone(),
        }
    }

    /// `host:port`, ready for name resolution (`std::net::ToSocketAddrs`).
    pub fn gateway_address(&self) -> String {
        if self.gateway_host.contains(':') {
            format!("[{}]:{}", self.gateway_host, self.gateway_port)
        } else {
            format!("{}:{}", self.gateway_host, self.gateway_port)
        }
    }
}

#[cfg(test)]
mod tests;
