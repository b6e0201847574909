//! One kernel's VM: boots it with virtme-ng, watches it, and reads back what the guest left in
//! `target/kernels/LABEL/` ([`guest`] writes the script and reads the outputs).
//!
//! virtme-ng mounts this machine's root read-only as the guest's, so the guest runs the test
//! binaries built here; results leave it only through that writable directory, and the whole
//! console goes to `console.log` beside them. Time is bounded twice: each binary by its own limit
//! inside the guest, the whole VM by [`VM_TIME_LIMIT`] outside it. A VM that
//! does not reach its script (a boot that hangs or dies, which software emulation on a busy
//! machine now and then does) is retried once, and the report says so.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::fetch::KernelImage;
use super::guest::{self, Timeline};
use super::report::KernelReport;
use super::tools::venv_dir;
use super::{DistroKernel, GuestBinaries, GuestTest};
use crate::util::{self, Interrupted};

/// vCPUs per VM: the concurrency test needs two.
const CPUS: &str = "2";

/// Memory per VM.
const MEMORY: &str = "2G";

/// Longest a VM may take to reach the guest's script. Software emulation boots in about 30 s on
/// an idle machine; several times that on a busy one.
const BOOT_LIMIT: Duration = Duration::from_secs(240);

/// Longest one VM may run, boot included, before it is stopped and its kernel fails: the tier
/// must fit in CI's time. A supported kernel's VM took about 8 minutes on this 2-core machine
/// with a load average of 9 (other builds and tests running), 3 to 4 idle.
const VM_TIME_LIMIT: Duration = Duration::from_secs(15 * 60);

/// How long the VM's processes get to end after being told to, before they are killed.
const KILL_AFTER_SECONDS: &str = "30";

/// How often a running VM is looked at.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// How many times a VM that fails to boot is started in all.
const BOOT_ATTEMPTS: u32 = 2;

/// Boots `image` and runs `tests` in it; a VM that does not boot is retried once.
pub fn run(
    kernel: &DistroKernel,
    image: &KernelImage,
    binaries: &GuestBinaries,
    tests: &[&GuestTest],
    interrupted: &AtomicBool,
) -> Result<KernelReport> {
    let out = util::target_dir()?.join("kernels").join(kernel.label);
    let limit = VM_TIME_LIMIT;
    let mut report = KernelReport::new(kernel);
    report.release = image.package.clone();
    let started = Instant::now();
    for attempt in 1..=BOOT_ATTEMPTS {
        clear(&out)?;
        let script = out.join("guest.sh");
        std::fs::write(&script, guest::script(kernel, &out, tests, binaries)?)
            .with_context(|| format!("writing {}", script.display()))?;
        let console = out.join("console.log");
        println!(
            "kernels: booting {} ({CPUS} vCPUs, software emulation, at most {} s; console in {})",
            image.package,
            limit.as_secs(),
            console.display()
        );
        let ended = watch(image, &out, &console, limit, interrupted)?;
        let timeline = Timeline::read(&out);
        if let Ended::NotBooted(why) = &ended {
            let kept = out.with_file_name(format!("{}.boot-{attempt}.log", kernel.label));
            // Kept for the report: the next attempt clears the directory.
            std::fs::rename(&console, &kept)
                .with_context(|| format!("keeping {} as {}", console.display(), kept.display()))?;
            if attempt < BOOT_ATTEMPTS {
                report.notes.push(format!(
                    "the VM did not boot ({why}; console in {}); retried once",
                    kept.display()
                ));
                continue;
            }
            report.problem = Some(format!(
                "the VM did not boot, twice ({why}; consoles in {})",
                out.with_file_name(format!("{}.boot-*.log", kernel.label))
                    .display()
            ));
            break;
        }
        report.host_boot_seconds = match &ended {
            Ended::Exited { booted_after, .. } => Some(booted_after.as_secs_f64()),
            Ended::NotBooted(_) => None,
        };
        report.tests = tests
            .iter()
            .map(|test| guest::outcome(test, &out, &timeline))
            .collect();
        if !guest::finished_file(&out).exists() {
            report.problem = Some(match ended {
                Ended::Exited { status, .. } if timed_out(status) => format!(
                    "the VM ran past its time limit ({} s) and was stopped; the binaries that \
                     show NOT RUN never ran; console in {}",
                    limit.as_secs(),
                    console.display()
                ),
                _ => format!(
                    "the VM ended before its script finished; console in {}",
                    console.display()
                ),
            });
        }
        report.timeline = timeline;
        break;
    }
    report.elapsed = started.elapsed();
    if let Ok(release) = std::fs::read_to_string(out.join("release")) {
        report.release = release.trim().to_owned();
    }
    Ok(report)
}

