//! The gateway config: a full file, its defaults, and every refusal at the line to fix.

use super::*;
use crate::config::keyfile::{genpsk, keygen};
use crate::crypto::keys::PrivateKey;
use jvpn_common::control::Body as _;

struct Keys {
    gateway: String,
    client1: String,
    client2: String,
}

fn keys() -> Keys {
    Keys {
        gateway: PrivateKey::generate().to_base64().to_string(),
        client1: PrivateKey::generate().public_key().to_string(),
        client2: PrivateKey::generate().public_key().to_string(),
    }
}

/// Fills `{GW}`, `{K1}` and `{K2}` with keys.
fn fill(template: &str, keys: &Keys) -> String {
    template
        .replace("{GW}", &keys.gateway)
        .replace("{K1}", &keys.client1)
        .replace("{K2}", &keys.client2)
}

/// The 1-based line that carries the `# <-` marker.
fn marked_line(text: &str) -> usize {
    text.lines()
        .position(|l| l.contains("# <-"))
        .expect("each case marks the line its error must name")
        + 1
}

const BASE: &str = r#"private_key = "{GW}"
[tunnel]
ipv4 = "10.77.0.1/24"
ipv6 = "fd77::1/64"
"#;

#[test]
fn a_full_config_validates_with_its_defaults_and_relative_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let gateway_public = keygen(&dir.path().join("gateway.key")).unwrap();
    genpsk(&dir.path().join("psk")).unwrap();
    let laptop = PrivateKey::generate().public_key();
    let phone = PrivateKey::generate().public_key();
    let own_psk = PresharedKey::generate();
    let text = format!(
        r#"
private_key_file = "gateway.key"
psk_file = "psk"
port = 51999
iface = "eth0"
keepalive_interval_secs = 5

[tunnel]
ipv4 = "10.77.0.1/24"
ipv6 = "fd77::1/64"

[[client]]
name = "laptop"
public_key = "{laptop}"
ipv4 = "10.77.0.2"
ipv6 = "fd77::2"
allowed_ips = ["192.168.50.0/24"]

[[client]]
public_key = "{phone}"
psk = "{}"
ipv6 = "fd77::3"
"#,
        own_psk.to_base64().as_str()
    );
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let settings = GatewaySettings::load(&path).unwrap();

    assert_eq!(settings.public_key(), gateway_public);
    assert_eq!(settings.port, 51999);
    assert_eq!(settings.listen, DEFAULT_LISTEN);
    assert_eq!(settings.iface.as_deref(), Some("eth0"));
    assert_eq!(settings.state_dir, Path::new(DEFAULT_STATE_DIR));
    assert_eq!(settings.tun, DEFAULT_TUN);
    assert_eq!(settings.mtu, jvpn_common::control::DEFAULT_TUNNEL_MTU);
    assert_eq!(settings.timeouts.keepalive_interval, Duration::from_secs(5));
    assert_eq!(
        settings.timeouts.keepalive_timeout,
        Duration::from_secs(DEFAULT_KEEPALIVE_TIMEOUT_SECS)
    );
    assert_eq!(settings.tunnel.ipv4, Some("10.77.0.1/24".parse().unwrap()));

    let first = settings.client(&laptop).unwrap();
    assert_eq!(first.name, "laptop");
    assert_eq!(
        first.psk,
        crate::config::read_psk_file(&dir.path().join("psk")).unwrap()
    );
    assert_eq!(
        first.allowed_ips,
        ["10.77.0.2/32", "fd77::2/128", "192.168.50.0/24"].map(|n| n.parse::<IpNet>().unwrap())
    );
    assert!(first.allows_source("192.168.50.9".parse().unwrap()));
    assert!(first.allows_source("10.77.0.2".parse().unwrap()));
    assert!(!first.allows_source("10.77.0.3".parse().unwrap()));

    let second = settings.client(&phone).unwrap();
    assert_eq!(second.name, "client-2");
    assert_eq!(second.psk, own_psk);
    assert_eq!(second.ipv4, None);
    assert!(settings
        .client(&PrivateKey::generate().public_key())
        .is_none());

    let admission = settings
        .admission(&phone, Some(Tai64N::from_unix(9, 0)))
        .unwrap();
    assert_eq!(admission.psk, own_psk);
    assert_eq!(admission.last_timestamp, Some(Tai64N::from_unix(9, 0)));

    let welcome = settings.welcome_payload(first, 42);
    assert_eq!(welcome.check(), Ok(()));
    assert_eq!(welcome.session_id.get(), 42);
    assert_eq!(
        (welcome.ipv4, welcome.ipv4_prefix_len),
        ([10, 77, 0, 2], 24)
    );
    assert_eq!(welcome.ipv6_prefix_len, 64);
    assert_eq!(welcome.keepalive_interval_secs.get(), 5);
    let welcome = settings.welcome_payload(second, 43);
    assert_eq!((welcome.ipv4, welcome.ipv4_prefix_len), ([0; 4], 0));
    assert_eq!(welcome.check(), Ok(()));
}

