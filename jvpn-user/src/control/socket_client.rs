//! The CLI's side of the control socket: connect, send a request, read the typed answer.
//!
//! Connection failures are sorted into what the operator must do: start a daemon
//! ([`ControlClientError::NotRunning`]), become root ([`ControlClientError::PermissionDenied`]), or look at a
//! daemon that answered something unexpected.

use super::dto::{AuditEntry, SessionDetail, SessionSummary, StatsReport, StatusReport};
use super::ops_dto::{ReloadReport, ShowReport};
use super::protocol::{read_line, to_line, FrameError, Request, Response, MAX_RESPONSE_LINE};
use super::ApiError;
use crate::events::{EventFilter, EventRecord};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;

/// Why a control request did not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlClientError {
    /// Nothing listens on the socket (no file, or a stale one).
    #[error("no jvpn gateway is listening on {path}")]
    NotRunning {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket is there but this user may not open it.
    #[error("permission denied on {path}: the control socket is root-only, run as root")]
    PermissionDenied {
        /// The socket path.
        path: PathBuf,
    },
    /// Talking to the socket failed.
    #[error("control socket {path}: {source}")]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The gateway closed the connection before answering.
    #[error("the gateway on {path} closed the connection before answering; did it stop?")]
    Closed {
        /// The socket path.
        path: PathBuf,
    },
    /// The gateway answered something this CLI cannot read.
    #[error("the gateway on {path} sent an unreadable answer ({problem}); is the jvpn CLI the same version as the daemon?")]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What was wrong.
        problem: String,
    },
    /// The gateway refused the request or failed serving it.
    #[error(transparent)]
    Api(#[from] ApiError),
}

/// A connection to a gateway's control socket.
#[derive(Debug)]
pub struct ControlClient {
    path: PathBuf,
    read: BufReader<OwnedReadHalf>,
    write: OwnedWriteHalf,
}

impl ControlClient {
    /// Connects to the control socket at `path`.
    pub async fn connect(path: &Path) -> Result<Self, ControlClientError> {
        let stream = UnixStream::connect(path)
            .await
            .map_err(|e| match e.kind() {
                ErrorKind::NotFound | ErrorKind::ConnectionRefused => {
                    ControlClientError::NotRunning {
                        path: path.to_path_buf(),
                    }
                }
                ErrorKind::PermissionDenied => ControlClientError::PermissionDenied {
                    path: path.to_path_buf(),
                },
                _ => ControlClientError::Io {
                    path: path.to_path_buf(),
                    source: e,
                },
            })?;
        let (read, write) = stream.into_split();
        Ok(Self {
            path: path.to_path_buf(),
            read: BufReader::new(read),
            write,
        })
    }

    /// The socket this client is connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends one request without reading an answer.
    pub async fn send(&mut self, request: &Request) -> Result<(), ControlClientError> {
        self.write
            .write_all(to_line(request).as_bytes())
            .await
            .map_err(|source| self.io_error(source))
    }

    /// Reads one response; an `error` response becomes [`ControlClientError::Api`].
    pub async fn receive(&mut self) -> Result<Response, ControlClientError> {
        let line = match read_line(&mut self.read, MAX_RESPONSE_LINE).await {
            Ok(Some(line)) => line,
            Ok(None) | Err(FrameError::Truncated) => {
                return Err(ControlClientError::Closed {
                    path: self.path.clone(),
                })
            }
            Err(FrameError::Io(e)) if e.kind() == ErrorKind::ConnectionReset => {
                return Err(ControlClientError::Closed {
                    path: self.path.clone(),
                })
            }
            Err(FrameError::Io(e)) => return Err(self.io_error(e)),
            Err(e) => return Err(self.protocol_error(e.to_string())),
        };
        match serde_json::from_str::<Response>(&line) {
            Ok(Response::Error(e)) => Err(ControlClientError::Api(e)),
            Ok(response) => Ok(response),
            Err(e) => Err(self.protocol_error(e.to_string())),
        }
    }

    /// Sends `request` and reads its one response.
    pub async fn request(&mut self, request: &Request) -> Result<Response, ControlClientError> {
        self.send(request).await?;
        self.receive().await
    }

    /// The daemon's status.
    pub async fn status(&mut self) -> Result<StatusReport, ControlClientError> {
        match self.request(&Request::Status).await? {
            Response::Status(report) => Ok(report),
            other => Err(self.unexpected("status", &other)),
        }
    }

    /// Every session.
    pub async fn sessions(&mut self) -> Result<Vec<SessionSummary>, ControlClientError> {
        match self.request(&Request::ListSessions).await? {
            Response::Sessions(list) => Ok(list),
            other => Err(self.unexpected("sessions", &other)),
        }
    }

    /// One session in full.
    pub async fn session(&mut self, id: u64) -> Result<SessionDetail, ControlClientError> {
        match self.request(&Request::ShowSession { id }).await? {
            Response::Session(detail) => Ok(detail),
            other => Err(self.unexpected("session", &other)),
        }
    }

    /// Terminates a session; returns it as it is after the change.
    pub async fn terminate(&mut self, id: u64) -> Result<SessionSummary, ControlClientError> {
        match self.request(&Request::TerminateSession { id }).await? {
            Response::Terminated(summary) => Ok(summary),
            other => Err(self.unexpected("terminated", &other)),
        }
    }

    /// Every counter.
    pub async fn stats(&mut self) -> Result<StatsReport, ControlClientError> {
        match self.request(&Request::Stats).await? {
            Response::Stats(report) => Ok(report),
            other => Err(self.unexpected("stats", &other)),
        }
    }

    /// A session's history.
    pub async fn audit(&mut self, id: u64) -> Result<Vec<AuditEntry>, ControlClientError> {
        match self.request(&Request::Audit { id }).await? {
            Response::Audit(entries) => Ok(entries),
            other => Err(self.unexpected("audit", &other)),
        }
    }

    /// Every client and its sessions.
    pub async fn show(&mut self) -> Result<ShowReport, ControlClientError> {
        match self.request(&Request::Show).await? {
            Response::Show(report) => Ok(report),
            other => Err(self.unexpected("show", &other)),
        }
    }

    /// Asks the gateway to apply its edited config file.
    pub async fn reload(&mut self) -> Result<ReloadReport, ControlClientError> {
        match self.request(&Request::Reload).await? {
            Response::Reloaded(report) => Ok(report),
            other => Err(self.unexpected("reloaded", &other)),
        }
    }

    /// Starts an event stream; read it with [`next_event`](Self::next_event).
    pub async fn start_events(
        &mut self,
        follow: bool,
        filter: EventFilter,
    ) -> Result<(), ControlClientError> {
        self.send(&Request::Events { follow, filter }).await
    }

    /// The next record of a stream started with [`start_events`](Self::start_events), or `None`
    /// at its end.
    pub async fn next_event(&mut self) -> Result<Option<EventRecord>, ControlClientError> {
        match self.receive().await? {
            Response::Event(record) => Ok(Some(record)),
            Response::EndOfEvents => Ok(None),
            other => Err(self.unexpected("event", &other)),
        }
    }

    fn io_error(&self, source: std::io::Error) -> ControlClientError {
        ControlClientError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn protocol_error(&self, problem: String) -> ControlClientError {
        ControlClientError::Protocol {
            path: self.path.clone(),
            problem,
        }
    }

    fn unexpected(&self, expected: &str, got: &Response) -> ControlClientError {
        self.protocol_error(format!("expected {expected}, got {}", got.name()))
    }
}
