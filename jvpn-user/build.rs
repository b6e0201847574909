//! Builds the eBPF objects of `jvpn-ebpf` (nightly, `-Z build-std=core`, `bpfel-unknown-none`) into
//! `OUT_DIR`, so a plain `cargo build` produces a `jvpn` binary with its XDP program embedded.
//!
//! Needs the nightly toolchain with `rust-src` and `bpf-linker` on `PATH`; `cargo xtask setup`
//! installs both. The BPF CPU version (v3, for atomics) is set by `jvpn-ebpf/build.rs`, because
//! aya-build replaces any rustflags from the environment or `.cargo/config.toml`.
//!
//! aya-build relays every line of the inner cargo's progress (`Compiling core ...`) as a
//! `cargo:warning`, which cargo prints as `warning: jvpn-user@0.1.0: Compiling ...` and a reader
//! takes for warnings. So this script runs aya-build in a second copy of itself and passes its
//! directives on to cargo, holding back the progress lines unless the build fails (then they go
//! to stderr, which cargo shows with the failure). Real compiler diagnostics stay warnings.

use anyhow::{bail, Context as _};
use aya_build::{Package, Toolchain};
use std::path::PathBuf;
use std::process::Command;

/// Set in the copy of this script that runs aya-build.
const INNER: &str = "JVPN_BUILD_RS_INNER";

/// The words cargo opens its progress lines with.
const CARGO_PROGRESS: &[&str] = &[
    "Compiling",
    "Finished",
    "Fresh",
    "Blocking",
    "Updating",
    "Locking",
    "Adding",
    "Downloading",
    "Downloaded",
];

fn main() -> anyhow::Result<()> {
    if std::env::var_os(INNER).is_some() {
        return build_ebpf();
    }
    let this = std::env::current_exe().context("the build script's own path")?;
    let output = Command::new(&this)
        .env(INNER, "1")
        .output()
        .with_context(|| format!("running {} to build the XDP program", this.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let mut held_back = Vec::new();
    for line in stdout.lines() {
        match line.strip_prefix("cargo:warning=") {
            Some(text) if is_progress(text) => held_back.push(text),
            _ => println!("{line}"),
        }
    }
    if !output.status.success() {
        for line in held_back {
            eprintln!("{line}");
        }
        eprint!("{}", String::from_utf8_lossy(&output.stderr));
        bail!(
            "building the XDP program failed ({}): run `cargo xtask setup` (nightly with rust-src, \
             bpf-linker)",
            output.status
        );
    }
    Ok(())
}

/// Whether a relayed line is cargo's progress rather than a diagnostic.
fn is_progress(text: &str) -> bool {
    let first = text.split_whitespace().next().unwrap_or("");
    text.trim().is_empty() || CARGO_PROGRESS.contains(&first)
}

fn build_ebpf() -> anyhow::Result<()> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let ebpf_dir = manifest_dir.join("../jvpn-ebpf");
    let ebpf_dir = ebpf_dir
        .to_str()
        .context("the path of jvpn-ebpf is not UTF-8")?;
    let package = Package {
        name: "jvpn-ebpf",
        root_dir: ebpf_dir,
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::default()).context(
        "building the XDP program failed: run `cargo xtask setup` (nightly with rust-src, bpf-linker)",
    )
}
