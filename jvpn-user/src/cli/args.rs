//! The command line as typed: clap's derive definitions, before any validation.
//!
//! Values whose checking needs a good error message (session ids, interface names, addresses,
//! limits) stay strings here and are checked in [`super::validate`], which turns these raw
//! arguments into a [`super::Command`].

use clap::{Args, Parser, Subcommand, ValueEnum};
use jvpn_common::abi::DEFAULT_PORT;
use std::path::PathBuf;

/// Default gateway config file.
pub const DEFAULT_CONFIG: &str = "/etc/jvpn/gateway.toml";
/// Default directory of the durable session store.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/jvpn";

/// jvpn: a VPN whose sessions survive transport changes.
#[derive(Debug, Parser)]
#[command(name = "jvpn", version, about, propagate_version = true)]
pub struct RawArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: RawCommand,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum RawCommand {
    /// Run the gateway daemon in the foreground (stops on SIGINT or SIGTERM).
    Gateway(RawGatewayArgs),
    /// Show the running gateway's status.
    Status(RawControlArgs),
    /// List, show or terminate sessions.
    Sessions {
        /// What to do with sessions (default: list).
        #[command(subcommand)]
        action: Option<RawSessionsAction>,
        /// Which gateway to ask, and how to print.
        #[command(flatten)]
        control: RawControlArgs,
    },
    /// Show packet, drop and transition counters.
    Stats(RawControlArgs),
    /// Show every client and its sessions: endpoint, state and version, latest handshake, last
    /// jump, bytes each way; and the gateway-wide XDP drops by reason (like `wg show`).
    Show(RawControlArgs),
    /// Make the running gateway apply its edited config file (as SIGHUP does): clients added,
    /// removed or changed; a removed or changed client's sessions are terminated, no other session
    /// is touched. An invalid file, or a change that needs a restart, changes nothing.
    Reload(RawControlArgs),
    /// Print a session's whole version history.
    Audit {
        /// The session id, as printed by `jvpn sessions list`.
        #[arg(value_name = "ID")]
        id: String,
        /// Which gateway to ask, and how to print.
        #[command(flatten)]
        control: RawControlArgs,
    },
    /// Print the gateway's event stream.
    Events {
        /// Keep printing new events until interrupted.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only events about this session.
        #[arg(long, value_name = "ID")]
        session: Option<String>,
        /// Only events of this kind: STATE_CHANGE, SECURITY_EVENT, POLICY_EVENT or EVENTS_LOST
        /// (losses are always shown).
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
        /// Which gateway to ask, and how to print.
        #[command(flatten)]
        control: RawControlArgs,
    },
    /// Detach the XDP program from IF and remove its pins: enforcement on IF stops. Stop the
    /// gateway on IF first; `jvpn gateway` leaves the program attached on purpose, so that
    /// enforcement outlives restarts.
    Detach {
        /// The interface the program is attached to.
        #[arg(long, short = 'i', value_name = "IF")]
        iface: String,
    },
    /// Generate a key pair: writes the private key to KEY_FILE (mode 0600, never replacing a file)
    /// and prints the public key for the other side's config.
    Keygen {
        /// Where to write the private key (or, with --psk, the pre-shared key).
        #[arg(value_name = "KEY_FILE")]
        path: PathBuf,
        /// Make a pre-shared key instead of a key pair.
        #[arg(long)]
        psk: bool,
    },
    /// Run the VPN client in the foreground (stops on SIGINT or SIGTERM): handshake, TUN device,
    /// traffic, keepalives, reattaches. `jvpn client jump` makes a running client reattach.
    Client(RawClientArgs),
}