/// How a VM ended.
enum Ended {
    /// The guest's script started; then the VM exited with `status`.
    Exited {
        status: ExitStatus,
        booted_after: Duration,
    },
    /// The guest's script never started; why.
    NotBooted(String),
}

/// Starts the VM and waits for it, stopping it early if it does not boot in time or the operator
/// interrupts.
fn watch(
    image: &KernelImage,
    out: &Path,
    console: &Path,
    limit: Duration,
    interrupted: &AtomicBool,
) -> Result<Ended> {
    let mut command = vng_command(image, out, limit);
    let log = std::fs::File::create(console)
        .with_context(|| format!("creating {}", console.display()))?;
    command
        .current_dir(util::repo_root())
        .stdin(Stdio::null())
        .stderr(Stdio::from(log.try_clone().with_context(|| {
            format!("opening {} twice", console.display())
        })?))
        .stdout(Stdio::from(log));
    let line = util::describe(&command);
    let mut child = command
        .spawn()
        .with_context(|| format!("`{line}` could not start"))?;
    let started = Instant::now();
    let mut booted_after = None;
    loop {
        if interrupted.load(Ordering::SeqCst) {
            stop(&mut child);
            return Err(Interrupted.into());
        }
        if booted_after.is_none() && Timeline::read(out).booted() {
            booted_after = Some(started.elapsed());
        }
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for `{line}`"))?
        {
            return Ok(match booted_after {
                Some(booted_after) => Ended::Exited {
                    status,
                    booted_after,
                },
                None => Ended::NotBooted(format!(
                    "vng ended ({status}) before the guest's script started"
                )),
            });
        }
        if booted_after.is_none() && started.elapsed() > BOOT_LIMIT {
            stop(&mut child);
            return Ok(Ended::NotBooted(format!(
                "the guest's script had not started after {} s",
                BOOT_LIMIT.as_secs()
            )));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Stops the VM: `timeout` passes SIGTERM on to its process group (vng and qemu) and kills
/// what is left after [`KILL_AFTER_SECONDS`].
fn stop(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // It may have just exited by itself: a failed signal is expected then.
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    let _ = child.wait();
}

/// `timeout` exits 124 when the limit passed, 137 when it had to kill.
fn timed_out(status: ExitStatus) -> bool {
    matches!(status.code(), Some(124 | 137))
}

fn clear(out: &Path) -> Result<()> {
    if out.exists() {
        std::fs::remove_dir_all(out).with_context(|| format!("clearing {}", out.display()))?;
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))
}

/// `timeout ... vng --disable-kvm --run VMLINUZ ...`: `timeout` signals its whole process group,
/// so qemu goes with vng at the limit. `-v` sends the guest's console to stdout: without it vng
/// shows nothing when its stdout is not a terminal.
fn vng_command(image: &KernelImage, out: &Path, limit: Duration) -> Command {
    let venv_bin = venv_dir().join("bin");
    let path = std::env::var("PATH").unwrap_or_default();
    let mut command = Command::new("timeout");
    command
        .env("PATH", format!("{}:{path}", venv_bin.display()))
        .args([
            &format!("--kill-after={KILL_AFTER_SECONDS}"),
            &limit.as_secs().to_string(),
        ])
        .arg(venv_bin.join("vng"))
        // This machine's KVM is paravirtual and cannot boot stock kernels.
        .arg("--disable-kvm")
        .arg("--run")
        .arg(&image.vmlinuz)
        .args(["--cpus", CPUS, "--memory", MEMORY, "-v", "--rwdir"])
        .arg(out)
        .arg("--exec")
        .arg(format!("sh {}", out.join("guest.sh").display()));
    command
}
