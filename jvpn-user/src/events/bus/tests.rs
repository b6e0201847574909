//! The bus's order, loss accounting and histories, including a burst that must not evict the
//! audit trail.

use super::*;
use jvpn_common::{RejectReason, SessionState};

fn refusal(session: u64) -> EventRecord {
    EventRecord::refusal(Some(session), RejectReason::StaleVersion)
}

#[tokio::test]
async fn records_from_many_tasks_form_one_strictly_increasing_sequence() {
    let bus = Arc::new(EventBus::new(10_000, 0));
    let mut sub = bus.subscribe();
    let mut tasks = Vec::new();
    for task in 0..4u64 {
        let bus = Arc::clone(&bus);
        tasks.push(tokio::spawn(async move {
            for i in 0..500u64 {
                bus.publish_at(refusal(task * 1000 + i + 1), 5);
                tokio::task::yield_now().await;
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher task panicked");
    }
    let mut per_task_last = [0u64; 4];
    for want_seq in 1..=2000u64 {
        let r = sub.try_recv().expect("every published record is delivered");
        assert_eq!(r.seq, want_seq, "sequence numbers are dense and in order");
        assert_eq!(r.time_ms, 5);
        let session = r.session.expect("refusals here carry a session");
        let task = usize::try_from((session - 1) / 1000).expect("small");
        assert!(
            session > per_task_last[task],
            "one task's records keep their order"
        );
        per_task_last[task] = session;
    }
    assert_eq!(sub.try_recv(), None);
    assert_eq!(bus.last_seq(), 2000);
    assert_eq!(bus.losses().total(), 0);
}

#[test]
fn a_lagging_subscriber_gets_one_events_lost_notice_with_the_exact_count() {
    let bus = EventBus::new(4, 0);
    let mut sub = bus.subscribe();
    for s in 1..=10 {
        bus.publish_at(refusal(s), 0);
    }
    let notice = sub.try_recv().expect("a loss notice");
    assert_eq!(notice.kind, EventKind::EventsLost);
    assert_eq!(notice.lost, Some(6));
    assert_eq!(notice.seq, 6, "the notice stands for seq 1..=6");
    let rest: Vec<u64> = std::iter::from_fn(|| sub.try_recv())
        .map(|r| r.seq)
        .collect();
    assert_eq!(rest, vec![7, 8, 9, 10]);
    assert_eq!(bus.losses().subscribers, 6);
    assert_eq!(bus.losses().total(), 6);
}

#[test]
fn dataplane_losses_are_counted_and_published_in_order() {
    let bus = EventBus::new(16, 16);
    let mut sub = bus.subscribe();
    bus.publish_at(refusal(1), 0);
    assert_eq!(
        bus.report_dataplane_loss(0),
        None,
        "nothing lost, nothing said"
    );
    assert_eq!(bus.report_dataplane_loss(42), Some(2));
    bus.publish_at(
        EventRecord::state_change(1, None, (SessionState::Birth, 0)),
        0,
    );
    let kinds: Vec<(u64, EventKind)> = std::iter::from_fn(|| sub.try_recv())
        .map(|r| (r.seq, r.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (1, EventKind::SecurityEvent),
            (2, EventKind::EventsLost),
            (3, EventKind::StateChange)
        ]
    );
    assert_eq!(bus.losses().dataplane, 42);
}

#[test]
fn a_new_subscriber_sees_recent_history_then_live_records_without_gap() {
    let bus = EventBus::new(16, 3);
    for s in 1..=5 {
        bus.publish_at(refusal(s), 0);
    }
    let mut sub = bus.subscribe();
    bus.publish_at(refusal(6), 0);
    let seqs: Vec<u64> = std::iter::from_fn(|| sub.try_recv())
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, vec![3, 4, 5, 6]);
    let mut late = bus.subscribe();
    assert_eq!(
        late.take_backlog()
            .iter()
            .map(|r| r.seq)
            .collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    assert_eq!(late.try_recv(), None, "backlog is taken once");
}

#[test]
fn a_burst_of_refusals_does_not_evict_state_changes_from_the_history() {
    let bus = EventBus::with_audit_history(16, 4, 8);
    let change = |v| EventRecord::state_change(1, None, (SessionState::Attached, v));
    bus.publish_at(change(1), 0);
    bus.publish_at(refusal(1), 0);
    bus.publish_at(change(2), 0);
    for _ in 0..1000 {
        bus.publish_at(refusal(1), 0);
    }
    bus.publish_at(change(3), 0);
    let backlog: Vec<(u64, EventKind)> = bus
        .subscribe()
        .take_backlog()
        .iter()
        .map(|r| (r.seq, r.kind))
        .collect();
    let changes: Vec<u64> = backlog
        .iter()
        .filter(|(_, k)| *k == EventKind::StateChange)
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(
        changes,
        vec![1, 3, 1004],
        "every state change survives the burst"
    );
    assert_eq!(
        backlog
            .iter()
            .filter(|(_, k)| *k != EventKind::StateChange)
            .count(),
        4,
        "refusals keep their own bound"
    );
    assert!(
        backlog.windows(2).all(|w| w[0].0 < w[1].0),
        "the merged backlog is in sequence order: {backlog:?}"
    );
    assert_eq!(backlog.last().map(|r| r.0), Some(1004));
}

#[test]
fn the_audit_history_keeps_its_own_bound() {
    let bus = EventBus::with_audit_history(16, 2, 3);
    for v in 1..=10 {
        bus.publish_at(
            EventRecord::state_change(1, None, (SessionState::Attached, v)),
            0,
        );
    }
    let seqs: Vec<u64> = bus
        .subscribe()
        .take_backlog()
        .iter()
        .map(|r| r.seq)
        .collect();
    assert_eq!(seqs, vec![8, 9, 10]);
}
