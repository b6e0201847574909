//! The slot hint end to end (layout v5, docs/protocol.md "Slot hint"): on the wire between the real
//! `jvpn gateway` and the real `jvpn client`, the gateway names its session's slot in the headers
//! it sends, the client echoes it in its DATA, and a jump (a replaced entry, which keeps its slot)
//! teaches the same slot on the new uplink through the REATTACH_ACK. Each end is unit-tested on
//! its own (`gateway/tests/paths.rs`, `the_client_echoes_the_slot_its_gateway_names`); this is
//! the check that the two meet on a running tunnel, so the XDP program's one-line fast path is
//! the path real traffic takes.
//!
//! ```text
//!  gateway ns: jvpn gateway, TUN 10.99.0.1, TCP server :5201, <gw> 10.200.0.1 (XDP, :51900)
//!       || veth
//!  router ns:  10.200.0.2 | wifi side 10.201.1.1 | lte side 10.201.2.1
//!       || wifi (recorded)     || lte (recorded after the jump)
//!  client ns:  jvpn client, TUN 10.99.0.2, wifi 10.201.1.2, lte 10.201.2.2
//! ```

use jvpn_common::abi::DEFAULT_PORT;
use jvpn_common::MessageType;
use jvpn_tests::attacker::{is_message, jvpn_header};
use jvpn_tests::capture::{Capture, Frame};
use jvpn_tests::transfer::Transfer;
use jvpn_tests::tunnel::{payload, Tunnel};
use std::time::Duration;

const PAYLOAD_LEN: usize = 4_000_000;
const TRANSFER_PATIENCE: Duration = Duration::from_secs(90);

fn is_jvpn(frame: &Frame) -> bool {
    frame
        .udp()
        .is_some_and(|u| u.source.port() == DEFAULT_PORT || u.destination.port() == DEFAULT_PORT)
}

/// The slot hints of the recorded messages of `kind`, sent by the client (`outgoing`) or received
/// from the gateway, in recording order.
fn hints(frames: &[Frame], kind: MessageType, outgoing: bool) -> Vec<Option<u32>> {
    frames
        .iter()
        .filter(|fr| fr.outgoing == outgoing && is_message(fr, kind))
        .map(|fr| jvpn_header(fr).expect("a jvpn frame").hinted_slot())
        .collect()
}

/// The one slot every gateway DATA in `frames` names.
fn gateway_slot(frames: &[Frame], t: &Tunnel) -> u32 {
    let from_gateway = hints(frames, MessageType::Data, false);
    assert!(!from_gateway.is_empty(), "gateway DATA recorded");
    let slot =
        from_gateway[0].unwrap_or_else(|| panic!("the gateway's DATA names no slot\n{}", t.logs()));
    assert!(
        from_gateway.iter().all(|h| *h == Some(slot)),
        "every gateway DATA names the same slot {slot}: {from_gateway:?}"
    );
    slot
}

/// Asserts every client DATA in `frames` echoes `slot` (the WELCOME and the REATTACH_ACK name
/// it, so not even the first DATA of a session or of an uplink goes without it).
fn assert_client_echoes(frames: &[Frame], slot: u32, uplink: &str) {
    let from_client = hints(frames, MessageType::Data, true);
    assert!(!from_client.is_empty(), "client DATA recorded on {uplink}");
    assert!(
        from_client.iter().all(|h| *h == Some(slot)),
        "every client DATA on {uplink} echoes slot {slot}: {from_client:?}"
    );
}

#[test]
fn the_client_echoes_the_slot_its_gateway_names_and_a_jump_keeps_it() {
    let t = Tunnel::up();
    let on_wifi = Capture::start(&t.client, &t.wifi, is_jvpn);
    let transfer = Transfer::start(&t, payload(PAYLOAD_LEN));
    transfer.wait_for(&t, PAYLOAD_LEN / 2, TRANSFER_PATIENCE);
    let wifi_frames = on_wifi.stop();
    let slot = gateway_slot(&wifi_frames, &t);
    assert_client_echoes(&wifi_frames, slot, "wifi");

    let on_lte = Capture::start(&t.client, &t.lte, is_jvpn);
    assert_eq!(t.jump(&t.lte), 2, "the jump commits version 2");
    transfer.finish(&t, TRANSFER_PATIENCE);
    let lte_frames = on_lte.stop();
    let acks = hints(&lte_frames, MessageType::ReattachAck, false);
    assert!(
        !acks.is_empty() && acks.iter().all(|h| *h == Some(slot)),
        "the REATTACH_ACK on lte names the session's slot {slot}: {acks:?}\n{}",
        t.logs()
    );
    assert_eq!(
        gateway_slot(&lte_frames, &t),
        slot,
        "a replaced entry keeps its slot"
    );
    assert_client_echoes(&lte_frames, slot, "lte");
    assert_eq!(t.f.audit_versions(t.session), vec![1, 2]);
    t.only_session();
}
