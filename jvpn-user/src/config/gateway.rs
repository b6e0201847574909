//! The gateway's config file (`/etc/jvpn/gateway.toml` by default): the raw TOML and the validated
//! [`GatewaySettings`] the daemon runs with.
//!
//! ```toml
//! private_key_file = "gateway.key"   # or private_key = "<base64>"; made by `jvpn keygen`
//! psk_file = "psk"                   # or psk = "<base64>"; a [[client]] may set its own;
//!                                    # none at all means the all-zero key, as in WireGuard
//! port = 51900                       # UDP port (default 51900)
//! listen = "::"                      # address the UDP socket binds (default "::", both families)
//! iface = "eth0"                     # interface the XDP program attaches to (optional)
//! state_dir = "/var/lib/jvpn"        # the durable session store (default)
//! tun = "jvpn0"                      # the tunnel device (default)
//! mtu = 1396                         # tunnel MTU announced to clients (default)
//! keepalive_interval_secs = 10       # an idle client sends KEEPALIVE this often (default)
//! keepalive_timeout_secs = 30        # silence this long moves a session to RECOVERING (default)
//! idle_timeout_secs = 300            # silence this long terminates it (default)
//! reject_after_ms = 180000           # keys this old without a rekey end the session (default)
//! reject_after_messages = 2305843009213693952  # or this many messages under them (2^61, default)
//! max_sessions_per_client = 8        # live sessions one client key may hold (default)
//! handshake_workers = 2              # threads running handshakes (default: half the CPUs)
//! handshake_queue = 1024             # HELLOs waiting for a worker before HANDSHAKE_BUSY (default)
//!
//! [tunnel]                           # the gateway's tunnel addresses, and so the networks
//! ipv4 = "10.77.0.1/24"              # clients get their addresses from (at least one)
//! ipv6 = "fd77::1/64"
//!
//! [cluster]                          # a node of a cluster on etcd (see `gateway::cluster`)
//! node_id = 1
//!
//! [[client]]
//! name = "laptop"                    # for logs (default: client-N)
//! public_key = "<base64>"            # printed by `jvpn keygen` on the client
//! ipv4 = "10.77.0.2"                 # its tunnel addresses, one per configured tunnel network
//! ipv6 = "fd77::2"
//! allowed_ips = ["192.168.50.0/24"]  # more networks it may send from (optional)
//! ```
//!
//! Key file paths are relative to the config file's directory. Validation refuses an unknown field,
//! a bad key, a duplicate client key or name, an address outside the tunnel network or used twice,
//! overlapping client networks (cryptokey routing must have one owner per address) and
//! inconsistent timeouts, each at the line to fix.

use super::source::{ConfigError, Source};
use crate::crypto::handshake::ClientAdmission;
use crate::crypto::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::crypto::SecretText;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use jvpn_common::control::{Tai64N, WelcomePayload};
use jvpn_common::wire::{Be16, Be64};
use serde::Deserialize;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

pub mod cluster;
mod validate;

pub use cluster::ClusterSettings;

/// Where the gateway looks for its config unless told otherwise.
pub const DEFAULT_GATEWAY_CONFIG: &str = "/etc/jvpn/gateway.toml";
/// Where the durable session store lives unless configured otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/jvpn";
/// The tunnel device's name unless configured otherwise.
pub const DEFAULT_TUN: &str = "jvpn0";
/// Default interval of client keepalives, in seconds.
pub const DEFAULT_KEEPALIVE_INTERVAL_SECS: u64 = 10;
/// Default silence before a session goes RECOVERING, in seconds.
pub const DEFAULT_KEEPALIVE_TIMEOUT_SECS: u64 = 30;
/// Default silence before a session is terminated, in seconds.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 300;
/// Default age of keys after which a session that did not rekey ends, in milliseconds: the
/// client rekeys after 120 s (WireGuard's REKEY_AFTER_TIME and REJECT_AFTER_TIME).
pub const DEFAULT_REJECT_AFTER_MS: u64 = 180_000;
/// Default number of messages under one set of keys after which a session that did not rekey
/// ends: the client rekeys after 2^60.
pub const DEFAULT_REJECT_AFTER_MESSAGES: u64 = 1 << 61;
/// Default cap of live sessions per client key.
pub const DEFAULT_MAX_SESSIONS_PER_CLIENT: usize = 8;
/// Default capacity of the handshake queue.
pub const DEFAULT_HANDSHAKE_QUEUE: usize = 1024;

