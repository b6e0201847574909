//! A stand-in gateway for the operator-surface tests: a small in-memory implementation of
//! `GatewayApi` with a real `EventBus` and `Counters`, served on a real Unix socket in a temp dir.
//!
//! It is a fixture for the control protocol, not a model of the daemon: sessions live in a map,
//! terminating one bumps its version, records the audit entry and publishes the STATE_CHANGE.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the fixture"
)]

use jvpn_common::{DropCounter, RejectReason, SessionState};
use jvpn_user::control::{
    bind_control_socket, server, ApiError, AuditEntry, ClientShow, ControllerStats, DataplaneStats,
    GatewayApi, JumpShow, PacketCount, ReasonCount, ReasonTally, ReloadReport, SessionCounts,
    SessionDetail, SessionShow, SessionSummary, ShowReport, StatsReport, StatusReport,
    TrafficCount, TunnelStats,
};
use jvpn_user::events::{EventBus, EventRecord, EventSubscription};
use jvpn_user::gateway::counters::Counters;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Fixed wall-clock time of every fixture record, so outputs are reproducible.
pub const T0_MS: u64 = 1_700_000_000_000;

/// The in-memory gateway.
pub struct FixtureGateway {
    pub bus: EventBus,
    pub metrics: Arc<Counters>,
    sessions: Mutex<BTreeMap<u64, SessionSummary>>,
    audit: Mutex<BTreeMap<u64, Vec<AuditEntry>>>,
}

impl FixtureGateway {
    /// A gateway whose event subscribers may lag `capacity` records and which keeps `history`.
    pub fn new(capacity: usize, history: usize) -> Arc<Self> {
        Arc::new(Self {
            bus: EventBus::new(capacity, history),
            metrics: Arc::default(),
            sessions: Mutex::default(),
            audit: Mutex::default(),
        })
    }

    fn commit(
        &self,
        id: u64,
        from: Option<SessionState>,
        to: SessionState,
        version: u64,
        cause: &str,
    ) {
        let peer = self.sessions.lock().unwrap().get(&id).and_then(|s| s.peer);
        self.audit
            .lock()
            .unwrap()
            .entry(id)
            .or_default()
            .push(AuditEntry {
                session: id,
                version,
                from_state: from,
                to_state: to,
                time_ms: T0_MS,
                cause: cause.to_string(),
                peer,
            });
        self.metrics.transition(from, to);
        let from = from.map(|s| (s, version - 1));
        self.bus
            .publish_at(EventRecord::state_change(id, from, (to, version)), T0_MS);
    }

    /// A session born (version 0) and attached (version 1) from `peer`.
    pub fn add_session(&self, id: u64, peer: SocketAddr) {
        self.sessions.lock().unwrap().insert(
            id,
            SessionSummary {
                id,
                state: SessionState::Attached,
                version: 1,
                peer: Some(peer),
                client: "alice".to_string(),
                created_ms: T0_MS,
                last_seen_ms: Some(T0_MS),
            },
        );
        self.commit(id, None, SessionState::Birth, 0, "HANDSHAKE");
        self.commit(
            id,
            Some(SessionState::Birth),
            SessionState::Attached,
            1,
            "HANDSHAKE",
        );
    }
}

/// Per-CPU counter values as the dataplane would read them: two CPUs, slot 0 accepted,
/// a few drops, slot 31 to the controller.
pub fn per_cpu_counters() -> Vec<(u32, Vec<DropCounter>)> {
    let c = |packets, bytes| DropCounter { packets, bytes };
    vec![
        (0, vec![c(10, 1000), c(5, 500)]),
        (
            RejectReason::BadTag.counter_slot(),
            vec![c(3, 300), c(4, 400)],
        ),
        (
            RejectReason::DuplicateNonce.counter_slot(),
            vec![c(0, 0), c(2, 164)],
        ),
        (31, vec![c(1, 90), c(1, 90)]),
    ]
}

impl GatewayApi for FixtureGateway {
    fn status(&self) -> StatusReport {
        let mut counts = SessionCounts::default();
        for s in self.sessions.lock().unwrap().values() {
            counts.add(s.state);
        }
        StatusReport {
            version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            iface: "veth-fixture".to_string(),
            port: 51900,
            xdp_mode: "driver".to_string(),
            state_dir: "/var/lib/jvpn".to_string(),
            uptime_secs: 3723,
            sessions: counts,
            max_sessions: 1024,
            events_lost: self.bus.losses(),
        }
    }

    fn sessions(&self) -> Vec<SessionSummary> {
        self.sessions.lock().unwrap().values().cloned().collect()
    }

