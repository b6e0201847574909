//! What the benchmark measures: the traffic scenarios, the verdict paths (and baselines), and the
//! frame that sends a packet down a path.

use super::xdp_support::{hinted_message, Udp, PORT};
use jvpn_common::abi::BENCH_FRAME_BYTES;
use jvpn_common::reason::{COUNTER_ACCEPTED, COUNTER_TO_CONTROLLER};
use jvpn_common::{MessageType, RejectReason, SessionState};
use std::net::{Ipv4Addr, SocketAddr};

/// Packets per run, and frames per rotation.
pub const PACKETS: u32 = 1_000_000;
/// Sessions the spread traffic visits (ids 2 ..= SPREAD_SESSIONS + 1; the hot session is id 1).
pub const SPREAD_SESSIONS: u32 = 1_000_000;
/// The session of hot traffic.
pub const HOT_SESSION: u64 = 1;
/// The state_version of every session.
pub const VERSION: u64 = 7;
/// The header key of every session.
pub const KEY: [u8; 16] = [0x42; 16];
/// Added to a session id to name one that does not exist.
const ABSENT: u64 = 1 << 40;
/// HELLO sources of spread HELLO traffic: half the LRU's capacity, so no bucket is evicted.
const HELLO_SOURCES: u32 = 1 << 15;

/// The session of the `index`-th spread session.
pub fn spread_session(index: u32) -> u64 {
    2 + index as u64
}

/// Which sessions are in the table and which the traffic visits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Scenario {
    /// One session in the table, all traffic on it.
    OneSessionHot,
    /// A million sessions in the table, all traffic on one.
    MillionHot,
    /// A million sessions in the table, traffic over all of them.
    MillionSpread,
}

impl Scenario {
    /// The scenario's part of a metric name.
    pub fn key(self) -> &'static str {
        match self {
            Self::OneSessionHot => "1_session.hot",
            Self::MillionHot => "1m_sessions.hot",
            Self::MillionSpread => "1m_sessions.spread",
        }
    }

    /// Whether the traffic is spread over the sessions.
    pub fn spread(self) -> bool {
        self == Self::MillionSpread
    }
}

/// A verdict path of `jvpn_xdp`, or a baseline program.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Path {
    BaselineDrop,
    BaselineLookup,
    AcceptData,
    /// DATA accepted, its header without a slot hint (an old client, or a slot not learnt yet):
    /// the session found through the hash index.
    AcceptDataNoHint,
    ControlToController,
    NotJvpn,
    Malformed,
    HandshakeRate,
    UnknownSession,
    BadTag,
    Terminated,
    DuplicateNonce,
    NonceTooOld,
    NotAttached,
    StaleVersion,
    VersionJump,
    TransportMismatch,
}

impl Path {
    /// Every path, in the order they run in a round: the ones that use fresh nonces first, so the
    /// duplicate and too-old paths find them recorded.
    pub const ALL: [Path; 17] = [
        Path::AcceptData,
        Path::AcceptDataNoHint,
        Path::ControlToController,
        Path::BaselineDrop,
        Path::BaselineLookup,
        Path::NotJvpn,
        Path::Malformed,
        Path::HandshakeRate,
        Path::UnknownSession,
        Path::BadTag,
        Path::Terminated,
        Path::DuplicateNonce,
        Path::NonceTooOld,
        Path::NotAttached,
        Path::StaleVersion,
        Path::VersionJump,
        Path::TransportMismatch,
    ];

    /// The path's part of a metric name.
    pub fn name(self) -> String {
        match self {
            Path::BaselineDrop => "baseline_drop".into(),
            Path::BaselineLookup => "baseline_lookup".into(),
            Path::AcceptData => "accept_data".into(),
            Path::AcceptDataNoHint => "accept_data_no_hint".into(),
            Path::ControlToController => "control_to_controller".into(),
            Path::NotJvpn => "not_jvpn".into(),
            drop => drop.reason().expect("a drop path").name().to_lowercase(),
        }
    }

    /// The drop reason of a drop path.
    pub fn reason(self) -> Option<RejectReason> {
        Some(match self {
            Path::Malformed => RejectReason::Malformed,
            Path::HandshakeRate => RejectReason::HandshakeRate,
            Path::UnknownSession => RejectReason::UnknownSession,
            Path::BadTag => RejectReason::BadTag,
            Path::Terminated => RejectReason::Terminated,
            Path::DuplicateNonce => RejectReason::DuplicateNonce,
            Path::NonceTooOld => RejectReason::NonceTooOld,
            Path::NotAttached => RejectReason::NotAttached,
            Path::StaleVersion => RejectReason::StaleVersion,
            Path::VersionJump => RejectReason::VersionJump,
            Path::TransportMismatch => RejectReason::TransportMismatch,
            _ => return None,
        })
    }

    /// The counter slot every packet of the path must land in (`None`: no slot moves).
    pub fn slot(self) -> Option<u32> {
        match self {
            Path::AcceptData | Path::AcceptDataNoHint => Some(COUNTER_ACCEPTED),
            Path::ControlToController => Some(COUNTER_TO_CONTROLLER),
            p => p.reason().map(RejectReason::counter_slot),
        }
    }

