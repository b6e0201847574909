//! How to reach the etcd cluster and as whom: the parsed `--store etcd://host:port,...` and the
//! node's cluster settings.

use super::seal::Keyring;
use crate::session::NodeId;
use std::path::PathBuf;
use std::time::Duration;

/// The scheme of `--store` that selects the etcd store.
pub const ETCD_SCHEME: &str = "etcd://";

/// Why a `--store` value is not an etcd store address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreUrlError {
    /// Not `etcd://...`.
    #[error("--store {0:?} is not understood; give etcd://host:port[,host:port...] (or leave --store out for the embedded store)")]
    Scheme(String),
    /// An endpoint that is not `host:port`.
    #[error("--store: endpoint {0:?} is not host:port, e.g. etcd://10.0.0.1:2379,10.0.0.2:2379")]
    Endpoint(String),
}

/// The etcd endpoints of `--store etcd://host:port,...`, as `host:port`.
pub fn parse_store_url(url: &str) -> Result<Vec<String>, StoreUrlError> {
    let list = url
        .strip_prefix(ETCD_SCHEME)
        .ok_or_else(|| StoreUrlError::Scheme(url.to_owned()))?;
    list.split(',')
        .map(|endpoint| {
            let valid = endpoint.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0)
            });
            if valid && !endpoint.contains('/') {
                Ok(endpoint.to_owned())
            } else {
                Err(StoreUrlError::Endpoint(endpoint.to_owned()))
            }
        })
        .collect()
}

/// TLS to etcd: the CA that signs the members' certificates, and the client certificate if the
/// cluster requires one (`--client-cert-auth`).
#[derive(Clone, Debug)]
pub struct EtcdTls {
    /// PEM file of the CA.
    pub ca: PathBuf,
    /// PEM files of the client certificate and its key.
    pub client: Option<(PathBuf, PathBuf)>,
    /// The name the members' certificates carry, if not the endpoint's host.
    pub domain: Option<String>,
}

/// Everything [`super::EtcdStore::connect`] needs.
#[derive(Debug)]
pub struct EtcdOptions {
    /// `host:port` of each member.
    pub endpoints: Vec<String>,
    /// This gateway's node id: the owner it writes, the high bits of the ids it issues.
    pub node: NodeId,
    /// The cluster keys records are sealed under.
    pub keyring: Keyring,
    /// Prefix of every key (several clusters can share one etcd).
    pub prefix: String,
    /// Time-to-live of the node's lease: how long after its last renewal a silent node still
    /// owns its sessions.
    pub lease_ttl: Duration,
    /// How long one etcd request may take before its result counts as unknown.
    pub request_timeout: Duration,
    /// TLS to the members; plain TCP without.
    pub tls: Option<EtcdTls>,
    /// Most operations etcd accepts in one transaction (its `--max-txn-ops`, 128 by default).
    pub max_txn_ops: usize,
}

impl EtcdOptions {
    /// Defaults for `endpoints`, `node` and `keyring`: prefix `/jvpn`, a 10 s lease, 2 s
    /// requests, no TLS.
    pub fn new(endpoints: Vec<String>, node: NodeId, keyring: Keyring) -> Self {
        Self {
            endpoints,
            node,
            keyring,
            prefix: "/jvpn".into(),
            lease_ttl: Duration::from_secs(10),
            request_timeout: Duration::from_secs(2),
            tls: None,
            max_txn_ops: 128,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_are_parsed_or_refused_with_the_form_to_use() {
        assert_eq!(
            parse_store_url("etcd://10.0.0.1:2379,gw.example:2380").unwrap(),
            vec!["10.0.0.1:2379", "gw.example:2380"]
        );
        assert_eq!(
            parse_store_url("etcd://[fd00::1]:2379").unwrap(),
            vec!["[fd00::1]:2379"]
        );
        let refused = [
            ("redis://h:1", StoreUrlError::Scheme("redis://h:1".into())),
            ("etcd://", StoreUrlError::Endpoint(String::new())),
            ("etcd://h", StoreUrlError::Endpoint("h".into())),
            ("etcd://h:0", StoreUrlError::Endpoint("h:0".into())),
            ("etcd://h:1,", StoreUrlError::Endpoint(String::new())),
            ("etcd://:2379", StoreUrlError::Endpoint(":2379".into())),
            (
                "etcd://h:2379/x",
                StoreUrlError::Endpoint("h:2379/x".into()),
            ),
        ];
        for (url, want) in refused {
            let got = parse_store_url(url).unwrap_err();
            assert_eq!(got, want, "{url}");
            assert!(got.to_string().contains("etcd://"), "{got}");
        }
    }
}
