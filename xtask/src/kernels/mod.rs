//! `cargo xtask kernels [--kernel LABEL...]` (and the `kernels` tier of `cargo xtask test --kernels`):
//! the BPF tests on the kernels gateways actually run, not only on this machine's.
//!
//! Each distribution kernel of [`KERNELS`] is fetched from Debian's archive (`apt-get download` and
//! `dpkg -x`, cached under `~/.cache/jvpn/kernels`), booted with virtme-ng in software emulation
//! (this machine's KVM cannot boot stock kernels) with two vCPUs, and runs there the test binaries
//! built on the host: on a supported kernel the `BPF_PROG_TEST_RUN` tests (the two-CPU concurrency
//! one included), the native-XDP netns test and the real gateway's start; on a kernel older than
//! jvpn's floor, the gateway's start, which must refuse in one line. A result per kernel and per
//! test binary follows, with where the time went.
//!
//! The tier is bounded by time, not by counts: each binary has a limit in the guest, each VM the
//! sum of them plus its boot, and the two tests that would run for many minutes on an emulated CPU
//! (the model test, the decision list) take a time budget in the guest, over a floor that keeps
//! every verdict and every kind of row. A VM that does not boot is retried once; a kernel the
//! archive cannot give comes from the cache.
//!
//! Layout: [`tools`] installs qemu, busybox, kmod and virtme-ng; [`fetch`] finds and caches the
//! kernels; [`guest`] writes the guest's script and reads its outputs back; [`vm`] boots and
//! watches the VM; [`report`] says what happened.

mod fetch;
mod guest;
mod report;
mod tools;
mod vm;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::util;
use report::KernelReport;

/// Where a kernel's package comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Archive {
    /// This machine's own apt sources (Debian 12, bookworm and bookworm-security).
    Host,
    /// Debian 11 (bullseye and bullseye-security), through a private apt state in the cache, so the
    /// machine's sources are left alone.
    Bullseye,
}

/// What the tier expects of a kernel, stated from the kernel's version, never from jvpn's probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expectation {
    /// Every BPF feature is there: the full set of tests must pass.
    Supported,
    /// Older than jvpn's floor: the gateway must refuse to start, in one line.
    TooOld,
}

/// One distribution kernel the tier boots.
#[derive(Debug, Clone, Copy)]
pub struct DistroKernel {
    /// How the operator names it (`--kernel`), e.g. `6.1`.
    pub label: &'static str,
    /// Where it ships, for the report.
    pub distribution: &'static str,
    /// The package name, as an `apt-cache search --names-only` regular expression; the newest
    /// match (by ABI number) is taken.
    pub package_pattern: &'static str,
    /// Which archive has it.
    pub archive: Archive,
    /// What must happen on it.
    pub expectation: Expectation,
}

/// The kernels of the tier. Debian has no 5.15 package any more (bullseye-backports, which had
/// one, is gone from the archive), so Ubuntu 22.04's 5.15 is not among them.
pub const KERNELS: [DistroKernel; 3] = [
    DistroKernel {
        label: "5.10",
        distribution: "Debian 11",
        package_pattern: r"^linux-image-5\.10\.0-[0-9]+-amd64-unsigned$",
        archive: Archive::Bullseye,
        expectation: Expectation::TooOld,
    },
    DistroKernel {
        label: "6.1",
        distribution: "Debian 12",
        package_pattern: r"^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$",
        archive: Archive::Host,
        expectation: Expectation::Supported,
    },
    DistroKernel {
        label: "6.12",
        distribution: "Debian 12 (bookworm-security)",
        package_pattern: r"^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$",
        archive: Archive::Host,
        expectation: Expectation::Supported,
    },
];

/// The test binaries run in a VM, by cargo package and test target.
#[derive(Debug, Clone, Copy)]
pub struct GuestTest {
    /// The cargo package.
    pub package: &'static str,
    /// The `[[test]]` target.
    pub target: &'static str,
    /// On which kernels it runs.
    pub on: Expectation,
    /// Variables set for it in the guest (time budgets, output shown).
    pub env: &'static [(&'static str, &'static str)],
    /// Arguments for libtest (a filter, `--test-threads`), none to run every test of the binary
    /// in parallel.
    pub args: &'static [&'static str],
    /// Longest it may run in the guest before it is stopped and fails.
    pub limit_seconds: u64,
}

