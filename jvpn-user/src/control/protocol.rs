//! The control protocol: one JSON object per line each way.
//!
//! The client writes a [`Request`] line; the server answers with one [`Response`] line, except for
//! `events`, which is answered by any number of `event` lines and then one `end_of_events` line
//! (with `follow`, only when the daemon stops). A connection may carry several requests in turn.
//!
//! ```text
//! -> {"request":"show_session","id":"00000000deadbeef"}
//! <- {"response":"session","body":{"id":"00000000deadbeef","state":"ATTACHED","version":3,...}}
//! -> {"request":"reload"}
//! <- {"response":"reloaded","body":{"added":[],"removed":["phone"],...,"terminated":[{"id":"00000000deadbeef","version":4}]}}
//! -> {"request":"events","follow":true,"filter":{"kind":"STATE_CHANGE"}}
//! <- {"response":"event","body":{"seq":41,"time_ms":...,"kind":"STATE_CHANGE",...}}
//! ```
//!
//! Request lines longer than [`MAX_REQUEST_LINE`] are refused, so a misbehaving client cannot make
//! the daemon buffer without bound.

use super::dto::{AuditEntry, SessionDetail, SessionSummary, StatsReport, StatusReport};
use super::ops_dto::{ReloadReport, ShowReport};
use super::ApiError;
use crate::events::names::session_id;
use crate::events::{EventFilter, EventRecord};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt};

/// The longest request line the server reads, newline included.
pub const MAX_REQUEST_LINE: usize = 64 * 1024;
/// The longest response line the client reads (a session list of a full table fits).
pub const MAX_RESPONSE_LINE: usize = 1 << 30;

/// What the CLI asks the daemon. Unknown fields are refused, so a misspelt option is an error
/// rather than silently ignored (serde cannot check this for the requests that have no fields).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// `jvpn status`.
    Status,
    /// `jvpn sessions list`.
    ListSessions,
    /// `jvpn sessions show ID`.
    ShowSession {
        /// The session.
        #[serde(with = "session_id")]
        id: u64,
    },
    /// `jvpn sessions terminate ID`.
    TerminateSession {
        /// The session.
        #[serde(with = "session_id")]
        id: u64,
    },
    /// `jvpn stats`.
    Stats,
    /// `jvpn audit ID`.
    Audit {
        /// The session.
        #[serde(with = "session_id")]
        id: u64,
    },
    /// `jvpn show`.
    Show,
    /// `jvpn reload`.
    Reload,
    /// `jvpn events`: the recent history, and with `follow` every record after it.
    Events {
        /// Keep the stream open for live records.
        #[serde(default)]
        follow: bool,
        /// Which records to send.
        #[serde(default)]
        filter: EventFilter,
    },
}

/// What the daemon answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "response", content = "body", rename_all = "snake_case")]
pub enum Response {
    /// Answer to [`Request::Status`].
    Status(StatusReport),
    /// Answer to [`Request::ListSessions`].
    Sessions(Vec<SessionSummary>),
    /// Answer to [`Request::ShowSession`].
    Session(SessionDetail),
    /// Answer to [`Request::TerminateSession`]: the session after the change.
    Terminated(SessionSummary),
    /// Answer to [`Request::Stats`].
    Stats(StatsReport),
    /// Answer to [`Request::Audit`].
    Audit(Vec<AuditEntry>),
    /// Answer to [`Request::Show`].
    Show(ShowReport),
    /// Answer to [`Request::Reload`].
    Reloaded(ReloadReport),
    /// One record of an `events` answer.
    Event(EventRecord),
    /// The end of an `events` answer.
    EndOfEvents,
    /// The request was refused or failed.
    Error(ApiError),
}

impl Response {
    /// The response's name as it appears on the wire, for error messages.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Status(_) => "status",
            Self::Sessions(_) => "sessions",
            Self::Session(_) => "session",
            Self::Terminated(_) => "terminated",
            Self::Stats(_) => "stats",
            Self::Audit(_) => "audit",
            Self::Show(_) => "show",
            Self::Reloaded(_) => "reloaded",
            Self::Event(_) => "event",
            Self::EndOfEvents => "end_of_events",
            Self::Error(_) => "error",
        }
    }
}

