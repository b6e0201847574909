//! The decision list (docs/protocol.md, "What the XDP program judges"; spec sections 4 to 6)
//! over a plain description of the maps: sessions as the controller writes them, replay windows
//! as the set of accepted nonces and their maximum, HELLO buckets as token counts. Judging a frame
//! also makes the map writes the program makes, so the model and the program stay in step.

use super::locate::{locate, Datagram, Located};
use jvpn_common::abi::{
    HEADER_LEN, HELLO_LEN, IPV6_BUCKET_PREFIX_BYTES, NONCE_LIMIT, REPLAY_WINDOW,
};
use jvpn_common::control::MAX_DATAGRAM_LEN;
use jvpn_common::hello::HelloMessage;
use jvpn_common::reason::{COUNTER_ACCEPTED, COUNTER_TO_CONTROLLER};
use jvpn_common::siphash::SipKey;
use jvpn_common::wire::{Be16, Be32, Be64};
use jvpn_common::{MessageType, RejectReason, SessionState, TransportBinding, WireHeader};
use std::collections::{HashMap, HashSet};

/// What becomes of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Passed untouched and uncounted.
    NotJvpn,
    /// Passed to the controller (HELLO, REATTACH_REQUEST, PATH_RESPONSE, TERMINATE), counted.
    ToController,
    /// DATA or KEEPALIVE that passed every rule, counted.
    Accepted,
    /// Dropped, counted under the reason and reported.
    Dropped(RejectReason),
}

impl Verdict {
    /// The counter slot that moves, if any.
    pub fn counter_slot(self) -> Option<u32> {
        match self {
            Self::NotJvpn => None,
            Self::ToController => Some(COUNTER_TO_CONTROLLER),
            Self::Accepted => Some(COUNTER_ACCEPTED),
            Self::Dropped(reason) => Some(reason.counter_slot()),
        }
    }
}

/// What the program's security event says about a refused frame: what it had read when it
/// refused it (zero for what it had not).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Seen {
    /// Source address and port (port 0, or all zero, if the datagram was not located).
    pub source: TransportBinding,
    /// The header's type byte.
    pub msg_type: u8,
    /// The header's session id.
    pub session_id: u64,
    /// The header's state_version.
    pub state_version: u64,
    /// The header's nonce.
    pub nonce: u64,
}

/// The model's judgement of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judgement {
    /// The verdict.
    pub verdict: Verdict,
    /// What an event would report.
    pub seen: Seen,
}

/// A session as the controller writes it to the session map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Session {
    /// Current state_version.
    pub version: u64,
    /// State byte ([`SessionState`], or any other byte).
    pub state: u8,
    /// The bound transport.
    pub binding: TransportBinding,
    /// The header tag key.
    pub header_key: [u8; 16],
}

/// A replay window as the versioning model states it: every accepted nonce, and the newest.
#[derive(Clone, Debug, Default)]
pub struct Window {
    accepted: HashSet<u64>,
    max: u64,
}

impl Window {
    /// The newest accepted nonce (0 before the first).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// Accepts `nonce` once, or says why not.
    fn check_and_record(&mut self, nonce: u64, max_leap: Option<u64>) -> Result<(), RejectReason> {
        if nonce >= NONCE_LIMIT {
            return Err(RejectReason::NonceExhausted);
        }
        if max_leap.is_some_and(|leap| nonce > self.max.saturating_add(leap)) {
            return Err(RejectReason::NonceTooFar);
        }
        if nonce + REPLAY_WINDOW < self.max {
            return Err(RejectReason::NonceTooOld);
        }
        if !self.accepted.insert(nonce) {
            return Err(RejectReason::DuplicateNonce);
        }
        self.max = self.max.max(nonce);
        Ok(())
    }
}

