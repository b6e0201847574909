//! The cluster demo's closing table and its checks, from the gateways' own answers (`jvpn
//! stats`, `jvpn audit`, `jvpn events`) and the stream's outcome: every byte identical, one
//! version more per move in one audit chain, each node left behind handing the session over, and
//! the packets that reached a node without the session dropped there by its XDP program.

use crate::stream::Outcome;
use jvpn_tests::gateway::GatewayFixture;
use std::collections::BTreeMap;
use std::time::Duration;

/// XDP drop counts by reason name, per `jvpn stats`.
#[derive(Clone, Debug, Default)]
pub struct Drops(BTreeMap<String, u64>);

impl Drops {
    /// `gateway`'s drop counters now.
    pub fn of(gateway: &GatewayFixture) -> Self {
        let stats = gateway.cli_json(&["stats"]);
        Self(
            stats["dataplane"]["drops"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| Some((d["reason"].as_str()?.to_owned(), d["packets"].as_u64()?)))
                .collect(),
        )
    }

    /// What was dropped since `earlier`, by reason (reasons with none left out).
    pub fn since(&self, earlier: &Drops) -> Drops {
        Drops(
            self.0
                .iter()
                .map(|(reason, n)| (reason.clone(), n - earlier.0.get(reason).unwrap_or(&0)))
                .filter(|(_, n)| *n > 0)
                .collect(),
        )
    }

    /// Packets dropped for `reason`.
    pub fn of_reason(&self, reason: &str) -> u64 {
        self.0.get(reason).copied().unwrap_or(0)
    }

    fn describe(&self) -> String {
        if self.0.is_empty() {
            return "none".into();
        }
        self.0
            .iter()
            .map(|(reason, n)| format!("{n} {reason}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One move of the session between the gateways.
pub struct Move {
    /// "A" or "B": where the front sent the client.
    pub to: &'static str,
    /// The session's version once the new node took it over.
    pub version: u64,
    /// From the flip to the takeover's commit in etcd.
    pub took: Duration,
    /// From the flip to the stream's first new bytes at the server.
    pub resumed: Duration,
    /// What the node taking over dropped between the flip and its takeover: the session's
    /// packets reaching a node that did not hold it.
    pub dropped_before: Drops,
    /// Whether that node had held the session before (it is coming back): its drops are then
    /// of a session that had left it.
    pub held_before: bool,
}

/// Whether `gateway`'s events report that session `id` left it for node `node`.
pub fn released_to(gateway: &GatewayFixture, id: &str, node: u16) -> bool {
    let detail = format!("node {node} owns the session now");
    gateway
        .events()
        .iter()
        .any(|e| e["session"] == id && e["detail"].as_str().is_some_and(|d| d.contains(&detail)))
}

/// Everything the summary reads and checks.
pub struct Facts<'a> {
    /// The session's id, as the CLI prints it.
    pub id: &'a str,
    /// The moves, in order.
    pub moves: &'a [Move],
    /// What the stream carried.
    pub outcome: &'a Outcome,
    /// `jvpn audit ID --json` from gateway A at the end.
    pub audit: serde_json::Value,
    /// Whether A reported the session gone to B, and B the session gone back to A.
    pub released: [bool; 2],
}

/// Prints the summary; returns the checks that failed (empty: the demo showed what it claims).
pub fn print(facts: &Facts) -> Vec<String> {
    let audit = facts.audit.as_array().cloned().unwrap_or_default();
    let versions: Vec<u64> = audit.iter().filter_map(|e| e["version"].as_u64()).collect();
    let history: Vec<String> = audit
        .iter()
        .map(|e| format!("{}({})", e["version"], e["cause"].as_str().unwrap_or("?")))
        .collect();
    let outcome = facts.outcome;
    println!("  {:<28} {}", "session", facts.id);
    println!(
        "  {:<28} {}",
        "versions (jvpn audit, etcd)",
        history.join(" ")
    );
    for (n, m) in facts.moves.iter().enumerate() {
        println!(
            "  move {} {:<21} version {}, taken over {:.2} s after the flip; the stream's next bytes \
             at {:.2} s (TCP's backed-off retransmission)",
            n + 1,
            format!("to gateway {}:", m.to),
            m.version,
            m.took.as_secs_f64(),
            m.resumed.as_secs_f64()
        );
        println!(
            "  {:<28} {}'s XDP dropped {} of the session's packets before its takeover ({})",
            "",
            m.to,
            m.dropped_before.describe(),
            if m.held_before {
                format!("the session had left {}", m.to)
            } else {
                format!("{} did not hold the session yet", m.to)
            }
        );
    }
    println!(
        "  {:<28} {} sent, {} received: {}",
        "bytes through the tunnel",
        outcome.sent,
        outcome.received.bytes,
        if outcome.intact() {
            "identical"
        } else {
            "ALTERED"
        }
    );

    let mut failed = Vec::new();
    if !outcome.intact() {
        failed.push(format!(
            "the stream arrived altered: {} bytes sent, {} received, first difference at {:?}",
            outcome.sent, outcome.received.bytes, outcome.received.first_mismatch
        ));
    }
    let expected: Vec<u64> = (1..=facts.moves.len() as u64 + 1).collect();
    let per_move: Vec<u64> = facts.moves.iter().map(|m| m.version).collect();
    if versions != expected || per_move != expected[1..] {
        failed.push(format!(
            "expected one version more per move, {expected:?}: the audit reads {versions:?}, the moves {per_move:?}"
        ));
    }
    if let Some(back) = facts.moves.get(1) {
        if back.dropped_before.of_reason("UNKNOWN_SESSION") == 0 {
            failed.push(
                "gateway A dropped none of the session's packets after it left (UNKNOWN_SESSION)"
                    .into(),
            );
        }
    }
    for (released, what) in facts.released.iter().zip([
        "A handed the session to node 2",
        "B handed it back to node 1",
    ]) {
        if !released {
            failed.push(format!("no event says {what}"));
        }
    }
    failed
}
