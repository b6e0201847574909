//! Enforcement outlives the controller: a helper process loads and pins the dataplane and is
//! killed with SIGKILL; the XDP program keeps passing valid DATA and dropping forgeries, counting
//! and reporting them; this test process then adopts the pins (same program, same table, the
//! events emitted while no controller ran) and detaches cleanly.
//!
//! ```text
//!   [jvpn-dataplane-holder]  --setns-->  gateway ns: load + pin + attach, then SIGKILL
//!   [this test process]      adopt the pins, read counters and events, detach
//!
//!  +------------------- gateway ns -------------------+       +--------- client ns ----------+
//!  |  UDP [::]:51900  jvpn socket                     |       |  UDP 10.200.0.2:40000        |
//!  |  <gw> 10.200.0.1/24                              |       |  <cl> 10.200.0.2/24          |
//!  |       XDP jvpn_xdp, driver mode, pinned link <===|=veth==|===>                          |
//!  +--------------------------------------------------+       +------------------------------+
//!     pins: /sys/fs/bpf/jvpn/<gw>/v<layout>/{JVPN_*, link}  (host bpffs, survive the holder)
//! ```

use jvpn_common::{abi, MessageType, RejectReason};
use jvpn_tests::guard::{ChildGuard, PinDirGuard};
use jvpn_tests::jvpn::TestSession;
use jvpn_tests::require_root;
use jvpn_tests::topology::{Family, TwoHosts};
use jvpn_user::dataplane::{Dataplane, Origin, PinDir};
use std::io::{BufRead as _, BufReader, Read as _};
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

const PORT: u16 = abi::DEFAULT_PORT;
const CLIENT_PORT: u16 = 40000;
const VERSION: u64 = 3;
/// Upper bound on waiting for a datagram that must come; a failure bound, not a sleep.
const PATIENCE: Duration = Duration::from_secs(5);

fn receive(socket: &UdpSocket, what: &str) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let len = socket
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("{what} never reached the gateway socket: {e}"));
    buf.truncate(len);
    buf
}

#[test]
fn enforcement_survives_a_killed_controller_and_detaches_cleanly() {
    require_root();
    let family = Family::V4;
    let hosts = TwoHosts::new();
    let pins = PinDir::new(Path::new(abi::PIN_ROOT), &hosts.gateway_if).unwrap();
    let _pins_guard = PinDirGuard::new(pins.path());
    let session = TestSession::new(0xfeed_0000_0000_0001);
    let bound = SocketAddr::new(family.client(), CLIENT_PORT);

    let holder = Command::new(env!("CARGO_BIN_EXE_jvpn-dataplane-holder"))
        .arg(hosts.gateway.path())
        .arg(&hosts.gateway_if)
        .arg(PORT.to_string())
        .arg(session.id.to_string())
        .arg(VERSION.to_string())
        .arg(bound.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning jvpn-dataplane-holder");
    let mut holder = ChildGuard::new(holder);
    let mut ready = String::new();
    BufReader::new(holder.child().stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    if !ready.starts_with("ready ") {
        let mut stderr = String::new();
        let _ = holder
            .child()
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr);
        panic!("the holder did not load the dataplane: {ready:?} {stderr}");
    }
    let program_id: u32 = ready["ready ".len()..].trim().parse().unwrap();

    let gateway_socket = hosts.gateway.run(|| {
        let socket = UdpSocket::bind(SocketAddr::new("::".parse().unwrap(), PORT)).unwrap();
        socket.set_read_timeout(Some(PATIENCE)).unwrap();
        socket
    });
    let client = hosts.client.run(|| UdpSocket::bind(bound).unwrap());
    let to_jvpn = SocketAddr::new(family.gateway(), PORT);
    let data = |nonce| session.datagram(MessageType::Data, VERSION, nonce, b"payload");

    client.send_to(&data(1), to_jvpn).unwrap();
    assert_eq!(receive(&gateway_socket, "DATA 1 (holder alive)"), data(1));

    let status = holder.kill();
    assert_eq!(
        status.signal(),
        Some(libc_sigkill()),
        "the holder died by SIGKILL"
    );
    assert!(
        hosts.gateway_has_xdp(),
        "XDP stays attached after the controller died"
    );
    assert!(pins.has_link(), "the link pin survives");

    // Enforcement goes on with nobody in userspace: valid DATA passes, a forgery is dropped (the
    // marker after it, reusing its nonce, arrives and is the only thing that does).
    client.send_to(&data(2), to_jvpn).unwrap();
    assert_eq!(receive(&gateway_socket, "DATA 2 (holder dead)"), data(2));
    let forged = session.datagram_with_bad_tag(MessageType::Data, VERSION, 3, b"forged");
    client.send_to(&forged, to_jvpn).unwrap();
    client.send_to(&data(3), to_jvpn).unwrap();
    assert_eq!(
        receive(&gateway_socket, "DATA 3 after the forgery"),
        data(3)
    );

    // A new process adopts what the dead one pinned.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let adopted = Dataplane::adopt(&hosts.gateway_if).expect("adopting the pins");
    assert_eq!(adopted.origin(), Origin::Adopted);
    assert_eq!(adopted.program_id(), program_id, "the same program");
    assert_eq!(
        adopted
            .session(session.id)
            .unwrap()
            .map(|e| e.state_version),
        Some(VERSION)
    );
    assert_eq!(adopted.config().unwrap().port.get(), PORT);
    let counters = adopted.counters().unwrap();
    assert_eq!(counters.accepted().packets, 3, "DATA 1, 2 and 3");
    assert_eq!(
        counters.dropped(RejectReason::BadTag).packets,
        1,
        "the forgery"
    );

    let mut events = {
        let _inside = runtime.enter();
        adopted.take_event_reader().unwrap()
    };
    let pending = events.drain_ready();
    assert_eq!(
        pending
            .iter()
            .map(|e| (e.reason, e.session_id, e.nonce, e.source))
            .collect::<Vec<_>>(),
        vec![(RejectReason::BadTag, session.id, 3, bound)],
        "the event emitted while no controller ran is still in the ring"
    );

    client.send_to(&data(4), to_jvpn).unwrap();
    assert_eq!(receive(&gateway_socket, "DATA 4 (adopted)"), data(4));
    let moved = adopted.counters().unwrap().since(&counters);
    assert_eq!(
        moved.accepted().packets,
        1,
        "counters keep moving after adoption"
    );

    adopted.detach().expect("detach");
    assert!(
        !hosts.gateway_has_xdp(),
        "`ip link show` reports no XDP after detach"
    );
    assert!(!pins.path().exists(), "pins are gone after detach");

    // Nothing enforces any more: a datagram of an unknown session now reaches the socket.
    let stranger = TestSession::new(0xdead).datagram(MessageType::Data, 1, 1, b"x");
    client.send_to(&stranger, to_jvpn).unwrap();
    assert_eq!(
        receive(&gateway_socket, "an unknown session after detach"),
        stranger
    );
}

/// SIGKILL's number, as `ExitStatus::signal` reports it.
fn libc_sigkill() -> i32 {
    nix::sys::signal::Signal::SIGKILL as i32
}
