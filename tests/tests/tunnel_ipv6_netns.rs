//! The tunnel over an IPv6 outside: the client's uplinks and the gateway's address are IPv6 (the
//! client dials `[fd00:200::1]:51900`), the tunnel inside stays IPv4. A TCP transfer of a known
//! payload survives jumps between the uplinks, each made at a set fraction of the transfer; the
//! gateway binds the session to the IPv6 address of the uplink in use.
//!
//! ```text
//!  gateway ns: jvpn gateway, TUN 10.99.0.1, TCP server :5201, <gw> fd00:200::1 (XDP)
//!       || veth
//!  router ns:  fd00:200::2, wifi side fd00:201:1::1, lte side fd00:201:2::1 (forwarding)
//!       || wifi                    || lte
//!  client ns:  jvpn client, TUN 10.99.0.2, wifi fd00:201:1::2, lte fd00:201:2::2
//! ```

use jvpn_tests::topology::Family;
use jvpn_tests::transfer::Transfer;
use jvpn_tests::tunnel::{payload, Tunnel, TunnelOptions};
use std::net::{IpAddr, Ipv6Addr};
use std::time::Duration;

const PAYLOAD_LEN: usize = 8_000_000;
const JUMPS: u64 = 4;
/// The bound on each stretch of the transfer between jumps; a failure bound, not a sleep.
const STRETCH_PATIENCE: Duration = Duration::from_secs(60);
/// The client's addresses on wifi and lte.
const WIFI: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x201, 1, 0, 0, 0, 0, 2);
const LTE: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x201, 2, 0, 0, 0, 0, 2);

#[test]
fn a_tcp_transfer_over_an_ipv6_outside_survives_jumps() {
    let t = Tunnel::up_with(TunnelOptions {
        outer: Family::V6,
        ..TunnelOptions::default()
    });
    assert_eq!(
        t.peer().ip(),
        IpAddr::V6(WIFI),
        "the handshake came over wifi"
    );

    let transfer = Transfer::start(&t, payload(PAYLOAD_LEN));
    for jump in 1..=JUMPS {
        let mark = PAYLOAD_LEN * jump as usize / (JUMPS as usize + 1);
        transfer.wait_for(&t, mark, STRETCH_PATIENCE);
        let (uplink, address) = if jump % 2 == 1 {
            (&t.lte, LTE)
        } else {
            (&t.wifi, WIFI)
        };
        assert_eq!(
            t.jump(uplink),
            jump + 1,
            "jump {jump} to {uplink}\n{}",
            t.logs()
        );
        assert_eq!(
            t.peer().ip(),
            IpAddr::V6(address),
            "after jump {jump} the gateway sends to {uplink}'s address"
        );
        assert!(
            transfer.received() < PAYLOAD_LEN,
            "jump {jump} came after the transfer ended: nothing was tested"
        );
    }
    let took = transfer.finish(&t, STRETCH_PATIENCE);
    eprintln!("{PAYLOAD_LEN} bytes and {JUMPS} jumps over IPv6 in {took:?}");

    t.only_session();
    assert_eq!(
        t.f.audit_versions(t.session),
        (1..=JUMPS + 1).collect::<Vec<_>>(),
        "version 1, then +1 per jump"
    );
}
