//! Issue 8 against the real tunnel: a gateway-to-client message reflected back to the gateway
//! from the client's own address (spoofed) is refused as BAD_TAG and the tunnel goes on (each
//! direction has its own header key); and a client the gateway no longer knows finds out and
//! starts a new handshake, whether the gateway still holds the session's keys (an operator
//! terminated it: a sealed REJECT TERMINATED) or knows nothing at all (restarted with an empty
//! state directory: no answer to a bounded number of REATTACH_REQUESTs). A session record an
//! older build wrote (one header key for both directions) is loaded without keys: terminated at
//! start-up, and its client starts a new handshake.
//!
//! ```text
//!  gateway ns: jvpn gateway, TUN 10.99.0.1, TCP server :5201, <gw> 10.200.0.1 (XDP, :51900)
//!       || veth
//!  router ns:  10.200.0.2 | wifi side 10.201.1.1 | lte side 10.201.2.1
//!       || wifi                 || lte
//!  client ns:  jvpn client (on wifi), TUN 10.99.0.2, wifi 10.201.1.2, lte 10.201.2.2
//!              reflected frames are injected on wifi with the client's address and port
//! ```

use jvpn_common::abi::DEFAULT_PORT;
use jvpn_common::{MessageType, RejectReason};
use jvpn_tests::attacker::{is_message, jvpn_header};
use jvpn_tests::capture::{inject, with_payload, Capture, Frame};
use jvpn_tests::probe::{drops, eventually_within, session_hex};
use jvpn_tests::transfer::Transfer;
use jvpn_tests::tunnel::{eventually, payload, Tunnel};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const PAYLOAD_LEN: usize = 8_000_000;
const TRANSFER_PATIENCE: Duration = Duration::from_secs(90);
/// A port nobody listens on behind the tunnel: a reset proves a round trip through it.
const SERVER_PROBE: &str = "10.99.0.1:5299";
/// Reflected frames per injected burst, each burst judged before the next is sent (well below
/// the veth's XDP receive ring).
const INJECT_BURST: usize = 64;
/// Gateway-to-client frames reflected.
const REFLECTED: usize = 256;
/// How long a client may take to find out that its session was terminated: the REJECT answers
/// its next packet (a keepalive every 5 s at most).
const TERMINATED_PATIENCE: Duration = Duration::from_secs(30);
/// How long a client may take to find out that the gateway knows nothing of it: three silent
/// keepalive intervals (15 s), then two unanswered jumps of six REATTACH_REQUESTs (about 12 s
/// each), then a new handshake.
const UNKNOWN_PATIENCE: Duration = Duration::from_secs(100);

#[test]
fn a_reflected_gateway_message_is_a_bad_tag_and_the_tunnel_goes_on() {
    let t = Tunnel::up();
    let f = &t.f;
    let jvpn = |fr: &Frame| {
        fr.udp().is_some_and(|u| {
            u.source.port() == DEFAULT_PORT || u.destination.port() == DEFAULT_PORT
        })
    };
    let capture = Capture::start(&t.client, &t.wifi, jvpn);
    // The gateway answers each client KEEPALIVE (one every 5 s on an idle tunnel) in kind.
    eventually("a gateway KEEPALIVE on wifi", || {
        capture
            .frames()
            .iter()
            .any(|fr| !fr.outgoing && is_message(fr, MessageType::Keepalive))
    });
    let transfer = Transfer::start(&t, payload(PAYLOAD_LEN));
    transfer.wait_for(&t, PAYLOAD_LEN / 4, TRANSFER_PATIENCE);
    let frames = capture.stop();

    // The client's own frame is the template: its addresses, ports and MACs, as a spoofer's.
    let template = frames
        .iter()
        .find(|fr| fr.outgoing && is_message(fr, MessageType::Data))
        .expect("the client sent DATA on wifi");
    let from_gateway: Vec<&Frame> = frames
        .iter()
        .filter(|fr| {
            !fr.outgoing
                && (is_message(fr, MessageType::Data) || is_message(fr, MessageType::Keepalive))
        })
        .collect();
    assert!(
        from_gateway
            .iter()
            .any(|fr| is_message(fr, MessageType::Keepalive))
            && from_gateway
                .iter()
                .any(|fr| is_message(fr, MessageType::Data)),
        "gateway DATA and KEEPALIVE recorded"
    );
    let reflected: Vec<Frame> = from_gateway
        .iter()
        .rev()
        .take(REFLECTED)
        .map(|fr| with_payload(template, fr.udp().expect("udp").payload))
        .collect();
    for fr in &reflected {
        let header = jvpn_header(fr).expect("a jvpn frame");
        assert_eq!(header.session_id.get(), t.session);
        assert_eq!(header.state_version.get(), 1, "the current version");
        assert_eq!(
            fr.udp().expect("udp").source,
            template.udp().unwrap().source
        );
    }

    eprintln!("reflecting {} gateway frames", reflected.len());
    let before = drops(f, RejectReason::BadTag);
    let too_old = drops(f, RejectReason::NonceTooOld);
    let mut injected = 0;
    for burst in reflected.chunks(INJECT_BURST) {
        inject(&t.client, &t.wifi, burst);
        injected += burst.len() as u64;
        eventually(
            &format!("{injected} reflected frames refused as BAD_TAG"),
            || drops(f, RejectReason::BadTag) - before >= injected,
        );
    }
    assert_eq!(
        drops(f, RejectReason::BadTag) - before,
        injected,
        "every reflected frame, and nothing else, is a BAD_TAG"
    );

    transfer.finish(&t, TRANSFER_PATIENCE);
    assert_eq!(
        drops(f, RejectReason::NonceTooOld),
        too_old,
        "the client's nonces stayed in its window"
    );
    assert_eq!(
        f.audit_versions(t.session),
        vec![1],
        "no reattach: the session never left version 1\n{}",
        t.logs()
    );
    t.only_session();
    assert_round_trip(&t);
}