#[test]
fn without_any_psk_the_all_zero_key_is_used() {
    let k = keys();
    let text = fill(
        &format!("{BASE}[[client]]\npublic_key = \"{{K1}}\"\nipv4 = \"10.77.0.2\"\n"),
        &k,
    );
    let settings = GatewaySettings::parse(Path::new("/etc/jvpn/gateway.toml"), &text).unwrap();
    assert_eq!(settings.clients()[0].psk, PresharedKey::none());
}

#[test]
fn every_malformed_config_is_refused_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        (
            "bad base64",
            "[[client]]\npublic_key = \"not*base64\" # <-\nipv4 = \"10.77.0.2\"\n",
            "public_key is not valid base64",
        ),
        (
            "wrong key length",
            "[[client]]\npublic_key = \"AAAA\" # <-\nipv4 = \"10.77.0.2\"\n",
            "decodes to 3 bytes",
        ),
        (
            "duplicate client",
            "[[client]]\npublic_key = \"{K1}\"\nipv4 = \"10.77.0.2\"\n[[client]]\npublic_key = \"{K1}\" # <-\nipv4 = \"10.77.0.3\"\n",
            "already used by the [[client]] at line 5",
        ),
        (
            "missing public key",
            "[[client]] # <-\nipv4 = \"10.77.0.2\"\n",
            "missing field `public_key`",
        ),
        (
            "unknown field",
            "[[client]]\npublic_key = \"{K1}\"\nipv4 = \"10.77.0.2\"\nallowed_ip = [] # <-\n",
            "unknown field `allowed_ip`",
        ),
        (
            "address outside the tunnel network",
            "[[client]]\npublic_key = \"{K1}\"\nipv4 = \"10.78.0.2\" # <-\n",
            "inside the tunnel network 10.77.0.1/24",
        ),
        (
            "the gateway's own address",
            "[[client]]\npublic_key = \"{K1}\"\nipv6 = \"fd77::1\" # <-\n",
            "not the gateway's",
        ),
        (
            "an address family the tunnel lacks",
            "[[client]]\npublic_key = \"{K1}\"\nipv4 = \"fd77::2\" # <-\n",
            "is not an IPv4 address",
        ),
        (
            "no tunnel address",
            "[[client]] # <-\npublic_key = \"{K1}\"\n",
            "has no tunnel address",
        ),
        (
            "one address for two clients",
            "[[client]]\npublic_key = \"{K1}\"\nipv4 = \"10.77.0.2\"\n[[client]]\npublic_key = \"{K2}\"\nipv4 = \"10.77.0.2\" # <-\n",
            "overlaps 10.77.0.2/32 of client \"client-1\" (line 7)",
        ),
        (
            "overlapping networks",
            "[[client]]\npublic_key = \"{K1}\"\nipv4 = \"10.77.0.2\"\nallowed_ips = [\"192.168.0.0/16\"]\n[[client]]\npublic_key = \"{K2}\"\nipv4 = \"10.77.0.3\"\nallowed_ips = [\"192.168.7.0/24\"] # <-\n",
            "overlaps 192.168.0.0/16",
        ),
        (
            "a network over the gateway",
            "[[client]]\npublic_key = \"{K1}\"\nipv4 = \"10.77.0.2\"\nallowed_ips = [\"10.0.0.0/8\"] # <-\n",
            "contains the gateway's own tunnel address",
        ),
        (
            "duplicate name",
            "[[client]]\nname = \"a\"\npublic_key = \"{K1}\"\nipv4 = \"10.77.0.2\"\n[[client]]\nname = \"a\" # <-\npublic_key = \"{K2}\"\nipv4 = \"10.77.0.3\"\n",
            "a client named \"a\" is already configured",
        ),
        (
            "bad client psk",
            "[[client]]\npublic_key = \"{K1}\"\nipv4 = \"10.77.0.2\"\npsk = \"c2hvcnQ=\" # <-\n",
            "psk decodes to 5 bytes",
        ),
    ];
    for (name, clients, expected) in cases {
        let text = fill(&format!("{BASE}{clients}"), &keys());
        let err = GatewaySettings::parse(&dir.path().join("gw.toml"), &text).expect_err(name);
        let message = err.to_string();
        assert_eq!(err.line(), Some(marked_line(&text)), "{name}: {message}");
        assert!(message.contains(expected), "{name}: {message}");
        assert!(
            message.starts_with(&format!("{}:", dir.path().join("gw.toml").display())),
            "{name}: {message}"
        );
    }
}

