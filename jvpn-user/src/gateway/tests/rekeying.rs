//! Rekeying through the real handler (docs/rekey.md): a REKEY_INIT commits new keys at the next
//! version and its REKEY_ACK completes the client's side; a replayed REKEY_INIT, one sealed under
//! the wrong keys, one whose key exchange was made under the wrong keys, one claiming a stale
//! version and one from a spoofed source change nothing; a lost REKEY_ACK is sent again, byte for
//! byte, to the bound transport only, and switches the client once.

use super::*;
use crate::crypto::{open_body, RekeyInitiator, SessionKeys};
use jvpn_common::control::{Body, Reject, RekeyAck, RekeyInit};
use jvpn_common::wire::Be64;
use jvpn_common::RejectReason;

/// A REKEY_INIT of `session` claiming `claimed`, sealed under `keys` with `nonce`, whose Noise
/// message was made under `exchange_keys`.
fn rekey_init(
    session: &ClientSession,
    keys: &SessionKeys,
    exchange_keys: &SessionKeys,
    claimed: u64,
    nonce: u64,
) -> (RekeyInitiator, Vec<u8>) {
    let id = session.welcome.session_id.get();
    let (initiator, noise) = RekeyInitiator::start(exchange_keys, id, claimed).expect("start");
    let body = RekeyInit {
        acked_version: Be64::new(claimed),
        noise,
    };
    let header = WireHeader::new(MessageType::RekeyInit, id, claimed, nonce);
    let datagram =
        seal_message(keys, Direction::ClientToGateway, header, body.as_body()).expect("seal");
    (initiator, datagram)
}

fn version(h: &Harness, id: u64) -> u64 {
    h.controller
        .sessions
        .snapshot(id)
        .expect("the session")
        .0
        .state_version
}

fn reject_reason(keys: &SessionKeys, datagram: &[u8]) -> Option<RejectReason> {
    let (_, reject) = open_body::<Reject>(keys, Direction::GatewayToClient, datagram)
        .expect("a REJECT sealed under the session's keys");
    reject.reason()
}

#[test]
fn a_rekey_commits_new_keys_at_the_next_version_and_its_ack_completes_it() {
    let h = Harness::new();
    let session = h.session();
    let id = session.welcome.session_id.get();
    let (initiator, datagram) = rekey_init(&session, &session.keys, &session.keys, 1, 1);
    let seen = h.step(&datagram, h.client_addr, T0);
    let answer = sent_to(&seen, h.client_addr).pop().expect("a REKEY_ACK");
    let (header, ack) = open_body::<RekeyAck>(&session.keys, Direction::GatewayToClient, &answer)
        .expect("the REKEY_ACK is sealed under the keys of the REKEY_INIT");
    assert_eq!(header.state_version.get(), 2);
    assert_eq!(ack.new_version.get(), 2);
    let new_keys = initiator
        .finish(&session.keys, &ack.noise)
        .expect("the ACK completes the exchange");

    let (committed, live_keys) = h.controller.sessions.snapshot(id).expect("the session");
    assert_eq!(committed.state_version, 2);
    assert_eq!(*live_keys, new_keys, "the gateway runs on the new keys");
    assert_eq!(h.entry(id).expect("map entry").state_version, 2);
    let sid = crate::session::SessionId::new(id).expect("nonzero");
    let stored = h.store.get(sid).expect("load").expect("stored");
    assert_eq!(stored.state_version, 2);
    assert_eq!(
        &stored.secrets[..],
        &new_keys.to_stored()[..],
        "the store holds the new keys"
    );
    let audit = h.store.audit(sid).expect("audit");
    let last = audit.last().expect("an audit record");
    assert_eq!(
        (last.from_version, last.to_version, last.cause.name()),
        (1, 2, "REKEY")
    );

    // Traffic under the new keys at the new version passes; under the old keys it does not.
    let packet = ipv4_packet([10, 99, 0, 2], [10, 99, 0, 1]);
    let header = WireHeader::new(MessageType::Data, id, 2, 2);
    let fresh = seal_message(&new_keys, Direction::ClientToGateway, header, &packet).expect("seal");
    assert_eq!(
        tun_packets(&h.step(&fresh, h.client_addr, T0)),
        vec![packet.clone()]
    );
    let worn = sealed(&session, MessageType::Data, 2, 3, &packet);
    assert!(tun_packets(&h.step(&worn, h.client_addr, T0)).is_empty());
}

