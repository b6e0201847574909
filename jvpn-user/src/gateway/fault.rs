//! Fault injection for crash tests: `JVPN_FAULT=<point>` or `JVPN_FAULT=<point>:<CAUSE>` makes
//! the gateway kill itself with SIGKILL when it reaches that point (for a transition of that
//! cause), so tests can prove a restart reconciles whatever the crash left half done. Unset
//! (always, outside tests), a point costs one comparison.

use std::sync::OnceLock;

/// Right after a compare-and-set committed, before the cache, the XDP map or the reply.
pub const AFTER_CAS: &str = "after-cas";

/// Kills the process with SIGKILL if `JVPN_FAULT` names `point`, alone or with `cause`.
pub fn point(point: &str, cause: &str) {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    let Some(armed) = FAULT.get_or_init(|| std::env::var("JVPN_FAULT").ok()) else {
        return;
    };
    let hit = match armed.split_once(':') {
        Some((p, c)) => p == point && c == cause,
        None => armed == point,
    };
    if hit {
        tracing::error!(point, cause, "JVPN_FAULT: killing the gateway with SIGKILL");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
