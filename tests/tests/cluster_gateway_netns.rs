//! The real `jvpn gateway` (with XDP) on the clustered store: `--store etcd://...` and a
//! `[cluster]` table. Its sessions live in a three-member etcd, and it refuses mutations once it
//! cannot reach a quorum.
//!
//! ```text
//!   +------------ client ns ------------+  veth  +------------- gateway ns ---------------+
//!   |  wire client 10.200.0.2           |<======>|  10.200.0.1  jvpn gateway (XDP)        |
//!   +-----------------------------------+        |  etcd0 10.231.0.11 --------------+     |
//!                                                +----------------------------------|-----+
//!                                                                                   | (cut here)
//!   member 0 (.1)  member 1 (.2)  member 2 (.3)       observer node (.12)           |
//!        |              |              |                   |                        |
//!   +----+--------------+--------------+-------------------+------------------------+--+
//!   |                         hub namespace: bridge br0                                |
//!   +----------------------------------------------------------------------------------+
//! ```

use jvpn_common::maps::SessionState;
use jvpn_common::RejectReason;
use jvpn_tests::cluster_node::StoreNode;
use jvpn_tests::etcd_cluster::EtcdCluster;
use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::probe::{client_socket, gateway};
use jvpn_tests::require_root;
use jvpn_tests::topology::Family;
use jvpn_tests::wire_client::{JumpOutcome, WireClient};
use jvpn_user::crypto::keys::PresharedKey;
use jvpn_user::session::{NodeId, SessionId};
use jvpn_user::store::SessionStore;
use std::time::Duration;

/// The gateway's node id in the cluster.
const NODE: u16 = 5;

#[test]
fn a_gateway_on_etcd_keeps_its_sessions_there_and_refuses_mutations_when_cut_off() {
    require_root();
    let mut cluster = EtcdCluster::start();
    let mut f = GatewayFixture::new();
    let gateway_link = cluster.attach(&f.hosts.gateway);
    let config = f.dir.path().join("gateway.toml");
    let mut text = std::fs::read_to_string(&config).expect("read the config");
    let key = PresharedKey::generate();
    text.push_str(&format!(
        "[cluster]\nnode_id = {NODE}\nkey_id = 1\nkey = \"{}\"\nlease_ttl_secs = 2\n",
        key.to_base64().as_str()
    ));
    std::fs::write(&config, text).expect("write the config");
    f.extra_args = vec![
        "--store".into(),
        format!("etcd://{}", cluster.endpoints().join(",")),
    ];
    f.start(&[]);
    let observer = StoreNode::connect_with_key(&mut cluster, 9, *key.as_bytes());

    // The session id names the node (sticky routing), and the session lives in etcd, owned by it.
    let gw = gateway(Family::V4);
    let mut c = WireClient::handshake(&f.client, &client_socket(&f, Family::V4, 40001), gw);
    assert_eq!(SessionId::new(c.id).unwrap().node(), NodeId::new(NODE));
    let id = SessionId::new(c.id).unwrap();
    let stored = observer
        .store
        .get(id)
        .unwrap()
        .expect("the session is in etcd");
    assert_eq!(
        (stored.state, stored.state_version),
        (SessionState::Attached, 1)
    );
    assert_eq!(observer.store.owner(id).unwrap(), Some(NodeId::new(NODE)));

    // A jump commits version 2 in etcd, with its audit record.
    assert_eq!(c.jump(&client_socket(&f, Family::V4, 40002)), 2);
    assert_eq!(observer.store.get(id).unwrap().unwrap().state_version, 2);
    let audit: Vec<u64> = observer
        .store
        .audit(id)
        .unwrap()
        .iter()
        .map(|a| a.to_version)
        .collect();
    assert_eq!(audit, vec![1, 2]);
    assert_eq!(
        f.audit_versions(c.id),
        vec![1, 2],
        "jvpn audit reads the same history"
    );

    // Cut off from etcd, the gateway refuses the next reattach as OWNERSHIP_AMBIGUOUS.
    cluster.set_hub_link(&gateway_link, false);
    let outcome = c.try_jump(
        &client_socket(&f, Family::V4, 40003),
        2,
        Duration::from_secs(10),
    );
    assert_eq!(
        outcome,
        JumpOutcome::Refused(Some(RejectReason::OwnershipAmbiguous))
    );
    assert_eq!(
        observer.store.get(id).unwrap().unwrap().state_version,
        2,
        "nothing was written"
    );

    // Back in touch with the quorum, it serves again.
    cluster.set_hub_link(&gateway_link, true);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let mut attempt = 3;
    let version = loop {
        match c.try_jump(
            &client_socket(&f, Family::V4, 40004),
            attempt,
            Duration::from_secs(5),
        ) {
            JumpOutcome::Acked { version, .. } => break version,
            other => assert!(
                std::time::Instant::now() < deadline,
                "no reattach after the link returned: {other:?}"
            ),
        }
        attempt += 1;
    };
    assert_eq!(version, 3);
    assert_eq!(observer.store.get(id).unwrap().unwrap().state_version, 3);
}
