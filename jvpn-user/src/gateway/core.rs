//! The gateway core: the one path by which a session changes.
//!
//! [`Gateway::apply`] runs an input through the pure state machine, commits the result by
//! compare-and-set (with its STATE_CHANGE audit records, through the group committer), then, and
//! only then, installs it in the cache, pushes it into the XDP session table, and publishes and
//! logs its events. A refusal publishes its SECURITY_EVENT or POLICY_EVENT and changes nothing.

use super::counters::{Count, Counters};
use super::fault;
use super::live::SessionTable;
use super::session_map::SessionMap;
use crate::config::GatewaySettings;
use crate::crypto::SessionKeys;
use crate::dataplane::DataplaneError;
use crate::events::{EventBus, EventRecord};
use crate::session::{Input, Millis, Reject, Session, SessionEvent, SessionMachine, Transition};
use crate::store::{CasOutcome, CasRequest, Expected, GroupCommitter, SessionStore, StoreError};
use jvpn_common::maps::TransportBinding;
use jvpn_common::RejectReason;
use std::sync::{Arc, Mutex};
use tokio::net::UdpSocket;

/// What an accepted input did.
#[derive(Debug)]
pub enum Applied {
    /// A version increment was committed; the session after it.
    Committed(Session),
    /// Telemetry only: no version change.
    Unchanged(Session),
}

/// Why an input was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The state machine refused it (its event is already published).
    #[error("refused: {}", .0.reason.name())]
    Rejected(Reject),
    /// The compare-and-set lost to a concurrent mutation (its event is already published).
    #[error("the compare-and-set lost to a concurrent mutation; the session is now at version {current}")]
    Conflict {
        /// The version the store holds now.
        current: u64,
    },
    /// No such live session.
    #[error("no such session")]
    UnknownSession,
    /// A new session's id was issued before; draw another.
    #[error("the session id was issued before")]
    IdAlreadyIssued,
    /// The store failed: nothing was committed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ApplyError {
    /// The reason to send in a REJECT, if this refusal deserves one.
    pub fn reason(&self) -> Option<RejectReason> {
        match self {
            Self::Rejected(r) => Some(r.reason),
            Self::Conflict { .. } => Some(RejectReason::ConcurrentMutation),
            Self::UnknownSession => Some(RejectReason::UnknownSession),
            Self::Store(e) => e.reject_reason(),
            Self::IdAlreadyIssued => None,
        }
    }
}

/// The shared state of a running gateway.
pub struct Gateway {
    /// The pure state machine and its timers.
    pub machine: SessionMachine,
    /// The authoritative store.
    pub store: Arc<dyn SessionStore>,
    /// Batches concurrent compare-and-sets into durable group commits.
    pub committer: GroupCommitter,
    /// The XDP maps. Locked for every write so updates land in version order.
    pub dataplane: Mutex<Box<dyn SessionMap>>,
    /// Live sessions.
    pub sessions: SessionTable,
    /// The ordered event stream.
    pub bus: EventBus,
    /// Every counter `jvpn stats` and the metrics read ([`super::counters`]).
    pub counters: Arc<Counters>,
    /// This run's boot epoch (high bits of gateway-to-client nonces).
    pub epoch: u64,
    /// The validated gateway configuration (keys, clients, timeouts).
    pub settings: GatewaySettings,
    /// The UDP socket every jvpn message arrives on and leaves from.
    pub socket: Arc<UdpSocket>,
    /// The newest HELLO timestamp accepted or reserved per client key (WireGuard's replay check,
    /// made atomic) and the per-client session cap.
    pub hellos: Arc<super::hello_replay::HelloReplay>,
    /// The mac1 key, the cookie secrets and the load flag.
    pub hello_guard: super::hello_guard::HelloGuard,
    /// The interface the dataplane is attached to.
    pub iface: String,
    /// The UDP port.
    pub port: u16,
    /// Where the store lives.
    pub state_dir: std::path::PathBuf,
    /// When this run started, on [`Self::clock`].
    pub started_ms: Millis,
    /// The monotonic clock every timer and the state machine read ([`super::clock`]).
    pub clock: super::clock::ControllerClock,
    /// Cryptokey routing: which client owns each tunnel address, which session carries it.
    pub routes: super::routes::TunnelRoutes,
    /// In a cluster: whether this node may serve, and its unfinished takeovers
    /// ([`super::ownership`]).
    pub ownership: super::ownership::Ownership,
}

