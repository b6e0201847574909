//! `cargo xtask bench peers` (`cargo bench -p jvpn-tests --bench peers`, as root): jvpn beside the
//! best-known userspace WireGuard and the bare link, in one topology and one run (issue 10).
//!
//! Two namespaces joined by one veth pair (see `topology.rs`). For each path, iperf3 TCP up
//! (client to gateway) and down (`-R`), with 1 and 4 parallel streams:
//! - **bare**: the veth addresses, nothing attached;
//! - **boringtun**: `boringtun-cli` at both ends, configured with `wg`;
//! - **jvpn**: `jvpn gateway` (XDP native on the gateway's veth, whose GRO the gateway turns on)
//!   and `jvpn client`; with the gateway running, the bare path again (**bare_xdp**: what the XDP
//!   program costs the traffic that merely passes it);
//! - variants (unless `--no-variants`): the same with GRO turned off again at the gateway's veth
//!   (**bare_xdp_nogro**, **jvpn_nogro**). (The generic-XDP rows of earlier runs are gone: the
//!   gateway refuses `--xdp-mode skb` on a veth, docs/datapath.md "Merged runs".)
//!
//! For every row: goodput, and CPU-seconds per GB received, of the VPN's processes at both ends
//! (`/proc/PID/stat`, all threads) and of the whole machine (`/proc/stat`, softirq included).
//! Options (after `--`): `--seconds N` per iperf3 test (5), `--quick` (2 s), `--no-variants`.
//! Prints a table and writes `peers.json`. Namespaces are `jvbp-*`; leftovers of a killed run are
//! removed at the start. Makes no performance assertions.

mod topology;
mod vpn;

use jvpn_tests::bench::cpu::machine_busy_seconds;
use jvpn_tests::bench::iperf::{self, IperfServer};
use jvpn_tests::bench::report::Report;
use jvpn_tests::bench::Args;
use topology::{offloads, set_offload, Topology, CLIENT_IF, GATEWAY_ADDR, GATEWAY_IF};
use vpn::Vpn;

/// What a run does; see the crate doc for the flags.
#[derive(Clone, Copy, Debug)]
struct Options {
    seconds: u64,
    variants: bool,
}

impl Options {
    fn parse() -> Self {
        let mut options = Self {
            seconds: 5,
            variants: true,
        };
        let mut args = Args::from_env();
        while let Some(arg) = args.next_flag() {
            match arg.as_str() {
                "--seconds" => options.seconds = args.number("--seconds").max(1),
                "--quick" => options.seconds = 2,
                "--no-variants" => options.variants = false,
                other => {
                    panic!("unknown option {other}; use --seconds N, --quick or --no-variants")
                }
            }
        }
        options
    }
}

/// One iperf3 test of a path: which way and how many streams.
#[derive(Clone, Copy, Debug)]
struct Test {
    /// Server to client (iperf3 `-R`): the gateway sends.
    down: bool,
    /// Parallel TCP streams (iperf3 `-P`).
    streams: u32,
}

impl Test {
    /// The four tests of every path: up and down, 1 and 4 streams.
    const ALL: [Test; 4] = [
        Test {
            down: false,
            streams: 1,
        },
        Test {
            down: false,
            streams: 4,
        },
        Test {
            down: true,
            streams: 1,
        },
        Test {
            down: true,
            streams: 4,
        },
    ];

    /// The metric's suffix, e.g. `tcp_up.p4`.
    fn key(self) -> String {
        let direction = if self.down { "down" } else { "up" };
        format!("tcp_{direction}.p{}", self.streams)
    }
}

/// Runs the four tests over one path and records them as `PATH.tcp_*` rows, each compared with
/// the same test of `baseline` when given; `vpn`'s processes are the ones whose CPU is counted.
struct Runner<'a> {
    topology: &'a Topology,
    report: Report,
    seconds: u64,
}

