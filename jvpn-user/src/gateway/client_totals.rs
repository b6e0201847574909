//! Per-client totals for `/metrics`: what an operator alerts on per configured client (bytes each
//! way, handshakes, jumps, endpoint changes, terminations, refusals and XDP drops by reason).
//!
//! Traffic is counted per session in the live table ([`super::live::LiveSession`]); a session's
//! counts are folded into its client's totals here when it leaves the table, so a client's total
//! is these folded counts plus its sessions still in the table, and never goes down. Commits and
//! refusals are counted here as they happen.
//!
//! Label cardinality is bounded by the config: the metrics carry one `client` label per configured
//! client (its name), never a session id or an address, and a reload that removes a client drops
//! its totals ([`ClientTotals::retain`]). The `reason` label has at most one value per reject
//! reason. So the per-client families hold at most clients x reasons series.

use super::routes::ClientKey;
use crate::control::{ClientMetrics, TrafficCount};
use crate::session::{Cause, SessionEvent};
use jvpn_common::maps::TransportBinding;
use jvpn_common::RejectReason;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};

/// The totals of one client key.
#[derive(Clone, Debug, Default)]
struct Totals {
    upstream: TrafficCount,
    downstream: TrafficCount,
    handshakes: u64,
    jumps: u64,
    endpoint_changes: u64,
    terminations: u64,
    refusals: BTreeMap<RejectReason, u64>,
    dataplane_drops: BTreeMap<RejectReason, u64>,
}

/// Every client key's totals.
#[derive(Debug, Default)]
pub struct ClientTotals {
    by_key: Mutex<HashMap<ClientKey, Totals>>,
}

impl ClientTotals {
    fn lock(&self) -> MutexGuard<'_, HashMap<ClientKey, Totals>> {
        self.by_key.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a committed transition of a session of `client`, whose binding was `before`.
    pub fn committed(&self, client: ClientKey, before: TransportBinding, events: &[SessionEvent]) {
        let mut all = self.lock();
        let totals = all.entry(client).or_default();
        let unbound = TransportBinding::default();
        for change in events.iter().filter_map(SessionEvent::as_state_change) {
            match change.cause {
                Cause::HandshakeComplete => totals.handshakes += 1,
                Cause::Reattach => totals.jumps += 1,
                Cause::OperatorTerminate
                | Cause::ClientClose
                | Cause::PolicyTerminate
                | Cause::IdleTimeout
                | Cause::VersionExhausted
                | Cause::NonceExhausted
                | Cause::HandshakeAbandoned
                | Cause::RekeyTimeout => totals.terminations += 1,
                Cause::KeepaliveTimeout
                | Cause::PolicyRecover
                | Cause::DataplaneLost
                | Cause::Rekey => {}
            }
            if before != unbound && change.binding != unbound && change.binding != before {
                totals.endpoint_changes += 1;
            }
        }
    }

    /// Counts a refusal by the controller of a message of a session of `client`.
    pub fn refused(&self, client: ClientKey, reason: RejectReason) {
        *self
            .lock()
            .entry(client)
            .or_default()
            .refusals
            .entry(reason)
            .or_default() += 1;
    }

    /// Counts an XDP drop of a packet of a session of `client`, as reported on the event stream.
    pub fn dropped(&self, client: ClientKey, reason: RejectReason) {
        *self
            .lock()
            .entry(client)
            .or_default()
            .dataplane_drops
            .entry(reason)
            .or_default() += 1;
    }

    /// Folds the traffic of a session leaving the table into its client's totals.
    pub fn fold(&self, client: ClientKey, upstream: TrafficCount, downstream: TrafficCount) {
        let mut all = self.lock();
        let totals = all.entry(client).or_default();
        add(&mut totals.upstream, upstream);
        add(&mut totals.downstream, downstream);
    }

    /// Keeps only the clients `keep` accepts (a reload drops the removed ones).
    pub fn retain(&self, keep: impl Fn(&ClientKey) -> bool) {
        self.lock().retain(|key, _| keep(key));
    }

