//! `jvpn reload` and SIGHUP on a running gateway (real XDP, real TUN): two clients ping the
//! gateway's tunnel address through it; a reload that removes one terminates only that client's
//! session, with a sealed TERMINATE (cause CLIENT_REMOVED) it can read, after which the XDP program
//! drops its packets; the other client's pings go on, every one answered, at the same version.
//! An invalid file, or one that changes a setting only a restart can apply, changes nothing and
//! says which line or setting; SIGHUP applies an edit as `jvpn reload` does. `jvpn show` reports
//! both clients and their sessions.
//!
//! ```text
//!  +------------- gateway ns --------------+        +------------ client ns -------------+
//!  |  jvpn gateway (nsenter --net)          |        |  test client sockets:             |
//!  |  jvpn0 (TUN) 10.99.0.1/24              |        |   "laptop"  :41001 (10.99.0.2)    |
//!  |    UDP [::]:51900, redb store in tmp   |        |   "extra-0" :41002 (10.99.0.10)   |
//!  |  <gw> 10.200.0.1/24                    |        |                                   |
//!  |       XDP jvpn_xdp (driver) <==========|==veth==|==> <cl> 10.200.0.2                |
//!  +----------------------------------------+        +-----------------------------------+
//! ```

use jvpn_common::abi::DEFAULT_PORT;
use jvpn_common::control::{Terminate, TerminateCause};
use jvpn_common::MessageType;
use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::packet::echo_request;
use jvpn_tests::require_root;
use jvpn_tests::topology::Family;
use jvpn_tests::wire_client::{Received, WireClient};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const GATEWAY_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const LAPTOP_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
const EXTRA_TUNNEL: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 10);
/// The metrics endpoint, on the gateway namespace's own loopback.
const METRICS: &str = "127.0.0.1:9151";

/// `GET /metrics` from inside the gateway's namespace.
fn scrape(f: &GatewayFixture) -> String {
    use std::io::{Read, Write};
    let mut stream = f
        .hosts
        .gateway
        .run(|| std::net::TcpStream::connect(METRICS))
        .expect("connect to the metrics endpoint");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: gateway\r\n\r\n")
        .expect("send the request");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read the metrics");
    text
}

/// The value of the series `series` (name and labels, as written) in `text`.
fn series(text: &str, series: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// Sends one echo request through the tunnel and waits for its sealed answer; returns the
/// answer's version, or `None` if no echo reply came within a second.
fn ping(c: &mut WireClient, socket: &UdpSocket, src: Ipv4Addr, seq: u16) -> Option<u64> {
    let gw = c.gateway;
    socket
        .send_to(
            &c.data(&echo_request(src, GATEWAY_TUNNEL, seq, b"reload")),
            gw,
        )
        .expect("send DATA");
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match c.try_receive(socket, deadline) {
            Received::Reply(r) if r.kind() == MessageType::Data => {
                return Some(r.header.state_version.get())
            }
            Received::Timeout => return None,
            _ => {}
        }
    }
}

