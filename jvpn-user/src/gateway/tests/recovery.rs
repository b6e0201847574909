//! After lost maps: the gateway's own PATH_CHALLENGE of a RECOVERING session at its last
//! binding, answered by the real client core, re-attaches the session; nothing else about the
//! challenge moves it.

use super::*;
use crate::client_session::{ClientEvent, ClientSessionState};
use crate::crypto::open_body;
use crate::session::{Input, RecoverCause};
use jvpn_common::control::{PathChallenge, Reject, GATEWAY_CHALLENGE_ATTEMPT};
use jvpn_common::maps::SessionState;
use jvpn_common::{RejectReason, TransportBinding};

/// The keys the gateway holds for session `id` (the client core keeps its own copy).
fn keys(h: &Harness, id: u64) -> Arc<crate::crypto::SessionKeys> {
    h.gateway.sessions.snapshot(id).expect("held").1
}

/// A session moved to RECOVERING as a start with lost maps moves it.
async fn recovering(h: &Harness) -> (ClientSessionState, u64) {
    let client = ClientSessionState::new(h.session().await).expect("WELCOME at 1");
    let id = client.session_id();
    let input = Input::ForceRecover {
        cause: RecoverCause::DataplaneLost,
    };
    h.gateway.apply(id, input, T0).await.expect("RECOVERING");
    assert_eq!(h.gateway.recovering_ids(), vec![id]);
    (client, id)
}

/// The challenge goes to the last binding at the RECOVERING version with attempt 0; the real
/// client core answers it and the answer commits ATTACHED one version up, bound where it was.
#[tokio::test]
async fn a_recovering_session_is_challenged_and_reattaches_in_one_round_trip() {
    let h = Harness::new().await;
    let (mut client, id) = recovering(&h).await;
    assert!(h.gateway.challenge_recovering(id, T0).await);
    assert!(
        !h.gateway.challenge_recovering(id, T0).await,
        "one outstanding challenge per address"
    );
    let datagram = recv(&h.client).await.expect("a PATH_CHALLENGE");
    let (header, challenge) =
        open_body::<PathChallenge>(&keys(&h, id), Direction::GatewayToClient, &datagram)
            .expect("sealed for the client");
    assert_eq!(header.state_version.get(), 2, "at the RECOVERING version");
    assert_eq!(challenge.attempt.get(), GATEWAY_CHALLENGE_ATTEMPT);
    assert_eq!(
        h.entry(id).expect("entry").state_version,
        2,
        "nothing moved yet"
    );

    let Ok(ClientEvent::PathChallenge { response, .. }) = client.handle(&datagram) else {
        panic!("the client core answers the gateway's challenge");
    };
    h.gateway
        .on_path_response(&response, h.client_addr, T0 + 10)
        .await;
    let ack = recv(&h.client).await.expect("a REATTACH_ACK");
    assert!(matches!(
        client.handle(&ack),
        Ok(ClientEvent::ReattachAcked { new_version: 3, .. })
    ));
    let entry = h.entry(id).expect("entry");
    assert_eq!(entry.state_version, 3);
    assert_eq!(entry.state, SessionState::Attached as u8);
    assert_eq!(
        entry.transport,
        TransportBinding::from_socket_addr(h.client_addr)
    );
    assert!(h.gateway.recovering_ids().is_empty());
    assert!(
        !h.gateway.challenge_recovering(id, T0 + 20).await,
        "an ATTACHED session is not challenged"
    );
}

/// The challenge reflected back to the gateway (from anywhere) does not open; answered from
/// another address it is refused; answered twice it commits once. The session stays RECOVERING
/// at its version until the genuine answer from the binding.
#[tokio::test]
async fn a_reflected_or_misdirected_answer_moves_nothing() {
    let h = Harness::new().await;
    let (mut client, id) = recovering(&h).await;
    assert!(h.gateway.challenge_recovering(id, T0).await);
    let challenge = recv(&h.client).await.expect("a PATH_CHALLENGE");
    let attacker = UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("attacker socket");
    let attacker_addr = attacker.local_addr().expect("addr");

    for from in [attacker_addr, h.client_addr] {
        h.gateway.on_path_response(&challenge, from, T0).await;
        let entry = h.entry(id).expect("entry");
        assert_eq!(
            (entry.state_version, entry.state),
            (2, SessionState::Recovering as u8)
        );
    }
    assert!(
        recv(&attacker).await.is_none(),
        "nothing answers a datagram that does not open"
    );

    let Ok(ClientEvent::PathChallenge { response, .. }) = client.handle(&challenge) else {
        panic!("the client core answers the gateway's challenge");
    };
    h.gateway
        .on_path_response(&response, attacker_addr, T0)
        .await;
    let refusal = recv(&attacker).await.expect("a REJECT");
    let (_, reject) =
        open_body::<Reject>(&keys(&h, id), Direction::GatewayToClient, &refusal).expect("sealed");
    assert_eq!(reject.reason(), Some(RejectReason::PathValidation));
    let entry = h.entry(id).expect("entry");
    assert_eq!(
        (entry.state_version, entry.state),
        (2, SessionState::Recovering as u8)
    );
    assert_eq!(
        entry.transport,
        TransportBinding::from_socket_addr(h.client_addr),
        "the binding did not move to the attacker"
    );
}