#[test]
fn hostile_rekey_inits_change_nothing() {
    let h = Harness::new();
    let session = h.session();
    let id = session.welcome.session_id.get();
    let other_keys = SessionKeys::derive(&[7; 32], &[8; 32], &[9; 32]);
    let roamed_addr: SocketAddr = ROAMED.parse().expect("addr");
    let keys_before = h.controller.sessions.snapshot(id).expect("session").1;

    // Sealed under keys that are not the session's: unauthenticated, reported, never answered.
    let (_, forged) = rekey_init(&session, &other_keys, &other_keys, 1, 1);
    let seen = h.step(&forged, h.client_addr, T0);
    assert!(
        sent_to(&seen, h.client_addr).is_empty(),
        "a forgery gets no answer"
    );

    // Sealed under the session's keys, its key exchange under other keys: REJECT BAD_SEAL.
    let (_, wrong_exchange) = rekey_init(&session, &session.keys, &other_keys, 1, 2);
    let seen = h.step(&wrong_exchange, h.client_addr, T0);
    let answer = sent_to(&seen, h.client_addr).pop().expect("a REJECT");
    assert_eq!(
        reject_reason(&session.keys, &answer),
        Some(RejectReason::BadSeal)
    );

    // A stale claim: REJECT STALE_VERSION.
    let (_, stale) = rekey_init(&session, &session.keys, &session.keys, 0, 3);
    let seen = h.step(&stale, h.client_addr, T0);
    let answer = sent_to(&seen, h.client_addr).pop().expect("a REJECT");
    assert_eq!(
        reject_reason(&session.keys, &answer),
        Some(RejectReason::StaleVersion)
    );

    // From an address the session is not bound to (a spoofed source, or an unvalidated path).
    let (_, spoofed) = rekey_init(&session, &session.keys, &session.keys, 1, 4);
    let seen = h.step(&spoofed, roamed_addr, T0);
    let answer = sent_to(&seen, roamed_addr).pop().expect("a REJECT");
    assert_eq!(
        reject_reason(&session.keys, &answer),
        Some(RejectReason::TransportMismatch)
    );

    assert_eq!(version(&h, id), 1, "nothing moved the version");
    assert_eq!(
        h.controller.sessions.snapshot(id).expect("session").1,
        keys_before
    );

    // A genuine one commits. The same datagram replayed no longer opens under the new keys: it
    // changes nothing, and draws at most the kept REKEY_ACK again, the same bytes
    // (`gateway::lost_rekey_ack`), never a new one.
    let (_, genuine) = rekey_init(&session, &session.keys, &session.keys, 1, 5);
    let seen = h.step(&genuine, h.client_addr, T0);
    let ack = sent_to(&seen, h.client_addr);
    assert_eq!(ack.len(), 1, "the REKEY_ACK");
    assert_eq!(version(&h, id), 2);
    let keys_after = h.controller.sessions.snapshot(id).expect("session").1;
    let seen = h.step(&genuine, h.client_addr, T0);
    assert_eq!(
        sent_to(&seen, h.client_addr),
        ack,
        "a replay draws only the same REKEY_ACK"
    );
    assert_eq!(version(&h, id), 2, "the replay moved nothing");
    assert_eq!(
        h.controller.sessions.snapshot(id).expect("session").1,
        keys_after
    );
}

