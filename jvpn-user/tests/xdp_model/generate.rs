//! Hostile frames, seeded and reproducible: every header field mutated, wrong tags and keys,
//! gateway-to-client messages reflected back, replays of earlier frames (also after the session
//! jumped), stale, duplicate, too old, too far and exhausted nonces, truncations, random bytes,
//! datagrams laid end to end (merged runs), and every encapsulation the stack accepts around them
//! (VLAN stacks, IPv4 options and AH, IPv6 extension chains, fragments, lengths that disagree).
//! Between frames, [`Generator::world_event`] moves sessions as the controller would (jumps,
//! RECOVERING, TERMINATED, odd state bytes, new and deleted sessions).

use super::decide::{Model, Session};
use super::random::{Bodies, Rng};
use super::wrap::encapsulate;
use crate::xdp_support::{hello_with_key, Udp};
use jvpn_common::abi::{NONCE_LIMIT, NONCE_MAX_LEAP, REPLAY_WINDOW};
use jvpn_common::control::MAX_DATAGRAM_LEN;
use jvpn_common::wire::{Be16, Be32, Be64};
use jvpn_common::{MessageType, SessionState, TransportBinding, WireHeader};
use std::collections::VecDeque;
use std::net::SocketAddr;

/// One generated frame.
pub struct Generated {
    /// The Ethernet frame.
    pub frame: Vec<u8>,
    /// What the generator meant it to be, for failure messages.
    pub kind: &'static str,
    /// The datagram is exactly what [`Bodies`] built (not mutated, truncated or noise).
    pub intact: bool,
    /// No VLAN tag and no IP-layer deviation: the stack delivers it as is.
    pub plain: bool,
}

/// Where frames come from and go to.
pub struct Endpoints {
    /// The gateway's IPv4 and IPv6 addresses, at the jvpn port.
    pub gateway_v4: SocketAddr,
    /// See `gateway_v4`.
    pub gateway_v6: SocketAddr,
    /// Sources to send from and to bind sessions to (IPv4 and IPv6, a few ports each).
    pub sources: Vec<SocketAddr>,
}

/// A nonce of a reflected gateway-to-client message, `(epoch << 40) | counter`, with an epoch
/// from 1 to 15. The window keeps 32 bits of a block's generation, so nonces equal modulo 2^44
/// share a slot state (a documented false duplicate, failing closed); epochs distinct modulo 16
/// and never 0 keep reflected nonces apart from each other and from a client's small ones.
fn reflected_nonce(rng: &mut Rng) -> u64 {
    let epoch = 1 + rng.below(15);
    (epoch << 40) | rng.below(1_000)
}

/// The generator.
pub struct Generator {
    /// The random source; its seed names the run.
    pub rng: Rng,
    endpoints: Endpoints,
    /// Session ids the generator manages through world events.
    managed: Vec<u64>,
    /// Earlier datagrams (as framed before encapsulation) for replays.
    history: VecDeque<Udp>,
    /// Nonces recently sent per session id, for duplicates.
    recent: VecDeque<(u64, u64)>,
    port: u16,
    /// Whether nonces just below `NONCE_LIMIT` (acceptable, and fatal to the session: a gateway
    /// terminates a session whose nonces near the end, spec section 8) are generated.
    pub accept_near_limit: bool,
    /// Whether merged runs (datagrams laid end to end, longer than any one datagram) are
    /// generated: frames above a 1500-byte link MTU, which only `BPF_PROG_TEST_RUN` can deliver.
    pub merged_runs: bool,
}

const HISTORY: usize = 4_096;
const ETHERNET_HEADER_LEN: usize = 14;
const RECENT: usize = 256;

impl Generator {
    /// A generator for a program on `port`.
    pub fn new(seed: u64, port: u16, endpoints: Endpoints) -> Self {
        Self {
            rng: Rng::new(seed),
            endpoints,
            managed: Vec::new(),
            history: VecDeque::with_capacity(HISTORY),
            recent: VecDeque::with_capacity(RECENT),
            port,
            accept_near_limit: true,
            merged_runs: true,
        }
    }

    /// Adds a session the world events may move.
    pub fn manage(&mut self, id: u64) {
        self.managed.push(id);
    }

    /// A session change as the controller would write it: `(id, None)` deletes. `None` if this
    /// step changes nothing.
    pub fn world_event(&mut self, model: &Model) -> Option<(u64, Option<Session>)> {
        let rng = &mut self.rng;
        if self.managed.len() < 2 || rng.chance(8) {
            let id = rng.next_u64() | 1;
            self.managed.push(id);
            let session = Session {
                version: 1 + rng.below(3),
                state: SessionState::Attached as u8,
                binding: TransportBinding::from_socket_addr(rng.pick(&self.endpoints.sources)),
                header_key: rng.bytes(16).try_into().expect("16 bytes"),
            };
            return Some((id, Some(session)));
        }
        let index = rng.below(self.managed.len() as u64) as usize;
        let id = self.managed[index];
        let mut s = model.sessions.get(&id).copied()?;
        let new_binding = TransportBinding::from_socket_addr(rng.pick(&self.endpoints.sources));
        match rng.below(100) {
            0..40 => {
                s.version = s.version.saturating_add(1);
                s.state = SessionState::Attached as u8;
                s.binding = new_binding;
            }
            40..60 => {
                s.version = s.version.saturating_add(1);
                s.state = SessionState::Recovering as u8;
            }
            60..80 => {
                s.version = s.version.saturating_add(1);
                s.state = SessionState::Attached as u8;
            }
            80..86 => {
                s.version = s.version.saturating_add(1);
                s.state = SessionState::Terminated as u8;
            }
            86..90 => s.state = 4 + rng.below(252) as u8,
            90..93 => s.state = SessionState::Birth as u8,
            93..95 => s.version = u64::MAX - rng.below(3),
            _ => {
                self.managed.swap_remove(index);
                return Some((id, None));
            }
        }
        Some((id, Some(s)))
    }

