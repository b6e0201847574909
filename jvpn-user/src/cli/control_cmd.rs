//! Runs a control command (`jvpn status`, `sessions`, `stats`, `show`, `reload`, `audit`, `events`): find the
//! gateway's control socket, ask, print the answer.

use super::error::CliError;
use super::output;
use super::preflight::resolve_socket;
use super::validate::{ControlAction, ControlInvocation};
use crate::control::{ControlClient, ControlClientError};
use crate::events::{human_line, json_line};
use std::io::Write;
use std::path::Path;

/// Runs `invocation` on a fresh single-threaded runtime, printing to standard output.
pub fn execute(invocation: ControlInvocation) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let mut stdout = std::io::stdout().lock();
    runtime.block_on(run(invocation, &mut stdout))
}

/// Runs `invocation`, writing what it prints to `out`.
pub async fn run(invocation: ControlInvocation, out: &mut impl Write) -> Result<(), CliError> {
    let (path, iface) = resolve_socket(&invocation.target)?;
    let mut client = ControlClient::connect(&path)
        .await
        .map_err(|e| not_running(e, &path, iface.as_deref()))?;
    let json = invocation.json;
    let text = match invocation.action {
        ControlAction::Status => {
            let r = client.status().await?;
            if json {
                output::json(&r)
            } else {
                output::status(&r)
            }
        }
        ControlAction::ListSessions => {
            let r = client.sessions().await?;
            if json {
                output::json(&r)
            } else {
                output::session_list(&r)
            }
        }
        ControlAction::ShowSession(id) => {
            let r = client.session(id).await?;
            if json {
                output::json(&r)
            } else {
                output::session_detail(&r)
            }
        }
        ControlAction::TerminateSession(id) => {
            let r = client.terminate(id).await?;
            if json {
                output::json(&r)
            } else {
                output::terminated(&r)
            }
        }
        ControlAction::Stats => {
            let r = client.stats().await?;
            if json {
                output::json(&r)
            } else {
                output::stats(&r)
            }
        }
        ControlAction::Show => {
            let r = client.show().await?;
            if json {
                output::json(&r)
            } else {
                super::show_output::show(&r)
            }
        }
        ControlAction::Reload => {
            let r = client.reload().await?;
            if json {
                output::json(&r)
            } else {
                super::show_output::reloaded(&r)
            }
        }
        ControlAction::Audit(id) => {
            let r = client.audit(id).await?;
            if json {
                output::json(&r)
            } else {
                output::audit(&r)
            }
        }
        ControlAction::Events { follow, filter } => {
            client.start_events(follow, filter).await?;
            return print_events(&mut client, json, out).await;
        }
    };
    out.write_all(text.as_bytes()).map_err(CliError::Output)?;
    out.flush().map_err(CliError::Output)
}

/// Prints records until the stream ends, flushing each so `--follow` output appears at once.
async fn print_events(
    client: &mut ControlClient,
    json: bool,
    out: &mut impl Write,
) -> Result<(), CliError> {
    while let Some(record) = client.next_event().await? {
        let line = if json {
            json_line(&record)
        } else {
            human_line(&record)
        };
        writeln!(out, "{line}").map_err(CliError::Output)?;
        out.flush().map_err(CliError::Output)?;
    }
    Ok(())
}

/// A connection failure that means "no daemon", named by interface when known.
fn not_running(error: ControlClientError, path: &Path, iface: Option<&str>) -> CliError {
    match (error, iface) {
        (ControlClientError::NotRunning { .. }, Some(iface)) => CliError::NotRunningOn {
            iface: iface.to_string(),
        },
        (ControlClientError::NotRunning { .. }, None) => CliError::NotRunningAt {
            path: path.to_path_buf(),
        },
        (other, _) => CliError::Control(other),
    }
}
