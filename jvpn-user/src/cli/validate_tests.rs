//! Table-driven tests of command-line validation: what is accepted becomes the right command,
//! what is hostile becomes one line and the usage exit code.

use super::error::{CliError, EXIT_USAGE};
use super::validate::*;
use crate::dataplane::XdpAttachMode;
use crate::events::{EventFilter, EventKind};
use crate::store::StoreChoice;
use jvpn_common::abi::{DEFAULT_MAX_SESSIONS, DEFAULT_PORT};
use std::path::PathBuf;

fn parse(line: &str) -> Result<Command, CliError> {
    match parse_args(std::iter::once("jvpn").chain(line.split_whitespace()))? {
        Invocation::Run(command) => Ok(command),
        Invocation::Print(text) => panic!("{line:?} printed help instead of running: {text}"),
    }
}

fn client(target: SocketChoice, json: bool, action: ControlAction) -> Command {
    Command::Control(ControlInvocation {
        target,
        json,
        action,
    })
}

#[test]
fn accepted_command_lines() {
    let eth0 = || SocketChoice::Iface("eth0".to_string());
    let cases = [
        (
            "status",
            client(SocketChoice::OnlyOne, false, ControlAction::Status),
        ),
        (
            "status --iface eth0 --json",
            client(eth0(), true, ControlAction::Status),
        ),
        (
            "sessions",
            client(SocketChoice::OnlyOne, false, ControlAction::ListSessions),
        ),
        (
            "sessions list -i eth0",
            client(eth0(), false, ControlAction::ListSessions),
        ),
        (
            "sessions show 00000000deadbeef --iface eth0",
            client(eth0(), false, ControlAction::ShowSession(0xdead_beef)),
        ),
        (
            "sessions --iface eth0 terminate 0xFF",
            client(eth0(), false, ControlAction::TerminateSession(0xff)),
        ),
        (
            "stats --socket /tmp/g.sock",
            client(
                SocketChoice::Path(PathBuf::from("/tmp/g.sock")),
                false,
                ControlAction::Stats,
            ),
        ),
        (
            "audit ffffffffffffffff",
            client(SocketChoice::OnlyOne, false, ControlAction::Audit(u64::MAX)),
        ),
        (
            "events --follow --session 1 --kind state_change --json",
            client(
                SocketChoice::OnlyOne,
                true,
                ControlAction::Events {
                    follow: true,
                    filter: EventFilter {
                        session: Some(1),
                        kind: Some(EventKind::StateChange),
                    },
                },
            ),
        ),
        (
            "keygen /etc/jvpn/gw.key",
            Command::Keygen {
                path: PathBuf::from("/etc/jvpn/gw.key"),
                psk: false,
            },
        ),
        (
            "keygen --psk psk.key",
            Command::Keygen {
                path: PathBuf::from("psk.key"),
                psk: true,
            },
        ),
    ];
    for (line, want) in cases {
        assert_eq!(
            parse(line).unwrap_or_else(|e| panic!("{line:?} refused: {e}")),
            want,
            "{line:?}"
        );
    }
}

#[test]
fn gateway_defaults_and_options() {
    let Command::Gateway(g) = parse("gateway --iface eth0").expect("valid") else {
        panic!("not a gateway command");
    };
    assert_eq!(g.port, DEFAULT_PORT);
    assert_eq!(g.max_sessions, DEFAULT_MAX_SESSIONS);
    assert_eq!(g.xdp_mode, XdpAttachMode::Driver);
    assert_eq!(g.socket, PathBuf::from("/run/jvpn/eth0.sock"));
    assert_eq!(g.config, PathBuf::from("/etc/jvpn/gateway.toml"));
    assert_eq!(g.metrics, None);
    let Command::Gateway(g) = parse(
        "gateway -i veth1 --port 4000 --config /c.toml --state-dir /s --metrics [::1]:9151 \
         --max-sessions 16 --xdp-mode skb --socket /tmp/x.sock",
    )
    .expect("valid") else {
        panic!("not a gateway command");
    };
    assert_eq!(
        (
            g.port,
            g.max_sessions,
            g.xdp_mode,
            g.metrics.map(|m| m.port())
        ),
        (4000, 16, XdpAttachMode::Skb, Some(9151))
    );
}

#[test]
fn store_selects_the_embedded_store_by_default_and_etcd_by_url() {
    let gateway = |line: &str| match parse(line) {
        Ok(Command::Gateway(g)) => Ok(g.store),
        Ok(_) => panic!("not a gateway command"),
        Err(e) => Err(e.to_string()),
    };
    assert_eq!(gateway("gateway -i eth0"), Ok(StoreChoice::Embedded));
    assert_eq!(
        gateway("gateway -i eth0 --store etcd://10.0.0.1:2379,10.0.0.2:2379"),
        Ok(StoreChoice::Etcd(vec![
            "10.0.0.1:2379".into(),
            "10.0.0.2:2379".into()
        ]))
    );
    for bad in ["redis://h:1", "etcd://h", "etcd://h:2379,"] {
        let error = gateway(&format!("gateway -i eth0 --store {bad}")).unwrap_err();
        assert!(
            error.contains("--store") && error.contains("etcd://"),
            "{bad}: {error}"
        );
    }
}

#[test]
fn hostile_command_lines_are_one_line_usage_errors() {
    let long_id = "f".repeat(5000);
    let cases = [
        "sessions show zz".to_string(),
        "sessions show 12g4".to_string(),
        "sessions show -1".to_string(),
        "sessions show 0".to_string(),
        "sessions show 1ffffffffffffffff".to_string(),
        format!("sessions show {long_id}"),
        "sessions terminate 18446744073709551616".to_string(),
        "audit 0x".to_string(),
        "events --session nope".to_string(),
        "events --kind EVERYTHING".to_string(),
        "status --iface ../../etc".to_string(),
        "status --iface averyveryverylongname".to_string(),
        "status --iface eth0 --socket /tmp/a.sock".to_string(),
        format!("status --socket /{}", "d".repeat(200)),
        "gateway".to_string(),
        "gateway --iface eth0 --port 0".to_string(),
        "gateway --iface eth0 --port 65536".to_string(),
        "gateway --iface eth0 --port -5".to_string(),
        "gateway --iface eth0 --max-sessions 0".to_string(),
        "gateway --iface eth0 --max-sessions 99999999999999999999999".to_string(),
        "gateway --iface eth0 --max-sessions 12abc".to_string(),
        "gateway --iface eth0 --metrics localhost".to_string(),
        "gateway --iface eth0 --xdp-mode hw".to_string(),
        "gateway --iface a/b".to_string(),
        "frobnicate".to_string(),
        "".to_string(),
    ];
    for line in &cases {
        let err = parse(line).expect_err(line);
        let text = err.to_string();
        assert_eq!(err.exit_code(), EXIT_USAGE, "{line:?}: {text}");
        assert!(
            !text.contains('\n'),
            "{line:?} gave a multi-line error: {text}"
        );
        assert!(text.len() < 300, "{line:?} gave a long error: {text}");
    }
}

#[test]
fn help_and_version_are_printed_not_errors() {
    for line in [["jvpn", "--help"], ["jvpn", "--version"], ["jvpn", "help"]] {
        assert!(
            matches!(parse_args(line), Ok(Invocation::Print(_))),
            "{line:?}"
        );
    }
}
