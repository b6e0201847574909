//! `cargo xtask bench tunnel` (`cargo bench -p jvpn-tests --bench tunnel`, as root): what the jvpn
//! tunnel costs, beside the same measured without it in the same run.
//!
//! - **Throughput**: iperf3 TCP from the client namespace to the gateway namespace, upstream and
//!   downstream (`-R`), through the tunnel (real `jvpn gateway` with XDP and TUN, real `jvpn
//!   client` with TUN, server on 10.99.0.1) and bare (same namespaces and router, to the gateway's
//!   veth address, with the gateway's XDP program attached and passing the traffic; one more bare
//!   upstream run before the gateway starts, without XDP).
//! - **Jump to first byte**: a stream of small UDP datagrams with sequence numbers and send times
//!   flows from the client namespace to the gateway namespace while the client jumps between its
//!   two uplinks (wifi, lte, through a router namespace); for each jump, the time from issuing it
//!   (on the client's control socket) to the first datagram received that was sent after the
//!   issue. Bare baseline: the same stream to the veth address, where a "jump" switches the sender
//!   to a socket bound to the other uplink. Once with both uplinks working, once with the old
//!   uplink cut at the router just before each jump (see `jumps.rs`).
//! - **Restarts that lose the maps**: kill, `jvpn detach`, restart; the time until the tunnel
//!   answers again, with the gateway's recovery challenge off and on (see `restarts.rs`).
//!
//! Options (after `--`): `--seconds N` per iperf3 test (10), `--jumps N` per phase (50),
//! `--interval-us N` between datagrams (200), `--settle-ms N` between jumps (250), `--restarts N`
//! per mode (2), `--quick` (3 s, 10 jumps, 1 restart), `--restarts-only` (skip the throughput and
//! jump phases). Prints a table and writes `tunnel.json` (see `report.rs`). Namespaces are
//! `jvbt-*`; leftovers of a killed run are removed at the start. Makes no performance assertions.

#![deny(unsafe_code)]

mod drops;
mod jumps;
mod restarts;
mod stream;

use drops::Drops;
use jumps::{JumpFigures, Mode};
use jvpn_tests::bench::daemons::Vpn;
use jvpn_tests::bench::iperf::{self, IperfServer, Throughput};
use jvpn_tests::bench::report::{mean, percentile, Report};
use jvpn_tests::bench::topology::{
    Topology, CLIENT_TUN, GATEWAY_ADDR, GATEWAY_TUN, TUNNEL_GATEWAY_ADDR,
};
use jvpn_tests::bench::Args;
use std::time::Duration;
use stream::{Route, Stream};

/// What a run does; see the crate doc for the flags.
#[derive(Clone, Copy, Debug)]
struct Options {
    seconds: u64,
    jumps: usize,
    interval: Duration,
    settle: Duration,
    restarts: usize,
    restarts_only: bool,
}

impl Options {
    fn parse() -> Self {
        let mut options = Self {
            seconds: 10,
            jumps: 50,
            interval: Duration::from_micros(200),
            settle: Duration::from_millis(250),
            restarts: 2,
            restarts_only: false,
        };
        let mut args = Args::from_env();
        while let Some(arg) = args.next_flag() {
            match arg.as_str() {
                "--seconds" => options.seconds = args.number("--seconds").max(1),
                "--jumps" => options.jumps = args.number("--jumps") as usize,
                "--interval-us" => {
                    options.interval = Duration::from_micros(args.number("--interval-us"))
                }
                "--settle-ms" => options.settle = Duration::from_millis(args.number("--settle-ms")),
                "--restarts" => options.restarts = args.number("--restarts") as usize,
                "--restarts-only" => options.restarts_only = true,
                "--quick" => (options.seconds, options.jumps, options.restarts) = (3, 10, 1),
                other => panic!(
                    "unknown option {other}; use --seconds N, --jumps N, --interval-us N, \
                     --settle-ms N, --restarts N, --restarts-only or --quick"
                ),
            }
        }
        options
    }
}

fn main() {
    jvpn_tests::require_root();
    let options = Options::parse();
    stream::now_ns();
    let mut report = Report::start();
    let topology = Topology::build();
    if options.restarts_only {
        let mut vpn = Vpn::start(&topology);
        restarts::run(&topology, &mut vpn, options.restarts, &mut report);
        return finish(&report);
    }
    let _iperf = IperfServer::start(&topology.gateway);

    eprintln!(
        "throughput, bare, before the gateway attaches XDP ({} s)",
        options.seconds
    );
    let no_xdp = iperf::tcp(&topology.client, GATEWAY_ADDR, options.seconds, false);
    let mut vpn = Vpn::start(&topology);
    let (measured, extra) = throughput(&topology, &vpn, options.seconds);
    vpn.check_running();
    throughput_rows(&mut report, no_xdp, &measured);
    for (metric, value, unit) in extra {
        report.add(metric, value, unit);
    }

    report.add(
        "stream.interval",
        options.interval.as_secs_f64() * 1e3,
        "ms",
    );
    report.add("stream.jumps_per_phase", options.jumps as f64, "jumps");
    for mode in Mode::ALL {
        eprintln!(
            "jumps, baseline, {} ({} switches)",
            mode.key(),
            options.jumps
        );
        let stream = Stream::start(&topology, Route::Bare, options.interval);
        let marks = jumps::run(&topology, mode, options.jumps, options.settle, 0, |to| {
            stream.switch(to)
        });
        let bare = jumps::analyse(&stream.finish(), &marks);

        eprintln!("jumps, tunnel, {} ({} jumps)", mode.key(), options.jumps);
        let stream = Stream::start(&topology, Route::Tunnel, options.interval);
        let from = vpn.uplink();
        let marks = jumps::run(&topology, mode, options.jumps, options.settle, from, |to| {
            vpn.jump(to);
        });
        let tunnel = jumps::analyse(&stream.finish(), &marks);
        vpn.check_running();
        jump_rows(&mut report, mode, &bare, &tunnel);
    }
    restarts::run(&topology, &mut vpn, options.restarts, &mut report);
    finish(&report);
}

