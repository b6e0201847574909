//! Builds the eBPF objects of `jvpn-ebpf` (nightly, `-Z build-std=core`, `bpfel-unknown-none`) into
//! `OUT_DIR`, so a plain `cargo build` produces a `jvpn` binary with its XDP program embedded.
//!
//! Needs the nightly toolchain with `rust-src` and `bpf-linker` on `PATH`; `cargo xtask setup`
//! installs both. The BPF CPU version (v3, for atomics) is set by `jvpn-ebpf/build.rs`, because
//! aya-build replaces any rustflags from the environment or `.cargo/config.toml`.

use anyhow::Context as _;
use aya_build::{Package, Toolchain};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
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
