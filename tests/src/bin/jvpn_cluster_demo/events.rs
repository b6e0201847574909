//! The two gateways' live event streams in the demo's output: `jvpn events --follow` against each
//! gateway's control socket, every line printed as it comes with the gateway's label, so the
//! takeovers (STATE_CHANGE at version + 1), the releases (the node left behind hands the session
//! to its new owner) and the drops of packets that reach a node without the session show where
//! and when they happen. Beside them, the client's own account of each move: the lines of its log
//! about reattaching ([`ClientLogTail`]).

use jvpn_tests::gateway::{jvpn_binary, GatewayFixture};
use jvpn_tests::guard::ChildGuard;
use std::io::BufRead;
use std::process::{Command, Stdio};

/// A running `jvpn events --follow` whose lines are echoed; stopped when dropped.
pub struct EventEcho {
    _follower: ChildGuard,
}

impl EventEcho {
    /// Follows `gateway`'s events, printing each line after `label`.
    pub fn start(gateway: &GatewayFixture, label: &'static str) -> Self {
        let mut follower = ChildGuard::spawn(
            Command::new(jvpn_binary())
                .args(["events", "--follow", "--socket"])
                .arg(gateway.socket())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::null()),
        );
        let stdout = follower
            .child()
            .stdout
            .take()
            .expect("the follower's stdout is piped");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                println!("  {label} | {line}");
            }
        });
        Self {
            _follower: follower,
        }
    }
}

/// The client's log lines about reattaching, printed as they are found.
#[derive(Default)]
pub struct ClientLogTail {
    /// Lines of the log already looked at.
    seen: usize,
}

impl ClientLogTail {
    /// Prints the lines of `log` (the whole log so far) added since the last call that tell why
    /// and when the client reattached.
    pub fn print_new(&mut self, log: &str) {
        for line in log.lines().skip(self.seen) {
            self.seen += 1;
            if line.contains("reattach") || line.contains("jumped") {
                println!("  client | {line}");
            }
        }
    }
}
