//! Which capabilities the gateway keeps once it serves, and dropping the rest from every thread.
//!
//! Start-up needs many (loading and attaching XDP, pinning, the TUN device, socket options);
//! serving needs none on Linux 6.5 and later, where the `bpf()` commands on a map the process
//! already holds (lookups, updates, deletes) ask for no capability. Before 6.5 every `bpf()` call
//! needs `CAP_BPF` while unprivileged BPF is disabled (Debian's default), so the gateway keeps
//! that one there. The drop covers the bounding set too, so a later `execve` cannot regain
//! anything.

use super::sys;
use std::collections::BTreeSet;
use std::fmt;
use std::time::{Duration, Instant};

/// `CAP_BPF` (Linux 5.8+).
pub const CAP_BPF: u32 = 39;

/// The first kernel whose `bpf()` checks no capability for commands on a map descriptor.
const FD_COMMANDS_UNPRIVILEGED_SINCE: (u32, u32) = (6, 5);

/// How long the other threads get to run their handlers in one round; a failure bound.
const ROUND_PATIENCE: Duration = Duration::from_millis(500);
/// Rounds of signals: a thread started during a round (from a thread that had not dropped yet) is
/// caught by the next.
const ROUNDS: usize = 5;

/// A set of capabilities, as the bit mask the kernel uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CapabilitySet(pub u64);

impl CapabilitySet {
    /// Whether `cap` is in the set.
    pub fn contains(self, cap: u32) -> bool {
        cap < 64 && self.0 & 1 << cap != 0
    }
}

impl fmt::Display for CapabilitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("none");
        }
        let names: Vec<String> = (0..64)
            .filter(|cap| self.contains(*cap))
            .map(|cap| match cap {
                CAP_BPF => "CAP_BPF".to_string(),
                other => format!("capability {other}"),
            })
            .collect();
        f.write_str(&names.join(", "))
    }
}

/// Why the capabilities could not be dropped from every thread.
#[derive(Debug, thiserror::Error)]
pub enum CapabilityError {
    /// The signal handler could not be installed or a thread not signalled.
    #[error(
        "cannot ask the gateway's threads to drop their capabilities: {0}; report this as a bug"
    )]
    Signal(#[source] std::io::Error),
    /// The calling thread's own drop failed.
    #[error("cannot drop the gateway's capabilities (errno {0}); report this as a bug")]
    Drop(i32),
    /// Some threads still hold capabilities outside the kept set.
    #[error(
        "threads {tids:?} of the gateway still hold capabilities it dropped; stopping rather than \
         serving with them: report this as a bug"
    )]
    ThreadsKept {
        /// The threads that did not drop.
        tids: Vec<i32>,
    },
}

/// The capabilities serving needs on the kernel whose release (`uname -r`) is `release`: none
/// from 6.5, `CAP_BPF` before (and when the release cannot be read, to be safe).
pub fn kept_while_serving(release: &str) -> CapabilitySet {
    match kernel_version(release) {
        Some(version) if version >= FD_COMMANDS_UNPRIVILEGED_SINCE => CapabilitySet(0),
        _ => CapabilitySet(1 << CAP_BPF),
    }
}

/// `(major, minor)` from a kernel release such as `6.1.0-57-amd64` or `6.18.44-fc-v1147`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(['.', '-']);
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The `CapEff:` and `CapPrm:` masks of a `/proc/.../status` text.
pub fn effective_and_permitted(status: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
    };
    Some((field("CapEff:")?, field("CapPrm:")?))
}

/// Drops every capability outside `keep` from every thread of this process, and checks each
/// thread's `/proc` status afterwards.
pub fn drop_all_but(keep: CapabilitySet) -> Result<(), CapabilityError> {
    sys::prepare(keep.0).map_err(CapabilityError::Signal)?;
    sys::drop_current_thread(keep.0).map_err(CapabilityError::Drop)?;
    let me = sys::current_tid();
    let mut holding = Vec::new();
    for _ in 0..ROUNDS {
        holding = threads_holding_more_than(keep);
        holding.retain(|tid| *tid != me);
        if holding.is_empty() {
            return Ok(());
        }
        sys::reset_counts();
        let mut signalled = 0;
        for tid in &holding {
            match sys::signal_thread(*tid) {
                Ok(()) => signalled += 1,
                // The thread ended between the listing and the signal.
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(e) => return Err(CapabilityError::Signal(e)),
            }
        }
        let deadline = Instant::now() + ROUND_PATIENCE;
        while sys::counts().0 < signalled && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    Err(CapabilityError::ThreadsKept { tids: holding })
}

/// The threads of this process whose effective or permitted set holds something outside `keep`
/// (a thread whose status cannot be read has ended).
fn threads_holding_more_than(keep: CapabilitySet) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut holding = BTreeSet::new();
    for task in tasks.flatten() {
        let Some(tid) = task
            .file_name()
            .to_str()
            .and_then(|t| t.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        if let Some((effective, permitted)) = effective_and_permitted(&status) {
            if (effective | permitted) & !keep.0 != 0 {
                holding.insert(tid);
            }
        }
    }
    holding.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_bpf_is_kept_only_where_fd_commands_need_it() {
        let cases = [
            ("6.18.44-fc-v1147", 0),
            ("6.5.0", 0),
            ("7.0.1", 0),
            ("6.4.16-arch1", 1 << CAP_BPF),
            ("6.1.0-57-amd64", 1 << CAP_BPF),
            ("5.15.0-91-generic", 1 << CAP_BPF),
            ("5.14.0-362.el9.x86_64", 1 << CAP_BPF),
            ("garbage", 1 << CAP_BPF),
        ];
        for (release, kept) in cases {
            assert_eq!(
                kept_while_serving(release),
                CapabilitySet(kept),
                "{release}"
            );
        }
    }

    #[test]
    fn kernel_versions_are_read_from_releases() {
        assert_eq!(kernel_version("6.1.0-57-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("6.18.44-fc-v1147\n"), Some((6, 18)));
        assert_eq!(kernel_version("6"), None);
        assert_eq!(kernel_version("x.y"), None);
    }

    #[test]
    fn status_masks_are_parsed() {
        let status = "Name:\tjvpn\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n\
                      CapEff:\t0000008000000000\nCapBnd:\t000001ffffffffff\n";
        assert_eq!(
            effective_and_permitted(status),
            Some((1 << CAP_BPF, 0x1ff_ffff_ffff))
        );
        assert_eq!(effective_and_permitted("Name:\tjvpn\n"), None);
    }

    #[test]
    fn sets_print_their_names() {
        assert_eq!(CapabilitySet(0).to_string(), "none");
        assert_eq!(CapabilitySet(1 << CAP_BPF).to_string(), "CAP_BPF");
        assert_eq!(
            CapabilitySet(1 << CAP_BPF | 1 << 12).to_string(),
            "capability 12, CAP_BPF"
        );
    }
}
