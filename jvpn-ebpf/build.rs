//! Relinks the eBPF objects when bpf-linker changes (cargo cannot see that dependency itself), as
//! aya-template does.
//!
//! No CPU flag is set: aya-build replaces every rustflag, and rustc always passes `--cpu` to
//! bpf-linker, so a second `--cpu` link argument is refused. None is needed: the replay window's
//! `BPF_CMPXCHG` is selected on the generic CPU (unlike fetching `atomicrmw` operations, which
//! need v3), and its loads are plain volatile loads (see `src/replay.rs`).

fn main() {
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("bpf") {
        println!("cargo:rustc-link-arg=--cpu-features=+alu32,+allows-misaligned-mem-access");
    }
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
