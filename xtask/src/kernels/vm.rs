//! One kernel's VM: the guest script, the boot, and the results read back.
//!
//! virtme-ng mounts this machine's root read-only as the guest's, so the guest runs the test
//! binaries built here, from the repository; results leave the guest only through a writable
//! directory, `target/kernels/LABEL/` (each test's output, a status line per test, the kernel's
//! release). vng does not pass the guest's exit status on, so the status lines are the verdict;
//! the whole console goes to `console.log` beside them.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::fetch::KernelImage;
use super::tools::venv_dir;
use super::{DistroKernel, Expectation, GuestBinaries, GuestTest, GUEST_TESTS};
use crate::util;

/// vCPUs per VM: the concurrency test needs two.
const CPUS: &str = "2";

/// Memory per VM.
const MEMORY: &str = "2G";

/// Longest one VM may run, boot included, before it is killed and its kernel fails. Software
/// emulation boots in about 30 s and runs the tests about ten times slower than this machine (and
/// much slower again when the machine's cores are busy with other work).
const VM_TIME_LIMIT: Duration = Duration::from_secs(20 * 60);

/// Lines of a failed test's output shown in the report.
const FAILURE_TAIL_LINES: usize = 40;

/// How one test binary ended in the guest.
#[derive(Debug)]
pub struct TestOutcome {
    target: &'static str,
    /// The binary's exit status; `None` if the guest never recorded one (the VM died or timed out).
    status: Option<i32>,
    /// libtest's last `test result:` line, if any.
    result_line: Option<String>,
    /// What the test printed for the report (its lines starting with `report: `).
    report_lines: Vec<String>,
    log: PathBuf,
}

/// Everything one kernel produced.
#[derive(Debug)]
pub struct KernelReport {
    /// The kernel's label, e.g. `6.1`.
    pub label: &'static str,
    distribution: &'static str,
    expectation: Expectation,
    /// The running release the guest reported, or the package when it never did.
    release: String,
    tests: Vec<TestOutcome>,
    /// Why the kernel failed before or around its tests (fetch, boot, time limit).
    problem: Option<String>,
    elapsed: Duration,
}

impl KernelReport {
    /// A kernel that failed before any test ran.
    pub fn failed(kernel: &DistroKernel, problem: String) -> Self {
        Self {
            label: kernel.label,
            distribution: kernel.distribution,
            expectation: kernel.expectation,
            release: "?".to_owned(),
            tests: Vec::new(),
            problem: Some(problem),
            elapsed: Duration::ZERO,
        }
    }

    /// Whether every test the kernel should run ran and passed.
    pub fn passed(&self) -> bool {
        self.problem.is_none()
            && !self.tests.is_empty()
            && self.tests.iter().all(|t| t.status == Some(0))
    }

    /// Per test: its result line, and the end of its output when it failed.
    pub fn print_details(&self) {
        if let Some(problem) = &self.problem {
            println!("kernel {}: {problem}", self.label);
        }
        for test in &self.tests {
            let verdict = match test.status {
                Some(0) => "ok".to_owned(),
                Some(code) => format!("FAILED (exit {code})"),
                None => "NOT RUN".to_owned(),
            };
            println!(
                "  {:<20} {:<16} {}",
                test.target,
                verdict,
                test.result_line.as_deref().unwrap_or("")
            );
            for line in &test.report_lines {
                println!("    {line}");
            }
            if test.status != Some(0) {
                print_tail(&test.log);
            }
        }
    }