/// Every `BPF_PROG_TEST_RUN` test binary, the native-XDP netns test and the gateway's start on a
/// supported kernel; the gateway's refusal on a kernel too old. Quickest first, so a VM that runs
/// out of time has still run most of them. The two that would otherwise run for minutes take a
/// time budget (their floor keeps every verdict and every kind of row).
pub const GUEST_TESTS: [GuestTest; 14] = [
    GuestTest {
        env: SHOW_OUTPUT,
        ..GuestTest::new("jvpn-tests", "kernel_floor_netns", Expectation::TooOld)
    },
    GuestTest {
        env: SHOW_OUTPUT,
        ..GuestTest::new("jvpn-tests", "kernel_floor_netns", Expectation::Supported)
    },
    GuestTest {
        // 51 s under a load average of 9: its threads share the two vCPUs.
        limit_seconds: 240,
        ..GuestTest::new("jvpn-user", "xdp_concurrency", Expectation::Supported)
    },
    GuestTest {
        // Two pinned threads as well; up to 20 x 200,000 runs under emulation.
        limit_seconds: 240,
        ..GuestTest::new("jvpn-user", "xdp_torn_line", Expectation::Supported)
    },
    GuestTest::new("jvpn-user", "xdp_reflection", Expectation::Supported),
    GuestTest::new("jvpn-user", "xdp_hello", Expectation::Supported),
    GuestTest::new("jvpn-user", "xdp_replay_slots", Expectation::Supported),
    GuestTest::new("jvpn-user", "xdp_slot_hint", Expectation::Supported),
    GuestTest::new("jvpn-user", "xdp_merged_run", Expectation::Supported),
    GuestTest::new("jvpn-user", "xdp_encapsulation", Expectation::Supported),
    GuestTest {
        args: ONE_TEST_AT_A_TIME,
        ..GuestTest::new("jvpn-tests", "dataplane_netns", Expectation::Supported)
    },
    GuestTest {
        args: ONE_TEST_AT_A_TIME,
        ..GuestTest::new("jvpn-user", "xdp_test_run", Expectation::Supported)
    },
    GuestTest {
        // The host's defaults (a million frames, at least 200,000, in 180 s) assume this
        // machine's speed; the emulated CPU judges what it can in a budget, never fewer than
        // the test's floor and never without every verdict.
        env: &[
            ("JVPN_MODEL_SECONDS", "60"),
            ("JVPN_MODEL_MIN_FRAMES", "0"),
            ("RUST_TEST_NOCAPTURE", "1"),
        ],
        // 60 s (126,592 frames under a load average of 9), at most three times that to reach
        // its floor.
        limit_seconds: 240,
        ..GuestTest::new("jvpn-user", "xdp_model_test_run", Expectation::Supported)
    },
    GuestTest {
        // Each row loads its own copy of the program and the verifier runs about ten times
        // slower in the VM: each table gets a budget, and always runs one row of every kind.
        env: &[
            ("JVPN_DECISION_LIST_SECONDS", "30"),
            ("RUST_TEST_NOCAPTURE", "1"),
        ],
        // Its four tables in two threads: 189 s under a load average of 9, most of it the
        // 18 rows of every table's floor (about 4 s per program load there).
        limit_seconds: 420,
        ..GuestTest::new("jvpn-user", "xdp_decision_list", Expectation::Supported)
    },
];

/// For the binaries whose tests rewrite the kernel's XDP dispatcher (a native attach, or
/// `BPF_PROG_TEST_RUN` with `repeat` > 1, both call `bpf_prog_change_xdp`, which patches the
/// dispatcher's jump in place) while a sibling test runs an XDP program through it on the other
/// vCPU. Under software emulation that cross-modification can tear: on 2026-12-04 the 6.12 guest
/// oopsed at `bpf_dispatcher_xdp_func+0xa` (inside the jump being patched) in `xdp_test_run`, and
/// the VM died. Real CPUs patch it safely (`text_poke_bp`), and the host runs these binaries with
/// parallel tests in every `cargo xtask test`; in the guest they take a few seconds one by one.
const ONE_TEST_AT_A_TIME: &[&str] = &["--test-threads=1"];

/// libtest keeps a passing test's output unless asked; the gateway test's `report:` line (what the
/// gateway said) goes into the tier's report.
const SHOW_OUTPUT: &[(&str, &str)] = &[("RUST_TEST_NOCAPTURE", "1")];

/// A binary's limit in the guest unless it states its own: the quick ones took 12 to 21 s there
/// on this 2-core machine with a load average of 9.
const DEFAULT_LIMIT_SECONDS: u64 = 120;

impl GuestTest {
    const fn new(package: &'static str, target: &'static str, on: Expectation) -> Self {
        Self {
            package,
            target,
            on,
            env: &[],
            args: &[],
            limit_seconds: DEFAULT_LIMIT_SECONDS,
        }
    }
}

