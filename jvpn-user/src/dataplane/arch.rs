//! Which CPUs the XDP program is proven correct on, and the check that refuses the others.
//!
//! The replay window's loads are plain 64-bit loads (`jvpn-ebpf/src/replay.rs`): BPF load-acquire
//! needs CPU v4 instructions, which aya-build cannot target, and a 6.15 kernel. On x86-64 plain
//! loads are still ordered (total store order, and every store to a window is a locked
//! compare-and-swap), so the window is exact. On a weakly ordered CPU (arm64, riscv64, ...) the
//! JIT would let a load see a stale window and a replayed nonce could pass, so the program is not
//! loaded there at all rather than run unproven.

use super::DataplaneError;

/// Architectures (as `std::env::consts::ARCH` names them) whose memory order the replay window
/// relies on and was checked under.
pub const PROVEN_ARCHITECTURES: [&str; 1] = ["x86_64"];

/// Refuses to load or adopt the program on an architecture not in [`PROVEN_ARCHITECTURES`].
pub fn check_architecture(arch: &str) -> Result<(), DataplaneError> {
    if PROVEN_ARCHITECTURES.contains(&arch) {
        Ok(())
    } else {
        Err(DataplaneError::UnprovenArchitecture {
            arch: arch.to_owned(),
        })
    }
}

/// [`check_architecture`] for the architecture this binary runs on (its kernel's: BPF programs
/// are JIT-compiled for the CPU the kernel runs on).
pub fn check_this_architecture() -> Result<(), DataplaneError> {
    check_architecture(std::env::consts::ARCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_x86_64_is_proven() {
        for (arch, loads) in [
            ("x86_64", true),
            ("aarch64", false),
            ("arm", false),
            ("riscv64", false),
            ("powerpc64", false),
            ("s390x", false),
            ("x86", false),
            ("", false),
        ] {
            assert_eq!(check_architecture(arch).is_ok(), loads, "{arch}");
        }
        let err = check_architecture("aarch64").expect_err("arm64 refused");
        let text = err.to_string();
        assert!(
            text.contains("aarch64") && text.contains("x86-64") && !text.contains('\n'),
            "{text}"
        );
    }
}
