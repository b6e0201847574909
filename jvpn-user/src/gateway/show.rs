//! `jvpn show`: the gateway's clients and their sessions, built from the running config, the
//! session table (state, version, endpoint, bytes each way), the store's audit (the last change
//! of transport) and the XDP program's gateway-wide drop counters.

use super::executor::Executor;
use crate::control::{
    ClientShow, JumpShow, PacketCount, ReasonCount, ReasonTally, SessionShow, ShowReport,
};
use crate::crypto::PublicKey;
use crate::session::StateChange;
use crate::session::{Session, SessionId};
use jvpn_common::maps::{SessionState, TransportBinding};
use jvpn_common::RejectReason;
use std::collections::BTreeMap;

impl Executor {
    /// Every configured client with its sessions, then the unconfigured clients that still have
    /// sessions in the table, and the gateway-wide XDP drops.
    pub fn show_report(&self) -> ShowReport {
        let controller = self.controller();
        let settings = controller.settings.get();
        let mut by_client: BTreeMap<[u8; 32], Vec<SessionShow>> = BTreeMap::new();
        let sessions: Vec<(
            Session,
            crate::control::TrafficCount,
            crate::control::TrafficCount,
        )> = controller
            .sessions
            .lock()
            .values()
            .map(|l| (l.session.clone(), l.upstream, l.downstream))
            .collect();
        for (session, rx, tx) in sessions {
            let shown = SessionShow {
                id: session.id.get(),
                state: session.state,
                version: session.state_version,
                endpoint: (session.state != SessionState::Birth)
                    .then(|| session.binding.to_socket_addr()),
                handshake_ms: controller.clock.to_wall(session.created_at),
                last_seen_ms: controller.clock.to_wall(session.last_rx),
                last_jump: self.last_jump(session.id),
                rx,
                tx,
            };
            by_client.entry(session.client_key).or_default().push(shown);
        }
        for list in by_client.values_mut() {
            list.sort_by_key(|s| (s.handshake_ms, s.id));
        }
        let mut clients: Vec<ClientShow> = settings
            .clients()
            .iter()
            .map(|c| {
                let key = *c.public_key.as_bytes();
                let totals = controller
                    .client_totals
                    .report(&key, &c.name, Default::default());
                ClientShow {
                    name: c.name.clone(),
                    public_key: c.public_key.to_base64(),
                    configured: true,
                    allowed_ips: c.allowed_ips.iter().map(ToString::to_string).collect(),
                    sessions: by_client.remove(&key).unwrap_or_default(),
                    refusals: ReasonTally::all(&totals.refusals),
                    dataplane_drops: ReasonTally::all(&totals.dataplane_drops),
                }
            })
            .collect();
        clients.extend(by_client.into_iter().map(|(key, sessions)| {
            let key = PublicKey::from_bytes(key).to_base64();
            ClientShow {
                name: key.clone(),
                public_key: key,
                configured: false,
                allowed_ips: Vec::new(),
                sessions,
                refusals: Vec::new(),
                dataplane_drops: Vec::new(),
            }
        }));
        ShowReport {
            public_key: settings.public_key().to_base64(),
            iface: self.place.iface.clone(),
            port: self.place.port,
            clients,
            drops: self.xdp_drops(),
        }
    }

    /// The session's last change of transport, from its audit: the newest commit whose binding
    /// differs from the one before it. A store failure is logged and shows no jump.
    fn last_jump(&self, id: SessionId) -> Option<JumpShow> {
        let history = self
            .store
            .audit(id)
            .map_err(|error| tracing::warn!(session = %id, %error, "cannot read the audit for `jvpn show`"))
            .ok()?;
        last_jump(&history)
    }

    /// The XDP program's drops by reason, summed over CPUs; only reasons with drops.
    fn xdp_drops(&self) -> Vec<ReasonCount> {
        let counters = self.map().counters();
        match counters {
            Ok(c) => RejectReason::ALL
                .into_iter()
                .map(|reason| {
                    let t = c.dropped(reason);
                    ReasonCount {
                        reason,
                        count: PacketCount {
                            packets: t.packets,
                            bytes: t.bytes,
                        },
                    }
                })
                .filter(|r| r.count.packets > 0)
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "cannot read the dataplane counters for `jvpn show`");
                Vec::new()
            }
        }
    }
}

/// The newest change of transport in `history` (oldest first): a commit whose binding is set
/// and differs from the previous commit's set binding.
fn last_jump(history: &[StateChange]) -> Option<JumpShow> {
    let unbound = TransportBinding::default();
    history
        .windows(2)
        .rev()
        .find(|w| {
            w[0].binding != unbound && w[1].binding != unbound && w[0].binding != w[1].binding
        })
        .map(|w| JumpShow {
            at_ms: w[1].at,
            from: w[0].binding.to_socket_addr(),
            to: w[1].binding.to_socket_addr(),
            version: w[1].to_version,
        })
}