/// The reject-after rule through [`Controller::tick`]: keys as old as `reject_after_ms` end the
/// session (+1, REKEY_TIMEOUT in the audit) and its client gets a TERMINATE saying why.
#[test]
fn worn_out_keys_end_the_session_and_the_client_is_told_why() {
    use crate::config::gateway::DEFAULT_REJECT_AFTER_MS;
    use jvpn_common::control::{Terminate, TerminateCause};
    let h = Harness::new();
    let session = h.session();
    let id = session.welcome.session_id.get();
    // Traffic keeps the session ATTACHED; only the keys' age can end it.
    let packet = ipv4_packet([10, 99, 0, 2], [10, 99, 0, 1]);
    let almost = T0 + DEFAULT_REJECT_AFTER_MS - 1;
    h.step(
        &sealed(&session, MessageType::Data, 1, 1, &packet),
        h.client_addr,
        almost,
    );
    let seen = h.settle(h.controller.tick(almost), &[], almost);
    assert!(sent_to(&seen, h.client_addr).is_empty());
    assert_eq!(version(&h, id), 1, "not yet");

    let at = T0 + DEFAULT_REJECT_AFTER_MS;
    let seen = h.settle(h.controller.tick(at), &[], at);
    let (committed, _) = h.controller.sessions.snapshot(id).expect("the session");
    assert_eq!(
        (committed.state, committed.state_version),
        (jvpn_common::SessionState::Terminated, 2)
    );
    let sid = crate::session::SessionId::new(id).expect("nonzero");
    let audit = h.store.audit(sid).expect("audit");
    assert_eq!(
        audit.last().expect("a record").cause.name(),
        "REKEY_TIMEOUT"
    );
    let told = sent_to(&seen, h.client_addr).pop().expect("a TERMINATE");
    let (_, terminate) = open_body::<Terminate>(&session.keys, Direction::GatewayToClient, &told)
        .expect("sealed under the session's keys");
    assert_eq!(terminate.cause(), Some(TerminateCause::RekeyTimeout));
}

/// A STALE_VERSION drop of the XDP program, as the event stream reports it.
fn stale_drop(
    id: u64,
    from: &str,
    message: MessageType,
    version: u64,
    frame_len: u32,
) -> crate::dataplane::DataplaneEvent {
    crate::dataplane::DataplaneEvent {
        reason: RejectReason::StaleVersion,
        source: from.parse().expect("addr"),
        session_id: id,
        state_version: version,
        nonce: 99,
        msg_type: Some(message),
        frame_len,
        monotonic_ns: 1,
        at: std::time::SystemTime::now(),
    }
}

/// A REKEY_ACK lost on the way (`gateway::lost_rekey_ack`): the client's retried REKEY_INIT
/// (through the controller's own path) and its DATA at the old version (an XDP STALE_VERSION
/// drop) get the same ACK again, byte for byte, at the bound transport only; the real client
/// core switches its keys once on it; and nothing moves the version a second time.
#[test]
fn a_lost_rekey_ack_is_sent_again_byte_for_byte_and_the_client_switches_once() {
    use super::super::lost_rekey_ack::ACK_RESENDS;
    use crate::client_session::{ClientEvent, ClientSessionState};
    let h = Harness::new();
    let mut client = ClientSessionState::new(h.session()).expect("the session");
    let id = client.session_id();
    let init = client.rekey_init().expect("REKEY_INIT");
    let seen = h.step(&init, h.client_addr, T0);
    let ack = sent_to(&seen, h.client_addr).pop().expect("the REKEY_ACK");
    assert_eq!(version(&h, id), 2);
    // The ACK is lost. The client retries a second later, still at version 1.
    let retry = client.rekey_init().expect("REKEY_INIT");
    let at = T0 + 1_000;
    let seen = h.step(&retry, h.client_addr, at);
    assert_eq!(sent_to(&seen, h.client_addr), vec![ack.clone()]);
    assert_eq!(version(&h, id), 2, "a retry commits nothing");

    // XDP's drop of its DATA at version 1 (a frame as long as the ACK's) gets it too; from
    // elsewhere, for another version, or smaller than the ACK's frame, nothing.
    let frame = 42 + ack.len() as u32;
    let resend = |event| h.settle(h.controller.on_dataplane_drop(&event, at), &[], at);
    for (event, what) in [
        (
            stale_drop(id, ROAMED, MessageType::Data, 1, 1_500),
            "a spoofed source",
        ),
        (
            stale_drop(id, CLIENT, MessageType::Data, 0, 1_500),
            "another version",
        ),
        (
            stale_drop(id, CLIENT, MessageType::Keepalive, 1, frame - 1),
            "a smaller frame",
        ),
        (
            stale_drop(id, CLIENT, MessageType::Hello, 1, 1_500),
            "a HELLO",
        ),
    ] {
        let seen = resend(event);
        assert!(
            seen.iter().all(|s| !matches!(s, Seen::Sent(..))),
            "{what}: {seen:?}"
        );
    }
    let seen = resend(stale_drop(id, CLIENT, MessageType::Data, 1, frame));
    assert_eq!(sent_to(&seen, h.client_addr), vec![ack.clone()]);

    // The client takes the first copy and refuses the next as a replay.
    assert_eq!(
        client.handle(&ack),
        Ok(ClientEvent::Rekeyed { new_version: 2 })
    );
    assert!(client.handle(&ack).is_err());
    assert_eq!((client.acked_version(), client.rekeys_completed()), (2, 1));
    let (_, gateway_keys) = h.controller.sessions.snapshot(id).expect("the session");

    // A bounded number of copies: the budget of resends is spent after ACK_RESENDS.
    for _ in 2..ACK_RESENDS {
        let seen = resend(stale_drop(id, CLIENT, MessageType::Data, 1, frame));
        assert_eq!(sent_to(&seen, h.client_addr).len(), 1);
    }
    let seen = resend(stale_drop(id, CLIENT, MessageType::Data, 1, frame));
    assert!(sent_to(&seen, h.client_addr).is_empty(), "spent");

    // The original REKEY_INIT replayed commits nothing and draws nothing more.
    let seen = h.step(&init, h.client_addr, at);
    assert!(sent_to(&seen, h.client_addr).is_empty());
    assert_eq!(version(&h, id), 2);
    assert_eq!(
        h.controller.sessions.snapshot(id).expect("the session").1,
        gateway_keys,
        "the keys of the one commit"
    );
    let sid = crate::session::SessionId::new(id).expect("nonzero");
    let rekeys = h.store.audit(sid).expect("audit");
    assert_eq!(
        rekeys.iter().filter(|r| r.cause.name() == "REKEY").count(),
        1,
        "one REKEY in the audit"
    );

    // The client's DATA under the new keys reaches the TUN.
    let packet = ipv4_packet([10, 99, 0, 2], [10, 99, 0, 1]);
    let up = client.seal_data(&packet).expect("seal");
    assert_eq!(tun_packets(&h.step(&up, h.client_addr, at)), vec![packet]);
}

