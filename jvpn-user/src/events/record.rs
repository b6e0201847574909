//! The one event record of the operator stream, and its JSON-lines schema.
//!
//! Every record on the stream, whoever produced it, is an [`EventRecord`]: the controller's
//! STATE_CHANGE, SECURITY_EVENT and POLICY_EVENT records, the XDP program's ring-buffer security
//! events (converted by [`EventRecord::from_dataplane`] from the loader's `DataplaneEvent`) and the EVENTS_LOST notices that stand in
//! for records nobody will see. Producers build a record with the constructors below; the
//! [`EventBus`](super::EventBus) stamps `seq` and `time_ms` when it is published.
//!
//! # JSON schema (`jvpn events --json`, one object per line)
//!
//! | field | type | present | meaning |
//! |---|---|---|---|
//! | `seq` | integer | always | Position in the gateway's one ordered stream, strictly increasing from 1. |
//! | `time_ms` | integer | always | Wall-clock time the gateway published the record, Unix milliseconds. |
//! | `kind` | string | always | `STATE_CHANGE`, `SECURITY_EVENT`, `POLICY_EVENT` or `EVENTS_LOST`. |
//! | `source` | string | always | `controller` (the daemon) or `dataplane` (the XDP program). |
//! | `session` | string | when known | Session id, 16 hex digits. Text because it is a random 64-bit value. |
//! | `from_state`, `to_state` | string | STATE_CHANGE | `BIRTH`, `ATTACHED`, `RECOVERING`, `TERMINATED`. |
//! | `from_version`, `to_version` | integer | STATE_CHANGE | The session's state_version before and after. |
//! | `claimed_version` | integer | refusals | The state_version the refused message carried. |
//! | `session_version` | integer | refusals, when known | The session's state_version when it was refused. |
//! | `reason` | string | refusals; some STATE_CHANGE | A reason name such as `STALE_VERSION` (see `jvpn_common::RejectReason`). |
//! | `message` | string | refusals, when readable | Message type, e.g. `REATTACH_REQUEST`. |
//! | `nonce` | integer | refusals, when readable | The message's nonce. |
//! | `peer` | string | when known | The client transport, `198.51.100.7:40000` or `[2001:db8::1]:40000`. |
//! | `frame_len` | integer | dataplane | Length of the dropped frame in bytes. |
//! | `lost` | integer | EVENTS_LOST | How many records this notice stands for. |
//! | `detail` | string | optional | Free text for humans; never parse it. |
//!
//! Absent fields are omitted, not null. Integers are unsigned 64-bit: values above 2^53 are exact
//! in the text but readers that use doubles round them. Readers must ignore unknown fields, which
//! later versions may add.

use super::names::{opt_named, opt_session_id};
use crate::dataplane::DataplaneEvent;
use jvpn_common::{MessageType, RejectReason, SessionState};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// What an event record reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    /// A session's state_version went up (spec section 11: one record per increment).
    StateChange,
    /// A message or packet was refused for a reason that may be an attack (replay, bad tag, ...).
    SecurityEvent,
    /// A message was refused by policy (rate limits, table full, ambiguous ownership, ...).
    PolicyEvent,
    /// Records were lost (ring buffer full, rate-limited or a subscriber that fell behind).
    EventsLost,
}

impl EventKind {
    /// Every kind, in the order the CLI lists them.
    pub const ALL: [EventKind; 4] = [
        Self::StateChange,
        Self::SecurityEvent,
        Self::PolicyEvent,
        Self::EventsLost,
    ];

    /// The upper-case name used in both output formats and by `--kind`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::StateChange => "STATE_CHANGE",
            Self::SecurityEvent => "SECURITY_EVENT",
            Self::PolicyEvent => "POLICY_EVENT",
            Self::EventsLost => "EVENTS_LOST",
        }
    }

    /// The kind named `name`, case-insensitively, so `--kind state_change` works too.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

/// Which part of the gateway produced a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// The `jvpn gateway` daemon.
    Controller,
    /// The XDP program, through its ring buffer and loss counters.
    Dataplane,
}

/// Whether a refusal is a security matter or a policy one, so the stream's kind follows the reason.
pub fn refusal_kind(reason: RejectReason) -> EventKind {
    match reason {
        RejectReason::HandshakeRate
        | RejectReason::TableFull
        | RejectReason::OwnershipAmbiguous
        | RejectReason::RejectRate
        | RejectReason::CookieRequired
        | RejectReason::HandshakeBusy
        | RejectReason::ClientSessionLimit
        | RejectReason::VersionExhausted => EventKind::PolicyEvent,
        _ => EventKind::SecurityEvent,
    }
}

