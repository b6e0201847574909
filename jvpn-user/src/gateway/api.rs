//! What the control socket and the metrics endpoint read from a running gateway: the
//! [`GatewayApi`] over the [`Executor`] and its controller. Reads come from the session cache,
//! the store (audit) and the pinned per-CPU counters; the one mutation, `terminate`, goes through
//! [`Executor::apply`] (the controller's decision, then its commit) like every other.

use super::core::{ApplyError, Controller};
use super::executor::Executor;
use crate::control::{
    ApiError, AuditEntry, DataplaneStats, GatewayApi, PacketCount, ReasonCount, SessionCounts,
    SessionDetail, SessionSummary, StatsReport, StatusReport,
};
use crate::crypto::PublicKey;
use crate::events::EventSubscription;
use crate::session::{Input, Session, SessionId, TerminateCause};
use jvpn_common::maps::SessionState;
use jvpn_common::maps::TransportBinding;
use std::sync::Arc;

/// The gateway as the control socket sees it.
pub struct GatewayHandle(pub Arc<Executor>);

impl GatewayHandle {
    fn controller(&self) -> &Controller {
        self.0.controller()
    }

    fn summary(&self, s: &Session) -> SessionSummary {
        let key = PublicKey::from_bytes(s.client_key);
        let client = self
            .controller()
            .settings
            .client(&key)
            .map_or_else(|| key.to_base64(), |c| c.name.clone());
        let bound = s.state != SessionState::Birth;
        SessionSummary {
            id: s.id.get(),
            state: s.state,
            version: s.state_version,
            peer: bound.then(|| s.binding.to_socket_addr()),
            client,
            created_ms: self.controller().clock.to_wall(s.created_at),
            last_seen_ms: Some(self.controller().clock.to_wall(s.last_rx)),
        }
    }

    fn all_sessions(&self) -> Vec<Session> {
        let mut all: Vec<Session> = self
            .controller()
            .sessions
            .lock()
            .values()
            .map(|l| l.session.clone())
            .collect();
        all.sort_by_key(|s| s.id.get());
        all
    }
}

impl GatewayApi for GatewayHandle {
    fn status(&self) -> StatusReport {
        let mut sessions = SessionCounts::default();
        for s in self.all_sessions() {
            sessions.add(s.state);
        }
        let dataplane = self.0.map();
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            iface: self.0.place.iface.clone(),
            port: self.0.place.port,
            xdp_mode: match dataplane.origin() {
                crate::dataplane::Origin::Loaded => "attached by this run".to_string(),
                crate::dataplane::Origin::Adopted => "adopted from pins".to_string(),
            },
            state_dir: self.0.place.state_dir.display().to_string(),
            uptime_secs: self
                .controller()
                .clock
                .now()
                .saturating_sub(self.controller().started_ms)
                / 1000,
            sessions,
            max_sessions: dataplane.session_capacity(),
            events_lost: self.0.bus.losses(),
        }
    }

    fn sessions(&self) -> Vec<SessionSummary> {
        self.all_sessions()
            .iter()
            .map(|s| self.summary(s))
            .collect()
    }

    fn session(&self, id: u64) -> Option<SessionDetail> {
        let rx_nonce = self
            .0
            .map()
            .highest_nonce(id)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read the replay window");
                None
            })
            .unwrap_or(0);
        let table = self.controller().sessions.lock();
        let live = table.get(&id)?;
        Some(SessionDetail {
            summary: self.summary(&live.session),
            client_key: PublicKey::from_bytes(live.session.client_key).to_base64(),
            last_transition_ms: self.controller().clock.to_wall(live.session.changed_at),
            rx_nonce,
            tx_nonce: live.next_tx_nonce,
            pending_path: {
                let now = self.controller().clock.now();
                live.challenges
                    .iter()
                    .rev()
                    .find(|c| c.expires_at > now)
                    .map(|c| c.addr)
            },
        })
    }

    fn terminate(&self, id: u64) -> Result<SessionSummary, ApiError> {
        let exec = self.0.clone();
        let input = Input::Terminate {
            cause: TerminateCause::Operator,
        };
        let result = tokio::runtime::Handle::current().block_on(async move {
            let now = exec.controller().clock.now();
            exec.apply(id, input, now).await
        });
        match result {
            Ok(super::Applied::Committed(s) | super::Applied::Unchanged(s)) => Ok(self.summary(&s)),
            Err(ApplyError::UnknownSession) => Err(ApiError::UnknownSession { id }),
            Err(ApplyError::Rejected(r)) if r.reason == jvpn_common::RejectReason::Terminated => {
                let version = self
                    .controller()
                    .sessions
                    .snapshot(id)
                    .map_or(0, |(s, _)| s.state_version);
                Err(ApiError::AlreadyTerminated { id, version })
            }
            Err(ApplyError::Conflict { .. }) => Err(ApiError::ConcurrentMutation { id }),
            Err(e) => Err(ApiError::Internal {
                operation: "terminate the session".into(),
                problem: e.to_string(),
            }),
        }
    }

    fn stats(&self) -> StatsReport {
        let snapshot = { self.0.map().counters() };
        let dataplane = match snapshot {
            Ok(c) => {
                let count = |t: crate::dataplane::PacketTotals| PacketCount {
                    packets: t.packets,
                    bytes: t.bytes,
                };
                DataplaneStats {
                    accepted: count(c.accepted()),
                    to_controller: count(c.to_controller()),
                    drops: jvpn_common::RejectReason::ALL
                        .into_iter()
                        .map(|reason| ReasonCount {
                            reason,
                            count: count(c.dropped(reason)),
                        })
                        .collect(),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the dataplane counters");
                DataplaneStats::default()
            }
        };
        StatsReport {
            dataplane,
            controller: self.controller().counters.controller_stats(),
            tunnel: self.controller().counters.tunnel_stats(),
            events_lost: self.0.bus.losses(),
        }
    }

    fn audit(&self, id: u64) -> Result<Vec<AuditEntry>, ApiError> {
        let Some(session_id) = SessionId::new(id) else {
            return Err(ApiError::UnknownSession { id });
        };
        let history = self
            .0
            .store
            .audit(session_id)
            .map_err(|e| ApiError::Internal {
                operation: "read the audit log".into(),
                problem: e.to_string(),
            })?;
        if history.is_empty() {
            return Err(ApiError::UnknownSession { id });
        }
        Ok(history
            .into_iter()
            .map(|c| AuditEntry {
                session: id,
                version: c.to_version,
                from_state: Some(c.from_state),
                to_state: c.to_state,
                time_ms: c.at,
                cause: c.cause.name().to_string(),
                peer: (c.binding != TransportBinding::default())
                    .then(|| c.binding.to_socket_addr()),
            })
            .collect())
    }

    fn subscribe(&self) -> EventSubscription {
        self.0.bus.subscribe()
    }
}
