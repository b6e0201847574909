//! What the XDP program needs from the kernel, each need with the Linux version that brought it,
//! and the two ways a kernel too old for jvpn is told apart from a jvpn bug: a probe of every
//! feature before a load, and a reading of the verifier's refusal after one.
//!
//! Either way the operator gets one line naming the feature and the version
//! ([`DataplaneError::KernelTooOld`]), never the verifier's dump. The versions are those of
//! mainline Linux; a distribution kernel that backports a feature passes its probe whatever its
//! version says, which is why the probes ask the kernel rather than read `uname`.

use super::{sys, DataplaneError};
use aya::maps::MapType;
use aya::programs::{ProgramError, ProgramType};
use aya::sys::{is_helper_supported, is_map_supported, BpfHelper};

/// One kernel feature the XDP program uses.
#[derive(Debug, Clone, Copy)]
pub struct KernelFeature {
    /// What the operator reads, e.g. "the BPF ring buffer map".
    pub name: &'static str,
    /// The first mainline Linux release with it, e.g. "5.8".
    pub since: &'static str,
    /// How to ask the running kernel whether it has it.
    probe: Probe,
    /// Text of the verifier's refusal when a program uses it on a kernel without it.
    refusals: &'static [&'static str],
}

/// How a feature is probed.
#[derive(Debug, Clone, Copy)]
enum Probe {
    /// Creating a map of this type.
    Map(MapType),
    /// Loading an XDP program that calls this helper.
    Helper(BpfHelper),
    /// Loading an XDP program with a 64-bit `BPF_ATOMIC | BPF_CMPXCHG` on the stack.
    AtomicCompareExchange,
}

/// The ring buffer: the program's security events and its aya-log records.
pub const RING_BUFFER: KernelFeature = KernelFeature {
    name: "the BPF ring buffer map (BPF_MAP_TYPE_RINGBUF)",
    since: "5.8",
    probe: Probe::Map(MapType::RingBuf),
    // Map creation fails before any program is verified: there is no verifier text for it.
    refusals: &[],
};

/// The coarse clock the HELLO budgets and the event budget read.
pub const COARSE_CLOCK: KernelFeature = KernelFeature {
    name: "the BPF helper bpf_ktime_get_coarse_ns",
    since: "5.11",
    probe: Probe::Helper(BpfHelper::BPF_FUNC_ktime_get_coarse_ns),
    // A kernel older than a helper does not know its name, only the number the program calls.
    refusals: &["invalid func unknown#160\n"],
};

/// The replay window's lock-free update.
pub const ATOMIC_COMPARE_EXCHANGE: KernelFeature = KernelFeature {
    name: "BPF atomic compare-and-exchange (BPF_ATOMIC | BPF_CMPXCHG)",
    since: "5.12",
    probe: Probe::AtomicCompareExchange,
    // Before 5.12 the opcode was BPF_XADD, whose imm had to be 0: 5.10 refuses the whole program
    // with the first line, before verifying any instruction.
    refusals: &[
        "BPF_STX uses reserved fields",
        "BPF_XADD uses reserved fields",
    ],
};

/// Every feature the program needs, oldest first.
pub const REQUIRED_FEATURES: [KernelFeature; 3] =
    [RING_BUFFER, COARSE_CLOCK, ATOMIC_COMPARE_EXCHANGE];

/// The oldest mainline Linux release jvpn's XDP program loads on: the newest `since` of
/// [`REQUIRED_FEATURES`] (a unit test holds the two together).
pub const OLDEST_SUPPORTED_LINUX: &str = "5.12";

/// Fails with [`DataplaneError::KernelTooOld`] naming every required feature the running kernel
/// lacks. A probe that cannot tell (an unexpected error) counts as present: the load that follows
/// has the last word, and [`load_refusal`] reads its refusal.
pub(crate) fn require_kernel_features() -> Result<(), DataplaneError> {
    let missing: Vec<KernelFeature> = REQUIRED_FEATURES
        .into_iter()
        .filter(|feature| feature.probe() == Some(false))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(too_old(missing))
    }
}

/// The [`DataplaneError::KernelTooOld`] (or [`DataplaneError::KernelLacksHelper`]) behind a
/// program load failure, if the verifier refused a feature this kernel lacks; `None` if the
/// refusal is something else (a jvpn bug).
pub(crate) fn load_refusal(error: &ProgramError) -> Option<DataplaneError> {
    let ProgramError::LoadError { verifier_log, .. } = error else {
        return None;
    };
    refusal_in(&verifier_log.to_string())
}

fn refusal_in(verifier_log: &str) -> Option<DataplaneError> {
    let missing = features_refused_in(verifier_log);
    if !missing.is_empty() {
        return Some(too_old(missing));
    }
    // A helper this list does not know yet (the program grew a new one): the kernel is older
    // than the helper, which is all the verifier says.
    unknown_helper_in(verifier_log).map(|helper| DataplaneError::KernelLacksHelper {
        release: running_release(),
        helper,
    })
}