#[test]
fn a_client_whose_session_was_terminated_starts_a_new_handshake() {
    let t = Tunnel::up();
    let f = &t.f;
    let terminated = drops(f, RejectReason::Terminated);
    f.cli_json(&["sessions", "terminate", &session_hex(t.session)]);
    let started = Instant::now();
    let session = new_attached_session(&t, TERMINATED_PATIENCE);
    eprintln!(
        "new session {session:016x} {:?} after the terminate",
        started.elapsed()
    );
    assert!(
        drops(f, RejectReason::Terminated) > terminated,
        "the client's packets met the terminated session"
    );
    assert!(
        f.log()
            .contains("traffic for a terminated session; telling the client"),
        "the gateway answered with a REJECT\n{}",
        t.logs()
    );
    assert_round_trip(&t);
}

#[test]
fn a_client_the_restarted_gateway_does_not_know_starts_a_new_handshake() {
    let mut t = Tunnel::up();
    t.f.kill();
    let state = t.f.dir.path().join("state");
    std::fs::remove_dir_all(&state).expect("empty the gateway's state directory");
    t.f.start(&[]);
    let started = Instant::now();
    let session = new_attached_session(&t, UNKNOWN_PATIENCE);
    eprintln!(
        "new session {session:016x} {:?} after the restart",
        started.elapsed()
    );
    assert!(
        t.client_log()
            .contains("REATTACH_REQUESTs in a row went unanswered"),
        "the client gave up reattaching for the reason under test\n{}",
        t.logs()
    );
    assert_round_trip(&t);
}

#[test]
fn a_session_stored_by_an_older_build_is_terminated_at_start_and_its_client_rehandshakes() {
    let mut t = Tunnel::up();
    t.f.kill();
    rewrite_as_format_2(
        &t.f.dir.path().join("state").join("sessions.redb"),
        t.session,
    );
    t.f.start(&[]);
    eventually("the gateway saying why it ended the old session", || {
        t.f.log().contains("stored session has no usable keys")
    });
    let started = Instant::now();
    let session = new_attached_session(&t, UNKNOWN_PATIENCE);
    eprintln!(
        "new session {session:016x} {:?} after the restart",
        started.elapsed()
    );
    let old = t.f.cli_json(&["sessions", "show", &session_hex(t.session)]);
    assert!(
        old["state"]
            .as_str()
            .is_some_and(|s| s.eq_ignore_ascii_case("terminated")),
        "the old-format session is terminated: {old}"
    );
    assert_round_trip(&t);
}

/// Marks the stored record of `session` as format 2 (the layout is the same; format 2 records
/// were written when one header key served both directions), as an older build left it. The
/// store keeps current records in its `sessions` table at key `(id, 0)`, format byte first.
fn rewrite_as_format_2(store: &std::path::Path, session: u64) {
    use redb::ReadableTable as _;
    let table: redb::TableDefinition<(u64, u64), &[u8]> = redb::TableDefinition::new("sessions");
    let db = redb::Database::create(store).expect("open the gateway's store");
    let txn = db.begin_write().expect("a write transaction");
    {
        let mut sessions = txn.open_table(table).expect("the sessions table");
        let mut record = sessions
            .get((session, 0))
            .expect("read the session")
            .expect("the session is stored")
            .value()
            .to_vec();
        assert_eq!(record[0], 3, "this build writes format 3");
        record[0] = 2;
        sessions
            .insert((session, 0), record.as_slice())
            .expect("rewrite the session");
    }
    txn.commit().expect("commit");
}

/// Waits up to `patience` for an ATTACHED session other than the tunnel's first; returns its id.
fn new_attached_session(t: &Tunnel, patience: Duration) -> u64 {
    let mut found = None;
    let what = format!("a new session within {patience:?}");
    let deadline = Instant::now() + patience;
    eventually_within(&what, patience + Duration::from_secs(1), || {
        if Instant::now() > deadline {
            panic!("no new session within {patience:?}\n{}", t.logs());
        }
        let sessions = t.f.cli_json(&["sessions", "list"]);
        found = sessions
            .as_array()
            .expect("sessions list prints a JSON array")
            .iter()
            .filter(|s| {
                s["state"]
                    .as_str()
                    .is_some_and(|st| st.eq_ignore_ascii_case("attached"))
            })
            .filter_map(|s| u64::from_str_radix(s["id"].as_str()?, 16).ok())
            .find(|&id| id != t.session);
        found.is_some()
    });
    found.expect("found")
}

/// A TCP connect through the tunnel to a closed port is refused: a round trip both ways.
fn assert_round_trip(t: &Tunnel) {
    let mut last = None;
    // The client's TUN may still be settling on the new session: a few tries.
    for _ in 0..5 {
        let stream = t.client.run(|| {
            TcpStream::connect_timeout(&SERVER_PROBE.parse().expect("addr"), Duration::from_secs(5))
        });
        match stream {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            other => last = Some(other.map(|_| ())),
        }
    }
    panic!(
        "the tunnel carries no traffic (a closed port answers with a reset): {last:?}\n{}",
        t.logs()
    );
}
