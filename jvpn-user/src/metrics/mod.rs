//! Prometheus metrics for `jvpn gateway --metrics ADDR`, encoded by the `prometheus-client` crate.
//!
//! Nothing is counted here: the collector reads the gateway's one counters home
//! ([`Counters`], which `jvpn stats` reads too) and, at scrape time, what the [`GatewayApi`]
//! reports (the XDP program's per-CPU drop counters, sessions by state, lost events), so there is
//! one source of truth for each number and `jvpn stats` and Prometheus never disagree.
//!
//! Families (all prefixed `jvpn_`): `dataplane_drops_total{reason}`,
//! `dataplane_dropped_bytes_total{reason}`, `dataplane_accepted_total`,
//! `dataplane_accepted_bytes_total`, `dataplane_to_controller_total`, `sessions{state}`,
//! `transitions_total{from,to}`, `cas_conflicts_total`, `controller_rejects_total{reason}`,
//! `controller_seal_failures_total`, `controller_rejects_suppressed_total`,
//! `controller_map_failures_total`, `tunnel_packets_total{direction}`,
//! `tunnel_bytes_total{direction}`, `tunnel_drops_total{reason}`, `events_lost_total{where}`; and
//! per configured client, with bounded labels, the families of [`clients`].

pub mod clients;
pub mod http;

use crate::control::GatewayApi;
use crate::gateway::counters::{Counters, STATES};
use jvpn_common::RejectReason;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use std::sync::Arc;

/// A registry serving `counters` and, at each scrape, what `api` reports.
pub fn registry(counters: Arc<Counters>, api: Arc<dyn GatewayApi>) -> Registry {
    let mut registry = Registry::with_prefix("jvpn");
    registry.register_collector(Box::new(GatewayCollector { counters, api }));
    registry
}

/// The registry in the Prometheus text format (0.0.4). Calls the [`GatewayApi`], so it may block.
pub fn render(registry: &Registry) -> String {
    let mut text = String::new();
    // Encoding only fails if writing to the String fails, which it does not.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, registry);
    text
}

/// The `Content-Type` of [`render`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

struct GatewayCollector {
    counters: Arc<Counters>,
    api: Arc<dyn GatewayApi>,
}

impl std::fmt::Debug for GatewayCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayCollector")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

type Labels<const N: usize> = [(&'static str, &'static str); N];

fn counter(encoder: MetricEncoder<'_>, value: u64) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(encoder)
}

fn labelled_counters<const N: usize>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    values: impl IntoIterator<Item = (Labels<N>, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, value) in values {
        counter(family.encode_family(&labels)?, value)?;
    }
    Ok(())
}

fn single_counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> Result<(), std::fmt::Error> {
    counter(
        encoder.encode_descriptor(name, help, unit, MetricType::Counter)?,
        value,
    )
}

impl Collector for GatewayCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let stats = self.api.stats();
        let status = self.api.status();
        let dp = &stats.dataplane;
        let drops = |bytes: bool| {
            dp.drops.iter().map(move |d| {
                let value = if bytes {
                    d.count.bytes
                } else {
                    d.count.packets
                };
                ([("reason", d.reason.name())], value)
            })
        };
        let e = &mut encoder;
        labelled_counters(
            e,
            "dataplane_drops",
            "Packets dropped by the XDP program, by reason.",
            None,
            drops(false),
        )?;
        labelled_counters(
            e,
            "dataplane_dropped",
            "Bytes dropped by the XDP program, by reason.",
            Some(&Unit::Bytes),
            drops(true),
        )?;
        single_counter(
            e,
            "dataplane_accepted",
            "DATA and KEEPALIVE packets accepted by the XDP program.",
            None,
            dp.accepted.packets,
        )?;
        single_counter(
            e,
            "dataplane_accepted",
            "Bytes of DATA and KEEPALIVE accepted by the XDP program.",
            Some(&Unit::Bytes),
            dp.accepted.bytes,
        )?;
        single_counter(
            e,
            "dataplane_to_controller",
            "HELLO and control messages passed to the controller.",
            None,
            dp.to_controller.packets,
        )?;

        let mut sessions =
            e.encode_descriptor("sessions", "Sessions by state.", None, MetricType::Gauge)?;
        for state in STATES {
            let labels: Labels<1> = [("state", state.name())];
            let count = i64::try_from(status.sessions.get(state)).unwrap_or(i64::MAX);
            ConstGauge::new(count).encode(sessions.encode_family(&labels)?)?;
        }

        let froms = std::iter::once(None).chain(STATES.map(Some));
        let transitions = froms.flat_map(|from| {
            let name = from.map_or("NONE", |s: jvpn_common::SessionState| s.name());
            STATES.iter().map(move |to| {
                let value = self.counters.transitions(from, *to);
                ([("from", name), ("to", to.name())], value)
            })
        });
        labelled_counters(
            e,
            "transitions",
            "Committed state_version increments, by from and to state (NONE: birth).",
            None,
            transitions.filter(|(_, v)| *v > 0),
        )?;
        single_counter(
            e,
            "cas_conflicts",
            "Compare-and-set attempts lost to a concurrent mutation.",
            None,
            stats.controller.cas_conflicts,
        )?;
        let rejects = RejectReason::ALL
            .into_iter()
            .map(|reason| ([("reason", reason.name())], self.counters.rejects(reason)));
        labelled_counters(
            e,
            "controller_rejects",
            "Messages refused by the controller, by reason.",
            None,
            rejects,
        )?;
        let c = &stats.controller;
        single_counter(
            e,
            "controller_seal_failures",
            "Datagrams the XDP program passed whose seal failed in the controller (forged tag or wrong key).",
            None,
            c.seal_failures,
        )?;
        single_counter(
            e,
            "controller_rejects_suppressed",
            "REJECT replies not sent because the session was over its REJECT budget.",
            None,
            c.rejects_suppressed,
        )?;
        single_counter(
            e,
            "controller_map_failures",
            "XDP map updates that failed after their commit (reconciled at the next start).",
            None,
            c.map_failures,
        )?;
        let t = &stats.tunnel;
        labelled_counters(
            e,
            "tunnel_packets",
            "Inner packets through the tunnel: upstream (sessions to the TUN device) and downstream.",
            None,
            [
                ([("direction", "upstream")], t.upstream.packets),
                ([("direction", "downstream")], t.downstream.packets),
            ],
        )?;
        labelled_counters(
            e,
            "tunnel",
            "Bytes of inner packets through the tunnel, by direction.",
            Some(&Unit::Bytes),
            [
                ([("direction", "upstream")], t.upstream.bytes),
                ([("direction", "downstream")], t.downstream.bytes),
            ],
        )?;
        labelled_counters(
            e,
            "tunnel_drops",
            "Inner packets dropped by the tunnel: foreign_source (cryptokey routing) or unroutable.",
            None,
            [
                ([("reason", "foreign_source")], t.upstream_foreign_source),
                ([("reason", "unroutable")], t.downstream_unroutable),
            ],
        )?;
        let lost = stats.events_lost;
        labelled_counters(
            e,
            "events_lost",
            "Event records lost: dataplane (ring buffer full or over budget) or subscribers (a reader fell behind).",
            None,
            [([("where", "dataplane")], lost.dataplane), ([("where", "subscribers")], lost.subscribers)],
        )?;
        clients::encode(e, &self.api.client_metrics())
    }
}
