//! Whether this thread may load BPF programs and attach XDP, checked up front so the operator
//! gets "not running as root" instead of a bare `EPERM` from deep inside the loader.

use super::DataplaneError;

/// `CAP_NET_ADMIN`: attaching XDP to an interface.
const CAP_NET_ADMIN: u32 = 12;
/// `CAP_SYS_ADMIN`: everything BPF, on any kernel.
const CAP_SYS_ADMIN: u32 = 21;
/// `CAP_BPF`: creating maps and loading programs (Linux 5.8+).
const CAP_BPF: u32 = 39;

/// Fails with [`DataplaneError::NotPrivileged`] unless the calling thread's effective
/// capabilities allow BPF and XDP. Reads `/proc/thread-self/status` (capabilities are per
/// thread), so it needs no unsafe code; if that cannot be read the check passes and the kernel
/// has the last word.
pub(crate) fn require_bpf_privileges(operation: &'static str) -> Result<(), DataplaneError> {
    let Ok(status) = std::fs::read_to_string("/proc/thread-self/status") else {
        return Ok(());
    };
    match effective_allows_bpf(&status) {
        Some(false) => Err(DataplaneError::NotPrivileged { operation }),
        Some(true) | None => Ok(()),
    }
}

/// Whether the `CapEff:` line of a `/proc/.../status` text grants BPF and XDP; `None` if the
/// text has no readable `CapEff:` line.
fn effective_allows_bpf(status: &str) -> Option<bool> {
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())?;
    let has = |cap: u32| effective & (1u64 << cap) != 0;
    Some((has(CAP_BPF) || has(CAP_SYS_ADMIN)) && has(CAP_NET_ADMIN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_read_from_the_effective_set() {
        let status =
            |eff: u64| format!("Name:\tjvpn\nCapInh:\t0000000000000000\nCapEff:\t{eff:016x}\n");
        let cases = [
            ("root", 0x000001ff_ffffffff, true),
            ("nobody", 0, false),
            (
                "CAP_BPF + CAP_NET_ADMIN",
                1 << CAP_BPF | 1 << CAP_NET_ADMIN,
                true,
            ),
            (
                "CAP_SYS_ADMIN + CAP_NET_ADMIN",
                1 << CAP_SYS_ADMIN | 1 << CAP_NET_ADMIN,
                true,
            ),
            ("CAP_BPF alone", 1 << CAP_BPF, false),
            ("CAP_NET_ADMIN alone", 1 << CAP_NET_ADMIN, false),
        ];
        for (name, eff, allowed) in cases {
            assert_eq!(effective_allows_bpf(&status(eff)), Some(allowed), "{name}");
        }
        assert_eq!(effective_allows_bpf("Name:\tjvpn\n"), None);
    }

    #[test]
    fn the_refusal_tells_the_operator_to_use_root() {
        let error = DataplaneError::NotPrivileged {
            operation: "loading the XDP dataplane",
        };
        assert!(
            error.to_string().starts_with("not running as root"),
            "{error}"
        );
    }
}
