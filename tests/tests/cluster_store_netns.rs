//! The clustered session store against a real three-member etcd, with faults made by killing
//! members and cutting links:
//!
//! ```text
//!   member 0 (10.231.0.1)   member 1 (10.231.0.2)   member 2 (10.231.0.3)
//!        |                        |                        |
//!   +----+------------------------+------------------------+------+
//!   |            hub namespace: bridge br0 (links cut here)        |
//!   +----+-----------------------------------------------+---------+
//!        |                                               |
//!   node A: EtcdStore (10.231.0.11)              node B: EtcdStore (10.231.0.12)
//! ```
//!
//! Each test starts its own cluster and nodes; leases are 2 s and requests 0.8 s, so a fault
//! test takes seconds.

use jvpn_tests::cluster_node::{
    create, fresh_id, reattach, try_reattach, StoreNode, TEST_LEASE_TTL,
};
use jvpn_tests::etcd_cluster::EtcdCluster;
use jvpn_tests::require_root;
use jvpn_user::session::{NodeId, Session, SessionId};
use jvpn_user::store::{CasOutcome, Expected, SessionStore, StoreError};
use std::collections::BTreeMap;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

/// Retries `f` until it returns `Some` or `within` passes.
fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asserts that the stored audit of `id` is one unbroken chain from version 1 to `last`.
fn assert_one_chain(store: &dyn SessionStore, id: SessionId, last: u64) {
    let audit = store.audit(id).expect("read the audit");
    let versions: Vec<u64> = audit.iter().map(|c| c.to_version).collect();
    assert_eq!(
        versions,
        (1..=last).collect::<Vec<_>>(),
        "session {id}: the audit is not one chain to v{last}"
    );
    for change in &audit {
        assert_eq!(change.from_version + 1, change.to_version, "{change}");
    }
}