/// Prints the table and writes `tunnel.json`.
fn finish(report: &Report) {
    report.print();
    let path = report.write();
    println!("\nresults written to {}", path.display());
}

/// One measured throughput test: route, direction, result.
type Measured = (&'static str, &'static str, Throughput);
/// A figure of the tunnel's side of the throughput tests: metric, value, unit.
type Extra = (String, f64, &'static str);

/// The throughput tests with the gateway running, bare and tunnelled, upstream then downstream;
/// for the tunnelled ones also the CPU the jvpn processes used and where packets were dropped.
fn throughput(topology: &Topology, vpn: &Vpn, seconds: u64) -> (Vec<Measured>, Vec<Extra>) {
    let mut measured = Vec::new();
    let mut extra = Vec::new();
    for (direction, reverse) in [("up", false), ("down", true)] {
        for (route, server) in [("baseline", GATEWAY_ADDR), ("tunnel", TUNNEL_GATEWAY_ADDR)] {
            eprintln!("throughput, {route}, {direction}stream ({} s)", seconds);
            let cpu_before = vpn.cpu_seconds();
            let drops_before = tunnel_drops(topology);
            let result = iperf::tcp(&topology.client, server, seconds, reverse);
            let cpu_after = vpn.cpu_seconds();
            let drops_after = tunnel_drops(topology);
            measured.push((route, direction, result));
            if route != "tunnel" {
                continue;
            }
            for (i, process) in ["client", "gateway"].into_iter().enumerate() {
                let busy = (cpu_after[i] - cpu_before[i]) / seconds as f64;
                let metric = format!("tunnel.tcp_{direction}.{process}_cpu");
                extra.push((metric, busy * 100.0, "% core"));
                let drops = drops_after[i].since(drops_before[i]);
                for (what, count) in [
                    ("udp_rcvbuf_drops", drops.udp_receive_buffer),
                    ("tun_queue_drops", drops.tun_queue),
                ] {
                    let metric = format!("tunnel.tcp_{direction}.{process}_{what}");
                    extra.push((metric, count as f64, "pkts"));
                }
            }
        }
    }
    (measured, extra)
}

/// The drop counters of the client's and the gateway's namespace and TUN device, in that order.
fn tunnel_drops(topology: &Topology) -> [Drops; 2] {
    [
        Drops::read(&topology.client, CLIENT_TUN),
        Drops::read(&topology.gateway, GATEWAY_TUN),
    ]
}

fn throughput_rows(report: &mut Report, no_xdp: Throughput, measured: &[Measured]) {
    let no_xdp_metric = "baseline.tcp_up_no_xdp";
    report.add(no_xdp_metric, no_xdp.mbit_per_s, "Mbit/s");
    for &(route, direction, result) in measured {
        let metric = format!("{route}.tcp_{direction}");
        match route {
            "baseline" if direction == "up" => {
                report.add_vs(&metric, result.mbit_per_s, "Mbit/s", no_xdp_metric)
            }
            "baseline" => report.add(&metric, result.mbit_per_s, "Mbit/s"),
            _ => report.add_vs(
                &metric,
                result.mbit_per_s,
                "Mbit/s",
                &format!("baseline.tcp_{direction}"),
            ),
        }
        report.add(format!("{metric}.retransmits"), result.retransmits, "segs");
    }
}

fn jump_rows(report: &mut Report, mode: Mode, bare: &JumpFigures, tunnel: &JumpFigures) {
    let m = mode.key();
    let quantiles = [("p50", 0.5), ("p99", 0.99), ("max", 1.0)];
    for (what, bare_samples, tunnel_samples) in [
        ("first_byte", &bare.first_byte_ms, &tunnel.first_byte_ms),
        ("gap", &bare.gap_ms, &tunnel.gap_ms),
    ] {
        for (name, q) in quantiles {
            let base = format!("baseline.switch_{what}.{m}.{name}");
            report.add(&base, percentile(bare_samples, q), "ms");
            let value = percentile(tunnel_samples, q);
            report.add_vs(format!("tunnel.jump_{what}.{m}.{name}"), value, "ms", &base);
        }
    }
    report.add(
        format!("baseline.switch_lost.{m}.mean"),
        mean(&bare.lost),
        "dgrams",
    );
    report.add(
        format!("tunnel.jump_lost.{m}.mean"),
        mean(&tunnel.lost),
        "dgrams",
    );
    report.add(
        format!("tunnel.jump_lost.{m}.max"),
        percentile(&tunnel.lost, 1.0),
        "dgrams",
    );
    for (name, q) in quantiles {
        let value = percentile(&tunnel.command_ms, q);
        report.add(format!("tunnel.jump_command.{m}.{name}"), value, "ms");
    }
    for (route, figures) in [("baseline.switch", bare), ("tunnel.jump", tunnel)] {
        let missing = figures.no_arrival as f64;
        report.add(format!("{route}_no_arrival.{m}"), missing, "jumps");
    }
}
