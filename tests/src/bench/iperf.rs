//! Throughput with iperf3 (installed by `cargo xtask setup`): a server in the gateway namespace for
//! the whole run, and one TCP test at a time from the client namespace, read from its JSON report.

use crate::guard::ChildGuard;
use crate::netns::Netns;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The port the iperf3 server listens on (all addresses of the gateway namespace).
const IPERF_PORT: &str = "5299";
/// How long a test may keep failing to connect while the server starts; a bound, not a sleep.
const CONNECT_PATIENCE: Duration = Duration::from_secs(10);

/// The iperf3 server, killed when dropped.
#[derive(Debug)]
pub struct IperfServer {
    _server: ChildGuard,
}

impl IperfServer {
    /// Starts `iperf3 -s` in `ns`.
    pub fn start(ns: &Netns) -> Self {
        let server = ChildGuard::spawn(
            ns.command("iperf3")
                .args(["-s", "-p", IPERF_PORT])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        Self { _server: server }
    }
}

/// One TCP test's result.
#[derive(Clone, Copy, Debug)]
pub struct Throughput {
    /// Goodput at the receiver, Mbit/s.
    pub mbit_per_s: f64,
    /// TCP retransmissions the sender counted.
    pub retransmits: f64,
    /// Bytes the receiver got (what a CPU-per-GB figure divides by).
    pub bytes: f64,
}

/// Runs a TCP test of `seconds` from `client` to `server` (`reverse`: server to client, iperf3
/// `-R`) over one stream, retrying while the server is not yet listening.
pub fn tcp(client: &Netns, server: Ipv4Addr, seconds: u64, reverse: bool) -> Throughput {
    tcp_streams(client, server, seconds, reverse, 1)
}

/// [`tcp`] with `streams` parallel TCP streams (iperf3 `-P`); the result sums them.
pub fn tcp_streams(
    client: &Netns,
    server: Ipv4Addr,
    seconds: u64,
    reverse: bool,
    streams: u32,
) -> Throughput {
    let deadline = Instant::now() + CONNECT_PATIENCE;
    loop {
        let mut command = client.command("iperf3");
        command.args(["-c", &server.to_string(), "-p", IPERF_PORT, "-J", "-t"]);
        command.arg(seconds.to_string());
        command.args(["-P", &streams.to_string()]);
        if reverse {
            command.arg("-R");
        }
        let out = command.output().unwrap_or_else(|e| {
            panic!(
                "running iperf3: {e}; install it with `cargo xtask setup` (apt-get install iperf3)"
            )
        });
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "iperf3 printed no JSON ({e}): {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        if let Some(error) = report["error"].as_str() {
            // Between tests the server closes and reopens its listener: a client that starts
            // right after the previous test may be refused, told it is busy, or reset while it
            // waits for its first control message. None of these started a transfer.
            let refused = error.contains("refused")
                || error.contains("busy")
                || error.contains("unable to receive control message");
            assert!(
                refused && Instant::now() < deadline,
                "iperf3 to {server} failed: {error}"
            );
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        let end = &report["end"];
        let bits = end["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or_else(|| panic!("iperf3 report without end.sum_received: {report}"));
        return Throughput {
            mbit_per_s: bits / 1e6,
            retransmits: end["sum_sent"]["retransmits"].as_f64().unwrap_or(0.0),
            bytes: end["sum_received"]["bytes"].as_f64().unwrap_or(0.0),
        };
    }
}
