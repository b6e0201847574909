//! The controller: the gateway's sans-IO core, and the one path by which a session changes.
//!
//! [`Controller`] holds every piece of the gateway's decision state, privately: the live
//! sessions, the state machine, the counters, the HELLO guard and replay reservations, the
//! routes. Its entry points ([`Controller::handle`], [`Controller::settle`] and
//! [`Controller::reply`], [`Controller::tick`], [`Controller::on_dataplane_drop`]) return
//! [`Effect`]s or what the shell must write; they never
//! touch a socket, the store, the XDP maps or the event stream. The shell
//! ([`super::executor`]) performs the effects.
//!
//! [`Controller::apply_input`] runs an input through the pure state machine. A refusal publishes its
//! SECURITY_EVENT or POLICY_EVENT and changes nothing; a version increment becomes an
//! [`Effect::Commit`] (compare-and-set with its STATE_CHANGE audit records), and only once the
//! shell reports it committed ([`Controller::settle`], [`super::settle`]) is it installed in
//! the cache and written into the XDP session table, and only then published and answered
//! ([`Controller::reply`]).

use super::clock::ControllerClock;
use super::counters::Counters;
use super::effect::{CommitToken, Effect, Then};
use super::hello_guard::HelloGuard;
use super::hello_replay::HelloReplay;
use super::live::SessionTable;
use super::routes::TunnelRoutes;
use crate::config::GatewaySettings;
use crate::crypto::SessionKeys;
use crate::session::{Input, Millis, Reject, Session, SessionMachine, Transition};
use crate::store::{CasRequest, Expected, StoreError};
use jvpn_common::RejectReason;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::{Arc, Mutex};

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

/// What [`Controller::apply_input`] decided.
#[derive(Debug)]
pub enum Decision {
    /// Telemetry only: applied at once, nothing to commit.
    Unchanged(Session),
    /// A version increment: an [`Effect::Commit`] was pushed; its outcome comes back through
    /// [`Controller::settle`] and [`Controller::reply`].
    Commit,
}

/// The gateway's decision state; see the module doc. Shared behind an `Arc`: the session table
/// has its own lock, held for no I/O, and everything else is atomic or read-only.
pub struct Controller {
    /// The pure state machine and its timers.
    pub(super) machine: SessionMachine,
    /// Live sessions.
    pub(super) sessions: SessionTable,
    /// Every counter `jvpn stats` and the metrics read ([`super::counters`]).
    pub(super) counters: Arc<Counters>,
    /// This run's boot epoch (high bits of gateway-to-client nonces).
    pub(super) epoch: u64,
    /// The validated gateway configuration (keys, clients, timeouts); a reload replaces it
    /// ([`super::reload`]).
    pub(super) settings: super::reload::LiveSettings,
    /// The newest HELLO timestamp accepted or reserved per client key (WireGuard's replay check,
    /// made atomic) and the per-client session cap.
    pub(super) hellos: Arc<HelloReplay>,
    /// The mac1 key, the cookie secrets and the load flag.
    pub(super) hello_guard: HelloGuard,
    /// When this run started, on [`Self::clock`].
    pub(super) started_ms: Millis,
    /// The monotonic clock every timer and the state machine read ([`super::clock`]).
    pub(super) clock: ControllerClock,
    /// Cryptokey routing: which client owns each tunnel address, which session carries it.
    pub(super) routes: TunnelRoutes,
    /// Per-client totals for the metrics ([`super::client_totals`]).
    pub(super) client_totals: super::client_totals::ClientTotals,
    /// How many sessions the XDP session table holds.
    pub(super) capacity: usize,
    /// Whether opened DATA goes anywhere (the config has a tunnel).
    pub(super) tunnel: bool,
    /// In a cluster: whether this node may serve, and the copies it holds without proof of
    /// ownership ([`super::ownership`]).
    pub(super) ownership: super::ownership_book::Ownership,
    /// The randomness of path challenge tokens and session ids; seeded in tests, so the same
    /// inputs give the same effects (spec section 12).
    rng: Mutex<StdRng>,
}

