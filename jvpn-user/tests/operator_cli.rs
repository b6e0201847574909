//! The `jvpn` binary as an operator meets it: hostile arguments, no daemon, no interface, no root,
//! and the client commands against the fixture gateway on a real socket.
//!
//! ```text
//!   jvpn (child process) ──unix socket: $TMP/run/gw0.sock──▶ server::run ──▶ FixtureGateway
//! ```
//!
//! Every failure must be exactly one line on standard error and a non-zero exit code.

mod operator_support;

use jvpn_user::events::EventRecord;
use operator_support::{serve, FixtureGateway};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

const JVPN: &str = env!("CARGO_BIN_EXE_jvpn");
const A: u64 = 0x00aa_0000_0000_0001;

fn jvpn(args: &[&str]) -> Output {
    std::process::Command::new(JVPN)
        .args(args)
        .output()
        .expect("run the jvpn binary")
}

/// The exit code and the single stderr line; panics if stderr is not exactly one line.
fn failure(output: &Output, what: &str) -> (i32, String) {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{what} succeeded: {stderr}");
    assert_eq!(
        stderr.matches('\n').count(),
        1,
        "{what}: not one line: {stderr:?}"
    );
    assert!(stderr.starts_with("error: "), "{what}: {stderr:?}");
    (
        output.status.code().expect("exited, not killed"),
        stderr.trim_end().to_string(),
    )
}

#[test]
fn hostile_arguments_are_one_line_and_exit_2() {
    let huge = "9".repeat(4096);
    let cases: Vec<Vec<&str>> = vec![
        vec![],
        vec!["sessions", "show", "zz"],
        vec!["sessions", "show", "12abc!"],
        vec!["sessions", "terminate", "0"],
        vec!["sessions", "terminate", &huge],
        vec!["audit", "-5"],
        vec!["audit", "1", "2"],
        vec!["events", "--kind", "ALL"],
        vec!["events", "--session", "0x"],
        vec!["status", "--iface", "../../etc/passwd"],
        vec!["status", "--iface", "eth0\nrm -rf /"],
        vec!["gateway", "--iface", "lo", "--port", "99999"],
        vec!["gateway", "--iface", "lo", "--port", "0"],
        vec!["gateway", "--iface", "lo", "--max-sessions", &huge],
        vec!["gateway", "--iface", "lo", "--metrics", "not-an-address"],
        vec!["no-such-command"],
    ];
    for args in cases {
        let (code, line) = failure(&jvpn(&args), &format!("{args:?}"));
        assert_eq!(code, 2, "{args:?}: {line}");
        assert!(line.len() < 300, "{args:?}: error too long: {line}");
    }
}

#[test]
fn help_exits_0() {
    let out = jvpn(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("sessions"));
}

#[test]
fn no_gateway_on_an_interface_names_the_command_that_starts_one() {
    let (code, line) = failure(&jvpn(&["status", "--iface", "jvpnt9"]), "status");
    assert_eq!(code, 3);
    assert_eq!(
        line,
        "error: no jvpn gateway on jvpnt9: start one with `jvpn gateway --iface jvpnt9`"
    );
}

#[test]
fn no_gateway_at_a_socket_path_missing_or_stale() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("none.sock");
    let stale = dir.path().join("stale.sock");
    // A socket file nobody listens on, as a daemon killed with SIGKILL leaves it.
    drop(std::os::unix::net::UnixListener::bind(&stale).expect("bind"));
    for socket in [&missing, &stale] {
        let socket = socket.to_str().expect("utf-8 temp path");
        let (code, line) = failure(&jvpn(&["sessions", "list", "--socket", socket]), socket);
        assert_eq!(code, 3, "{line}");
        assert!(
            line.contains(&format!("no jvpn gateway listening on {socket}")),
            "{line}"
        );
    }
}

#[test]
fn gateway_refuses_an_interface_that_does_not_exist() {
    assert!(
        jvpn_user::cli::preflight::is_root(),
        "these tests run as root, like CI"
    );
    let (code, line) = failure(&jvpn(&["gateway", "--iface", "nosuch9"]), "gateway");
    assert_eq!(code, 1);
    assert_eq!(
        line,
        "error: no interface nosuch9 in this network namespace; list interfaces with `ip link`"
    );
}

#[test]
fn gateway_refuses_to_run_without_root() {
    // A copy of the binary that an unprivileged user can reach and execute.
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let copy = dir.path().join("jvpn");
    // Copied by a child process: a write descriptor opened here could leak into a process another
    // test thread forks at that moment and make the exec below fail with ETXTBSY.
    let installed = std::process::Command::new("install")
        .args(["-m", "0755", JVPN])
        .arg(&copy)
        .status()
        .expect("install (coreutils) runs");
    assert!(installed.success(), "copying the binary failed");
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&copy)
        .args(["gateway", "--iface", "lo"])
        .output()
        .expect("setpriv (util-linux) runs");
    let (code, line) = failure(&out, "unprivileged gateway");
    assert_eq!(code, 1);
    assert!(line.contains("`jvpn gateway` must run as root"), "{line}");
}

#[test]
fn keygen_writes_a_0600_key_prints_the_public_key_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = dir.path().join("gw.key");
    let key_arg = key.to_str().expect("utf-8 temp path");
    let out = jvpn(&["keygen", key_arg]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        public.trim_end().len(),
        44,
        "a base64 X25519 public key: {public:?}"
    );
    let mode = std::fs::metadata(&key)
        .expect("key written")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let before = std::fs::read(&key).expect("read key");

    let (code, line) = failure(&jvpn(&["keygen", key_arg]), "second keygen");
    assert_eq!(code, 1);
    assert!(line.contains("already exists"), "{line}");
    assert_eq!(
        std::fs::read(&key).expect("read key"),
        before,
        "the key is untouched"
    );
}