/// One record of the gateway's ordered event stream. See the module documentation for the schema.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    /// Position in the stream; assigned by the bus, strictly increasing, first record is 1.
    pub seq: u64,
    /// Wall-clock publication time, Unix milliseconds; assigned by the bus.
    pub time_ms: u64,
    /// What the record reports.
    pub kind: EventKind,
    /// Who produced it.
    pub source: EventSource,
    /// The session concerned, when there is one.
    #[serde(
        default,
        with = "opt_session_id",
        skip_serializing_if = "Option::is_none"
    )]
    pub session: Option<u64>,
    /// STATE_CHANGE: the state before (absent for the birth record).
    #[serde(default, with = "opt_named", skip_serializing_if = "Option::is_none")]
    pub from_state: Option<SessionState>,
    /// STATE_CHANGE: the state after.
    #[serde(default, with = "opt_named", skip_serializing_if = "Option::is_none")]
    pub to_state: Option<SessionState>,
    /// STATE_CHANGE: the state_version before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<u64>,
    /// STATE_CHANGE: the state_version after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_version: Option<u64>,
    /// Refusals: the state_version the refused message carried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_version: Option<u64>,
    /// Refusals: the session's state_version at the time, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_version: Option<u64>,
    /// Why: the refusal reason, or the cause of a forced transition.
    #[serde(default, with = "opt_named", skip_serializing_if = "Option::is_none")]
    pub reason: Option<RejectReason>,
    /// The type of the refused message, when its header was readable.
    #[serde(default, with = "opt_named", skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageType>,
    /// The refused message's nonce.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<u64>,
    /// The client transport (address and UDP port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<SocketAddr>,
    /// Dataplane refusals: frame length in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_len: Option<u32>,
    /// EVENTS_LOST: how many records this notice stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    /// Free text for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl EventRecord {
    /// An empty record of `kind` from `source`; `seq` and `time_ms` are filled in by the bus.
    pub fn new(kind: EventKind, source: EventSource) -> Self {
        Self {
            seq: 0,
            time_ms: 0,
            kind,
            source,
            session: None,
            from_state: None,
            to_state: None,
            from_version: None,
            to_version: None,
            claimed_version: None,
            session_version: None,
            reason: None,
            message: None,
            nonce: None,
            peer: None,
            frame_len: None,
            lost: None,
            detail: None,
        }
    }

    /// The controller's record of one version increment. `from` is `None` for the birth record.
    pub fn state_change(
        session: u64,
        from: Option<(SessionState, u64)>,
        to: (SessionState, u64),
    ) -> Self {
        let mut r = Self::new(EventKind::StateChange, EventSource::Controller);
        r.session = Some(session);
        r.from_state = from.map(|(s, _)| s);
        r.from_version = from.map(|(_, v)| v);
        r.to_state = Some(to.0);
        r.to_version = Some(to.1);
        r
    }

    /// The controller's record of a refused message; the kind follows [`refusal_kind`].
    pub fn refusal(session: Option<u64>, reason: RejectReason) -> Self {
        let mut r = Self::new(refusal_kind(reason), EventSource::Controller);
        r.session = session;
        r.reason = Some(reason);
        r
    }

    /// A notice that `lost` records from `source` will never be seen.
    pub fn events_lost(source: EventSource, lost: u64, detail: impl Into<String>) -> Self {
        let mut r = Self::new(EventKind::EventsLost, source);
        r.lost = Some(lost);
        r.detail = Some(detail.into());
        r
    }

    /// Converts a security event read from the XDP program's ring buffer.
    pub fn from_dataplane(event: &DataplaneEvent) -> Self {
        let mut r = Self::new(refusal_kind(event.reason), EventSource::Dataplane);
        r.reason = Some(event.reason);
        r.message = event.msg_type;
        // Without a readable message type the header's other fields are zeros, not values.
        if r.message.is_some() {
            r.session = (event.session_id != 0).then_some(event.session_id);
            r.claimed_version = Some(event.state_version);
            r.nonce = Some(event.nonce);
        }
        r.peer = Some(SocketAddr::new(
            event.source.ip().to_canonical(),
            event.source.port(),
        ));
        r.frame_len = Some(event.frame_len);
        r
    }

    /// Sets the session.
    pub fn with_session(mut self, session: u64) -> Self {
        self.session = Some(session);
        self
    }

    /// Sets the client transport.
    pub fn with_peer(mut self, peer: SocketAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// Sets the refused message's type, claimed version and nonce.
    pub fn with_message(mut self, message: MessageType, claimed_version: u64, nonce: u64) -> Self {
        self.message = Some(message);
        self.claimed_version = Some(claimed_version);
        self.nonce = Some(nonce);
        self
    }

    /// Sets the session's current version.
    pub fn with_session_version(mut self, version: u64) -> Self {
        self.session_version = Some(version);
        self
    }

    /// Sets the reason (for a STATE_CHANGE, the cause of a forced transition).
    pub fn with_reason(mut self, reason: RejectReason) -> Self {
        self.reason = Some(reason);
        self
    }

    /// Sets the free-text detail.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataplane_event() -> DataplaneEvent {
        DataplaneEvent {
            reason: RejectReason::DuplicateNonce,
            source: "[::ffff:198.51.100.7]:40000"
                .parse()
                .expect("literal address"),
            session_id: 0x1122_3344_5566_7788,
            state_version: 3,
            nonce: 99,
            msg_type: Some(MessageType::Data),
            frame_len: 82,
            monotonic_ns: 1,
            at: std::time::UNIX_EPOCH,
        }
    }

    #[test]
    fn json_schema_is_stable_and_omits_absent_fields() {
        let mut r = EventRecord::from_dataplane(&dataplane_event());
        r.seq = 12;
        r.time_ms = 1_700_000_000_000;
        assert_eq!(
            serde_json::to_string(&r).expect("serializes"),
            concat!(
                r#"{"seq":12,"time_ms":1700000000000,"kind":"SECURITY_EVENT","source":"dataplane","#,
                r#""session":"1122334455667788","claimed_version":3,"reason":"DUPLICATE_NONCE","#,
                r#""message":"DATA","nonce":99,"peer":"198.51.100.7:40000","frame_len":82}"#
            )
        );
    }

    #[test]
    fn every_kind_round_trips_through_json() {
        let v6: SocketAddr = "[2001:db8::1]:51900".parse().expect("literal address");
        let records = [
            EventRecord::state_change(u64::MAX, None, (SessionState::Birth, 0)),
            EventRecord::state_change(
                7,
                Some((SessionState::Attached, u64::MAX - 1)),
                (SessionState::Terminated, u64::MAX),
            )
            .with_reason(RejectReason::VersionExhausted)
            .with_detail("forced: version safety margin"),
            EventRecord::refusal(Some(7), RejectReason::StaleVersion)
                .with_message(MessageType::ReattachRequest, 1, 5)
                .with_session_version(2)
                .with_peer(v6),
            EventRecord::refusal(None, RejectReason::TableFull),
            EventRecord::from_dataplane(&dataplane_event()),
            EventRecord::events_lost(EventSource::Dataplane, 17, "ring full"),
        ];
        for (i, mut r) in records.into_iter().enumerate() {
            r.seq = i as u64 + 1;
            r.time_ms = 1_000 * r.seq;
            let text = serde_json::to_string(&r).expect("serializes");
            assert!(!text.contains('\n'), "one line: {text}");
            let back: EventRecord = serde_json::from_str(&text).expect("parses back");
            assert_eq!(back, r, "round trip of {text}");
        }
    }

    #[test]
    fn readers_ignore_unknown_fields_and_refuse_unknown_names() {
        let newer =
            r#"{"seq":1,"time_ms":2,"kind":"POLICY_EVENT","source":"controller","zone":"b"}"#;
        let r: EventRecord = serde_json::from_str(newer).expect("unknown fields are ignored");
        assert_eq!(r.kind, EventKind::PolicyEvent);
        let bad =
            r#"{"seq":1,"time_ms":2,"kind":"POLICY_EVENT","source":"controller","reason":"NOPE"}"#;
        let err = serde_json::from_str::<EventRecord>(bad).expect_err("unknown reason");
        assert!(err.to_string().contains("unknown reason"), "{err}");
    }

    #[test]
    fn unreadable_dataplane_headers_carry_no_session_or_nonce() {
        let mut e = dataplane_event();
        e.msg_type = None;
        e.reason = RejectReason::Malformed;
        let r = EventRecord::from_dataplane(&e);
        assert_eq!((r.session, r.nonce, r.message), (None, None, None));
        assert_eq!(r.reason, Some(RejectReason::Malformed));
        assert_eq!(r.kind, EventKind::SecurityEvent);
        e.reason = RejectReason::HandshakeRate;
        assert_eq!(EventRecord::from_dataplane(&e).kind, EventKind::PolicyEvent);
    }
}
