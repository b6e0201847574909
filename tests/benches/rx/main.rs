//! `cargo xtask bench rx` (`cargo bench -p jvpn-tests --bench rx`, as root): the receive side of
//! accepted DATA, through the UDP stack or around it (issue 10, "kernel bypass").
//!
//! Two namespaces joined by one veth pair ([`jvpn_tests::topology::TwoHosts`]). A sender floods
//! the receiver's port with jvpn-DATA-sized datagrams in UDP GSO runs (one `sendmsg` per up to 64
//! datagrams) for a fixed time; the receiver counts what it reads. Receive paths, interleaved in
//! every round, each with a program attached in driver mode to the receiving veth end as the
//! gateway attaches its own:
//! - **socket**: `XDP_PASS`, then a UDP socket read as the gateway's best path reads (`UDP_GRO`,
//!   `recvmmsg` of 32 runs, 16 MiB buffer; the veth's GRO on, as the gateway turns it on);
//! - **af_xdp_poll**: `bpf_redirect_map` into an XSKMAP by receive queue, an AF_XDP socket (copy
//!   mode: a veth has no zero-copy) read through xdpilone in batches of 64, frames back on the
//!   fill ring per batch, `poll` when the ring is empty;
//! - **af_xdp_spin**: the same, spinning on the ring instead of `poll`.
//!
//! For each: datagrams/s and payload Gbit/s received, CPU-seconds per GB of the receiver (its
//! thread, the machine's irq + softirq time over the run, and the NAPI thread's if threaded), and
//! the loss (sent but not read;
//! the program's own count tells loss before XDP from loss after it). Medians over the rounds,
//! and the AF_XDP paths as ratios to the socket in the same run.
//!
//! Each path runs with the veth's NAPI two ways: **napi_softirq** (the default: the receiving
//! veth's NAPI poll, with XDP and the socket or AF_XDP delivery, runs in softirq on the CPU that
//! sent, inside the sender's `sendmsg`) and **napi_thread** (`/sys/class/net/DEV/threaded` = 1:
//! it runs in a kernel thread of its own, as a NIC's interrupt would put it on the receiving
//! side; that thread's CPU time is counted). Options (after `--`): `--seconds N` per measurement
//! (2), `--rounds N` (3), `--quick` (1 s, 1 round), `--softirq-only`, `--thread-only`. Prints a
//! table and writes `rx.json`. Makes no performance assertions.

mod measure;

use std::time::Duration;

use jvpn_tests::bench::report::{percentile, Report};
use jvpn_tests::bench::Args;
use jvpn_tests::netns::run_ok;
use jvpn_tests::require_root;
use jvpn_tests::topology::TwoHosts;
use measure::{measure, Sample, Variant};

/// Datagram sizes: a full jvpn DATA (40-byte header, 1,400-byte body) and a sealed TCP ACK (40-byte
/// header, 52-byte packet, 16-byte tag).
const SIZES: [usize; 2] = [1_440, 108];

/// Where the receiving veth's NAPI poll runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Napi {
    /// In softirq, on the sending CPU (a veth's default).
    Softirq,
    /// In a kernel thread of its own.
    Thread,
}

impl Napi {
    fn name(self) -> &'static str {
        match self {
            Napi::Softirq => "napi_softirq",
            Napi::Thread => "napi_thread",
        }
    }
}

/// What a run does; see the crate doc for the flags.
#[derive(Clone, Debug)]
struct Options {
    seconds: u64,
    rounds: u64,
    napi: Vec<Napi>,
}

impl Options {
    fn parse() -> Self {
        let mut options = Self {
            seconds: 2,
            rounds: 3,
            napi: vec![Napi::Softirq, Napi::Thread],
        };
        let mut args = Args::from_env();
        while let Some(arg) = args.next_flag() {
            match arg.as_str() {
                "--seconds" => options.seconds = args.number("--seconds").max(1),
                "--rounds" => options.rounds = args.number("--rounds").max(1),
                "--quick" => {
                    options.seconds = 1;
                    options.rounds = 1;
                }
                "--softirq-only" => options.napi = vec![Napi::Softirq],
                "--thread-only" => options.napi = vec![Napi::Thread],
                other => panic!(
                    "unknown option {other}; use --seconds N, --rounds N, --quick, \
                     --softirq-only or --thread-only"
                ),
            }
        }
        options
    }
}

/// The figures of one sample.
struct Figures {
    datagrams_per_second: f64,
    gbit_per_second: f64,
    cpu_per_gb: f64,
    loss_percent: f64,
}

impl From<&Sample> for Figures {
    fn from(s: &Sample) -> Self {
        let gb = s.bytes as f64 / 1e9;
        Self {
            datagrams_per_second: s.received as f64 / s.seconds,
            gbit_per_second: gb * 8.0 / s.seconds,
            cpu_per_gb: (s.receiver_cpu + s.softirq + s.napi_cpu) / gb.max(1e-9),
            loss_percent: 100.0 * s.sent.saturating_sub(s.received) as f64 / s.sent.max(1) as f64,
        }
    }
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    percentile(&values.collect::<Vec<_>>(), 0.5)
}

