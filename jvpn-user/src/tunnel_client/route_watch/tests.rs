//! The reattach policy, table-driven: a session path, what the kernel would do now, the decision.

use super::*;
use std::net::Ipv4Addr;

const WIFI_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 201, 1, 2));
const WIFI_NEW_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 201, 1, 7));
const LTE_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 201, 2, 2));

fn path(source: IpAddr, interface: &str) -> GatewayPath {
    GatewayPath {
        source,
        interface: Some(interface.to_owned()),
    }
}

fn session(uplink: Option<&str>) -> SessionPath {
    SessionPath {
        path: path(WIFI_IP, "wifi"),
        uplink: uplink.map(str::to_owned),
    }
}

fn up(addresses: &[IpAddr], route_source: Option<IpAddr>) -> Option<UplinkHealth> {
    Some(UplinkHealth::Up {
        addresses: addresses.to_vec(),
        route_source,
    })
}

fn observed(route: Option<GatewayPath>, uplink: Option<UplinkHealth>) -> Observation {
    Observation { route, uplink }
}

fn to_lte(reason: ReattachReason) -> Decision {
    Decision::Reattach {
        uplink: None,
        reason,
    }
}

fn lost(loss: UplinkLoss) -> Decision {
    to_lte(ReattachReason::UplinkLost {
        uplink: "wifi".into(),
        loss,
        to: path(LTE_IP, "lte"),
    })
}

#[test]
fn the_policy_follows_the_routing_table_unless_pinned_to_a_working_uplink() {
    let lte = Some(path(LTE_IP, "lte"));
    let wifi = Some(path(WIFI_IP, "wifi"));
    let cases: Vec<(&str, SessionPath, Observation, Decision)> = vec![
        (
            "not pinned, the table still picks the session's path",
            session(None),
            observed(wifi.clone(), None),
            Decision::Stay,
        ),
        (
            "not pinned, the table now picks lte",
            session(None),
            observed(lte.clone(), None),
            to_lte(ReattachReason::RouteChanged {
                from: path(WIFI_IP, "wifi"),
                to: path(LTE_IP, "lte"),
            }),
        ),
        (
            "not pinned, the session's address moved to another interface",
            session(None),
            observed(Some(path(WIFI_IP, "lte")), None),
            to_lte(ReattachReason::RouteChanged {
                from: path(WIFI_IP, "wifi"),
                to: path(WIFI_IP, "lte"),
            }),
        ),
        (
            "not pinned, no route at all",
            session(None),
            observed(None, None),
            Decision::Stranded(Stranded::NoRoute),
        ),
        (
            "pinned and working, even though the table prefers lte",
            session(Some("wifi")),
            observed(lte.clone(), up(&[WIFI_IP], Some(WIFI_IP))),
            Decision::Stay,
        ),
        (
            "pinned and working, the uplink now prefers a second address",
            session(Some("wifi")),
            observed(lte.clone(), up(&[WIFI_NEW_IP, WIFI_IP], Some(WIFI_NEW_IP))),
            Decision::Stay,
        ),
        (
            "pinned, the uplink lost the session's address and has none",
            session(Some("wifi")),
            observed(lte.clone(), up(&[], None)),
            lost(UplinkLoss::AddressRemoved(WIFI_IP)),
        ),
        (
            "pinned, the uplink lost its address; its route picks another interface's",
            session(Some("wifi")),
            observed(lte.clone(), up(&[], Some(LTE_IP))),
            lost(UplinkLoss::AddressRemoved(WIFI_IP)),
        ),
        (
            "pinned, the uplink was renumbered: stay on it, at its new address",
            session(Some("wifi")),
            observed(lte.clone(), up(&[WIFI_NEW_IP], Some(WIFI_NEW_IP))),
            Decision::Reattach {
                uplink: Some("wifi".into()),
                reason: ReattachReason::UplinkRenumbered {
                    uplink: "wifi".into(),
                    from: WIFI_IP,
                    to: WIFI_NEW_IP,
                },
            },
        ),
        (
            "pinned, the uplink has its address but no route to the gateway",
            session(Some("wifi")),
            observed(lte.clone(), up(&[WIFI_IP], None)),
            lost(UplinkLoss::NoRoute),
        ),
        (
            "pinned, the uplink is down",
            session(Some("wifi")),
            observed(lte.clone(), Some(UplinkHealth::Down)),
            lost(UplinkLoss::Down),
        ),
        (
            "pinned, the uplink is gone",
            session(Some("wifi")),
            observed(lte.clone(), Some(UplinkHealth::Gone)),
            lost(UplinkLoss::Gone),
        ),
        (
            "pinned, the uplink is down and the table has nothing else",
            session(Some("wifi")),
            observed(None, Some(UplinkHealth::Down)),
            Decision::Stranded(Stranded::Uplink {
                uplink: "wifi".into(),
                loss: UplinkLoss::Down,
            }),
        ),
    ];
    for (what, session, observation, expected) in cases {
        assert_eq!(decide(&session, &observation), expected, "{what}");
    }
}

#[test]
fn an_unknown_interface_is_not_a_change_but_a_new_source_is() {
    let mut session = session(None);
    session.path.interface = None;
    let same_source = observed(Some(path(WIFI_IP, "wifi")), None);
    assert_eq!(decide(&session, &same_source), Decision::Stay);
    let new_source = observed(Some(path(LTE_IP, "lte")), None);
    assert!(matches!(
        decide(&session, &new_source),
        Decision::Reattach { uplink: None, .. }
    ));
}

#[test]
fn the_reasons_read_as_log_lines() {
    let cases = [
        (
            ReattachReason::RouteChanged {
                from: path(WIFI_IP, "W"),
                to: path(LTE_IP, "L"),
            },
            "route to the gateway changed: 10.201.1.2 via W -> 10.201.2.2 via L",
        ),
        (
            ReattachReason::UplinkLost {
                uplink: "W".into(),
                loss: UplinkLoss::AddressRemoved(WIFI_IP),
                to: path(LTE_IP, "L"),
            },
            "uplink W lost address 10.201.1.2; following the routing table: 10.201.2.2 via L",
        ),
        (
            ReattachReason::UplinkRenumbered {
                uplink: "W".into(),
                from: WIFI_IP,
                to: WIFI_NEW_IP,
            },
            "uplink W changed its address: 10.201.1.2 -> 10.201.1.7",
        ),
    ];
    for (reason, line) in cases {
        assert_eq!(reason.to_string(), line);
    }
    let unknown = GatewayPath {
        source: WIFI_IP,
        interface: None,
    };
    assert_eq!(
        unknown.to_string(),
        "10.201.1.2 via an interface that no longer has it"
    );
}