#[test]
fn a_dual_reattach_across_two_nodes_has_exactly_one_winner_100_times() {
    require_root();
    let mut cluster = EtcdCluster::start();
    let a = StoreNode::connect(&mut cluster, 1);
    let b = StoreNode::connect(&mut cluster, 2);
    let mut session = create(&a.store, fresh_id(1));
    let stores: [&dyn SessionStore; 2] = [&a.store, &b.store];
    let barrier = Barrier::new(2);
    let mut wins = [0u32; 2];
    for round in 0..100u16 {
        let outcomes: Vec<(Session, Result<CasOutcome, StoreError>)> =
            std::thread::scope(|scope| {
                let handles: Vec<_> = stores
                    .iter()
                    .enumerate()
                    .map(|(node, store)| {
                        let (session, barrier) = (&session, &barrier);
                        scope.spawn(move || {
                            barrier.wait();
                            try_reattach(*store, session, 2 * round + node as u16 + 2)
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().expect("racer"))
                    .collect()
            });
        let winners: Vec<usize> = outcomes
            .iter()
            .enumerate()
            .filter(|(_, (_, o))| matches!(o, Ok(CasOutcome::Committed)))
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: outcomes {:?}",
            outcomes.iter().map(|o| &o.1).collect::<Vec<_>>()
        );
        let winner = winners[0];
        let loser = &outcomes[1 - winner].1;
        match loser {
            Ok(CasOutcome::Conflict {
                current: Some(current),
            }) => {
                assert_eq!(
                    current, &outcomes[winner].0,
                    "round {round}: the loser sees the winner's record"
                )
            }
            other => panic!("round {round}: the loser got {other:?}, not a conflict"),
        }
        wins[winner] += 1;
        session = outcomes[winner].0.clone();
        // The reattach moved ownership to the winner in the same transaction.
        assert_eq!(
            a.store.owner(session.id).unwrap(),
            Some(NodeId::new(winner as u16 + 1))
        );
    }
    assert_eq!(session.state_version, 101);
    assert_eq!(b.store.get(session.id).unwrap().as_ref(), Some(&session));
    assert_one_chain(&b.store, session.id, 101);
    eprintln!("wins per node: {wins:?}");
}

#[test]
fn with_one_member_killed_everything_continues() {
    require_root();
    let mut cluster = EtcdCluster::start();
    let a = StoreNode::connect(&mut cluster, 1);
    let mut session = create(&a.store, fresh_id(1));
    for victim in 0..3 {
        cluster.kill(victim);
        for to in 0..5 {
            session = eventually(
                Duration::from_secs(10),
                "a reattach with one member down",
                || match try_reattach(&a.store, &session, to) {
                    (next, Ok(CasOutcome::Committed)) => Some(next),
                    (_, Ok(other)) => panic!("member {victim} down: unexpected {other:?}"),
                    (_, Err(_)) => None,
                },
            );
        }
        cluster.restart(victim);
        cluster.wait_healthy(Duration::from_secs(10));
    }
    assert!(
        a.store.lease_live(),
        "the lease survived each single failure"
    );
    assert_one_chain(&a.store, session.id, session.state_version);
}

#[test]
fn without_quorum_no_mutation_is_accepted_none_is_lost_and_service_resumes() {
    require_root();
    let mut cluster = EtcdCluster::start();
    let a = StoreNode::connect(&mut cluster, 1);
    let b = StoreNode::connect(&mut cluster, 2);
    let session = create(&a.store, fresh_id(1));
    let (acked, outcome) = try_reattach(&a.store, &session, 2);
    assert_eq!(outcome.unwrap(), CasOutcome::Committed);

    cluster.set_member_link(0, false);
    cluster.set_member_link(1, false);
    // Every attempt from either node fails for as long as quorum is lost: none is accepted.
    let until = Instant::now() + TEST_LEASE_TTL + Duration::from_millis(500);
    let mut refused = 0;
    while Instant::now() < until {
        for (node, store) in [(&a, 3), (&b, 4)] {
            let (_, outcome) = try_reattach(&node.store, &acked, store);
            assert!(
                outcome.is_err(),
                "a mutation was accepted without quorum: {outcome:?}"
            );
            refused += 1;
        }
    }
    assert!(refused >= 2);
    // The lease could not be renewed for a whole TTL: the node knows its ownership is ambiguous.
    assert!(
        !a.store.lease_live(),
        "the lease is still believed alive without quorum"
    );
    match try_reattach(&a.store, &acked, 5).1 {
        Err(StoreError::OwnershipAmbiguous { node: 1, .. }) => {}
        other => panic!("expected OWNERSHIP_AMBIGUOUS, got {other:?}"),
    }

    cluster.set_member_link(0, true);
    cluster.set_member_link(1, true);
    cluster.wait_healthy(Duration::from_secs(10));
    // Nothing acknowledged was lost, and nothing refused was applied.
    let stored = eventually(
        Duration::from_secs(10),
        "a read after quorum returned",
        || b.store.get(session.id).ok(),
    );
    assert_eq!(stored.as_ref(), Some(&acked));
    // Service resumes on both nodes once their leases are renewed.
    let next = eventually(
        Duration::from_secs(10),
        "a reattach after quorum returned",
        || match try_reattach(&b.store, &acked, 6) {
            (next, Ok(CasOutcome::Committed)) => Some(next),
            _ => None,
        },
    );
    eventually(Duration::from_secs(10), "node A's lease renewed", || {
        a.store.lease_live().then_some(())
    });
    // Its connections may still be coming back: a refused try is retried, and an attempt whose
    // answer was lost shows up as the stored record being exactly ours.
    eventually(
        Duration::from_secs(10),
        "a reattach on node A",
        || match try_reattach(&a.store, &next, 7) {
            (_, Ok(CasOutcome::Committed)) => Some(()),
            (ours, Ok(CasOutcome::Conflict { current })) if current.as_ref() == Some(&ours) => {
                Some(())
            }
            (_, Ok(other)) => panic!("node A after quorum returned: {other:?}"),
            (_, Err(_)) => None,
        },
    );
    assert_one_chain(&a.store, session.id, 4);
}

#[test]
fn a_node_cut_off_refuses_mutations_loses_its_lease_and_another_node_takes_the_session() {
    require_root();
    let mut cluster = EtcdCluster::start();
    let a = StoreNode::connect(&mut cluster, 1);
    let b = StoreNode::connect(&mut cluster, 2);
    let session = create(&a.store, fresh_id(1));
    let mut owners = b.store.watch_owners().expect("watch owners");
    assert_eq!(b.store.owner(session.id).unwrap(), Some(NodeId::new(1)));

    cluster.set_node_link(&a.net, false);
    assert!(
        try_reattach(&a.store, &session, 2).1.is_err(),
        "a cut-off node accepted a mutation"
    );
    // After its lease's TTL the cut-off node knows it owns nothing, and etcd dropped its owner key.
    eventually(
        TEST_LEASE_TTL * 2,
        "node A noticing its lease ran out",
        || (!a.store.lease_live()).then_some(()),
    );
    eventually(
        TEST_LEASE_TTL * 3,
        "etcd expiring node A's owner key",
        || (b.store.owner(session.id).unwrap().is_none()).then_some(()),
    );
    // The client reaches node B: the reattach moves the session there with version + 1.
    let (moved, outcome) = try_reattach(&b.store, &session, 3);
    assert_eq!(outcome.unwrap(), CasOutcome::Committed);
    assert_eq!(moved.state_version, session.state_version + 1);
    assert_eq!(b.store.owner(session.id).unwrap(), Some(NodeId::new(2)));
    // B's watch saw the owner key vanish, then name B.
    let mut seen = Vec::new();
    while seen.last() != Some(&Some(NodeId::new(2))) {
        let change = owners.blocking_recv().expect("the owner watch runs");
        if change.id == session.id {
            seen.push(change.owner);
        }
    }
    assert_eq!(seen, vec![None, Some(NodeId::new(2))]);

    // Back online, node A cannot move the session back from its stale view.
    cluster.set_node_link(&a.net, true);
    eventually(Duration::from_secs(10), "node A's new lease", || {
        a.store.lease_live().then_some(())
    });
    match try_reattach(&a.store, &session, 4).1 {
        Ok(CasOutcome::Conflict {
            current: Some(current),
        }) => assert_eq!(current, moved),
        other => panic!("a stale node's reattach: {other:?}"),
    }
}

#[test]
fn acknowledged_transitions_form_one_chain_per_session_under_faults() {
    require_root();
    let mut cluster = EtcdCluster::start();
    let nodes = [
        StoreNode::connect(&mut cluster, 1),
        StoreNode::connect(&mut cluster, 2),
    ];
    let ids: Vec<SessionId> = (0..3)
        .map(|_| create(&nodes[0].store, fresh_id(1)).id)
        .collect();
    // Every acknowledged transition: (session, version) -> the session it wrote.
    let acked: Mutex<BTreeMap<(SessionId, u64), Session>> = Mutex::new(BTreeMap::new());
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    std::thread::scope(|scope| {
        for (n, node) in nodes.iter().enumerate() {
            for worker in 0..2 {
                let (ids, acked, stop) = (&ids, &acked, stop.clone());
                scope.spawn(move || {
                    let mut to = (n * 2 + worker) as u16 * 10_000;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        for &id in ids {
                            to += 1;
                            let Ok(Some(current)) = node.store.get(id) else {
                                continue;
                            };
                            let (next, audit) = reattach(&current, to);
                            let outcome = node.store.compare_and_set(
                                id,
                                Expected::Version(current.state_version),
                                &next,
                                &audit,
                            );
                            if let Ok(CasOutcome::Committed) = outcome {
                                let previous =
                                    acked.lock().unwrap().insert((id, next.state_version), next);
                                assert!(
                                    previous.is_none(),
                                    "two acknowledged writes of session {id} at one version"
                                );
                            }
                        }
                    }
                });
            }
        }
        // Faults while the clients run: a member killed and restarted, a member cut off, node A cut off.
        let pause = || std::thread::sleep(Duration::from_millis(700));
        pause();
        cluster.kill(2);
        pause();
        cluster.restart(2);
        cluster.set_member_link(0, false);
        pause();
        cluster.set_member_link(0, true);
        cluster.set_node_link(&nodes[0].net, false);
        pause();
        cluster.set_node_link(&nodes[0].net, true);
        pause();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    cluster.wait_healthy(Duration::from_secs(10));
    let acked = acked.into_inner().unwrap();
    assert!(
        acked.len() >= 10,
        "only {} transitions were acknowledged",
        acked.len()
    );
    for &id in &ids {
        let store = &nodes[1].store;
        let last = eventually(Duration::from_secs(10), "reading the final state", || {
            store.get(id).ok().flatten()
        });
        assert_one_chain(store, id, last.state_version);
        let audit = store.audit(id).unwrap();
        // Every acknowledged transition is in the one chain, exactly as acknowledged.
        for ((_, version), session) in acked.range((id, 0)..=(id, u64::MAX)) {
            let change = &audit[*version as usize - 1];
            assert_eq!(
                change.binding, session.binding,
                "session {id} v{version}: the chain holds another write than the acknowledged one"
            );
        }
    }
}