    /// The state the traffic's sessions must be in for the path.
    pub fn state(self) -> SessionState {
        match self {
            Path::Terminated => SessionState::Terminated,
            Path::NotAttached => SessionState::Recovering,
            _ => SessionState::Attached,
        }
    }

    /// Whether every run of the path spends a nonce per packet.
    pub fn spends_nonces(self) -> bool {
        matches!(
            self,
            Path::AcceptData | Path::AcceptDataNoHint | Path::ControlToController
        )
    }

    /// The figure this path is compared with in the same run and scenario: accept paths with the
    /// lookup baseline, drop paths with the accept path (they should cost no more), baselines
    /// and foreign traffic with the bare drop.
    pub fn baseline(self) -> Option<Path> {
        match self {
            Path::BaselineDrop => None,
            Path::BaselineLookup | Path::NotJvpn => Some(Path::BaselineDrop),
            Path::AcceptData | Path::AcceptDataNoHint | Path::ControlToController => {
                Some(Path::BaselineLookup)
            }
            _ => Some(Path::AcceptData),
        }
    }
}

/// Nonces spent so far. Hot runs spend one per packet on the hot session; spread runs one per
/// session, the same on all of them.
pub struct Nonces {
    /// The next fresh nonce of the hot session.
    pub hot: u64,
    /// The next fresh nonce of every spread session.
    pub spread: u64,
}

/// Addresses of the benchmark's traffic.
pub struct Addresses {
    /// The bound transport of every session.
    pub client: SocketAddr,
    /// The gateway.
    pub gateway: SocketAddr,
}

impl Default for Addresses {
    fn default() -> Self {
        Self {
            client: SocketAddr::new(Ipv4Addr::new(192, 0, 2, 10).into(), 40_000),
            gateway: SocketAddr::new(Ipv4Addr::new(198, 51, 100, 1).into(), PORT),
        }
    }
}

/// The `i`-th frame of a run of `path`: IPv4, a bare header, padded to the frame table's size.
/// `session` is the session the traffic visits at `i`, in `slot`: every header carries that
/// slot as its hint, as a current client's do, except on [`Path::AcceptDataNoHint`].
pub fn frame(
    path: Path,
    scenario: Scenario,
    i: u32,
    (session, slot): (u64, Option<u32>),
    nonces: &Nonces,
    to: &Addresses,
) -> Vec<u8> {
    let message = |t, id, version, nonce, key: &[u8; 16], body| {
        hinted_message(t, id, version, nonce, key, body, slot)
    };
    let (fresh, last_accepted) = match scenario.spread() {
        true => (nonces.spread, nonces.spread - 1),
        // The last 2048 nonces of the previous hot run: recorded, and inside the window.
        false => (nonces.hot + i as u64, nonces.hot - 1 - (i % 2048) as u64),
    };
    let data =
        |version: u64, nonce: u64| message(MessageType::Data, session, version, nonce, &KEY, 0);
    let mut source = to.client;
    let mut destination = to.gateway;
    let payload = match path {
        Path::AcceptData | Path::BaselineDrop | Path::BaselineLookup => data(VERSION, fresh),
        Path::AcceptDataNoHint => {
            hinted_message(MessageType::Data, session, VERSION, fresh, &KEY, 0, None)
        }
        Path::NotJvpn => {
            destination.set_port(PORT + 1);
            data(VERSION, fresh)
        }
        Path::ControlToController => {
            source.set_port(source.port() + 1);
            message(
                MessageType::ReattachRequest,
                session,
                VERSION,
                fresh,
                &KEY,
                0,
            )
        }
        Path::Malformed => {
            let mut m = data(VERSION, fresh);
            m[0] = 2;
            m
        }
        Path::HandshakeRate => {
            if scenario.spread() {
                let [_, _, a, b] = (i % HELLO_SOURCES).to_be_bytes();
                source.set_ip(Ipv4Addr::new(10, 1, a, b).into());
            }
            // A whole HELLO with a valid mac1: refused by its source's bucket, after the MAC.
            crate::xdp_support::hello(0, None)
        }
        Path::UnknownSession => message(MessageType::Data, session + ABSENT, VERSION, 1, &KEY, 0),
        Path::BadTag => message(MessageType::Data, session, VERSION, 1, &[0x24; 16], 0),
        Path::Terminated | Path::NotAttached | Path::NonceTooOld => data(VERSION, 1),
        Path::DuplicateNonce => data(VERSION, last_accepted),
        Path::StaleVersion => data(VERSION - 1, 1),
        Path::VersionJump => data(VERSION + 1, 1),
        Path::TransportMismatch => {
            source.set_port(source.port() + 1);
            data(VERSION, 1)
        }
    };
    let mut frame = Udp::new(source, destination, payload).frame();
    frame.resize(BENCH_FRAME_BYTES, 0);
    frame
}
