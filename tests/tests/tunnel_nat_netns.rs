//! NAT rebinding: the client's wifi uplink goes through a NAT namespace that masquerades it from
//! random ports. Mid-transfer the NAT forgets its mappings and maps from another port range, so
//! the client's packets reach the gateway from a new source port, which the XDP program refuses
//! (the session is bound to the old one), and the gateway's answers to the old port die at the
//! NAT. The gateway tells the client so (a sealed REJECT(TRANSPORT_MISMATCH) to the new port;
//! the client's liveness timeout, three keepalive intervals, is the backstop) and the client
//! reattaches exactly once; the gateway binds the session to the new port, and the transfer
//! completes intact.
//!
//! ```text
//!  gateway ns: jvpn gateway, TUN 10.99.0.1, TCP server :5201, <gw> 10.200.0.1 (XDP)
//!       || veth
//!  router ns:  10.200.0.2, NAT side 10.201.3.1, lte side 10.201.2.1
//!       ||                                 || lte (unused)
//!  nat ns:     10.201.3.2 (masquerade udp to :40000-49999 random), 10.201.1.1
//!       || wifi                            ||
//!  client ns:  jvpn client, TUN 10.99.0.2, wifi 10.201.1.2, lte 10.201.2.2
//! ```

use jvpn_tests::nat::Nat;
use jvpn_tests::transfer::Transfer;
use jvpn_tests::tunnel::{payload, Tunnel, TunnelOptions};
use std::net::IpAddr;
use std::time::{Duration, Instant};

const PAYLOAD_LEN: usize = 8_000_000;
/// The NAT's ports after the rebinding: disjoint from [`Nat::PORTS`], so the change shows.
const REBOUND_PORTS: std::ops::RangeInclusive<u16> = 50000..=59999;
/// The bound on the reattach: even without the gateway's REJECT, the client's liveness timeout
/// (15 s in the fixture) plus slack; a failure bound, not a sleep.
const REATTACH_PATIENCE: Duration = Duration::from_secs(60);
/// The bound on each stretch of the transfer; after the rebinding it includes TCP's backoff.
const STRETCH_PATIENCE: Duration = Duration::from_secs(90);

#[test]
fn the_session_survives_a_nat_rebinding_with_one_reattach() {
    let t = Tunnel::up_with(TunnelOptions {
        nat_on_wifi: true,
        ..TunnelOptions::default()
    });
    let nat = t.nat.as_ref().expect("the fixture built a NAT");
    let before = t.peer();
    assert_eq!(before.ip(), IpAddr::V4(nat.outside_address()));
    assert!(
        Nat::PORTS.contains(&before.port()),
        "the gateway sees the NAT's mapping, not the client's port: {before}"
    );

    let transfer = Transfer::start(&t, payload(PAYLOAD_LEN));
    transfer.wait_for(&t, PAYLOAD_LEN / 3, STRETCH_PATIENCE);
    nat.rebind(&REBOUND_PORTS);
    let rebound = Instant::now();
    assert!(
        transfer.received() < PAYLOAD_LEN,
        "the rebinding came after the transfer ended: nothing was tested"
    );

    let deadline = rebound + REATTACH_PATIENCE;
    while t.f.audit_versions(t.session).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no reattach within {REATTACH_PATIENCE:?} of the NAT rebinding\nclient log:\n{}",
            t.client_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "the client reattached {:?} after the NAT rebinding",
        rebound.elapsed()
    );
    let took = transfer.finish(&t, STRETCH_PATIENCE);
    eprintln!("{PAYLOAD_LEN} bytes across a NAT rebinding in {took:?}");

    let after = t.peer();
    assert_eq!(after.ip(), IpAddr::V4(nat.outside_address()));
    assert!(
        REBOUND_PORTS.contains(&after.port()),
        "the gateway follows the NAT's new mapping: {before} -> {after}"
    );
    assert_eq!(
        t.f.audit_versions(t.session),
        vec![1, 2],
        "exactly one reattach, same session"
    );
}