/// A dataplane drop counter from `jvpn stats --json`.
fn xdp_drops(f: &GatewayFixture, reason: &str) -> u64 {
    let stats = f.cli_json(&["stats"]);
    stats["dataplane"]["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .find(|d| d["reason"] == reason)
        .and_then(|d| d["packets"].as_u64())
        .unwrap_or_else(|| panic!("no {reason} drop counter: {stats}"))
}

fn config_path(f: &GatewayFixture) -> std::path::PathBuf {
    f.dir.path().join("gateway.toml")
}

/// Runs `jvpn reload`; returns (success, stdout + stderr).
fn reload(f: &GatewayFixture) -> (bool, String) {
    let out = f.cli(&["reload"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn reload_removes_one_client_and_leaves_the_other_untouched() {
    require_root();
    let mut f = GatewayFixture::new();
    let extra = f.add_clients(1).remove(0);
    let with_extra = std::fs::read_to_string(config_path(&f)).expect("config");
    f.extra_args = vec!["--metrics".into(), METRICS.into()];
    f.start(&[]);
    let gw = SocketAddr::new(Family::V4.gateway(), DEFAULT_PORT);
    let laptop_socket = jvpn_tests::probe::client_socket(&f, Family::V4, 41001);
    let extra_socket = jvpn_tests::probe::client_socket(&f, Family::V4, 41002);
    let mut laptop = WireClient::handshake(&f.client, &laptop_socket, gw);
    let mut removed = WireClient::handshake(&extra, &extra_socket, gw);
    assert_eq!(
        ping(&mut removed, &extra_socket, EXTRA_TUNNEL, 1),
        Some(1),
        "{}",
        f.log()
    );
    let laptop_id = laptop.id;

    // The laptop pings without pause through everything below, each ping waiting for its answer.
    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut answers = Vec::new();
            let mut seq = 0u16;
            while !stop.load(Ordering::Relaxed) {
                seq = seq.wrapping_add(1);
                answers.push(ping(&mut laptop, &laptop_socket, LAPTOP_TUNNEL, seq));
                std::thread::sleep(Duration::from_millis(20));
            }
            answers
        })
    };

    // `jvpn show` names both clients with their one session each.
    let show = f.cli_json(&["show"]);
    let clients = show["clients"].as_array().expect("clients");
    assert_eq!(clients.len(), 2, "{show}");
    assert_eq!(clients[0]["name"], "laptop", "{show}");
    assert_eq!(clients[1]["name"], "extra-0", "{show}");
    assert_eq!(clients[1]["sessions"][0]["version"], 1, "{show}");
    assert!(
        clients[1]["sessions"][0]["rx"]["bytes"].as_u64().unwrap() > 0,
        "{show}"
    );

    // An invalid file: the error names its line, and nothing changes.
    let broken = with_extra.replace(
        "keepalive_interval_secs = 5",
        "keepalive_interval_secs = \"five\"",
    );
    std::fs::write(config_path(&f), &broken).expect("write config");
    let line = broken
        .lines()
        .position(|l| l.contains("\"five\""))
        .expect("marked")
        + 1;
    let (ok, text) = reload(&f);
    assert!(!ok, "an invalid file is refused: {text}");
    assert!(
        text.contains(&format!("gateway.toml:{line}:")),
        "names line {line}: {text}"
    );
    // A setting only a restart can change: refused by name, nothing changes.
    let moved = with_extra.replace("[tunnel]", "port = 51999\n[tunnel]");
    std::fs::write(config_path(&f), &moved).expect("write config");
    let (ok, text) = reload(&f);
    assert!(
        !ok && text.contains("`port`") && text.contains("restart"),
        "{text}"
    );
    assert_eq!(
        ping(&mut removed, &extra_socket, EXTRA_TUNNEL, 2),
        Some(1),
        "extra-0 still served"
    );

    // Remove extra-0.
    let cut = with_extra
        .find("[[client]]\nname = \"extra-0\"")
        .expect("extra-0's block");
    std::fs::write(config_path(&f), &with_extra[..cut]).expect("write config");
    let dropped_before = xdp_drops(&f, "TERMINATED");
    let (ok, text) = reload(&f);
    assert!(ok, "reload: {text}\n{}", f.log());
    assert!(text.contains("extra-0"), "{text}");

    let deadline = Instant::now() + Duration::from_secs(3);
    let terminate = loop {
        match removed.try_receive(&extra_socket, deadline) {
            Received::Reply(r) if r.kind() == MessageType::Terminate => break r,
            Received::Timeout => panic!("no TERMINATE for the removed client\n{}", f.log()),
            _ => {}
        }
    };
    assert_eq!(terminate.header.state_version.get(), 2, "version +1");
    assert_eq!(
        terminate.body::<Terminate>().cause(),
        Some(TerminateCause::ClientRemoved)
    );
    assert_eq!(
        ping(&mut removed, &extra_socket, EXTRA_TUNNEL, 3),
        None,
        "its DATA goes nowhere"
    );
    assert!(
        xdp_drops(&f, "TERMINATED") > dropped_before,
        "the XDP program drops the removed client's packets"
    );

    // SIGHUP applies an edit too: extra-0 comes back (same key) and may handshake again.
    std::fs::write(config_path(&f), &with_extra).expect("write config");
    let pid = f.pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    let back = Instant::now() + Duration::from_secs(5);
    let again = loop {
        if let Some(c) =
            WireClient::try_handshake(&extra, &extra_socket, gw, Duration::from_millis(500))
        {
            break c;
        }
        assert!(
            Instant::now() < back,
            "extra-0 not readmitted after SIGHUP\n{}",
            f.log()
        );
    };
    assert_ne!(again.id, removed.id, "a new session");

    stop.store(true, Ordering::Relaxed);
    let answers = pinger.join().expect("pinger");
    assert!(
        answers.len() >= 10,
        "the laptop pinged throughout: {answers:?}"
    );
    assert!(
        answers.iter().all(|a| *a == Some(1)),
        "every laptop ping answered at version 1: {answers:?}"
    );
    assert_eq!(
        f.audit_versions(laptop_id),
        vec![1],
        "the laptop's session never changed"
    );
    assert_eq!(
        f.audit_versions(removed.id),
        vec![1, 2],
        "extra-0's ended at version 2"
    );

    // Per-client metrics: labelled by configured name only, the laptop's traffic counted; the
    // removed client's totals went with it, and it starts again from its new handshake.
    let text = scrape(&f);
    let laptop_up = series(
        &text,
        r#"jvpn_client_packets_total{client="laptop",direction="upstream"}"#,
    );
    assert!(
        laptop_up.is_some_and(|n| n >= answers.len() as u64),
        "{text}"
    );
    assert_eq!(
        series(&text, r#"jvpn_client_handshakes_total{client="laptop"}"#),
        Some(1),
        "{text}"
    );
    assert_eq!(
        series(&text, r#"jvpn_client_handshakes_total{client="extra-0"}"#),
        Some(1),
        "{text}"
    );
    assert_eq!(
        series(&text, r#"jvpn_client_terminations_total{client="extra-0"}"#),
        Some(0),
        "{text}"
    );
    assert!(
        !text.contains(&format!("{laptop_id:016x}")),
        "no session id as a label"
    );
}
