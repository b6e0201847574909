//! The gateway config parser (`config::GatewaySettings::parse`) on arbitrary text.
//!
//! Invariants: parsing never panics; a refusal names a line of the text; a config that validates
//! gives every client a WELCOME payload that passes the payload's own checks (the client would
//! refuse one that does not), and every client admits its own key.
#![no_main]

use jvpn_common::control::Body as _;
use jvpn_user::config::GatewaySettings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if jvpn_fuzz::names_a_file(text) {
        return;
    }
    match GatewaySettings::parse(jvpn_fuzz::config_path(), text) {
        Ok(settings) => {
            for (i, client) in settings.clients().iter().enumerate() {
                let payload = settings.welcome_payload(client, i as u64 + 1);
                if let Err(error) = payload.check() {
                    panic!(
                        "client {} gets a WELCOME it must refuse: {error}",
                        client.name
                    );
                }
                assert!(settings.admission(&client.public_key, None).is_some());
                for net in &client.allowed_ips {
                    assert!(client.allows_source(net.addr()));
                }
            }
            let _ = settings.public_key();
        }
        Err(error) => jvpn_fuzz::check_config_error(text, &error),
    }
});
