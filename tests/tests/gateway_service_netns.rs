//! The gateway as systemd runs it, without systemd (PID 1 here is not systemd): started with
//! exactly the capabilities of `jvpn-user/dist/jvpn-gateway@.service` (`setpriv` sets the bounding
//! set as `CapabilityBoundingSet=` does) and a `NOTIFY_SOCKET` that the test reads. `READY=1`
//! must come only once the XDP program is attached, the store open and the socket bound, and by
//! then every thread must have dropped its capabilities (started as plain root, its bounding set
//! too), and a SIGHUP (the unit's `ExecReload`) still reloads the config. Also: the log in a
//! file has no escape
//! codes, and on the journal stream (`JOURNAL_STREAM` naming stderr) its lines carry a `<N>`
//! priority and no timestamp.
//!
//! ```text
//!  +---------------- gateway ns -----------------+        +-------- client ns --------+
//!  |  setpriv --bounding-set=<unit's caps>        |        |                           |
//!  |    jvpn gateway, NOTIFY_SOCKET=<test's dgram>|        |                           |
//!  |    UDP :51900, redb store in tmp             |        |                           |
//!  |  <gw> 10.200.0.1/24   XDP jvpn_xdp <=========|==veth==|==> <cl> 10.200.0.2        |
//!  +----------------------------------------------+        +---------------------------+
//!     the test: reads READY=1 from its socket, then /proc/PID/{net/udp*,task/*/status},
//!     `ip link` (xdp), the pins and the store
//! ```

use jvpn_common::abi::{DEFAULT_PORT, PIN_ROOT};
use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::require_root;
use jvpn_user::dataplane::PinDir;
use jvpn_user::service::capabilities::{effective_and_permitted, kept_while_serving};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

/// The unit, as packaged.
const UNIT: &str = include_str!("../../jvpn-user/dist/jvpn-gateway@.service");

/// How long the gateway may take to send READY=1; a failure bound.
const READY_PATIENCE: Duration = Duration::from_secs(30);

/// `CapabilityBoundingSet=` of the unit, as `setpriv --bounding-set` wants it.
fn unit_bounding_set() -> String {
    let caps = UNIT
        .lines()
        .find_map(|line| line.strip_prefix("CapabilityBoundingSet="))
        .expect("the unit sets CapabilityBoundingSet=");
    let names: Vec<String> = caps
        .split_whitespace()
        .map(|cap| {
            format!(
                "+{}",
                cap.strip_prefix("CAP_")
                    .expect("capabilities are named CAP_*")
                    .to_lowercase()
            )
        })
        .collect();
    format!("-all,{}", names.join(","))
}

/// Whether the network namespace of `pid` has a UDP socket bound to `port`.
fn udp_port_bound(pid: u32, port: u16) -> bool {
    let local = format!(":{port:04X} ");
    ["udp", "udp6"].iter().any(|table| {
        std::fs::read_to_string(format!("/proc/{pid}/net/{table}"))
            .unwrap_or_default()
            .lines()
            .skip(1)
            .any(|line| {
                line.split_whitespace()
                    .nth(1)
                    .is_some_and(|addr| format!("{addr} ").ends_with(&local))
            })
    })
}

/// The effective and permitted capability masks of every thread of `pid`.
fn thread_capabilities(pid: u32) -> Vec<(String, u64, u64)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the gateway's threads")
        .flatten()
        .filter_map(|task| {
            let status = std::fs::read_to_string(task.path().join("status")).ok()?;
            let (effective, permitted) = effective_and_permitted(&status)?;
            Some((
                task.file_name().to_string_lossy().into_owned(),
                effective,
                permitted,
            ))
        })
        .collect()
}

