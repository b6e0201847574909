//! A client jumps between two gateways of one cluster: each gateway runs the real `jvpn
//! gateway` with XDP attached, on one three-member etcd (`--store etcd://`). The client's session
//! continues on the other node at version + 1 (the reattach there takes it over from the store
//! and moves its owner key in the same transaction), and the node it left removes it from its
//! XDP map, so it drops the client's packets there.
//!
//! ```text
//!   +---- client ns A ----+  veth  +------ gateway ns A ------+
//!   | wire client (.0.2)  |<======>| 10.200.0.1 jvpn node 1   |
//!   +---------------------+        | (XDP)  etcd0 10.231.0.11 |---+
//!                                  +--------------------------+   |
//!   +---- client ns B ----+  veth  +------ gateway ns B ------+   |
//!   | wire client (.0.2)  |<======>| 10.200.0.1 jvpn node 2   |   |
//!   +---------------------+        | (XDP)  etcd0 10.231.0.12 |---+
//!                                  +--------------------------+   |
//!   member 0 (.1)  member 1 (.2)  member 2 (.3)   observer (.13)  |
//!   +------+-------------+-------------+-------------+------------+--+
//!   |                  hub namespace: bridge br0                      |
//!   +-----------------------------------------------------------------+
//! ```
//!
//! The client is one set of session keys in the test process; "moving" is sending from the
//! client namespace of the other gateway, as a laptop does when it changes networks and its
//! anycast address now reaches another node.

use jvpn_common::RejectReason;
use jvpn_tests::cluster_node::{join, share_identity, StoreNode};
use jvpn_tests::etcd_cluster::EtcdCluster;
use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::probe::{accepted, client_socket, drops, eventually, gateway, has_event};
use jvpn_tests::require_root;
use jvpn_tests::topology::Family;
use jvpn_tests::wire_client::WireClient;
use jvpn_user::crypto::keys::PresharedKey;
use jvpn_user::session::{NodeId, SessionId};
use jvpn_user::store::SessionStore;

const NODE_A: u16 = 1;
const NODE_B: u16 = 2;

/// Two gateways of one cluster sharing an identity, both started, and an observer of the store.
fn two_nodes(cluster: &mut EtcdCluster) -> (GatewayFixture, GatewayFixture, StoreNode) {
    let key = PresharedKey::generate();
    let mut a = GatewayFixture::new();
    let mut b = GatewayFixture::new();
    share_identity(&a, &mut b);
    join(&mut a, cluster, NODE_A, &key);
    join(&mut b, cluster, NODE_B, &key);
    a.start(&[]);
    b.start(&[]);
    let observer = StoreNode::connect_with_key(cluster, 9, *key.as_bytes());
    (a, b, observer)
}

/// Sends one DATA packet of `c` from `socket` and waits until `f`'s XDP accepted it.
fn data_is_accepted(c: &mut WireClient, f: &GatewayFixture, socket: &std::net::UdpSocket) {
    let before = accepted(f);
    socket
        .send_to(&c.data(b"still flowing"), gateway(Family::V4))
        .expect("send DATA");
    eventually("the DATA packet accepted by XDP", || accepted(f) > before);
}

/// Sends one DATA packet of `c` from `socket` and waits until `f`'s XDP dropped it as a
/// session it does not know.
fn data_is_dropped(c: &mut WireClient, f: &GatewayFixture, socket: &std::net::UdpSocket) {
    let before = drops(f, RejectReason::UnknownSession);
    socket
        .send_to(&c.data(b"to the node left behind"), gateway(Family::V4))
        .expect("send DATA");
    eventually("the DATA packet dropped as UNKNOWN_SESSION", || {
        drops(f, RejectReason::UnknownSession) > before
    });
}

/// The event stream of `f` reports that session `id` left it for node `node`.
fn released_to(f: &GatewayFixture, id: u64, node: u16) -> bool {
    let detail = format!("node {node} owns the session now");
    has_event(f, |e| {
        e["session"] == format!("{id:016x}")
            && e["reason"] == "UNKNOWN_SESSION"
            && e["detail"].as_str().is_some_and(|d| d.contains(&detail))
    })
}

#[test]
fn a_session_jumps_from_one_node_to_another_and_back_and_the_node_left_drops_its_packets() {
    require_root();
    let mut cluster = EtcdCluster::start();
    let (a, b, observer) = two_nodes(&mut cluster);
    let on_a = client_socket(&a, Family::V4, 40001);
    let on_b = client_socket(&b, Family::V4, 40001);

    let mut c = WireClient::handshake(&a.client, &on_a, gateway(Family::V4));
    let id = SessionId::new(c.id).expect("nonzero");
    assert_eq!(id.node(), NodeId::new(NODE_A));
    data_is_accepted(&mut c, &a, &on_a);

    // To B: the session continues there at version 2, now owned by B.
    assert_eq!(c.jump(&on_b), 2);
    assert_eq!(observer.store.owner(id).unwrap(), Some(NodeId::new(NODE_B)));
    assert_eq!(observer.store.get(id).unwrap().unwrap().state_version, 2);
    data_is_accepted(&mut c, &b, &on_b);
    assert_eq!(b.audit_versions(c.id), vec![1, 2], "one history, in etcd");

    // A learned it from its owner watch: the session left its XDP map, its packets drop there.
    eventually("A reports the session gone to B", || {
        released_to(&a, c.id, NODE_B)
    });
    data_is_dropped(&mut c, &a, &on_a);

    // And back to A, from a new port: version 3, owned by A again, and B drops it now.
    let back_on_a = client_socket(&a, Family::V4, 40002);
    assert_eq!(c.jump(&back_on_a), 3);
    assert_eq!(observer.store.owner(id).unwrap(), Some(NodeId::new(NODE_A)));
    data_is_accepted(&mut c, &a, &back_on_a);
    eventually("B reports the session gone to A", || {
        released_to(&b, c.id, NODE_A)
    });
    data_is_dropped(&mut c, &b, &on_b);
    assert_eq!(a.audit_versions(c.id), vec![1, 2, 3]);
}
