//! The `jvpn` command line: definitions, validation, machine checks, and running the commands.
//!
//! Parsing has two stages, as in ripgrep: [`args`] is what clap accepts, [`validate`] turns it into
//! a [`Command`] or one clear error line. [`preflight`] checks the machine (root, interface, which
//! gateway socket), [`control_cmd`] runs the commands that talk to a gateway over its control
//! socket and [`output`] prints their answers; [`client_cmd`] runs `jvpn client`. Every failure is a [`CliError`]: one line, and an exit code from [`error`].

pub mod args;
pub mod client_cmd;
pub mod control_cmd;
pub mod error;
pub mod gateway_cmd;
pub mod keygen;
pub mod output;
pub mod preflight;
pub mod show_output;
pub mod validate;

#[cfg(test)]
mod validate_tests;

pub use crate::store::StoreChoice;
pub use error::CliError;
pub use validate::{
    parse_args, Command, ControlAction, ControlInvocation, GatewayOptions, Invocation, SocketChoice,
};

/// Sets up a long-running command (the gateway, the tunnel client): `tracing` output on stderr
/// (where the tests and the demo collect it) filtered by `RUST_LOG` (default `info`), styled for
/// where stderr goes ([`crate::service::log_style`]), and a multi-threaded tokio runtime.
pub fn daemon_runtime() -> Result<tokio::runtime::Runtime, CliError> {
    use crate::service::log_style;
    let no_color = std::env::var_os("NO_COLOR");
    log_style::install(log_style::choose(
        log_style::Stderr::inspect(),
        no_color.as_deref(),
    ));
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)
}

/// Runs a daemon's main future to completion as a task on `runtime`'s worker threads, and waits
/// for it from the calling thread.
///
/// `Runtime::block_on` would poll the future on the calling thread, which never polls the I/O
/// driver: every readiness event of the data loops inside it (the UDP socket, the TUN device)
/// was then noticed by a worker, which woke the calling thread through a futex, two context
/// switches per read. On a worker the task is woken by the thread that saw the event
/// (BENCHMARKS.md, `peers`). A panic in the task is resumed here.
pub fn run_on_workers<F>(runtime: &tokio::runtime::Runtime, future: F) -> F::Output
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    match runtime.block_on(runtime.spawn(future)) {
        Ok(output) => output,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => unreachable!("the daemon task is never cancelled: {e}"),
    }
}

/// Completes when the process receives SIGINT or SIGTERM: the gateway's shutdown signal.
/// Must be called within a tokio runtime. If the handlers cannot be installed it logs why and never
/// completes (the process can then still be stopped with SIGKILL).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("cannot install SIGINT/SIGTERM handlers; stop the gateway with SIGKILL");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = interrupt.recv() => tracing::info!("SIGINT received, stopping"),
        _ = terminate.recv() => tracing::info!("SIGTERM received, stopping"),
    }
}

/// `text` made safe to print as one line: control characters (newlines included) are escaped.
pub fn one_line(text: &str) -> String {
    let mut line = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            line.extend(c.escape_default());
        } else {
            line.push(c);
        }
    }
    line
}
