//! How `jvpn show` and `jvpn reload` print for people, in the spirit of `wg show`: a block per
//! client, its fields indented and aligned by label. No colour, so the text reads the same on a
//! terminal, in a pipe and in a log.

use crate::control::{ClientShow, ReloadReport, SessionShow, ShowReport};
use crate::events::format::rfc3339_millis;
use crate::events::names::session_id_text;
use std::fmt::Write as _;

/// `jvpn show`.
pub fn show(r: &ShowReport) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "gateway: {}", r.iface);
    field(&mut out, 2, "public key", &r.public_key);
    field(&mut out, 2, "listening port", &r.port.to_string());
    let drops = if r.drops.is_empty() {
        "none".to_string()
    } else {
        r.drops
            .iter()
            .map(|d| format!("{} {}", d.reason.name(), d.count.packets))
            .collect::<Vec<_>>()
            .join(", ")
    };
    field(&mut out, 2, "xdp drops (all)", &drops);
    for client in &r.clients {
        out.push('\n');
        client_block(&mut out, client);
    }
    out
}

fn client_block(out: &mut String, c: &ClientShow) {
    let note = if c.configured {
        ""
    } else {
        " (no longer configured)"
    };
    let _ = writeln!(out, "client: {}{note}", c.name);
    field(out, 2, "public key", &c.public_key);
    if !c.allowed_ips.is_empty() {
        field(out, 2, "allowed ips", &c.allowed_ips.join(", "));
    }
    let tallies = |t: &[crate::control::ReasonTally]| {
        t.iter()
            .map(|r| format!("{} {}", r.reason.name(), r.count))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !c.refusals.is_empty() {
        field(out, 2, "refusals", &tallies(&c.refusals));
    }
    if !c.dataplane_drops.is_empty() {
        field(out, 2, "xdp drops (seen)", &tallies(&c.dataplane_drops));
    }
    if c.sessions.is_empty() {
        field(out, 2, "sessions", "none");
    }
    for s in &c.sessions {
        session_block(out, s);
    }
}

fn session_block(out: &mut String, s: &SessionShow) {
    let _ = writeln!(out, "  session: {}", session_id_text(s.id));
    field(
        out,
        4,
        "state",
        &format!("{} (version {})", s.state.name(), s.version),
    );
    if let Some(endpoint) = s.endpoint {
        field(out, 4, "endpoint", &endpoint.to_string());
    }
    field(out, 4, "latest handshake", &rfc3339_millis(s.handshake_ms));
    field(out, 4, "last seen", &rfc3339_millis(s.last_seen_ms));
    if let Some(j) = s.last_jump {
        field(
            out,
            4,
            "last jump",
            &format!(
                "{} -> {} at {} (version {})",
                j.from,
                j.to,
                rfc3339_millis(j.at_ms),
                j.version
            ),
        );
    }
    field(
        out,
        4,
        "transfer",
        &format!(
            "{} B received ({} packets), {} B sent ({} packets)",
            s.rx.bytes, s.rx.packets, s.tx.bytes, s.tx.packets
        ),
    );
}

/// One `label: value` line, the values aligned as `wg show` aligns them.
fn field(out: &mut String, indent: usize, label: &str, value: &str) {
    let _ = writeln!(out, "{:indent$}{:<17} {value}", "", format!("{label}:"));
}

/// `jvpn reload`.
pub fn reloaded(r: &ReloadReport) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut out = String::from("config reloaded\n");
    field(&mut out, 2, "added", &list(&r.added));
    field(&mut out, 2, "removed", &list(&r.removed));
    field(&mut out, 2, "changed", &list(&r.changed));
    field(&mut out, 2, "renamed", &list(&r.renamed));
    field(&mut out, 2, "unchanged", &r.unchanged.to_string());
    let ended: Vec<String> = r
        .terminated
        .iter()
        .map(|e| format!("{} (version {})", session_id_text(e.id), e.version))
        .collect();
    field(&mut out, 2, "terminated", &list(&ended));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_align_like_wg_show() {
        let mut out = String::new();
        field(&mut out, 2, "public key", "K");
        field(&mut out, 2, "listening port", "51900");
        let columns: Vec<usize> = out.lines().map(|l| l.rfind(' ').unwrap()).collect();
        assert_eq!(columns[0], columns[1], "{out}");
        assert!(!out.contains('\x1b'), "no colour codes: {out:?}");
    }
}
