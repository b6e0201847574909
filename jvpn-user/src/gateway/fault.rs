//! Fault injection for crash tests: `JVPN_FAULT=<point>` makes the gateway kill itself with
//! SIGKILL when it reaches that point, so tests can prove a restart reconciles whatever the crash
//! left half done. Unset (always, outside tests), a point costs one relaxed load.

use std::sync::OnceLock;

/// Right after a compare-and-set committed, before the cache, the XDP map or the reply.
pub const AFTER_CAS: &str = "after-cas";

/// Kills the process with SIGKILL if `JVPN_FAULT` names `point`.
pub fn point(point: &str) {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    let armed = FAULT.get_or_init(|| std::env::var("JVPN_FAULT").ok());
    if armed.as_deref() == Some(point) {
        tracing::error!(point, "JVPN_FAULT: killing the gateway with SIGKILL");
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
