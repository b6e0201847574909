//! `cargo xtask fuzz [--seconds N] [TARGET...]`: builds the cargo-fuzz targets of `fuzz/` (nightly,
//! libFuzzer) and runs each for a bounded time on its corpus in the repository, `fuzz/corpus/TARGET`.
//!
//! The repository's corpus is only read: libFuzzer writes what it finds to `fuzz/target/found/TARGET`
//! (ignored by git, kept between runs so longer local runs build on each other). A crash, a timeout
//! or an out-of-memory leaves its input under `fuzz/artifacts/TARGET/`; the run goes on with the
//! other targets, then fails naming each artifact and the command that reproduces it. libFuzzer's
//! own output (a line per new input) goes to `fuzz/target/logs/TARGET.log`; the run prints its last
//! line, or its last [`FAILURE_TAIL_LINES`] lines when the target failed.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{setup, util};

/// Seconds each target runs when `--seconds` is not given.
pub const DEFAULT_SECONDS: u64 = 60;

/// The toolchain cargo-fuzz needs (sanitizer flags are unstable).
const TOOLCHAIN: &str = "+nightly";

/// Longest a single input may run before libFuzzer reports it as a timeout artifact. Every target
/// decodes one small input; seconds mean a hang.
const INPUT_TIMEOUT_SECS: u64 = 10;

/// Lines of a failed target's libFuzzer log printed with the failure.
const FAILURE_TAIL_LINES: usize = 60;

/// The fuzz crate's directory.
fn fuzz_dir() -> PathBuf {
    util::repo_root().join("fuzz")
}

/// `cargo +nightly fuzz ...`, run from the workspace root (cargo-fuzz finds `fuzz/` there).
fn cargo_fuzz() -> Command {
    let mut command = util::cargo();
    command.args([TOOLCHAIN, "fuzz"]);
    command
}

/// A target that failed and the inputs it left behind.
struct Failure {
    target: String,
    artifacts: Vec<PathBuf>,
}

/// `cargo xtask fuzz`: every target (or those named) for `seconds` each.
pub fn run(seconds: u64, targets: &[String]) -> Result<()> {
    setup::ensure_fuzzable()?;
    let known = list_targets()?;
    let targets: Vec<String> = if targets.is_empty() {
        known
    } else {
        if let Some(unknown) = targets.iter().find(|t| !known.contains(t)) {
            bail!(
                "no fuzz target {unknown:?}; the targets are: {}",
                known.join(", ")
            );
        }
        targets.to_vec()
    };

    util::run(cargo_fuzz().arg("build"))
        .context("building the fuzz targets failed; fix the build before fuzzing")?;

    let mut failures = Vec::new();
    for target in &targets {
        println!("\n=== fuzz {target}: {seconds} s ===");
        if let Some(failure) = run_target(target, seconds)? {
            failures.push(failure);
        }
    }
    if failures.is_empty() {
        println!(
            "\nfuzz: {} targets ran {seconds} s each without a failure",
            targets.len()
        );
        return Ok(());
    }
    let mut report = String::new();
    for failure in &failures {
        report.push_str(&format!("\n  target {}:", failure.target));
        if failure.artifacts.is_empty() {
            report.push_str(" libFuzzer failed without leaving an input; see its output above");
        }
        for artifact in &failure.artifacts {
            report.push_str(&format!(
                "\n    input {}\n    reproduce: cargo {TOOLCHAIN} fuzz run {} {}",
                artifact.display(),
                failure.target,
                artifact.display()
            ));
        }
    }
    bail!(
        "fuzz targets failed:{report}\nfix the code under test (a decoder refuses with a typed error) and add the input as a unit test in its crate"
    )
}

/// The targets `fuzz/Cargo.toml` declares, as cargo-fuzz lists them.
fn list_targets() -> Result<Vec<String>> {
    let listing = util::output(cargo_fuzz().arg("list"))?;
    let targets: Vec<String> = listing
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        bail!("`cargo {TOOLCHAIN} fuzz list` found no targets in fuzz/Cargo.toml");
    }
    Ok(targets)
}

/// Runs one target; `Some` if it failed.
fn run_target(target: &str, seconds: u64) -> Result<Option<Failure>> {
    let fuzz = fuzz_dir();
    let corpus = fuzz.join("corpus").join(target);
    let found = fuzz.join("target").join("found").join(target);
    let artifacts = fuzz.join("artifacts").join(target);
    for dir in [&corpus, &found, &artifacts] {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let before = files_in(&artifacts)?;
    let logs = fuzz.join("target").join("logs");
    fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let log_path = logs.join(format!("{target}.log"));
    let log =
        fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    // The first corpus directory is where libFuzzer writes new inputs; the repository's is only read.
    let mut command = cargo_fuzz();
    command
        .stdout(
            log.try_clone()
                .context("duplicating the fuzz log's handle")?,
        )
        .stderr(log);
    command
        .args(["run", target])
        .arg(&found)
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_SECS}"));
    let passed = util::run(&mut command).is_ok();
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = match passed {
        true => 1,
        false => FAILURE_TAIL_LINES,
    };
    for line in &lines[lines.len().saturating_sub(tail)..] {
        println!("  {line}");
    }
    println!("  (libFuzzer's whole output: {})", log_path.display());
    if passed {
        return Ok(None);
    }
    let artifacts = files_in(&artifacts)?.difference(&before).cloned().collect();
    Ok(Some(Failure {
        target: target.to_owned(),
        artifacts,
    }))
}

/// The files directly in `dir`.
fn files_in(dir: &Path) -> Result<BTreeSet<PathBuf>> {
    let mut files = BTreeSet::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if path.is_file() {
            files.insert(path);
        }
    }
    Ok(files)
}
