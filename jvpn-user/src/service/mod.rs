//! Running jvpn as a service: what a long-running command does differently because a service
//! manager (systemd) or an operator's terminal is on the other end.
//!
//! - [`log_style`]: colour only on a terminal, journald-friendly lines under systemd.
//! - [`capabilities`]: once the gateway serves, it drops the capabilities start-up needed, from
//!   every thread ([`sys`] holds the raw calls).
//! - [`serving`]: the one call the gateway makes when the XDP program is attached, the store open
//!   and the socket bound: drop capabilities, then tell systemd `READY=1` (`Type=notify`; without
//!   `NOTIFY_SOCKET` nothing is sent).
//!
//! The unit that runs the gateway this way is `dist/jvpn-gateway@.service`.

pub mod capabilities;
pub mod log_style;
mod sys;

use std::sync::atomic::{AtomicBool, Ordering};

/// Whether [`serving`] drops capabilities: only in the `jvpn` binary, never in a test process
/// that runs the gateway in-process (its other tests need theirs).
static DROP_CAPABILITIES: AtomicBool = AtomicBool::new(false);

/// Why the gateway could not enter service.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The capabilities start-up needed could not be dropped.
    #[error(transparent)]
    Capabilities(#[from] capabilities::CapabilityError),
    /// systemd's notification socket did not take `READY=1` (logged, not fatal).
    #[error(
        "cannot tell systemd the gateway is ready (NOTIFY_SOCKET): {0}; check the unit's \
         NotifyAccess= and that the service manager is running"
    )]
    Notify(#[source] std::io::Error),
}

/// Makes [`serving`] drop this process's capabilities: the `jvpn` binary calls it before it runs
/// the gateway.
pub fn drop_capabilities_when_serving() {
    DROP_CAPABILITIES.store(true, Ordering::SeqCst);
}

/// The gateway serves: the XDP program is attached, the store open and every socket bound. Drops
/// the capabilities serving does not need (see [`capabilities`]), then sends systemd `READY=1`
/// (a failure to deliver it is logged: systemd's start timeout reports it under a unit).
pub fn serving() -> Result<(), ServiceError> {
    if DROP_CAPABILITIES.load(Ordering::SeqCst) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let keep = capabilities::kept_while_serving(&release);
        capabilities::drop_all_but(keep)?;
        tracing::info!(kept = %keep, "dropped the capabilities only start-up needs");
    }
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        // Under systemd a lost READY=1 ends in the unit's start timeout, which says what went
        // wrong; a gateway run by hand with a stale NOTIFY_SOCKET has no one to tell.
        tracing::warn!(error = %ServiceError::Notify(e), "READY=1 not delivered");
    }
    Ok(())
}