/// Why a line could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The line did not end within the limit.
    #[error("line longer than {limit} bytes")]
    TooLong {
        /// The limit.
        limit: usize,
    },
    /// The line is not UTF-8.
    #[error("line is not UTF-8")]
    NotUtf8,
    /// The peer closed the connection in the middle of a line.
    #[error("connection closed in the middle of a line")]
    Truncated,
    /// Reading failed.
    #[error("reading failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one newline-terminated line of at most `limit` bytes (newline included), without the
/// newline. `Ok(None)` at a clean end of stream.
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    limit: usize,
) -> Result<Option<String>, FrameError> {
    let mut buf = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX);
    let n = (&mut *reader).take(cap).read_until(b'\n', &mut buf).await?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if n >= limit {
            FrameError::TooLong { limit }
        } else {
            FrameError::Truncated
        });
    }
    buf.pop();
    String::from_utf8(buf)
        .map(Some)
        .map_err(|_| FrameError::NotUtf8)
}

/// A message as one line, newline included.
pub fn to_line<T: Serialize>(message: &T) -> String {
    // The protocol's types are plain data with string keys; serializing them cannot fail.
    let mut line = serde_json::to_string(message).unwrap_or_default();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::EventKind;

    #[test]
    fn requests_have_the_documented_wire_form() {
        let cases = [
            (Request::Status, r#"{"request":"status"}"#),
            (Request::Show, r#"{"request":"show"}"#),
            (Request::Reload, r#"{"request":"reload"}"#),
            (
                Request::ShowSession { id: 0xdead_beef },
                r#"{"request":"show_session","id":"00000000deadbeef"}"#,
            ),
            (
                Request::Events {
                    follow: true,
                    filter: EventFilter {
                        session: None,
                        kind: Some(EventKind::StateChange),
                    },
                },
                r#"{"request":"events","follow":true,"filter":{"kind":"STATE_CHANGE"}}"#,
            ),
        ];
        for (request, text) in cases {
            assert_eq!(to_line(&request), format!("{text}\n"));
            assert_eq!(
                serde_json::from_str::<Request>(text).expect("parses"),
                request
            );
        }
    }

    #[test]
    fn hostile_requests_are_refused() {
        let bad = [
            r#"{"request":"show_session","id":"zz"}"#,
            r#"{"request":"show_session","id":"1ffffffffffffffff"}"#,
            r#"{"request":"show_session","id":255}"#,
            r#"{"request":"format_disk"}"#,
            r#"{"request":"events","folow":true}"#,
            r#"{"request":"events","filter":{"kind":"NOPE"}}"#,
            "not json",
        ];
        for text in bad {
            assert!(
                serde_json::from_str::<Request>(text).is_err(),
                "accepted {text}"
            );
        }
    }

    #[tokio::test]
    async fn line_reader_enforces_its_limit_and_reports_truncation() {
        let mut ok: &[u8] = b"abc\ndef\n";
        assert_eq!(
            read_line(&mut ok, 8).await.expect("ok").as_deref(),
            Some("abc")
        );
        assert_eq!(
            read_line(&mut ok, 8).await.expect("ok").as_deref(),
            Some("def")
        );
        assert!(read_line(&mut ok, 8).await.expect("eof").is_none());
        let mut long: &[u8] = b"0123456789\n";
        assert!(matches!(
            read_line(&mut long, 4).await,
            Err(FrameError::TooLong { limit: 4 })
        ));
        let mut cut: &[u8] = b"abc";
        assert!(matches!(
            read_line(&mut cut, 8).await,
            Err(FrameError::Truncated)
        ));
        let mut binary: &[u8] = b"\xff\xfe\n";
        assert!(matches!(
            read_line(&mut binary, 8).await,
            Err(FrameError::NotUtf8)
        ));
    }
}