    /// The metrics of client `key` named `name`, adding `live` (the traffic of its sessions
    /// still in the table).
    pub fn report(
        &self,
        key: &ClientKey,
        name: &str,
        live: (TrafficCount, TrafficCount),
    ) -> ClientMetrics {
        let totals = self.lock().get(key).cloned().unwrap_or_default();
        let mut upstream = totals.upstream;
        let mut downstream = totals.downstream;
        add(&mut upstream, live.0);
        add(&mut downstream, live.1);
        ClientMetrics {
            client: name.to_string(),
            upstream,
            downstream,
            handshakes: totals.handshakes,
            jumps: totals.jumps,
            endpoint_changes: totals.endpoint_changes,
            terminations: totals.terminations,
            refusals: totals.refusals.into_iter().collect(),
            dataplane_drops: totals.dataplane_drops.into_iter().collect(),
        }
    }
}

fn add(total: &mut TrafficCount, more: TrafficCount) {
    total.packets += more.packets;
    total.bytes += more.bytes;
}

impl super::core::Controller {
    /// Counts a controller refusal of a message of session `id` for its client, if the session
    /// is in the table.
    pub fn client_refused(&self, id: u64, reason: RejectReason) {
        if let Some(key) = self.configured_client_of(id) {
            self.client_totals.refused(key, reason);
        }
    }

    /// Counts an XDP drop reported on the event stream for the client of the session it names,
    /// if that session is in the table (a drop naming an unknown session names no client).
    pub fn client_dropped(&self, id: u64, reason: RejectReason) {
        if let Some(key) = self.configured_client_of(id) {
            self.client_totals.dropped(key, reason);
        }
    }

    /// Folds the traffic of a session leaving the table into its client's totals, if the client
    /// is still configured (a removed client's totals are gone, and stay gone).
    pub fn fold_client_traffic(&self, live: &super::live::LiveSession) {
        let key = live.session.client_key;
        if self.is_configured(&key) {
            self.client_totals.fold(key, live.upstream, live.downstream);
        }
    }

    /// The client key of session `id`, if the session is in the table and its client configured.
    fn configured_client_of(&self, id: u64) -> Option<ClientKey> {
        let key = self
            .sessions
            .lock()
            .get(&id)
            .map(|l| l.session.client_key)?;
        self.is_configured(&key).then_some(key)
    }

    fn is_configured(&self, key: &ClientKey) -> bool {
        self.settings
            .get()
            .client(&crate::crypto::PublicKey::from_bytes(*key))
            .is_some()
    }

    /// The per-client metrics of every configured client, in config order.
    pub fn client_metrics(&self) -> Vec<ClientMetrics> {
        let settings = self.settings.get();
        let mut live: HashMap<ClientKey, (TrafficCount, TrafficCount)> = HashMap::new();
        for l in self.sessions.lock().values() {
            let entry = live.entry(l.session.client_key).or_default();
            add(&mut entry.0, l.upstream);
            add(&mut entry.1, l.downstream);
        }
        settings
            .clients()
            .iter()
            .map(|c| {
                let key = *c.public_key.as_bytes();
                let traffic = live.get(&key).copied().unwrap_or_default();
                self.client_totals.report(&key, &c.name, traffic)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folded_and_live_traffic_add_up_and_removed_clients_are_dropped() {
        let totals = ClientTotals::default();
        let t = |packets, bytes| TrafficCount { packets, bytes };
        totals.fold([1; 32], t(2, 200), t(1, 50));
        totals.refused([1; 32], RejectReason::StaleVersion);
        totals.refused([1; 32], RejectReason::StaleVersion);
        totals.dropped([2; 32], RejectReason::Terminated);
        let one = totals.report(&[1; 32], "laptop", (t(1, 10), t(0, 0)));
        assert_eq!(one.upstream, t(3, 210));
        assert_eq!(one.downstream, t(1, 50));
        assert_eq!(one.refusals, vec![(RejectReason::StaleVersion, 2)]);
        assert!(one.dataplane_drops.is_empty());
        totals.retain(|k| *k == [1; 32]);
        let two = totals.report(&[2; 32], "phone", (t(0, 0), t(0, 0)));
        assert!(
            two.dataplane_drops.is_empty(),
            "a removed client's totals are gone"
        );
    }
}