async fn run_cli(socket: &Path, args: &[&str]) -> Output {
    tokio::process::Command::new(JVPN)
        .args(args)
        .arg("--socket")
        .arg(socket)
        .output()
        .await
        .expect("run the jvpn binary")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).expect("utf-8 output")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_commands_print_the_gateways_answers() {
    let gw = FixtureGateway::new(64, 64);
    gw.add_session(A, "198.51.100.7:40000".parse().expect("address"));
    let server = serve(gw.clone());
    let s = server.socket.clone();

    let status = stdout(&run_cli(&s, &["status"]).await);
    assert!(
        status.contains("on veth-fixture") && status.contains("1 attached"),
        "{status}"
    );
    assert!(status.contains("up 1h02m03s"), "{status}");

    let list = stdout(&run_cli(&s, &["sessions"]).await);
    assert!(list.starts_with("SESSION"), "{list}");
    assert!(list.contains("00aa000000000001  ATTACHED"), "{list}");
    assert!(list.contains("198.51.100.7:40000"), "{list}");

    let show = stdout(&run_cli(&s, &["sessions", "show", "aa000000000001"]).await);
    assert!(
        show.contains("state:           ATTACHED (version 1)"),
        "{show}"
    );

    let stats = stdout(&run_cli(&s, &["stats"]).await);
    assert!(stats.contains("BAD_TAG"), "{stats}");

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&run_cli(&s, &["stats", "--json"]).await)).expect("JSON");
    assert_eq!(json["dataplane"]["accepted"]["packets"], 15);

    // `jvpn show`: wg-show style blocks, labels aligned, no colour; `--json` keeps field names.
    let wg = stdout(&run_cli(&s, &["show"]).await);
    assert!(wg.starts_with("gateway: veth-fixture\n"), "{wg}");
    assert!(wg.contains("  xdp drops (all):  BAD_TAG 7\n"), "{wg}");
    assert!(wg.contains("client: laptop\n"), "{wg}");
    assert!(wg.contains("  refusals:         STALE_VERSION 2\n"), "{wg}");
    assert!(
        wg.contains("    state:            ATTACHED (version 1)\n"),
        "{wg}"
    );
    assert!(
        wg.contains("    endpoint:         198.51.100.7:40000\n"),
        "{wg}"
    );
    assert!(
        wg.contains("    last jump:        198.51.100.7:39999 -> 198.51.100.7:40000"),
        "{wg}"
    );
    assert!(
        wg.contains("    transfer:         300 B received (3 packets), 400 B sent (4 packets)"),
        "{wg}"
    );
    assert!(!wg.contains('\x1b'), "no colour off a terminal: {wg:?}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&run_cli(&s, &["show", "--json"]).await)).expect("JSON");
    let session = &json["clients"][0]["sessions"][0];
    assert_eq!(session["id"], "00aa000000000001", "{json}");
    assert_eq!(session["state"], "ATTACHED", "{json}");
    assert_eq!(session["last_jump"]["from"], "198.51.100.7:39999", "{json}");
    assert_eq!(session["rx"]["bytes"], 300, "{json}");
    assert_eq!(json["drops"][0]["reason"], "BAD_TAG", "{json}");

    // `jvpn reload` refused: one line with the file and line, non-zero exit.
    let out = run_cli(&s, &["reload"]).await;
    let (code, line) = failure(&out, "reload refused");
    assert_ne!(code, 0);
    assert!(
        line.contains("gateway.toml:3:8") && line.contains("nothing was changed"),
        "{line}"
    );

    let out = run_cli(&s, &["sessions", "show", "42"]).await;
    let (code, line) = failure(&out, "show unknown");
    assert_eq!(code, 4);
    assert_eq!(
        line,
        "error: no session 0000000000000042 on this gateway; list sessions with `jvpn sessions list`"
    );

    let ended = stdout(&run_cli(&s, &["sessions", "terminate", "00aa000000000001"]).await);
    assert_eq!(
        ended,
        "session 00aa000000000001 is TERMINATED at version 2\n"
    );

    let audit = stdout(&run_cli(&s, &["audit", "00aa000000000001"]).await);
    let rows: Vec<&str> = audit.lines().skip(1).collect();
    assert_eq!(rows.len(), 3, "{audit}");
    assert!(
        rows[2].contains("ATTACHED    TERMINATED  OPERATOR"),
        "{audit}"
    );

    let events = stdout(&run_cli(&s, &["events", "--json", "--kind", "STATE_CHANGE"]).await);
    let versions: Vec<Option<u64>> = events
        .lines()
        .map(|l| serde_json::from_str::<EventRecord>(l).expect("each line is a record"))
        .map(|r| r.to_version)
        .collect();
    assert_eq!(versions, vec![Some(0), Some(1), Some(2)]);

    let human = stdout(&run_cli(&s, &["events", "--session", "00aa000000000001"]).await);
    assert_eq!(human.lines().count(), 3, "{human}");
    assert!(
        human.contains(
            "STATE_CHANGE controller session=00aa000000000001 ATTACHED v1 -> TERMINATED v2"
        ),
        "{human}"
    );

    server.shutdown().await;
}
