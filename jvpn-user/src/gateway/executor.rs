//! The shell's hands: [`Executor`] performs the [`Effect`]s the [`Controller`] returns, on the
//! socket, the store (through the group committer), the XDP maps, the event stream and the TUN
//! device, and feeds each compare-and-set's outcome back to the controller: to
//! [`Controller::settle`], then the map write it names, then [`Controller::reply`], so the map
//! holds a committed version before its ACK is even sealed.
//!
//! A new effect gets its variant in [`super::effect`] and its arm in [`Executor::perform`].
//! Steps that commit run on their own task ([`Executor::run_step`]), so concurrent
//! compare-and-sets (several REATTACHes in flight) share a durable group commit, and the receive
//! loop never waits for the disk.

use super::core::{Applied, ApplyError, Controller, Decision};
use super::counters::Count;
use super::effect::{CommitToken, Effect};
use super::fault;
use super::handshake::HelloJob;
use super::handshake_pool::HandshakePool;
use super::session_map::SessionMap;
use crate::dataplane::DataplaneError;
use crate::events::{EventBus, EventRecord};
use crate::session::{Input, Millis, SessionId};
use crate::store::{CasOutcome, CasRequest, GroupCommitter, SessionStore};
use crate::tun::TunDevice;
use jvpn_common::maps::SessionEntry;
use jvpn_common::RejectReason;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::net::UdpSocket;

/// Where a gateway serves (reported by `jvpn status`).
#[derive(Clone, Debug)]
pub struct Place {
    /// The interface the dataplane enforces on.
    pub iface: String,
    /// The UDP port.
    pub port: u16,
    /// The state dir (the store, the RECOVERING debt).
    pub state_dir: PathBuf,
}

/// What an [`Executor`] performs effects on.
pub struct ExecutorParts {
    /// The UDP socket every jvpn message arrives on and leaves from.
    pub socket: UdpSocket,
    /// The authoritative store.
    pub store: Arc<dyn SessionStore>,
    /// The XDP maps: the loaded or adopted dataplane, or a test's fake.
    pub map: Box<dyn SessionMap>,
    /// The TUN device, if the config has a tunnel.
    pub tun: Option<Arc<TunDevice>>,
    /// Where the gateway serves.
    pub place: Place,
}

/// The controller and everything its effects are performed on.
pub struct Executor {
    controller: Arc<Controller>,
    socket: Arc<UdpSocket>,
    pub(super) store: Arc<dyn SessionStore>,
    committer: GroupCommitter,
    /// Locked for every write, so updates land in version order.
    map: Mutex<Box<dyn SessionMap>>,
    pub(super) bus: EventBus,
    tun: Option<Arc<TunDevice>>,
    pub(super) place: Place,
}

impl Executor {
    /// Starts the group committer and performs the controller's first effects.
    pub async fn start(
        controller: Controller,
        first: Vec<Effect>,
        parts: ExecutorParts,
    ) -> std::io::Result<Arc<Self>> {
        let committer =
            GroupCommitter::spawn(parts.store.clone(), GroupCommitter::DEFAULT_MAX_BATCH)?;
        let exec = Arc::new(Self {
            controller: Arc::new(controller),
            socket: Arc::new(parts.socket),
            store: parts.store,
            committer,
            map: Mutex::new(parts.map),
            bus: EventBus::default(),
            tun: parts.tun,
            place: parts.place,
        });
        exec.execute(first).await;
        Ok(exec)
    }

    /// The controller.
    pub fn controller(&self) -> &Arc<Controller> {
        &self.controller
    }

    /// The gateway socket.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }

    /// The TUN device, if the config has a tunnel.
    pub fn tun(&self) -> Option<&Arc<TunDevice>> {
        self.tun.as_ref()
    }

    /// The event stream.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// The XDP maps, locked.
    pub(super) fn map(&self) -> MutexGuard<'_, Box<dyn SessionMap>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Receives one datagram, hands it to the controller and performs its effects.
    pub async fn receive(self: &Arc<Self>, datagram: &mut [u8], from: SocketAddr) {
        let mut effects = Vec::new();
        let now = self.controller.clock.now();
        self.controller.handle(datagram, from, now, &mut effects);
        self.run_step(&mut effects, datagram, None).await;
    }

