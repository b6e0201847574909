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
//! is the one batch path that is not a list of effects: [`run_tun_reader`], in the shell, asks
//! the controller for each packet's route and seal, and sends what one read and the reads
//! already queued behind it sealed with one GSO `sendmsg` per run; an effect per packet would
//! cost an allocation per packet.

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
            (live.take_nonce(), live.keys.clone(), live.slot)
        });
        let (nonce, keys, slot) = match taken {
            Some((Some(nonce), keys, slot)) => (nonce, keys, slot),
            // Out of nonces: the single-message path reports it (and seals nothing).
            Some((None, _, _)) => {
                return self
                    .seal_for(route.id, MessageType::Data, route.version, packet, out)
                    .is_some()
            }
            None => return false,
        };
        let mut header = WireHeader::new(MessageType::Data, route.id, route.version, nonce);
        header.set_hinted_slot(slot);
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

/// Most TUN reads sealed before their datagrams are sent: the first read is awaited, the rest
/// are only those already queued (a burst of ACKs, or superpackets that arrived together).
const MAX_READS_PER_SEND: usize = 8;

/// Sealed downstream datagrams not yet sent, with the binding they go to.
#[derive(Default)]
struct Downstream {
    datagrams: Datagrams,
    to: Option<SocketAddr>,
    out: Vec<Effect>,
}

impl Downstream {
    /// Seals the packets of one TUN read (cut into wire-sized packets) for the sessions that own
    /// their destinations, each under its own nonce, after the datagrams held; a change of
    /// binding sends what is held first (one GSO `sendmsg` per run to one binding). The route is
    /// looked up once per change of destination (a superpacket's segments share theirs);
    /// unroutable packets are dropped and counted.
    async fn seal(&mut self, exec: &Executor, packets: &Packets) {
        let controller = exec.controller();
        let counters = &controller.counters;
        let mut route: Option<(IpAddr, Route)> = None;
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
            if self.to.is_some_and(|to| to != current.to) {
                self.send(exec).await;
            }
            self.to = Some(current.to);
            if controller.seal_data_append(current, packet, &mut self.datagrams, &mut self.out) {
                counters.downstream(packet.len());
            } else {
                counters.downstream_unroutable();
            }
        }
    }

    /// Sends what is held, then performs the rare effects of the sealing (a session out of
    /// nonces). A failed send is logged (TCP resends).
    async fn send(&mut self, exec: &Executor) {
        if let Some(to) = self.to.take() {
            if let Err(e) = self.datagrams.send(exec.socket(), Some(to)).await {
                tracing::warn!(%to, error = %e, "send failed");
            }
        }
        self.datagrams.clear();
        if !self.out.is_empty() {
            exec.execute(std::mem::take(&mut self.out)).await;
        }
    }
}

/// Reads packets from the TUN device and sends them downstream until the device fails: each
/// awaited read, and up to [`MAX_READS_PER_SEND`] reads already queued behind it, are sealed
/// and then sent together. The buffers live as long as the loop.
pub async fn run_tun_reader(exec: Arc<Executor>, tun: Arc<TunDevice>) {
    let mut batch = ReadBatch::default();
    let mut downstream = Downstream::default();
    let stopped = |e: crate::tun::TunError| {
        tracing::error!(error = %e, "the tunnel stopped: cannot read the TUN device");
    };
    loop {
        match tun.recv_packets(&mut batch).await {
            Ok(packets) => downstream.seal(&exec, packets).await,
            Err(e) => return stopped(e),
        }
        for _ in 1..MAX_READS_PER_SEND {
            match tun.try_recv_packets(&mut batch) {
                Ok(Some(packets)) => downstream.seal(&exec, packets).await,
                Ok(None) => break,
                Err(e) => {
                    downstream.send(&exec).await;
                    return stopped(e);
                }
            }
        }
        downstream.send(&exec).await;
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
