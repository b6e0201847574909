//! Byte layout of the records the store keeps. Integers are little-endian; every record starts
//! with its format byte so a later layout can be told apart, and decoding is strict (no trailing
//! bytes, no unknown codes), so corruption is reported rather than guessed around.
//!
//! ```text
//! session, format 3:
//!   format u8 | id u64 | state u8 | state_version u64 | addr [16] | port u16 | client_key [32]
//!   | header_key [16] | created_at u64 | changed_at u64 | last_rx u64 | secrets_len u16 | secrets
//!   | hello_timestamp [12] (TAI64N, big-endian as on the wire)
//!   header_key is the client-to-gateway header key (the one the XDP map holds); secrets are the
//!   session's keys of both directions (`SessionKeys::to_stored`).
//! session, formats 1 and 2 (still read): the same without hello_timestamp in format 1 (it reads
//!   as all zero). Both were written when one header key served both directions; those keys are
//!   unusable now, so their secrets read as empty and the gateway loads such a session
//!   terminated (its client starts a new handshake) rather than guess a key.
//! state change, format 2 (format 1, still read, has no binding: it reads as all zero):
//!   format u8 | session u64 | from_state u8 | to_state u8 | from_version u64 | to_version u64
//!   | cause u8 | at u64 | addr [16] | port u16
//! ```

use crate::crypto::Secret;
use crate::session::{Cause, Session, SessionId, StateChange};
use jvpn_common::control::Tai64N;
use jvpn_common::maps::{SessionState, TransportBinding};

/// Format byte of session records written by this build.
pub const SESSION_FORMAT: u8 = 3;
/// The session format of one header key for both directions; still decoded, without its keys.
const SESSION_FORMAT_SHARED_HEADER_KEY: u8 = 2;
/// The session format before `hello_timestamp`; still decoded, without its keys.
const SESSION_FORMAT_WITHOUT_HELLO: u8 = 1;
/// Format byte of STATE_CHANGE records written by this build.
pub const STATE_CHANGE_FORMAT: u8 = 2;
/// The STATE_CHANGE format before `binding`; still decoded.
const STATE_CHANGE_FORMAT_WITHOUT_BINDING: u8 = 1;

/// Why stored bytes do not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The record ends early.
    #[error("record ends after {0} bytes")]
    Truncated(usize),
    /// Bytes follow the record.
    #[error("{0} unexpected bytes after the record")]
    TrailingBytes(usize),
    /// A format byte this build does not know.
    #[error("unknown record format {0}")]
    UnknownFormat(u8),
    /// A state byte this build does not know.
    #[error("unknown session state {0}")]
    UnknownState(u8),
    /// A cause code this build does not know.
    #[error("unknown cause code {0}")]
    UnknownCause(u8),
    /// Session id 0.
    #[error("session id 0")]
    ZeroId,
    /// Secrets longer than a record can carry (the store refuses to write them).
    #[error("{0} bytes of secrets do not fit a record")]
    SecretsTooLong(usize),
}

/// Encodes a session record.
pub fn encode_session(s: &Session) -> Result<Vec<u8>, CodecError> {
    let secrets_len =
        u16::try_from(s.secrets.len()).map_err(|_| CodecError::SecretsTooLong(s.secrets.len()))?;
    let mut out = Vec::with_capacity(128 + s.secrets.len());
    out.push(SESSION_FORMAT);
    out.extend_from_slice(&s.id.get().to_le_bytes());
    out.push(s.state as u8);
    out.extend_from_slice(&s.state_version.to_le_bytes());
    out.extend_from_slice(&s.binding.addr);
    out.extend_from_slice(&s.binding.port.get().to_le_bytes());
    out.extend_from_slice(&s.client_key);
    out.extend_from_slice(&s.header_key);
    out.extend_from_slice(&s.created_at.to_le_bytes());
    out.extend_from_slice(&s.changed_at.to_le_bytes());
    out.extend_from_slice(&s.last_rx.to_le_bytes());
    out.extend_from_slice(&secrets_len.to_le_bytes());
    out.extend_from_slice(&s.secrets);
    out.extend_from_slice(bytemuck::bytes_of(&s.hello_timestamp));
    Ok(out)
}

