//! What runs inside a VM and what it leaves behind: the guest's script, and the outputs read back
//! from its writable directory (`target/kernels/LABEL/`).
//!
//! The script writes, besides each test binary's output (`TARGET.log`) and a status line per
//! binary (`status`: `TARGET CODE`), a timeline (`timeline`: `EPOCH UPTIME EVENT`, one line per
//! step: the script's start, the modules loaded, each binary's start and end), so the report says
//! where a VM's time went. Each binary runs under the guest's `timeout` with its own limit, so one
//! that hangs costs its limit, not the VM's. vng does not pass the guest's exit status on: the
//! status lines and libtest's own result lines are the verdict, and a binary without both has not
//! passed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::{DistroKernel, Expectation, GuestBinaries, GuestTest};

/// The guest's `timeout` exits with this status when it stopped a binary at its limit.
const TIMED_OUT: i32 = 124;

/// The timeline's event for the script's first step: the guest has booted.
pub const BOOTED: &str = "booted";

/// The timeline file in the output directory.
pub fn timeline_file(out: &Path) -> PathBuf {
    out.join("timeline")
}

/// The file the script creates after its last step.
pub fn finished_file(out: &Path) -> PathBuf {
    out.join("finished")
}

/// The guest's script: a bpffs, unlimited locked memory, the veth and tun modules, then each test
/// binary under its time limit, with its output, exit status and times written to `out`.
pub fn script(
    kernel: &DistroKernel,
    out_dir: &Path,
    tests: &[&GuestTest],
    binaries: &GuestBinaries,
) -> Result<String> {
    let out = out_dir.display();
    let expectation = match kernel.expectation {
        Expectation::Supported => "supported",
        Expectation::TooOld => "too-old",
    };
    let mut script = String::from("# Written by `cargo xtask kernels`; runs inside the VM.\n");
    writeln!(
        script,
        "mark() {{ read up idle < /proc/uptime; echo \"$(date +%s.%N) $up $*\" >> {}; }}",
        timeline_file(out_dir).display()
    )?;
    writeln!(script, "mark {BOOTED}")?;
    script.push_str(
        "mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf\n\
         ulimit -l unlimited\n\
         modprobe veth\n\
         modprobe tun\n\
         mark modules\n",
    );
    writeln!(script, "uname -r > {out}/release")?;
    writeln!(script, "export JVPN_TEST_KERNEL={expectation}")?;
    for test in tests {
        let target = test.target;
        let binary = binaries
            .tests
            .get(target)
            .with_context(|| format!("no binary was built for {target}"))?;
        let env: String = test.env.iter().map(|(k, v)| format!("{k}={v} ")).collect();
        let args: String = test.args.iter().map(|a| format!(" {a}")).collect();
        writeln!(script, "echo \"guest: running {target}\"")?;
        writeln!(script, "mark start {target}")?;
        writeln!(
            script,
            "{env}timeout --kill-after=10 {} {}{args} > {out}/{target}.log 2>&1",
            test.limit_seconds,
            binary.display()
        )?;
        writeln!(script, "code=$?")?;
        writeln!(script, "mark end {target} $code")?;
        writeln!(script, "echo \"{target} $code\" >> {out}/status")?;
    }
    writeln!(script, "touch {}", finished_file(out_dir).display())?;
    Ok(script)
}

/// The timeline's events: seconds since boot (the guest's uptime) by event, in order.
#[derive(Debug, Default)]
pub struct Timeline {
    /// `(uptime, event)` per line.
    pub events: Vec<(f64, String)>,
}

impl Timeline {
    /// The guest's timeline in `out`, empty if it wrote none.
    pub fn read(out: &Path) -> Self {
        let text = std::fs::read_to_string(timeline_file(out)).unwrap_or_default();
        let events = text
            .lines()
            .filter_map(|line| {
                let mut words = line.splitn(3, ' ');
                let _epoch = words.next()?;
                let uptime = words.next()?.parse().ok()?;
                Some((uptime, words.next()?.to_owned()))
            })
            .collect();
        Self { events }
    }

    /// Whether the guest's script started.
    pub fn booted(&self) -> bool {
        self.uptime_of(BOOTED).is_some()
    }

    /// Seconds from the kernel's start to the script's.
    pub fn boot_seconds(&self) -> Option<f64> {
        self.uptime_of(BOOTED)
    }

    /// Seconds from the script's start to the modules being loaded.
    pub fn setup_seconds(&self) -> Option<f64> {
        Some(self.uptime_of("modules")? - self.uptime_of(BOOTED)?)
    }

    /// Seconds `target` ran, if it ended.
    pub fn seconds_of(&self, target: &str) -> Option<f64> {
        let start = self.uptime_of(&format!("start {target}"))?;
        let end = self
            .events
            .iter()
            .find(|(_, event)| event.starts_with(&format!("end {target} ")))?
            .0;
        Some(end - start)
    }

    fn uptime_of(&self, event: &str) -> Option<f64> {
        self.events
            .iter()
            .find(|(_, e)| e == event)
            .map(|(uptime, _)| *uptime)
    }
}