/// The program's configuration and maps, as the model sees them.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// The jvpn port (0: unconfigured, everything passes).
    pub port: u16,
    /// HELLO bucket size per source address; the model runs with a refill rate of 0.
    pub hello_burst: u32,
    /// `NONCE_TOO_FAR` above the newest accepted nonce plus this (`abi::NONCE_MAX_LEAP`, the
    /// client-to-gateway window's rule; `None` models a window without it).
    pub max_leap: Option<u64>,
    /// The mac1 key of the config entry (all zero: unset, every HELLO is `BAD_MAC`).
    pub mac1_key: [u8; 16],
    /// The session map.
    pub sessions: HashMap<u64, Session>,
    windows: HashMap<u64, Window>,
    buckets: HashMap<[u8; 16], u32>,
}

impl Model {
    /// A model of a program configured for `port`, with no sessions.
    pub fn new(port: u16, hello_burst: u32) -> Self {
        Self {
            port,
            hello_burst,
            max_leap: Some(jvpn_common::abi::NONCE_MAX_LEAP),
            ..Self::default()
        }
    }

    /// Writes (or with `None` deletes) a session, as the controller does. A deleted session's
    /// replay window goes with it (the dataplane frees its slot), so a session written again
    /// under the same id starts with a fresh one.
    pub fn set_session(&mut self, id: u64, session: Option<Session>) {
        match session {
            Some(s) => {
                self.sessions.insert(id, s);
            }
            None => {
                self.sessions.remove(&id);
                self.windows.remove(&id);
            }
        }
    }

    /// The newest nonce accepted for `id` (0 if none).
    pub fn window_max(&self, id: u64) -> u64 {
        self.windows.get(&id).map_or(0, Window::max)
    }

    /// Judges `frame`, making the map writes the program would make.
    pub fn judge(&mut self, frame: &[u8]) -> Judgement {
        let mut seen = Seen::default();
        let verdict = self.decide(frame, &mut seen);
        Judgement { verdict, seen }
    }

    fn decide(&mut self, frame: &[u8], seen: &mut Seen) -> Verdict {
        use RejectReason::*;
        if self.port == 0 {
            return Verdict::NotJvpn;
        }
        let datagram = match locate(frame) {
            Located::Foreign => return Verdict::NotJvpn,
            Located::Hidden(source) => {
                seen.source = source;
                return Verdict::Dropped(Malformed);
            }
            Located::Udp(d) if d.port != self.port => return Verdict::NotJvpn,
            Located::Udp(d) => d,
        };
        seen.source = datagram.source;
        // 1. Malformed.
        if datagram.fragmented || !datagram.lengths_agree || datagram.payload_len < HEADER_LEN {
            return Verdict::Dropped(Malformed);
        }
        let header = header(&datagram.payload[..HEADER_LEN]);
        seen.msg_type = header.msg_type;
        seen.session_id = header.session_id.get();
        seen.state_version = header.state_version.get();
        seen.nonce = header.nonce.get();
        // 1a. More than one datagram's worth: a merged run, dropped whole.
        if datagram.payload_len > MAX_DATAGRAM_LEN {
            return Verdict::Dropped(MergedRun);
        }
        let kind = match header.validate() {
            Ok(kind) if kind.sent_by_client() => kind,
            _ => return Verdict::Dropped(Malformed),
        };
        // 2. HELLO.
        if kind == MessageType::Hello {
            return match self.admit_hello(&datagram) {
                Ok(()) => Verdict::ToController,
                Err(reason) => Verdict::Dropped(reason),
            };
        }
        // 3. The session and its tag.
        let id = header.session_id.get();
        let Some(session) = self.sessions.get(&id).copied() else {
            return Verdict::Dropped(UnknownSession);
        };
        if !header.tag_verifies(SipKey::from_bytes(&session.header_key)) {
            return Verdict::Dropped(BadTag);
        }
        // 4. Terminated, or a state byte nobody defined (fail closed).
        let state = SessionState::from_u8(session.state);
        if matches!(state, None | Some(SessionState::Terminated)) {
            return Verdict::Dropped(Terminated);
        }
        let nonce = header.nonce.get();
        let max_leap = self.max_leap;
        let window = |model: &mut Self| {
            model
                .windows
                .entry(id)
                .or_default()
                .check_and_record(nonce, max_leap)
        };
        match kind {
            // 5. Control messages: replay, then the controller decides.
            MessageType::ReattachRequest | MessageType::PathResponse | MessageType::Terminate => {
                match window(self) {
                    Ok(()) => Verdict::ToController,
                    Err(reason) => Verdict::Dropped(reason),
                }
            }
            // 6. DATA, KEEPALIVE and REKEY_INIT: state, version, transport, replay; a
            // REKEY_INIT that passes goes to the controller.
            MessageType::Data | MessageType::Keepalive | MessageType::RekeyInit => {
                let version = header.state_version.get();
                if state != Some(SessionState::Attached) {
                    Verdict::Dropped(NotAttached)
                } else if version < session.version {
                    Verdict::Dropped(StaleVersion)
                } else if version > session.version {
                    Verdict::Dropped(VersionJump)
                } else if datagram.source != session.binding {
                    Verdict::Dropped(TransportMismatch)
                } else {
                    match window(self) {
                        Ok(()) if kind == MessageType::RekeyInit => Verdict::ToController,
                        Ok(()) => Verdict::Accepted,
                        Err(reason) => Verdict::Dropped(reason),
                    }
                }
            }
            _ => Verdict::Dropped(Malformed),
        }
    }