    fn session(&self, id: u64) -> Option<SessionDetail> {
        let summary = self.sessions.lock().unwrap().get(&id).cloned()?;
        Some(SessionDetail {
            summary,
            client_key: "AAAA".to_string(),
            last_transition_ms: T0_MS,
            rx_nonce: 7,
            tx_nonce: 9,
            pending_path: None,
        })
    }

    fn terminate(&self, id: u64) -> Result<SessionSummary, ApiError> {
        let (from, version) = {
            let mut sessions = self.sessions.lock().unwrap();
            let s = sessions
                .get_mut(&id)
                .ok_or(ApiError::UnknownSession { id })?;
            if s.state == SessionState::Terminated {
                return Err(ApiError::AlreadyTerminated {
                    id,
                    version: s.version,
                });
            }
            let from = s.state;
            s.state = SessionState::Terminated;
            s.version += 1;
            (from, s.version)
        };
        self.commit(
            id,
            Some(from),
            SessionState::Terminated,
            version,
            "OPERATOR",
        );
        Ok(self.sessions.lock().unwrap()[&id].clone())
    }

    fn stats(&self) -> StatsReport {
        let counters = per_cpu_counters();
        StatsReport {
            dataplane: DataplaneStats::from_per_cpu(
                counters.iter().map(|(slot, v)| (*slot, v.as_slice())),
            ),
            controller: ControllerStats {
                seal_failures: 3,
                ..self.metrics.controller_stats()
            },
            tunnel: TunnelStats {
                upstream: PacketCount {
                    packets: 11,
                    bytes: 1100,
                },
                upstream_foreign_source: 2,
                downstream: PacketCount {
                    packets: 12,
                    bytes: 1200,
                },
                downstream_unroutable: 1,
            },
            events_lost: self.bus.losses(),
        }
    }

    fn audit(&self, id: u64) -> Result<Vec<AuditEntry>, ApiError> {
        self.audit
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .ok_or(ApiError::UnknownSession { id })
    }

    fn subscribe(&self) -> EventSubscription {
        self.bus.subscribe()
    }

    fn show(&self) -> ShowReport {
        let sessions = self
            .sessions
            .lock()
            .unwrap()
            .values()
            .map(|s| SessionShow {
                id: s.id,
                state: s.state,
                version: s.version,
                endpoint: s.peer,
                handshake_ms: T0_MS,
                last_seen_ms: T0_MS + 5_000,
                last_jump: Some(JumpShow {
                    at_ms: T0_MS + 1_000,
                    from: "198.51.100.7:39999".parse().expect("address"),
                    to: s
                        .peer
                        .unwrap_or_else(|| "198.51.100.7:40000".parse().expect("address")),
                    version: s.version,
                }),
                rx: TrafficCount {
                    packets: 3,
                    bytes: 300,
                },
                tx: TrafficCount {
                    packets: 4,
                    bytes: 400,
                },
            })
            .collect();
        ShowReport {
            public_key: "GATEWAYKEY=".to_string(),
            iface: "veth-fixture".to_string(),
            port: 51900,
            clients: vec![ClientShow {
                name: "laptop".to_string(),
                public_key: "LAPTOPKEY=".to_string(),
                configured: true,
                allowed_ips: vec!["10.99.0.2/32".to_string()],
                sessions,
                refusals: vec![ReasonTally {
                    reason: RejectReason::StaleVersion,
                    count: 2,
                }],
                dataplane_drops: Vec::new(),
            }],
            drops: vec![ReasonCount {
                reason: RejectReason::BadTag,
                count: PacketCount {
                    packets: 7,
                    bytes: 700,
                },
            }],
        }
    }

    fn client_metrics(&self) -> Vec<jvpn_user::control::ClientMetrics> {
        Vec::new()
    }

    fn reload(&self) -> Result<ReloadReport, ApiError> {
        Err(ApiError::ReloadRefused {
            problem: "/etc/jvpn/gateway.toml:3:8: invalid type; fix it and reload again (nothing was changed)".to_string(),
        })
    }
}

/// A control server running on a socket in a temp dir.
pub struct RunningServer {
    pub socket: PathBuf,
    pub stop: Option<oneshot::Sender<()>>,
    pub task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl RunningServer {
    /// Fires the shutdown signal and waits for the server to end.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.expect("server task panicked");
    }
}

/// Binds a socket in a fresh temp dir and serves `api` on it. Must run inside a tokio runtime.
pub fn serve(api: Arc<dyn GatewayApi>) -> RunningServer {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket = dir.path().join("run/gw0.sock");
    let (listener, guard) = bind_control_socket(&socket).expect("bind control socket");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        server::run(listener, api, async {
            let _ = stopped.await;
        })
        .await;
        drop(guard);
    });
    RunningServer {
        socket,
        stop: Some(stop),
        task,
        _dir: dir,
    }
}
