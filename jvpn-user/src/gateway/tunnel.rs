//! The gateway's data path: opened DATA packets into the TUN device, and packets the kernel
//! routes into the TUN device back out to the session that owns their destination.
//!
//! Cryptokey routing ([`super::routes`]) as in WireGuard: each client key owns its tunnel
//! addresses. Upstream, a
//! packet is written only if its inner source is one the session's client may use; any other is
//! dropped, counted and reported as a SECURITY_EVENT. Downstream, the inner destination names the
//! client, and the client's newest ATTACHED session carries it, sealed at that session's current
//! version to its *current* binding: after a jump the downstream follows at once. Packets for an
//! address no client owns, or whose client has no attached session, are dropped and counted.

use super::core::Gateway;
use super::GatewayError;
use crate::config::GatewaySettings;
use crate::events::{EventKind, EventRecord, EventSource};
use crate::session::{Session, SessionId};
use crate::tun::{packet_addresses, TunDevice};
use jvpn_common::maps::SessionState;
use jvpn_common::MessageType;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Where one downstream packet goes.
struct Route {
    id: u64,
    version: u64,
    to: SocketAddr,
}

impl Gateway {
    /// Whether an opened DATA packet of session `id` may enter the TUN device: its inner source
    /// must be one of the session's client's addresses. A refusal is counted and reported.
    pub fn admit_upstream(&self, id: u64, packet: &[u8]) -> bool {
        let counters = &self.counters;
        let client_key = self.sessions.lock().get(&id).map(|l| l.session.client_key);
        let source = packet_addresses(packet).map(|(src, _)| src);
        let client = client_key.and_then(|key| {
            self.settings
                .client(&crate::crypto::PublicKey::from_bytes(key))
        });
        let allowed = matches!((client, source), (Some(c), Some(src)) if c.allows_source(src));
        if allowed {
            counters.upstream(packet.len());
            return true;
        }
        counters.upstream_foreign_source();
        let detail = match (client, source) {
            (Some(c), Some(src)) => format!(
                "DATA with inner source {src}, which client {} does not own; dropped",
                c.name
            ),
            (None, _) => "DATA from a session whose client is no longer configured; dropped".into(),
            (_, None) => {
                // Not an IP packet: nothing to route and nothing spoofed; counted only, so a
                // client sending filler does not flood the event stream.
                tracing::debug!(session = %SessionId::show(id), "DATA body is not an IP packet; dropped");
                return false;
            }
        };
        tracing::warn!(session = %SessionId::show(id), %detail, "cryptokey routing refused a packet");
        self.bus.publish(
            EventRecord::new(EventKind::SecurityEvent, EventSource::Controller)
                .with_session(id)
                .with_detail(detail),
        );
        false
    }

    /// Seals a packet read from the TUN device for the session that owns its destination and
    /// sends it to that session's current binding; drops and counts it if there is none.
    pub async fn send_downstream(&self, packet: &[u8]) {
        let counters = &self.counters;
        let Some(route) = packet_addresses(packet).and_then(|(_, dst)| self.route(dst)) else {
            counters.downstream_unroutable();
            return;
        };
        match self.seal_for(route.id, MessageType::Data, route.version, packet) {
            Some(datagram) => {
                self.send(&datagram, route.to).await;
                counters.downstream(packet.len());
            }
            None => counters.downstream_unroutable(),
        }
    }

    /// The attached session that carries traffic to `dst`, with its version and binding.
    fn route(&self, dst: IpAddr) -> Option<Route> {
        let key = self.routes.owner(dst)?;
        let cached = self.routes.carrier(&key);
        let table = self.sessions.lock();
        let usable = |s: &Session| s.state == SessionState::Attached && s.client_key == key;
        let session = match cached.and_then(|id| table.get(&id)).map(|l| &l.session) {
            Some(s) if usable(s) => s,
            _ => {
                let newest = table
                    .values()
                    .map(|l| &l.session)
                    .filter(|s| usable(s))
                    .max_by_key(|s| s.created_at)?;
                self.routes.committed(newest);
                newest
            }
        };
        Some(Route {
            id: session.id.get(),
            version: session.state_version,
            to: session.binding.to_socket_addr(),
        })
    }
}

/// Reads packets from the TUN device and sends each downstream until the device fails.
pub async fn run_tun_reader(gateway: Arc<Gateway>, tun: Arc<TunDevice>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match tun.recv(&mut buf).await {
            Ok(len) => gateway.send_downstream(&buf[..len]).await,
            Err(e) => {
                tracing::error!(error = %e, "the tunnel stopped: cannot read the TUN device");
                return;
            }
        }
    }
}

/// Creates the TUN device with the gateway's tunnel addresses, if the config has a tunnel
/// (called by the composition root).
pub fn open_device(settings: &GatewaySettings) -> Result<Option<Arc<TunDevice>>, GatewayError> {
    let addresses: Vec<ipnet::IpNet> = settings
        .tunnel
        .ipv4
        .map(ipnet::IpNet::V4)
        .into_iter()
        .chain(settings.tunnel.ipv6.map(ipnet::IpNet::V6))
        .collect();
    if addresses.is_empty() {
        return Ok(None);
    }
    let tun = TunDevice::create(&settings.tun, settings.mtu, &addresses)?;
    tracing::info!(
        tun = tun.name(),
        mtu = settings.mtu,
        ?addresses,
        "tunnel device up"
    );
    Ok(Some(Arc::new(tun)))
}
