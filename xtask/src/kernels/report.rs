//! What the tier says about each kernel: a line per test binary (its verdict, libtest's result
//! line, the lines it printed for the report, its time), where the VM's time went (boot, set-up,
//! the binaries), and a summary line per kernel.

use std::path::Path;
use std::time::Duration;

use super::guest::{TestOutcome, Timeline, Verdict};
use super::{DistroKernel, Expectation};

/// Lines of a failed test's output shown in the report.
const FAILURE_TAIL_LINES: usize = 40;

/// Everything one kernel produced.
#[derive(Debug)]
pub struct KernelReport {
    /// The kernel's label, e.g. `6.1`.
    pub label: &'static str,
    distribution: &'static str,
    expectation: Expectation,
    /// The running release the guest reported, or the package when it never did.
    pub release: String,
    /// Per test binary that should have run.
    pub tests: Vec<TestOutcome>,
    /// Why the kernel failed before or around its tests (fetch, boot, time limit).
    pub problem: Option<String>,
    /// What went wrong but was recovered from (a boot retried, a cached kernel used offline).
    pub notes: Vec<String>,
    /// The guest's timeline of the attempt that counted.
    pub timeline: Timeline,
    /// Seconds from starting vng to the guest's script starting, as seen from this machine.
    pub host_boot_seconds: Option<f64>,
    /// The whole VM, boot and any retry included.
    pub elapsed: Duration,
}

impl KernelReport {
    /// A report for `kernel` with nothing in it yet.
    pub fn new(kernel: &DistroKernel) -> Self {
        Self {
            label: kernel.label,
            distribution: kernel.distribution,
            expectation: kernel.expectation,
            release: "?".to_owned(),
            tests: Vec::new(),
            problem: None,
            notes: Vec::new(),
            timeline: Timeline::default(),
            host_boot_seconds: None,
            elapsed: Duration::ZERO,
        }
    }

    /// A kernel that failed before any test ran.
    pub fn failed(kernel: &DistroKernel, problem: String) -> Self {
        Self {
            problem: Some(problem),
            ..Self::new(kernel)
        }
    }

    /// Whether every test the kernel should run ran and passed.
    pub fn passed(&self) -> bool {
        self.problem.is_none()
            && !self.tests.is_empty()
            && self.tests.iter().all(|t| t.verdict == Verdict::Passed)
    }

    /// Per test: its verdict, result line and time, and the end of its output when it failed;
    /// then where the VM's time went.
    pub fn print_details(&self) {
        for note in &self.notes {
            println!("kernel {}: note: {note}", self.label);
        }
        if let Some(problem) = &self.problem {
            println!("kernel {}: {problem}", self.label);
        }
        for test in &self.tests {
            let verdict = match &test.verdict {
                Verdict::Passed => "ok".to_owned(),
                Verdict::Failed(why) => format!("FAILED ({why})"),
                Verdict::TimedOut(limit) => {
                    format!("TIMED OUT (its limit in the guest: {limit} s)")
                }
                Verdict::NotRun => "NOT RUN".to_owned(),
            };
            println!(
                "  {:<20} {:>6} {verdict}  {}",
                test.target,
                seconds(test.seconds),
                test.result_line.as_deref().unwrap_or("")
            );
            for line in &test.report_lines {
                println!("    {line}");
            }
            if test.verdict != Verdict::Passed && test.verdict != Verdict::NotRun {
                print_tail(&test.log);
            }
        }
        println!(
            "  time: {:.0} s in all; boot {} (kernel {}), modules {}, tests {}",
            self.elapsed.as_secs_f64(),
            seconds(self.host_boot_seconds),
            seconds(self.timeline.boot_seconds()),
            seconds(self.timeline.setup_seconds()),
            seconds(Some(self.tests.iter().filter_map(|t| t.seconds).sum())),
        );
    }

    /// One line: label, distribution, release, verdict, binaries passed, time.
    pub fn print_summary(&self) {
        let passed = self
            .tests
            .iter()
            .filter(|t| t.verdict == Verdict::Passed)
            .count();
        let expected = match self.expectation {
            Expectation::Supported => "supported",
            Expectation::TooOld => "too old: gateway must refuse in one line",
        };
        println!(
            "  {:<5} {:<30} {:<26} {:<7} {}/{} test binaries  {:>5.0} s  ({expected})",
            self.label,
            self.distribution,
            self.release,
            if self.passed() { "ok" } else { "FAILED" },
            passed,
            self.tests.len(),
            self.elapsed.as_secs_f64(),
        );
    }
}

fn seconds(value: Option<f64>) -> String {
    value.map_or_else(|| "?".to_owned(), |s| format!("{s:.0} s"))
}

fn print_tail(log: &Path) {
    let Ok(text) = std::fs::read_to_string(log) else {
        println!("    (no output recorded in {})", log.display());
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(FAILURE_TAIL_LINES);
    println!("    last lines of {}:", log.display());
    for line in &lines[start..] {
        println!("    | {line}");
    }
}
