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
//!
//! Upstream is one of [`Controller::handle`]'s decisions (an [`Effect::WriteTun`]). Downstream
//! is the one batch path that is not a list of effects: [`send_downstream_packets`], in the
//! shell, asks the controller for each packet's route and seal and sends each run with one GSO
//! `sendmsg`; an effect per packet would cost an allocation per packet.

use super::core::Controller;
use super::effect::Effect;
use super::executor::Executor;
use super::GatewayError;
use crate::config::GatewaySettings;
use crate::crypto::{seal_append, Direction};
use crate::datapath::gso::Datagrams;
use crate::datapath::segment::Packets;
use crate::events::{EventKind, EventRecord, EventSource};
use crate::session::{Session, SessionId, CLIENT_KEY_LEN};
use crate::tun::{packet_addresses, ReadBatch, TunDevice};
use jvpn_common::maps::SessionState;
use jvpn_common::{MessageType, WireHeader};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Where one downstream packet goes.
pub(super) struct Route {
    id: u64,
    version: u64,
    to: SocketAddr,
}

impl Controller {
    /// Whether an opened DATA packet of session `id`, whose client holds `client_key`, may enter
    /// the TUN device: its inner source must be one of that client's addresses. A refusal is
    /// counted and reported.
    pub(super) fn admit_upstream(
        &self,
        id: u64,
        client_key: [u8; CLIENT_KEY_LEN],
        packet: &[u8],
        out: &mut Vec<Effect>,
    ) -> bool {
        let counters = &self.counters;
        let source = packet_addresses(packet).map(|(src, _)| src);
        let settings = self.settings.get();
        let client = settings.client(&crate::crypto::PublicKey::from_bytes(client_key));
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
        out.push(Effect::Publish(
            EventRecord::new(EventKind::SecurityEvent, EventSource::Controller)
                .with_session(id)
                .with_detail(detail),
        ));
        false
    }

    /// Seals `packet` as DATA of `route`'s session at the end of `datagrams`; false if the
    /// session is gone or out of nonces (which `seal_for` reports).
    pub(super) fn seal_data_append(
        &self,
        route: &Route,
        packet: &[u8],
        datagrams: &mut Datagrams,
        out: &mut Vec<Effect>,
    ) -> bool {
        let taken = self.sessions.lock().get_mut(&route.id).map(|live| {
            live.downstream.add(packet.len());
            (live.take_nonce(), live.keys.clone())
        });
        let (nonce, keys) = match taken {
            Some((Some(nonce), keys)) => (nonce, keys),
            // Out of nonces: the single-message path reports it (and seals nothing).
            Some((None, _)) => {
                return self
                    .seal_for(route.id, MessageType::Data, route.version, packet, out)
                    .is_some()
            }
            None => return false,
        };
        let header = WireHeader::new(MessageType::Data, route.id, route.version, nonce);
        datagrams
            .push_with(|out| seal_append(&keys, Direction::GatewayToClient, header, packet, out))
            .is_ok()
    }

    /// The attached session that carries traffic to `dst`, with its version and binding.
    pub(super) fn route(&self, dst: IpAddr) -> Option<Route> {
        let key = self.routes.owner(dst)?;
        let cached = self.routes.carrier(&key);
        let table = self.sessions.lock();
        let usable = |s: &Session| {
            s.state == SessionState::Attached && s.client_key == key && self.serves(s.id.get())
        };
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

/// Seals the packets of one TUN read (cut into wire-sized packets) for the sessions that own
/// their destinations, each under its own nonce, and sends them with UDP GSO: one `sendmsg` per
/// run of packets to one binding. The route is looked up once per change of destination (a
/// superpacket's segments share theirs); unroutable packets are dropped and counted. The rare
/// effects of the sealing (a session out of nonces) are performed after the batch.
pub async fn send_downstream_packets(
    exec: &Executor,
    packets: &Packets,
    datagrams: &mut Datagrams,
) {
    let controller = exec.controller();
    let counters = &controller.counters;
    let mut out = Vec::new();
    let mut route: Option<(IpAddr, Route)> = None;
    let mut pending_to: Option<SocketAddr> = None;
    datagrams.clear();
    for packet in packets.iter() {
        let Some((_, dst)) = packet_addresses(packet) else {
            counters.downstream_unroutable();
            continue;
        };
        if route.as_ref().is_none_or(|(to, _)| *to != dst) {
            route = controller.route(dst).map(|found| (dst, found));
        }
        let Some((_, current)) = &route else {
            counters.downstream_unroutable();
            continue;
        };
        if let Some(to) = pending_to.filter(|to| *to != current.to) {
            send_datagrams(exec, datagrams, to).await;
        }
        pending_to = Some(current.to);
        if controller.seal_data_append(current, packet, datagrams, &mut out) {
            counters.downstream(packet.len());
        } else {
            counters.downstream_unroutable();
        }
    }
    if let Some(to) = pending_to {
        send_datagrams(exec, datagrams, to).await;
    }
    if !out.is_empty() {
        exec.execute(out).await;
    }
}

/// Sends the sealed datagrams to `to` and forgets them; a failure is logged (TCP resends).
async fn send_datagrams(exec: &Executor, datagrams: &mut Datagrams, to: SocketAddr) {
    if let Err(e) = datagrams.send(exec.socket(), Some(to)).await {
        tracing::warn!(%to, error = %e, "send failed");
    }
    datagrams.clear();
}

/// Reads packets from the TUN device and sends them downstream until the device fails; the
/// buffers live as long as the loop.
pub async fn run_tun_reader(exec: Arc<Executor>, tun: Arc<TunDevice>) {
    let mut batch = ReadBatch::default();
    let mut datagrams = Datagrams::default();
    loop {
        match tun.recv_packets(&mut batch).await {
            Ok(packets) => send_downstream_packets(&exec, packets, &mut datagrams).await,
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