/// Decodes a session record.
pub fn decode_session(bytes: &[u8]) -> Result<Session, CodecError> {
    let mut r = Reader { bytes, at: 0 };
    let format = r.u8()?;
    if !matches!(
        format,
        SESSION_FORMAT | SESSION_FORMAT_SHARED_HEADER_KEY | SESSION_FORMAT_WITHOUT_HELLO
    ) {
        return Err(CodecError::UnknownFormat(format));
    }
    let id = r.id()?;
    let state = r.state()?;
    let state_version = r.u64()?;
    let addr = r.array::<16>()?;
    let port = u16::from_le_bytes(r.array()?);
    let mut session = Session {
        id,
        state,
        state_version,
        binding: TransportBinding::from_v6(addr, port),
        client_key: r.array()?,
        header_key: r.array()?,
        created_at: r.u64()?,
        changed_at: r.u64()?,
        last_rx: r.u64()?,
        secrets: {
            let len = u16::from_le_bytes(r.array()?);
            Secret::new(r.take(usize::from(len))?.to_vec())
        },
        hello_timestamp: if format == SESSION_FORMAT_WITHOUT_HELLO {
            Tai64N::default()
        } else {
            bytemuck::cast(r.array::<12>()?)
        },
    };
    r.finish()?;
    if format != SESSION_FORMAT {
        // Keys of the shared-header-key protocol: no use to either end any more (fail closed).
        session.secrets = Secret::new(Vec::new());
    }
    Ok(session)
}

/// Encodes a STATE_CHANGE record.
pub fn encode_state_change(c: &StateChange) -> Vec<u8> {
    let mut out = Vec::with_capacity(36);
    out.push(STATE_CHANGE_FORMAT);
    out.extend_from_slice(&c.session.get().to_le_bytes());
    out.push(c.from_state as u8);
    out.push(c.to_state as u8);
    out.extend_from_slice(&c.from_version.to_le_bytes());
    out.extend_from_slice(&c.to_version.to_le_bytes());
    out.push(c.cause.code());
    out.extend_from_slice(&c.at.to_le_bytes());
    out.extend_from_slice(&c.binding.addr);
    out.extend_from_slice(&c.binding.port.get().to_le_bytes());
    out
}

