//! `cargo xtask setup`: every prerequisite of building, testing, benchmarking and demonstrating jvpn on a
//! fresh Debian 12 machine (the recipe of `shared/TOOLCHAIN.md`), installed idempotently. [`missing`] is
//! the quick check (well under a second when all is there) that `test`, `bench`, `demo` and `build` share.

use std::fmt;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::util;
use probe::{
    absent_apt_packages, absent_stable_components, boringtun_version, bpf_linker_version,
    bpffs_mounted, cargo_subcommand_version, has_nightly, nightly_has_rust_src,
};

mod probe;

/// Debian packages, each used by something in the repository (installed without recommends, which
/// would pull in hundreds of MB nothing here uses): LLVM 22 to build bpf-linker; the tools the tests,
/// benchmarks and demo drive (`ip`, `nft`, `ping`, `iperf3`; `wg` to configure boringtun and `ethtool`
/// to read and set offloads in `bench peers` and `bench rx`); and for the `package` tier, `man` to
/// read the packaged man page and `systemd-analyze` to check the unit; protoc (with protobuf's own .proto files) for the etcd
/// client's build, and etcd with etcdctl for the clustered store's tests.
const APT_PACKAGES: &[&str] = &[
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
    "zlib1g-dev",
    "iproute2",
    "iperf3",
    "nftables",
    "iputils-ping",
    "wireguard-tools",
    "ethtool",
    "man-db",
    "systemd",
    "protobuf-compiler",
    "libprotobuf-dev",
    "etcd-server",
    "etcd-client",
];

/// The bpf-linker release that links with Debian's LLVM 22 (its default feature wants LLVM 23).
const BPF_LINKER_VERSION: &str = "0.13.0";

/// Where Debian's llvm-22-dev lives; bpf-linker's build looks in /usr without it and fails on `-lLLVM`.
const LLVM_PREFIX: &str = "/usr/lib/llvm-22";

/// The eBPF crate builds with nightly's `-Z build-std=core`, which needs this toolchain and `rust-src`.
const NIGHTLY: &str = "nightly";

/// Components of the toolchain that runs `cargo xtask` that the test tiers use.
const STABLE_COMPONENTS: &[&str] = &["rustfmt", "clippy"];

/// The boringtun-cli release `cargo xtask bench peers` compares jvpn with (it builds with rustc 1.95).
const BORINGTUN_VERSION: &str = "0.7.1";

/// The cargo-fuzz release `cargo xtask fuzz` and the test tier `fuzz` drive (with the nightly toolchain).
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// The cargo-deb release `cargo xtask package` drives.
const CARGO_DEB_VERSION: &str = "3.8.0";

/// Where jvpn pins its maps and XDP link (the mount must be a bpffs).
const BPFFS_MOUNT_POINT: &str = "/sys/fs/bpf";