    /// The next frame, given the maps as `model` holds them.
    pub fn next(&mut self, model: &Model, bodies: &mut dyn Bodies) -> Generated {
        let roll = self.rng.below(100);
        let (mut udp, kind, intact) = match roll {
            0..15 if !self.history.is_empty() => {
                let i = self.rng.below(self.history.len() as u64) as usize;
                (self.history[i].clone(), "replay", true)
            }
            15..27 => {
                let (mut udp, _) = self.message(model, bodies);
                let flips = 1 + self.rng.below(3);
                for _ in 0..flips {
                    if udp.payload.is_empty() {
                        break;
                    }
                    let at = self.rng.below(udp.payload.len().min(48) as u64) as usize;
                    udp.payload[at] ^= 1 << self.rng.below(8);
                }
                (udp, "mutated header", false)
            }
            27..32 => {
                let (mut udp, _) = self.message(model, bodies);
                let len = self.rng.below(udp.payload.len() as u64 + 1) as usize;
                udp.payload.truncate(len);
                (udp, "truncated datagram", false)
            }
            32..34 => {
                let source = self.rng.pick(&self.endpoints.sources);
                let len = self.rng.below(90) as usize;
                let payload = self.rng.bytes(len);
                (self.udp(source, payload), "random payload", false)
            }
            34..42 => (self.hello(model), "hello", true),
            42..45 if self.merged_runs => {
                // Datagrams laid end to end, as generic XDP sees a GSO packet or a GRO merge:
                // one past the longest datagram up to about two of them.
                let (mut udp, _) = self.message(model, bodies);
                while udp.payload.len() <= MAX_DATAGRAM_LEN {
                    let (next, _) = self.message(model, bodies);
                    udp.payload.extend_from_slice(&next.payload);
                }
                let len = MAX_DATAGRAM_LEN + 1 + self.rng.below(MAX_DATAGRAM_LEN as u64) as usize;
                udp.payload.truncate(len);
                (udp, "merged run", false)
            }
            _ => {
                let (udp, kind) = self.message(model, bodies);
                (udp, kind, true)
            }
        };
        if intact && self.history.len() == HISTORY {
            self.history.pop_front();
        }
        if intact {
            self.history.push_back(udp.clone());
        }
        let plain = !encapsulate(&mut self.rng, &mut udp);
        let mut frame = udp.frame();
        let mut kind = kind;
        // Never below an Ethernet header: no link delivers less (and BPF_PROG_TEST_RUN refuses).
        if self.rng.chance(3) && frame.len() > ETHERNET_HEADER_LEN {
            let len = ETHERNET_HEADER_LEN
                + self.rng.below((frame.len() - ETHERNET_HEADER_LEN) as u64) as usize;
            frame.truncate(len);
            kind = "truncated frame";
        }
        let truncated = kind == "truncated frame";
        Generated {
            frame,
            kind,
            intact: intact && !truncated,
            plain: plain && !truncated,
        }
    }

    /// A datagram from `source` to the gateway (of its family), usually at the jvpn port.
    fn udp(&mut self, source: SocketAddr, payload: Vec<u8>) -> Udp {
        let mut gateway = match source {
            SocketAddr::V4(_) => self.endpoints.gateway_v4,
            SocketAddr::V6(_) => self.endpoints.gateway_v6,
        };
        if self.rng.chance(4) {
            gateway.set_port(self.port.wrapping_add(1 + self.rng.below(3) as u16));
        }
        Udp::new(source, gateway, payload)
    }

    /// A HELLO from the source pool: mostly well formed with mac1 under the model's key, now and
    /// then with a field HELLO must leave at zero, a flipped byte (mac1 no longer verifies), the
    /// wrong key, or the wrong length.
    fn hello(&mut self, model: &Model) -> Udp {
        let seed = self.rng.below(256) as u8;
        let mut payload = match self.rng.chance(10) {
            true => hello_with_key(seed, &[0x5a; 16], None),
            false => hello_with_key(seed, &model.mac1_key, None),
        };
        match self.rng.below(10) {
            0 => {
                let mut header = WireHeader::new(MessageType::Hello, 0, 0, 0);
                match self.rng.below(4) {
                    0 => header.session_id = Be64::new(self.rng.next_u64()),
                    1 => header.state_version = Be64::new(1),
                    2 => header.nonce = Be64::new(1),
                    _ => header.tag = Be64::new(self.rng.next_u64()),
                }
                payload[..header.as_bytes().len()].copy_from_slice(header.as_bytes());
            }
            1 => {
                let at = self.rng.below(payload.len() as u64) as usize;
                payload[at] ^= 1 << self.rng.below(8);
            }
            2 => {
                let len = self.rng.below(payload.len() as u64 + 16) as usize;
                payload.resize(len, 0);
            }
            _ => {}
        }
        let source = self.rng.pick(&self.endpoints.sources);
        self.udp(source, payload)
    }

