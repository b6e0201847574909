//! Live reload of the gateway config (`jvpn reload`, SIGHUP): owns the running config
//! ([`LiveSettings`], swapped whole). The controller decides ([`Controller::reload`]: the plan,
//! the swap, the terminations as effects); the shell ([`Executor::reload`]) reads the file and
//! performs the effects.
//!
//! A reload reads and validates the whole file first; an invalid file (the error names its line)
//! or a changed setting that only a restart can apply ([`plan::plan`]) changes nothing. Otherwise
//! the new config replaces the old at once (new HELLOs are admitted by it, cryptokey routing
//! follows it), and then every live session of a removed or changed client is terminated through
//! the controller's compare-and-set like any other termination (version +1, POLICY_TERMINATE in
//! the audit, the TERMINATED entry in the XDP map, so its packets are dropped there, and the entry
//! leaves the map after the usual retention), and the client is sent a sealed TERMINATE with cause
//! `CLIENT_REMOVED`. No other session is touched: no version changes, no map write. A handshake
//! read under the old config that commits after the swap is checked once committed
//! ([`Controller::recheck_after_reload`]), so it cannot slip past the sweep.

pub mod plan;

use super::core::{Applied, ApplyError, Controller};
use super::effect::{Effect, Then};
use super::executor::Executor;
use crate::config::{ConfigError, GatewaySettings};
use crate::control::ReloadReport;
use crate::session::{Input, Millis, SessionId, TerminateCause};
use jvpn_common::control::{Terminate, TerminateCause as WireCause};
use jvpn_common::maps::SessionState;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// The running config: read whole by every user, replaced whole by a reload.
pub struct LiveSettings {
    current: RwLock<Arc<GatewaySettings>>,
}

impl LiveSettings {
    /// Holds `settings` as the running config.
    pub fn new(settings: GatewaySettings) -> Self {
        Self {
            current: RwLock::new(Arc::new(settings)),
        }
    }

    /// The running config. Hold the `Arc` only for the operation at hand: a reload may replace it.
    pub fn get(&self) -> Arc<GatewaySettings> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn replace(&self, settings: GatewaySettings) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(settings);
    }
}

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The edited file is unreadable or invalid (the error names the line).
    #[error("{0}; fix it and reload again (nothing was changed)")]
    Config(#[from] ConfigError),
    /// A setting changed that is read only at start.
    #[error("{}: `{setting}` changed, and it cannot change while the gateway runs; restart the gateway to apply it, or undo that change and reload again (nothing was changed)", path.display())]
    NeedsRestart {
        /// The config file.
        path: PathBuf,
        /// The setting, as named in the file.
        setting: &'static str,
    },
}

