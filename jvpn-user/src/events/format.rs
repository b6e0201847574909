//! The two printed forms of an event record: one human-readable line, and one JSON object per line.
//!
//! The human line is `TIME #SEQ KIND SOURCE key=value ...` with the keys in a fixed order, so it can
//! be read at a glance and still grepped (`session=`, `reason=`). Anything meant for a program
//! should use the JSON form, whose schema is in [`super::record`].

use super::names::{session_id_text, Named};
use super::record::{EventKind, EventRecord, EventSource};
use std::fmt::Write as _;

/// The record as one JSON object, without a trailing newline.
pub fn json_line(record: &EventRecord) -> String {
    // Serializing a struct of plain fields to a String cannot fail.
    serde_json::to_string(record).unwrap_or_default()
}

/// The record as one human-readable line, without a trailing newline.
pub fn human_line(record: &EventRecord) -> String {
    let mut line = format!(
        "{} #{} {} {}",
        rfc3339_millis(record.time_ms),
        record.seq,
        record.kind.name(),
        match record.source {
            EventSource::Controller => "controller",
            EventSource::Dataplane => "dataplane",
        }
    );
    // Writing into a String cannot fail; the results are ignored for that reason.
    if let Some(id) = record.session {
        let _ = write!(line, " session={}", session_id_text(id));
    }
    if record.kind == EventKind::StateChange {
        let _ = write!(line, " {}", transition_text(record));
    }
    if let Some(reason) = record.reason {
        let _ = write!(line, " reason={}", reason.name());
    }
    if let Some(message) = record.message {
        let _ = write!(line, " message={}", Named::name(message));
    }
    if let Some(v) = record.claimed_version {
        let _ = write!(line, " claimed_version={v}");
    }
    if let Some(v) = record.session_version {
        let _ = write!(line, " session_version={v}");
    }
    if let Some(n) = record.nonce {
        let _ = write!(line, " nonce={n}");
    }
    if let Some(peer) = record.peer {
        let _ = write!(line, " peer={peer}");
    }
    if let Some(len) = record.frame_len {
        let _ = write!(line, " len={len}");
    }
    if let Some(lost) = record.lost {
        let _ = write!(line, " lost={lost}");
    }
    if let Some(detail) = &record.detail {
        // Debug quoting escapes newlines and control characters, so one record stays one line.
        let _ = write!(line, " detail={detail:?}");
    }
    line
}

/// `BIRTH v0 -> ATTACHED v1`, or `-> ATTACHED v1` when there is no previous state.
fn transition_text(record: &EventRecord) -> String {
    let side = |state: Option<jvpn_common::SessionState>, version: Option<u64>| {
        let state = state.map_or("?", |s| s.name());
        match version {
            Some(v) => format!("{state} v{v}"),
            None => state.to_string(),
        }
    };
    match (record.from_state, record.from_version) {
        (None, None) => format!("-> {}", side(record.to_state, record.to_version)),
        (from, from_v) => format!(
            "{} -> {}",
            side(from, from_v),
            side(record.to_state, record.to_version)
        ),
    }
}

/// Unix milliseconds as an RFC 3339 UTC timestamp with milliseconds, e.g. `2026-11-24T09:30:00.250Z`.
pub fn rfc3339_millis(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let millis = unix_ms % 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day); Howard Hinnant's
/// `civil_from_days`, restricted to non-negative days.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jvpn_common::{RejectReason, SessionState};

    #[test]
    fn rfc3339_known_instants() {
        let cases = [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400_000, "2000-02-29T00:00:00.000Z"),
            (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
            (4_102_444_800_123, "2100-01-01T00:00:00.123Z"),
        ];
        for (ms, want) in cases {
            assert_eq!(rfc3339_millis(ms), want, "for {ms} ms");
        }
    }

    #[test]
    fn human_line_of_a_state_change_names_states_and_versions() {
        let mut r = EventRecord::state_change(
            0xabc,
            Some((SessionState::Attached, 1)),
            (SessionState::Recovering, 2),
        );
        r.seq = 7;
        r.time_ms = 1_000;
        assert_eq!(
            human_line(&r),
            "1970-01-01T00:00:01.000Z #7 STATE_CHANGE controller session=0000000000000abc \
             ATTACHED v1 -> RECOVERING v2"
        );
    }

    #[test]
    fn human_line_stays_one_line_with_hostile_detail() {
        let r = EventRecord::refusal(Some(1), RejectReason::StaleVersion)
            .with_detail("line one\nline two\r\u{1b}[31m");
        let line = human_line(&r);
        assert!(!line.contains('\n') && !line.contains('\r') && !line.contains('\u{1b}'));
        assert!(line.contains("SECURITY_EVENT") && line.contains("reason=STALE_VERSION"));
    }
}