/// Decodes a STATE_CHANGE record.
pub fn decode_state_change(bytes: &[u8]) -> Result<StateChange, CodecError> {
    let mut r = Reader { bytes, at: 0 };
    let format = r.u8()?;
    if format != STATE_CHANGE_FORMAT && format != STATE_CHANGE_FORMAT_WITHOUT_BINDING {
        return Err(CodecError::UnknownFormat(format));
    }
    let change = StateChange {
        session: r.id()?,
        from_state: r.state()?,
        to_state: r.state()?,
        from_version: r.u64()?,
        to_version: r.u64()?,
        cause: {
            let code = r.u8()?;
            Cause::from_code(code).ok_or(CodecError::UnknownCause(code))?
        },
        at: r.u64()?,
        binding: if format == STATE_CHANGE_FORMAT {
            let addr = r.array::<16>()?;
            TransportBinding::from_v6(addr, u16::from_le_bytes(r.array()?))
        } else {
            TransportBinding::default()
        },
    };
    r.finish()?;
    Ok(change)
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(CodecError::Truncated(self.bytes.len()))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.array::<1>()?[0])
    }

    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn id(&mut self) -> Result<SessionId, CodecError> {
        SessionId::new(self.u64()?).ok_or(CodecError::ZeroId)
    }

    fn state(&mut self) -> Result<SessionState, CodecError> {
        let b = self.u8()?;
        SessionState::from_u8(b).ok_or(CodecError::UnknownState(b))
    }

    fn finish(self) -> Result<(), CodecError> {
        match self.bytes.len() - self.at {
            0 => Ok(()),
            extra => Err(CodecError::TrailingBytes(extra)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Session {
        let mut s = Session::birth(SessionId::new(0xfeed).unwrap(), [4; 32], 11);
        s.state = SessionState::Recovering;
        s.state_version = 7;
        s.binding = TransportBinding::from_v4([203, 0, 113, 9], 4242);
        s.header_key = [5; 16];
        s.secrets = vec![6; 64].into();
        s.changed_at = 12;
        s.last_rx = 13;
        s.hello_timestamp = Tai64N::from_unix(1_795_000_000, 123);
        s
    }

    #[test]
    fn session_round_trips() {
        let s = sample();
        let bytes = encode_session(&s).unwrap();
        assert_eq!(decode_session(&bytes), Ok(s));
    }

    #[test]
    fn a_format_1_record_reads_with_no_hello_timestamp_and_no_keys() {
        let s = sample();
        let mut bytes = encode_session(&s).unwrap();
        bytes.truncate(bytes.len() - std::mem::size_of::<Tai64N>());
        bytes[0] = SESSION_FORMAT_WITHOUT_HELLO;
        let mut decoded = decode_session(&bytes).unwrap();
        assert_eq!(decoded.hello_timestamp, Tai64N::default());
        assert!(decoded.secrets.is_empty());
        decoded.hello_timestamp = s.hello_timestamp;
        decoded.secrets = s.secrets.clone();
        assert_eq!(decoded, s);
    }

    /// A format 2 record holds keys of one header key for both directions: it reads with no
    /// keys at all, so the gateway loads its session terminated instead of using them.
    #[test]
    fn a_format_2_record_reads_with_no_keys() {
        let s = sample();
        let mut bytes = encode_session(&s).unwrap();
        bytes[0] = SESSION_FORMAT_SHARED_HEADER_KEY;
        let mut decoded = decode_session(&bytes).unwrap();
        assert!(decoded.secrets.is_empty(), "old keys survived the load");
        decoded.secrets = s.secrets.clone();
        assert_eq!(decoded, s);
    }

    #[test]
    fn state_change_round_trips_for_every_cause() {
        for cause in Cause::ALL {
            let c = StateChange {
                session: SessionId::new(3).unwrap(),
                from_state: SessionState::Attached,
                to_state: SessionState::Terminated,
                from_version: 41,
                to_version: 42,
                cause,
                at: 99,
                binding: TransportBinding::from_v4([198, 51, 100, 7], 40000),
            };
            assert_eq!(decode_state_change(&encode_state_change(&c)), Ok(c));
        }
    }

    #[test]
    fn a_format_1_state_change_reads_with_no_binding() {
        let c = StateChange {
            session: SessionId::new(3).unwrap(),
            from_state: SessionState::Attached,
            to_state: SessionState::Attached,
            from_version: 1,
            to_version: 2,
            cause: Cause::Reattach,
            at: 99,
            binding: TransportBinding::from_v4([198, 51, 100, 7], 40000),
        };
        let mut bytes = encode_state_change(&c);
        bytes.truncate(bytes.len() - 18);
        bytes[0] = STATE_CHANGE_FORMAT_WITHOUT_BINDING;
        assert_eq!(
            decode_state_change(&bytes),
            Ok(StateChange {
                binding: TransportBinding::default(),
                ..c
            })
        );
    }

    #[test]
    fn damaged_records_are_reported_not_guessed() {
        let good = encode_session(&sample()).unwrap();
        let mut cases: Vec<(Vec<u8>, CodecError)> = vec![
            (
                good[..good.len() - 1].to_vec(),
                CodecError::Truncated(good.len() - 1),
            ),
            (
                [good.clone(), vec![0]].concat(),
                CodecError::TrailingBytes(1),
            ),
            (vec![], CodecError::Truncated(0)),
        ];
        let mut bad_format = good.clone();
        bad_format[0] = 9;
        cases.push((bad_format, CodecError::UnknownFormat(9)));
        let mut bad_state = good.clone();
        bad_state[9] = 4;
        cases.push((bad_state, CodecError::UnknownState(4)));
        let mut zero_id = good.clone();
        zero_id[1..9].fill(0);
        cases.push((zero_id, CodecError::ZeroId));
        for (bytes, expected) in cases {
            assert_eq!(decode_session(&bytes), Err(expected));
        }
    }

    #[test]
    fn oversized_secrets_do_not_encode() {
        let mut s = sample();
        s.secrets = vec![0; usize::from(u16::MAX) + 1].into();
        assert_eq!(
            encode_session(&s),
            Err(CodecError::SecretsTooLong(usize::from(u16::MAX) + 1))
        );
    }
}
