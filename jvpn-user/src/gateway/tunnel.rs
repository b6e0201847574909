//! The gateway's data path: opened DATA packets into the TUN device, and packets the kernel
//! routes into the TUN device back out to the session that owns their destination.
//!
//! Cryptokey routing as in WireGuard: each client key owns its tunnel addresses. Upstream, a
//! packet is written only if its inner source is one the session's client may use; any other is
//! dropped, counted and reported as a SECURITY_EVENT. Downstream, the inner destination names the
//! client, and the client's newest ATTACHED session carries it, sealed at that session's current
//! version to its *current* binding: after a jump the downstream follows at once. Packets for an
//! address no client owns, or whose client has no attached session, are dropped and counted.

use super::core::Gateway;
use crate::config::GatewaySettings;
use crate::crypto::{seal_append, Direction};
use crate::datapath::gso::Datagrams;
use crate::datapath::segment::Packets;
use crate::events::{EventKind, EventRecord, EventSource};
use crate::session::{Session, CLIENT_KEY_LEN};
use crate::tun::{packet_addresses, ReadBatch, TunDevice};
use jvpn_common::maps::SessionState;
use jvpn_common::{MessageType, WireHeader};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

type ClientKey = [u8; CLIENT_KEY_LEN];

/// Counters of the tunnel's per-packet decisions.
#[derive(Debug, Default)]
pub struct TunnelCounters {
    /// Opened DATA packets written to the TUN device, and their bytes.
    pub upstream_written: AtomicU64,
    /// Bytes of [`Self::upstream_written`].
    pub upstream_bytes: AtomicU64,
    /// Opened DATA packets dropped: their inner source is not their client's, or they are not
    /// IP packets.
    pub upstream_foreign_source: AtomicU64,
    /// Packets from the TUN device sealed and sent to a session.
    pub downstream_sent: AtomicU64,
    /// Bytes of [`Self::downstream_sent`] (the inner packets).
    pub downstream_bytes: AtomicU64,
    /// Packets from the TUN device dropped: no client owns the destination, or it has no
    /// attached session.
    pub downstream_unroutable: AtomicU64,
}

impl TunnelCounters {
    /// The counters as `jvpn stats` reports them.
    pub fn snapshot(&self) -> crate::control::TunnelCounters {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        crate::control::TunnelCounters {
            upstream: crate::control::PacketCount {
                packets: load(&self.upstream_written),
                bytes: load(&self.upstream_bytes),
            },
            upstream_foreign_source: load(&self.upstream_foreign_source),
            downstream: crate::control::PacketCount {
                packets: load(&self.downstream_sent),
                bytes: load(&self.downstream_bytes),
            },
            downstream_unroutable: load(&self.downstream_unroutable),
        }
    }
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

fn add(counter: &AtomicU64, bytes: usize) {
    counter.fetch_add(bytes as u64, Ordering::Relaxed);
}

/// Which client owns each tunnel address, and which session of each client carries its
/// downstream traffic.
#[derive(Debug, Default)]
pub struct TunnelRoutes {
    /// Tunnel address -> the client key that owns it (from the config; fixed for this run).
    owners: HashMap<IpAddr, ClientKey>,
    /// Client key -> (session id, created_at) of its newest attached session; kept on commit and
    /// refreshed from the session table when it goes stale (e.g. after a restart's reconcile).
    carriers: Mutex<HashMap<ClientKey, (u64, u64)>>,
    /// The per-packet counters.
    pub counters: TunnelCounters,
}

impl TunnelRoutes {
    /// The routes of the clients in `settings`.
    pub fn new(settings: &GatewaySettings) -> Self {
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
        Self {
            owners,
            carriers: Mutex::default(),
            counters: TunnelCounters::default(),
        }
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
        let counters = &self.routes.counters;
        let client_key = self.sessions.lock().get(&id).map(|l| l.session.client_key);
        let source = packet_addresses(packet).map(|(src, _)| src);
        let client = client_key.and_then(|key| {
            self.settings
                .client(&crate::crypto::PublicKey::from_bytes(key))
        });
        let allowed = matches!((client, source), (Some(c), Some(src)) if c.allows_source(src));
        if allowed {
            bump(&counters.upstream_written);
            add(&counters.upstream_bytes, packet.len());
            return true;
        }
        bump(&counters.upstream_foreign_source);
        let detail = match (client, source) {
            (Some(c), Some(src)) => format!(
                "DATA with inner source {src}, which client {} does not own; dropped",
                c.name
            ),
            (None, _) => "DATA from a session whose client is no longer configured; dropped".into(),
            (_, None) => {
                // Not an IP packet: nothing to route and nothing spoofed; counted only, so a
                // client sending filler does not flood the event stream.
                tracing::debug!(session = %format_args!("{id:016x}"), "DATA body is not an IP packet; dropped");
                return false;
            }
        };
        tracing::warn!(session = %format_args!("{id:016x}"), %detail, "cryptokey routing refused a packet");
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
        let counters = &self.routes.counters;
        let Some(route) = packet_addresses(packet).and_then(|(_, dst)| self.route(dst)) else {
            bump(&counters.downstream_unroutable);
            return;
        };
        match self.seal_for(route.id, MessageType::Data, route.version, packet) {
            Some(datagram) => {
                self.send(&datagram, route.to).await;
                bump(&counters.downstream_sent);
                add(&counters.downstream_bytes, packet.len());
            }
            None => bump(&counters.downstream_unroutable),
        }
    }

