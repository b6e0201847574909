//! The real `jvpn client` removed from the gateway's config by `jvpn reload` while its tunnel is
//! up: it reads the gateway's sealed TERMINATE and says why ("terminated by the gateway: client
//! removed"), and its session ends at version 2; it tries one new handshake, which the gateway
//! does not answer, and exits non-zero with one line saying the gateway no longer authorises it.
//! The topology is [`jvpn_tests::tunnel`]'s:
//!
//! ```text
//!  gateway ns: jvpn gateway, TUN 10.99.0.1, <gw> 10.200.0.1 (XDP)
//!       || veth
//!  router ns:  10.200.0.2, wifi side 10.201.1.1, lte side 10.201.2.1
//!       || wifi                || lte
//!  client ns:  jvpn client, TUN 10.99.0.2, wifi 10.201.1.2, lte 10.201.2.2
//! ```

use jvpn_tests::tunnel::{eventually, Tunnel};
use std::time::Duration;

/// The client's handshake (6 HELLOs, about 12 s), with room for a loaded machine.
const EXIT_PATIENCE: Duration = Duration::from_secs(45);

#[test]
fn the_real_client_reads_the_terminate_of_its_removal_then_stops_cleanly() {
    let mut t = Tunnel::up();
    let path = t.f.dir.path().join("gateway.toml");
    let config = std::fs::read_to_string(&path).expect("read config");
    let cut = config.find("[[client]]").expect("the laptop's block");
    std::fs::write(&path, &config[..cut]).expect("write config");
    let out = t.f.cli(&["reload"]);
    assert!(
        out.status.success(),
        "reload: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        t.logs()
    );
    eventually("the client reports why its session ended", || {
        t.client_log()
            .contains("terminated by the gateway: client removed")
    });
    assert_eq!(
        t.f.audit_versions(t.session),
        vec![1, 2],
        "born at 1, ended at 2\n{}",
        t.logs()
    );
    let status = t.wait_client_exit(EXIT_PATIENCE);
    assert!(!status.success(), "{status}\n{}", t.logs());
    let log = t.client_log();
    assert!(
        log.contains("starting a new handshake"),
        "it tried a new handshake first:\n{log}"
    );
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: the gateway no longer authorises this client")
            && last.contains("client removed")
            && last.contains("ask the gateway's operator"),
        "one clear last line:\n{log}"
    );
}
