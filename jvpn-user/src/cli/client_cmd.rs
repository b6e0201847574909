//! `jvpn client` (run the VPN client) and `jvpn client jump` (make a running one reattach): their
//! validated form, and running them.

use super::args::{RawClientAction, RawClientArgs};
use super::error::CliError;
use super::validate::iface_name;
use crate::client_session::options::{DEFAULT_REKEY_AFTER, DEFAULT_REKEY_AFTER_MESSAGES};
use crate::client_session::ConnectOptions;
use crate::config::ClientSettings;
use crate::tunnel_client::{
    control_socket_path, request_jump, TunnelClientError, TunnelClientOptions, DEFAULT_CLIENT_TUN,
};
use std::path::PathBuf;
use std::time::Duration;

/// Where the client's gateway, keys and TUN name come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientSource {
    /// A client config file.
    Config(PathBuf),
    /// The command line.
    Args {
        /// `HOST:PORT`.
        gateway: String,
        /// The client's private key file.
        key: PathBuf,
        /// The gateway's public key (base64).
        gateway_public_key: String,
        /// An optional pre-shared key file.
        psk: Option<PathBuf>,
    },
}

/// A validated `jvpn client` command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientCommand {
    /// Run the client.
    Run {
        /// Gateway and keys.
        source: ClientSource,
        /// `--tun`, overriding the config's.
        tun: Option<String>,
        /// `--uplink`: the interface to send from.
        uplink: Option<String>,
        /// `--rekey-after-ms` and `--rekey-after-messages`, or the defaults.
        rekey: RekeyAfter,
    },
    /// Ask the running client of TUN device `tun` to jump.
    Jump {
        /// The running client's TUN device.
        tun: String,
        /// The interface to jump to; the current one if absent.
        uplink: Option<String>,
    },
}

/// When the client rekeys (docs/rekey.md), as the flags say; what they leave out comes from the
/// config file, then the defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RekeyAfter {
    /// `--rekey-after-ms`: keys this old are replaced.
    pub age: Option<Duration>,
    /// `--rekey-after-messages`: keys that sealed this many messages are replaced.
    pub messages: Option<u64>,
}

impl RekeyAfter {
    /// The flags over the config's values over the defaults.
    fn resolve(self, settings: &ClientSettings) -> (Duration, u64) {
        (
            self.age
                .or(settings.rekey_after)
                .unwrap_or(DEFAULT_REKEY_AFTER),
            self.messages
                .or(settings.rekey_after_messages)
                .unwrap_or(DEFAULT_REKEY_AFTER_MESSAGES),
        )
    }
}

/// Validates `jvpn client` arguments.
pub fn validate(raw: RawClientArgs) -> Result<ClientCommand, CliError> {
    let name = |flag, n: Option<String>| n.map(|n| iface_name(flag, &n)).transpose();
    if let Some(RawClientAction::Jump { tun, uplink }) = raw.action {
        return Ok(ClientCommand::Jump {
            tun: name("--tun", tun)?.unwrap_or_else(|| DEFAULT_CLIENT_TUN.to_owned()),
            uplink: name("--uplink", uplink)?,
        });
    }
    let source = match (raw.config, raw.gateway, raw.key, raw.gateway_public_key) {
        (Some(config), None, None, None) => ClientSource::Config(config),
        (None, Some(gateway), Some(key), Some(gateway_public_key)) => ClientSource::Args {
            gateway,
            key,
            gateway_public_key,
            psk: raw.psk,
        },
        _ => {
            return Err(CliError::Usage {
                message: "jvpn client needs either --config FILE, or --gateway HOST:PORT --key \
                          FILE --gateway-public-key KEY"
                    .to_owned(),
            })
        }
    };
    let usage = |message: &str| CliError::Usage {
        message: message.to_owned(),
    };
    let rekey = RekeyAfter {
        age: match raw.rekey_after_ms {
            Some(0) => return Err(usage("--rekey-after-ms must be at least 1")),
            ms => ms.map(Duration::from_millis),
        },
        messages: match raw.rekey_after_messages {
            Some(0) => return Err(usage("--rekey-after-messages must be at least 1")),
            n => n,
        },
    };
    Ok(ClientCommand::Run {
        source,
        tun: name("--tun", raw.tun)?,
        uplink: name("--uplink", raw.uplink)?,
        rekey,
    })
}