/// What a [`Gateway`] is assembled from.
pub struct GatewayParts {
    /// The validated configuration.
    pub settings: GatewaySettings,
    /// The state machine's timers.
    pub machine: SessionMachine,
    /// The authoritative store.
    pub store: Arc<dyn SessionStore>,
    /// The XDP maps: the loaded or adopted dataplane, or a test's fake.
    pub dataplane: Box<dyn SessionMap>,
    /// The bound UDP socket.
    pub socket: UdpSocket,
    /// This run's boot epoch.
    pub epoch: u64,
    /// The dataplane's interface.
    pub iface: String,
    /// The UDP port.
    pub port: u16,
    /// Where the store lives.
    pub state_dir: std::path::PathBuf,
}

impl Gateway {
    /// Assembles a gateway and starts its group committer; call [`Gateway::reconcile`] next.
    pub fn new(parts: GatewayParts) -> std::io::Result<Self> {
        let committer =
            GroupCommitter::spawn(parts.store.clone(), GroupCommitter::DEFAULT_MAX_BATCH)?;
        let routes = super::routes::TunnelRoutes::new(&parts.settings);
        let clock = super::clock::ControllerClock::system();
        let hello_guard =
            super::hello_guard::HelloGuard::new(parts.settings.public_key(), clock.now());
        let gateway = Self {
            machine: parts.machine,
            store: parts.store,
            committer,
            dataplane: Mutex::new(parts.dataplane),
            sessions: SessionTable::default(),
            bus: EventBus::default(),
            counters: Arc::default(),
            epoch: parts.epoch,
            settings: parts.settings,
            socket: Arc::new(parts.socket),
            hellos: Arc::default(),
            hello_guard,
            iface: parts.iface,
            port: parts.port,
            state_dir: parts.state_dir,
            started_ms: clock.now(),
            clock,
            routes,
            ownership: Default::default(),
        };
        gateway.push_hello_guard(gateway.clock.now());
        Ok(gateway)
    }

    /// Writes the HELLO guard (mac1 key, cookie secrets, load flag) into the XDP config map,
    /// keeping the rest of the entry. A failure is logged: the map keeps the previous guard.
    pub fn push_hello_guard(&self, now: Millis) {
        let dataplane = self.dataplane.lock().unwrap_or_else(|p| p.into_inner());
        let result = dataplane.config().and_then(|mut config| {
            config.handshake = self.hello_guard.config(config.handshake, now);
            dataplane.set_config(&config)
        });
        match result {
            Ok(()) => self.hello_guard.pushed(now),
            Err(error) => {
                self.counters.count(Count::MapFailure);
                tracing::error!(%error, "cannot write the HELLO guard into the XDP config map");
            }
        }
    }

    /// Runs `input` through the machine for session `id` and commits the result.
    pub async fn apply(&self, id: u64, input: Input, now: Millis) -> Result<Applied, ApplyError> {
        let (current, keys) = self
            .sessions
            .snapshot(id)
            .ok_or(ApplyError::UnknownSession)?;
        match self.machine.transition(&current, &input, now) {
            Err(reject) => {
                self.counters.reject(reject.reason);
                self.publish(&reject.event);
                Err(ApplyError::Rejected(reject))
            }
            Ok(t) if t.session.state_version == current.state_version => {
                self.sessions.telemetry(&t.session);
                Ok(Applied::Unchanged(t.session))
            }
            Ok(t) => {
                self.commit(Expected::Version(current.state_version), t, keys)
                    .await
            }
        }
    }

