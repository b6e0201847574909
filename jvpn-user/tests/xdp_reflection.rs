//! The real jvpn XDP object through `BPF_PROG_TEST_RUN`, against issue 8's reflection attack: a
//! gateway-to-client DATA or KEEPALIVE sent back to the gateway from the client's bound address
//! must not move the client-to-gateway replay window (its nonce, `epoch << 40 | n`, would make
//! every genuine client nonce too old), and no message may leap the window further than
//! `abi::NONCE_MAX_LEAP`.
//!
//! The session's keys are real `SessionKeys` and its messages are sealed by `crypto::seal` as the
//! gateway and the client seal them; the map entry holds what the gateway writes there, the
//! client-to-gateway header key.
//!
//! Runs as root (loading BPF programs needs it); each test loads its own copy of the object.

mod xdp_support;

use jvpn_common::abi::NONCE_MAX_LEAP;
use jvpn_common::maps::DataplaneMode;
use jvpn_common::reason::COUNTER_ACCEPTED;
use jvpn_common::{MessageType, RejectReason, SessionState, WireHeader};
use jvpn_user::crypto::{seal_message, Direction, SessionKeys};
use xdp_support::*;

const SESSION: u64 = 0x0001_0000_0000_0042;
const VERSION: u64 = 3;
/// A gateway boot epoch, in the high bits of every gateway-to-client nonce.
const GATEWAY_NONCES: u64 = 7 << 40;

/// A session's keys, as both ends hold them after the handshake.
fn keys() -> SessionKeys {
    let stored: Vec<u8> = (0..SessionKeys::STORED_LEN as u8).collect();
    SessionKeys::from_stored(stored.as_slice().try_into().expect("stored key length"))
}

/// A DATA (with a body) or KEEPALIVE sealed by `direction`'s sender.
fn sealed(keys: &SessionKeys, direction: Direction, t: MessageType, nonce: u64) -> Vec<u8> {
    let body: &[u8] = match t {
        MessageType::Data => b"\x45 an IP packet, as far as XDP cares",
        _ => b"",
    };
    let header = WireHeader::new(t, SESSION, VERSION, nonce);
    seal_message(keys, direction, header, body).expect("sealing a test message")
}

/// A dataplane holding the session as the gateway writes it, with client nonces 1..=`sent`
/// already accepted.
fn attached(keys: &SessionKeys, f: &Family, sent: u64) -> TestDataplane {
    let mut dp = TestDataplane::load(16);
    dp.set_config(config(DataplaneMode::Enforce));
    let key = *keys.header_key(Direction::ClientToGateway);
    dp.set_session(
        SESSION,
        session(SessionState::Attached, VERSION, key, f.client),
    );
    for nonce in 1..=sent {
        let datagram = sealed(keys, Direction::ClientToGateway, MessageType::Data, nonce);
        assert_eq!(dp.run(&f.frame(datagram)), XDP_PASS, "client nonce {nonce}");
    }
    assert_eq!(dp.replay_max(SESSION), Some(sent));
    dp.events();
    dp
}

#[test]
fn a_reflected_gateway_message_is_a_bad_tag_and_moves_nothing() {
    require_root("xdp_reflection");
    let keys = keys();
    for f in [Family::v4(None), Family::v6(Some(7))] {
        let mut dp = attached(&keys, &f, 5);
        for (i, t) in [MessageType::Data, MessageType::Keepalive]
            .into_iter()
            .enumerate()
        {
            let reflected = sealed(
                &keys,
                Direction::GatewayToClient,
                t,
                GATEWAY_NONCES | (i as u64 + 1),
            );
            let before = dp.counters();
            assert_eq!(
                dp.run(&f.frame(reflected)),
                XDP_DROP,
                "a reflected {t:?} passed"
            );
            let moved = counter_delta(&before, &dp.counters());
            assert_eq!(moved.len(), 1, "{t:?}: one counter moves: {moved:?}");
            assert_eq!(moved[0].0, RejectReason::BadTag.counter_slot(), "{t:?}");
            let events = dp.events();
            assert_eq!(events.len(), 1, "{t:?}: one event");
            assert_eq!(events[0].reason, RejectReason::BadTag.code());
            assert_eq!(events[0].session_id, SESSION);
            assert_eq!(
                dp.replay_max(SESSION),
                Some(5),
                "a reflected {t:?} moved the client's replay window"
            );
        }
        // The client's next messages still pass.
        for nonce in [6, 7] {
            let next = sealed(
                &keys,
                Direction::ClientToGateway,
                MessageType::Keepalive,
                nonce,
            );
            assert_eq!(dp.run(&f.frame(next)), XDP_PASS, "client nonce {nonce}");
        }
        assert_eq!(dp.replay_max(SESSION), Some(7));
    }
}

#[test]
fn a_nonce_past_the_leap_is_too_far_and_moves_nothing() {
    require_root("xdp_reflection");
    let keys = keys();
    let f = Family::v4(None);
    let mut dp = attached(&keys, &f, 5);
    let cases = [
        (MessageType::Data, 5 + NONCE_MAX_LEAP + 1),
        (MessageType::Keepalive, GATEWAY_NONCES | 1),
        (MessageType::ReattachRequest, 5 + NONCE_MAX_LEAP + 1),
        (MessageType::Terminate, u64::MAX / 2),
    ];
    for (t, nonce) in cases {
        // Correctly tagged client messages (XDP reads no body of control messages).
        let datagram = message(
            t,
            SESSION,
            VERSION,
            nonce,
            keys.header_key(Direction::ClientToGateway),
            32,
        );
        let before = dp.counters();
        assert_eq!(
            dp.run(&f.frame(datagram)),
            XDP_DROP,
            "{t:?} nonce {nonce:#x}"
        );
        let moved = counter_delta(&before, &dp.counters());
        assert_eq!(moved.len(), 1, "{t:?}: one counter moves: {moved:?}");
        assert_eq!(
            moved[0].0,
            RejectReason::NonceTooFar.counter_slot(),
            "{t:?}"
        );
        let events = dp.events();
        assert_eq!(events.len(), 1, "{t:?}: one event");
        assert_eq!(events[0].reason, RejectReason::NonceTooFar.code());
        assert_eq!(events[0].nonce, nonce);
        assert_eq!(dp.replay_max(SESSION), Some(5), "{t:?} moved the window");
    }
    // The farthest leap allowed still passes, and the normal next nonce after it.
    let before = dp.counters();
    for nonce in [6, 6 + NONCE_MAX_LEAP, 7 + NONCE_MAX_LEAP] {
        let next = sealed(&keys, Direction::ClientToGateway, MessageType::Data, nonce);
        assert_eq!(dp.run(&f.frame(next)), XDP_PASS, "nonce {nonce:#x}");
    }
    let moved = counter_delta(&before, &dp.counters());
    assert_eq!(moved.len(), 1, "{moved:?}");
    assert_eq!((moved[0].0, moved[0].1), (COUNTER_ACCEPTED, 3));
    assert_eq!(dp.replay_max(SESSION), Some(7 + NONCE_MAX_LEAP));
}
