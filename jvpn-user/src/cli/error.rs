//! Every way a `jvpn` command can fail, each as one line that says what to do next, with an exit
//! code a script can test.
//!
//! Exit codes: 0 success; 1 failure; 2 bad command line; 3 no gateway running; 4 unknown session.

use crate::control::{ApiError, ControlClientError};
use crate::events::names::SessionIdError;
use std::path::PathBuf;

/// Exit code of a bad command line.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when no gateway answers.
pub const EXIT_NOT_RUNNING: u8 = 3;
/// Exit code when the gateway does not know the session.
pub const EXIT_UNKNOWN_SESSION: u8 = 4;

/// A failed `jvpn` command.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line does not parse (clap's message, shortened to one line).
    #[error("{message}")]
    Usage {
        /// The message.
        message: String,
    },
    /// An argument parsed but is not acceptable.
    #[error("{flag}: {problem}")]
    InvalidArgument {
        /// The flag or argument name, e.g. `--port` or `ID`.
        flag: &'static str,
        /// What is wrong and what would be right.
        problem: String,
    },
    /// A session id argument is not a session id.
    #[error("{flag}: {source}")]
    InvalidSessionId {
        /// The argument name.
        flag: &'static str,
        /// Why.
        source: SessionIdError,
    },
    /// The command needs root.
    #[error("`jvpn {command}` must run as root (it attaches an XDP program and owns {what}); run it with sudo")]
    NotRoot {
        /// The subcommand.
        command: &'static str,
        /// What it needs root for, beyond XDP.
        what: &'static str,
    },
    /// The interface does not exist.
    #[error("no interface {iface} in this network namespace; list interfaces with `ip link`")]
    NoSuchInterface {
        /// The interface name.
        iface: String,
    },
    /// No gateway answers on the interface's socket.
    #[error("no jvpn gateway on {iface}: start one with `jvpn gateway --iface {iface}`")]
    NotRunningOn {
        /// The interface.
        iface: String,
    },
    /// No gateway answers on an explicitly given socket.
    #[error("no jvpn gateway listening on {}: start one with `jvpn gateway --iface IF --socket {}`", .path.display(), .path.display())]
    NotRunningAt {
        /// The socket path.
        path: PathBuf,
    },
    /// No gateway socket exists at all.
    #[error(
        "no jvpn gateway is running (no socket in {dir}): start one with `jvpn gateway --iface IF`"
    )]
    NoGateway {
        /// The directory searched.
        dir: &'static str,
    },
    /// More than one gateway runs and none was chosen.
    #[error("several jvpn gateways are running ({}): choose one with --iface", .ifaces.join(", "))]
    SeveralGateways {
        /// Their interfaces.
        ifaces: Vec<String>,
    },
    /// Talking to the gateway failed, or it refused the request.
    #[error(transparent)]
    Control(#[from] ControlClientError),
    /// The gateway daemon failed.
    #[error(transparent)]
    Gateway(#[from] crate::gateway::GatewayError),
    /// `jvpn client` failed.
    #[error(transparent)]
    Client(crate::tunnel_client::TunnelClientError),
    /// A key file could not be written.
    #[error(transparent)]
    KeyFile(#[from] crate::config::KeyFileError),
    /// The async runtime could not start.
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    /// Writing the output failed.
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

impl CliError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Usage { .. }
            | Self::InvalidArgument { .. }
            | Self::InvalidSessionId { .. }
            | Self::SeveralGateways { .. } => EXIT_USAGE,
            Self::NotRunningOn { .. } | Self::NotRunningAt { .. } | Self::NoGateway { .. } => {
                EXIT_NOT_RUNNING
            }
            Self::Control(ControlClientError::Api(ApiError::UnknownSession { .. })) => {
                EXIT_UNKNOWN_SESSION
            }
            _ => 1,
        }
    }

    /// Whether this is a closed output pipe (`jvpn events | head`), which ends the command quietly.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}
