//! The real jvpn XDP object through `BPF_PROG_TEST_RUN`, one table-driven test per family (IPv4,
//! IPv6, and both behind an 802.1Q tag) over every row of the decision list of issue 2, in its
//! order: each case asserts the verdict, the counter slot that moved (by one packet of the frame's
//! bytes, and no other) and the security event (reason, session, version, nonce, type, source).
//!
//! Runs as root (loading BPF programs needs it); each case loads its own copy of the object, so
//! cases share no map state.
//!
//! Every row runs unless `JVPN_DECISION_LIST_SECONDS` gives each table a time budget (the kernels
//! tier does: there the verifier, run for every row's load, is about ten times slower). Then the
//! first row of each kind (its step of the list and its outcome: verdict, reason and counter) runs
//! whatever the time, so every step and every outcome it gives is always covered; the other rows
//! run, in order, while the budget lasts. The test says how many rows ran.

mod xdp_decision_rows;
mod xdp_support;

use jvpn_common::maps::DataplaneMode;
use jvpn_common::{RejectReason, TransportBinding};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use xdp_decision_rows::*;
use xdp_support::*;

/// The variable giving each table a time budget, in seconds.
const BUDGET_VAR: &str = "JVPN_DECISION_LIST_SECONDS";

fn run_table(family: &Family, label: &str) {
    require_root("xdp_decision_list");
    let budget = std::env::var(BUDGET_VAR).ok().map(|v| {
        Duration::from_secs(
            v.parse()
                .unwrap_or_else(|e| panic!("{BUDGET_VAR}={v} is not a number of seconds: {e}")),
        )
    });
    let started = Instant::now();
    let cases = decision_list(family);
    let mut kinds = BTreeSet::new();
    let (mut ran, mut failures) = (0, Vec::new());
    for case in &cases {
        let first_of_kind = kinds.insert(case.kind());
        if !first_of_kind && budget.is_some_and(|b| started.elapsed() >= b) {
            continue;
        }
        ran += 1;
        if let Err(why) = run_case(family, case) {
            failures.push(format!("{label}: {}: {why}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // The kernels tier shows this line in its report.
    println!(
        "report: {label}: {ran} of {} rows in {:.0} s, every one of the {} kinds (step, outcome)",
        cases.len(),
        started.elapsed().as_secs_f64(),
        kinds.len()
    );
}

fn run_case(family: &Family, case: &Case) -> Result<(), String> {
    let mut dp = TestDataplane::load(1024);
    dp.set_config(config(DataplaneMode::Enforce));
    if let Some(entry) = case.session {
        dp.set_raw_session(SESSION, entry);
    }
    for frame in &case.before {
        dp.run(frame);
    }
    dp.events();
    let before = dp.counters();
    let verdict = dp.run(&case.frame);
    let moved = counter_delta(&before, &dp.counters());
    let events = dp.events();
    let len = case.frame.len() as u64;
    let (want_verdict, want_slot) = match case.expect {
        Expect::Pass(slot) => (XDP_PASS, slot),
        Expect::Drop(reason, _) => (XDP_DROP, reason.counter_slot()),
    };
    if verdict != want_verdict {
        return Err(format!("verdict {verdict}, expected {want_verdict}"));
    }
    if moved != [(want_slot, 1, len)] {
        return Err(format!(
            "counters moved {moved:?}, expected [({want_slot}, 1, {len})]"
        ));
    }
    match case.expect {
        Expect::Pass(_) if !events.is_empty() => Err(format!("a pass emitted events {events:?}")),
        Expect::Pass(_) => Ok(()),
        Expect::Drop(reason, [session_id, state_version, nonce, msg_type]) => {
            let source = if reason == RejectReason::TransportMismatch {
                family.other_port
            } else {
                family.client
            };
            let source = TransportBinding::from_socket_addr(source);
            match events.as_slice() {
                [e] if e.reason == reason.code()
                    && e.session_id == session_id
                    && e.state_version == state_version
                    && e.nonce == nonce
                    && e.msg_type as u64 == msg_type
                    && e.addr == source.addr
                    && e.port == source.port
                    && e.len as u64 == len
                    && e.time_ns > 0 =>
                {
                    Ok(())
                }
                other => Err(format!(
                    "events {other:?}, expected one {} for session {session_id:#x} version \
                     {state_version} nonce {nonce} type {msg_type} from {source:?}",
                    reason.name()
                )),
            }
        }
    }
}

#[test]
fn decision_list_ipv4() {
    run_table(&Family::v4(None), "IPv4");
}

#[test]
fn decision_list_ipv6() {
    run_table(&Family::v6(None), "IPv6");
}

#[test]
fn decision_list_behind_a_vlan_tag() {
    run_table(&Family::v4(Some(7)), "IPv4 in VLAN 7");
    run_table(&Family::v6(Some(7)), "IPv6 in VLAN 7");
}
