//! The rows of the decision list (issue 2) for one address family, in its order: each a
//! session as the controller wrote it, frames run before, the judged frame and what must become
//! of it. Used by `tests/xdp_decision_list.rs`.

use crate::xdp_support::*;
use jvpn_common::abi::{HEADER_LEN, REPLAY_WINDOW};
use jvpn_common::control::MAX_DATAGRAM_LEN;
use jvpn_common::reason::{COUNTER_ACCEPTED, COUNTER_TO_CONTROLLER};
use jvpn_common::{MessageType, RejectReason, SessionEntry, SessionState};

/// The session every row is about.
pub const SESSION: u64 = 0x0001_0000_0000_0042;
/// Its header tag key.
pub const KEY: [u8; 16] = [0x11; 16];
/// Its state_version.
pub const VERSION: u64 = 5;
/// The judged frame's nonce.
pub const NONCE: u64 = 77;
/// Body length of the messages.
pub const BODY: usize = 32;
/// Body length of the longest datagram the protocol produces.
pub const LARGEST_BODY: usize = MAX_DATAGRAM_LEN - HEADER_LEN;
/// Body length of each datagram of a merged run: three are longer than one datagram can be,
/// and fit the one page `BPF_PROG_TEST_RUN` gives a frame.
pub const RUN_BODY: usize = 600;

/// What must become of a row's frame.
#[derive(Debug)]
pub enum Expect {
    /// Pass, counted under this slot, no event.
    Pass(u32),
    /// Drop for this reason, with an event carrying these header fields (zero if the header could
    /// not be read): session id, state_version, nonce, message type byte.
    Drop(RejectReason, [u64; 4]),
}

/// One row.
pub struct Case {
    /// Its step of the list first (after the message type when several types share the row),
    /// then what it tries and the outcome.
    pub name: String,
    /// The session as the controller wrote it, if any.
    pub session: Option<SessionEntry>,
    /// Frames run before the judged one (to fill a window or spend a bucket).
    pub before: Vec<Vec<u8>>,
    /// The judged frame.
    pub frame: Vec<u8>,
    /// What must become of it.
    pub expect: Expect,
}

fn msg(t: MessageType, version: u64, nonce: u64) -> Vec<u8> {
    message(t, SESSION, version, nonce, &KEY, BODY)
}

fn fields(t: MessageType, version: u64, nonce: u64) -> [u64; 4] {
    [SESSION, version, nonce, t as u64]
}

/// The entry of [`SESSION`] in `state`, as the controller writes it (naming its session).
fn entry(state: SessionState, f: &Family) -> SessionEntry {
    SessionEntry {
        session_id: SESSION,
        ..session(state, VERSION, KEY, f.client)
    }
}

