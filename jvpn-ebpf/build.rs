//! Link settings of the eBPF objects, and relinking when bpf-linker changes (cargo cannot see that
//! dependency itself; aya-template does the same).
//!
//! aya-build replaces every rustflag, so settings reach bpf-linker as link arguments from here:
//!
//! - `+alu32` gives the program 32-bit subregisters (fewer zero-extensions);
//! - `+allows-misaligned-mem-access` (LLVM 22) lets LLVM read packet fields with one load instead
//!   of byte by byte: the kernel allows misaligned packet and map-value access on x86-64.
//!
//! The CPU version cannot be raised: rustc always passes `--cpu generic` and bpf-linker refuses a
//! second `--cpu`. None is needed: the replay window's `BPF_CMPXCHG` is selected on the generic
//! CPU (unlike fetching `atomicrmw` operations, which need v3), and its loads are plain volatile
//! loads (see `src/replay.rs`).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf") {
        println!("cargo:rustc-link-arg=--cpu-features=+alu32,+allows-misaligned-mem-access");
    }
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
