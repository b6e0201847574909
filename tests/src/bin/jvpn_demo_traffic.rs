//! The traffic side of `cargo xtask demo`, run once the real `jvpn client` is up: a TCP stream
//! through the tunnel (client namespace -> `10.99.0.1:5201` in the gateway namespace), the jumps
//! (`jvpn client jump --tun T --uplink U`), and the late path.
//!
//! The late path: this machine has no `sch_netem`, so a slow old path is emulated honestly. Just
//! before each jump the client's outgoing DATA datagrams on the uplink it is leaving are recorded
//! (`AF_PACKET`); shortly after the jump the last few are sent again on that uplink byte for byte,
//! as a slow path would deliver them, and the gateway's XDP program has to drop them.
//!
//! The receiver checks every byte against the sender's deterministic stream
//! ([`jvpn_tests::byte_stream`]). The outcome goes to
//! `REPORT_FILE` as JSON for the demo's summary.
//!
//! Usage: `jvpn-demo-traffic CLIENT_NS GATEWAY_NS TUN JUMPS REPORT_FILE UPLINK UPLINK`

use anyhow::{bail, ensure, Context, Result};
use jvpn_common::abi::DEFAULT_PORT;
use jvpn_common::{MessageType, WireHeader};
use jvpn_tests::byte_stream::{receive, send, Received};
use jvpn_tests::capture::{inject, outgoing_udp_to, Capture, Frame};
use jvpn_tests::netns::Netns;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The TCP server on the gateway's tunnel address.
const SERVER: &str = "10.99.0.1:5201";
/// Time on an uplink before the recording for the next jump starts.
const HOP: Duration = Duration::from_millis(900);
/// How long before a jump the old uplink is recorded.
const RECORDING: Duration = Duration::from_millis(300);
/// How many of the datagrams recorded before a jump the slow path delivers after it.
const LATE_PACKETS: usize = 4;
/// How long after a jump the late packets arrive.
const LATE_BY: Duration = Duration::from_millis(40);
/// Traffic after the last jump, so the stream is seen to go on.
const TAIL: Duration = Duration::from_millis(600);

/// Whether `frame` is a DATA datagram the client sent to the gateway.
fn outgoing_data(frame: &Frame) -> bool {
    outgoing_udp_to(frame, DEFAULT_PORT)
        && frame.udp().is_some_and(|udp| {
            WireHeader::parse(udp.payload)
                .is_ok_and(|h| h.message_type() == Some(MessageType::Data))
        })
}

fn header(frame: &Frame) -> Option<WireHeader> {
    WireHeader::parse(frame.udp()?.payload).ok()
}

/// Runs `jvpn client jump` in the client namespace; returns the version it reports.
fn jump(jvpn: &Path, client_ns: &Path, tun: &str, uplink: &str) -> Result<u64> {
    println!("traffic: + jvpn client jump --tun {tun} --uplink {uplink}");
    let started = Instant::now();
    let out = Command::new("nsenter")
        .arg(format!("--net={}", client_ns.display()))
        .arg(jvpn)
        .args(["client", "jump", "--tun", tun, "--uplink", uplink])
        .output()
        .context("running `jvpn client jump`")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "`jvpn client jump --tun {tun} --uplink {uplink}` failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    println!(
        "traffic:   {} ({:.1} ms)",
        text.trim(),
        started.elapsed().as_secs_f64() * 1e3
    );
    text.trim()
        .strip_prefix("jumped; the session is at version ")
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("unexpected `jvpn client jump` output: {text}"))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [client_name, gateway_name, tun, jumps, report, first, second] = args.as_slice() else {
        bail!("usage: jvpn-demo-traffic CLIENT_NS GATEWAY_NS TUN JUMPS REPORT_FILE UPLINK UPLINK");
    };
    let jumps: usize = jumps.parse().context("JUMPS: a number")?;
    let (client, gateway) = (Netns::existing(client_name), Netns::existing(gateway_name));
    let jvpn = std::env::current_exe()
        .context("finding this program")?
        .with_file_name("jvpn");
    let uplinks = [first.as_str(), second.as_str()];

    let listener = gateway
        .run(|| TcpListener::bind(SERVER))
        .with_context(|| format!("listening on {SERVER} in {gateway_name}"))?;
    let receiver: JoinHandle<Result<Received>> =
        std::thread::spawn(move || receive(listener, &AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let sender = std::thread::spawn({
        let (path, stop, sent) = (client.path(), Arc::clone(&stop), Arc::clone(&sent));
        let server: SocketAddr = SERVER.parse().expect("a socket address");
        move || send(&path, server, &stop, &sent)
    });
    println!("traffic: TCP stream from {client_name} to {SERVER} through the tunnel ({tun}), about 8 MiB/s");

    let mut versions = Vec::new();
    let mut late_resent = 0;
    for n in 0..jumps {
        let (from, to) = (uplinks[n % 2], uplinks[(n + 1) % 2]);
        std::thread::sleep(HOP);
        let recording = Capture::start(&client, from, outgoing_data);
        std::thread::sleep(RECORDING);
        let recorded = recording.stop();
        if sender.is_finished() {
            // It failed; its error is reported below.
            break;
        }
        println!(
            "traffic: {:.1} MiB through the tunnel so far; recorded {} DATA datagrams on {from}",
            sent.load(Ordering::Relaxed) as f64 / f64::from(1 << 20),
            recorded.len()
        );
        versions.push(jump(&jvpn, &client.path(), tun, to)?);
        std::thread::sleep(LATE_BY);
        let late = &recorded[recorded.len().saturating_sub(LATE_PACKETS)..];
        let headers: Vec<WireHeader> = late.iter().filter_map(header).collect();
        if let (Some(first), Some(last)) = (headers.first(), headers.last()) {
            println!(
                "late path: re-sending {} packets recorded on {from} before the jump (version {}, nonces {}..={}), as a slow path would deliver them",
                late.len(),
                first.state_version.get(),
                first.nonce.get(),
                last.nonce.get()
            );
        }
        inject(&client, from, late);
        late_resent += late.len();
    }
    std::thread::sleep(TAIL);
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("the sender thread")?;
    ensure!(versions.len() == jumps, "the TCP sender stopped early");
    let seconds = started.elapsed().as_secs_f64();
    let received = receiver.join().expect("the receiver thread")?;
    let bytes_sent = sent.load(Ordering::Relaxed);
    let intact = received.bytes == bytes_sent && received.first_mismatch.is_none();
    println!(
        "traffic: sent {bytes_sent} bytes in {seconds:.1} s; the server in {gateway_name} received {} bytes, {}",
        received.bytes,
        if intact { "identical to what was sent" } else { "NOT what was sent" }
    );
    let outcome = serde_json::json!({
        "jumps": versions.len(),
        "versions": versions,
        "late_resent": late_resent,
        "bytes_sent": bytes_sent,
        "bytes_received": received.bytes,
        "first_mismatch": received.first_mismatch,
        "intact": intact,
        "seconds": seconds,
    });
    std::fs::write(report, outcome.to_string()).with_context(|| format!("writing {report}"))?;
    ensure!(intact, "the tunnel altered or lost bytes of the TCP stream");
    Ok(())
}