/// What a [`Controller`] is assembled from.
pub struct ControllerParts {
    /// The validated configuration.
    pub settings: GatewaySettings,
    /// The state machine's timers.
    pub machine: SessionMachine,
    /// This run's boot epoch.
    pub epoch: u64,
    /// How many sessions the XDP session table holds ([`super::SessionMap::session_capacity`]).
    pub capacity: u32,
    /// The clock (the system's monotonic clock outside tests).
    pub clock: ControllerClock,
    /// A seed for the controller's randomness (tests); `None` draws one from the OS.
    pub seed: Option<u64>,
}

impl Controller {
    /// Assembles a controller. Its first effects (the HELLO guard's push) are returned with it.
    pub fn new(parts: ControllerParts) -> (Self, Vec<Effect>) {
        let routes = TunnelRoutes::new(&parts.settings);
        let clock = parts.clock;
        let now = clock.now();
        let hello_guard = HelloGuard::new(parts.settings.public_key(), now);
        let tunnel = parts.settings.tunnel.ipv4.is_some() || parts.settings.tunnel.ipv6.is_some();
        let rng = match parts.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_entropy(),
        };
        let controller = Self {
            machine: parts.machine,
            sessions: SessionTable::default(),
            counters: Arc::default(),
            epoch: parts.epoch,
            settings: super::reload::LiveSettings::new(parts.settings),
            hellos: Arc::default(),
            hello_guard,
            started_ms: now,
            clock,
            routes,
            client_totals: Default::default(),
            capacity: parts.capacity as usize,
            tunnel,
            ownership: Default::default(),
            rng: Mutex::new(rng),
        };
        (controller, vec![Effect::PushHelloGuard { now }])
    }

    /// The counters, shared with the metrics endpoint.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The controller's clock.
    pub fn clock(&self) -> &ControllerClock {
        &self.clock
    }

    /// Runs `f` with the controller's random number generator.
    pub(super) fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.rng.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Runs `input` through the machine for session `id`: a refusal is published into `out` and
    /// returned, telemetry is applied at once, and an increment is pushed as an
    /// [`Effect::Commit`] that continues with `then`.
    pub fn apply_input(
        &self,
        id: u64,
        input: Input,
        now: Millis,
        out: &mut Vec<Effect>,
    ) -> Result<Decision, ApplyError> {
        self.apply(id, input, now, Then::Nothing, out)
    }

    /// [`Self::apply_input`], continuing with `then` after a commit.
    pub(super) fn apply(
        &self,
        id: u64,
        input: Input,
        now: Millis,
        then: Then,
        out: &mut Vec<Effect>,
    ) -> Result<Decision, ApplyError> {
        let (current, keys) = self
            .sessions
            .snapshot(id)
            .ok_or(ApplyError::UnknownSession)?;
        match self.machine.transition(&current, &input, now) {
            Err(reject) => {
                self.counters.reject(reject.reason);
                self.client_refused(id, reject.reason);
                self.publish(&reject.event, out);
                Err(ApplyError::Rejected(reject))
            }
            Ok(t) if t.session.state_version == current.state_version => {
                self.sessions.telemetry(&t.session);
                Ok(Decision::Unchanged(t.session))
            }
            Ok(t) => {
                self.commit(Expected::Version(current.state_version), t, keys, then, out);
                Ok(Decision::Commit)
            }
        }
    }

    /// Pushes the compare-and-set of `t` against `expected` (with its audit, on wall-clock
    /// time) as an [`Effect::Commit`].
    pub(super) fn commit(
        &self,
        expected: Expected,
        t: Transition,
        keys: Arc<SessionKeys>,
        then: Then,
        out: &mut Vec<Effect>,
    ) {
        // The audit keeps wall-clock time; the record keeps the controller's clock.
        let mut audit = t.state_changes();
        for change in &mut audit {
            change.at = self.clock.to_wall(change.at);
        }
        let request = CasRequest::new(expected, t.session.clone(), audit);
        out.push(Effect::Commit {
            request: Box::new(request),
            token: Box::new(CommitToken {
                expected,
                transition: t,
                keys,
                then,
            }),
        });
    }
}
