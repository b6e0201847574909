//! Unit tests of the gateway's handlers, without root and without I/O: the real [`Controller`]
//! driven with datagrams sealed by the real client-side crypto, its [`Effect`]s asserted, and the
//! effects that need the outside world performed by [`Harness::settle`]: compare-and-sets on a
//! real store in a temp dir, map writes on a fake session map ([`FakeMap`], the [`SessionMap`]
//! trait on a `HashMap`).
//!
//! ```text
//!   sealed datagram ──> Controller::handle ──> effects ──┬─ Commit ──> RedbStore (temp dir)
//!   (client keys)        (the real handlers)             │              └─> Controller::settle
//!                                                        │                   ├─> its map write ──> FakeMap
//!                                                        │                   └─> Controller::reply ──> effects
//!                                                        ├─ UpsertMap / Evict ──> FakeMap
//!                                                        └─ Send / WriteTun / Publish ──> asserted
//! ```

mod admission;
mod determinism;
mod paths;
mod recovery;
mod rekeying;
mod reload;
mod replays;
mod takeover;
mod timers;

use super::clock::ControllerClock;
use super::core::{Controller, ControllerParts};
use super::effect::Effect;
use super::session_map::SessionMap;
use crate::config::GatewaySettings;
use crate::crypto::handshake::tai64n;
use crate::crypto::{
    seal_message, ClientHandshake, ClientIdentity, ClientSession, Direction, PresharedKey,
    PrivateKey,
};
use crate::dataplane::{CounterSnapshot, DataplaneError, Origin};
use crate::events::EventRecord;
use crate::session::{SessionMachine, Timers};
use crate::store::{RedbStore, SessionStore};
use jvpn_common::maps::{GatewayConfig, SessionEntry};
use jvpn_common::{MessageType, WireHeader};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The XDP session table as a `HashMap`, refusing what the real one refuses: an older version
/// and a new session beyond its capacity.
struct FakeMap {
    entries: Arc<Mutex<HashMap<u64, SessionEntry>>>,
    config: Mutex<GatewayConfig>,
    capacity: u32,
}

impl SessionMap for FakeMap {
    fn upsert_session(&self, session_id: u64, entry: &SessionEntry) -> Result<u32, DataplaneError> {
        let mut entries = self.entries.lock().unwrap();
        // A slot per session, kept across updates, as the real table's.
        let slot = match entries.get(&session_id) {
            Some(held) => held.replay_slot,
            None => entries
                .values()
                .map(|e| e.replay_slot + 1)
                .max()
                .unwrap_or(0),
        };
        match entries.get(&session_id) {
            Some(held) if held.state_version > entry.state_version => {
                return Err(DataplaneError::StaleUpdate {
                    session_id,
                    current: held.state_version,
                    attempted: entry.state_version,
                })
            }
            None if entries.len() >= self.capacity as usize => {
                return Err(DataplaneError::TableFull {
                    capacity: self.capacity,
                })
            }
            _ => {}
        }
        entries.insert(
            session_id,
            SessionEntry {
                replay_slot: slot,
                ..*entry
            },
        );
        Ok(slot)
    }

    fn remove_session(&self, session_id: u64) -> Result<bool, DataplaneError> {
        Ok(self.entries.lock().unwrap().remove(&session_id).is_some())
    }

    fn highest_nonce(&self, _session_id: u64) -> Result<Option<u64>, DataplaneError> {
        Ok(None)
    }

    fn session_capacity(&self) -> u32 {
        self.capacity
    }

    fn config(&self) -> Result<GatewayConfig, DataplaneError> {
        Ok(*self.config.lock().unwrap())
    }

    fn set_config(&self, config: &GatewayConfig) -> Result<(), DataplaneError> {
        *self.config.lock().unwrap() = *config;
        Ok(())
    }

    fn counters(&self) -> Result<CounterSnapshot, DataplaneError> {
        Ok(CounterSnapshot::default())
    }

    fn origin(&self) -> Origin {
        Origin::Loaded
    }
}

/// The client's tunnel address in [`Harness`]'s config.
const CLIENT_V4: [u8; 4] = [10, 99, 0, 2];
/// The controller time every test starts at.
const T0: u64 = 1_000_000;
/// The client's address in every test.
const CLIENT: &str = "127.0.0.1:40000";
/// Where the client roams to.
const ROAMED: &str = "127.0.0.1:40001";

/// What a step did that leaves the gateway: asserted by the tests.
#[derive(Debug)]
enum Seen {
    /// A datagram sent (or sent without waiting) to an address.
    Sent(SocketAddr, Vec<u8>),
    /// A packet written into the TUN device.
    Tun(Vec<u8>),
    /// An event published.
    Event(EventRecord),
}

/// One controller, one configured client, its store and its fake map.
struct Harness {
    controller: Controller,
    store: Arc<dyn SessionStore>,
    fake: FakeMap,
    map: Arc<Mutex<HashMap<u64, SessionEntry>>>,
    identity: ClientIdentity,
    client_addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Self {
        Self::with(PrivateKey::generate(), PrivateKey::generate(), 7)
    }

