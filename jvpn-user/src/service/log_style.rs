//! How a long-running command writes its `tracing` log to standard error, chosen from where that
//! stream goes: a terminal gets colour (unless `NO_COLOR` is set), a file or a pipe gets the same
//! lines without escape codes, and the systemd journal gets lines without timestamps (journald
//! stamps each line itself) that open with a syslog priority prefix (`<3>` error .. `<7>` debug),
//! which journald reads as the entry's priority, so `journalctl -p warning` works. The fields stay
//! on the line as `key=value`.
//!
//! Standard error goes to the journal when `JOURNAL_STREAM` names its device and inode, as
//! systemd sets it for a service (sd-daemon(3)); a child that inherited the variable but not the
//! stream does not match, and writes text.

use std::ffi::OsStr;
use std::fmt;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{Format, Full, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogStyle {
    /// Timestamped text lines, with ANSI colour only if `colour`.
    Text {
        /// Whether to colour the level and the fields with ANSI escape codes.
        colour: bool,
    },
    /// Lines for the systemd journal: a `<N>` priority prefix, no timestamp, no colour.
    Journal,
}

/// What is known about standard error when the style is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stderr {
    /// Whether standard error is a terminal.
    pub is_terminal: bool,
    /// Whether standard error is the journal stream `JOURNAL_STREAM` names.
    pub is_journal_stream: bool,
}

impl Stderr {
    /// Looks at this process's standard error and `JOURNAL_STREAM`.
    pub fn inspect() -> Self {
        use std::io::IsTerminal as _;
        let stderr = std::io::stderr();
        let identity = stderr
            .as_fd()
            .try_clone_to_owned()
            .and_then(|fd| std::fs::File::from(fd).metadata())
            .map(|meta| (meta.dev(), meta.ino()))
            .ok();
        let journal = std::env::var("JOURNAL_STREAM")
            .ok()
            .and_then(|value| parse_journal_stream(&value));
        Self {
            is_terminal: stderr.is_terminal(),
            is_journal_stream: identity.is_some() && identity == journal,
        }
    }
}

/// The style for `stderr`, given the value of `NO_COLOR` (see no-color.org: set and not empty
/// means no colour).
pub fn choose(stderr: Stderr, no_color: Option<&OsStr>) -> LogStyle {
    if stderr.is_journal_stream {
        return LogStyle::Journal;
    }
    let colour_refused = no_color.is_some_and(|value| !value.is_empty());
    LogStyle::Text {
        colour: stderr.is_terminal && !colour_refused,
    }
}

/// `JOURNAL_STREAM`'s `DEVICE:INODE` (both decimal), or `None` if it is not of that form.
pub fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (device, inode) = value.split_once(':')?;
    Some((device.parse().ok()?, inode.parse().ok()?))
}

/// Installs the global `tracing` subscriber: `style` on standard error, filtered by `RUST_LOG`
/// (default `info`).
pub fn install(style: LogStyle) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match style {
        LogStyle::Text { colour } => builder.with_ansi(colour).init(),
        LogStyle::Journal => builder
            .with_ansi(false)
            .event_format(JournalFormat::default())
            .init(),
    }
}

/// The syslog priority journald reads from a `<N>` line prefix (sd-daemon(3)).
pub fn priority(level: Level) -> u8 {
    match level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// tracing-subscriber's full format without time, level or colour, behind a priority prefix.
struct JournalFormat {
    inner: Format<Full, ()>,
}

impl Default for JournalFormat {
    fn default() -> Self {
        Self {
            inner: tracing_subscriber::fmt::format()
                .without_time()
                .with_level(false)
                .with_ansi(false),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JournalFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(*event.metadata().level()))?;
        self.inner.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_style_follows_where_stderr_goes() {
        let stderr = |is_terminal, is_journal_stream| Stderr {
            is_terminal,
            is_journal_stream,
        };
        let no_colour = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        let cases = [
            (
                "terminal",
                stderr(true, false),
                None,
                LogStyle::Text { colour: true },
            ),
            (
                "terminal, NO_COLOR=1",
                stderr(true, false),
                no_colour,
                LogStyle::Text { colour: false },
            ),
            (
                "terminal, NO_COLOR empty",
                stderr(true, false),
                empty,
                LogStyle::Text { colour: true },
            ),
            (
                "file or pipe",
                stderr(false, false),
                None,
                LogStyle::Text { colour: false },
            ),
            ("journal", stderr(false, true), None, LogStyle::Journal),
            (
                "journal, NO_COLOR=1",
                stderr(false, true),
                no_colour,
                LogStyle::Journal,
            ),
        ];
        for (name, stderr, no_color, expected) in cases {
            assert_eq!(choose(stderr, no_color), expected, "{name}");
        }
    }

    #[test]
    fn journal_stream_is_device_colon_inode() {
        let cases = [
            ("8:1234", Some((8, 1234))),
            ("0:0", Some((0, 0))),
            ("8", None),
            ("8:", None),
            (":1234", None),
            ("a:1", None),
            ("8:1234:5", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_journal_stream(value), expected, "{value:?}");
        }
    }

    #[test]
    fn priorities_are_syslog_levels() {
        assert_eq!(priority(Level::ERROR), 3);
        assert_eq!(priority(Level::WARN), 4);
        assert_eq!(priority(Level::INFO), 6);
        assert_eq!(priority(Level::DEBUG), 7);
        assert_eq!(priority(Level::TRACE), 7);
    }
}
