//! The demo's closing table, from the gateway's own answers (`jvpn sessions list`, `jvpn audit`,
//! `jvpn stats`) and the traffic helper's report (bytes sent and received, late packets re-sent).
//! It fails when what the demo claims does not hold: one session, +1 version per jump, every
//! byte through the tunnel intact.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use serde_json::Value;

use super::topology::UPLINKS;

/// Runs `jvpn ARGS --socket SOCKET --json` and parses what it prints.
fn jvpn_json(jvpn: &Path, socket: &Path, args: &[&str]) -> Result<Value> {
    let out = Command::new(jvpn)
        .args(args)
        .arg("--socket")
        .arg(socket)
        .arg("--json")
        .output()
        .with_context(|| format!("running `jvpn {}`", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`jvpn {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("`jvpn {}` printed no JSON", args.join(" ")))
}

fn count(value: &Value) -> u64 {
    value.as_u64().unwrap_or(0)
}

/// Prints the summary; `traffic` is the report file `jvpn-demo-traffic` wrote.
pub fn print(jvpn: &Path, socket: &Path, traffic: &Path) -> Result<()> {
    let report: Value = serde_json::from_slice(
        &std::fs::read(traffic).context("reading the traffic helper's report")?,
    )
    .context("the traffic helper's report is not JSON")?;
    let sessions = jvpn_json(jvpn, socket, &["sessions", "list"])?;
    let sessions = sessions.as_array().cloned().unwrap_or_default();
    ensure!(
        sessions.len() == 1,
        "expected one session from handshake to close, the gateway lists {}",
        sessions.len()
    );
    let id = sessions[0]["id"].as_str().unwrap_or_default().to_string();
    let audit = jvpn_json(jvpn, socket, &["audit", &id])?;
    let audit = audit.as_array().cloned().unwrap_or_default();
    let versions: Vec<u64> = audit.iter().map(|e| count(&e["version"])).collect();
    let jumps = count(&report["jumps"]);
    let reattaches = audit.iter().filter(|e| e["cause"] == "REATTACH").count() as u64;
    ensure!(
        versions.windows(2).all(|w| w[1] == w[0] + 1) && reattaches == jumps,
        "the audit should read +1 per commit and one REATTACH per jump ({jumps}): {versions:?}"
    );
    let path: Vec<&str> = (0..=jumps as usize)
        .map(|n| UPLINKS[n % UPLINKS.len()].name)
        .collect();
    let history: Vec<String> = audit
        .iter()
        .map(|e| format!("{}({})", e["version"], e["cause"].as_str().unwrap_or("?")))
        .collect();

    let stats = jvpn_json(jvpn, socket, &["stats"])?;
    let (dp, controller, tunnel) = (&stats["dataplane"], &stats["controller"], &stats["tunnel"]);
    let late = count(&report["late_resent"]);
    println!(
        "  {:<26} {id} (the only one: every jump kept it)",
        "session"
    );
    println!("  {:<26} {jumps}: {}", "jumps", path.join(" -> "));
    println!("  {:<26} {}", "versions (jvpn audit)", history.join(" "));
    println!(
        "  {:<26} {} sent, {} received in {:.1} s: {}",
        "bytes through the tunnel",
        grouped(count(&report["bytes_sent"])),
        grouped(count(&report["bytes_received"])),
        report["seconds"].as_f64().unwrap_or(0.0),
        if report["intact"] == true {
            "identical"
        } else {
            "ALTERED"
        }
    );
    println!(
        "  {:<26} {late} re-sent on the uplinks left behind (XDP also drops the client's own \
         packets in flight on the old uplink during a jump)",
        "late packets"
    );
    println!("\n  {:<34} {:>10} {:>14}", "gateway", "packets", "bytes");
    let row = |name: &str, count: &Value| {
        println!(
            "  {name:<34} {:>10} {:>14}",
            grouped(count["packets"].as_u64().unwrap_or(0)),
            grouped(count["bytes"].as_u64().unwrap_or(0))
        );
    };
    row("XDP accepted (DATA, KEEPALIVE)", &dp["accepted"]);
    row("XDP to the controller (control)", &dp["to_controller"]);
    let reasons = |list: &Value, what: &str| {
        for d in list.as_array().into_iter().flatten() {
            if count(&d["packets"]) > 0 {
                row(
                    &format!("{what} {}", d["reason"].as_str().unwrap_or("?")),
                    d,
                );
            }
        }
    };
    reasons(&dp["drops"], "XDP dropped");
    let xdp_dropped: u64 = dp["drops"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| count(&d["packets"]))
        .sum();
    reasons(&controller["rejects"], "controller refused");
    row("tunnel: opened, to the TUN", &tunnel["upstream"]);
    row("tunnel: from the TUN, sealed", &tunnel["downstream"]);
    println!(
        "  controller: {} transitions, {} CAS conflicts, {} AEAD failures; \
         tunnel: {} packets with a foreign inner source",
        controller["transitions"],
        controller["cas_conflicts"],
        count(&controller["seal_failures"]),
        count(&tunnel["upstream_foreign_source"])
    );
    ensure!(
        xdp_dropped >= late,
        "the XDP program dropped {xdp_dropped} packets, fewer than the {late} late ones re-sent"
    );
    ensure!(
        report["intact"] == true,
        "the bytes through the tunnel arrived altered; see the traffic lines above"
    );
    Ok(())
}

/// `n` with thousands separators, for reading at a glance.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::grouped;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(57_753_600), "57,753,600");
    }
}
