//! The `[cluster]` table of the gateway config: what a gateway needs to be one node of a cluster
//! sharing the etcd store (`jvpn gateway --store etcd://...`).
//!
//! ```toml
//! [cluster]
//! node_id = 1                          # 1..=65535, unique per gateway: the owner it records and
//!                                      # the high 16 bits of the session ids it issues
//! key_id = 2                           # the id records sealed under key_file carry
//! key_file = "cluster-2.key"           # 32 bytes, base64 (`jvpn genpsk cluster-2.key`); the same on
//!                                      # every node; or key = "<base64>"
//! previous_keys = [{ id = 1, key_file = "cluster-1.key" }]   # still opened, never sealed with
//! lease_ttl_secs = 10                  # a silent node owns its sessions this long (default)
//! prefix = "/jvpn"                     # etcd key prefix (default)
//! etcd_ca_file = "etcd-ca.pem"         # TLS to etcd: the members' CA (https when set)
//! etcd_cert_file = "gw1.pem"           # the client certificate, if the members require one
//! etcd_key_file = "gw1-key.pem"
//! etcd_domain = "etcd.example"         # the name in the members' certificates, if not their host
//! ```

use super::{ConfigError, RawGateway, Source};
use crate::crypto::SecretText;
use crate::session::NodeId;
use crate::store::etcd::seal::{ClusterKey, Keyring};
use crate::store::etcd::EtcdTls;
use serde::Deserialize;
use std::time::Duration;
use toml::Spanned;
use zeroize::Zeroizing;

/// The default lease TTL of a node.
pub const DEFAULT_LEASE_TTL_SECS: u64 = 10;

/// The `[cluster]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    node_id: Spanned<u16>,
    key_id: Spanned<u32>,
    key: Option<Spanned<SecretText>>,
    key_file: Option<Spanned<String>>,
    #[serde(default)]
    previous_keys: Vec<Spanned<RawPreviousKey>>,
    lease_ttl_secs: Option<Spanned<u64>>,
    prefix: Option<Spanned<String>>,
    etcd_ca_file: Option<Spanned<String>>,
    etcd_cert_file: Option<Spanned<String>>,
    etcd_key_file: Option<Spanned<String>>,
    etcd_domain: Option<String>,
}

/// An entry of `previous_keys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPreviousKey {
    id: u32,
    key: Option<Spanned<SecretText>>,
    key_file: Option<Spanned<String>>,
}