/// The number in the verifier's `invalid func unknown#N`.
fn unknown_helper_in(verifier_log: &str) -> Option<u32> {
    let (_, rest) = verifier_log.split_once(UNKNOWN_HELPER)?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// How the verifier refuses a call to a helper the kernel does not have.
const UNKNOWN_HELPER: &str = "invalid func unknown#";

/// The required features whose refusal text appears in a verifier log.
fn features_refused_in(verifier_log: &str) -> Vec<KernelFeature> {
    REQUIRED_FEATURES
        .into_iter()
        .filter(|feature| feature.refusals.iter().any(|r| verifier_log.contains(r)))
        .collect()
}

fn too_old(missing: Vec<KernelFeature>) -> DataplaneError {
    DataplaneError::KernelTooOld {
        release: running_release(),
        missing,
    }
}

/// The running kernel's release, e.g. `5.10.0-46-amd64`, or `unknown`.
fn running_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|release| release.trim().to_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// `"A (Linux 5.11) and B (Linux 5.12)"`, for the error's one line.
pub(crate) fn describe_missing(missing: &[KernelFeature]) -> String {
    let parts: Vec<String> = missing
        .iter()
        .map(|feature| format!("{} (Linux {})", feature.name, feature.since))
        .collect();
    parts.join(" and ")
}

impl KernelFeature {
    /// Whether the running kernel has it; `None` when the probe itself failed.
    fn probe(&self) -> Option<bool> {
        let result = match self.probe {
            Probe::Map(map_type) => is_map_supported(map_type).map_err(|e| e.to_string()),
            Probe::Helper(helper) => {
                is_helper_supported(ProgramType::Xdp, helper).map_err(|e| e.to_string())
            }
            Probe::AtomicCompareExchange => {
                sys::xdp_atomic_cmpxchg_loads().map_err(|e| e.to_string())
            }
        };
        match result {
            Ok(supported) => Some(supported),
            Err(error) => {
                tracing::debug!(feature = self.name, %error, "kernel feature probe failed");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The verifier's whole output when Debian 11's 5.10.0-46 loaded this program (captured in
    /// `cargo xtask kernels`' VM): it refuses the first compare-and-exchange before verifying
    /// anything.
    const LOG_5_10: &str = "BPF_STX uses reserved fields\nverification time 1585 usec\n\
        stack depth 0+0+0+0\nprocessed 0 insns (limit 1000000) max_states_per_insn 0 \
        total_states 0 peak_states 0 mark_read 0\n";

    #[test]
    fn the_floor_is_the_newest_feature() {
        let newest = REQUIRED_FEATURES
            .iter()
            .map(|f| version(f.since))
            .max()
            .expect("features");
        assert_eq!(version(OLDEST_SUPPORTED_LINUX), newest);
    }

    fn version(text: &str) -> (u32, u32) {
        let (major, minor) = text.split_once('.').expect("major.minor");
        (major.parse().expect("major"), minor.parse().expect("minor"))
    }

    #[test]
    fn refusals_name_the_feature() {
        for (log, expected) in [
            (LOG_5_10, vec![ATOMIC_COMPARE_EXCHANGE]),
            (
                "0: (85) call unknown#160\ninvalid func unknown#160\n",
                vec![COARSE_CLOCK],
            ),
            (
                "R1 invalid mem access 'scalar'\nprocessed 900 insns\n",
                vec![],
            ),
            ("", vec![]),
        ] {
            let names = |features: Vec<KernelFeature>| -> Vec<&str> {
                features.iter().map(|f| f.name).collect()
            };
            assert_eq!(names(features_refused_in(log)), names(expected), "{log}");
        }
    }

    #[test]
    fn an_unlisted_helper_is_named_by_number() {
        let log = "7: (85) call unknown#186\ninvalid func unknown#186\nprocessed 8 insns\n";
        match refusal_in(log) {
            Some(DataplaneError::KernelLacksHelper { helper: 186, .. }) => {}
            other => panic!("expected KernelLacksHelper(186), got {other:?}"),
        }
        let text = DataplaneError::KernelLacksHelper {
            release: "5.10.0-46-amd64".to_owned(),
            helper: 186,
        }
        .to_string();
        assert!(
            !text.contains('\n') && text.contains("#186") && text.contains("Linux 5.10.0-46"),
            "{text}"
        );
        assert!(refusal_in("R1 invalid mem access 'scalar'\n").is_none());
    }

    #[test]
    fn too_old_is_one_line_with_feature_version_and_floor() {
        let error = DataplaneError::KernelTooOld {
            release: "5.10.0-46-amd64".to_owned(),
            missing: vec![COARSE_CLOCK, ATOMIC_COMPARE_EXCHANGE],
        };
        let text = error.to_string();
        assert!(!text.contains('\n'), "{text}");
        for part in [
            "5.10.0-46-amd64",
            "bpf_ktime_get_coarse_ns (Linux 5.11)",
            "compare-and-exchange (BPF_ATOMIC | BPF_CMPXCHG) (Linux 5.12)",
            "Linux 5.12 or later",
        ] {
            assert!(text.contains(part), "{part:?} missing from: {text}");
        }
    }

    /// The machine running the tests (as root) has every feature: it runs the BPF tests too. On
    /// older kernels `cargo xtask test --kernels` checks the refusal instead.
    #[test]
    fn this_kernel_has_every_feature() {
        for feature in REQUIRED_FEATURES {
            assert_eq!(feature.probe(), Some(true), "{}", feature.name);
        }
    }
}
