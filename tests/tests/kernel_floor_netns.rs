//! The real `jvpn gateway` on the kernel it runs on. On a kernel with every BPF feature the XDP
//! program uses, it starts and attaches the program in native (driver) mode. On a kernel that lacks
//! one, it stops at start and says why in one line (the feature, the Linux version that brought
//! it, the oldest Linux jvpn supports), never with the verifier's dump.
//!
//! Which of the two to expect comes from `JVPN_TEST_KERNEL` (`supported`, the default, or
//! `too-old`): `cargo xtask kernels` boots distribution kernels in VMs and sets it per kernel from
//! what it knows of that kernel, so each case is checked against an expectation stated outside the
//! gateway, never against the gateway's own probe.
//!
//! ```text
//!  +------------ gateway ns ------------+       +------ client ns ------+
//!  |  jvpn gateway --iface <gw>         |       |                       |
//!  |  <gw> 10.200.0.1/24                |       |  <cl> 10.200.0.2/24   |
//!  |       XDP jvpn_xdp, driver mode <==|=veth==|==>                    |
//!  +------------------------------------+       +-----------------------+
//!     pins: /sys/fs/bpf/jvpn/<gw>/v<layout>/  (host bpffs)
//! ```

use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::require_root;
use jvpn_user::dataplane::kernel_features::OLDEST_SUPPORTED_LINUX;
use std::time::{Duration, Instant};

/// The variable naming what the kernel under test is expected to do.
const EXPECTATION_VAR: &str = "JVPN_TEST_KERNEL";

/// How long a start (or a refused one) may take; a failure bound, not a sleep. Generous because
/// the VMs emulate their CPUs in software: there loading the program alone takes seconds.
const START_PATIENCE: Duration = Duration::from_secs(180);

#[test]
fn gateway_starts_on_a_supported_kernel_or_names_the_missing_feature_in_one_line() {
    require_root();
    let expectation = std::env::var(EXPECTATION_VAR).unwrap_or_else(|_| "supported".to_owned());
    let mut fixture = GatewayFixture::new();
    match expectation.as_str() {
        "supported" => starts_in_driver_mode(&mut fixture),
        "too-old" => refuses_in_one_line(&mut fixture),
        other => panic!("{EXPECTATION_VAR}={other}: expected `supported` or `too-old`"),
    }
}

fn starts_in_driver_mode(fixture: &mut GatewayFixture) {
    fixture.spawn(&[]);
    let deadline = Instant::now() + START_PATIENCE;
    while !fixture.cli(&["status"]).status.success() {
        assert!(
            Instant::now() < deadline,
            "the gateway did not answer `jvpn status` within {START_PATIENCE:?}:\n{}",
            fixture.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let link = fixture
        .hosts
        .gateway
        .ip(&["link", "show", "dev", &fixture.hosts.gateway_if]);
    let link = String::from_utf8_lossy(&link.stdout);
    // Native XDP shows as `prog/xdp id N`, generic XDP as `prog/xdpgeneric id N`.
    assert!(
        link.contains("prog/xdp id"),
        "the gateway's program is not attached in driver mode: {link}\n{}",
        fixture.log()
    );
    // `cargo xtask kernels` shows this line in its report (it runs this test with its output).
    println!("report: the gateway started and attached XDP in driver mode");
}

fn refuses_in_one_line(fixture: &mut GatewayFixture) {
    fixture.spawn(&[]);
    let status = fixture.wait_exit(START_PATIENCE);
    let log = fixture.log();
    assert!(
        !status.success(),
        "the gateway started on a kernel older than Linux {OLDEST_SUPPORTED_LINUX}:\n{log}"
    );
    let errors: Vec<&str> = log.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "one error line expected:\n{log}");
    let error = errors[0];
    for part in [
        "lacks",
        "(Linux ",
        &format!("jvpn needs Linux {OLDEST_SUPPORTED_LINUX} or later"),
    ] {
        assert!(error.contains(part), "{part:?} missing from: {error}");
    }
    for dump in ["Verifier output", "processed ", "BPF_PROG_LOAD"] {
        assert!(!log.contains(dump), "the log shows a verifier dump:\n{log}");
    }
    // `cargo xtask kernels` shows this line in its report (it runs this test with its output).
    println!("report: the gateway refused to start: {error}");
}