/// Turns GRO on at the receiving veth (as the gateway does when it attaches; docs/datapath.md,
/// "XDP on a veth"), which also gives it a NAPI instance, and runs that NAPI as `napi` says.
/// Returns the NAPI thread's pid when it is threaded.
fn set_napi(hosts: &TwoHosts, napi: Napi) -> Option<u32> {
    let ifname = &hosts.gateway_if;
    run_ok(
        hosts
            .gateway
            .command("ethtool")
            .args(["-K", ifname, "gro", "on"]),
    );
    // `ip netns exec` mounts the namespace's own /sys, where the device is.
    let threaded = u8::from(napi == Napi::Thread);
    run_ok(hosts.gateway.command("sh").args([
        "-c",
        &format!("echo {threaded} > /sys/class/net/{ifname}/threaded"),
    ]));
    (napi == Napi::Thread).then(|| napi_thread(ifname))
}

/// The pid of the kernel thread `napi/IFNAME-ID` (its name as `comm` keeps it: 15 bytes).
fn napi_thread(ifname: &str) -> u32 {
    let name: String = format!("napi/{ifname}-").chars().take(15).collect();
    std::fs::read_dir("/proc")
        .expect("listing /proc")
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end().starts_with(&name))
        })
        .unwrap_or_else(|| panic!("no NAPI thread {name}* after turning threaded NAPI on"))
}

fn main() {
    require_root();
    let options = Options::parse();
    let duration = Duration::from_secs(options.seconds);
    let mut report = Report::start();
    let hosts = TwoHosts::new();
    let mut samples: Vec<(Napi, usize, Variant, Sample)> = Vec::new();
    for &napi in &options.napi {
        let napi_pid = set_napi(&hosts, napi);
        for round in 1..=options.rounds {
            for size in SIZES {
                for variant in Variant::ALL {
                    let sample = measure(&hosts, variant, size, duration, napi_pid);
                    print_sample(napi, round, size, variant, &sample);
                    assert!(
                        sample.received > 0,
                        "{} read nothing with {size}-byte datagrams: the path does not work",
                        variant.name()
                    );
                    samples.push((napi, size, variant, sample));
                }
            }
        }
    }
    for &napi in &options.napi {
        for size in SIZES {
            for variant in Variant::ALL {
                let figures: Vec<Figures> = samples
                    .iter()
                    .filter(|(n, s, v, _)| (*n, *s, *v) == (napi, size, variant))
                    .map(|(_, _, _, sample)| Figures::from(sample))
                    .collect();
                add_rows(&mut report, napi, size, variant, &figures);
            }
        }
    }
    report.print();
    let path = report.write_as("rx");
    println!("wrote {}", path.display());
}

/// One line per measurement, with the counts behind the figures.
fn print_sample(napi: Napi, round: u64, size: usize, variant: Variant, sample: &Sample) {
    let figures = Figures::from(sample);
    println!(
        "{} round {round} size {size:>5} {:<12} sent {:>9} seen {:>9} read {:>9} \
         {:>9.0} dgram/s {:>5.2} Gbit/s cpu {:.2}+{:.2}+{:.2} s = {:>6.2} s/GB loss {:.1}% \
         (AF_XDP ring full {}, fill ring empty {})",
        napi.name(),
        variant.name(),
        sample.sent,
        sample.seen,
        sample.received,
        figures.datagrams_per_second,
        figures.gbit_per_second,
        sample.receiver_cpu,
        sample.softirq,
        sample.napi_cpu,
        figures.cpu_per_gb,
        figures.loss_percent,
        sample.xsk_drops.rx_ring_full,
        sample.xsk_drops.fill_ring_empty,
    );
}

/// The medians of `figures`; the AF_XDP paths' as ratios to the socket's of the same NAPI mode
/// and size.
fn add_rows(report: &mut Report, napi: Napi, size: usize, variant: Variant, figures: &[Figures]) {
    let name = |variant: Variant, metric: &str| {
        format!("{}.{}.{size}B.{metric}", napi.name(), variant.name())
    };
    let rows: [(&str, f64, &'static str); 4] = [
        (
            "datagrams_per_s",
            median(figures.iter().map(|f| f.datagrams_per_second)),
            "1/s",
        ),
        (
            "gbit_per_s",
            median(figures.iter().map(|f| f.gbit_per_second)),
            "Gbit/s",
        ),
        (
            "cpu_s_per_gb",
            median(figures.iter().map(|f| f.cpu_per_gb)),
            "s/GB",
        ),
        (
            "loss_percent",
            median(figures.iter().map(|f| f.loss_percent)),
            "%",
        ),
    ];
    for (metric, value, unit) in rows {
        // A ratio of loss percentages says nothing (0 against 0); loss stands alone.
        match variant {
            Variant::XskPoll | Variant::XskSpin if metric != "loss_percent" => report.add_vs(
                name(variant, metric),
                value,
                unit,
                &name(Variant::Socket, metric),
            ),
            _ => report.add(name(variant, metric), value, unit),
        }
    }
}