/// Set by Ctrl-C (or SIGTERM): the running VM is stopped and the tier ends.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// `cargo xtask kernels`: runs the tier on the kernels whose labels are given (all if none), with
/// the test binaries whose targets are given (all if none).
pub fn run(labels: &[String], targets: &[String]) -> Result<()> {
    util::require_root(
        "cargo xtask kernels",
        "the VMs' tests load XDP programs; installing qemu and extracting kernels needs root too",
    )?;
    let kernels = select(labels)?;
    if let Some(unknown) = targets
        .iter()
        .find(|t| !GUEST_TESTS.iter().any(|g| g.target == t.as_str()))
    {
        let known: std::collections::BTreeSet<&str> =
            GUEST_TESTS.iter().map(|g| g.target).collect();
        bail!(
            "no test {unknown:?} in the tier; known: {}",
            known.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))
        .context("installing the Ctrl-C handler")?;
    tools::ensure()?;
    let binaries = build_guest_tests()?;
    let started = Instant::now();
    let mut reports = Vec::new();
    for kernel in kernels {
        let tests: Vec<&GuestTest> = GUEST_TESTS
            .iter()
            .filter(|t| t.on == kernel.expectation)
            .filter(|t| targets.is_empty() || targets.iter().any(|name| name == t.target))
            .collect();
        if tests.is_empty() {
            println!(
                "\nkernel {}: none of the chosen tests applies to it; skipped",
                kernel.label
            );
            continue;
        }
        println!(
            "\n--- kernel {} ({}) ---",
            kernel.label, kernel.distribution
        );
        let report = match fetch::kernel(&kernel) {
            Ok(image) => {
                let mut report = vm::run(&kernel, &image, &binaries, &tests, &INTERRUPTED)?;
                report.notes.extend(image.fallback);
                report
            }
            Err(error) => KernelReport::failed(&kernel, format!("{error:#}")),
        };
        report.print_details();
        reports.push(report);
    }
    println!(
        "\n=== kernels ({:.0} s in all) ===",
        started.elapsed().as_secs_f64()
    );
    for report in &reports {
        report.print_summary();
    }
    let failed: Vec<&str> = reports
        .iter()
        .filter(|r| !r.passed())
        .map(|r| r.label)
        .collect();
    if !failed.is_empty() {
        bail!(
            "kernels failed: {}; see their test output above",
            failed.join(", ")
        );
    }
    Ok(())
}

fn select(labels: &[String]) -> Result<Vec<DistroKernel>> {
    if labels.is_empty() {
        return Ok(KERNELS.to_vec());
    }
    labels
        .iter()
        .map(|label| {
            KERNELS
                .iter()
                .find(|k| k.label == label)
                .copied()
                .with_context(|| {
                    let known: Vec<&str> = KERNELS.iter().map(|k| k.label).collect();
                    format!(
                        "no kernel {label:?} in the tier; known: {}",
                        known.join(", ")
                    )
                })
        })
        .collect()
}

/// The host-built test binaries by target name, and the `jvpn` binary the gateway tests spawn.
pub struct GuestBinaries {
    /// Test executables by `[[test]]` target name.
    pub tests: BTreeMap<&'static str, PathBuf>,
}

/// Builds `jvpn` and every [`GUEST_TESTS`] binary (debug, as `cargo test` does) and finds them in
/// cargo's JSON messages.
fn build_guest_tests() -> Result<GuestBinaries> {
    util::run(util::cargo().args(["build", "-p", "jvpn-user", "--bin", "jvpn"]))?;
    let mut command = util::cargo();
    command.args([
        "test",
        "--no-run",
        "--message-format=json-render-diagnostics",
    ]);
    for package in ["jvpn-user", "jvpn-tests"] {
        command.args(["-p", package]);
    }
    let targets: std::collections::BTreeSet<&str> = GUEST_TESTS.iter().map(|t| t.target).collect();
    for target in targets {
        command.args(["--test", target]);
    }
    let stdout = util::output(&mut command)?;
    let mut tests = BTreeMap::new();
    for line in stdout.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(name), Some(executable)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) else {
            continue;
        };
        if let Some(test) = GUEST_TESTS.iter().find(|t| t.target == name) {
            tests.insert(test.target, PathBuf::from(executable));
        }
    }
    if let Some(missing) = GUEST_TESTS.iter().find(|t| !tests.contains_key(t.target)) {
        bail!(
            "`cargo test --no-run` built no executable for {} (package {}); build it by hand to see why",
            missing.target,
            missing.package
        );
    }
    Ok(GuestBinaries { tests })
}
