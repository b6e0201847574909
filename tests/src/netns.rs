//! Network namespaces for tests and benchmarks: created with unique names (or, for a benchmark
//! that must find a killed run's leftovers, fixed ones), deleted on drop, and entered either by one
//! thread (`setns`, for code of this process) or by a child process (`nsenter --net` or `ip netns
//! exec`).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

/// Counter that makes names unique within this process; the pid makes them unique across
/// processes, so tests running in parallel (or a leftover of a killed run) never collide.
static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A fresh name `jv<pid>x<n><suffix>`, short enough for an interface name (15 bytes) as long as
/// `suffix` has at most 2 bytes.
pub fn unique_name(suffix: &str) -> String {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let name = format!("jv{}x{n}{suffix}", std::process::id());
    assert!(
        name.len() <= 15,
        "test name {name} is too long for an interface"
    );
    name
}

/// A network namespace, deleted (with every interface in it) when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a namespace with a unique name ending in `suffix` and brings its loopback up.
    pub fn new(suffix: &str) -> Self {
        let netns = Self {
            name: unique_name(suffix),
        };
        run_ok(Command::new("ip").args(["netns", "add", &netns.name]));
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// Creates namespace `name` (a fixed name, for a benchmark whose leftovers a later run must
    /// find) and brings its loopback up, first removing a namespace of that name left by a run
    /// that was killed before it could clean up ([`remove_leftover`]).
    pub fn named(name: &str) -> Self {
        remove_leftover(name);
        run_ok(Command::new("ip").args(["netns", "add", name]));
        let netns = Self {
            name: name.to_owned(),
        };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// A handle on the existing namespace `name`, which its creator (e.g. `cargo xtask demo`)
    /// deletes: the handle is never dropped, so it never deletes the namespace.
    pub fn existing(name: &str) -> std::mem::ManuallyDrop<Self> {
        std::mem::ManuallyDrop::new(Self {
            name: name.to_owned(),
        })
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace's bind mount, which `setns` opens.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `ip -n <ns> <args>` and panics with its stderr if it fails.
    pub fn ip(&self, args: &[&str]) -> Output {
        run_ok(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Runs `f` on a thread that has entered this namespace, and returns its result. Sockets
    /// created there stay in this namespace wherever they are used afterwards.
    pub fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let path = self.path();
        std::thread::scope(|scope| {
            let thread = scope.spawn(move || {
                enter(&path);
                f()
            });
            thread
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// A command that runs `program` inside this namespace through `nsenter --net`, which (unlike
    /// `ip netns exec`) keeps the host's `/sys` and with it the BPF filesystem: for `jvpn gateway`,
    /// which pins there, and whatever must see its pins. `nsenter` execs `program`, so the child's
    /// pid is the program's.
    pub fn nsenter(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.path().display()))
            .arg(program);
        command
    }

    /// A command that runs `program` inside this namespace through `ip netns exec`. Note that
    /// `ip netns exec` remounts `/sys`, hiding the BPF filesystem: a child that pins or adopts
    /// BPF objects should enter the namespace itself (see [`enter`]).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let result = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        match result {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "could not delete netns {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("could not run `ip netns del {}`: {e}", self.name),
        }
    }
}

/// Removes the namespace `name` if it exists, after killing (SIGKILL) whatever still runs in it:
/// what a killed run of a benchmark with fixed names left behind. Only for fixed names that belong
/// to the caller (`jvbt-*`, `jvbp-*`); namespaces of [`unique_name`] never outlive their [`Netns`]
/// otherwise.
pub fn remove_leftover(name: &str) {
    if !Path::new("/run/netns").join(name).exists() {
        return;
    }
    eprintln!("removing netns {name} left by an earlier run");
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    run_ok(Command::new("ip").args(["netns", "del", name]));
}

/// Moves the calling thread into the network namespace bound at `path`.
pub fn enter(path: &Path) {
    let file = File::open(path).unwrap_or_else(|e| panic!("opening netns {}: {e}", path.display()));
    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
        .unwrap_or_else(|e| panic!("entering netns {}: {e}", path.display()));
}

/// Runs `command` and panics with its output unless it succeeds.
pub fn run_ok(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}