#[test]
fn ready_comes_once_the_gateway_serves_with_the_units_capabilities_and_then_drops_them() {
    require_root();
    let mut f = GatewayFixture::new();
    let notify_path = f.dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).expect("bind the notify socket");
    notify
        .set_read_timeout(Some(READY_PATIENCE))
        .expect("notify socket timeout");
    f.launcher = vec![
        "setpriv".into(),
        format!("--bounding-set={}", unit_bounding_set()),
        "--inh-caps=-all".into(),
    ];
    let notify_env = notify_path.to_str().expect("UTF-8 temp path");
    f.spawn(&[("NOTIFY_SOCKET", notify_env)]);
    let pid = f.pid();

    let mut buf = [0u8; 512];
    let len = notify.recv(&mut buf).unwrap_or_else(|e| {
        panic!(
            "no notification within {READY_PATIENCE:?} ({e}):\n{}",
            f.log()
        )
    });
    let message = String::from_utf8_lossy(&buf[..len]).into_owned();
    assert_eq!(message.trim(), "READY=1", "the first notification");

    // At READY=1 all three hold: the socket bound, XDP attached (pinned link), the store open.
    assert!(
        udp_port_bound(pid, DEFAULT_PORT),
        "READY=1 before the UDP socket was bound:\n{}",
        f.log()
    );
    let pins = PinDir::new(Path::new(PIN_ROOT), &f.hosts.gateway_if).expect("pin dir");
    assert!(pins.has_link(), "READY=1 before the XDP link was pinned");
    let link = f
        .hosts
        .gateway
        .ip(&["link", "show", "dev", &f.hosts.gateway_if]);
    let link = String::from_utf8_lossy(&link.stdout);
    assert!(
        link.contains("xdp"),
        "READY=1 before XDP was attached: {link}"
    );
    assert!(
        f.dir.path().join("state/sessions.redb").exists(),
        "READY=1 before the store was opened"
    );
    // The gateway answers its operator with the capabilities it kept.
    let status = f.cli(&["status"]);
    assert!(
        status.status.success(),
        "jvpn status after READY=1: {}\n{}",
        String::from_utf8_lossy(&status.stderr),
        f.log()
    );

    // Every thread holds only what serving needs (nothing on 6.5+, CAP_BPF before), where it
    // started with the unit's set.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("kernel release");
    let keep = kept_while_serving(&release).0;
    let threads = thread_capabilities(pid);
    assert!(
        threads.len() > 1,
        "the gateway runs several threads: {threads:?}"
    );
    for (tid, effective, permitted) in &threads {
        assert!(
            (effective | permitted) & !keep == 0,
            "thread {tid} still holds CapEff {effective:#x} CapPrm {permitted:#x} (keep {keep:#x}):\n{}",
            f.log()
        );
    }
    assert!(
        f.log()
            .contains("dropped the capabilities only start-up needs"),
        "{}",
        f.log()
    );

    // `systemctl reload` (the unit's ExecReload sends SIGHUP) works with what the gateway kept:
    // it reads the edited config and applies it.
    f.add_clients(1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid")),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    jvpn_tests::probe::eventually("the reload after SIGHUP", || {
        f.log().contains("config reloaded") && f.log().contains("extra-0")
    });

    // A restart after a crash (systemd's Restart=on-failure) adopts the pinned program with the
    // same capabilities.
    f.kill();
    f.spawn(&[("NOTIFY_SOCKET", notify_env)]);
    let len = notify.recv(&mut buf).unwrap_or_else(|e| {
        panic!(
            "no notification after the restart within {READY_PATIENCE:?} ({e}):\n{}",
            f.log()
        )
    });
    assert_eq!(String::from_utf8_lossy(&buf[..len]).trim(), "READY=1");
    assert!(
        f.log().contains("dataplane=Adopted"),
        "the restart adopted the pinned program:\n{}",
        f.log()
    );
}

#[test]
fn logs_in_a_file_have_no_escape_codes_and_journal_lines_carry_priorities() {
    require_root();
    let mut f = GatewayFixture::new();
    f.start(&[("NO_COLOR", "")]);
    let log = f.log();
    assert!(log.contains("jvpn gateway running"), "{log}");
    assert!(!log.contains('\x1b'), "escape codes in a log file:\n{log}");

    // Started as plain root (every capability, CAP_SETPCAP among them), the gateway also empties
    // its bounding set of what it dropped, so no execve could bring anything back.
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").expect("kernel release");
    let keep = kept_while_serving(&release).0;
    let pid = f.pid();
    for (tid, effective, permitted) in thread_capabilities(pid) {
        assert!(
            (effective | permitted) & !keep == 0,
            "thread {tid} of a root-started gateway still holds {effective:#x}/{permitted:#x}"
        );
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let bounding = status
        .lines()
        .find_map(|line| line.strip_prefix("CapBnd:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .expect("CapBnd");
    assert_eq!(bounding & !keep, 0, "the bounding set after the drop");
    f.kill();

    // The same file as the journal stream: systemd's JOURNAL_STREAM names it by device:inode.
    let meta = std::fs::metadata(f.log_path()).expect("the log file");
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    std::fs::write(f.log_path(), "").expect("empty the log");
    f.start(&[("JOURNAL_STREAM", &stream)]);
    let log = f.log();
    let running = log
        .lines()
        .find(|line| line.contains("jvpn gateway running"))
        .unwrap_or_else(|| panic!("no start line:\n{log}"));
    assert!(
        running.starts_with("<6>"),
        "an info line opens with <6>: {running}"
    );
    assert!(
        running.contains("iface=") && running.contains("port="),
        "fields stay on the line: {running}"
    );
    for line in log.lines() {
        assert!(
            line.starts_with('<') && !line[3..].starts_with(|c: char| c.is_ascii_digit()),
            "a journal line without its priority or with a timestamp: {line}"
        );
        assert!(!line.contains('\x1b'), "escape codes: {line}");
    }

    // A child that inherited JOURNAL_STREAM but writes elsewhere keeps plain text.
    f.kill();
    std::fs::write(f.log_path(), "").expect("empty the log");
    f.start(&[("JOURNAL_STREAM", "1:2")]);
    let log = f.log();
    assert!(
        log.lines().all(|line| !line.starts_with('<')),
        "text lines when JOURNAL_STREAM names another stream:\n{log}"
    );
}
