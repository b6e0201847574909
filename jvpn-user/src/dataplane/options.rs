//! What a dataplane is loaded with: the interface, the gateway port and mode, the table capacity,
//! the HELLO and event rate limits, and how XDP attaches.

use super::DataplaneError;
use jvpn_common::abi;
use jvpn_common::maps::{DataplaneMode, GatewayConfig, HandshakeGuard, CONFIG_FLAG_GENERIC_XDP};
use jvpn_common::wire::Be16;
use std::path::PathBuf;

/// How the XDP program is attached to the interface.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum XdpAttachMode {
    /// Native XDP, run by the driver before an skb exists (the default, and what production uses).
    #[default]
    Driver,
    /// Generic XDP, run by the kernel after the skb is built; for drivers without native XDP.
    /// It runs after GRO and on whole GSO packets: the program drops a merged run longer than
    /// one datagram whole (`MERGED_RUN`) and judges a shorter one by its first datagram
    /// (docs/datapath.md, "Merged runs").
    Skb,
}

/// Everything [`super::Dataplane::load`] needs. Build with [`DataplaneOptions::new`] and adjust.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataplaneOptions {
    /// The interface jvpn traffic arrives on.
    pub iface: String,
    /// The gateway's UDP port; only UDP to this port is jvpn's.
    pub port: u16,
    /// Enforce (drop) or only monitor (count, report and pass).
    pub mode: DataplaneMode,
    /// Capacity of the session table (and of the replay windows).
    pub max_sessions: u32,
    /// HELLO tokens per second per source address.
    pub hello_rate: u32,
    /// HELLO bucket size per source address.
    pub hello_burst: u32,
    /// Security events per drop reason per CPU per second; the rest are only counted.
    pub events_per_second: u32,
    /// Native or generic XDP.
    pub xdp_mode: XdpAttachMode,
    /// The HELLO guard: the mac1 key and the first cookie secret (set by the gateway, zero
    /// otherwise, which refuses every HELLO) and the global budgets per CPU.
    pub handshake: HandshakeGuard,
    /// Root of the pins; the dataplane of `iface` pins under `pin_root/<iface>/v<layout>/`.
    /// Defaults to [`abi::PIN_ROOT`]; must be on a BPF filesystem.
    pub pin_root: PathBuf,
}

impl DataplaneOptions {
    /// Options for `iface` with every default from [`jvpn_common::abi`].
    pub fn new(iface: impl Into<String>) -> Self {
        Self {
            iface: iface.into(),
            port: abi::DEFAULT_PORT,
            mode: DataplaneMode::Enforce,
            max_sessions: abi::DEFAULT_MAX_SESSIONS,
            hello_rate: abi::DEFAULT_HELLO_RATE,
            hello_burst: abi::DEFAULT_HELLO_BURST,
            events_per_second: abi::DEFAULT_EVENTS_PER_SECOND,
            xdp_mode: XdpAttachMode::Driver,
            handshake: HandshakeGuard {
                global_rate: abi::DEFAULT_HELLO_GLOBAL_RATE,
                global_burst: abi::DEFAULT_HELLO_GLOBAL_BURST,
                cookie_rate: abi::DEFAULT_COOKIE_RATE,
                cookie_burst: abi::DEFAULT_COOKIE_BURST,
                ..HandshakeGuard::default()
            },
            pin_root: PathBuf::from(abi::PIN_ROOT),
        }
    }

    /// Checks the options describe a dataplane that can run.
    pub fn validate(&self) -> Result<(), DataplaneError> {
        let invalid = |reason: &str| {
            Err(DataplaneError::InvalidOptions {
                reason: reason.to_owned(),
            })
        };
        if self.port == 0 {
            return invalid(
                "port 0 would leave the dataplane unconfigured; give the gateway's UDP port",
            );
        }
        if self.max_sessions == 0 {
            return invalid(
                "max_sessions is 0; the session table needs room for at least one session",
            );
        }
        if self.hello_burst == 0 {
            return invalid(
                "hello_burst is 0, which refuses every HELLO; give a burst of at least 1",
            );
        }
        Ok(())
    }

    /// The config map entry these options describe.
    pub fn gateway_config(&self) -> GatewayConfig {
        GatewayConfig {
            port: Be16::new(self.port),
            mode: self.mode as u8,
            flags: match self.xdp_mode {
                XdpAttachMode::Driver => 0,
                XdpAttachMode::Skb => CONFIG_FLAG_GENERIC_XDP,
            },
            hello_rate: self.hello_rate,
            hello_burst: self.hello_burst,
            events_per_second: self.events_per_second,
            handshake: self.handshake,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_come_from_the_abi_and_validate() {
        let options = DataplaneOptions::new("eth0");
        assert_eq!(options.port, abi::DEFAULT_PORT);
        assert_eq!(options.max_sessions, abi::DEFAULT_MAX_SESSIONS);
        assert!(options.validate().is_ok());
        let config = options.gateway_config();
        assert_eq!(config.port.get(), abi::DEFAULT_PORT);
        assert_eq!(config.mode, DataplaneMode::Enforce as u8);
        assert_eq!(config.flags, 0, "driver mode");
    }

    #[test]
    fn generic_mode_is_recorded_in_the_config_entry() {
        let mut options = DataplaneOptions::new("eth0");
        options.xdp_mode = XdpAttachMode::Skb;
        assert_eq!(options.gateway_config().flags, CONFIG_FLAG_GENERIC_XDP);
    }

    #[test]
    fn options_that_cannot_run_are_refused() {
        type Mutation = fn(&mut DataplaneOptions);
        let cases: [(&str, Mutation); 3] = [
            ("port 0", |o| o.port = 0),
            ("no sessions", |o| o.max_sessions = 0),
            ("no hello burst", |o| o.hello_burst = 0),
        ];
        for (name, mutate) in cases {
            let mut options = DataplaneOptions::new("eth0");
            mutate(&mut options);
            assert!(
                matches!(
                    options.validate(),
                    Err(DataplaneError::InvalidOptions { .. })
                ),
                "{name}"
            );
        }
    }
}
