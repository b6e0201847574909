//! The real `jvpn client` process of a test or demo: its key and log in the gateway fixture's
//! directory, run in a client namespace through `nsenter --net`, up once its TUN device has the
//! tunnel address.

use crate::gateway::{jvpn_binary, GatewayFixture};
use crate::guard::ChildGuard;
use crate::netns::Netns;
use crate::tunnel::eventually;
use std::process::{Command, Stdio};

/// Starts the real `jvpn client` of `f`'s authorised client in the `client` namespace (through
/// `nsenter --net`), dialing `gateway` (`host:port`) with TUN device `tun` and `args` added; its
/// key goes to `client.key` and its log to `client.log` in `f`'s directory. Returns once the TUN
/// device has the tunnel address 10.99.0.2; panics with the client's log if it does not.
pub fn start_client(
    f: &GatewayFixture,
    client: &Netns,
    gateway: &str,
    tun: &str,
    args: &[&str],
) -> ChildGuard {
    let key = f.dir.path().join("client.key");
    let text = format!("{}\n", f.client.private_key.to_base64().as_str());
    std::fs::write(&key, text).expect("write the client key");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod the client key");
    let log = std::fs::File::create(f.dir.path().join("client.log")).expect("client log");
    let gateway_public_key = f.gateway_public_key.to_base64();
    let mut vpn = ChildGuard::new(
        client
            .nsenter(jvpn_binary())
            .args(["client", "--gateway", gateway, "--gateway-public-key"])
            .arg(&gateway_public_key)
            .arg("--key")
            .arg(&key)
            .args(["--tun", tun])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn jvpn client"),
    );
    eventually("the client's TUN device", || {
        assert!(
            vpn.child().try_wait().expect("wait").is_none(),
            "jvpn client exited:\n{}",
            client_log(f)
        );
        Command::new("ip")
            .args(["-n", client.name(), "addr", "show", "dev", tun])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("10.99.0.2"))
    });
    vpn
}

/// The `jvpn client` log so far of the client [`start_client`] started for `f`.
pub fn client_log(f: &GatewayFixture) -> String {
    std::fs::read_to_string(f.dir.path().join("client.log")).unwrap_or_default()
}