    /// Seals the packets of one TUN read (cut into wire-sized packets) for the sessions that own
    /// their destinations, each under its own nonce, and sends them with UDP GSO: one `sendmsg`
    /// per run of packets to one binding. The route is looked up once per change of destination
    /// (a superpacket's segments share theirs); unroutable packets are dropped and counted.
    pub async fn send_downstream_packets(&self, packets: &Packets, datagrams: &mut Datagrams) {
        let counters = &self.routes.counters;
        let mut route: Option<(IpAddr, Route)> = None;
        let mut pending_to: Option<SocketAddr> = None;
        datagrams.clear();
        for packet in packets.iter() {
            let Some((_, dst)) = packet_addresses(packet) else {
                bump(&counters.downstream_unroutable);
                continue;
            };
            if route.as_ref().is_none_or(|(to, _)| *to != dst) {
                route = self.route(dst).map(|found| (dst, found));
            }
            let Some((_, current)) = &route else {
                bump(&counters.downstream_unroutable);
                continue;
            };
            if let Some(to) = pending_to.filter(|to| *to != current.to) {
                self.send_datagrams(datagrams, to).await;
            }
            pending_to = Some(current.to);
            if self.seal_data_append(current, packet, datagrams) {
                bump(&counters.downstream_sent);
                add(&counters.downstream_bytes, packet.len());
            } else {
                bump(&counters.downstream_unroutable);
            }
        }
        if let Some(to) = pending_to {
            self.send_datagrams(datagrams, to).await;
        }
    }

    /// Seals `packet` as DATA of `route`'s session at the end of `datagrams`; false if the
    /// session is gone or out of nonces (which [`Gateway::seal_for`] reports).
    fn seal_data_append(&self, route: &Route, packet: &[u8], datagrams: &mut Datagrams) -> bool {
        let taken = self
            .sessions
            .lock()
            .get_mut(&route.id)
            .map(|live| (live.take_nonce(), live.keys.clone()));
        let (nonce, keys) = match taken {
            Some((Some(nonce), keys)) => (nonce, keys),
            // Out of nonces: the single-message path reports it (and seals nothing).
            Some((None, _)) => {
                return self
                    .seal_for(route.id, MessageType::Data, route.version, packet)
                    .is_some()
            }
            None => return false,
        };
        let header = WireHeader::new(MessageType::Data, route.id, route.version, nonce);
        datagrams
            .push_with(|out| seal_append(&keys, Direction::GatewayToClient, header, packet, out))
            .is_ok()
    }

    /// Sends the sealed datagrams to `to` and forgets them; a failure is logged (TCP resends).
    async fn send_datagrams(&self, datagrams: &mut Datagrams, to: SocketAddr) {
        if let Err(e) = datagrams.send(&self.socket, Some(to)).await {
            tracing::warn!(%to, error = %e, "send failed");
        }
        datagrams.clear();
    }

    /// The attached session that carries traffic to `dst`, with its version and binding.
    fn route(&self, dst: IpAddr) -> Option<Route> {
        let key = *self.routes.owners.get(&dst)?;
        let cached = self.routes.carriers().get(&key).map(|&(id, _)| id);
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

/// Reads packets from the TUN device and sends them downstream until the device fails; the
/// buffers live as long as the loop.
pub async fn run_tun_reader(gateway: Arc<Gateway>, tun: Arc<TunDevice>) {
    let mut batch = ReadBatch::default();
    let mut datagrams = Datagrams::default();
    loop {
        match tun.recv_packets(&mut batch).await {
            Ok(packets) => {
                gateway
                    .send_downstream_packets(packets, &mut datagrams)
                    .await
            }
            Err(e) => {
                tracing::error!(error = %e, "the tunnel stopped: cannot read the TUN device");
                return;
            }
        }
    }
}