/// One prerequisite that [`missing`] found absent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// These Debian packages are not installed.
    AptPackages(Vec<&'static str>),
    /// No nightly toolchain under rustup.
    NightlyToolchain,
    /// The nightly toolchain lacks `rust-src`.
    NightlyRustSrc,
    /// The active toolchain lacks these components.
    StableComponents(Vec<&'static str>),
    /// bpf-linker is absent (`None`) or reports another version (`Some(what it printed)`).
    BpfLinker(Option<String>),
    /// No bpffs is mounted at [`BPFFS_MOUNT_POINT`].
    BpfFs,
    /// cargo-fuzz is absent (`None`) or reports another version (`Some(what it printed)`).
    CargoFuzz(Option<String>),
    /// boringtun-cli is absent (`None`) or reports another version (`Some(what it printed)`).
    Boringtun(Option<String>),
    /// cargo-deb is absent (`None`) or reports another version (`Some(what it printed)`).
    CargoDeb(Option<String>),
}

impl Missing {
    /// Whether installing it needs root (apt-get and mount do; rustup and cargo install do not).
    fn needs_root(&self) -> bool {
        matches!(self, Missing::AptPackages(_) | Missing::BpfFs)
    }

    /// Whether `cargo build` of jvpn-user fails without it.
    fn needed_to_build(&self) -> bool {
        matches!(
            self,
            Missing::NightlyToolchain | Missing::NightlyRustSrc | Missing::BpfLinker(_)
        )
    }
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Missing::AptPackages(packages) => write!(f, "Debian packages {}", packages.join(" ")),
            Missing::NightlyToolchain => write!(f, "the {NIGHTLY} toolchain"),
            Missing::NightlyRustSrc => write!(f, "rust-src for the {NIGHTLY} toolchain"),
            Missing::StableComponents(components) => {
                write!(f, "toolchain components {}", components.join(" "))
            }
            Missing::BpfLinker(None) => write!(f, "bpf-linker {BPF_LINKER_VERSION}"),
            Missing::BpfLinker(Some(found)) => {
                write!(f, "bpf-linker {BPF_LINKER_VERSION} (found `{found}`)")
            }
            Missing::BpfFs => write!(f, "a bpffs mounted at {BPFFS_MOUNT_POINT}"),
            Missing::CargoFuzz(None) => write!(f, "cargo-fuzz {CARGO_FUZZ_VERSION}"),
            Missing::CargoFuzz(Some(found)) => {
                write!(f, "cargo-fuzz {CARGO_FUZZ_VERSION} (found `{found}`)")
            }
            Missing::Boringtun(None) => write!(f, "boringtun-cli {BORINGTUN_VERSION}"),
            Missing::Boringtun(Some(found)) => {
                write!(f, "boringtun-cli {BORINGTUN_VERSION} (found `{found}`)")
            }
            Missing::CargoDeb(None) => write!(f, "cargo-deb {CARGO_DEB_VERSION}"),
            Missing::CargoDeb(Some(found)) => {
                write!(f, "cargo-deb {CARGO_DEB_VERSION} (found `{found}`)")
            }
        }
    }
}

/// The quick check: every prerequisite that is absent, in the order [`run`] installs them.
pub fn missing() -> Result<Vec<Missing>> {
    let mut missing = Vec::new();
    let absent_packages = absent_apt_packages()?;
    if !absent_packages.is_empty() {
        missing.push(Missing::AptPackages(absent_packages));
    }
    if !has_nightly()? {
        missing.push(Missing::NightlyToolchain);
        missing.push(Missing::NightlyRustSrc);
    } else if !nightly_has_rust_src()? {
        missing.push(Missing::NightlyRustSrc);
    }
    let absent_components = absent_stable_components()?;
    if !absent_components.is_empty() {
        missing.push(Missing::StableComponents(absent_components));
    }
    match bpf_linker_version() {
        Some(version) if version.split_whitespace().last() == Some(BPF_LINKER_VERSION) => {}
        found => missing.push(Missing::BpfLinker(found)),
    }
    if !bpffs_mounted()? {
        missing.push(Missing::BpfFs);
    }
    match cargo_subcommand_version("fuzz") {
        Some(version) if version.split_whitespace().last() == Some(CARGO_FUZZ_VERSION) => {}
        found => missing.push(Missing::CargoFuzz(found)),
    }
    match boringtun_version() {
        Some(version) if version.split_whitespace().last() == Some(BORINGTUN_VERSION) => {}
        found => missing.push(Missing::Boringtun(found)),
    }
    match cargo_subcommand_version("deb") {
        Some(version) if version.split_whitespace().last() == Some(CARGO_DEB_VERSION) => {}
        found => missing.push(Missing::CargoDeb(found)),
    }
    Ok(missing)
}

/// `cargo xtask setup`: checks, installs what is missing, checks again.
pub fn run() -> Result<()> {
    let started = Instant::now();
    let missing = missing()?;
    if missing.is_empty() {
        println!(
            "setup: all prerequisites present (checked in {:.2} s)",
            started.elapsed().as_secs_f64()
        );
        return Ok(());
    }
    install(&missing)
}

/// Runs setup only when the quick check finds something missing (used by `test`, `bench` and `demo`).
pub fn ensure() -> Result<()> {
    let missing = missing()?;
    if missing.is_empty() {
        println!("setup: all prerequisites present");
        return Ok(());
    }
    println!("setup: prerequisites missing, installing them first");
    install(&missing)
}

