//! Cleanup guards for what a test creates outside its namespaces: the dataplane's pins live in the
//! host's BPF filesystem, so a test that panics before detaching would otherwise leave them.

use std::path::{Path, PathBuf};

/// Removes a pin directory (and its interface directory, if left empty) when dropped.
#[derive(Debug)]
pub struct PinDirGuard {
    dir: PathBuf,
}

impl PinDirGuard {
    /// Guards `dir`, the `.../<iface>/v<layout>` directory of a dataplane.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }
}

impl Drop for PinDirGuard {
    fn drop(&mut self) {
        if self.dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&self.dir) {
                eprintln!("could not remove pins {}: {e}", self.dir.display());
            }
        }
        if let Some(iface_dir) = self.dir.parent() {
            // Only succeeds when empty, which is what we want.
            let _ = std::fs::remove_dir(iface_dir);
        }
    }
}

/// A child process, stopped (SIGTERM, then SIGKILL after [`STOP_PATIENCE`]) and reaped when
/// dropped unless already waited for: the one guard of every test's and benchmark's processes.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<std::process::Child>,
}

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: std::process::Child) -> Self {
        Self { child: Some(child) }
    }

    /// Spawns `command` under guard; panics naming the command if it cannot start.
    pub fn spawn(command: &mut std::process::Command) -> Self {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
        Self::new(child)
    }

    /// Whether the child is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child().try_wait(), Ok(None))
    }

    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.as_ref().expect("child already reaped").id()
    }

    /// The child.
    pub fn child(&mut self) -> &mut std::process::Child {
        self.child.as_mut().expect("child already reaped")
    }

    /// The child's exit status once it has exited by itself (it is then reaped and no longer
    /// guarded, so no signal ever reaches a reused pid); `None` while it runs.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child().try_wait().expect("polling the child")?;
        self.child = None;
        Some(status)
    }

    /// Kills the child with SIGKILL and reaps it, returning its exit status.
    pub fn kill(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("child already reaped");
        child.kill().expect("sending SIGKILL");
        child.wait().expect("reaping the child")
    }
}

/// How long a guarded child may take to stop after SIGTERM before it gets SIGKILL.
pub const STOP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(3);

impl Drop for ChildGuard {
    /// SIGTERM first, so a `jvpn client` or gateway stops as an operator would stop it (the
    /// client sends its TERMINATE and removes its control socket); SIGKILL if it lingers.
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = std::time::Instant::now() + STOP_PATIENCE;
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}
