//! A real `jvpn gateway` process for end-to-end tests: its keys and config in a temp dir, run in
//! the gateway namespace of a [`TwoHosts`] topology (entered with `nsenter --net`, which keeps the
//! host's BPF filesystem visible, unlike `ip netns exec`), and the `jvpn` CLI to ask it things.

use crate::guard::{ChildGuard, PinDirGuard};
use crate::topology::TwoHosts;
use jvpn_user::crypto::{ClientIdentity, PresharedKey, PrivateKey, PublicKey};
use jvpn_user::dataplane::PinDir;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// How long the gateway may take to come up; a failure bound, not a sleep.
const START_PATIENCE: Duration = Duration::from_secs(20);

/// The `jvpn` binary built beside the test binaries.
pub fn jvpn_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // Test binaries live in target/<profile>/deps, binaries in target/<profile>.
    let dir = exe.parent().expect("the binary's directory");
    let dir = if dir.ends_with("deps") {
        dir.parent().expect("target/<profile>")
    } else {
        dir
    };
    let bin = dir.join("jvpn");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p jvpn-user` (cargo test builds it)",
        bin.display()
    );
    bin
}

/// A gateway config (`private_key_file = "gateway.key"` beside it) with one authorised client,
/// `name` with `client_public_key`, at tunnel address 10.99.0.2 in 10.99.0.0/24, and the gateway's
/// TUN device named `tun` (or the gateway's default).
pub fn one_client_config(name: &str, client_public_key: &PublicKey, tun: Option<&str>) -> String {
    let tun = tun.map_or(String::new(), |tun| format!("tun = \"{tun}\"\n"));
    format!(
        "private_key_file = \"gateway.key\"\n\
         {tun}\
         keepalive_interval_secs = 5\n\
         keepalive_timeout_secs = 60\n\
         idle_timeout_secs = 600\n\
         [tunnel]\n\
         ipv4 = \"10.99.0.1/24\"\n\
         [[client]]\n\
         name = \"{name}\"\n\
         public_key = \"{}\"\n\
         ipv4 = \"10.99.0.2\"\n",
        client_public_key.to_base64()
    )
}

/// A gateway with one authorised client, on the gateway side of a two-host topology.
pub struct GatewayFixture {
    /// The namespaces and the veth between them.
    pub hosts: TwoHosts,
    /// Keys, config, store and control socket.
    pub dir: tempfile::TempDir,
    /// What the client needs for a handshake.
    pub client: ClientIdentity,
    /// The gateway's public key.
    pub gateway_public_key: PublicKey,
    /// Arguments added to `jvpn gateway` at every start.
    pub extra_args: Vec<String>,
    /// A program (and its arguments) that runs `jvpn gateway`, inside the namespace: e.g.
    /// `setpriv` with the systemd unit's capabilities. Empty: `jvpn` runs directly.
    pub launcher: Vec<String>,
    child: Option<ChildGuard>,
    _pins: PinDirGuard,
}

impl GatewayFixture {
    /// Writes keys and config for a new gateway; does not start it.
    pub fn new() -> Self {
        let hosts = TwoHosts::new();
        let dir = tempfile::tempdir().expect("temp dir");
        let gateway_public_key =
            jvpn_user::config::keygen(&dir.path().join("gateway.key")).expect("gateway key");
        let client_key = PrivateKey::generate();
        let config = one_client_config("laptop", &client_key.public_key(), None);
        std::fs::write(dir.path().join("gateway.toml"), config).expect("write config");
        let pins = PinDirGuard::new(
            PinDir::new(Path::new(jvpn_common::abi::PIN_ROOT), &hosts.gateway_if)
                .expect("pin dir")
                .path(),
        );
        Self {
            hosts,
            client: ClientIdentity {
                private_key: client_key,
                gateway_public_key,
                psk: PresharedKey::none(),
            },
            gateway_public_key,
            extra_args: Vec::new(),
            launcher: Vec::new(),
            dir,
            child: None,
            _pins: pins,
        }
    }

    /// Authorises `count` more clients (named `extra-N`, tunnel addresses 10.99.0.10 and up) in
    /// the config, for tests that need many sessions of distinct clients; call before
    /// [`Self::start`]. Returns their identities, in order.
    pub fn add_clients(&mut self, count: u8) -> Vec<ClientIdentity> {
        assert!(
            count <= 200,
            "the tunnel network 10.99.0.0/24 has room for 200 more clients"
        );
        let path = self.dir.path().join("gateway.toml");
        let mut config = std::fs::read_to_string(&path).expect("read config");
        let identities = (0..count)
            .map(|i| {
                let key = PrivateKey::generate();
                config.push_str(&format!(
                    "[[client]]\nname = \"extra-{i}\"\npublic_key = \"{}\"\nipv4 = \"10.99.0.{}\"\n",
                    key.public_key().to_base64(),
                    10 + u16::from(i)
                ));
                ClientIdentity {
                    private_key: key,
                    gateway_public_key: self.gateway_public_key,
                    psk: PresharedKey::none(),
                }
            })
            .collect();
        std::fs::write(&path, config).expect("write config");
        identities
    }

    /// The control socket path.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("jvpn.sock")
    }

    /// Starts the gateway (with `env` added) and waits until `jvpn status` answers.
    pub fn start(&mut self, env: &[(&str, &str)]) {
        self.spawn(env);
        self.wait_ready();
    }

    /// Starts the gateway (with `env` added) without waiting for it: for a start that an
    /// injected fault ends ([`Self::wait_exit`]).
    pub fn spawn(&mut self, env: &[(&str, &str)]) {
        assert!(self.child.is_none(), "the gateway is already running");
        // A launcher (e.g. `setpriv` with the unit's capabilities) runs between nsenter and jvpn.
        let mut command = match self.launcher.split_first() {
            None => self.hosts.gateway.nsenter(jvpn_binary()),
            Some((program, args)) => {
                let mut command = self.hosts.gateway.nsenter(program);
                command.args(args).arg(jvpn_binary());
                command
            }
        };
        command
            .args(["gateway", "--iface", &self.hosts.gateway_if, "--config"])
            .arg(self.dir.path().join("gateway.toml"))
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .arg("--socket")
            .arg(self.socket())
            .args(&self.extra_args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.log_path())
                    .expect("gateway log file"),
            ));
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("spawning nsenter jvpn gateway");
        self.child = Some(ChildGuard::new(child));
    }

    /// Waits until the spawned gateway answers `jvpn status`.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            let out = self.cli(&["status"]);
            if out.status.success() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.child().try_wait().ok().flatten())
            {
                panic!(
                    "the gateway exited with {status} while starting:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not answer `jvpn status` within {START_PATIENCE:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The running gateway's process id (`nsenter` and any launcher exec it in place).
    pub fn pid(&mut self) -> u32 {
        self.child
            .as_mut()
            .expect("the gateway is not running")
            .child()
            .id()
    }

    /// Kills the gateway with SIGKILL.
    pub fn kill(&mut self) {
        if let Some(child) = self.child.take() {
            child.kill();
        }
    }

    /// Runs `jvpn detach` on the gateway's interface, as a reboot would lose the pinned maps;
    /// the gateway must not be running.
    pub fn detach(&self) {
        assert!(self.child.is_none(), "stop the gateway before detaching");
        let out = Command::new(jvpn_binary())
            .args(["detach", "--iface", &self.hosts.gateway_if])
            .output()
            .expect("running jvpn detach");
        assert!(
            out.status.success(),
            "jvpn detach: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Waits for the gateway to exit by itself (e.g. an injected fault) and returns its status.
    pub fn wait_exit(&mut self, patience: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the gateway is not running");
        let deadline = Instant::now() + patience;
        loop {
            if let Some(status) = child.child().try_wait().expect("polling the gateway") {
                std::mem::forget(child);
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the gateway did not exit:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs `jvpn <args> --socket <socket>` and returns its output.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(jvpn_binary())
            .args(args)
            .arg("--socket")
            .arg(self.socket())
            .output()
            .expect("running the jvpn CLI")
    }

    /// Runs a CLI command with `--json`, asserts success and parses its output.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.push("--json");
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "jvpn {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "jvpn {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }

    /// Every event so far, as JSON objects.
    pub fn events(&self) -> Vec<serde_json::Value> {
        let out = self.cli(&["events", "--json"]);
        assert!(
            out.status.success(),
            "jvpn events failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }

    /// The versions of a session's audit history, in order.
    pub fn audit_versions(&self, session: u64) -> Vec<u64> {
        let value = self.cli_json(&["audit", &format!("{session:016x}")]);
        value
            .as_array()
            .expect("audit prints a JSON array")
            .iter()
            .map(|e| e["version"].as_u64().expect("version"))
            .collect()
    }

    /// The file the gateway's standard error goes to.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("gateway.log")
    }

    /// The gateway's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }
}

impl Default for GatewayFixture {
    fn default() -> Self {
        Self::new()
    }
}