/// Fails, pointing at `cargo xtask setup`, when something `cargo build` needs is missing.
pub fn ensure_buildable() -> Result<()> {
    let blocking: Vec<String> = missing()?
        .into_iter()
        .filter(Missing::needed_to_build)
        .map(|item| item.to_string())
        .collect();
    if blocking.is_empty() {
        return Ok(());
    }
    bail!(
        "building jvpn needs {}; run `cargo xtask setup` first",
        blocking.join(", ")
    )
}

/// Installs what building and running the fuzz targets needs (the build prerequisites and
/// cargo-fuzz; none of it needs root), when the quick check finds it missing.
pub fn ensure_fuzzable() -> Result<()> {
    let needed: Vec<Missing> = missing()?
        .into_iter()
        .filter(|item| item.needed_to_build() || matches!(item, Missing::CargoFuzz(_)))
        .collect();
    if needed.is_empty() {
        return Ok(());
    }
    install(&needed)
}

fn install(missing: &[Missing]) -> Result<()> {
    let started = Instant::now();
    for item in missing {
        println!("setup: missing {item}");
    }
    if missing.iter().any(Missing::needs_root) && !util::is_root() {
        bail!(
            "setup must run as root to install what is missing (apt-get and mount need root); \
             run `cargo xtask setup` as root"
        );
    }
    for item in missing {
        install_one(item).with_context(|| format!("setup: installing {item} failed"))?;
    }
    let still_missing: Vec<Missing> = self::missing()?
        .into_iter()
        .filter(|item| {
            missing
                .iter()
                .any(|tried| std::mem::discriminant(tried) == std::mem::discriminant(item))
        })
        .collect();
    if !still_missing.is_empty() {
        let names: Vec<String> = still_missing.iter().map(ToString::to_string).collect();
        bail!(
            "setup: still missing after installing: {}; install them by hand (see shared/TOOLCHAIN.md)",
            names.join(", ")
        );
    }
    println!(
        "setup: done in {:.0} s, everything missing is installed",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn install_one(item: &Missing) -> Result<()> {
    match item {
        Missing::AptPackages(packages) => {
            util::run(apt_get().arg("update"))?;
            util::run(
                apt_get()
                    .args(["install", "-y", "--no-install-recommends"])
                    .args(packages),
            )
        }
        Missing::NightlyToolchain => util::run(util::rustup().args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ])),
        Missing::NightlyRustSrc => {
            util::run(util::rustup().args(["component", "add", "rust-src", "--toolchain", NIGHTLY]))
        }
        Missing::StableComponents(components) => {
            util::run(util::rustup().args(["component", "add"]).args(components))
        }
        Missing::BpfLinker(_) => install_bpf_linker(),
        Missing::BpfFs => {
            util::run(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS_MOUNT_POINT]))
        }
        Missing::CargoFuzz(_) => util::run(Command::new("cargo").args([
            "install",
            "cargo-fuzz",
            "--version",
            CARGO_FUZZ_VERSION,
            "--locked",
        ])),
        Missing::Boringtun(_) => util::run(Command::new("cargo").args([
            "install",
            "boringtun-cli",
            "--version",
            BORINGTUN_VERSION,
            "--locked",
        ])),
        Missing::CargoDeb(_) => util::run(Command::new("cargo").args([
            "install",
            "cargo-deb",
            "--version",
            CARGO_DEB_VERSION,
            "--locked",
        ])),
    }
}

fn apt_get() -> Command {
    let mut command = Command::new("apt-get");
    command.env("DEBIAN_FRONTEND", "noninteractive");
    command
}

fn install_bpf_linker() -> Result<()> {
    let path = std::env::var("PATH").unwrap_or_default();
    let mut command = Command::new("cargo");
    command
        .env("PATH", format!("{LLVM_PREFIX}/bin:{path}"))
        .env("LLVM_PREFIX", LLVM_PREFIX)
        .env("LLVM_SYS_221_PREFIX", LLVM_PREFIX)
        .args([
            "install",
            "bpf-linker",
            "--version",
            BPF_LINKER_VERSION,
            "--no-default-features",
            "--features",
            "llvm-22",
        ]);
    util::run(&mut command)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_apt_and_mount_need_root() {
        assert!(Missing::AptPackages(vec!["iperf3"]).needs_root());
        assert!(Missing::BpfFs.needs_root());
        assert!(!Missing::BpfLinker(None).needs_root());
        assert!(!Missing::NightlyRustSrc.needs_root());
    }
}
