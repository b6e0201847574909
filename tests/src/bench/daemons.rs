//! The real `jvpn gateway` (XDP on `jvbt-g`, TUN `jvbt-gtun`) and the real `jvpn client` (TUN
//! `jvbt-tun`, starting on wifi), run from the release binary (`cargo xtask bench` builds it beside
//! the benchmark), and asked to jump through the client's control socket. Everything they leave is
//! undone on drop: the processes are stopped by their [`ChildGuard`]s, the gateway's pins and the
//! client's socket removed.

use super::cpu::process_seconds;
use super::topology::{
    Topology, Uplink, CLIENT_TUN, GATEWAY_ADDR, GATEWAY_IF, GATEWAY_TUN, TUNNEL_CLIENT_ADDR,
    UPLINKS,
};
use crate::gateway::{jvpn_binary, one_client_config};
use crate::guard::ChildGuard;
use crate::probe::eventually_within;
use jvpn_user::tunnel_client::{control_socket_path, request_jump};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long the gateway and the client may take to come up; a failure bound, not a sleep.
const START_PATIENCE: Duration = Duration::from_secs(20);
/// The gateway's UDP port.
const GATEWAY_PORT: u16 = 51_900;

/// Removes what the daemons leave outside their namespaces: the gateway's pins
/// (`<PIN_ROOT>/jvbt-g`, which outlive it on purpose) and the killed client's control socket.
pub fn remove_host_files() {
    let dir = Path::new(jvpn_common::abi::PIN_ROOT).join(GATEWAY_IF);
    if dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            eprintln!("could not remove the pins {}: {e}", dir.display());
        }
    }
    let _ = std::fs::remove_file(control_socket_path(CLIENT_TUN));
}

/// Removes the daemons' files outside their namespaces when dropped (after both are gone).
#[derive(Debug)]
struct HostFilesGuard;

impl Drop for HostFilesGuard {
    fn drop(&mut self) {
        remove_host_files();
    }
}

/// The gateway and the client, running; fields drop in order (client, gateway, temp files, pins
/// and control socket).
#[derive(Debug)]
pub struct Vpn {
    client: ChildGuard,
    /// `None` only between the kill and the restart of [`Self::restart_gateway_losing_maps`].
    gateway: Option<ChildGuard>,
    dir: tempfile::TempDir,
    _host_files: HostFilesGuard,
    uplink: Cell<Uplink>,
}