/// `jvpn client` options.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RawClientArgs {
    /// Act on a running client instead of starting one.
    #[command(subcommand)]
    pub action: Option<RawClientAction>,
    /// A client config file (gateway, keys, tun) instead of the flags below.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The gateway's address.
    #[arg(long, value_name = "HOST:PORT")]
    pub gateway: Option<String>,
    /// The client's private key file (from `jvpn keygen`).
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The gateway's public key, as `jvpn keygen` printed it.
    #[arg(long, value_name = "KEY")]
    pub gateway_public_key: Option<String>,
    /// A pre-shared key file, if the gateway's config has one for this client.
    #[arg(long, value_name = "FILE")]
    pub psk: Option<PathBuf>,
    /// The TUN device to create (default jvpn0).
    #[arg(long, value_name = "NAME")]
    pub tun: Option<String>,
    /// The interface to send from (default: whatever the route to the gateway uses).
    #[arg(long, value_name = "IF")]
    pub uplink: Option<String>,
    /// Rekey the session when its keys are this many milliseconds old (default 120000; keep it
    /// below the gateway's reject_after_ms).
    #[arg(long, value_name = "MS")]
    pub rekey_after_ms: Option<u64>,
    /// Rekey the session when its keys sealed this many messages (default 2^60).
    #[arg(long, value_name = "N")]
    pub rekey_after_messages: Option<u64>,
}

/// `jvpn client` actions on a running client.
#[derive(Debug, Subcommand)]
pub enum RawClientAction {
    /// Make the running client reattach now, from --uplink IF if given.
    Jump {
        /// The running client's TUN device (default jvpn0).
        #[arg(long, value_name = "NAME")]
        tun: Option<String>,
        /// The interface to jump to.
        #[arg(long, value_name = "IF")]
        uplink: Option<String>,
    },
}

/// `jvpn sessions` actions.
#[derive(Debug, Subcommand)]
pub enum RawSessionsAction {
    /// List every session.
    List,
    /// Show one session in full.
    Show {
        /// The session id.
        #[arg(value_name = "ID")]
        id: String,
    },
    /// End a session (its version goes up by one, to TERMINATED).
    Terminate {
        /// The session id.
        #[arg(value_name = "ID")]
        id: String,
    },
}

/// Options every control command (`status`, `sessions`, `stats`, `audit`, `events`) shares.
#[derive(Debug, Args)]
pub struct RawControlArgs {
    /// The interface whose gateway to ask (its socket is /run/jvpn/IF.sock). Needed only when
    /// more than one gateway runs.
    #[arg(long, short = 'i', value_name = "IF", global = true)]
    pub iface: Option<String>,
    /// The control socket to use instead of /run/jvpn/IF.sock.
    #[arg(long, value_name = "PATH", global = true, conflicts_with = "iface")]
    pub socket: Option<PathBuf>,
    /// Print JSON instead of text (one object per line for `events`).
    #[arg(long, global = true)]
    pub json: bool,
}

/// `jvpn gateway` options.
#[derive(Debug, Args)]
pub struct RawGatewayArgs {
    /// The interface jvpn traffic arrives on; the XDP program attaches here.
    #[arg(long, short = 'i', value_name = "IF")]
    pub iface: String,
    /// The UDP port to serve.
    #[arg(long, value_name = "PORT", default_value_t = DEFAULT_PORT)]
    pub port: u16,
    /// The gateway config file (keys and authorised clients).
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Where the durable session store lives.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Keep sessions in an etcd cluster shared with other gateways (etcd://HOST:PORT,...; needs
    /// a [cluster] table in the config) instead of the embedded store in --state-dir.
    #[arg(long, value_name = "URL")]
    pub store: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9151).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Size of the session table and of the replay windows [default: 65536]. The replay windows
    /// are allocated whole at start, about 1 KiB of kernel memory per session of this size.
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<String>,
    /// After a start that lost the XDP maps (a reboot), PATH_CHALLENGEs sent per second to the
    /// RECOVERING sessions at their last binding, so their clients reattach at once; 0 sends
    /// none, and clients then notice only from silence.
    #[arg(long, value_name = "N", default_value_t = crate::gateway::recovery::DEFAULT_RECOVERY_CHALLENGES_PER_SECOND)]
    pub recovery_challenges: u32,
    /// How the XDP program attaches: native (driver) or generic (skb). Generic XDP runs after
    /// GRO and on whole GSO packets, so it drops a merged run longer than one datagram whole
    /// (MERGED_RUN) and judges a shorter one by its first; only for drivers without native
    /// XDP, and refused on a veth.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = RawXdpMode::Driver)]
    pub xdp_mode: RawXdpMode,
    /// The control socket to serve instead of /run/jvpn/IF.sock.
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
}

/// `--xdp-mode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RawXdpMode {
    /// Native XDP in the driver.
    Driver,
    /// Generic XDP after the skb is built.
    Skb,
}
