//! The quick checks behind [`super::missing`]: what dpkg, rustup and the tools themselves say is
//! installed, each read without changing anything.

use std::process::Command;

use anyhow::{Context, Result};

use super::{APT_PACKAGES, BPFFS_MOUNT_POINT, NIGHTLY, STABLE_COMPONENTS};
use crate::util;

/// The packages of [`APT_PACKAGES`] that dpkg does not list as installed.
pub(super) fn absent_apt_packages() -> Result<Vec<&'static str>> {
    // dpkg-query exits 1 when a package was never known to dpkg; its stdout still lists the others.
    let output = Command::new("dpkg-query")
        .args(["--show", "--showformat=${Package} ${db:Status-Abbrev}\\n"])
        .args(APT_PACKAGES)
        .output()
        .context("`dpkg-query` could not start: setup supports Debian 12 (and derivatives) only")?;
    let listing = String::from_utf8_lossy(&output.stdout);
    Ok(APT_PACKAGES
        .iter()
        .copied()
        .filter(|package| !is_installed(&listing, package))
        .collect())
}

/// Whether `dpkg-query --show` output marks `package` as installed (status `ii`).
fn is_installed(listing: &str, package: &str) -> bool {
    listing.lines().any(|line| {
        let mut fields = line.split_whitespace();
        // Multi-arch packages are listed as `name:arch`.
        let name = fields
            .next()
            .map(|name| name.split(':').next().unwrap_or(name));
        name == Some(package) && fields.next() == Some("ii")
    })
}

/// Whether rustup has the nightly toolchain the eBPF crate builds with.
pub(super) fn has_nightly() -> Result<bool> {
    let listing = util::output(util::rustup().args(["toolchain", "list"]))?;
    Ok(listing
        .lines()
        .any(|line| line == NIGHTLY || line.starts_with(&format!("{NIGHTLY}-"))))
}

/// Whether that nightly has `rust-src` (`-Z build-std=core` needs it).
pub(super) fn nightly_has_rust_src() -> Result<bool> {
    let listing = util::output(util::rustup().args([
        "component",
        "list",
        "--toolchain",
        NIGHTLY,
        "--installed",
    ]))?;
    Ok(listing.lines().any(|line| line.trim() == "rust-src"))
}

/// The stable components (rustfmt, clippy) rustup does not list as installed.
pub(super) fn absent_stable_components() -> Result<Vec<&'static str>> {
    let listing = util::output(util::rustup().args(["component", "list", "--installed"]))?;
    Ok(STABLE_COMPONENTS
        .iter()
        .copied()
        .filter(|component| {
            !listing
                .lines()
                .any(|line| line == *component || line.starts_with(&format!("{component}-")))
        })
        .collect())
}

/// What `bpf-linker --version` prints, if it runs.
pub(super) fn bpf_linker_version() -> Option<String> {
    version_of(Command::new("bpf-linker").arg("--version"))
}

/// What `boringtun-cli --version` prints, if it runs.
pub(super) fn boringtun_version() -> Option<String> {
    version_of(Command::new("boringtun-cli").arg("--version"))
}

/// What `cargo SUBCOMMAND --version` prints, if it runs.
pub(super) fn cargo_subcommand_version(subcommand: &str) -> Option<String> {
    version_of(Command::new("cargo").args([subcommand, "--version"]))
}

/// The trimmed stdout of a version query, if the program runs and succeeds.
fn version_of(command: &mut Command) -> Option<String> {
    let output = command.output().ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Whether a bpffs is mounted where the gateway pins its maps.
pub(super) fn bpffs_mounted() -> Result<bool> {
    let mounts = std::fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    Ok(mounts.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&BPFFS_MOUNT_POINT) && fields.get(2) == Some(&"bpf")
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dpkg_listing_counts_only_fully_installed_packages() {
        let listing = "iperf3 ii \ntcpdump rc \nlibzstd-dev:amd64 ii \n";
        assert!(is_installed(listing, "iperf3"));
        assert!(
            !is_installed(listing, "tcpdump"),
            "removed, config files only"
        );
        assert!(is_installed(listing, "libzstd-dev"));
        assert!(!is_installed(listing, "nftables"), "never installed");
    }
}