#[test]
fn top_level_mistakes_are_refused_at_their_line() {
    let cases: &[(&str, &str, &str)] = &[
        ("missing private key", "# <-\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n", "no gateway private key"),
        ("missing tunnel", "private_key = \"{GW}\" # <-\n", "no [tunnel] table"),
        ("empty tunnel", "private_key = \"{GW}\"\n[tunnel] # <-\n", "[tunnel] is empty"),
        ("both key forms", "private_key = \"{GW}\"\nprivate_key_file = \"k\" # <-\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n", "keep only one"),
        ("missing key file", "private_key_file = \"nowhere.key\" # <-\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n", "jvpn keygen"),
        ("port out of range", "private_key = \"{GW}\"\nport = 70000 # <-\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n", "expected u16"),
        ("port 0", "private_key = \"{GW}\"\nport = 0 # <-\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n", "port 0"),
        ("syntax", "port = 1\nprivate_key = \"{GW} # <-\n", "invalid basic string"),
        ("network address", "private_key = \"{GW}\"\n[tunnel]\nipv4 = \"10.77.0.0/24\" # <-\n", "not a host address"),
        ("bad listen", "private_key = \"{GW}\"\nlisten = \"any\" # <-\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n", "not an IP address"),
        ("long tun", "private_key = \"{GW}\"\ntun = \"a-very-long-tun-name\" # <-\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n", "the limit for interface names"),
        ("relative state dir", "private_key = \"{GW}\"\nstate_dir = \"state\" # <-\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n", "absolute path"),
        ("small mtu", "private_key = \"{GW}\"\nmtu = 500 # <-\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n", "at least 576"),
        ("large mtu", "private_key = \"{GW}\"\nmtu = 1501 # <-\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n", "at most 1500"),
        ("keepalive timeout", "private_key = \"{GW}\"\nkeepalive_interval_secs = 40 # <-\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n", "must be longer than keepalive_interval_secs (40)"),
        ("idle timeout", "private_key = \"{GW}\"\nidle_timeout_secs = 30 # <-\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n", "idle_timeout_secs (30) must be longer"),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (name, template, expected) in cases {
        let text = fill(template, &keys());
        let err = GatewaySettings::parse(&dir.path().join("gw.toml"), &text).expect_err(name);
        assert_eq!(err.line(), Some(marked_line(&text)), "{name}: {err}");
        assert!(err.to_string().contains(expected), "{name}: {err}");
    }
}

#[test]
fn a_missing_file_is_named() {
    let err = GatewaySettings::load(Path::new("/nonexistent/jvpn/gateway.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(
        err.to_string().contains("/nonexistent/jvpn/gateway.toml"),
        "{err}"
    );
}
