//! Unit tests of the gateway's handlers, without root: the real [`Gateway`] with a real store in a
//! temp dir, a fake session map ([`FakeMap`], the [`SessionMap`] trait on a `HashMap`) and UDP
//! sockets on the loopback interface standing for the client's addresses.
//!
//! ```text
//!   client (127.0.0.1:A) ──┐                 ┌── Gateway handlers (on_hello, on_traffic, ...)
//!   roamed (127.0.0.1:B) ──┼── loopback UDP ─┤      ├─ RedbStore (temp dir)
//!                          └─────────────────┘      └─ FakeMap (HashMap, version-ordered)
//! ```
//!
//! Each test drives datagrams sealed by the real client-side crypto through the handler a
//! receive loop would call, and reads what the gateway sent back on the client's socket.

mod admission;
mod paths;
mod recovery;

use super::core::{Gateway, GatewayParts};
use super::session_map::SessionMap;
use crate::config::GatewaySettings;
use crate::crypto::handshake::tai64n;
use crate::crypto::{
    seal_message, ClientHandshake, ClientIdentity, ClientSession, Direction, PresharedKey,
    PrivateKey,
};
use crate::dataplane::{CounterSnapshot, DataplaneError, Origin};
use crate::session::{SessionMachine, Timers};
use crate::store::{RedbStore, SessionStore};
use jvpn_common::maps::{GatewayConfig, SessionEntry};
use jvpn_common::{MessageType, WireHeader};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::net::UdpSocket;

/// The XDP session table as a `HashMap`, refusing what the real one refuses: an older version
/// and a new session beyond its capacity.
struct FakeMap {
    entries: Arc<Mutex<HashMap<u64, SessionEntry>>>,
    config: Mutex<GatewayConfig>,
    capacity: u32,
}

impl SessionMap for FakeMap {
    fn upsert_session(&self, session_id: u64, entry: &SessionEntry) -> Result<(), DataplaneError> {
        let mut entries = self.entries.lock().unwrap();
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
        entries.insert(session_id, *entry);
        Ok(())
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

/// One gateway, one configured client, and the client's loopback socket.
struct Harness {
    gateway: Arc<Gateway>,
    map: Arc<Mutex<HashMap<u64, SessionEntry>>>,
    identity: ClientIdentity,
    client: UdpSocket,
    client_addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let gateway_key = PrivateKey::generate();
        let client_key = PrivateKey::generate();
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
        let gateway = Gateway::new(GatewayParts {
            settings,
            machine: SessionMachine::new(Timers::default()),
            store,
            dataplane: Box::new(fake),
            socket: UdpSocket::bind("127.0.0.1:0")
                .await
                .expect("gateway socket"),
            epoch: 1,
            iface: "lo".into(),
            port: 0,
            state_dir: dir.path().to_path_buf(),
        })
        .expect("gateway");
        let client = UdpSocket::bind("127.0.0.1:0").await.expect("client socket");
        let client_addr = client.local_addr().expect("client addr");
        Self {
            gateway: Arc::new(gateway),
            map,
            identity: ClientIdentity {
                private_key: client_key,
                gateway_public_key: gateway_key.public_key(),
                psk: PresharedKey::none(),
            },
            client,
            client_addr,
            _dir: dir,
        }
    }

    /// A HELLO of `identity`, started now.
    fn hello(identity: &ClientIdentity) -> (ClientHandshake, Vec<u8>) {
        ClientHandshake::start(identity, tai64n(SystemTime::now())).expect("HELLO")
    }

    /// A session of the configured client, born by a real HELLO and WELCOME.
    async fn session(&self) -> ClientSession {
        let (mut handshake, hello) = Self::hello(&self.identity);
        self.gateway.on_hello(&hello, self.client_addr, T0).await;
        let welcome = recv(&self.client).await.expect("a WELCOME");
        handshake.finish(&welcome).expect("the WELCOME opens")
    }

    /// The map entry of session `id`.
    fn entry(&self, id: u64) -> Option<SessionEntry> {
        self.map.lock().unwrap().get(&id).copied()
    }
}

/// The next datagram on `socket`, if one comes within a short while.
async fn recv(socket: &UdpSocket) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 2048];
    let (len, _) = tokio::time::timeout(Duration::from_millis(300), socket.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(len);
    Some(buf)
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
