//! What the real `jvpn gateway` keeps of secrets on disk: a state dir left with an earlier
//! jvpn's modes (0755, files 0644) is narrowed to 0700 / 0600 at start; a terminated session's
//! keys are gone from the store; a lost `boot-epoch` file does not restart the nonce epoch at 1
//! (the store keeps it too). Topology as in `gateway_netns.rs`.
//!
//! ```text
//!  +------------- gateway ns --------------+        +------------ client ns -------------+
//!  |  jvpn gateway (nsenter --net)          |        |  test client socket "wifi" :40001 |
//!  |    UDP [::]:51900, redb store in tmp   |        |                                   |
//!  |  <gw> 10.200.0.1/24 fd00:200::1/64     |        |                                   |
//!  |       XDP jvpn_xdp (driver) <==========|==veth==|==> <cl> 10.200.0.2 fd00:200::2    |
//!  +----------------------------------------+        +-----------------------------------+
//!     pins: /sys/fs/bpf/jvpn/<gw>/v4/   control socket + store: the test's temp dir/state
//! ```

use jvpn_common::{MessageType, SessionState};
use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::probe::{client_socket, gateway, session_hex};
use jvpn_tests::require_root;
use jvpn_tests::topology::Family;
use jvpn_tests::wire_client::WireClient;
use jvpn_user::session::SessionId;
use jvpn_user::store::{RedbStore, SessionStore};
use std::fs;
use std::net::UdpSocket;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Bits of a gateway-to-client nonce below the boot epoch.
const EPOCH_SHIFT: u32 = 40;

fn mode(path: &Path) -> u32 {
    fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

/// The boot epoch of the gateway's current run, read from the nonce of its KEEPALIVE reply.
fn epoch_of_reply(c: &mut WireClient, socket: &UdpSocket) -> u64 {
    let keepalive = c.seal(MessageType::Keepalive, c.acked, &[]);
    socket
        .send_to(&keepalive, c.gateway)
        .expect("send KEEPALIVE");
    let reply = c.receive(socket, "KEEPALIVE reply");
    assert_eq!(reply.kind(), MessageType::Keepalive, "{reply:?}");
    reply.header.nonce.get() >> EPOCH_SHIFT
}

#[test]
fn a_lax_state_dir_is_narrowed_ended_keys_are_wiped_and_a_lost_epoch_file_does_not_reset() {
    require_root();
    let mut f = GatewayFixture::new();
    let state = f.dir.path().join("state");
    fs::create_dir(&state).expect("create the state dir");
    fs::set_permissions(&state, fs::Permissions::from_mode(0o755)).expect("chmod 0755");
    fs::write(state.join("boot-epoch"), "3\n").expect("an earlier run's epoch");
    fs::set_permissions(state.join("boot-epoch"), fs::Permissions::from_mode(0o644))
        .expect("chmod 0644");

    f.start(&[]);
    assert_eq!(mode(&state), 0o700, "state dir");
    for file in ["sessions.redb", "store.owner", "boot-epoch"] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    assert!(
        f.log().contains("removed group and other access"),
        "the narrowing is logged:\n{}",
        f.log()
    );

    let gw = gateway(Family::V4);
    let wifi = client_socket(&f, Family::V4, 40001);
    let mut ended = WireClient::handshake(&f.client, &wifi, gw);
    assert_eq!(epoch_of_reply(&mut ended, &wifi), 4, "the epoch after 3");
    let out = f.cli(&["sessions", "terminate", &session_hex(ended.id)]);
    assert!(
        out.status.success(),
        "terminate: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    f.kill();
    fs::remove_file(state.join("boot-epoch")).expect("lose the epoch file");
    f.start(&[]);
    let mut live = WireClient::handshake(&f.client, &wifi, gw);
    assert_eq!(
        epoch_of_reply(&mut live, &wifi),
        5,
        "the store's epoch + 1, not 1"
    );
    f.kill();

    let store = RedbStore::open(&state).expect("open the stopped gateway's store");
    let record = |id| {
        store
            .get(SessionId::new(id).expect("nonzero id"))
            .expect("read the store")
            .expect("the session is stored")
    };
    let ended = record(ended.id);
    assert_eq!(ended.state, SessionState::Terminated);
    assert!(ended.secrets.is_empty(), "{ended:?}");
    assert_eq!(ended.header_key, [0; 16], "header key wiped");
    let live = record(live.id);
    assert!(!live.secrets.is_empty(), "a live session keeps its keys");
}
