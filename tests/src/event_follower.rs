//! A `jvpn events --follow --json` reader for tests that count what the event stream reported
//! under load: refusals, the dataplane's EVENTS_LOST notices, and records skipped for a slow
//! reader, so "no silent loss" can be checked against the drop counters.

use crate::gateway::{jvpn_binary, GatewayFixture};
use crate::guard::ChildGuard;
use crate::tunnel::eventually;
use serde_json::Value;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

/// What a `jvpn events --follow --json` reader saw after a marker.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    /// Dataplane SECURITY_EVENT records.
    pub dataplane_refusals: u64,
    /// Records the dataplane's EVENTS_LOST notices stand for.
    pub dataplane_lost: u64,
    /// Records this reader skipped for being slow (controller EVENTS_LOST notices).
    pub skipped: u64,
}

/// A `jvpn events --follow --json` process and the lines it printed. Lines are parsed only when
/// tallied, so the reader never falls behind for its own slowness.
pub struct EventFollower {
    lines: Arc<Mutex<Vec<String>>>,
    /// Lines tallied so far and their tally (all after one marker).
    tallied: Mutex<(usize, Tally)>,
    _child: ChildGuard,
}

impl EventFollower {
    /// Starts `jvpn events --follow --json` against `f`'s gateway and waits for its history.
    pub fn start(f: &GatewayFixture) -> Self {
        let mut child = Command::new(jvpn_binary())
            .args(["events", "--follow", "--json", "--socket"])
            .arg(f.socket())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn jvpn events --follow");
        let stdout = child.stdout.take().expect("stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        std::thread::spawn({
            let lines = lines.clone();
            move || {
                for line in std::io::BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    lines.lock().expect("lines").push(line);
                }
            }
        });
        let follower = Self {
            lines,
            tallied: Mutex::new((0, Tally::default())),
            _child: ChildGuard::new(child),
        };
        eventually("jvpn events --follow to print the history", || {
            !follower.lines.lock().expect("lines").is_empty()
        });
        follower
    }

    /// Every record printed so far, parsed.
    pub fn records(&self) -> Vec<Value> {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
            .collect()
    }

    /// The records after `marker` (the same at every call) printed so far.
    pub fn tally(&self, marker: u64) -> Tally {
        let new: Vec<String> = {
            let tallied = self.tallied.lock().expect("tally").0;
            self.lines.lock().expect("lines")[tallied..].to_vec()
        };
        let mut tallied = self.tallied.lock().expect("tally");
        tallied.0 += new.len();
        for line in new {
            let r: Value = serde_json::from_str(&line).expect("one JSON object per line");
            if r["seq"].as_u64() <= Some(marker) {
                continue;
            }
            let lost = r["lost"].as_u64().unwrap_or(0);
            match (r["kind"].as_str(), r["source"].as_str()) {
                (Some("SECURITY_EVENT"), Some("dataplane")) => tallied.1.dataplane_refusals += 1,
                (Some("EVENTS_LOST"), Some("dataplane")) => tallied.1.dataplane_lost += lost,
                (Some("EVENTS_LOST"), _) => tallied.1.skipped += lost,
                _ => {}
            }
        }
        tallied.1
    }
}
