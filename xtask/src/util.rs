//! Running external commands so that every failure names the exact command to retry by hand, plus the
//! few facts about the machine and the workspace that every subcommand needs (root, repo root, target dir).

use std::fmt;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How often a cancellable command is polled for exit and for a pending Ctrl-C.
const CANCEL_POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Exit status of a command stopped by Ctrl-C, as shells report a process ended by SIGINT.
pub const INTERRUPTED_EXIT_STATUS: u8 = 130;

/// The error a command returns when the operator pressed Ctrl-C: `main` maps it to exit status 130
/// after the guards on the way up have cleaned up.
#[derive(Debug)]
pub struct Interrupted;

impl fmt::Display for Interrupted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("interrupted (Ctrl-C or SIGTERM)")
    }
}

impl std::error::Error for Interrupted {}

/// The workspace root: xtask lives one level below it, whatever the caller's current directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask's manifest directory has a parent: the workspace root")
        .to_path_buf()
}

/// A `cargo` command run from the workspace root (the rustup proxy, so `+toolchain` and
/// `rust-toolchain` files keep working for the builds it starts).
pub fn cargo() -> Command {
    let mut command = Command::new("cargo");
    command.current_dir(repo_root());
    command
}

/// A `rustup` command run from the workspace root, so "the active toolchain" means this workspace's.
pub fn rustup() -> Command {
    let mut command = Command::new("rustup");
    command.current_dir(repo_root());
    command
}

/// `cargo build --release` of jvpn-user (whose build script also builds the eBPF object); returns the
/// path of the `jvpn` binary.
pub fn build_release() -> Result<PathBuf> {
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "jvpn-user",
        "-p",
        "jvpn-tests",
        "--bins",
    ]))?;
    Ok(target_dir()?.join("release").join("jvpn"))
}

/// True when this process runs with effective uid 0.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Fails with a message naming `task` and why it needs root when this process is not root.
pub fn require_root(task: &str, why: &str) -> Result<()> {
    if is_root() {
        return Ok(());
    }
    bail!("`{task}` must run as root ({why}); run it again as root, e.g. `sudo -i` then `cd {} && {task}`",
        repo_root().display())
}

