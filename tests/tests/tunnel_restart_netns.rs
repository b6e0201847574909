//! The gateway killed with SIGKILL mid-transfer and restarted: its TUN device goes with the
//! process and comes back at the restart, the XDP program and the pinned session map stay. The
//! TCP transfer through the tunnel completes intact, the session keeps its id, its versions never
//! go back (a strictly increasing run from 1), it still jumps afterwards, and the gateway lists
//! one attached session at the end. The topology is [`jvpn_tests::tunnel`]'s:
//!
//! ```text
//!  gateway ns: jvpn gateway (killed, restarted), TUN 10.99.0.1, TCP server :5201, <gw> (XDP)
//!       || veth
//!  router ns:  10.200.0.2, wifi side 10.201.1.1, lte side 10.201.2.1
//!       || wifi                || lte
//!  client ns:  jvpn client, TUN 10.99.0.2, wifi 10.201.1.2, lte 10.201.2.2
//! ```

use jvpn_tests::transfer::Transfer;
use jvpn_tests::tunnel::{eventually, payload, Tunnel};
use std::process::Output;
use std::time::{Duration, Instant};

const PAYLOAD_LEN: usize = 16_000_000;
/// The gateway's TUN device (the gateway config's default name).
const GATEWAY_TUN: &str = "jvpn0";
/// The bound on each stretch of the transfer; after the restart it includes TCP's backoff.
const STRETCH_PATIENCE: Duration = Duration::from_secs(90);

/// Whether `versions` is 1, 2, 3, ...: nothing went back, nothing was skipped.
fn consecutive_from_one(versions: &[u64]) -> bool {
    versions.iter().copied().eq(1..=versions.len() as u64)
}

/// Runs `ip <args>` in the gateway's namespace, failing or not.
fn gateway_ip(t: &Tunnel, args: &[&str]) -> Output {
    t.f.hosts
        .gateway
        .command("ip")
        .args(args)
        .output()
        .expect("run ip")
}

#[test]
fn a_transfer_survives_a_gateway_killed_and_restarted() {
    let mut t = Tunnel::up();
    let transfer = Transfer::start(&t, payload(PAYLOAD_LEN));
    transfer.wait_for(&t, PAYLOAD_LEN / 3, STRETCH_PATIENCE);
    t.f.kill();
    let killed = Instant::now();
    assert!(
        transfer.received() < PAYLOAD_LEN,
        "the kill came after the transfer ended: nothing was tested"
    );
    eventually("the gateway's TUN device gone with its process", || {
        !gateway_ip(&t, &["link", "show", "dev", GATEWAY_TUN])
            .status
            .success()
    });
    t.f.start(&[]);
    eprintln!(
        "the gateway was back {:?} after the SIGKILL",
        killed.elapsed()
    );
    eventually("the restarted gateway's TUN address and route", || {
        let route = gateway_ip(&t, &["route", "get", "10.99.0.2"]);
        String::from_utf8_lossy(&route.stdout).contains(&format!("dev {GATEWAY_TUN} src 10.99.0.1"))
    });
    let versions = t.f.audit_versions(t.session);
    assert!(
        consecutive_from_one(&versions),
        "versions after the restart: {versions:?}"
    );

    transfer.wait_for(&t, PAYLOAD_LEN * 2 / 3, STRETCH_PATIENCE);
    let version = t.jump(&t.lte);
    assert_eq!(
        version,
        *versions.last().expect("an audit") + 1,
        "the session still jumps after the restart"
    );
    let took = transfer.finish(&t, STRETCH_PATIENCE);
    eprintln!("{PAYLOAD_LEN} bytes across a gateway restart in {took:?}");

    let versions = t.f.audit_versions(t.session);
    assert!(
        consecutive_from_one(&versions),
        "the versions never go back: {versions:?}"
    );
    assert_eq!(versions.last(), Some(&version));
    let row = t.only_session();
    assert_eq!(row["state"], "ATTACHED", "{row}");
}