    /// A harness whose gateway and client have these keys and whose randomness has this seed.
    fn with(gateway_key: PrivateKey, client_key: PrivateKey, seed: u64) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = format!(
            "private_key = \"{}\"\n[tunnel]\nipv4 = \"10.99.0.1/24\"\n\
             [[client]]\nname = \"alice\"\npublic_key = \"{}\"\nipv4 = \"10.99.0.2\"\n",
            gateway_key.to_base64().as_str(),
            client_key.public_key().to_base64()
        );
        let settings =
            GatewaySettings::parse(&dir.path().join("gateway.toml"), &config).expect("config");
        let store: Arc<dyn SessionStore> = Arc::new(RedbStore::open(dir.path()).expect("store"));
        let map = Arc::new(Mutex::new(HashMap::new()));
        let fake = FakeMap {
            entries: map.clone(),
            config: Mutex::new(GatewayConfig::default()),
            capacity: 16,
        };
        let (controller, _first) = Controller::new(ControllerParts {
            settings,
            machine: SessionMachine::new(Timers::default()),
            epoch: 1,
            capacity: fake.capacity,
            clock: ControllerClock::system(),
            seed: Some(seed),
        });
        Self {
            controller,
            store,
            fake,
            map,
            identity: ClientIdentity {
                private_key: client_key,
                gateway_public_key: gateway_key.public_key(),
                psk: PresharedKey::none(),
            },
            client_addr: CLIENT.parse().expect("addr"),
            _dir: dir,
        }
    }

    /// Hands `datagram` from `from` to [`Controller::handle`] and settles its effects.
    fn step(&self, datagram: &[u8], from: SocketAddr, now: u64) -> Vec<Seen> {
        let mut buf = datagram.to_vec();
        let mut out = Vec::new();
        self.controller.handle(&mut buf, from, now, &mut out);
        self.settle(out, &buf, now)
    }

    /// Performs the effects that need the store or the map (as the executor would, in order),
    /// and returns the others.
    fn settle(&self, effects: Vec<Effect>, datagram: &[u8], now: u64) -> Vec<Seen> {
        let mut queue = VecDeque::from(effects);
        let mut seen = Vec::new();
        while let Some(effect) = queue.pop_front() {
            match effect {
                Effect::Send { to, datagram } | Effect::SendNow { to, datagram } => {
                    seen.push(Seen::Sent(to, datagram))
                }
                Effect::WriteTun { packet } => seen.push(Seen::Tun(datagram[packet].to_vec())),
                Effect::Publish(record) => seen.push(Seen::Event(record)),
                Effect::Commit { request, token } => {
                    let outcome = self.store.compare_and_set(
                        request.session.id,
                        request.expected,
                        &request.session,
                        &request.audit,
                    );
                    // As the executor does: the map write first, then the reply.
                    let settled = self.controller.settle(*token, outcome);
                    if let Some((session, entry)) = settled.map_write() {
                        if let Ok(slot) = self.fake.upsert_session(session, entry) {
                            self.controller.slot_assigned(session, slot);
                        }
                    }
                    let (_, next) = self.controller.reply(settled, now);
                    for effect in next.into_iter().rev() {
                        queue.push_front(effect);
                    }
                }
                Effect::QueueHello(job) => {
                    for effect in self.controller.handshake(job).into_iter().rev() {
                        queue.push_front(effect);
                    }
                }
                Effect::UpsertMap { session, entry } => {
                    if let Ok(slot) = self.fake.upsert_session(session, &entry) {
                        self.controller.slot_assigned(session, slot);
                    }
                }
                Effect::Evict { session } => {
                    if self.fake.remove_session(session).is_ok() {
                        self.controller.evicted(session);
                    }
                }
                Effect::PushHelloGuard { .. } => {}
            }
        }
        seen
    }

    /// A HELLO of `identity`, started now.
    fn hello(identity: &ClientIdentity) -> (ClientHandshake, Vec<u8>) {
        ClientHandshake::start(identity, tai64n(SystemTime::now())).expect("HELLO")
    }

    /// A session of the configured client, born by a real HELLO and WELCOME.
    fn session(&self) -> ClientSession {
        let (mut handshake, hello) = Self::hello(&self.identity);
        let seen = self.step(&hello, self.client_addr, T0);
        let welcome = sent_to(&seen, self.client_addr).pop().expect("a WELCOME");
        handshake.finish(&welcome).expect("the WELCOME opens")
    }

    /// The map entry of session `id`.
    fn entry(&self, id: u64) -> Option<SessionEntry> {
        self.map.lock().unwrap().get(&id).copied()
    }
}

/// The datagrams a step sent to `to`, in order.
fn sent_to(seen: &[Seen], to: SocketAddr) -> Vec<Vec<u8>> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Sent(addr, datagram) if *addr == to => Some(datagram.clone()),
            _ => None,
        })
        .collect()
}

/// The packets a step wrote into the TUN device.
fn tun_packets(seen: &[Seen]) -> Vec<Vec<u8>> {
    seen.iter()
        .filter_map(|s| match s {
            Seen::Tun(packet) => Some(packet.clone()),
            _ => None,
        })
        .collect()
}

/// A client-to-gateway message of `session` at `version` with `nonce`.
fn sealed(
    session: &ClientSession,
    msg_type: MessageType,
    version: u64,
    nonce: u64,
    body: &[u8],
) -> Vec<u8> {
    let id = session.welcome.session_id.get();
    let header = WireHeader::new(msg_type, id, version, nonce);
    seal_message(&session.keys, Direction::ClientToGateway, header, body).expect("seal")
}

/// An IPv4 header (no payload) from `src` to `dst`.
fn ipv4_packet(src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
    let mut p = vec![0u8; 20];
    p[0] = 0x45;
    p[3] = 20;
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p
}
