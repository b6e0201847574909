//! How client commands print what the gateway answered: aligned text for people, or the control
//! protocol's JSON (`--json`) for programs.

use crate::control::{
    AuditEntry, PacketCount, SessionDetail, SessionSummary, StatsReport, StatusReport,
};
use crate::events::format::rfc3339_millis;
use crate::events::names::session_id_text;
use serde::Serialize;
use std::fmt::Write as _;

/// A value as pretty JSON with a trailing newline.
pub fn json<T: Serialize>(value: &T) -> String {
    // The DTOs are plain data with string keys; serializing them cannot fail.
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    text
}

fn duration_text(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h:02}h{m:02}m")
    } else if h > 0 {
        format!("{h}h{m:02}m{s:02}s")
    } else {
        format!("{m}m{s:02}s")
    }
}

/// `jvpn status`.
pub fn status(report: &StatusReport) -> String {
    let s = &report.sessions;
    format!(
        "jvpn gateway {} on {} (pid {}), up {}\n  \
         port {}, XDP {}, state in {}\n  \
         sessions: {} attached, {} recovering, {} in handshake, {} terminated (table size {})\n  \
         events lost: {} (dataplane {}, slow readers {})\n",
        report.version,
        report.iface,
        report.pid,
        duration_text(report.uptime_secs),
        report.port,
        report.xdp_mode,
        report.state_dir,
        s.attached,
        s.recovering,
        s.birth,
        s.terminated,
        report.max_sessions,
        report.events_lost.total(),
        report.events_lost.dataplane,
        report.events_lost.subscribers,
    )
}

/// `jvpn sessions list`.
pub fn session_list(sessions: &[SessionSummary]) -> String {
    if sessions.is_empty() {
        return "no sessions\n".to_string();
    }
    let mut out = format!(
        "{:<16}  {:<10}  {:>8}  {:<40}  {:<16}  {}\n",
        "SESSION", "STATE", "VERSION", "PEER", "CLIENT", "LAST SEEN"
    );
    for s in sessions {
        let _ = writeln!(
            out,
            "{:<16}  {:<10}  {:>8}  {:<40}  {:<16}  {}",
            session_id_text(s.id),
            s.state.name(),
            s.version,
            s.peer.map_or("-".to_string(), |p| p.to_string()),
            s.client.escape_debug().to_string(),
            s.last_seen_ms.map_or("-".to_string(), rfc3339_millis),
        );
    }
    out
}

/// `jvpn sessions show ID`.
pub fn session_detail(d: &SessionDetail) -> String {
    let s = &d.summary;
    let opt_addr = |a: Option<std::net::SocketAddr>| a.map_or("-".to_string(), |a| a.to_string());
    format!(
        "session {}\n  state:           {} (version {})\n  client:          {} ({})\n  \
         peer:            {}\n  pending path:    {}\n  created:         {}\n  \
         last transition: {}\n  last seen:       {}\n  nonces:          rx {} / tx {}\n",
        session_id_text(s.id),
        s.state.name(),
        s.version,
        s.client.escape_debug(),
        d.client_key.escape_debug(),
        opt_addr(s.peer),
        opt_addr(d.pending_path),
        rfc3339_millis(s.created_ms),
        rfc3339_millis(d.last_transition_ms),
        s.last_seen_ms.map_or("-".to_string(), rfc3339_millis),
        d.rx_nonce,
        d.tx_nonce,
    )
}

/// `jvpn sessions terminate ID`.
pub fn terminated(s: &SessionSummary) -> String {
    format!(
        "session {} is {} at version {}\n",
        session_id_text(s.id),
        s.state.name(),
        s.version
    )
}

fn counts(c: PacketCount) -> String {
    format!("{:>12} packets {:>16} bytes", c.packets, c.bytes)
}

/// `jvpn stats`.
pub fn stats(r: &StatsReport) -> String {
    let dp = &r.dataplane;
    let mut out = format!(
        "dataplane (summed over CPUs)\n  {:<22}{}\n  {:<22}{}\n  {:<22}{}\n",
        "accepted",
        counts(dp.accepted),
        "to controller",
        counts(dp.to_controller),
        "dropped",
        counts(dp.dropped()),
    );
    for d in dp.drops.iter().filter(|d| d.count.packets > 0) {
        let _ = writeln!(out, "    {:<20}{}", d.reason.name(), counts(d.count));
    }
    let c = &r.controller;
    let _ = write!(
        out,
        "controller\n  {:<22}{:>12}\n  {:<22}{:>12}\n  {:<22}{:>12}\n",
        "transitions",
        c.transitions,
        "CAS conflicts",
        c.cas_conflicts,
        "rejects",
        c.rejects.iter().map(|r| r.count.packets).sum::<u64>(),
    );
    for rej in &c.rejects {
        let _ = writeln!(
            out,
            "    {:<20}{:>12}",
            rej.reason.name(),
            rej.count.packets
        );
    }
    let _ = write!(
        out,
        "  {:<22}{:>12}\n  {:<22}{:>12}\n  {:<22}{:>12}\n",
        "seal failures",
        c.seal_failures,
        "REJECTs suppressed",
        c.rejects_suppressed,
        "map update failures",
        c.map_failures,
    );
    let t = &r.tunnel;
    let _ = write!(
        out,
        "tunnel\n  {:<22}{}\n  {:<22}{}\n  {:<22}{:>12}\n  {:<22}{:>12}\n",
        "upstream (to TUN)",
        counts(t.upstream),
        "downstream (from TUN)",
        counts(t.downstream),
        "foreign source",
        t.upstream_foreign_source,
        "unroutable",
        t.downstream_unroutable,
    );
    let _ = writeln!(
        out,
        "events lost\n  {:<22}{:>12}\n  {:<22}{:>12}",
        "dataplane", r.events_lost.dataplane, "slow readers", r.events_lost.subscribers
    );
    out
}

/// `jvpn audit ID`.
pub fn audit(entries: &[AuditEntry]) -> String {
    if entries.is_empty() {
        return "no audit records\n".to_string();
    }
    let mut out = format!(
        "{:>8}  {:<24}  {:<10}  {:<10}  {:<20}  {}\n",
        "VERSION", "TIME", "FROM", "TO", "CAUSE", "PEER"
    );
    for e in entries {
        let _ = writeln!(
            out,
            "{:>8}  {:<24}  {:<10}  {:<10}  {:<20}  {}",
            e.version,
            rfc3339_millis(e.time_ms),
            e.from_state.map_or("-", |s| s.name()),
            e.to_state.name(),
            e.cause.escape_debug().to_string(),
            e.peer.map_or("-".to_string(), |p| p.to_string()),
        );
    }
    out
}
