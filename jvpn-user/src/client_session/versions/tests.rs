use super::*;
use jvpn_common::control::{PathChallenge, ReattachAck, Reject, Terminate, TerminateCause};
use jvpn_common::wire::Be64;
use jvpn_common::{RejectReason, TransportBinding};

/// How a verdict is classified in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Accept,
    Drop,
    Fatal,
}
use Class::*;

fn classify(result: Result<(), SessionRefusal>) -> Class {
    match result {
        Ok(()) => Accept,
        Err(e) if e.is_fatal() => Fatal,
        Err(_) => Drop,
    }
}

fn challenge(attempt: u64) -> GatewayMessage<'static> {
    GatewayMessage::PathChallenge(PathChallenge {
        token: [7; 32],
        attempt: Be64::new(attempt),
    })
}

fn ack(new_version: u64) -> GatewayMessage<'static> {
    GatewayMessage::ReattachAck(ReattachAck {
        new_version: Be64::new(new_version),
        binding: TransportBinding::from_v4([192, 0, 2, 1], 4000),
    })
}

fn reject(gateway_version: u64) -> GatewayMessage<'static> {
    GatewayMessage::Reject(Reject::new(
        RejectReason::PathValidation,
        gateway_version,
        9,
    ))
}

fn terminate() -> GatewayMessage<'static> {
    GatewayMessage::Terminate(Terminate::new(TerminateCause::Operator))
}

const IDLE: Option<PendingReattach> = None;
const ASKED: Option<PendingReattach> = Some(PendingReattach {
    attempt: 3,
    challenged_version: None,
});
const CHALLENGED: Option<PendingReattach> = Some(PendingReattach {
    attempt: 3,
    challenged_version: Some(5),
});
const RECOVERING: Option<PendingReattach> = Some(PendingReattach {
    attempt: 3,
    challenged_version: Some(6),
});
const GATEWAY_CHALLENGED: Option<PendingReattach> = Some(PendingReattach {
    attempt: GATEWAY_CHALLENGE_ATTEMPT,
    challenged_version: Some(6),
});

