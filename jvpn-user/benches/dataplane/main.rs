//! `cargo xtask bench dataplane` (`cargo bench -p jvpn-user --bench dataplane`, as root): the
//! per-packet cost of every verdict path of the jvpn XDP program through `BPF_PROG_TEST_RUN`, with
//! 1 and with 1,000,000 sessions in the table, traffic on one hot session or spread over all of
//! them, beside two baselines measured in the same run (`jvpn_bench_drop`, `jvpn_bench_lookup`).
//!
//! A test run repeats one frame, but an accepted DATA needs a fresh nonce and tag every time, and
//! spread traffic a different session every time. So every figure comes from the benchmark
//! object's driver program: it copies the next of 1,000,000 prepared frames into the packet and
//! tail-calls the program measured (the real one or a baseline), 1,000,000 times per run. Spread
//! frames visit the sessions in a fresh random order each round. Each figure is the median of the
//! rounds (default 5, `--rounds N`; `--quick` runs only the 1-session scenario); runs of all paths
//! are interleaved within a round, so drift of the machine touches all alike. Every run is
//! checked: the counter slot of its path must have moved by exactly the packets run.
//!
//! First, unless `--quick`, the kernel memory per session of a full table (`memory.rs`;
//! `--memory` measures only that).
//!
//! Prints a table and writes `dataplane.json` (a list of `{metric, value, unit, baseline, ratio}`)
//! into `$JVPN_BENCH_DIR` (set by `cargo xtask bench`), else `<workspace>/target/bench/`.

#[path = "../../tests/xdp_support/mod.rs"]
mod xdp_support;

mod driver;
mod memory;
mod paths;

use driver::{Bench, BASELINE_DROP, BASELINE_LOOKUP};
use paths::{Path, Scenario};
use std::collections::BTreeMap;

fn main() {
    xdp_support::require_root("dataplane");
    let args: Vec<String> = std::env::args().collect();
    let rounds: usize = args
        .iter()
        .skip_while(|a| *a != "--rounds")
        .nth(1)
        .map_or(5, |n| n.parse().expect("--rounds takes a number"));
    let quick = args.iter().any(|a| a == "--quick");
    let memory_only = args.iter().any(|a| a == "--memory");
    // One CPU for every run: per-CPU state and caches stay where the runs are.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    xdp_support::pin_to_cpu(cpus - 1);

    // Before the benchmark's own tables exist, so it measures only the session maps.
    let memory = (!quick).then(|| {
        eprintln!("memory: {} sessions", memory::SESSIONS);
        memory::measure()
    });
    if memory_only {
        report(&BTreeMap::new(), &BTreeMap::new(), memory.as_ref());
        return;
    }
    let mut bench = Bench::load();
    let mut samples: BTreeMap<(Path, Scenario), Vec<u64>> = BTreeMap::new();
    let mut bare: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let phases: [(&[Scenario], bool, &str); 2] = [
        (&[Scenario::OneSessionHot], false, "1_session"),
        (
            &[Scenario::MillionHot, Scenario::MillionSpread],
            true,
            "1m_sessions",
        ),
    ];
    for (scenarios, spread, label) in phases.into_iter().take(if quick { 1 } else { 2 }) {
        eprintln!("{label}: filling the session tables");
        bench.fill_sessions(spread);
        // Round 0 warms up: it creates the replay windows and spends the HELLO buckets.
        for round in 0..=rounds {
            bench.shuffle(round as u64 + 1);
            for &scenario in scenarios {
                for path in Path::ALL {
                    let ns = bench.run(path, scenario, round > 0);
                    if round > 0 {
                        samples.entry((path, scenario)).or_default().push(ns);
                    }
                }
            }
            if round > 0 {
                for (name, program) in [
                    ("bare_drop", BASELINE_DROP),
                    ("bare_lookup", BASELINE_LOOKUP),
                ] {
                    bare.entry(format!("{name}.{label}"))
                        .or_default()
                        .push(bench.bare(program));
                }
            }
            eprintln!("{label}: round {round} of {rounds} done");
        }
    }
    report(&samples, &bare, memory.as_ref());
}

fn median(values: &[u64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2] as f64
    } else {
        (v[n / 2 - 1] + v[n / 2]) as f64 / 2.0
    }
}

