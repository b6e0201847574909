//! `cargo xtask test`: every test tier in one command, as CI runs it. Static checks first (format, lint),
//! then `cargo test` over the default members, which runs the unit tests, the BPF_PROG_TEST_RUN tests of the real XDP
//! object (jvpn-user/tests) and the network-namespace end-to-end tests (the tests crate), then the cluster
//! demo (`cargo xtask demo --cluster`'s binary on that build), the .deb round trip, and last the fuzz
//! targets for a few seconds each (`cargo xtask fuzz`); with `--kernels`, the tests of the XDP
//! program on distribution kernels in VMs (`cargo xtask kernels`). Every tier runs
//! even after an earlier one failed, so one run reports everything; the exit status is non-zero if any did.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{setup, util};

/// One tier: a name for the summary and the cargo command that runs it.
struct Tier {
    name: &'static str,
    what: &'static str,
    command: Command,
}

/// How a tier ended.
struct TierOutcome {
    name: &'static str,
    what: &'static str,
    passed: bool,
    elapsed: Duration,
}

/// Totals parsed from libtest's `test result:` lines.
#[derive(Debug, Default, PartialEq, Eq)]
struct TestCounts {
    passed: u64,
    failed: u64,
    ignored: u64,
    /// How many `test result:` lines (test binaries and doc-test runs) were seen.
    suites: u64,
}

/// `cargo xtask test [--kernels] [-- ARGS]`: ARGS go to `cargo test` (e.g. a test name filter);
/// `--kernels` adds the `kernels` tier last.
pub fn run(extra_args: &[String], kernels: bool) -> Result<()> {
    util::require_root(
        "cargo xtask test",
        "its BPF_PROG_TEST_RUN tests load XDP programs and its end-to-end tests create network namespaces",
    )?;
    setup::ensure()?;

    let mut outcomes = Vec::new();
    let mut counts = None;
    for tier in static_tiers() {
        outcomes.push(run_tier(tier, util::run));
    }
    let tests = Tier {
        name: "tests",
        what: "unit, BPF_PROG_TEST_RUN and netns end-to-end tests",
        command: {
            let mut command = util::cargo();
            // The default members: every crate but jvpn-ebpf, which only builds for the BPF target
            // (jvpn-user's build.rs builds it, and its tests run it).
            // --no-fail-fast: one failing test binary must not hide the results of the others.
            command.args(["test", "--no-fail-fast"]).args(extra_args);
            command
        },
    };
    outcomes.push(run_tier(tests, |command| {
        let (result, tally) = run_counting_tests(command);
        counts = tally;
        result
    }));

    outcomes.push(run_tier(cluster_demo_tier()?, util::run));
    outcomes.push(run_tier(package_tier(), util::run));
    outcomes.push(run_tier(fuzz_tier(), util::run));
    if kernels {
        outcomes.push(run_tier(kernels_tier(), util::run));
    }

    print_summary(&outcomes, counts.as_ref());
    let failed: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.passed)
        .map(|o| o.name)
        .collect();
    if !failed.is_empty() {
        bail!(
            "test tiers failed: {}; see their output above",
            failed.join(", ")
        );
    }
    Ok(())
}

fn static_tiers() -> Vec<Tier> {
    let mut format = util::cargo();
    format.args(["fmt", "--all", "--check"]);
    let mut lint = util::cargo();
    lint.args(["clippy", "--all-targets", "--", "-D", "warnings"]);
    vec![
        Tier {
            name: "format",
            what: "cargo fmt --check",
            command: format,
        },
        Tier {
            name: "lint",
            what: "cargo clippy -D warnings",
            command: lint,
        },
    ]
}

/// Seconds each fuzz target runs in the `fuzz` tier: a bounded smoke run on the repository's corpus
/// (longer runs: `cargo xtask fuzz --seconds N`).
const FUZZ_TIER_SECONDS: u64 = 10;

fn fuzz_tier() -> Tier {
    let mut command = util::cargo();
    command.args(["xtask", "fuzz", "--seconds", &FUZZ_TIER_SECONDS.to_string()]);
    Tier {
        name: "fuzz",
        what: "every cargo-fuzz target for a bounded time on fuzz/corpus",
        command,
    }
}

/// Seconds the `cluster-demo` tier may take: the demo takes about a minute; the bound keeps a hung
/// etcd from stalling CI (on SIGTERM the demo cleans up and exits).
const CLUSTER_DEMO_TIER_SECONDS: u64 = 300;