impl Runner<'_> {
    fn path(
        &mut self,
        name: &str,
        server: std::net::Ipv4Addr,
        vpn: Option<&mut Vpn>,
        baseline: Option<&str>,
    ) {
        let mut vpn = vpn;
        for test in Test::ALL {
            eprintln!("{name}, {} ({} s)", test.key(), self.seconds);
            let vpn_before = vpn.as_ref().map_or(0.0, |v| v.cpu_seconds());
            let machine_before = machine_busy_seconds();
            let result = iperf::tcp_streams(
                &self.topology.client,
                server,
                self.seconds,
                test.down,
                test.streams,
            );
            let machine = machine_busy_seconds() - machine_before;
            let gigabytes = result.bytes / 1e9;
            let key = test.key();
            let metric = format!("{name}.{key}");
            let throughput_base = baseline.map(|base| format!("{base}.{key}"));
            self.record(&metric, result.mbit_per_s, "Mbit/s", throughput_base);
            let machine_base = baseline.map(|base| format!("{base}.{key}.machine_cpu"));
            let per_gb = machine / gigabytes.max(1e-9);
            self.record(
                &format!("{metric}.machine_cpu"),
                per_gb,
                "s/GB",
                machine_base,
            );
            if let Some(vpn) = vpn.as_mut() {
                vpn.check_running();
                let used = vpn.cpu_seconds() - vpn_before;
                // The bare path runs no VPN process: nothing to compare the VPN's CPU with.
                let vpn_base = baseline
                    .filter(|base| *base != "bare")
                    .map(|base| format!("{base}.{key}.vpn_cpu"));
                let per_gb = used / gigabytes.max(1e-9);
                self.record(&format!("{metric}.vpn_cpu"), per_gb, "s/GB", vpn_base);
            }
        }
    }

    /// Adds row `metric`, compared with row `baseline` when there is one.
    fn record(&mut self, metric: &str, value: f64, unit: &'static str, baseline: Option<String>) {
        match baseline {
            Some(base) => self.report.add_vs(metric, value, unit, &base),
            None => self.report.add(metric, value, unit),
        }
    }

    fn offloads(&mut self, label: &str) {
        for (ns, device) in [
            (&self.topology.client, CLIENT_IF),
            (&self.topology.gateway, GATEWAY_IF),
        ] {
            println!("offloads {label} {device}: {}", offloads(ns, device));
        }
    }
}

/// Prints the gateway's `jvpn stats` after the runs of `label`.
fn print_stats(label: &str, vpn: &Vpn) {
    if let Some(stats) = vpn.jvpn_stats() {
        println!("jvpn stats after {label}:\n{stats}");
    }
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the peers benchmark creates network namespaces and loads XDP: run it as root, e.g. \
         `cargo xtask bench peers` in a root shell"
    );
    let options = Options::parse();
    let topology = Topology::build();
    let _iperf = IperfServer::start(&topology.gateway);
    let mut runner = Runner {
        topology: &topology,
        report: Report::start(),
        seconds: options.seconds,
    };

    runner.offloads("bare");
    runner.path("bare", GATEWAY_ADDR, None, None);
    {
        let mut boringtun = Vpn::boringtun(&topology);
        let server = boringtun.server;
        runner.path("boringtun", server, Some(&mut boringtun), Some("bare"));
    }
    {
        // The gateway turns GRO on at its veth when it attaches in driver mode.
        let mut jvpn = Vpn::jvpn(&topology);
        runner.offloads("xdp-driver");
        runner.path("bare_xdp", GATEWAY_ADDR, None, Some("bare"));
        let server = jvpn.server;
        runner.path("jvpn", server, Some(&mut jvpn), Some("boringtun"));
        print_stats("xdp-driver", &jvpn);
        if options.variants {
            // What the gateway's GRO is worth: the same with it turned off again.
            set_offload(&topology.gateway, GATEWAY_IF, "gro", false);
            runner.offloads("xdp-driver-nogro");
            runner.path("bare_xdp_nogro", GATEWAY_ADDR, None, Some("bare"));
            runner.path("jvpn_nogro", server, Some(&mut jvpn), Some("jvpn"));
            print_stats("xdp-driver, then without GRO", &jvpn);
        }
    }

    runner.report.print();
    let path = runner.report.write_as("peers");
    println!("\nresults written to {}", path.display());
}