/// The validated `[cluster]` table.
#[derive(Clone)]
pub struct ClusterSettings {
    /// This gateway's node id (never 0: 0 is a single, unclustered gateway).
    pub node: NodeId,
    /// The keys (id, bytes), the current one first.
    keys: Vec<(u32, Zeroizing<[u8; 32]>)>,
    /// The node's lease TTL.
    pub lease_ttl: Duration,
    /// The etcd key prefix.
    pub prefix: String,
    /// TLS to etcd, if configured.
    pub tls: Option<EtcdTls>,
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let key_ids: Vec<u32> = self.keys.iter().map(|(id, _)| *id).collect();
        f.debug_struct("ClusterSettings")
            .field("node", &self.node)
            .field("key_ids", &key_ids)
            .field("lease_ttl", &self.lease_ttl)
            .field("prefix", &self.prefix)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ClusterSettings {
    /// Whether `other` differs in anything this node was started with (node id, keys, lease,
    /// prefix, TLS): a reload refuses such a change, which needs a restart.
    pub fn differs_from(&self, other: &Self) -> bool {
        let keys = |s: &Self| -> Vec<(u32, [u8; 32])> {
            s.keys.iter().map(|(id, k)| (*id, **k)).collect()
        };
        self.node != other.node
            || keys(self) != keys(other)
            || self.lease_ttl != other.lease_ttl
            || self.prefix != other.prefix
            || format!("{:?}", self.tls) != format!("{:?}", other.tls)
    }

    /// The keyring: the current key seals, every key listed opens.
    pub fn keyring(&self) -> Keyring {
        let mut keys = self
            .keys
            .iter()
            .map(|(id, key)| ClusterKey::new(*id, **key));
        let current = keys.next().expect("validation keeps the current key");
        Keyring::new(current, keys.collect()).expect("validation refused duplicate key ids")
    }
}

/// Validates the `[cluster]` table, if present.
pub(super) fn cluster(
    source: &Source,
    raw: &RawGateway,
) -> Result<Option<ClusterSettings>, ConfigError> {
    let Some(table) = &raw.cluster else {
        return Ok(None);
    };
    let c = table.get_ref();
    if *c.node_id.get_ref() == 0 {
        return Err(source.at(&c.node_id, "node_id 0 is the single, unclustered gateway; give each cluster node its own id from 1 to 65535"));
    }
    let mut keys = vec![(
        *c.key_id.get_ref(),
        cluster_key(source, &c.key_id, "key", &c.key, &c.key_file)?,
    )];
    for previous in &c.previous_keys {
        let p = previous.get_ref();
        if keys.iter().any(|(id, _)| *id == p.id) {
            return Err(source.at(
                previous,
                format!(
                    "cluster key id {} is listed twice; give each cluster key its own id",
                    p.id
                ),
            ));
        }
        keys.push((
            p.id,
            cluster_key(source, previous, "key", &p.key, &p.key_file)?,
        ));
    }
    let lease_ttl = match &c.lease_ttl_secs {
        Some(ttl) if !(1..=3600).contains(ttl.get_ref()) => {
            return Err(source.at(ttl, "lease_ttl_secs must be from 1 to 3600"))
        }
        Some(ttl) => Duration::from_secs(*ttl.get_ref()),
        None => Duration::from_secs(DEFAULT_LEASE_TTL_SECS),
    };
    let prefix = match &c.prefix {
        Some(p) if !p.get_ref().starts_with('/') || p.get_ref().len() < 2 => {
            return Err(source.at(
                p,
                "prefix must start with / and name something, e.g. \"/jvpn\"",
            ))
        }
        Some(p) => p.get_ref().trim_end_matches('/').to_owned(),
        None => "/jvpn".to_owned(),
    };
    let path = |p: &Spanned<String>| source.resolve(p.get_ref());
    let tls = match (&c.etcd_ca_file, &c.etcd_cert_file, &c.etcd_key_file) {
        (None, None, None) => None,
        (None, Some(at), _) | (None, _, Some(at)) => {
            return Err(source.at(
                at,
                "a client certificate needs etcd_ca_file too (TLS to etcd)",
            ))
        }
        (Some(ca), cert, key) => Some(EtcdTls {
            ca: path(ca),
            client: match (cert, key) {
                (Some(cert), Some(key)) => Some((path(cert), path(key))),
                (None, None) => None,
                (Some(at), None) | (None, Some(at)) => {
                    return Err(
                        source.at(at, "set both etcd_cert_file and etcd_key_file, or neither")
                    )
                }
            },
            domain: c.etcd_domain.clone(),
        }),
    };
    Ok(Some(ClusterSettings {
        node: NodeId::new(*c.node_id.get_ref()),
        keys,
        lease_ttl,
        prefix,
        tls,
    }))
}

/// A 32-byte cluster key, inline or from a 0600 file (the form `jvpn genpsk` writes).
fn cluster_key<T>(
    source: &Source,
    at: &Spanned<T>,
    name: &str,
    inline: &Option<Spanned<SecretText>>,
    file: &Option<Spanned<String>>,
) -> Result<Zeroizing<[u8; 32]>, ConfigError> {
    source
        .psk(name, inline, file)?
        .map(|key| Zeroizing::new(*key.as_bytes()))
        .ok_or_else(|| source.at(at, "no cluster key: set key_file = \"cluster.key\" (create it with `jvpn genpsk cluster.key`, the same file on every node) or key = \"<base64>\""))
}

#[cfg(test)]
mod tests {
    use crate::config::gateway::GatewaySettings;
    use crate::config::keyfile::genpsk;
    use crate::crypto::keys::{PresharedKey, PrivateKey};
    use crate::session::NodeId;
    use crate::store::etcd::seal::Keyring;
    use std::path::Path;

    fn base() -> String {
        format!(
            "private_key = \"{}\"\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n",
            PrivateKey::generate().to_base64().as_str()
        )
    }

