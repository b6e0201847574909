//! The client config parser (`config::ClientSettings::parse`) and the gateway address syntax
//! (`config::client::parse_gateway_address`) on arbitrary text.
//!
//! Invariants: parsing never panics; a refusal names a line of the text; a config that validates
//! has a host, a port other than 0 and a gateway address that reads back to the same host and port.
#![no_main]

use jvpn_user::config::client::parse_gateway_address;
use jvpn_user::config::ClientSettings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok((host, port)) = parse_gateway_address(text) {
        assert!(!host.is_empty() && port != 0);
    }
    if jvpn_fuzz::names_a_file(text) {
        return;
    }
    match ClientSettings::parse(jvpn_fuzz::config_path(), text) {
        Ok(settings) => {
            assert!(!settings.gateway_host.is_empty());
            assert_ne!(settings.gateway_port, 0);
            let _ = settings.identity();
            let address = settings.gateway_address();
            let (host, port) = parse_gateway_address(&address)
                .unwrap_or_else(|e| panic!("gateway address {address:?} does not read back: {e}"));
            assert_eq!(
                (host.as_str(), port),
                (settings.gateway_host.as_str(), settings.gateway_port)
            );
        }
        Err(error) => jvpn_fuzz::check_config_error(text, &error),
    }
});
