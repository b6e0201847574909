//! Cryptokey routing, as in WireGuard: each client key owns its tunnel addresses (from the
//! config), and the client's newest ATTACHED session carries the traffic to them. Kept on every
//! commit ([`TunnelRoutes::committed`]) and read per packet by the data path
//! ([`super::tunnel`]).

use crate::config::GatewaySettings;
use crate::session::{Session, CLIENT_KEY_LEN};
use jvpn_common::maps::SessionState;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, RwLock};

/// A client's static public key, as the session record holds it.
pub type ClientKey = [u8; CLIENT_KEY_LEN];

/// Which client owns each tunnel address, and which session of each client carries its
/// downstream traffic.
#[derive(Debug, Default)]
pub struct TunnelRoutes {
    /// Tunnel address -> the client key that owns it (from the config; replaced by a reload).
    owners: RwLock<HashMap<IpAddr, ClientKey>>,
    /// Client key -> (session id, created_at) of its newest attached session; kept on commit and
    /// refreshed from the session table when it goes stale (e.g. after a restart's reconcile).
    carriers: Mutex<HashMap<ClientKey, (u64, u64)>>,
}

impl TunnelRoutes {
    /// The routes of the clients in `settings`.
    pub fn new(settings: &GatewaySettings) -> Self {
        Self {
            owners: RwLock::new(owners(settings)),
            carriers: Mutex::default(),
        }
    }

    /// Takes the owners of tunnel addresses from `settings` (a reload); carriers stay.
    pub fn reconfigure(&self, settings: &GatewaySettings) {
        *self.owners.write().unwrap_or_else(|p| p.into_inner()) = owners(settings);
    }

    /// The client key that owns tunnel address `addr`, if any.
    pub fn owner(&self, addr: IpAddr) -> Option<ClientKey> {
        self.owners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&addr)
            .copied()
    }

    /// The session that last carried `client`'s traffic (it may since have left ATTACHED).
    pub fn carrier(&self, client: &ClientKey) -> Option<u64> {
        self.carriers().get(client).map(|&(id, _)| id)
    }

    fn carriers(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, (u64, u64)>> {
        self.carriers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Notes a committed record: an attached session at least as new as its client's carrier
    /// becomes the carrier; a carrier that leaves ATTACHED stops being one.
    pub fn committed(&self, session: &Session) {
        let id = session.id.get();
        let mut carriers = self.carriers();
        let current = carriers.get(&session.client_key).copied();
        if session.state == SessionState::Attached {
            if current.is_none_or(|(cid, created)| cid == id || session.created_at >= created) {
                carriers.insert(session.client_key, (id, session.created_at));
            }
        } else if current.is_some_and(|(cid, _)| cid == id) {
            carriers.remove(&session.client_key);
        }
    }
}

/// Tunnel address -> the client key that owns it, for the clients in `settings`.
fn owners(settings: &GatewaySettings) -> HashMap<IpAddr, ClientKey> {
    let mut owners = HashMap::new();
    for client in settings.clients() {
        let key = *client.public_key.as_bytes();
        if let Some(v4) = client.ipv4 {
            owners.insert(IpAddr::V4(v4), key);
        }
        if let Some(v6) = client.ipv6 {
            owners.insert(IpAddr::V6(v6), key);
        }
    }
    owners
}