/// The kept ACK goes when the client proves it switched (a message at the new version) or when
/// the window passes; a forged header draws nothing.
#[test]
fn a_kept_rekey_ack_ends_with_the_clients_switch_or_its_window() {
    use super::super::lost_rekey_ack::ACK_RESEND_WINDOW_MS;
    use crate::client_session::ClientSessionState;
    let frame = 1_500;
    let drop_at = |h: &Harness, id, now| {
        let event = stale_drop(id, CLIENT, MessageType::Data, 1, frame);
        sent_to(
            &h.settle(h.controller.on_dataplane_drop(&event, now), &[], now),
            h.client_addr,
        )
    };

    // The window passes.
    let h = Harness::new();
    let mut client = ClientSessionState::new(h.session()).expect("the session");
    let id = client.session_id();
    let init = client.rekey_init().expect("REKEY_INIT");
    h.step(&init, h.client_addr, T0);
    assert!(drop_at(&h, id, T0 + ACK_RESEND_WINDOW_MS).is_empty());

    // The client switched: its KEEPALIVE at version 2 went through.
    let h = Harness::new();
    let mut client = ClientSessionState::new(h.session()).expect("the session");
    let id = client.session_id();
    let init = client.rekey_init().expect("REKEY_INIT");
    let ack = sent_to(&h.step(&init, h.client_addr, T0), h.client_addr)
        .pop()
        .expect("the REKEY_ACK");
    client.handle(&ack).expect("the keys switch");
    let keepalive = client.keepalive().expect("KEEPALIVE");
    h.step(&keepalive, h.client_addr, T0);
    assert!(drop_at(&h, id, T0).is_empty());

    // A message whose header tag fails (not the session's header key) draws nothing.
    let h = Harness::new();
    let session = h.session();
    let id = session.welcome.session_id.get();
    let (_, init) = rekey_init(&session, &session.keys, &session.keys, 1, 1);
    h.step(&init, h.client_addr, T0);
    let other_keys = SessionKeys::derive(&[7; 32], &[8; 32], &[9; 32]);
    let (_, forged) = rekey_init(&session, &other_keys, &other_keys, 1, 2);
    assert!(sent_to(&h.step(&forged, h.client_addr, T0), h.client_addr).is_empty());
    assert_eq!(version(&h, id), 2);
}