impl Controller {
    /// Decides a reload to `new`: `Err(setting)` names a setting only a restart can change, and
    /// nothing changed. Otherwise swaps the config in, and pushes into `out` the termination of
    /// every live session of a removed or changed client; the report lists the clients (its
    /// `terminated` is filled in by the shell once the commits ran).
    pub fn reload(
        &self,
        new: GatewaySettings,
        now: Millis,
        out: &mut Vec<Effect>,
    ) -> Result<ReloadReport, &'static str> {
        let changes = plan::plan(&self.settings.get(), &new)?;
        self.routes.reconfigure(&new);
        self.settings.replace(new);
        let mut revoked: Vec<u64> = self
            .sessions
            .lock()
            .values()
            .filter(|l| {
                l.session.state != SessionState::Terminated
                    && changes.revoked.contains(&l.session.client_key)
            })
            .map(|l| l.session.id.get())
            .collect();
        revoked.sort_unstable();
        for id in revoked {
            self.revoke(id, now, out);
        }
        Ok(ReloadReport {
            added: changes.added,
            removed: changes.removed,
            changed: changes.changed,
            renamed: changes.renamed,
            unchanged: changes.unchanged,
            terminated: Vec::new(),
        })
    }

    /// Drops the totals of clients the running config no longer has (after a reload's
    /// terminations committed, so they are counted first): the metrics' labels stay within the
    /// configured clients.
    pub fn forget_removed_clients(&self) {
        let settings = self.settings.get();
        self.client_totals.retain(|key| {
            settings
                .client(&crate::crypto::PublicKey::from_bytes(*key))
                .is_some()
        });
    }

    /// Pushes the termination of session `id`, whose client the config no longer authorises as
    /// it was keyed; on commit the client is told ([`Self::after_revoke`]).
    fn revoke(&self, id: u64, now: Millis, out: &mut Vec<Effect>) {
        let input = Input::Terminate {
            cause: TerminateCause::Policy,
        };
        if let Err(error) = self.apply(id, input, now, Then::ClientRemoved { id }, out) {
            tracing::warn!(session = %SessionId::show(id), %error, "reload could not terminate a session of a removed client");
        }
    }

    /// Once a revocation committed: a sealed TERMINATE (`CLIENT_REMOVED`) at the new version to
    /// the session's binding.
    pub(super) fn after_revoke(
        &self,
        id: u64,
        result: &Result<Applied, ApplyError>,
        out: &mut Vec<Effect>,
    ) {
        match result {
            Ok(Applied::Committed(session)) => {
                if session.binding != jvpn_common::maps::TransportBinding::default() {
                    let body = Terminate::new(WireCause::ClientRemoved);
                    let to = session.binding.to_socket_addr();
                    self.send_body(id, to, session.state_version, &body, out);
                }
            }
            Ok(Applied::Unchanged(_)) => {}
            Err(error) => {
                tracing::warn!(session = %SessionId::show(id), %error, "reload could not terminate a session of a removed client");
            }
        }
    }

    /// Closes the race between a handshake and a reload: a HELLO read under `read_with` whose
    /// session `id` committed after a reload swapped the config may have missed the reload's
    /// sweep; if the running config no longer authorises its client as `read_with` did, the
    /// session is revoked now, as the sweep would have done.
    pub(super) fn recheck_after_reload(
        &self,
        read_with: &Arc<GatewaySettings>,
        id: u64,
        now: Millis,
        out: &mut Vec<Effect>,
    ) {
        let running = self.settings.get();
        if Arc::ptr_eq(read_with, &running) {
            return;
        }
        let Some(key) = self.sessions.lock().get(&id).map(|l| l.session.client_key) else {
            return;
        };
        let client = crate::crypto::PublicKey::from_bytes(key);
        let still = match (read_with.client(&client), running.client(&client)) {
            (Some(before), Some(after)) => plan::same_authority(before, after),
            _ => false,
        };
        if !still {
            tracing::info!(session = %SessionId::show(id), "a handshake raced a reload that revoked its client");
            self.revoke(id, now, out);
        }
    }
}

impl Executor {
    /// Applies the edited config file at `path` (see the module doc): reads it, has the
    /// controller decide, performs the terminations. Changes nothing on error.
    pub async fn reload(&self, path: &Path, now: Millis) -> Result<ReloadReport, ReloadError> {
        let new = GatewaySettings::load(path)?;
        let controller = self.controller();
        let mut out = Vec::new();
        let mut report =
            controller
                .reload(new, now, &mut out)
                .map_err(|setting| ReloadError::NeedsRestart {
                    path: path.to_path_buf(),
                    setting,
                })?;
        let revoked: Vec<u64> = out
            .iter()
            .filter_map(|e| match e {
                Effect::Commit { request, .. } => Some(request.session.id.get()),
                _ => None,
            })
            .collect();
        self.execute(out).await;
        controller.forget_removed_clients();
        report.terminated = revoked
            .into_iter()
            .filter_map(|id| {
                let (session, _) = controller.sessions.snapshot(id)?;
                (session.state == SessionState::Terminated).then_some(
                    crate::control::EndedSession {
                        id,
                        version: session.state_version,
                    },
                )
            })
            .collect();
        tracing::info!(
            config = %path.display(),
            added = ?report.added,
            removed = ?report.removed,
            changed = ?report.changed,
            renamed = ?report.renamed,
            terminated = report.terminated.len(),
            "config reloaded"
        );
        Ok(report)
    }
}

/// Reloads `path` on every SIGHUP until the task is dropped; the outcome is logged.
pub async fn on_sighup(exec: Arc<Executor>, path: PathBuf) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; use `jvpn reload` to apply config changes");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        let now = exec.controller().clock.now();
        if let Err(error) = exec.reload(&path, now).await {
            tracing::error!(%error, "SIGHUP: the config was not reloaded");
        }
    }
}