/// `cargo xtask demo --cluster`'s binary, as the `tests` tier built it (dev profile): a newcomer's
/// first run must not be the first time it runs end to end.
fn cluster_demo_tier() -> Result<Tier> {
    let demo = util::target_dir()?.join("debug").join("jvpn-cluster-demo");
    let mut command = Command::new("timeout");
    command.arg(CLUSTER_DEMO_TIER_SECONDS.to_string()).arg(demo);
    Ok(Tier {
        name: "cluster-demo",
        what: "the cluster demo end to end (cargo xtask demo --cluster, dev build)",
        command,
    })
}

/// Seconds the `package` tier may take: it reuses the `tests` tier's dev build, so packaging and
/// the dpkg round trip take well under a minute; the bound keeps a hung dpkg from stalling CI.
const PACKAGE_TIER_SECONDS: u64 = 600;

fn package_tier() -> Tier {
    let mut command = Command::new("timeout");
    command
        .arg(PACKAGE_TIER_SECONDS.to_string())
        .arg("cargo")
        .args(["xtask", "package", "--profile", "dev", "--check"]);
    Tier {
        name: "package",
        what: "the .deb installs with dpkg, runs, has its man pages and removes cleanly",
        command,
    }
}

fn kernels_tier() -> Tier {
    let mut command = util::cargo();
    command.args(["xtask", "kernels"]);
    Tier {
        name: "kernels",
        what: "BPF_PROG_TEST_RUN, native XDP and gateway start on distribution kernels in VMs",
        command,
    }
}

fn run_tier(mut tier: Tier, run: impl FnOnce(&mut Command) -> Result<()>) -> TierOutcome {
    println!("\n=== tier {}: {} ===", tier.name, tier.what);
    let started = Instant::now();
    let result = run(&mut tier.command);
    if let Err(error) = &result {
        eprintln!("tier {} failed: {error:#}", tier.name);
    }
    TierOutcome {
        name: tier.name,
        what: tier.what,
        passed: result.is_ok(),
        elapsed: started.elapsed(),
    }
}

/// Runs `cargo test`, echoing its stdout while adding up the `test result:` lines.
fn run_counting_tests(command: &mut Command) -> (Result<()>, Option<TestCounts>) {
    let line = util::describe(command);
    println!("+ {line}");
    let mut child = match command.stdout(Stdio::piped()).spawn() {
        Ok(child) => child,
        Err(error) => {
            return (
                Err(error).with_context(|| format!("`{line}` could not start")),
                None,
            )
        }
    };
    let mut counts = TestCounts::default();
    let stdout = child.stdout.take().expect("stdout was piped");
    for output_line in BufReader::new(stdout).lines() {
        let Ok(output_line) = output_line else { break };
        println!("{output_line}");
        counts.add_result_line(&output_line);
    }
    let tally = (counts.suites > 0).then_some(counts);
    let result = match child.wait() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(anyhow::anyhow!("`{line}` failed ({status})")),
        Err(error) => Err(error).with_context(|| format!("waiting for `{line}`")),
    };
    (result, tally)
}

impl TestCounts {
    /// Adds a libtest summary line such as
    /// `test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s`.
    fn add_result_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        self.suites += 1;
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(label), Some(number)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            match label {
                "passed" => self.passed += number,
                "failed" => self.failed += number,
                "ignored" => self.ignored += number,
                _ => {}
            }
        }
    }
}

fn print_summary(outcomes: &[TierOutcome], counts: Option<&TestCounts>) {
    println!("\n=== summary ===");
    for outcome in outcomes {
        println!(
            "  {:<8} {:<7} {:>7.1} s  {}",
            outcome.name,
            if outcome.passed { "ok" } else { "FAILED" },
            outcome.elapsed.as_secs_f64(),
            outcome.what
        );
    }
    // The last line, in the form CI reads: "N passed, N failed, N skipped".
    if let Some(counts) = counts {
        println!(
            "tests: {} passed, {} failed, {} skipped",
            counts.passed, counts.failed, counts.ignored
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_lines_are_added_up() {
        let mut counts = TestCounts::default();
        for line in [
            "running 3 tests",
            "test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s",
            "test result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 4 filtered out; finished in 1.20s",
            "test replay::tests::window ... ok",
        ] {
            counts.add_result_line(line);
        }
        assert_eq!(
            counts,
            TestCounts {
                passed: 8,
                failed: 2,
                ignored: 1,
                suites: 2
            }
        );
    }
}
