//! How the operator surface names things: session ids as 16 hex digits, states, reasons and
//! message types by their upper-case names.
//!
//! One spelling serves the human output, the `--json` output, the control protocol and the
//! command line, so a value copied from one can be pasted into another. Session ids are text,
//! not JSON numbers, because they are random 64-bit values and JSON readers that use doubles
//! (jq, JavaScript) would silently round them.

use jvpn_common::{MessageType, RejectReason, SessionState};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// A session id as printed everywhere: 16 lower-case hex digits.
pub fn session_id_text(id: u64) -> String {
    crate::session::SessionId::show(id).to_string()
}

pub use crate::session::SessionIdError;

/// Parses a session id as printed by [`session_id_text`]; a `0x` prefix is accepted.
pub fn parse_session_id(text: &str) -> Result<u64, SessionIdError> {
    text.parse::<crate::session::SessionId>().map(|id| id.get())
}

/// A value with a stable operator-facing name.
pub trait Named: Copy + Sized {
    /// What kind of value this is, for error messages ("state", "reason").
    const WHAT: &'static str;
    /// The upper-case name.
    fn name(self) -> &'static str;
    /// The value with this name, if any.
    fn from_name(name: &str) -> Option<Self>;
}

impl Named for SessionState {
    const WHAT: &'static str = "session state";
    fn name(self) -> &'static str {
        SessionState::name(self)
    }
    fn from_name(name: &str) -> Option<Self> {
        (0..=u8::MAX)
            .map_while(SessionState::from_u8)
            .find(|s| s.name() == name)
    }
}

impl Named for RejectReason {
    const WHAT: &'static str = "reason";
    fn name(self) -> &'static str {
        RejectReason::name(self)
    }
    fn from_name(name: &str) -> Option<Self> {
        RejectReason::ALL.into_iter().find(|r| r.name() == name)
    }
}

impl Named for MessageType {
    const WHAT: &'static str = "message type";
    fn name(self) -> &'static str {
        match self {
            MessageType::Hello => "HELLO",
            MessageType::Welcome => "WELCOME",
            MessageType::Data => "DATA",
            MessageType::ReattachRequest => "REATTACH_REQUEST",
            MessageType::ReattachAck => "REATTACH_ACK",
            MessageType::Reject => "REJECT",
            MessageType::Terminate => "TERMINATE",
            MessageType::Keepalive => "KEEPALIVE",
            MessageType::PathChallenge => "PATH_CHALLENGE",
            MessageType::PathResponse => "PATH_RESPONSE",
            MessageType::CookieReply => "COOKIE_REPLY",
            MessageType::RekeyInit => "REKEY_INIT",
            MessageType::RekeyAck => "REKEY_ACK",
        }
    }
    fn from_name(name: &str) -> Option<Self> {
        (1..=u8::MAX)
            .map_while(MessageType::from_u8)
            .find(|m| Named::name(*m) == name)
    }
}

/// `#[serde(with = "named")]`: a [`Named`] value as its name.
pub mod named {
    use super::*;

    /// Writes the name.
    pub fn serialize<T: Named, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.name())
    }

    /// Reads a name; an unknown name is an error that says what was expected.
    pub fn deserialize<'de, T: Named, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        T::from_name(&text).ok_or_else(|| D::Error::custom(format!("unknown {} {text:?}", T::WHAT)))
    }
}

/// `#[serde(with = "opt_named", default)]`: an optional [`Named`] value as its name.
pub mod opt_named {
    use super::*;

    /// Writes the name, or null.
    pub fn serialize<T: Named, S: Serializer>(value: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => s.serialize_str(v.name()),
            None => s.serialize_none(),
        }
    }

    /// Reads a name or null.
    pub fn deserialize<'de, T: Named, D: Deserializer<'de>>(d: D) -> Result<Option<T>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => T::from_name(&text)
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("unknown {} {text:?}", T::WHAT))),
        }
    }
}

/// `#[serde(with = "session_id")]`: a session id as 16 hex digits.
pub mod session_id {
    use super::*;

    /// Writes the id as text.
    pub fn serialize<S: Serializer>(id: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&session_id_text(*id))
    }

    /// Reads the id from text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let text = String::deserialize(d)?;
        parse_session_id(&text).map_err(D::Error::custom)
    }
}

/// `#[serde(with = "opt_session_id", default)]`: an optional session id as 16 hex digits.
pub mod opt_session_id {
    use super::*;

    /// Writes the id as text, or null.
    pub fn serialize<S: Serializer>(id: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match id {
            Some(id) => s.serialize_str(&session_id_text(*id)),
            None => s.serialize_none(),
        }
    }

    /// Reads the id from text, or null.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => parse_session_id(&text).map(Some).map_err(D::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_parse_as_printed_and_refuse_garbage() {
        let cases: &[(&str, Result<u64, ()>)] = &[
            ("00000000000000ff", Ok(0xff)),
            ("ff", Ok(0xff)),
            ("0xDEADbeef", Ok(0xdead_beef)),
            ("ffffffffffffffff", Ok(u64::MAX)),
            ("0000ffffffffffffffff", Ok(u64::MAX)),
            ("1ffffffffffffffff", Err(())),
            ("", Err(())),
            ("0x", Err(())),
            ("12g4", Err(())),
            ("-1", Err(())),
            ("12 34", Err(())),
            ("1\n", Err(())),
            ("0", Err(())),
            ("0x0000", Err(())),
        ];
        for (text, want) in cases {
            let got = parse_session_id(text).map_err(|_| ());
            assert_eq!(got, *want, "parsing {text:?}");
        }
        for id in [1, 0xabc, u64::MAX] {
            assert_eq!(parse_session_id(&session_id_text(id)), Ok(id));
        }
    }

    #[test]
    fn hostile_session_id_is_echoed_shortened() {
        let long = "z".repeat(10_000);
        let msg = parse_session_id(&long).unwrap_err().to_string();
        assert!(msg.len() < 200, "error message too long: {msg}");
    }

    #[test]
    fn names_round_trip() {
        for r in RejectReason::ALL {
            assert_eq!(<RejectReason as Named>::from_name(r.name()), Some(r));
        }
        for b in 0..4 {
            let s = SessionState::from_u8(b).expect("states 0..4 exist");
            assert_eq!(<SessionState as Named>::from_name(s.name()), Some(s));
        }
        for b in 1..=10 {
            let m = MessageType::from_u8(b).expect("types 1..=10 exist");
            assert_eq!(<MessageType as Named>::from_name(Named::name(m)), Some(m));
        }
        assert_eq!(<RejectReason as Named>::from_name("bad_tag"), None);
    }
}