    /// A message of a session (or of an unknown one), with every field chosen to probe a rule.
    fn message(&mut self, model: &Model, bodies: &mut dyn Bodies) -> (Udp, &'static str) {
        use MessageType::*;
        let rng = &mut self.rng;
        let known: Option<(u64, Session)> = if !self.managed.is_empty() && rng.chance(92) {
            let id = rng.pick(&self.managed);
            model.sessions.get(&id).map(|s| (id, *s))
        } else {
            None
        };
        let (id, session) = match known {
            Some((id, s)) => (id, Some(s)),
            None => (rng.next_u64() | 1, None),
        };
        let (kind, name) = match rng.below(100) {
            0..45 => (Data, "data"),
            45..55 => (Keepalive, "keepalive"),
            55..60 => (RekeyInit, "rekey init"),
            60..70 => (ReattachRequest, "reattach request"),
            70..76 => (PathResponse, "path response"),
            76..80 => (Terminate, "terminate"),
            80..88 => (
                rng.pick(&[Welcome, ReattachAck, Reject, PathChallenge, RekeyAck]),
                "gateway-to-client type",
            ),
            _ => (
                rng.pick(&[Data, Keepalive, Terminate]),
                "reflected gateway message",
            ),
        };
        let reflected = name == "reflected gateway message";
        let current = session.map_or(1, |s| s.version);
        let version = match rng.below(100) {
            0..75 => current,
            75..85 => current.wrapping_sub(1),
            85..95 => current.wrapping_add(1),
            _ => rng.next_u64(),
        };
        let max = model.window_max(id);
        let nonce = if reflected {
            reflected_nonce(rng)
        } else {
            self.nonce(id, max)
        };
        let rng = &mut self.rng;
        let mut header = WireHeader::new(kind, id, version, nonce);
        if rng.chance(3) {
            match rng.below(4) {
                0 => header.version = rng.pick(&[0, 2, 255]),
                1 => header.msg_type = rng.pick(&[0, 1, 11, 200]),
                2 => header.flags = Be16::new(1 << rng.below(16)),
                // Any slot hint, wrong or out of range (a HELLO's is malformed): the hint
                // must never change a verdict, only how the session is found.
                _ => header.slot_hint = Be32::new(rng.next_u64() as u32),
            }
        }
        let own_key = session.map(|s| s.header_key);
        let other_key: [u8; 16] = rng.bytes(16).try_into().expect("16 bytes");
        let key = match rng.below(100) {
            0..88 => own_key.or(Some(other_key)),
            88..96 => Some(other_key),
            _ => None,
        };
        let source = match session {
            Some(s) if rng.chance(80) => s.binding.to_socket_addr(),
            Some(s) if rng.chance(50) => {
                let mut a = s.binding.to_socket_addr();
                a.set_port(a.port() ^ (1 + rng.below(4) as u16));
                a
            }
            _ => rng.pick(&self.endpoints.sources),
        };
        let payload = bodies.datagram(header, key.as_ref(), &mut self.rng);
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back((id, nonce));
        (self.udp(source, payload), name)
    }

    /// A nonce for session `id` whose window's newest is `max`: mostly fresh, else every edge.
    fn nonce(&mut self, id: u64, max: u64) -> u64 {
        let rng = &mut self.rng;
        match rng.below(100) {
            0..55 => max.saturating_add(1 + rng.below(3)),
            55..68 => {
                let mine: Vec<u64> = self
                    .recent
                    .iter()
                    .filter(|(i, _)| *i == id)
                    .map(|(_, n)| *n)
                    .collect();
                match mine.is_empty() {
                    true => max,
                    false => rng.pick(&mine),
                }
            }
            68..76 => max.saturating_sub(rng.below(REPLAY_WINDOW + 1)),
            76..80 => max.saturating_sub(REPLAY_WINDOW + rng.below(2)),
            80..84 => max.saturating_sub(REPLAY_WINDOW + 1 + rng.below(10_000)),
            84..89 => max
                .saturating_add(NONCE_MAX_LEAP)
                .saturating_add(rng.below(3))
                .saturating_sub(1),
            // Rarely at the limit itself: a window that accepted NONCE_LIMIT - 1 refuses every
            // later nonce, and its session is done.
            89..91 if self.accept_near_limit && rng.chance(20) => NONCE_LIMIT - 1 + rng.below(3),
            89..91 => NONCE_LIMIT + rng.below(REPLAY_WINDOW),
            91..96 => rng.next_u64() >> rng.below(64),
            _ => 0,
        }
    }
}