    /// One line: label, distribution, release, verdict, tests passed, time.
    pub fn print_summary(&self) {
        let passed = self.tests.iter().filter(|t| t.status == Some(0)).count();
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

/// Boots `image` and runs the kernel's tests in it (only those named in `targets`, if any are).
pub fn run(
    kernel: &DistroKernel,
    image: &KernelImage,
    binaries: &GuestBinaries,
    targets: &[String],
) -> Result<KernelReport> {
    let out = util::target_dir()?.join("kernels").join(kernel.label);
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let tests: Vec<&GuestTest> = GUEST_TESTS
        .iter()
        .filter(|t| t.on == kernel.expectation)
        .filter(|t| targets.is_empty() || targets.iter().any(|name| name == t.target))
        .collect();
    let script = out.join("guest.sh");
    std::fs::write(&script, guest_script(kernel, &out, &tests, binaries)?)
        .with_context(|| format!("writing {}", script.display()))?;

    let started = Instant::now();
    let console = out.join("console.log");
    let mut command = vng_command(image, &out, &script);
    command
        .current_dir(util::repo_root())
        .stdin(Stdio::null())
        .stdout(Stdio::from(
            std::fs::File::create(&console)
                .with_context(|| format!("creating {}", console.display()))?,
        ))
        .stderr(Stdio::from(
            std::fs::File::options()
                .append(true)
                .open(&console)
                .with_context(|| format!("opening {}", console.display()))?,
        ));
    println!(
        "kernels: booting {} ({} vCPUs, software emulation; console in {})",
        image.package,
        CPUS,
        console.display()
    );
    let status = command
        .status()
        .with_context(|| format!("`{}` could not start", util::describe(&command)))?;
    let elapsed = started.elapsed();

    let recorded = std::fs::read_to_string(out.join("status")).unwrap_or_default();
    let outcomes = tests
        .iter()
        .map(|test| outcome(test.target, &recorded, &out))
        .collect::<Vec<_>>();
    let finished = out.join("finished").exists();
    let problem = (!finished).then(|| {
        if elapsed >= VM_TIME_LIMIT {
            format!(
                "the VM ran past its time limit ({} s) and was killed; console in {}",
                VM_TIME_LIMIT.as_secs(),
                console.display()
            )
        } else {
            format!(
                "the VM ended ({status}) before its script finished; console in {}",
                console.display()
            )
        }
    });
    Ok(KernelReport {
        label: kernel.label,
        distribution: kernel.distribution,
        expectation: kernel.expectation,
        release: std::fs::read_to_string(out.join("release"))
            .map(|r| r.trim().to_owned())
            .unwrap_or_else(|_| image.package.clone()),
        tests: outcomes,
        problem,
        elapsed,
    })
}

/// `timeout ... vng --disable-kvm --run VMLINUZ ...`: `timeout` signals its whole process group,
/// so qemu goes with vng at the limit. `-v` sends the guest's console to stdout: without it vng
/// shows nothing when its stdout is not a terminal.
fn vng_command(image: &KernelImage, out: &Path, script: &Path) -> Command {
    let venv_bin = venv_dir().join("bin");
    let path = std::env::var("PATH").unwrap_or_default();
    let mut command = Command::new("timeout");
    command
        .env("PATH", format!("{}:{path}", venv_bin.display()))
        .args(["--kill-after=30", &VM_TIME_LIMIT.as_secs().to_string()])
        .arg(venv_bin.join("vng"))
        // This machine's KVM is paravirtual and cannot boot stock kernels.
        .arg("--disable-kvm")
        .arg("--run")
        .arg(&image.vmlinuz)
        .args(["--cpus", CPUS, "--memory", MEMORY, "-v", "--rwdir"])
        .arg(out)
        .arg("--exec")
        .arg(format!("sh {}", script.display()));
    command
}

/// The guest's script: a bpffs, unlimited locked memory, the veth and tun modules, then each test
/// binary with its output and exit status written to `out`.
fn guest_script(
    kernel: &DistroKernel,
    out: &Path,
    tests: &[&GuestTest],
    binaries: &GuestBinaries,
) -> Result<String> {
    let out = out.display();
    let expectation = match kernel.expectation {
        Expectation::Supported => "supported",
        Expectation::TooOld => "too-old",
    };
    let mut script = String::from(
        "# Written by `cargo xtask kernels`; runs inside the VM.\n\
         mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf\n\
         ulimit -l unlimited\n\
         modprobe veth\n\
         modprobe tun\n",
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
        writeln!(script, "echo \"guest: running {target}\"")?;
        let args: String = test.args.iter().map(|a| format!(" {a}")).collect();
        writeln!(
            script,
            "{env}{}{args} > {out}/{target}.log 2>&1",
            binary.display()
        )?;
        writeln!(script, "echo \"{target} $?\" >> {out}/status")?;
    }
    writeln!(script, "touch {out}/finished")?;
    Ok(script)
}

fn outcome(target: &'static str, recorded: &str, out: &Path) -> TestOutcome {
    let status = recorded.lines().find_map(|line| {
        let (name, code) = line.split_once(' ')?;
        (name == target).then(|| code.trim().parse().ok())?
    });
    let log = out.join(format!("{target}.log"));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let result_line = text
        .lines()
        .rev()
        .find(|line| line.starts_with("test result:"))
        .map(str::to_owned);
    let report_lines = text
        .lines()
        .filter_map(|line| line.strip_prefix("report: "))
        .map(str::to_owned)
        .collect();
    TestOutcome {
        target,
        status,
        result_line,
        report_lines,
        log,
    }
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
