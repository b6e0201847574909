//! Live reload of the gateway config (`jvpn reload`, SIGHUP): owns the running config
//! ([`LiveSettings`], swapped whole) and [`Gateway::reload`], which applies an edited file.
//!
//! A reload reads and validates the whole file first; an invalid file (the error names its line)
//! or a changed setting that only a restart can apply ([`plan::plan`]) changes nothing. Otherwise
//! the new config replaces the old at once (new HELLOs are admitted by it, cryptokey routing
//! follows it), and then every live session of a removed or changed client is terminated through
//! [`Gateway::apply`] like any other termination (version +1, POLICY_TERMINATE in the audit, the
//! TERMINATED entry in the XDP map, so its packets are dropped there, and the entry leaves the map
//! after the usual retention), and the client is sent a sealed TERMINATE with cause
//! `CLIENT_REMOVED`. No other session is touched: no version changes, no map write.

pub mod plan;

use super::core::{Applied, Gateway};
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

impl Gateway {
    /// Applies the edited config file at `path` (see the module doc). Changes nothing on error.
    pub async fn reload(&self, path: &Path, now: Millis) -> Result<ReloadReport, ReloadError> {
        let new = GatewaySettings::load(path)?;
        let changes = plan::plan(&self.settings.get(), &new).map_err(|setting| {
            ReloadError::NeedsRestart {
                path: path.to_path_buf(),
                setting,
            }
        })?;
        self.routes.reconfigure(&new);
        self.settings.replace(new);
        let mut report = ReloadReport {
            added: changes.added,
            removed: changes.removed,
            changed: changes.changed,
            renamed: changes.renamed,
            unchanged: changes.unchanged,
            terminated: Vec::new(),
        };
        let mut revoked: Vec<(u64, u64)> = self
            .sessions
            .lock()
            .values()
            .filter(|l| {
                l.session.state != SessionState::Terminated
                    && changes.revoked.contains(&l.session.client_key)
            })
            .map(|l| (l.session.id.get(), l.session.state_version))
            .collect();
        revoked.sort_unstable();
        for (id, _) in revoked {
            if let Some(version) = self.revoke(id, now).await {
                report
                    .terminated
                    .push(crate::control::EndedSession { id, version });
            }
        }
        // After the terminations, whose commits are counted for the client: a removed client's
        // totals go, so the metrics' labels stay within the configured clients.
        let settings = self.settings.get();
        self.client_totals.retain(|key| {
            settings
                .client(&crate::crypto::PublicKey::from_bytes(*key))
                .is_some()
        });
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

    /// Terminates session `id`, whose client the config no longer authorises as it was keyed,
    /// and tells the client with a sealed TERMINATE at the new version. Returns that version.
    async fn revoke(&self, id: u64, now: Millis) -> Option<u64> {
        let input = Input::Terminate {
            cause: TerminateCause::Policy,
        };
        match self.apply(id, input, now).await {
            Ok(Applied::Committed(session)) => {
                let version = session.state_version;
                if session.binding != jvpn_common::maps::TransportBinding::default() {
                    let body = Terminate::new(WireCause::ClientRemoved);
                    let to = session.binding.to_socket_addr();
                    self.send_body(id, to, version, &body).await;
                }
                Some(version)
            }
            Ok(Applied::Unchanged(_)) => None,
            Err(error) => {
                tracing::warn!(session = %SessionId::show(id), %error, "reload could not terminate a session of a removed client");
                None
            }
        }
    }

    /// Closes the race between a handshake and a reload: a HELLO read under `read_with` whose
    /// session `id` committed after a reload swapped the config may have missed the reload's
    /// sweep; if the running config no longer authorises `client` as `read_with` did, the
    /// session is revoked now, as the sweep would have done.
    pub async fn recheck_after_reload(
        &self,
        read_with: &Arc<GatewaySettings>,
        id: u64,
        client: &crate::crypto::PublicKey,
        now: Millis,
    ) {
        let running = self.settings.get();
        if Arc::ptr_eq(read_with, &running) {
            return;
        }
        let still = match (read_with.client(client), running.client(client)) {
            (Some(before), Some(after)) => plan::same_authority(before, after),
            _ => false,
        };
        if !still {
            tracing::info!(session = %SessionId::show(id), "a handshake raced a reload that revoked its client");
            self.revoke(id, now).await;
        }
    }
}

/// Reloads `path` on every SIGHUP until the task is dropped; the outcome is logged.
pub async fn on_sighup(gateway: Arc<Gateway>, path: PathBuf) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; use `jvpn reload` to apply config changes");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        if let Err(error) = gateway.reload(&path, gateway.clock.now()).await {
            tracing::error!(%error, "SIGHUP: the config was not reloaded");
        }
    }
}