/// The limits of the handshake path (see `gateway::handshake_pool` and `gateway::hello_replay`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HandshakeLimits {
    /// Live sessions one client key may hold; a HELLO beyond is refused (CLIENT_SESSION_LIMIT).
    pub max_sessions_per_client: usize,
    /// Threads running handshakes, apart from the tunnel's runtime.
    pub workers: usize,
    /// HELLOs waiting for a worker; beyond, refused (HANDSHAKE_BUSY).
    pub queue: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        Self {
            max_sessions_per_client: DEFAULT_MAX_SESSIONS_PER_CLIENT,
            workers: (cpus / 2).max(1),
            queue: DEFAULT_HANDSHAKE_QUEUE,
        }
    }
}

/// The gateway config file as written, every value with its place in the file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGateway {
    pub(crate) private_key: Option<Spanned<SecretText>>,
    pub(crate) private_key_file: Option<Spanned<String>>,
    pub(crate) psk: Option<Spanned<SecretText>>,
    pub(crate) psk_file: Option<Spanned<String>>,
    pub(crate) port: Option<Spanned<u16>>,
    pub(crate) listen: Option<Spanned<String>>,
    pub(crate) iface: Option<Spanned<String>>,
    pub(crate) state_dir: Option<Spanned<String>>,
    pub(crate) tun: Option<Spanned<String>>,
    pub(crate) mtu: Option<Spanned<u16>>,
    pub(crate) keepalive_interval_secs: Option<Spanned<u64>>,
    pub(crate) keepalive_timeout_secs: Option<Spanned<u64>>,
    pub(crate) idle_timeout_secs: Option<Spanned<u64>>,
    pub(crate) reject_after_ms: Option<Spanned<u64>>,
    pub(crate) reject_after_messages: Option<Spanned<u64>>,
    pub(crate) max_sessions_per_client: Option<Spanned<usize>>,
    pub(crate) handshake_workers: Option<Spanned<usize>>,
    pub(crate) handshake_queue: Option<Spanned<usize>>,
    pub(crate) tunnel: Option<Spanned<RawTunnel>>,
    pub(crate) cluster: Option<Spanned<cluster::RawCluster>>,
    #[serde(default)]
    pub(crate) client: Vec<Spanned<RawClient>>,
}

/// The `[tunnel]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTunnel {
    pub(crate) ipv4: Option<Spanned<String>>,
    pub(crate) ipv6: Option<Spanned<String>>,
}

/// A `[[client]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClient {
    pub(crate) name: Option<Spanned<String>>,
    pub(crate) public_key: Spanned<String>,
    pub(crate) psk: Option<Spanned<SecretText>>,
    pub(crate) psk_file: Option<Spanned<String>>,
    pub(crate) ipv4: Option<Spanned<String>>,
    pub(crate) ipv6: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) allowed_ips: Vec<Spanned<String>>,
}

/// The session timers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// An idle client sends a KEEPALIVE this often (announced in WELCOME).
    pub keepalive_interval: Duration,
    /// Nothing received for this long moves a session to RECOVERING.
    pub keepalive_timeout: Duration,
    /// Nothing received for this long terminates a session.
    pub idle_timeout: Duration,
    /// Keys older than this without a rekey terminate a session (docs/rekey.md).
    pub reject_after: Duration,
    /// Keys that carried this many messages without a rekey terminate a session.
    pub reject_after_messages: u64,
}

impl Timeouts {
    /// The reject-after limits of the rekey rule.
    pub fn reject_after(&self) -> crate::gateway::rekey::RejectAfter {
        crate::gateway::rekey::RejectAfter {
            age: self.reject_after,
            messages: self.reject_after_messages,
        }
    }
}

/// The gateway's tunnel addresses; each network is the one clients of that family get addresses in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelNetworks {
    /// The gateway's IPv4 tunnel address and prefix, if IPv4 is carried.
    pub ipv4: Option<Ipv4Net>,
    /// The gateway's IPv6 tunnel address and prefix, if IPv6 is carried.
    pub ipv6: Option<Ipv6Net>,
}

/// An authorised client.
#[derive(Clone, Debug)]
pub struct ClientEntry {
    /// Its name in logs and events.
    pub name: String,
    /// Its static public key.
    pub public_key: PublicKey,
    /// The pre-shared key of its handshakes: its own, else the gateway-wide one, else
    /// [`PresharedKey::none`].
    pub psk: PresharedKey,
    /// Its IPv4 tunnel address.
    pub ipv4: Option<Ipv4Addr>,
    /// Its IPv6 tunnel address.
    pub ipv6: Option<Ipv6Addr>,
    /// Every network its packets may come from (cryptokey routing): its tunnel addresses as host
    /// routes, then its configured `allowed_ips`. No two clients' networks overlap.
    pub allowed_ips: Vec<IpNet>,
}

