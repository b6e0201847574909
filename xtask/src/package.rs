//! `cargo xtask package`: the .deb an operator installs. Builds `jvpn` (and `jvpn-docgen`), writes
//! the man pages and shell completions from the clap definitions with `jvpn-docgen` into
//! `target/<profile>/dist`, and runs cargo-deb over `jvpn-user`'s `[package.metadata.deb]` (the
//! binary, `jvpn-gateway@.service`, the example config, the pages, the completions).
//!
//! The pages come from a helper binary rather than from xtask or a hidden `jvpn` subcommand:
//! xtask cannot link jvpn-user (xtask must build before setup has installed what jvpn-user's
//! build needs), and a hidden subcommand would ship packaging code in every installed binary.
//!
//! `--check` then tries the package as an operator would (the `package` test tier): `dpkg -i`,
//! `jvpn --version`, `man jvpn`, `systemd-analyze verify` of the installed unit, `dpkg -r` and
//! `dpkg --purge`, each checked to leave what it should.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{setup, util};

/// The Debian package's name (`[package.metadata.deb] name`).
const PACKAGE: &str = "jvpn";

/// Builds the .deb with cargo profile `profile` and returns its path; with `check`, installs,
/// tries and removes it.
pub fn run(profile: &str, check: bool) -> Result<()> {
    setup::ensure_buildable()?;
    util::run(util::cargo().args(["build", "--profile", profile, "-p", "jvpn-user", "--bins"]))?;
    let profile_dir = util::target_dir()?.join(match profile {
        "dev" | "test" => "debug",
        other => other,
    });
    let dist = profile_dir.join("dist");
    util::run(Command::new(profile_dir.join("jvpn-docgen")).arg(&dist))?;
    let out = util::target_dir()?.join("debian");
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let deb = PathBuf::from(
        util::output(
            util::cargo()
                .args(["deb", "-p", "jvpn-user", "--no-build", "--profile", profile])
                .arg("--output")
                .arg(&out),
        )?
        .trim(),
    );
    println!("package: {}", deb.display());
    if check {
        util::require_root(
            "cargo xtask package --check",
            "it installs the package with dpkg",
        )?;
        check_package(&deb)?;
    }
    Ok(())
}

/// Installs `deb`, uses it, and removes it again.
fn check_package(deb: &Path) -> Result<()> {
    util::run(Command::new("dpkg").arg("-i").arg(deb))?;
    let result = use_installed();
    util::run(Command::new("dpkg").args(["-r", PACKAGE]))?;
    for path in ["/usr/bin/jvpn", "/lib/systemd/system/jvpn-gateway@.service"] {
        if Path::new(path).exists() {
            bail!("`dpkg -r {PACKAGE}` left {path} behind");
        }
    }
    util::run(Command::new("dpkg").args(["--purge", PACKAGE]))?;
    let status = util::output(Command::new("dpkg-query").args([
        "--show",
        "--showformat=${db:Status-Abbrev}",
        PACKAGE,
    ]))
    .unwrap_or_default();
    if !status.trim().is_empty() && status.trim() != "un" {
        bail!("after `dpkg --purge {PACKAGE}` dpkg still knows it as `{status}`");
    }
    result?;
    println!("package: installs, runs, shows its man page, verifies its unit and removes cleanly");
    Ok(())
}

fn use_installed() -> Result<()> {
    let version = util::output(Command::new("/usr/bin/jvpn").arg("--version"))?;
    let expected = format!("jvpn {}", env!("CARGO_PKG_VERSION"));
    if version.trim() != expected {
        bail!("`jvpn --version` printed `{version}`, expected `{expected}`");
    }
    let page = util::output(
        Command::new("man")
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .arg("jvpn-gateway"),
    )?;
    if !page.contains("--iface") {
        bail!("`man jvpn-gateway` does not describe --iface:\n{page}");
    }
    let page = util::output(Command::new("man").env("MANPAGER", "cat").arg("jvpn"))?;
    if !page.contains("gateway") {
        bail!("`man jvpn` does not list the gateway command:\n{page}");
    }
    // Offline: checks the unit's syntax, its ExecStart binary and its Documentation= pages.
    util::run(
        Command::new("systemd-analyze")
            .args(["verify", "/lib/systemd/system/jvpn-gateway@.service"]),
    )?;
    Ok(())
}