fn report(
    samples: &BTreeMap<(Path, Scenario), Vec<u64>>,
    bare: &BTreeMap<String, Vec<u64>>,
    memory: Option<&memory::PerSession>,
) {
    let figure = |path: Path, scenario: Scenario| samples.get(&(path, scenario)).map(|v| median(v));
    let metric = |path: Path, scenario: Scenario| format!("{}.{}", path.name(), scenario.key());
    let mut json = Vec::new();
    let mut entry = |metric: String, value: f64, baseline: Option<(String, f64)>| {
        let (name, ratio) = match baseline {
            Some((name, base)) => (
                serde_json::Value::from(name),
                serde_json::Value::from((value / base * 100.0).round() / 100.0),
            ),
            None => (serde_json::Value::Null, serde_json::Value::Null),
        };
        json.push(serde_json::json!({"metric": metric, "value": value, "unit": "ns/packet", "baseline": name, "ratio": ratio}));
    };
    let scenarios = [
        Scenario::OneSessionHot,
        Scenario::MillionHot,
        Scenario::MillionSpread,
    ];
    println!("\nper-packet cost through BPF_PROG_TEST_RUN, median ns/packet (ratio to the row's baseline)\n");
    println!(
        "{:<24} {:>18} {:>18} {:>18}   baseline",
        "path", "1 session, hot", "1M, hot", "1M, spread"
    );
    for path in Path::ALL {
        let mut line = format!("{:<24}", path.name());
        for scenario in scenarios {
            let Some(value) = figure(path, scenario) else {
                continue;
            };
            let base = path
                .baseline()
                .and_then(|b| figure(b, scenario).map(|v| (b, v)));
            line += &match base {
                Some((_, b)) => format!(" {:>9.0} ({:>4.2}x)", value, value / b),
                None => format!(" {value:>18.0}"),
            };
            entry(
                metric(path, scenario),
                value,
                base.map(|(b, v)| (metric(b, scenario), v)),
            );
        }
        println!(
            "{line}   {}",
            path.baseline().map_or("-".into(), Path::name)
        );
    }
    // Net of the driver: what the program itself adds over the bare XDP_DROP floor.
    println!("\nnet of the driver + XDP_DROP floor (accept vs lookup, the targets' comparison):");
    for scenario in scenarios {
        let (Some(floor), Some(lookup), Some(accept)) = (
            figure(Path::BaselineDrop, scenario),
            figure(Path::BaselineLookup, scenario),
            figure(Path::AcceptData, scenario),
        ) else {
            continue;
        };
        let (accept_net, lookup_net) = (accept - floor, lookup - floor);
        println!(
            "  {:<20} accept {accept_net:>6.0} ns, lookup {lookup_net:>6.0} ns: {:.2}x",
            scenario.key(),
            accept_net / lookup_net
        );
        let name = |p: Path| format!("{}.net", metric(p, scenario));
        entry(name(Path::BaselineLookup), lookup_net, None);
        entry(
            name(Path::AcceptData),
            accept_net,
            Some((name(Path::BaselineLookup), lookup_net)),
        );
    }
    println!("\nwithout the driver (one frame repeated, hot):");
    for label in ["1_session", "1m_sessions"] {
        let (drop, lookup) = (format!("bare_drop.{label}"), format!("bare_lookup.{label}"));
        let (Some(d), Some(l)) = (bare.get(&drop), bare.get(&lookup)) else {
            continue;
        };
        let (d, l) = (median(d), median(l));
        println!("  {label:<20} XDP_DROP {d:>6.0} ns, lookup {l:>6.0} ns");
        entry(drop.clone(), d, None);
        entry(lookup, l, Some((drop, d)));
    }
    if let Some(m) = memory {
        println!(
            "\nkernel memory per session ({} sessions, each window in use): memlock {:.0} B, allocated {:.0} B",
            memory::SESSIONS,
            m.memlock,
            m.allocated
        );
        for (metric, value) in [
            ("memory.memlock_per_session", m.memlock),
            ("memory.allocated_per_session", m.allocated),
        ] {
            json.push(serde_json::json!({"metric": metric, "value": value, "unit": "bytes", "baseline": null, "ratio": null}));
        }
    }
    let dir = std::env::var_os("JVPN_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench")
        });
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    let path = dir.join("dataplane.json");
    let text = serde_json::to_string_pretty(&json).expect("serializing the results");
    std::fs::write(&path, text + "\n")
        .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    println!("\nresults written to {}", path.display());
}