impl ClientEntry {
    /// Whether a packet from this client may carry `source` as its inner source address.
    pub fn allows_source(&self, source: IpAddr) -> bool {
        self.allowed_ips.iter().any(|net| net.contains(&source))
    }
}

/// The validated gateway configuration.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// The gateway's static private key.
    pub private_key: PrivateKey,
    /// The UDP port.
    pub port: u16,
    /// The address the UDP socket binds.
    pub listen: IpAddr,
    /// The interface for XDP, if configured (the command line may give it instead).
    pub iface: Option<String>,
    /// The directory of the durable store.
    pub state_dir: PathBuf,
    /// The tunnel device's name.
    pub tun: String,
    /// The tunnel MTU announced to clients.
    pub mtu: u16,
    /// The session timers.
    pub timeouts: Timeouts,
    /// The gateway's tunnel addresses.
    pub tunnel: TunnelNetworks,
    /// The limits of the handshake path.
    pub handshake: HandshakeLimits,
    /// The `[cluster]` table: this gateway as a node of a cluster on the etcd store.
    pub cluster: Option<ClusterSettings>,
    clients: Vec<ClientEntry>,
    by_key: HashMap<PublicKey, usize>,
}

impl GatewaySettings {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = Source::read(path)?;
        Self::parse(path, &text)
    }

    /// Validates config `text`; `path` names it in errors and anchors relative key file paths.
    pub fn parse(path: &Path, text: &str) -> Result<Self, ConfigError> {
        let source = Source { path, text };
        let raw: RawGateway = source.parse()?;
        validate::gateway(&source, raw)
    }

    /// This gateway's node id: the high bits of the session ids it issues (0 unless it is a
    /// node of a cluster).
    pub fn node_id(&self) -> crate::session::NodeId {
        self.cluster
            .as_ref()
            .map_or(crate::session::NodeId::SINGLE, |c| c.node)
    }

    /// The gateway's static public key (what clients configure as `gateway_public_key`).
    pub fn public_key(&self) -> PublicKey {
        self.private_key.public_key()
    }

    /// Every authorised client, in file order.
    pub fn clients(&self) -> &[ClientEntry] {
        &self.clients
    }

    /// The client with this static key, if authorised.
    pub fn client(&self, key: &PublicKey) -> Option<&ClientEntry> {
        self.by_key.get(key).map(|&i| &self.clients[i])
    }

    /// The handshake's view of a client key: its pre-shared key and the last HELLO timestamp the
    /// caller accepted from it, or `None` if the key is not authorised.
    pub fn admission(
        &self,
        key: &PublicKey,
        last_timestamp: Option<Tai64N>,
    ) -> Option<ClientAdmission> {
        self.client(key).map(|client| ClientAdmission {
            psk: client.psk.clone(),
            last_timestamp,
        })
    }

    /// The WELCOME payload that gives `client` its tunnel addresses in session `session_id`.
    pub fn welcome_payload(&self, client: &ClientEntry, session_id: u64) -> WelcomePayload {
        let (ipv4, ipv4_prefix_len) = match (client.ipv4, self.tunnel.ipv4) {
            (Some(addr), Some(net)) => (addr.octets(), net.prefix_len()),
            _ => ([0; 4], 0),
        };
        let (ipv6, ipv6_prefix_len) = match (client.ipv6, self.tunnel.ipv6) {
            (Some(addr), Some(net)) => (addr.octets(), net.prefix_len()),
            _ => ([0; 16], 0),
        };
        let keepalive = u16::try_from(self.timeouts.keepalive_interval.as_secs())
            .expect("validation keeps the keepalive interval within u16");
        WelcomePayload {
            session_id: Be64::new(session_id),
            ipv4,
            ipv4_prefix_len,
            ipv6_prefix_len,
            tunnel_mtu: Be16::new(self.mtu),
            ipv6,
            keepalive_interval_secs: Be16::new(keepalive),
            reserved: [0; 6],
        }
    }
}

/// The address the UDP socket binds when `listen` is absent: every address of both families.
const DEFAULT_LISTEN: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

#[cfg(test)]
mod tests;
