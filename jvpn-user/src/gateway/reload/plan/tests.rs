//! The reload plan, table-driven: which edits keep sessions, which end them, which need a restart.

use super::*;
use crate::crypto::keys::PrivateKey;
use std::path::Path;

struct Keys {
    gateway: String,
    laptop: String,
    phone: String,
}

fn keys() -> Keys {
    Keys {
        gateway: PrivateKey::generate().to_base64().to_string(),
        laptop: PrivateKey::generate().public_key().to_string(),
        phone: PrivateKey::generate().public_key().to_string(),
    }
}

/// A config with `first` (lines before the tunnel table) and the client list `clients`.
fn config(keys: &Keys, first: &str, clients: &str) -> GatewaySettings {
    let text = format!(
        "{first}private_key = \"{}\"\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n{}",
        keys.gateway,
        clients
            .replace("{LAPTOP}", &keys.laptop)
            .replace("{PHONE}", &keys.phone)
    );
    GatewaySettings::parse(Path::new("gateway.toml"), &text).expect("a valid config")
}

const BOTH: &str =
    "[[client]]\nname = \"laptop\"\npublic_key = \"{LAPTOP}\"\nipv4 = \"10.77.0.2\"\n\
                    [[client]]\nname = \"phone\"\npublic_key = \"{PHONE}\"\nipv4 = \"10.77.0.3\"\n";

/// (edited client list, added, removed, changed, renamed, unchanged, which keys are revoked)
type Case = (
    String,
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    &'static [&'static str],
    usize,
    &'static [&'static str],
);

#[test]
fn client_edits_are_classified_and_only_removed_or_changed_clients_are_revoked() {
    let keys = keys();
    let old = config(&keys, "", BOTH);
    let key_of = |name: &str| {
        *old.clients()
            .iter()
            .find(|c| c.name == name)
            .unwrap()
            .public_key
            .as_bytes()
    };
    let tablet = PrivateKey::generate().public_key().to_string();
    let psk = crate::crypto::keys::PresharedKey::generate();
    let cases: Vec<Case> = vec![
        (BOTH.to_string(), &[], &[], &[], &[], 2, &[]),
        (
            BOTH.split("[[client]]\nname = \"phone\"").next().unwrap().to_string(),
            &[],
            &["phone"],
            &[],
            &[],
            1,
            &["phone"],
        ),
        (BOTH.replace("10.77.0.3", "10.77.0.9"), &[], &[], &["phone"], &[], 1, &["phone"]),
        (
            BOTH.replace(
                "ipv4 = \"10.77.0.2\"\n",
                &format!("ipv4 = \"10.77.0.2\"\npsk = \"{}\"\n", psk.to_base64().as_str()),
            ),
            &[],
            &[],
            &["laptop"],
            &[],
            1,
            &["laptop"],
        ),
        (BOTH.replace("\"laptop\"", "\"work\""), &[], &[], &[], &["laptop -> work"], 1, &[]),
        (
            format!("{BOTH}[[client]]\nname = \"tablet\"\npublic_key = \"{tablet}\"\nipv4 = \"10.77.0.4\"\n"),
            &["tablet"],
            &[],
            &[],
            &[],
            2,
            &[],
        ),
    ];
    for (clients, added, removed, changed, renamed, unchanged, revoked) in cases {
        let new = config(&keys, "", &clients);
        let plan = plan(&old, &new).expect("a client edit needs no restart");
        assert_eq!(plan.added, added, "{clients}");
        assert_eq!(plan.removed, removed, "{clients}");
        assert_eq!(plan.changed, changed, "{clients}");
        assert_eq!(plan.renamed, renamed, "{clients}");
        assert_eq!(plan.unchanged, unchanged, "{clients}");
        let want: HashSet<ClientKey> = revoked.iter().map(|n| key_of(n)).collect();
        assert_eq!(plan.revoked, want, "{clients}");
    }
}

#[test]
fn settings_read_only_at_start_need_a_restart() {
    let keys = keys();
    let old = config(&keys, "", BOTH);
    let cases = [
        ("port = 51999\n", "port"),
        ("listen = \"127.0.0.1\"\n", "listen"),
        ("iface = \"eth9\"\n", "iface"),
        ("state_dir = \"/tmp/elsewhere\"\n", "state_dir"),
        ("tun = \"jvpn9\"\n", "tun"),
        ("mtu = 1280\n", "mtu"),
        ("handshake_queue = 7\n", "handshake_queue"),
    ];
    for (line, setting) in cases {
        assert_eq!(
            plan(&old, &config(&keys, line, BOTH)),
            Err(setting),
            "{line}"
        );
    }
    let other_gateway = Keys {
        gateway: PrivateKey::generate().to_base64().to_string(),
        laptop: keys.laptop.clone(),
        phone: keys.phone.clone(),
    };
    assert_eq!(
        plan(&old, &config(&other_gateway, "", BOTH)),
        Err("private_key")
    );
}
