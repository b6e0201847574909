//! The second stage of parsing: raw clap arguments become a validated [`Command`], or one clear
//! error line. Pure: nothing here looks at the machine (that is [`super::preflight`]).

use super::args::{
    RawArgs, RawCommand, RawControlArgs, RawGatewayArgs, RawSessionsAction, RawXdpMode,
};
use super::error::CliError;
use crate::dataplane::XdpAttachMode;
use crate::events::names::parse_session_id;
use crate::events::{EventFilter, EventKind};
use crate::iface::check_interface_name;
use crate::store::StoreChoice;
use clap::Parser;
use jvpn_common::abi::DEFAULT_MAX_SESSIONS;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The largest `--max-sessions`: 16 Mi sessions, whose replay windows alone take 16 GiB.
pub const MAX_SESSIONS_LIMIT: u32 = 1 << 24;
/// The longest Unix socket path the kernel accepts (`sun_path` less its terminating NUL).
const MAX_SOCKET_PATH: usize = 107;
/// How much of a hostile argument is echoed back.
const ECHO_LIMIT: usize = 40;

/// What the command line asks for.
#[derive(Debug)]
pub enum Invocation {
    /// Run a command.
    Run(Command),
    /// Print this text (help or version) and exit successfully.
    Print(String),
}

/// A validated command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Run the gateway daemon.
    Gateway(GatewayOptions),
    /// Ask a running gateway something over its control socket: `jvpn status`, `sessions`,
    /// `stats`, `audit`, `events`.
    Control(ControlInvocation),
    /// Detach the XDP program from an interface and remove its pins.
    Detach {
        /// The interface.
        iface: String,
    },
    /// `jvpn client`: run the VPN client, or make a running one jump.
    Client(super::client_cmd::ClientCommand),
    /// Generate a key pair (or a pre-shared key) into a file.
    Keygen {
        /// The file to create.
        path: PathBuf,
        /// A pre-shared key instead of a key pair.
        psk: bool,
    },
}

/// Validated `jvpn gateway` options: what `super::gateway_cmd` builds the gateway from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayOptions {
    /// The interface (a valid Linux name; existence is checked before start).
    pub iface: String,
    /// The UDP port, never 0.
    pub port: u16,
    /// The gateway config file.
    pub config: PathBuf,
    /// The durable store's directory (with `--store etcd://`, only the node's boot epoch).
    pub state_dir: PathBuf,
    /// Which session store to use.
    pub store: StoreChoice,
    /// Where to serve Prometheus metrics, if anywhere.
    pub metrics: Option<SocketAddr>,
    /// Session table size, 1 ..= [`MAX_SESSIONS_LIMIT`].
    pub max_sessions: u32,
    /// How XDP attaches.
    pub xdp_mode: XdpAttachMode,
    /// PATH_CHALLENGEs a second to RECOVERING sessions after lost maps (0: none).
    pub recovery_challenges: u32,
    /// The control socket to serve.
    pub socket: PathBuf,
}

/// Which gateway a control command talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketChoice {
    /// The gateway on this interface (`/run/jvpn/IF.sock`).
    Iface(String),
    /// This socket.
    Path(PathBuf),
    /// The only gateway running.
    OnlyOne,
}

/// A validated control command (`jvpn status`, `sessions`, `stats`, `audit`, `events`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlInvocation {
    /// Which gateway.
    pub target: SocketChoice,
    /// Print JSON instead of text.
    pub json: bool,
    /// What to ask.
    pub action: ControlAction,
}

/// What a control command asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlAction {
    /// `jvpn status`.
    Status,
    /// `jvpn sessions list`.
    ListSessions,
    /// `jvpn sessions show ID`.
    ShowSession(u64),
    /// `jvpn sessions terminate ID`.
    TerminateSession(u64),
    /// `jvpn stats`.
    Stats,
    /// `jvpn show`.
    Show,
    /// `jvpn reload`.
    Reload,
    /// `jvpn audit ID`.
    Audit(u64),
    /// `jvpn events`.
    Events {
        /// Keep following.
        follow: bool,
        /// Which records.
        filter: EventFilter,
    },
}

/// Parses and validates a command line (the first item is the program name).
pub fn parse_args<I, T>(args: I) -> Result<Invocation, CliError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match RawArgs::try_parse_from(args) {
        Ok(raw) => validate(raw).map(Invocation::Run),
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                Ok(Invocation::Print(e.to_string()))
            }
            clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                Err(CliError::Usage {
                    message:
                        "a command is needed: gateway, status, sessions, stats, audit, events \
                              or keygen; see `jvpn --help`"
                            .to_string(),
                })
            }
            _ => Err(CliError::Usage {
                message: clap_one_line(&e.to_string()),
            }),
        },
    }
}

/// clap's message on one line, without its usage block and `error: ` prefix.
fn clap_one_line(text: &str) -> String {
    let message = text.split("\n\n").next().unwrap_or(text);
    let message = message.strip_prefix("error: ").unwrap_or(message);
    let words: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    format!("{}; see `jvpn --help`", words.join(" "))
}

