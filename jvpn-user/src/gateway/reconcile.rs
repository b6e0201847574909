//! Start-up: the store is the truth, the maps are rebuilt from it.
//!
//! Every stored session is loaded into the cache. If the pinned maps survived (the controller
//! restarted, enforcement never stopped), each map entry is rewritten from the store: a crash
//! between a commit and its map update left the map behind, never ahead. If the maps were lost
//! (a reboot, or a first start after a detach), every live session is moved to RECOVERING
//! (version +1), so no packet captured before the restart can ever be accepted again, and clients
//! reattach. The controller's replay window of each session starts above the highest nonce the
//! adopted dataplane accepted, or empty when the maps were lost ([`super::replay`] says why both
//! are safe). The newest HELLO timestamp of each client is rebuilt from its stored sessions, so a
//! HELLO captured before the restart is still a replay after it.
//!
//! That RECOVERING pass is owed durably ([`RecoveryOwed`]): a start that finds no pinned maps
//! records the debt before it loads new ones, and only a finished pass clears it. A start killed
//! in between leaves new maps pinned (empty replay windows) and sessions it did not reach still
//! ATTACHED; the next start adopts those maps but, finding the debt, finishes the pass, or DATA
//! captured before the loss would be accepted again.

use super::epoch::first_nonce;
use super::executor::Executor;
use super::replay::RxWindow;
use crate::crypto::SessionKeys;
use crate::dataplane::Origin;
use crate::session::{Input, Millis, RecoverCause, SessionId, TerminateCause};
use crate::store::StoreError;
use jvpn_common::maps::SessionState;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The durable record, in the state dir, that the maps were lost and the RECOVERING pass over
/// every live session is not finished yet.
pub struct RecoveryOwed {
    path: PathBuf,
}

impl RecoveryOwed {
    const FILE_NAME: &'static str = "recovery-owed";

    /// The record of the store in `state_dir`.
    pub fn new(state_dir: &Path) -> Self {
        Self {
            path: state_dir.join(Self::FILE_NAME),
        }
    }

    /// Whether a RECOVERING pass is owed.
    pub fn is_owed(&self) -> bool {
        self.path.exists()
    }

    /// Durably records the debt (file and directory synced) before new maps are loaded.
    pub fn owe(&self) -> std::io::Result<()> {
        File::create(&self.path)?.sync_all()?;
        self.sync_dir()
    }

    /// Durably clears the debt once every session was moved.
    fn settle(&self) -> std::io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.sync_dir()
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        match self.path.parent() {
            Some(dir) => File::open(dir)?.sync_all(),
            None => Ok(()),
        }
    }
}

/// What start-up did.
#[derive(Debug, Default)]
pub struct Reconciled {
    /// Sessions loaded from the store.
    pub loaded: usize,
    /// Sessions moved to RECOVERING because the maps were lost.
    pub recovered: usize,
    /// Sessions that had no usable keys and were terminated.
    pub terminated: usize,
    /// Sessions the owed RECOVERING pass could not move (the debt stays for the next start).
    pub unrecovered: usize,
}

impl Executor {
    /// Loads the store into the cache and the maps (see the module doc).
    pub async fn reconcile(&self, origin: Origin, now: Millis) -> Result<Reconciled, StoreError> {
        let mut report = Reconciled::default();
        let owed = RecoveryOwed::new(&self.place.state_dir);
        let controller = self.controller().clone();
        let recover = origin == Origin::Loaded || owed.is_owed();
        for mut session in self.store.list()? {
            report.loaded += 1;
            let stored: Option<&[u8; SessionKeys::STORED_LEN]> =
                session.secrets.as_slice().try_into().ok();
            let usable = stored.is_some();
            let keys = Arc::new(stored.map_or_else(
                || SessionKeys::from_stored(&[0; SessionKeys::STORED_LEN]),
                SessionKeys::from_stored,
            ));
            // The stored last_rx is as of the last transition, on the previous run's clock (the
            // monotonic clock does not survive a reboot); give every session a full keepalive
            // period from now before the timers judge it.
            session.last_rx = now;
            controller
                .hellos
                .remember(session.client_key, session.hello_timestamp);
            let id = session.id.get();
            if session.state == SessionState::Terminated {
                // Ended before this start: its history stays in the store, but it has no place
                // in the table or the map (see `retention`).
                self.remove_from_map(id);
                continue;
            }
            controller
                .sessions
                .install(session.clone(), keys, first_nonce(controller.epoch));
            if !usable {
                tracing::warn!(
                    session = %SessionId::show(id),
                    stored_key_bytes = session.secrets.len(),
                    "stored session has no usable keys (written by an older build, or damaged); \
                     terminating it: its client will start a new handshake"
                );
                report.terminated += 1;
                let input = Input::Terminate {
                    cause: TerminateCause::Policy,
                };
                let _ = self.apply(id, input, now).await;
                continue;
            }
            // Adopted maps owing a pass hold the RECOVERING sessions the interrupted pass moved.
            let moved = origin == Origin::Adopted && session.state == SessionState::Recovering;
            if !recover || moved {
                self.push_map(id, &session.map_entry());
                if origin == Origin::Adopted {
                    // After the push: a failed read moves the session on, and its map entry with it.
                    self.seed_rx_window(id).await;
                }
                continue;
            }
            let input = Input::ForceRecover {
                cause: RecoverCause::DataplaneLost,
            };
            match self.apply(id, input, now).await {
                Ok(_) => report.recovered += 1,
                Err(e) => {
                    report.unrecovered += 1;
                    tracing::error!(session = %SessionId::show(id), error = %e, "cannot move the session to RECOVERING; the next start retries");
                }
            }
        }
        if recover && report.unrecovered == 0 {
            owed.settle()
                .map_err(|source| StoreError::StateDirUnusable {
                    dir: self.place.state_dir.clone(),
                    source,
                })?;
        }
        Ok(report)
    }

    /// Starts session `id`'s controller replay window above the highest nonce the adopted
    /// dataplane accepted, so a message captured before the restart is refused after it even if
    /// XDP is bypassed. If the window cannot be read, the session goes to RECOVERING instead
    /// (version +1), which makes every earlier message stale: fail closed.
    async fn seed_rx_window(&self, id: u64) {
        let highest = self.map().highest_nonce(id);
        let controller = self.controller();
        match highest {
            Ok(highest) => {
                if let Some(live) = controller.sessions.lock().get_mut(&id) {
                    live.rx = RxWindow::above(highest.unwrap_or(0));
                }
            }
            Err(e) => {
                tracing::warn!(session = %SessionId::show(id), error = %e, "cannot read the dataplane's replay window; moving the session to RECOVERING");
                let input = Input::ForceRecover {
                    cause: RecoverCause::DataplaneLost,
                };
                let _ = self.apply(id, input, controller.clock.now()).await;
            }
        }
    }
}