/// Every row of the decision list, in its order, for one family.
pub fn decision_list(f: &Family) -> Vec<Case> {
    use MessageType::*;
    use RejectReason::*;
    let attached = Some(entry(SessionState::Attached, f));
    let data = msg(Data, VERSION, NONCE);
    let data_fields = fields(Data, VERSION, NONCE);
    let mutated = |byte: usize, value: u8| {
        let mut m = data.clone();
        m[byte] = value;
        m
    };
    let hello = hello(1, None);
    let hello_fields = [0, 0, 0, Hello as u64];
    let mut cases = vec![
        Case {
            name: "1 truncated header: MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: f.frame(data[..HEADER_LEN - 1].to_vec()),
            expect: Expect::Drop(Malformed, [0; 4]),
        },
        Case {
            name: "1 fragmented: MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: {
                let mut udp = f.udp(f.client, data.clone());
                udp.fragment = true;
                udp.frame()
            },
            expect: Expect::Drop(Malformed, [0; 4]),
        },
        Case {
            name: "1 wrong protocol version: MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: f.frame(mutated(0, 2)),
            expect: Expect::Drop(Malformed, data_fields),
        },
        Case {
            name: "1 unknown type: MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: f.frame(mutated(1, 11)),
            expect: Expect::Drop(Malformed, [SESSION, VERSION, NONCE, 11]),
        },
        Case {
            name: "1 unknown flag: MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: f.frame(mutated(3, 1)),
            expect: Expect::Drop(Malformed, data_fields),
        },
        Case {
            name: "1 gateway-only type (WELCOME): MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: f.frame(msg(Welcome, VERSION, NONCE)),
            expect: Expect::Drop(Malformed, fields(Welcome, VERSION, NONCE)),
        },
        Case {
            name: "1 gateway-only type (PATH_CHALLENGE): MALFORMED".into(),
            session: attached,
            before: vec![],
            frame: f.frame(msg(PathChallenge, VERSION, NONCE)),
            expect: Expect::Drop(Malformed, fields(PathChallenge, VERSION, NONCE)),
        },
        Case {
            name: "1 COOKIE_REPLY (gateway-only) arriving: MALFORMED".into(),
            session: None,
            before: vec![],
            frame: f.frame(message(CookieReply, 0, 0, 0, &KEY, 56)),
            expect: Expect::Drop(Malformed, [0, 0, 0, CookieReply as u64]),
        },
        Case {
            name: "1 DATA of the largest datagram (MAX_DATAGRAM_LEN): accepted".into(),
            session: attached,
            before: vec![],
            frame: f.frame(message(Data, SESSION, VERSION, NONCE, &KEY, LARGEST_BODY)),
            expect: Expect::Pass(COUNTER_ACCEPTED),
        },
        Case {
            name: "1 DATA one byte past the largest datagram: MERGED_RUN".into(),
            session: attached,
            before: vec![],
            frame: f.frame(message(
                Data,
                SESSION,
                VERSION,
                NONCE,
                &KEY,
                LARGEST_BODY + 1,
            )),
            expect: Expect::Drop(MergedRun, data_fields),
        },
        Case {
            name: "1 valid DATA, then a forged and a replayed one laid end to end: MERGED_RUN"
                .into(),
            session: attached,
            before: vec![f.frame(msg(Data, VERSION, NONCE - 1))],
            frame: f.frame(
                [
                    message(Data, SESSION, VERSION, NONCE, &KEY, RUN_BODY),
                    message(Data, SESSION, VERSION, NONCE + 1, &[0x22; 16], RUN_BODY),
                    message(Data, SESSION, VERSION, NONCE - 1, &KEY, RUN_BODY),
                ]
                .concat(),
            ),
            expect: Expect::Drop(MergedRun, data_fields),
        },
        Case {
            name: "1 two HELLOs laid end to end past the largest datagram: MERGED_RUN".into(),
            session: None,
            before: vec![],
            frame: f.frame(
                core::iter::repeat_n(hello.clone(), MAX_DATAGRAM_LEN / hello.len() + 1)
                    .collect::<Vec<_>>()
                    .concat(),
            ),
            expect: Expect::Drop(MergedRun, hello_fields),
        },
        Case {
            name: "2 HELLO one byte short: MALFORMED".into(),
            session: None,
            before: vec![],
            frame: f.frame(hello[..hello.len() - 1].to_vec()),
            expect: Expect::Drop(Malformed, hello_fields),
        },
        Case {
            name: "2 HELLO one byte long: MALFORMED".into(),
            session: None,
            before: vec![],
            frame: f.frame([hello.as_slice(), &[0]].concat()),
            expect: Expect::Drop(Malformed, hello_fields),
        },
        Case {
            name: "2 HELLO with mac1 under another key: BAD_MAC".into(),
            session: None,
            before: vec![],
            frame: f.frame(hello_with_key(1, &[0x22; 16], None)),
            expect: Expect::Drop(BadMac, hello_fields),
        },
        Case {
            name: "2 HELLO altered after mac1: BAD_MAC".into(),
            session: None,
            before: vec![],
            frame: f.frame({
                let mut h = hello.clone();
                h[HEADER_LEN + 5] ^= 1;
                h
            }),
            expect: Expect::Drop(BadMac, hello_fields),
        },
        Case {
            name: "2 HELLO within the limit: to the controller".into(),
            session: None,
            before: vec![],
            frame: f.frame(hello.clone()),
            expect: Expect::Pass(COUNTER_TO_CONTROLLER),
        },
        Case {
            name: "2 HELLO over the limit: HANDSHAKE_RATE".into(),
            session: None,
            before: vec![f.frame(hello.clone()), f.frame(hello.clone())],
            frame: f.frame(hello),
            expect: Expect::Drop(HandshakeRate, hello_fields),
        },
        Case {
            name: "3 unknown session: UNKNOWN_SESSION".into(),
            session: None,
            before: vec![],
            frame: f.frame(data.clone()),
            expect: Expect::Drop(UnknownSession, data_fields),
        },
        Case {
            // The preallocated map reused a deleted element for another session between the
            // lookup and the copy: the copy names that session, not this packet's.
            name: "3 entry names another session: UNKNOWN_SESSION".into(),
            session: attached.map(|a| SessionEntry {
                session_id: SESSION + 1,
                ..a
            }),
            before: vec![],
            frame: f.frame(data.clone()),
            expect: Expect::Drop(UnknownSession, data_fields),
        },
        Case {
            name: "3 tag does not verify: BAD_TAG".into(),
            session: attached,
            before: vec![],
            frame: f.frame(message(Data, SESSION, VERSION, NONCE, &[0x22; 16], BODY)),
            expect: Expect::Drop(BadTag, data_fields),
        },
        Case {
            name: "4 session terminated: TERMINATED".into(),
            session: Some(entry(SessionState::Terminated, f)),
            before: vec![],
            frame: f.frame(data.clone()),
            expect: Expect::Drop(Terminated, data_fields),
        },
    ];
    for t in [ReattachRequest, PathResponse, Terminate] {
        let control = msg(t, VERSION, NONCE);
        // Control messages come from any transport and in any state but TERMINATED.
        let recovering = Some(entry(SessionState::Recovering, f));
        cases.extend([
            Case {
                name: format!("{t:?}: 5 control message, fresh nonce: to the controller"),
                session: recovering,
                before: vec![],
                frame: f.udp(f.other_port, control.clone()).frame(),
                expect: Expect::Pass(COUNTER_TO_CONTROLLER),
            },
            Case {
                name: format!("{t:?}: 5 control message, duplicate nonce: DUPLICATE_NONCE"),
                session: recovering,
                before: vec![f.frame(control.clone())],
                frame: f.frame(control),
                expect: Expect::Drop(DuplicateNonce, fields(t, VERSION, NONCE)),
            },
            Case {
                name: format!(
                    "{t:?}: 5 control message, nonce older than the window: NONCE_TOO_OLD"
                ),
                session: recovering,
                before: vec![f.frame(msg(t, VERSION, NONCE + REPLAY_WINDOW + 1))],
                frame: f.frame(msg(t, VERSION, NONCE)),
                expect: Expect::Drop(NonceTooOld, fields(t, VERSION, NONCE)),
            },
        ]);
    }
    for t in [Data, Keepalive] {
        let m = msg(t, VERSION, NONCE);
        let fl = fields(t, VERSION, NONCE);
        cases.extend([
            Case {
                name: format!("{t:?}: 6 not ATTACHED: NOT_ATTACHED"),
                session: Some(entry(SessionState::Recovering, f)),
                before: vec![],
                frame: f.frame(m.clone()),
                expect: Expect::Drop(NotAttached, fl),
            },
            Case {
                name: format!("{t:?}: 6 not ATTACHED (BIRTH): NOT_ATTACHED"),
                session: Some(entry(SessionState::Birth, f)),
                before: vec![],
                frame: f.frame(m.clone()),
                expect: Expect::Drop(NotAttached, fl),
            },
            Case {
                name: format!("{t:?}: 6 version below the session's: STALE_VERSION"),
                session: attached,
                before: vec![],
                frame: f.frame(msg(t, VERSION - 1, NONCE)),
                expect: Expect::Drop(StaleVersion, fields(t, VERSION - 1, NONCE)),
            },
            Case {
                name: format!("{t:?}: 6 version above the session's: VERSION_JUMP"),
                session: attached,
                before: vec![],
                frame: f.frame(msg(t, VERSION + 1, NONCE)),
                expect: Expect::Drop(VersionJump, fields(t, VERSION + 1, NONCE)),
            },
            Case {
                name: format!("{t:?}: 6 source port not the bound transport: TRANSPORT_MISMATCH"),
                session: attached,
                before: vec![],
                frame: f.udp(f.other_port, m.clone()).frame(),
                expect: Expect::Drop(TransportMismatch, fl),
            },
            Case {
                name: format!("{t:?}: 6 nonce already seen: DUPLICATE_NONCE"),
                session: attached,
                before: vec![f.frame(m.clone())],
                frame: f.frame(m.clone()),
                expect: Expect::Drop(DuplicateNonce, fl),
            },
            Case {
                name: format!("{t:?}: 6 nonce older than the window: NONCE_TOO_OLD"),
                session: attached,
                before: vec![f.frame(msg(t, VERSION, NONCE + REPLAY_WINDOW + 1))],
                frame: f.frame(m.clone()),
                expect: Expect::Drop(NonceTooOld, fl),
            },
            Case {
                name: format!("{t:?}: 6 everything right: accepted"),
                session: attached,
                before: vec![f.frame(msg(t, VERSION, NONCE + 1))],
                frame: f.frame(m),
                expect: Expect::Pass(COUNTER_ACCEPTED),
            },
        ]);
    }
    cases
}

impl Case {
    /// Its step of the decision list (the number its name starts with, after the message type
    /// when the row is one of several types) and its outcome.
    pub fn kind(&self) -> (u32, String) {
        let after_type = self.name.split_once(": ").map_or("", |(_, rest)| rest);
        let step = [self.name.as_str(), after_type]
            .iter()
            .find_map(|text| text.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("row {:?} does not start with its step", self.name));
        let outcome = match self.expect {
            Expect::Pass(slot) => format!("pass, counter {slot}"),
            Expect::Drop(reason, _) => reason.name().to_owned(),
        };
        (step, outcome)
    }
}
