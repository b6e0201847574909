//! `cargo xtask bench NAME`: runs benchmark NAME (`cargo bench -p PACKAGE --bench NAME`) and checks that
//! it wrote its results to `<target>/bench/NAME.json`, the file BENCHMARKS.md figures come from. The
//! benchmarks of one process live in jvpn-user/benches (`dataplane`, `controller`); those that run the
//! real daemons or whole namespaces live in tests/benches (`tunnel`, `flood`, `peers`, `cluster`,
//! `rx`), beside the harness they share. This only orchestrates them.

use std::path::Path;
use std::time::SystemTime;

use anyhow::{bail, Context, Result};
use clap::ValueEnum;

use crate::{setup, util};

/// The package of the benchmarks of one process, and of the `jvpn` binary.
const USER_PACKAGE: &str = "jvpn-user";
/// The package of the netns benchmarks, which run the release `jvpn` binary.
const TESTS_PACKAGE: &str = "jvpn-tests";

/// Environment variable that tells a benchmark the absolute directory to write NAME.json into.
const BENCH_DIR_VARIABLE: &str = "JVPN_BENCH_DIR";

/// A benchmark to run, or all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchName {
    /// Per-packet cost of the XDP program's verdict paths (issue 2).
    Dataplane,
    /// Durable reattach transitions per second and commit-to-map latency (issue 3).
    Controller,
    /// Throughput through the tunnel and time to recover after a jump (issue 4).
    Tunnel,
    /// An established tunnel's throughput and a new handshake's latency under floods (issue 8).
    Flood,
    /// jvpn beside boringtun and the bare veth: TCP throughput and CPU per GB (issue 10).
    Peers,
    /// Reattach transitions on etcd beside the embedded store; a session's move between nodes
    /// (issue 11).
    Cluster,
    /// The receive side of accepted DATA: the UDP socket path beside AF_XDP (issue 10).
    Rx,
    /// Every benchmark above, in that order.
    All,
}

impl BenchName {
    /// The bench target names this selects.
    fn targets(self) -> &'static [&'static str] {
        match self {
            BenchName::Dataplane => &["dataplane"],
            BenchName::Controller => &["controller"],
            BenchName::Tunnel => &["tunnel"],
            BenchName::Flood => &["flood"],
            BenchName::Peers => &["peers"],
            BenchName::Cluster => &["cluster"],
            BenchName::Rx => &["rx"],
            BenchName::All => &[
                "dataplane",
                "controller",
                "tunnel",
                "flood",
                "peers",
                "cluster",
                "rx",
            ],
        }
    }
}

/// The package that declares bench `target`.
fn package_of(target: &str) -> &'static str {
    match target {
        "tunnel" | "flood" | "peers" | "cluster" | "rx" => TESTS_PACKAGE,
        _ => USER_PACKAGE,
    }
}

/// Whether bench `target` runs the release `jvpn` binary (the netns benchmarks but `rx`, which
/// loads its programs itself).
fn runs_jvpn_binary(target: &str) -> bool {
    matches!(target, "tunnel" | "flood" | "peers" | "cluster")
}

/// `cargo xtask bench NAME [-- ARGS]`: ARGS go to the benchmark binary.
pub fn run(name: BenchName, extra_args: &[String]) -> Result<()> {
    util::require_root(
        "cargo xtask bench",
        "the benchmarks load XDP programs and create network namespaces",
    )?;
    setup::ensure()?;
    let bench_dir = util::target_dir()?.join("bench");
    std::fs::create_dir_all(&bench_dir)
        .with_context(|| format!("creating {}", bench_dir.display()))?;

    let mut failed = Vec::new();
    for target in name.targets() {
        let package = package_of(target);
        let available = declared_benches(package)?;
        if !available.iter().any(|declared| declared == target) {
            let declared = if available.is_empty() {
                "none yet".to_string()
            } else {
                available.join(", ")
            };
            eprintln!(
                "bench {target}: {package} declares no bench target `{target}` (declared: {declared}); \
                 add it under the package's benches/ and as a [[bench]] in its Cargo.toml"
            );
            failed.push(*target);
            continue;
        }
        if let Err(error) = run_one(package, target, &bench_dir, extra_args) {
            eprintln!("bench {target} failed: {error:#}");
            failed.push(*target);
        }
    }
    if !failed.is_empty() {
        bail!("benchmarks failed: {}", failed.join(", "));
    }
    Ok(())
}

fn run_one(package: &str, target: &str, bench_dir: &Path, extra_args: &[String]) -> Result<()> {
    println!("\n=== bench {target} ===");
    if runs_jvpn_binary(target) {
        // The bench runs the `jvpn` binary beside it, which `cargo bench -p jvpn-tests` does not build.
        util::run(util::cargo().args(["build", "--release", "-p", USER_PACKAGE, "--bin", "jvpn"]))?;
    }
    let results = bench_dir.join(format!("{target}.json"));
    let started = SystemTime::now();
    let mut command = util::cargo();
    command
        .env(BENCH_DIR_VARIABLE, bench_dir)
        .args(["bench", "-p", package, "--bench", target]);
    if !extra_args.is_empty() {
        command.arg("--").args(extra_args);
    }
    util::run(&mut command)?;
    check_results_written(&results, started)?;
    println!("bench {target}: results in {}", results.display());
    Ok(())
}

/// Every benchmark must leave a fresh NAME.json behind; an old one would pass off stale figures.
fn check_results_written(results: &Path, started: SystemTime) -> Result<()> {
    let modified = std::fs::metadata(results)
        .and_then(|metadata| metadata.modified())
        .with_context(|| {
            format!(
                "the benchmark did not write {}; every benchmark must write its results there",
                results.display()
            )
        })?;
    if modified < started {
        bail!(
            "{} predates this run: the benchmark did not rewrite it",
            results.display()
        );
    }
    Ok(())
}

/// Names of the `[[bench]]` targets `package` declares, from `cargo metadata`.
fn declared_benches(package: &str) -> Result<Vec<String>> {
    let metadata = util::cargo_metadata()?;
    let package = metadata["packages"]
        .as_array()
        .and_then(|packages| {
            packages
                .iter()
                .find(|candidate| candidate["name"] == package)
        })
        .with_context(|| format!("`cargo metadata` lists no package {package}"))?;
    let targets = package["targets"].as_array().cloned().unwrap_or_default();
    Ok(targets
        .iter()
        .filter(|target| {
            target["kind"]
                .as_array()
                .is_some_and(|kinds| kinds.iter().any(|kind| kind == "bench"))
        })
        .filter_map(|target| target["name"].as_str().map(str::to_string))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_benchmark_is_declared_by_the_package_xtask_runs_it_from() {
        for target in BenchName::All.targets() {
            let package = package_of(target);
            let declared = declared_benches(package).expect("cargo metadata");
            assert!(
                declared.iter().any(|name| name == target),
                "{package} does not declare bench {target} (it declares {declared:?})"
            );
        }
    }
}