    #[test]
    fn a_cluster_table_validates_with_key_files_rotation_and_tls() {
        let dir = tempfile::tempdir().unwrap();
        genpsk(&dir.path().join("cluster-2.key")).unwrap();
        let old = PresharedKey::generate();
        let text = format!(
            "{}[cluster]\nnode_id = 7\nkey_id = 2\nkey_file = \"cluster-2.key\"\n\
             previous_keys = [{{ id = 1, key = \"{}\" }}]\nlease_ttl_secs = 4\nprefix = \"/vpn1/\"\n\
             etcd_ca_file = \"ca.pem\"\netcd_cert_file = \"gw.pem\"\netcd_key_file = \"gw-key.pem\"\n",
            base(),
            old.to_base64().as_str()
        );
        let config = dir.path().join("gateway.toml");
        let settings = GatewaySettings::parse(&config, &text).unwrap();
        let cluster = settings.cluster.as_ref().expect("a [cluster] table");
        assert_eq!(settings.node_id(), NodeId::new(7));
        assert_eq!(cluster.lease_ttl.as_secs(), 4);
        assert_eq!(cluster.prefix, "/vpn1");
        let tls = cluster.tls.as_ref().expect("TLS");
        assert_eq!(tls.ca, dir.path().join("ca.pem"));
        assert_eq!(
            tls.client.as_ref().unwrap().1,
            dir.path().join("gw-key.pem")
        );
        // The keyring seals under key 2 and still opens what key 1 sealed.
        let ring = cluster.keyring();
        assert_eq!(ring.current_id(), 2);
        let old_ring = Keyring::new(
            crate::store::etcd::seal::ClusterKey::new(1, *old.as_bytes()),
            vec![],
        )
        .unwrap();
        let sealed = old_ring.seal(b"k", b"record");
        assert_eq!(ring.open(b"k", &sealed).unwrap().as_slice(), b"record");
        // The keys never show in logs.
        let debug = format!("{cluster:?}");
        assert!(
            debug.contains("key_ids: [2, 1]") && !debug.contains(old.to_base64().as_str()),
            "{debug}"
        );
    }

    #[test]
    fn without_a_cluster_table_the_gateway_is_node_0() {
        let settings =
            GatewaySettings::parse(Path::new("/etc/jvpn/gateway.toml"), &base()).unwrap();
        assert!(settings.cluster.is_none());
        assert_eq!(settings.node_id(), NodeId::SINGLE);
    }

    #[test]
    fn every_malformed_cluster_table_is_refused_at_its_line() {
        let key = PresharedKey::generate().to_base64().to_string();
        let cases = [
            ("node 0", format!("node_id = 0 # <-\nkey_id = 1\nkey = \"{key}\"\n"), "node_id 0"),
            ("no key", "node_id = 1\nkey_id = 1 # <-\n".to_owned(), "no cluster key"),
            (
                "duplicate id",
                format!("node_id = 1\nkey_id = 1\nkey = \"{key}\"\nprevious_keys = [{{ id = 1, key = \"{key}\" }}] # <-\n"),
                "listed twice",
            ),
            ("zero ttl", format!("node_id = 1\nkey_id = 1\nkey = \"{key}\"\nlease_ttl_secs = 0 # <-\n"), "from 1 to 3600"),
            ("bad prefix", format!("node_id = 1\nkey_id = 1\nkey = \"{key}\"\nprefix = \"jvpn\" # <-\n"), "start with /"),
            (
                "cert without ca",
                format!("node_id = 1\nkey_id = 1\nkey = \"{key}\"\netcd_cert_file = \"c.pem\" # <-\n"),
                "etcd_ca_file",
            ),
            (
                "cert without key",
                format!("node_id = 1\nkey_id = 1\nkey = \"{key}\"\netcd_ca_file = \"ca.pem\"\netcd_cert_file = \"c.pem\" # <-\n"),
                "both etcd_cert_file and etcd_key_file",
            ),
            ("unknown field", format!("node_id = 1\nkey_id = 1\nkey = \"{key}\"\nnode = 2 # <-\n"), "unknown field"),
        ];
        for (what, table, expected) in cases {
            let text = format!("{}[cluster]\n{table}", base());
            let marked = text.lines().position(|l| l.contains("# <-")).unwrap() + 1;
            let err =
                GatewaySettings::parse(Path::new("/etc/jvpn/gateway.toml"), &text).expect_err(what);
            let message = err.to_string();
            assert!(message.contains(expected), "{what}: {message}");
            assert_eq!(err.line(), Some(marked), "{what}: {message}");
        }
    }
}