/// How one test binary ended in the guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Exit status 0 and libtest's `test result: ok.` with at least one test passed.
    Passed,
    /// It failed, or did not say it passed; why.
    Failed(String),
    /// The guest's `timeout` stopped it at its limit.
    TimedOut(u64),
    /// The guest never recorded an end for it (the VM died or was stopped first).
    NotRun,
}

/// One test binary's result, as read from the guest's outputs.
#[derive(Debug)]
pub struct TestOutcome {
    /// The `[[test]]` target.
    pub target: &'static str,
    /// How it ended.
    pub verdict: Verdict,
    /// libtest's last `test result:` line, if any.
    pub result_line: Option<String>,
    /// What the test printed for the report (its lines starting with `report: `).
    pub report_lines: Vec<String>,
    /// Seconds it ran, from the timeline.
    pub seconds: Option<f64>,
    /// Its output.
    pub log: PathBuf,
}

/// Reads `test`'s outcome from `out`: its status line, its log and its time.
pub fn outcome(test: &GuestTest, out: &Path, timeline: &Timeline) -> TestOutcome {
    let recorded = std::fs::read_to_string(out.join("status")).unwrap_or_default();
    let status = recorded.lines().find_map(|line| {
        let (name, code) = line.split_once(' ')?;
        (name == test.target).then(|| code.trim().parse::<i32>().ok())?
    });
    let log = out.join(format!("{}.log", test.target));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let result_line = text
        .lines()
        .rev()
        .find(|line| line.starts_with("test result:"))
        .map(str::to_owned);
    TestOutcome {
        target: test.target,
        verdict: verdict(status, result_line.as_deref(), test.limit_seconds),
        report_lines: text
            .lines()
            .filter_map(|line| line.strip_prefix("report: "))
            .map(str::to_owned)
            .collect(),
        result_line,
        seconds: timeline.seconds_of(test.target),
        log,
    }
}

/// The verdict from the exit status and libtest's result line: a pass needs both, and at least one
/// test that ran and passed (a filter that matches nothing exits 0 too).
fn verdict(status: Option<i32>, result_line: Option<&str>, limit_seconds: u64) -> Verdict {
    let Some(code) = status else {
        return Verdict::NotRun;
    };
    match (code, result_line) {
        (TIMED_OUT, _) => Verdict::TimedOut(limit_seconds),
        (0, Some(line)) if line.starts_with("test result: ok.") => match passed_count(line) {
            Some(0) | None => Verdict::Failed(format!(
                "exit 0 but no test passed ({line}); check the binary's filter"
            )),
            Some(_) => Verdict::Passed,
        },
        (0, Some(line)) => Verdict::Failed(format!("exit 0 but libtest said: {line}")),
        (0, None) => Verdict::Failed("exit 0 but libtest printed no result".to_owned()),
        (code, _) => Verdict::Failed(format!("exit {code}")),
    }
}

/// The `N passed` of a libtest result line.
fn passed_count(line: &str) -> Option<u64> {
    line.split(';').find_map(|part| {
        let mut words = part.split_whitespace().rev();
        (words.next()? == "passed").then_some(())?;
        words.next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = "test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; \
                      finished in 1.00s";

    #[test]
    fn a_pass_needs_the_status_and_libtest_passing_tests() {
        assert_eq!(verdict(Some(0), Some(OK), 60), Verdict::Passed);
        assert_eq!(verdict(None, Some(OK), 60), Verdict::NotRun);
        assert_eq!(verdict(Some(124), None, 60), Verdict::TimedOut(60));
        assert!(matches!(verdict(Some(0), None, 60), Verdict::Failed(_)));
        assert!(matches!(
            verdict(Some(101), Some(OK), 60),
            Verdict::Failed(_)
        ));
        let none_ran =
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 3 filtered out; \
                        finished in 0.00s";
        assert!(matches!(
            verdict(Some(0), Some(none_ran), 60),
            Verdict::Failed(_)
        ));
        let failed = "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered \
                      out; finished in 1.00s";
        assert!(matches!(
            verdict(Some(0), Some(failed), 60),
            Verdict::Failed(_)
        ));
    }

    #[test]
    fn the_timeline_gives_boot_and_per_binary_seconds() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        std::fs::write(
            timeline_file(dir.path()),
            "1764000000.1 31.50 booted\n1764000001.0 32.50 modules\n\
             1764000001.1 32.60 start xdp_hello\n1764000010.1 41.60 end xdp_hello 0\n\
             1764000010.2 41.70 start xdp_test_run\n",
        )
        .expect("writing the timeline");
        let timeline = Timeline::read(dir.path());
        assert!(timeline.booted());
        assert_eq!(timeline.boot_seconds(), Some(31.5));
        assert_eq!(timeline.setup_seconds(), Some(1.0));
        assert!((timeline.seconds_of("xdp_hello").expect("ended") - 9.0).abs() < 1e-9);
        assert_eq!(timeline.seconds_of("xdp_test_run"), None);
        assert!(!Timeline::read(&dir.path().join("none")).booted());
    }
}