/// Runs a validated `jvpn client` command.
pub fn execute(command: ClientCommand) -> Result<(), CliError> {
    match command {
        ClientCommand::Jump { tun, uplink } => {
            let version = request_jump(&control_socket_path(&tun), uplink.as_deref())
                .map_err(CliError::Client)?;
            println!("jumped; the session is at version {version}");
            Ok(())
        }
        ClientCommand::Run {
            source,
            tun,
            uplink,
            rekey,
        } => {
            let settings = match &source {
                ClientSource::Config(path) => ClientSettings::load(path)
                    .map_err(|e| CliError::Client(TunnelClientError::Config(e)))?,
                ClientSource::Args {
                    gateway,
                    key,
                    gateway_public_key,
                    psk,
                } => ClientSettings::from_parts(
                    gateway,
                    gateway_public_key,
                    key,
                    psk.as_deref(),
                    tun.as_deref(),
                )
                .map_err(|e| CliError::Usage {
                    message: e.to_string(),
                })?,
            };
            let tun = tun
                .or_else(|| settings.tun.clone())
                .unwrap_or_else(|| DEFAULT_CLIENT_TUN.to_owned());
            let (rekey_after, rekey_after_messages) = rekey.resolve(&settings);
            let runtime = super::daemon_runtime()?;
            let options = TunnelClientOptions {
                settings,
                tun,
                uplink,
                connect: ConnectOptions {
                    rekey_after,
                    rekey_after_messages,
                    ..ConnectOptions::default()
                },
            };
            super::run_on_workers(
                &runtime,
                crate::tunnel_client::run(options, super::shutdown_signal()),
            )
            .map_err(CliError::Client)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{parse_args, Command, Invocation};

    fn parsed(args: &[&str]) -> Result<ClientCommand, String> {
        match parse_args(std::iter::once("jvpn").chain(args.iter().copied())) {
            Ok(Invocation::Run(Command::Client(command))) => Ok(command),
            Ok(other) => Err(format!("not a tunnel command: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn client_arguments_are_validated_into_commands() {
        let args = ClientSource::Args {
            gateway: "gw:51900".into(),
            key: "k".into(),
            gateway_public_key: "P".into(),
            psk: None,
        };
        let cases: [(&[&str], Result<ClientCommand, &str>); 8] = [
            (
                &["client", "--config", "c.toml", "--uplink", "wifi"],
                Ok(ClientCommand::Run {
                    source: ClientSource::Config("c.toml".into()),
                    tun: None,
                    uplink: Some("wifi".into()),
                    rekey: RekeyAfter::default(),
                }),
            ),
            (
                &["client", "--config", "c.toml", "--rekey-after-ms", "200"],
                Ok(ClientCommand::Run {
                    source: ClientSource::Config("c.toml".into()),
                    tun: None,
                    uplink: None,
                    rekey: RekeyAfter {
                        age: Some(Duration::from_millis(200)),
                        messages: None,
                    },
                }),
            ),
            (
                &["client", "--config", "c.toml", "--rekey-after-ms", "0"],
                Err("--rekey-after-ms must be at least 1"),
            ),
            (
                &[
                    "client",
                    "--gateway",
                    "gw:51900",
                    "--key",
                    "k",
                    "--gateway-public-key",
                    "P",
                ],
                Ok(ClientCommand::Run {
                    source: args,
                    tun: None,
                    uplink: None,
                    rekey: RekeyAfter::default(),
                }),
            ),
            (
                &["client", "jump", "--uplink", "lte"],
                Ok(ClientCommand::Jump {
                    tun: DEFAULT_CLIENT_TUN.into(),
                    uplink: Some("lte".into()),
                }),
            ),
            (&["client"], Err("needs either --config")),
            (
                &["client", "--config", "c", "--gateway", "gw:1"],
                Err("needs either --config"),
            ),
            (&["client", "jump", "--tun", "a/b"], Err("--tun")),
        ];
        for (argv, expected) in cases {
            match (parsed(argv), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{argv:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{argv:?}: {got}"),
                (got, want) => panic!("{argv:?}: got {got:?}, expected {want:?}"),
            }
        }
    }

    #[test]
    fn rekey_limits_come_from_the_flags_then_the_config_then_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        crate::config::keyfile::keygen(&dir.path().join("client.key")).unwrap();
        let mut settings = ClientSettings::from_parts(
            "gw:1",
            &crate::crypto::PrivateKey::generate()
                .public_key()
                .to_base64(),
            &dir.path().join("client.key"),
            None,
            None,
        )
        .unwrap();
        let none = RekeyAfter::default();
        assert_eq!(
            none.resolve(&settings),
            (DEFAULT_REKEY_AFTER, DEFAULT_REKEY_AFTER_MESSAGES)
        );
        settings.rekey_after = Some(Duration::from_secs(60));
        settings.rekey_after_messages = Some(1_000);
        assert_eq!(none.resolve(&settings), (Duration::from_secs(60), 1_000));
        let flags = RekeyAfter {
            age: Some(Duration::from_millis(100)),
            messages: None,
        };
        assert_eq!(
            flags.resolve(&settings),
            (Duration::from_millis(100), 1_000)
        );
    }
}
