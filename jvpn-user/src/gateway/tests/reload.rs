//! [`Controller::reload`] through the real handlers: a removed client's session ends with a
//! sealed TERMINATE it can read, a setting only a restart can change is refused with nothing
//! changed, and a handshake read before a reload that removed its client does not survive it.

use super::*;
use crate::crypto::open_message;
use jvpn_common::control::{Body as _, Terminate, TerminateCause};
use jvpn_common::SessionState;

/// A config with the harness's gateway key, `first` lines before the tunnel table and `clients`.
fn config(h: &Harness, first: &str, clients: &str) -> GatewaySettings {
    let text = format!(
        "{first}private_key = \"{}\"\n[tunnel]\nipv4 = \"10.99.0.1/24\"\n{clients}",
        h.controller.settings.get().private_key.to_base64().as_str()
    );
    GatewaySettings::parse(&h._dir.path().join("gateway.toml"), &text).expect("a valid config")
}

/// The harness's own client list, as `Harness::with` wrote it.
fn alice(h: &Harness) -> String {
    format!(
        "[[client]]\nname = \"alice\"\npublic_key = \"{}\"\nipv4 = \"10.99.0.2\"\n",
        h.identity.private_key.public_key().to_base64()
    )
}

/// The state of session `id` in the controller's table.
fn state(h: &Harness, id: u64) -> Option<(SessionState, u64)> {
    h.controller
        .sessions
        .snapshot(id)
        .map(|(s, _)| (s.state, s.state_version))
}

#[test]
fn a_restart_setting_changes_nothing_and_a_removal_terminates_with_a_readable_terminate() {
    let h = Harness::new();
    let session = h.session();
    let id = session.welcome.session_id.get();

    let mut out = Vec::new();
    let moved = config(&h, "port = 51999\n", "");
    assert_eq!(h.controller.reload(moved, T0, &mut out), Err("port"));
    assert!(out.is_empty(), "nothing to do: {out:?}");
    assert_eq!(state(&h, id), Some((SessionState::Attached, 1)));

    let report = h
        .controller
        .reload(config(&h, "", &alice(&h)), T0, &mut out)
        .expect("the same clients");
    assert_eq!(report.unchanged, 1);
    assert!(out.is_empty(), "nobody is touched: {out:?}");

    let report = h
        .controller
        .reload(config(&h, "", ""), T0, &mut out)
        .expect("alice removed");
    assert_eq!(report.removed, vec!["alice".to_string()]);
    let seen = h.settle(std::mem::take(&mut out), &[], T0);
    assert_eq!(state(&h, id), Some((SessionState::Terminated, 2)));
    assert_eq!(
        h.entry(id).map(|e| e.state),
        Some(SessionState::Terminated as u8),
        "the XDP entry drops its packets"
    );
    let datagram = sent_to(&seen, h.client_addr).pop().expect("a TERMINATE");
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

#[test]
fn a_handshake_read_before_a_reload_that_removed_its_client_is_revoked() {
    let h = Harness::new();
    let (_, mut hello) = Harness::hello(&h.identity);
    let mut out = Vec::new();
    h.controller.handle(&mut hello, h.client_addr, T0, &mut out);
    let job = out
        .into_iter()
        .find_map(|e| match e {
            Effect::QueueHello(job) => Some(job),
            _ => None,
        })
        .expect("the HELLO is queued");
    // The handshake is read (and its commit decided) under the old config...
    let commit = h.controller.handshake(job);
    // ...then a reload removes the client before the commit runs.
    let mut out = Vec::new();
    h.controller
        .reload(config(&h, "", ""), T0, &mut out)
        .expect("alice removed");
    assert!(out.is_empty(), "no session yet to terminate");
    h.settle(commit, &[], T0);
    let ids = h.controller.sessions.ids();
    assert_eq!(ids.len(), 1, "the session was committed");
    assert_eq!(
        state(&h, ids[0]),
        Some((SessionState::Terminated, 2)),
        "and revoked at once"
    );
}
