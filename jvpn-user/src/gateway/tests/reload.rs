//! `Gateway::reload` through the real handlers: a removed client's session ends with a sealed
//! TERMINATE it can read, an invalid file changes nothing, and a handshake read before a reload
//! that removed its client does not survive it.

use super::*;
use crate::crypto::open_message;
use jvpn_common::control::{Body as _, Terminate, TerminateCause};
use jvpn_common::SessionState;

/// Writes a config with the harness's gateway key and `clients`; returns its path.
fn write_config(h: &Harness, clients: &str) -> std::path::PathBuf {
    let path = h._dir.path().join("gateway.toml");
    let text = format!(
        "private_key = \"{}\"\n[tunnel]\nipv4 = \"10.99.0.1/24\"\n{clients}",
        h.gateway.settings.get().private_key.to_base64().as_str()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// The harness's own client list, as `Harness::new` wrote it.
fn alice(h: &Harness) -> String {
    format!(
        "[[client]]\nname = \"alice\"\npublic_key = \"{}\"\nipv4 = \"10.99.0.2\"\n",
        h.identity.private_key.public_key().to_base64()
    )
}

/// The state of session `id` in the gateway's table.
fn state(h: &Harness, id: u64) -> Option<(SessionState, u64)> {
    h.gateway
        .sessions
        .snapshot(id)
        .map(|(s, _)| (s.state, s.state_version))
}

#[tokio::test]
async fn an_invalid_file_changes_nothing_and_a_removal_terminates_with_a_readable_terminate() {
    let h = Harness::new().await;
    let session = h.session().await;
    let id = session.welcome.session_id.get();

    let path = write_config(&h, &format!("{}bogus = 1\n", alice(&h)));
    let error = h
        .gateway
        .reload(&path, T0)
        .await
        .expect_err("an unknown field");
    assert!(error.to_string().contains("gateway.toml:8:"), "{error}");
    assert_eq!(state(&h, id), Some((SessionState::Attached, 1)));

    let path = write_config(&h, &alice(&h));
    let report = h.gateway.reload(&path, T0).await.expect("the same config");
    assert_eq!((report.unchanged, report.terminated.len()), (1, 0));
    assert_eq!(
        state(&h, id),
        Some((SessionState::Attached, 1)),
        "untouched"
    );

    let path = write_config(&h, "");
    let report = h.gateway.reload(&path, T0).await.expect("alice removed");
    assert_eq!(report.removed, vec!["alice".to_string()]);
    assert_eq!(
        report.terminated,
        vec![crate::control::EndedSession { id, version: 2 }]
    );
    assert_eq!(state(&h, id), Some((SessionState::Terminated, 2)));
    assert_eq!(
        h.entry(id).map(|e| e.state),
        Some(SessionState::Terminated as u8),
        "the XDP entry drops its packets"
    );
    let datagram = recv(&h.client).await.expect("a TERMINATE");
    let (header, body) =
        open_message(&session.keys, Direction::GatewayToClient, &datagram).expect("sealed");
    assert_eq!(header.message_type(), Some(MessageType::Terminate));
    assert_eq!(header.state_version.get(), 2);
    assert_eq!(
        Terminate::from_body(&body)
            .expect("a TERMINATE body")
            .cause(),
        Some(TerminateCause::ClientRemoved)
    );
}

#[tokio::test]
async fn a_handshake_read_before_a_reload_that_removed_its_client_is_revoked() {
    let h = Harness::new().await;
    let (_, hello) = Harness::hello(&h.identity);
    let job = h
        .gateway
        .screen_hello(&hello, h.client_addr, T0)
        .expect("screened");
    let read = h
        .gateway
        .read_hello(job)
        .expect("read under the old config");
    let path = write_config(&h, "");
    h.gateway.reload(&path, T0).await.expect("alice removed");
    h.gateway.finish_hello(read).await;
    let ids = h.gateway.sessions.ids();
    assert_eq!(ids.len(), 1, "the session was committed");
    assert_eq!(
        state(&h, ids[0]),
        Some((SessionState::Terminated, 2)),
        "and revoked at once"
    );
}
