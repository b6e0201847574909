//! The client's liveness supervisor: keepalives at the WELCOME's interval, and a reattach when
//! the gateway stops answering: after [`SILENT_INTERVALS`] keepalive intervals with nothing
//! accepted, promptly when DATA and then a KEEPALIVE probe go unanswered ([`super::unanswered`]),
//! or when the gateway REJECTs traffic as TRANSPORT_MISMATCH (a NAT rebinding).

use super::unanswered::{self, Step};
use super::{route_watch, Client, TunnelClientError};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Keepalive intervals without an accepted gateway datagram after which the client reattaches.
const SILENT_INTERVALS: u32 = 3;
/// The supervisor's longest tick: fine enough for [`unanswered::PROBE_PATIENCE`].
const SUPERVISOR_TICK: Duration = Duration::from_millis(250);

impl Client {
    /// Keepalives, and a reattach when nothing was accepted for [`SILENT_INTERVALS`], or when
    /// DATA and then a KEEPALIVE probe went unanswered ([`unanswered`]).
    pub(super) async fn supervise(&self, interval: Duration) -> Result<(), TunnelClientError> {
        let mut tick = tokio::time::interval((interval / 2).min(SUPERVISOR_TICK));
        let mut probed_at = None;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = self.transport_changed.notified() => {
                    let at = self.mismatch_at_version.load(Ordering::Relaxed);
                    if at != self.connection.state_version() {
                        continue;
                    }
                    tracing::warn!("the gateway sees this client at a new address (NAT rebinding?); reattaching");
                    if let Err(e) = self.jump(None).await {
                        tracing::warn!(error = %e, "the reattach failed; retrying at the next tick");
                    }
                    continue;
                }
            }
            let liveness = self.connection.liveness();
            let now = tokio::time::Instant::now();
            match unanswered::step(&liveness, probed_at, now) {
                Step::Wait => {}
                Step::Probe => {
                    probed_at = Some(now);
                    if let Err(e) = self.connection.keepalive().await {
                        tracing::debug!(error = %e, "a KEEPALIVE probe was not sent");
                    }
                    continue;
                }
                Step::Reattach => {
                    probed_at = None;
                    let since = liveness.unanswered_data_since.unwrap_or(now);
                    tracing::warn!(
                        unanswered_ms = now.duration_since(since).as_millis() as u64,
                        "no acknowledgement from the gateway to DATA or a KEEPALIVE probe; reattaching"
                    );
                    self.reattach_after_silence().await;
                    continue;
                }
            }
            if now.duration_since(liveness.last_sent) >= interval {
                if let Err(e) = self.connection.keepalive().await {
                    tracing::debug!(error = %e, "a keepalive was not sent");
                }
            }
            if now.duration_since(liveness.last_received) >= interval * SILENT_INTERVALS {
                tracing::warn!("no acknowledgement from the gateway; reattaching");
                self.reattach_after_silence().await;
            }
        }
    }

    /// The silent path may be down while every link looks fine (a dead router upstream), so
    /// the client tries, in order: the current uplink, whatever the routing table prefers, then
    /// every other interface that leads to the gateway. The first that completes a reattach wins.
    async fn reattach_after_silence(&self) {
        let tried = self.uplink();
        let Err(e) = self.jump(None).await else {
            return;
        };
        let gateway = self.connection.gateway();
        let local = self.connection.local_addr().ip();
        let preferred = route_watch::observe(gateway, None, self.tun.name(), local)
            .ok()
            .and_then(|(observed, _)| observed.route)
            .and_then(|path| path.interface);
        // Without a pinned uplink the first try already took the routing table's choice.
        if tried.is_some() && preferred != tried {
            tracing::warn!(error = %e, "the reattach failed; trying whatever route leads to the gateway");
            if self.jump_to(None).await.is_ok() {
                return;
            }
        }
        tracing::warn!(error = %e, "the reattach over the preferred route failed; trying the other uplinks");
        let tried = [tried, preferred];
        let candidates =
            route_watch::uplink_candidates(gateway, self.tun.name()).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot list the interfaces");
                Vec::new()
            });
        for uplink in candidates
            .into_iter()
            .filter(|c| !tried.contains(&Some(c.clone())))
        {
            match self.jump_to(Some(uplink.clone())).await {
                Ok(version) => {
                    tracing::info!(%uplink, state_version = version, "reattached over another uplink after silence");
                    return;
                }
                Err(e) => {
                    tracing::warn!(%uplink, error = %e, "the reattach over this uplink failed")
                }
            }
        }
        tracing::warn!("no uplink reached the gateway; retrying at the next tick");
    }
}
