//! Which records a reader asked for: one session, one kind, or both.
//!
//! EVENTS_LOST notices always pass a filter: a lost record might have been about the session or
//! kind being watched, so hiding the notice would hide the loss.

use super::names::opt_session_id;
use super::record::{EventKind, EventRecord};
use serde::{Deserialize, Serialize};

/// A reader's selection of records; the default selects everything.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventFilter {
    /// Only records about this session.
    #[serde(
        default,
        with = "opt_session_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub session: Option<u64>,
    /// Only records of this kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<EventKind>,
}

impl EventFilter {
    /// Whether `record` is selected.
    pub fn matches(&self, record: &EventRecord) -> bool {
        if record.kind == EventKind::EventsLost {
            return true;
        }
        self.session.is_none_or(|s| record.session == Some(s))
            && self.kind.is_none_or(|k| record.kind == k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::record::EventSource;
    use jvpn_common::{RejectReason, SessionState};

    #[test]
    fn filters_select_by_session_and_kind_and_never_hide_losses() {
        let change = EventRecord::state_change(1, None, (SessionState::Birth, 0));
        let refusal = EventRecord::refusal(Some(2), RejectReason::BadTag);
        let anonymous = EventRecord::refusal(None, RejectReason::Malformed);
        let lost = EventRecord::events_lost(EventSource::Dataplane, 3, "ring full");
        let by_session = EventFilter {
            session: Some(1),
            kind: None,
        };
        let by_kind = EventFilter {
            session: None,
            kind: Some(EventKind::SecurityEvent),
        };
        let both = EventFilter {
            session: Some(2),
            kind: Some(EventKind::StateChange),
        };
        let table = [
            (EventFilter::default(), [true, true, true, true]),
            (by_session, [true, false, false, true]),
            (by_kind, [false, true, true, true]),
            (both, [false, false, false, true]),
        ];
        for (filter, want) in table {
            let got = [&change, &refusal, &anonymous, &lost].map(|r| filter.matches(r));
            assert_eq!(got, want, "filter {filter:?}");
        }
    }
}