    /// Performs one step's effects (`effects` is drained, its buffer kept for the next step).
    /// A step that commits, or that must run a handshake inline, goes on its own task; the
    /// rest is performed here. `datagram` is the one the step handled ([`Effect::WriteTun`]);
    /// with a `pool`, HELLOs are queued for its workers.
    pub async fn run_step(
        self: &Arc<Self>,
        effects: &mut Vec<Effect>,
        datagram: &[u8],
        pool: Option<&HandshakePool<HelloJob>>,
    ) {
        let detached = effects.iter().any(|e| match e {
            Effect::Commit { .. } => true,
            Effect::QueueHello(_) => pool.is_none(),
            _ => false,
        });
        if detached {
            let exec = self.clone();
            // Only the effects go to the task, in a buffer of their size; the caller's buffer
            // (grown for the largest step) stays with the caller for the next step.
            let mut owned = Vec::with_capacity(effects.len());
            owned.append(effects);
            tokio::spawn(async move { exec.execute(owned).await });
            return;
        }
        for effect in effects.drain(..) {
            match effect {
                Effect::QueueHello(job) => {
                    if let Some(pool) = pool {
                        self.queue_hello(pool, job);
                    }
                }
                other => {
                    if let Some(rest) = self.perform(other, datagram).await {
                        let exec = self.clone();
                        tokio::spawn(async move { exec.execute(vec![rest]).await });
                    }
                }
            }
        }
    }

    /// Performs `effects` in order, waiting for each compare-and-set and performing what its
    /// outcome brings first; a HELLO is handshaken inline.
    pub async fn execute(&self, effects: Vec<Effect>) {
        let mut queue = VecDeque::from(effects);
        while let Some(effect) = queue.pop_front() {
            let next = match effect {
                Effect::Commit { request, token } => {
                    if queue.is_empty() {
                        // A step usually ends with its commit: free the buffer before the
                        // wait, so thousands of commits in flight do not each hold one.
                        queue = VecDeque::new();
                    }
                    self.commit(request, token).await.1
                }
                Effect::QueueHello(job) => self.controller.handshake(job),
                other => {
                    // Only a commit or a HELLO is handed back, and both are handled above.
                    let _ = self.perform(other, &[]).await;
                    continue;
                }
            };
            if queue.is_empty() {
                // The usual case (the step ended with its commit): the reply's buffer becomes
                // the queue, with no copy and no new allocation.
                queue = VecDeque::from(next);
            } else {
                for effect in next.into_iter().rev() {
                    queue.push_front(effect);
                }
            }
        }
    }

    /// Runs one compare-and-set and hands its outcome to the controller
    /// ([`Controller::settle`]); writes the committed entry into the XDP map at once (the
    /// commit-to-map latency is measured here), and only then asks for the events and the reply
    /// ([`Controller::reply`]). Returns what the commit did and the effects that follow.
    async fn commit(
        &self,
        request: Box<CasRequest>,
        token: Box<CommitToken>,
    ) -> (Result<Applied, ApplyError>, Vec<Effect>) {
        let cause = token.cause();
        // Unboxed for the wait: the token then lives in this task, not in a separate allocation
        // per commit in flight (thousands of them under a burst of reattaches).
        let token = *token;
        let outcome = self.committer.submit(*request).outcome().await;
        if matches!(outcome, Ok(CasOutcome::Committed)) {
            fault::point(fault::AFTER_CAS, cause);
        }
        let committed_at = Instant::now();
        let settled = self.controller.settle(token, outcome);
        if let Some((session, entry)) = settled.map_write() {
            self.push_map(session, entry);
            self.controller
                .counters
                .commit_to_map
                .record(committed_at.elapsed());
        }
        self.controller.reply(settled, self.controller.clock.now())
    }

    /// Runs `input` for session `id` now and performs its effects, waiting for its commit
    /// (the operator's TERMINATE, start-up).
    pub async fn apply(&self, id: u64, input: Input, now: Millis) -> Result<Applied, ApplyError> {
        let mut out = Vec::new();
        let decision = self.controller.apply_input(id, input, now, &mut out);
        let commit = match out.last() {
            Some(Effect::Commit { .. }) => out.pop(),
            _ => None,
        };
        self.execute(out).await;
        match (decision?, commit) {
            (Decision::Commit, Some(Effect::Commit { request, token })) => {
                let (result, next) = self.commit(request, token).await;
                self.execute(next).await;
                result
            }
            (Decision::Unchanged(s), _) => Ok(Applied::Unchanged(s)),
            (Decision::Commit, _) => Err(ApplyError::UnknownSession),
        }
    }

