//! Forwards the XDP program's aya-log records into `tracing`, under the target `jvpn_xdp`.
//!
//! The program logs only off the per-packet hot path (load-time and rare conditions), so this is a
//! diagnostic channel, not the security event stream. An object built without aya-log has no log
//! ring; that is tolerated and simply means there is nothing to forward.

use super::DataplaneError;
use aya_log::EbpfLogger;

/// A `log::Log` that re-emits each record as a `tracing` event.
#[derive(Clone, Copy, Debug, Default)]
pub struct TracingLog;

impl log::Log for TracingLog {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }

    fn log(&self, record: &log::Record<'_>) {
        let message = record.args();
        match record.level() {
            log::Level::Error => tracing::error!(target: "jvpn_xdp", "{message}"),
            log::Level::Warn => tracing::warn!(target: "jvpn_xdp", "{message}"),
            log::Level::Info => tracing::info!(target: "jvpn_xdp", "{message}"),
            log::Level::Debug => tracing::debug!(target: "jvpn_xdp", "{message}"),
            log::Level::Trace => tracing::trace!(target: "jvpn_xdp", "{message}"),
        }
    }

    fn flush(&self) {}
}

/// Reads the program's log ring and forwards each record to `tracing`.
pub struct ProgramLogForwarder {
    logger: EbpfLogger<TracingLog>,
}

impl std::fmt::Debug for ProgramLogForwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProgramLogForwarder")
            .finish_non_exhaustive()
    }
}

impl ProgramLogForwarder {
    /// The forwarder of the loaded program `program_id`, or `None` if it has no aya-log ring.
    pub(crate) fn for_program(program_id: u32) -> Option<Self> {
        match EbpfLogger::init_from_id_with_logger(program_id, TracingLog) {
            Ok(logger) => Some(Self { logger }),
            Err(error) => {
                tracing::debug!(%error, program_id, "XDP program logs not forwarded");
                None
            }
        }
    }

    /// Forwards every record waiting in the ring, without blocking.
    pub fn flush(&mut self) {
        self.logger.flush();
    }

    /// Forwards records as they arrive, until an error. Spawn it on the runtime.
    pub async fn run(self) -> Result<(), DataplaneError> {
        let mut ring = super::sys::register_readable(self.logger).map_err(|source| {
            DataplaneError::RingIo {
                what: "program log",
                source,
            }
        })?;
        loop {
            let mut ready = ring
                .readable_mut()
                .await
                .map_err(|source| DataplaneError::RingIo {
                    what: "program log",
                    source,
                })?;
            ready.get_inner_mut().flush();
            ready.clear_ready();
        }
    }
}
