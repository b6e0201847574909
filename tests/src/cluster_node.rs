//! A node of a test cluster at the store level: an [`EtcdStore`] connected from its own
//! namespace on the hub of an [`EtcdCluster`], and the session steps the tests drive through it
//! (made by the real session machine, so every request is one the gateway could send).

use crate::etcd_cluster::{EtcdCluster, NodeNs};
use jvpn_common::maps::TransportBinding;
use jvpn_user::session::{
    Input, NodeId, Session, SessionId, SessionMachine, Timers, CLIENT_KEY_LEN,
};
use jvpn_user::store::etcd::seal::{ClusterKey, Keyring, CLUSTER_KEY_LEN};
use jvpn_user::store::etcd::EtcdOptions;
use jvpn_user::store::{CasOutcome, EtcdStore, Expected, SessionStore, StoreError};
use std::time::Duration;

/// The cluster key every test node shares.
pub const TEST_CLUSTER_KEY: [u8; CLUSTER_KEY_LEN] = [0x5a; CLUSTER_KEY_LEN];
/// The lease TTL of test nodes: short, so expiry tests take seconds.
pub const TEST_LEASE_TTL: Duration = Duration::from_secs(2);
/// How long a test node's etcd request may take.
pub const TEST_REQUEST_TIMEOUT: Duration = Duration::from_millis(800);

/// A store client in its own namespace.
pub struct StoreNode {
    /// Its namespace on the hub.
    pub net: NodeNs,
    /// Its store.
    pub store: EtcdStore,
}

impl StoreNode {
    /// Connects node `node` to `cluster` from a new namespace on its hub.
    pub fn connect(cluster: &mut EtcdCluster, node: u16) -> Self {
        Self::connect_with_key(cluster, node, TEST_CLUSTER_KEY)
    }

    /// As [`Self::connect`], sealing under `key` (id 1).
    pub fn connect_with_key(
        cluster: &mut EtcdCluster,
        node: u16,
        key: [u8; CLUSTER_KEY_LEN],
    ) -> Self {
        let net = cluster.node_ns();
        let endpoints = cluster.endpoints();
        let store = net.ns.run(move || {
            let keyring = Keyring::new(ClusterKey::new(1, key), vec![]).expect("keyring");
            let mut options = EtcdOptions::new(endpoints, NodeId::new(node), keyring);
            options.lease_ttl = TEST_LEASE_TTL;
            options.request_timeout = TEST_REQUEST_TIMEOUT;
            EtcdStore::connect(options).unwrap_or_else(|e| panic!("node {node} connecting: {e}"))
        });
        Self { net, store }
    }
}

/// A transport binding numbered `n`.
pub fn path(n: u16) -> TransportBinding {
    TransportBinding::from_v4([10, 9, (n >> 8) as u8, n as u8], 1000 + n)
}

/// A fresh session id owned by `node`.
pub fn fresh_id(node: u16) -> SessionId {
    SessionId::generate(NodeId::new(node), &mut rand::thread_rng())
}

/// Creates session `id` through `store`, ATTACHED at version 1.
pub fn create(store: &dyn SessionStore, id: SessionId) -> Session {
    let born = Session::birth(id, [7; CLIENT_KEY_LEN], 1_700_000_000_000);
    let input = Input::HandshakeComplete {
        binding: path(1),
        header_key: [1; 16].into(),
        secrets: vec![0xc3; 64].into(),
    };
    let t = machine()
        .transition(&born, &input, born.created_at)
        .expect("handshake accepted");
    let outcome = store.compare_and_set(id, Expected::Absent, &t.session, &t.state_changes());
    assert_eq!(outcome.expect("create"), CasOutcome::Committed);
    t.session
}