    /// Commits `t` by compare-and-set against `expected`, then installs, pushes and reports it.
    pub async fn commit(
        &self,
        expected: Expected,
        t: Transition,
        keys: Arc<SessionKeys>,
    ) -> Result<Applied, ApplyError> {
        // The audit keeps wall-clock time; the record keeps the controller's clock.
        let mut audit = t.state_changes();
        for change in &mut audit {
            change.at = self.clock.to_wall(change.at);
        }
        let request = CasRequest::new(expected, t.session.clone(), audit);
        match self.committer.submit(request).outcome().await? {
            CasOutcome::Committed => {
                let committed_at = std::time::Instant::now();
                let cause = t
                    .events
                    .iter()
                    .find_map(SessionEvent::as_state_change)
                    .map_or("", |c| c.cause.name());
                fault::point(fault::AFTER_CAS, cause);
                for change in t.events.iter().filter_map(SessionEvent::as_state_change) {
                    self.counters
                        .transition(Some(change.from_state), change.to_state);
                }
                self.sessions.install(
                    t.session.clone(),
                    keys,
                    super::epoch::first_nonce(self.epoch),
                );
                self.push_map(&t.session);
                self.routes.committed(&t.session);
                self.counters.commit_to_map.record(committed_at.elapsed());
                for event in &t.events {
                    self.publish(event);
                }
                Ok(Applied::Committed(t.session))
            }
            CasOutcome::Conflict { current } => {
                self.counters.cas_conflict();
                let now_version = current.as_ref().map_or(0, |s| s.state_version);
                if let Some(stored) = current {
                    let keys = self
                        .sessions
                        .snapshot(stored.id.get())
                        .map(|(_, k)| k)
                        .unwrap_or(keys);
                    // In a cluster the winner may be another node ([`super::ownership`]).
                    self.install_conflicted(stored, keys);
                }
                tracing::warn!(
                    session = %t.session.id,
                    expected = ?expected,
                    current = now_version,
                    "compare-and-set lost to a concurrent mutation"
                );
                self.bus.publish(
                    EventRecord::refusal(
                        Some(t.session.id.get()),
                        RejectReason::ConcurrentMutation,
                    )
                    .with_session_version(now_version)
                    .with_detail(format!(
                        "expected version {expected:?}, the store holds {now_version}"
                    )),
                );
                Err(ApplyError::Conflict {
                    current: now_version,
                })
            }
            CasOutcome::IdAlreadyIssued => Err(ApplyError::IdAlreadyIssued),
        }
    }

    /// Writes `session` into the XDP session table; an older version never overwrites a newer
    /// one. A failure leaves the store ahead of the map: the XDP program then refuses the
    /// session's traffic (fail closed) until the next start reconciles the map from the store.
    pub fn push_map(&self, session: &Session) {
        let dataplane = self
            .dataplane
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match dataplane.upsert_session(session.id.get(), &session.map_entry()) {
            Ok(()) => {}
            Err(DataplaneError::StaleUpdate { .. }) => {}
            Err(e) => {
                self.counters.count(Count::MapFailure);
                let reason = match e {
                    DataplaneError::TableFull { .. } => RejectReason::TableFull,
                    _ => RejectReason::OwnershipAmbiguous,
                };
                tracing::error!(
                    session = %session.id,
                    version = session.state_version,
                    error = %e,
                    "could not push the session into the XDP map"
                );
                self.bus.publish(
                    EventRecord::refusal(Some(session.id.get()), reason)
                        .with_session_version(session.state_version)
                        .with_detail(e.to_string()),
                );
            }
        }
    }

    /// Publishes a machine event on the stream and logs it (every increment with its version).
    pub fn publish(&self, event: &SessionEvent) {
        let record = match event {
            SessionEvent::StateChange(c) => {
                tracing::info!(
                    session = %c.session,
                    state_version = c.to_version,
                    from = c.from_state.name(),
                    to = c.to_state.name(),
                    cause = c.cause.name(),
                    "STATE_CHANGE"
                );
                let record = EventRecord::state_change(
                    c.session.get(),
                    Some((c.from_state, c.from_version)),
                    (c.to_state, c.to_version),
                )
                .with_detail(c.cause.name());
                if c.binding == TransportBinding::default() {
                    record
                } else {
                    record.with_peer(c.binding.to_socket_addr())
                }
            }
            SessionEvent::Security(i) | SessionEvent::Policy(i) => {
                tracing::warn!(
                    kind = event.kind(),
                    session = %i.session,
                    state_version = i.version,
                    reason = i.reason.name(),
                    detail = %i.detail,
                    "refused"
                );
                EventRecord::refusal(Some(i.session.get()), i.reason)
                    .with_session_version(i.version)
                    .with_detail(i.detail.clone())
            }
        };
        self.bus.publish(record);
    }
}