/// Turns raw arguments into a command.
pub fn validate(raw: RawArgs) -> Result<Command, CliError> {
    let control = |args: RawControlArgs, action: ControlAction| -> Result<Command, CliError> {
        Ok(Command::Control(ControlInvocation {
            target: socket_choice(args.iface, args.socket)?,
            json: args.json,
            action,
        }))
    };
    match raw.command {
        RawCommand::Gateway(args) => gateway_options(args).map(Command::Gateway),
        RawCommand::Status(c) => control(c, ControlAction::Status),
        RawCommand::Sessions { action, control: c } => {
            let action = match action {
                None | Some(RawSessionsAction::List) => ControlAction::ListSessions,
                Some(RawSessionsAction::Show { id }) => {
                    ControlAction::ShowSession(session_arg("ID", &id)?)
                }
                Some(RawSessionsAction::Terminate { id }) => {
                    ControlAction::TerminateSession(session_arg("ID", &id)?)
                }
            };
            control(c, action)
        }
        RawCommand::Stats(c) => control(c, ControlAction::Stats),
        RawCommand::Show(c) => control(c, ControlAction::Show),
        RawCommand::Reload(c) => control(c, ControlAction::Reload),
        RawCommand::Audit { id, control: c } => {
            control(c, ControlAction::Audit(session_arg("ID", &id)?))
        }
        RawCommand::Events {
            follow,
            session,
            kind,
            control: c,
        } => {
            let filter = EventFilter {
                session: session.map(|s| session_arg("--session", &s)).transpose()?,
                kind: kind.map(|k| event_kind(&k)).transpose()?,
            };
            control(c, ControlAction::Events { follow, filter })
        }
        RawCommand::Detach { iface } => Ok(Command::Detach {
            iface: iface_name("--iface", &iface)?,
        }),
        RawCommand::Keygen { path, psk } => Ok(Command::Keygen { path, psk }),
        RawCommand::Client(args) => super::client_cmd::validate(args).map(Command::Client),
    }
}

fn echo(text: &str) -> String {
    text.chars().take(ECHO_LIMIT).collect()
}

fn session_arg(flag: &'static str, text: &str) -> Result<u64, CliError> {
    parse_session_id(text).map_err(|source| CliError::InvalidSessionId { flag, source })
}

fn event_kind(text: &str) -> Result<EventKind, CliError> {
    EventKind::from_name(text).ok_or_else(|| CliError::InvalidArgument {
        flag: "--kind",
        problem: format!(
            "{:?} is not an event kind; use one of {}",
            echo(text),
            EventKind::ALL.map(EventKind::name).join(", ")
        ),
    })
}

/// Checks an interface name by the kernel's rules ([`crate::iface`]), which also keeps it safe
/// to use in a path.
pub fn iface_name(flag: &'static str, name: &str) -> Result<String, CliError> {
    check_interface_name(name).map_err(|e| CliError::InvalidArgument {
        flag,
        problem: e.to_string(),
    })?;
    Ok(name.to_string())
}

fn socket_path(flag: &'static str, path: PathBuf) -> Result<PathBuf, CliError> {
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(CliError::InvalidArgument {
            flag,
            problem: format!(
                "socket paths are limited to {MAX_SOCKET_PATH} bytes; choose a shorter path"
            ),
        });
    }
    if path.as_os_str().is_empty() {
        return Err(CliError::InvalidArgument {
            flag,
            problem: "the socket path cannot be empty".to_string(),
        });
    }
    Ok(path)
}

fn socket_choice(iface: Option<String>, socket: Option<PathBuf>) -> Result<SocketChoice, CliError> {
    match (iface, socket) {
        (_, Some(path)) => socket_path("--socket", path).map(SocketChoice::Path),
        (Some(iface), None) => iface_name("--iface", &iface).map(SocketChoice::Iface),
        (None, None) => Ok(SocketChoice::OnlyOne),
    }
}

fn gateway_options(args: RawGatewayArgs) -> Result<GatewayOptions, CliError> {
    let iface = iface_name("--iface", &args.iface)?;
    if args.port == 0 {
        return Err(CliError::InvalidArgument {
            flag: "--port",
            problem: "0 is not a port a client can reach; give 1 to 65535".to_string(),
        });
    }
    let metrics = args
        .metrics
        .map(|text| {
            text.parse::<SocketAddr>()
                .map_err(|_| CliError::InvalidArgument {
                    flag: "--metrics",
                    problem: format!(
                        "{:?} is not IP:PORT; for example 127.0.0.1:9151 or [::1]:9151",
                        echo(&text)
                    ),
                })
        })
        .transpose()?;
    let max_sessions = match args.max_sessions {
        None => DEFAULT_MAX_SESSIONS,
        Some(text) => max_sessions(&text)?,
    };
    let socket = match args.socket {
        Some(path) => socket_path("--socket", path)?,
        None => crate::control::default_socket_path(&iface),
    };
    let store = match args.store {
        None => StoreChoice::Embedded,
        Some(url) => crate::store::etcd::parse_store_url(&url)
            .map(StoreChoice::Etcd)
            .map_err(|e| CliError::InvalidArgument {
                flag: "--store",
                problem: e.to_string(),
            })?,
    };
    Ok(GatewayOptions {
        iface,
        port: args.port,
        config: args.config,
        state_dir: args.state_dir,
        store,
        metrics,
        max_sessions,
        recovery_challenges: args.recovery_challenges,
        xdp_mode: match args.xdp_mode {
            RawXdpMode::Driver => XdpAttachMode::Driver,
            RawXdpMode::Skb => XdpAttachMode::Skb,
        },
        socket,
    })
}

fn max_sessions(text: &str) -> Result<u32, CliError> {
    let problem = |what: &str| CliError::InvalidArgument {
        flag: "--max-sessions",
        problem: format!(
            "{:?} {what}; give a whole number from 1 to {MAX_SESSIONS_LIMIT}",
            echo(text)
        ),
    };
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(problem("is not a number"));
    }
    match text.parse::<u64>() {
        Ok(n) if (1..=u64::from(MAX_SESSIONS_LIMIT)).contains(&n) => {
            Ok(u32::try_from(n).unwrap_or(MAX_SESSIONS_LIMIT))
        }
        _ => Err(problem("is out of range")),
    }
}