    /// Performs one effect that needs no follow-up; hands back a commit or a HELLO, which
    /// need [`Self::execute`].
    async fn perform(&self, effect: Effect, datagram: &[u8]) -> Option<Effect> {
        match effect {
            Effect::Send { to, datagram } => {
                if let Err(e) = self.socket.send_to(&datagram, to).await {
                    tracing::warn!(%to, error = %e, "send failed");
                }
            }
            Effect::SendNow { to, datagram } => {
                if let Err(error) = self.socket.try_send_to(&datagram, to) {
                    tracing::debug!(peer = %to, %error, "not sent: the socket is full");
                }
            }
            Effect::WriteTun { packet } => {
                if let (Some(tun), Some(packet)) = (&self.tun, datagram.get(packet)) {
                    if let Err(e) = tun.send(packet).await {
                        tracing::warn!(error = %e, "cannot write a packet to the tunnel");
                    }
                }
            }
            Effect::UpsertMap { session, entry } => self.push_map(session, &entry),
            Effect::Evict { session } => {
                if self.remove_from_map(session) {
                    self.controller.evicted(session);
                }
            }
            Effect::PushHelloGuard { now } => self.push_hello_guard(now),
            Effect::Publish(record) => {
                self.bus.publish(record);
            }
            effect @ (Effect::Commit { .. } | Effect::QueueHello(_)) => return Some(effect),
        }
        None
    }

    /// Writes a session's entry into the XDP session table; an older version never overwrites
    /// a newer one. A failure leaves the store ahead of the map: the XDP program then refuses
    /// the session's traffic (fail closed) until the next start reconciles the map from the
    /// store.
    pub(super) fn push_map(&self, session: u64, entry: &SessionEntry) {
        match self.map().upsert_session(session, entry) {
            Ok(slot) => self.controller.slot_assigned(session, slot),
            Err(DataplaneError::StaleUpdate { .. }) => {}
            Err(e) => {
                self.controller.counters.count(Count::MapFailure);
                let reason = match e {
                    DataplaneError::TableFull { .. } => RejectReason::TableFull,
                    _ => RejectReason::OwnershipAmbiguous,
                };
                tracing::error!(
                    session = %SessionId::show(session),
                    version = entry.state_version,
                    error = %e,
                    "could not push the session into the XDP map"
                );
                self.bus.publish(
                    EventRecord::refusal(Some(session), reason)
                        .with_session_version(entry.state_version)
                        .with_detail(e.to_string()),
                );
            }
        }
    }

    /// Removes a session's entry (and replay window) from the XDP map; whether the map no
    /// longer holds it. A failure is logged, and the caller may retry.
    pub(super) fn remove_from_map(&self, id: u64) -> bool {
        match self.map().remove_session(id) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(
                    session = %SessionId::show(id),
                    error = %e,
                    "cannot remove a terminated session from the XDP map"
                );
                false
            }
        }
    }

    /// Writes the HELLO guard (mac1 key, cookie secrets, load flag) into the XDP config map,
    /// keeping the rest of the entry. A failure is logged: the map keeps the previous guard.
    pub(super) fn push_hello_guard(&self, now: Millis) {
        let guard = &self.controller.hello_guard;
        let result = {
            let map = self.map();
            map.config().and_then(|mut config| {
                config.handshake = guard.config(config.handshake, now);
                map.set_config(&config)
            })
        };
        match result {
            Ok(()) => guard.pushed(now),
            Err(error) => {
                self.controller.counters.count(Count::MapFailure);
                tracing::error!(%error, "cannot write the HELLO guard into the XDP config map");
            }
        }
    }

    /// Queues a screened HELLO; a full queue refuses it (HANDSHAKE_BUSY). A queue an eighth
    /// full or more puts the gateway under load (cookies required).
    fn queue_hello(&self, pool: &HandshakePool<HelloJob>, job: HelloJob) {
        let (from, now) = (job.from, job.now);
        let guard = &self.controller.hello_guard;
        let result = pool.try_submit(job);
        if pool.queued() >= (pool.capacity() / 8).max(1) || result.is_err() {
            let was = guard.under_load(now);
            guard.mark_load(now);
            if !was {
                self.push_hello_guard(now);
            }
        }
        if let Err(full) = result {
            let mut out = Vec::new();
            let detail = full.to_string();
            self.controller
                .refuse_hello(from, RejectReason::HandshakeBusy, detail, &mut out);
            for effect in out {
                if let Effect::Publish(record) = effect {
                    self.bus.publish(record);
                }
            }
        }
    }
}
