//! The client config and command-line settings: a full file, gateway address forms, refusals.

use super::*;
use crate::config::keyfile::{genpsk, keygen};
use crate::crypto::keys::PrivateKey;

/// A gateway address text and its expected host and port, or refusal.
type AddressCase = (
    &'static str,
    Result<(&'static str, u16), GatewayAddressError>,
);

#[test]
fn gateway_addresses_parse_in_every_form() {
    let cases: &[AddressCase] = &[
        ("vpn.example.net:51901", Ok(("vpn.example.net", 51901))),
        ("vpn.example.net", Ok(("vpn.example.net", DEFAULT_PORT))),
        ("192.0.2.1:7", Ok(("192.0.2.1", 7))),
        ("[2001:db8::1]:51900", Ok(("2001:db8::1", 51900))),
        ("[2001:db8::1]", Ok(("2001:db8::1", DEFAULT_PORT))),
        ("2001:db8::1", Err(GatewayAddressError::Brackets)),
        ("[2001:db8::1", Err(GatewayAddressError::Brackets)),
        ("[2001:db8::1]51900", Err(GatewayAddressError::Brackets)),
        (":51900", Err(GatewayAddressError::NoHost)),
        // Caught by the client_config fuzz target's read-back invariant: accepted, these never
        // read back from `gateway_address` ("[[]:5" became "[:5", "[ a]" became "a").
        ("[[]:5", Err(GatewayAddressError::BadHost("[".into()))),
        ("[ a]", Err(GatewayAddressError::BadHost(" a".into()))),
        ("a b:5", Err(GatewayAddressError::BadHost("a b".into()))),
        ("host:0", Err(GatewayAddressError::BadPort("0".into()))),
        (
            "host:http",
            Err(GatewayAddressError::BadPort("http".into())),
        ),
        (
            "host:65536",
            Err(GatewayAddressError::BadPort("65536".into())),
        ),
    ];
    for (text, expected) in cases {
        let got = parse_gateway_address(text);
        let expected = expected.clone().map(|(h, p)| (h.to_owned(), p));
        assert_eq!(got, expected, "{text}");
    }
}

#[test]
fn a_client_file_validates_with_relative_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let public = keygen(&dir.path().join("client.key")).unwrap();
    genpsk(&dir.path().join("psk")).unwrap();
    let gateway = PrivateKey::generate().public_key();
    let path = dir.path().join("client.toml");
    std::fs::write(
        &path,
        format!(
            "gateway = \"[2001:db8::1]:51901\"\ngateway_public_key = \"{gateway}\"\n\
             private_key_file = \"client.key\"\npsk_file = \"psk\"\ntun = \"vpn0\"\n\
             rekey_after_ms = 500\n"
        ),
    )
    .unwrap();
    let settings = ClientSettings::load(&path).unwrap();
    assert_eq!(settings.gateway_address(), "[2001:db8::1]:51901");
    assert_eq!(settings.private_key.public_key(), public);
    assert_eq!(settings.tun.as_deref(), Some("vpn0"));
    assert_eq!(
        (settings.rekey_after, settings.rekey_after_messages),
        (Some(std::time::Duration::from_millis(500)), None)
    );
    let identity = settings.identity();
    assert_eq!(identity.gateway_public_key, gateway);
    assert_eq!(
        identity.psk,
        crate::config::read_psk_file(&dir.path().join("psk")).unwrap()
    );

    let from_flags = ClientSettings::from_parts(
        "vpn.example.net",
        &gateway.to_string(),
        &dir.path().join("client.key"),
        None,
        None,
    )
    .unwrap();
    assert_eq!(from_flags.gateway_address(), "vpn.example.net:51900");
    assert_eq!(from_flags.psk, PresharedKey::none());
}

#[test]
fn every_malformed_client_file_is_refused_at_its_line() {
    let gateway = PrivateKey::generate().public_key().to_string();
    let private = PrivateKey::generate().to_base64().to_string();
    let cases: &[(&str, String, &str)] = &[
        (
            "bad gateway key",
            format!("gateway = \"h:1\"\ngateway_public_key = \"{}\" # <-\nprivate_key = \"{private}\"\n", &gateway[..40]),
            "gateway_public_key decodes to",
        ),
        (
            "bad private key",
            format!("gateway = \"h:1\"\ngateway_public_key = \"{gateway}\"\nprivate_key = \"%%\" # <-\n"),
            "private_key is not valid base64",
        ),
        (
            "bad port",
            format!("gateway = \"h:99999\" # <-\ngateway_public_key = \"{gateway}\"\nprivate_key = \"{private}\"\n"),
            "not a number from 1 to 65535",
        ),
        (
            "missing gateway",
            format!("gateway_public_key = \"{gateway}\" # <-\nprivate_key = \"{private}\"\n"),
            "missing field `gateway`",
        ),
        (
            "missing private key",
            format!("gateway = \"h:1\" # <-\ngateway_public_key = \"{gateway}\"\n"),
            "no client private key",
        ),
        (
            "both psk forms",
            format!("gateway = \"h:1\"\ngateway_public_key = \"{gateway}\"\nprivate_key = \"{private}\"\npsk = \"{private}\"\npsk_file = \"p\" # <-\n"),
            "both psk and psk_file are set",
        ),
        (
            "zero rekey age",
            format!("gateway = \"h:1\"\ngateway_public_key = \"{gateway}\"\nprivate_key = \"{private}\"\nrekey_after_ms = 0 # <-\n"),
            "rekey_after_ms must be at least 1",
        ),
    ];
    for (name, text, expected) in cases {
        let err = ClientSettings::parse(Path::new("/etc/jvpn/client.toml"), text).expect_err(name);
        let line = text.lines().position(|l| l.contains("# <-")).unwrap() + 1;
        assert_eq!(err.line(), Some(line), "{name}: {err}");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("/etc/jvpn/client.toml:{line}:")),
            "{name}: {message}"
        );
        assert!(message.contains(expected), "{name}: {message}");
    }
}

#[test]
fn command_line_settings_name_the_flag_at_fault() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("client.key");
    keygen(&key).unwrap();
    let gateway = PrivateKey::generate().public_key().to_string();
    let cases: [(&str, &str, &Path, Option<&str>, &str); 4] = [
        ("h:0", &gateway, &key, None, "--gateway \"h:0\""),
        ("h:1", "short", &key, None, "--gateway-public-key"),
        (
            "h:1",
            &gateway,
            Path::new("/nonexistent/k"),
            None,
            "/nonexistent/k",
        ),
        (
            "h:1",
            &gateway,
            &key,
            Some("bad/name"),
            "--tun \"bad/name\"",
        ),
    ];
    for (gw, gw_key, key_file, tun, expected) in cases {
        let err = ClientSettings::from_parts(gw, gw_key, key_file, None, tun).unwrap_err();
        assert!(err.to_string().contains(expected), "{err}");
    }
}