impl Vpn {
    /// Starts the gateway, waits for its control socket, starts the client on wifi and waits
    /// for its TUN device to carry the tunnel address.
    pub fn start(topology: &Topology) -> Self {
        let host_files = HostFilesGuard;
        let dir = tempfile::tempdir().expect("a temp dir");
        let gateway_key = jvpn_user::config::keygen(&dir.path().join("gateway.key"))
            .expect("writing the gateway key");
        let client_key = jvpn_user::config::keygen(&dir.path().join("client.key"))
            .expect("writing the client key");
        // The config's client address is the bench's TUNNEL_CLIENT_ADDR.
        let config = one_client_config("bench", &client_key, Some(GATEWAY_TUN));
        std::fs::write(dir.path().join("gateway.toml"), config).expect("writing the config");
        let log = |name: &str| std::fs::File::create(dir.path().join(name)).expect("a log file");

        let gateway = Some(spawn_gateway(topology, dir.path(), &[]));
        let read_log =
            |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap_or_default();
        let mut client = ChildGuard::spawn(
            topology
                .client
                .nsenter(jvpn_binary())
                .arg("client")
                .arg("--gateway")
                .arg(format!("{GATEWAY_ADDR}:{GATEWAY_PORT}"))
                .arg("--gateway-public-key")
                .arg(gateway_key.to_base64())
                .arg("--key")
                .arg(dir.path().join("client.key"))
                .args(["--tun", CLIENT_TUN, "--uplink", UPLINKS[0]])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log("client.log")),
        );
        eventually_within("the client's TUN device", START_PATIENCE, || {
            assert!(
                client.running(),
                "jvpn client exited:\n{}",
                read_log("client.log")
            );
            let out = topology.client.ip(&["-4", "addr", "show"]);
            String::from_utf8_lossy(&out.stdout).contains(&TUNNEL_CLIENT_ADDR.to_string())
        });
        Self {
            client,
            gateway,
            dir,
            _host_files: host_files,
            uplink: Cell::new(0),
        }
    }

    /// The directory of the keys (`gateway.key`, `client.key`), config, store and logs.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// The uplink the client sends from now.
    pub fn uplink(&self) -> Uplink {
        self.uplink.get()
    }

    /// Asks the client to jump to `to`, through its control socket (the line protocol `jvpn
    /// client jump` speaks), and waits for its answer: the new state_version.
    pub fn jump(&self, to: Uplink) -> u64 {
        match request_jump(&control_socket_path(CLIENT_TUN), Some(UPLINKS[to])) {
            Ok(version) => {
                self.uplink.set(to);
                version
            }
            Err(e) => panic!(
                "jump to {} failed: {e}\nclient log:\n{}\ngateway log:\n{}",
                UPLINKS[to],
                self.log("client.log"),
                self.log("gateway.log")
            ),
        }
    }

    /// CPU seconds used so far by the client and by the gateway.
    pub fn cpu_seconds(&self) -> [f64; 2] {
        [
            process_seconds(self.client.id()),
            self.gateway
                .as_ref()
                .map_or(0.0, |gateway| process_seconds(gateway.id())),
        ]
    }

    /// Panics with both logs unless both processes still run.
    pub fn check_running(&mut self) {
        let alive = self.client.running() && self.gateway.as_mut().is_some_and(ChildGuard::running);
        assert!(
            alive,
            "a jvpn process exited\nclient log:\n{}\ngateway log:\n{}",
            self.log("client.log"),
            self.log("gateway.log")
        );
    }

    fn log(&self, name: &str) -> String {
        let path: PathBuf = self.dir.path().join(name);
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// Kills the gateway with SIGKILL, removes its pins as a reboot would lose its maps
    /// (`jvpn detach`), and starts it again on the same state dir with `extra` arguments; returns
    /// once its control socket answers.
    pub fn restart_gateway_losing_maps(&mut self, topology: &Topology, extra: &[&str]) {
        if let Some(old) = self.gateway.take() {
            old.kill();
        }
        let detach = Command::new(jvpn_binary())
            .args(["detach", "--iface", GATEWAY_IF])
            .output()
            .expect("running jvpn detach");
        assert!(
            detach.status.success(),
            "jvpn detach: {}",
            String::from_utf8_lossy(&detach.stderr)
        );
        self.gateway = Some(spawn_gateway(topology, self.dir.path(), extra));
    }
}

/// Starts `jvpn gateway` with the config, store and socket in `dir` and `extra` arguments, and
/// waits until its control socket answers.
fn spawn_gateway(topology: &Topology, dir: &Path, extra: &[&str]) -> ChildGuard {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("gateway.log"))
        .expect("the gateway log");
    let mut gateway = ChildGuard::spawn(
        topology
            .gateway
            .nsenter(jvpn_binary())
            .args(["gateway", "--iface", GATEWAY_IF, "--config"])
            .arg(dir.join("gateway.toml"))
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--socket")
            .arg(dir.join("jvpn.sock"))
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log),
    );
    eventually_within("the gateway's control socket", START_PATIENCE, || {
        assert!(
            gateway.running(),
            "jvpn gateway exited:\n{}",
            std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default()
        );
        Command::new(jvpn_binary())
            .args(["status", "--socket"])
            .arg(dir.join("jvpn.sock"))
            .output()
            .is_ok_and(|out| out.status.success())
    });
    gateway
}