    /// HELLO admission (docs/protocol.md, HELLO flood defence): exactly `HELLO_LEN` bytes
    /// (`MALFORMED`); mac1 under the gateway's key (`BAD_MAC`; an unset all-zero key refuses every
    /// HELLO); then one token of the source's bucket, IPv4 per address and IPv6 per /64
    /// (`HANDSHAKE_RATE`; rate 0, so a bucket holds `hello_burst` HELLOs in all). The global
    /// budget and the cookie are not modelled: a run configures a global budget it never spends
    /// and the gateway is never under load in it.
    fn admit_hello(&mut self, datagram: &Datagram) -> Result<(), RejectReason> {
        if datagram.payload_len != HELLO_LEN {
            return Err(RejectReason::Malformed);
        }
        let hello = HelloMessage::from_bytes(&datagram.payload)
            .expect("the UDP length is HELLO_LEN and the frame holds it");
        if self.mac1_key == [0; 16] || !hello.mac1_verifies(SipKey::from_bytes(&self.mac1_key)) {
            return Err(RejectReason::BadMac);
        }
        let mut bucket = datagram.source.addr;
        let v4_mapped = bucket[..10] == [0; 10] && bucket[10..12] == [0xff, 0xff];
        if !v4_mapped {
            bucket[IPV6_BUCKET_PREFIX_BYTES..].fill(0);
        }
        let tokens = self.buckets.entry(bucket).or_insert(self.hello_burst);
        if *tokens == 0 {
            return Err(RejectReason::HandshakeRate);
        }
        *tokens -= 1;
        Ok(())
    }
}

/// The header in the first [`HEADER_LEN`] bytes, unvalidated.
fn header(bytes: &[u8]) -> WireHeader {
    let b = |range: core::ops::Range<usize>| &bytes[range];
    WireHeader {
        version: bytes[0],
        msg_type: bytes[1],
        flags: Be16(b(2..4).try_into().expect("2 bytes")),
        slot_hint: Be32(b(4..8).try_into().expect("4 bytes")),
        session_id: Be64(b(8..16).try_into().expect("8 bytes")),
        state_version: Be64(b(16..24).try_into().expect("8 bytes")),
        nonce: Be64(b(24..32).try_into().expect("8 bytes")),
        tag: Be64(b(32..40).try_into().expect("8 bytes")),
    }
}
