//! The per-client families on `/metrics`, from the gateway's per-client totals
//! (`gateway::client_totals`), labelled by the configured client name.
//!
//! Families (prefixed `jvpn_`): `client_handshakes_total{client}`, `client_jumps_total{client}`,
//! `client_endpoint_changes_total{client}`, `client_terminations_total{client}`,
//! `client_packets_total{client,direction}`, `client_bytes_total{client,direction}`,
//! `client_refusals_total{client,reason}` (the controller's), and
//! `client_dataplane_drops_total{client,reason}` (XDP drops reported on the rate-limited event
//! stream: a lower bound; `dataplane_drops_total{reason}` is exact but gateway-wide).
//!
//! Cardinality: one `client` value per `[[client]]` in the config, never a session id or an
//! address; `direction` has two values and `reason` at most one per reject reason, and only
//! reasons that occurred are written. So at most clients x (6 + 2 x reasons) series.

use crate::control::ClientMetrics;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// Writes one counter family whose series are `(labels, value)`.
fn family<'a, const N: usize>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    series: impl IntoIterator<Item = ([(&'a str, &'a str); N], u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, value) in series {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes the per-client families for `clients`.
pub fn encode(
    encoder: &mut DescriptorEncoder<'_>,
    clients: &[ClientMetrics],
) -> Result<(), std::fmt::Error> {
    let each = |f: fn(&ClientMetrics) -> u64| {
        clients
            .iter()
            .map(move |c| ([("client", c.client.as_str())], f(c)))
    };
    family(
        encoder,
        "client_handshakes",
        "Handshakes completed, per configured client.",
        None,
        each(|c| c.handshakes),
    )?;
    family(
        encoder,
        "client_jumps",
        "Reattaches committed, per configured client.",
        None,
        each(|c| c.jumps),
    )?;
    family(
        encoder,
        "client_endpoint_changes",
        "Commits that moved a session to a different transport (address or port), per configured client.",
        None,
        each(|c| c.endpoint_changes),
    )?;
    family(
        encoder,
        "client_terminations",
        "Sessions ended, per configured client.",
        None,
        each(|c| c.terminations),
    )?;
    let both = |f: fn(&crate::control::TrafficCount) -> u64| {
        clients.iter().flat_map(move |c| {
            [
                (
                    [("client", c.client.as_str()), ("direction", "upstream")],
                    f(&c.upstream),
                ),
                (
                    [("client", c.client.as_str()), ("direction", "downstream")],
                    f(&c.downstream),
                ),
            ]
        })
    };
    family(
        encoder,
        "client_packets",
        "Inner DATA packets, per configured client and direction.",
        None,
        both(|t| t.packets),
    )?;
    family(
        encoder,
        "client",
        "Bytes of inner DATA packets, per configured client and direction.",
        Some(&Unit::Bytes),
        both(|t| t.bytes),
    )?;
    let by_reason = |f: fn(&ClientMetrics) -> &[(jvpn_common::RejectReason, u64)]| {
        clients.iter().flat_map(move |c| {
            f(c).iter().map(move |(reason, n)| {
                (
                    [("client", c.client.as_str()), ("reason", reason.name())],
                    *n,
                )
            })
        })
    };
    family(
        encoder,
        "client_refusals",
        "Messages of the client's sessions refused by the controller, by reason.",
        None,
        by_reason(|c| &c.refusals),
    )?;
    family(
        encoder,
        "client_dataplane_drops",
        "XDP drops of the client's packets reported on the (rate-limited) event stream, by reason; a lower bound.",
        None,
        by_reason(|c| &c.dataplane_drops),
    )
}