/// The target directory cargo uses for this workspace (honours `CARGO_TARGET_DIR` and cargo config).
pub fn target_dir() -> Result<PathBuf> {
    let metadata = cargo_metadata()?;
    let dir = metadata["target_directory"]
        .as_str()
        .context("`cargo metadata` printed no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// `cargo metadata --no-deps` of the workspace, parsed.
pub fn cargo_metadata() -> Result<serde_json::Value> {
    let mut command = cargo();
    command.args(["metadata", "--format-version", "1", "--no-deps"]);
    let stdout = output(&mut command)?;
    serde_json::from_str(&stdout)
        .with_context(|| format!("`{}` printed invalid JSON", describe(&command)))
}

/// The command as an operator would type it in a shell: explicitly set variables first, arguments quoted.
///
/// A `PATH` that only prepends to the inherited one is shown as `PATH=prefix:$PATH` so that the line
/// can be pasted as it is.
pub fn describe(command: &Command) -> String {
    let inherited_path = std::env::var("PATH").unwrap_or_default();
    let mut words = Vec::new();
    for (key, value) in command.get_envs() {
        let (Some(key), Some(value)) = (key.to_str(), value.and_then(|v| v.to_str())) else {
            continue;
        };
        let shown = match value.strip_suffix(inherited_path.as_str()) {
            Some(prefix) if key == "PATH" && !inherited_path.is_empty() => format!("{prefix}$PATH"),
            _ => shell_quote(value),
        };
        words.push(format!("{key}={shown}"));
    }
    words.push(shell_quote(&command.get_program().to_string_lossy()));
    words.extend(
        command
            .get_args()
            .map(|arg| shell_quote(&arg.to_string_lossy())),
    );
    words.join(" ")
}

/// Quotes `word` for a POSIX shell when it holds anything but plain characters.
fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Prints the command, runs it with inherited stdio and fails with the command line if it fails.
pub fn run(command: &mut Command) -> Result<()> {
    let line = describe(command);
    println!("+ {line}");
    let status = command
        .status()
        .map_err(|error| spawn_error(&line, error))?;
    check_status(&line, status)
}

/// Runs the command without echoing it and returns its stdout; on failure the error carries its stderr.
pub fn output(command: &mut Command) -> Result<String> {
    let line = describe(command);
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| spawn_error(&line, error))?;
    if !output.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{line}` printed non-UTF-8 output"))
}

/// Like [`run`], but returns [`Interrupted`] (after killing the command) as soon as `interrupted` is set.
pub fn run_cancellable(command: &mut Command, interrupted: &AtomicBool) -> Result<()> {
    let line = describe(command);
    println!("+ {line}");
    let mut child = command.spawn().map_err(|error| spawn_error(&line, error))?;
    loop {
        if interrupted.load(Ordering::SeqCst) {
            // The child may already have exited on the same SIGINT: a failed kill is expected then.
            let _ = child.kill();
            let _ = child.wait();
            return Err(Interrupted.into());
        }
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for `{line}`"))?
        {
            if !status.success() && interrupted.load(Ordering::SeqCst) {
                return Err(Interrupted.into());
            }
            return check_status(&line, status);
        }
        thread::sleep(CANCEL_POLL_INTERVAL);
    }
}

/// How long a command that cleans up after itself gets after Ctrl-C before it is killed.
const CLEANUP_PATIENCE: Duration = Duration::from_secs(60);

/// Like [`run_cancellable`], for a command that cleans up after itself on Ctrl-C or SIGTERM: once
/// `interrupted` is set it gets SIGTERM (it may have had the terminal's SIGINT already) and up to
/// [`CLEANUP_PATIENCE`] to finish before it is killed; then returns [`Interrupted`].
pub fn run_to_the_end(command: &mut Command, interrupted: &AtomicBool) -> Result<()> {
    let line = describe(command);
    println!("+ {line}");
    let mut child = command.spawn().map_err(|error| spawn_error(&line, error))?;
    let mut deadline = None;
    loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for `{line}`"))?
        {
            if interrupted.load(Ordering::SeqCst) {
                return Err(Interrupted.into());
            }
            return check_status(&line, status);
        }
        if interrupted.load(Ordering::SeqCst) && deadline.is_none() {
            if let Ok(pid) = i32::try_from(child.id()) {
                // It may have exited meanwhile: a failed signal is expected then.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
            deadline = Some(std::time::Instant::now() + CLEANUP_PATIENCE);
        }
        if deadline.is_some_and(|d| std::time::Instant::now() > d) {
            eprintln!("`{line}` did not stop within {CLEANUP_PATIENCE:?}; killing it");
            let _ = child.kill();
            let _ = child.wait();
            return Err(Interrupted.into());
        }
        thread::sleep(CANCEL_POLL_INTERVAL);
    }
}

fn check_status(line: &str, status: ExitStatus) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        bail!("`{line}` failed ({status}); see its output above, fix the cause and rerun it by hand to check")
    }
}

fn spawn_error(line: &str, error: std::io::Error) -> anyhow::Error {
    if error.kind() == ErrorKind::NotFound {
        anyhow::anyhow!("`{line}` could not start: program not found; run `cargo xtask setup` or put it on PATH")
    } else {
        anyhow::anyhow!("`{line}` could not start: {error}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_arguments_and_shows_path_prefix() {
        let inherited = std::env::var("PATH").expect("cargo test runs with PATH set");
        let mut command = Command::new("cargo");
        command
            .env("PATH", format!("/usr/lib/llvm-22/bin:{inherited}"))
            .args(["install", "two words", "it's", "$HOME"]);
        assert_eq!(
            describe(&command),
            r"PATH=/usr/lib/llvm-22/bin:$PATH cargo install 'two words' 'it'\''s' '$HOME'"
        );
    }

    #[test]
    fn failing_command_error_names_the_command() {
        let error = run(Command::new("false").arg("--flag")).unwrap_err();
        assert!(
            error.to_string().contains("`false --flag` failed"),
            "{error}"
        );
    }

    #[test]
    fn missing_program_error_says_what_to_do() {
        let error = output(&mut Command::new("jvpn-no-such-program")).unwrap_err();
        assert!(error.to_string().contains("program not found"), "{error}");
    }

    #[test]
    fn cancellable_run_stops_when_interrupted() {
        let interrupted = AtomicBool::new(true);
        let error = run_cancellable(Command::new("sleep").arg("5"), &interrupted).unwrap_err();
        assert!(error.is::<Interrupted>(), "{error}");
    }
}