/// The reattach of `from` (at its version) to transport `to`, as the store would be asked to
/// write it: the new session and its STATE_CHANGE records.
pub fn reattach(from: &Session, to: u16) -> (Session, Vec<jvpn_user::session::StateChange>) {
    let input = Input::ReattachValidated {
        claimed_version: from.state_version,
        new_binding: path(to),
    };
    let t = machine()
        .transition(from, &input, from.changed_at + 1)
        .expect("reattach accepted");
    let audit = t.state_changes();
    (t.session, audit)
}

/// Tries the reattach of `from` to `to` through `store`.
pub fn try_reattach(
    store: &dyn SessionStore,
    from: &Session,
    to: u16,
) -> (Session, Result<CasOutcome, StoreError>) {
    let (next, audit) = reattach(from, to);
    let outcome = store.compare_and_set(
        from.id,
        Expected::Version(from.state_version),
        &next,
        &audit,
    );
    (next, outcome)
}

fn machine() -> SessionMachine {
    SessionMachine::new(Timers::default())
}

/// Makes `f` a node of `cluster`: its config gains a `[cluster]` table (node `node`, the
/// cluster key `key`, a 2 s lease) and its gateway runs on `--store etcd://` through a link to
/// the hub. Call before starting it; returns the hub side of the link, to cut it.
pub fn join(
    f: &mut crate::gateway::GatewayFixture,
    cluster: &mut EtcdCluster,
    node: u16,
    key: &jvpn_user::crypto::keys::PresharedKey,
) -> String {
    let link = cluster.attach(&f.hosts.gateway);
    let config = f.dir.path().join("gateway.toml");
    let mut text = std::fs::read_to_string(&config).expect("read the gateway config");
    text.push_str(&format!(
        "[cluster]\nnode_id = {node}\nkey_id = 1\nkey = \"{}\"\nlease_ttl_secs = {}\n",
        key.to_base64().as_str(),
        TEST_LEASE_TTL.as_secs()
    ));
    std::fs::write(&config, text).expect("write the gateway config");
    f.extra_args = vec![
        "--store".into(),
        format!("etcd://{}", cluster.endpoints().join(",")),
    ];
    link
}

/// Gives gateway `to` the identity and clients of `from` (its key and config), as the nodes of
/// one cluster share them: a client's handshake and sessions are good on either.
pub fn share_identity(
    from: &crate::gateway::GatewayFixture,
    to: &mut crate::gateway::GatewayFixture,
) {
    for file in ["gateway.key", "gateway.toml"] {
        std::fs::copy(from.dir.path().join(file), to.dir.path().join(file))
            .unwrap_or_else(|e| panic!("copy {file} to the second gateway: {e}"));
    }
    to.gateway_public_key = from.gateway_public_key;
}

/// Two gateways of one cluster (nodes 1 and 2) sharing an identity, both started with XDP
/// attached, an observer node of the store (9), and the hub side of A's link to etcd.
pub struct TwoGateways {
    /// Node 1.
    pub a: crate::gateway::GatewayFixture,
    /// Node 2.
    pub b: crate::gateway::GatewayFixture,
    /// A store client of its own, to read what etcd holds.
    pub observer: StoreNode,
    /// The hub side of A's link to etcd (cut it to isolate A).
    pub a_link: String,
}

/// The node id of [`TwoGateways::a`].
pub const NODE_A: u16 = 1;
/// The node id of [`TwoGateways::b`].
pub const NODE_B: u16 = 2;

impl TwoGateways {
    /// Starts both gateways on `cluster`.
    pub fn start(cluster: &mut EtcdCluster) -> Self {
        let key = jvpn_user::crypto::keys::PresharedKey::generate();
        let mut a = crate::gateway::GatewayFixture::new();
        let mut b = crate::gateway::GatewayFixture::new();
        share_identity(&a, &mut b);
        let a_link = join(&mut a, cluster, NODE_A, &key);
        join(&mut b, cluster, NODE_B, &key);
        a.start(&[]);
        b.start(&[]);
        let observer = StoreNode::connect_with_key(cluster, 9, *key.as_bytes());
        Self {
            a,
            b,
            observer,
            a_link,
        }
    }
}
