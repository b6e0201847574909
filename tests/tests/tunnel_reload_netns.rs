//! The real `jvpn client` removed from the gateway's config by `jvpn reload` while its tunnel is
//! up: it reads the gateway's sealed TERMINATE and says why ("terminated by the gateway: client
//! removed"), and its session ends at version 2. The topology is
//! [`jvpn_tests::tunnel`]'s:
//!
//! ```text
//!  gateway ns: jvpn gateway, TUN 10.99.0.1, <gw> 10.200.0.1 (XDP)
//!       || veth
//!  router ns:  10.200.0.2, wifi side 10.201.1.1, lte side 10.201.2.1
//!       || wifi                || lte
//!  client ns:  jvpn client, TUN 10.99.0.2, wifi 10.201.1.2, lte 10.201.2.2
//! ```

use jvpn_tests::tunnel::{eventually, Tunnel};

#[test]
fn the_real_client_reads_the_terminate_of_its_removal() {
    let t = Tunnel::up();
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
}