/// Spec sections 5 and 10: every message type against versions below, at and above the
/// acknowledged version 5, with and without a pending reattach.
#[test]
fn version_rules_table() {
    let data = GatewayMessage::Data(&[0x45]);
    let keepalive = GatewayMessage::Keepalive;
    let table: Vec<(
        &str,
        Option<PendingReattach>,
        GatewayMessage<'static>,
        u64,
        Class,
    )> = vec![
        ("data at acked", IDLE, data.clone(), 5, Accept),
        ("data below acked", IDLE, data.clone(), 4, Drop),
        ("data far below acked", IDLE, data.clone(), 0, Drop),
        ("data above acked", IDLE, data.clone(), 6, Fatal),
        ("data far above acked", IDLE, data.clone(), u64::MAX, Fatal),
        ("data at acked while asking", ASKED, data.clone(), 5, Accept),
        (
            "data at acked+1 while asking",
            ASKED,
            data.clone(),
            6,
            Fatal,
        ),
        (
            "data at challenged+1 before ack",
            CHALLENGED,
            data.clone(),
            6,
            Drop,
        ),
        ("data at challenged+2", CHALLENGED, data.clone(), 7, Fatal),
        ("keepalive at acked", IDLE, keepalive.clone(), 5, Accept),
        ("keepalive above acked", IDLE, keepalive.clone(), 6, Fatal),
        ("keepalive below acked", IDLE, keepalive, 4, Drop),
        ("challenge at acked", ASKED, challenge(3), 5, Accept),
        (
            "challenge at acked+1 (recovering)",
            ASKED,
            challenge(3),
            6,
            Accept,
        ),
        ("challenge at acked+2", ASKED, challenge(3), 7, Fatal),
        ("challenge below acked", ASKED, challenge(3), 4, Drop),
        ("challenge nothing pending", IDLE, challenge(3), 5, Drop),
        (
            "challenge acked+1 nothing pending",
            IDLE,
            challenge(3),
            6,
            Fatal,
        ),
        ("challenge older attempt", ASKED, challenge(2), 5, Drop),
        (
            "gateway's own challenge at acked+1",
            IDLE,
            challenge(GATEWAY_CHALLENGE_ATTEMPT),
            6,
            Accept,
        ),
        (
            "gateway's own challenge at acked",
            IDLE,
            challenge(GATEWAY_CHALLENGE_ATTEMPT),
            5,
            Drop,
        ),
        (
            "gateway's own challenge at acked+2",
            IDLE,
            challenge(GATEWAY_CHALLENGE_ATTEMPT),
            7,
            Fatal,
        ),
        (
            "gateway's own challenge during a reattach",
            ASKED,
            challenge(GATEWAY_CHALLENGE_ATTEMPT),
            6,
            Drop,
        ),
        (
            "gateway's own challenge again",
            GATEWAY_CHALLENGED,
            challenge(GATEWAY_CHALLENGE_ATTEMPT),
            6,
            Accept,
        ),
        (
            "ack of the gateway's own challenge",
            GATEWAY_CHALLENGED,
            ack(7),
            7,
            Accept,
        ),
        (
            "challenge attempt never sent",
            ASKED,
            challenge(4),
            5,
            Fatal,
        ),
        (
            "second challenge higher",
            CHALLENGED,
            challenge(3),
            6,
            Accept,
        ),
        ("second challenge lower", RECOVERING, challenge(3), 5, Drop),
        ("ack at challenged+1", CHALLENGED, ack(6), 6, Accept),
        (
            "ack at challenged+1 (recovering)",
            RECOVERING,
            ack(7),
            7,
            Accept,
        ),
        ("ack at challenged+2", CHALLENGED, ack(7), 7, Fatal),
        (
            "ack at challenged (no increment)",
            RECOVERING,
            ack(6),
            6,
            Fatal,
        ),
        ("ack at acked after challenge", CHALLENGED, ack(5), 5, Drop),
        ("ack at acked without challenge", ASKED, ack(5), 5, Accept),
        ("ack at acked+1 without challenge", ASKED, ack(6), 6, Fatal),
        ("ack nothing pending at acked", IDLE, ack(5), 5, Drop),
        ("ack nothing pending above", IDLE, ack(6), 6, Fatal),
        ("ack below acked", CHALLENGED, ack(4), 4, Drop),
        ("ack body disagrees", CHALLENGED, ack(7), 6, Fatal),
        ("reject at acked", IDLE, reject(5), 5, Accept),
        ("reject at challenged", RECOVERING, reject(6), 6, Accept),
        ("reject ahead", IDLE, reject(6), 6, Fatal),
        ("reject below", IDLE, reject(4), 4, Drop),
        ("reject body disagrees", IDLE, reject(6), 5, Fatal),
        ("terminate at acked", IDLE, terminate(), 5, Accept),
        (
            "terminate at its own increment",
            IDLE,
            terminate(),
            6,
            Accept,
        ),
        ("terminate two ahead", IDLE, terminate(), 7, Fatal),
        (
            "terminate at challenged+1",
            RECOVERING,
            terminate(),
            7,
            Accept,
        ),
        ("terminate below", IDLE, terminate(), 4, Drop),
    ];
    for (name, pending, message, version, expected) in table {
        let view = VersionView { acked: 5, pending };
        let got = judge(view, version, &message);
        assert_eq!(classify(got.clone()), expected, "{name}: {got:?}");
    }
}

#[test]
fn ack_at_the_end_of_the_version_space_fails_closed() {
    let view = VersionView {
        acked: u64::MAX,
        pending: Some(PendingReattach {
            attempt: 1,
            challenged_version: Some(u64::MAX),
        }),
    };
    assert_eq!(
        judge(view, u64::MAX, &ack(u64::MAX)),
        Err(SessionRefusal::Ambiguous(Ambiguity::VersionOverflow(
            u64::MAX
        )))
    );
}
