//! The two VPNs compared, each at both ends of the veth pair: boringtun (`boringtun-cli`, configured
//! with `wg` as its README says) and jvpn (`jvpn gateway` with XDP on `jvbp-g`, `jvpn client`),
//! from the release binary cargo builds beside the benchmark. Everything they leave outside their
//! namespaces is removed on drop: processes are killed by pid, pins, sockets and keys removed.

use crate::topology::{Topology, GATEWAY_ADDR, GATEWAY_IF};
use jvpn_tests::bench::cpu::process_seconds;
use jvpn_tests::guard::ChildGuard;
use jvpn_tests::netns::{run_ok, Netns};
use jvpn_tests::probe::eventually_within;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// How long a daemon may take to come up; a failure bound, not a sleep.
const START_PATIENCE: Duration = Duration::from_secs(20);
/// boringtun's interfaces, client then gateway.
const WG_IFS: [&str; 2] = ["jvbp-wc", "jvbp-wg"];
/// boringtun's tunnel addresses, client then gateway.
const WG_ADDRS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 212, 0, 2), Ipv4Addr::new(10, 212, 0, 1)];
/// The port both boringtun ends listen on.
const WG_PORT: u16 = 51_820;
/// The MTU `wg-quick` gives a WireGuard interface on a 1500-byte link.
const WG_MTU: &str = "1420";
/// jvpn's TUN devices, client then gateway.
const JVPN_TUNS: [&str; 2] = ["jvbp-ctun", "jvbp-gtun"];
/// jvpn's tunnel addresses, client then gateway.
const JVPN_ADDRS: [Ipv4Addr; 2] = [Ipv4Addr::new(10, 213, 0, 2), Ipv4Addr::new(10, 213, 0, 1)];
/// Where boringtun puts its configuration sockets (on the host's file system, not per namespace).
const WG_SOCKET_DIR: &str = "/var/run/wireguard";

/// A VPN running at both ends: its processes (client end first) and the temp files they use.
#[derive(Debug)]
pub struct Vpn {
    /// What the rows call it.
    pub name: &'static str,
    /// The gateway's address inside the tunnel, where iperf3 connects.
    pub server: Ipv4Addr,
    processes: Vec<ChildGuard>,
    dir: tempfile::TempDir,
}

impl Vpn {
    /// CPU seconds all its processes used so far.
    pub fn cpu_seconds(&self) -> f64 {
        self.processes
            .iter()
            .map(|process| process_seconds(process.id()))
            .sum()
    }

    /// Panics with the logs unless every process still runs.
    pub fn check_running(&mut self) {
        let alive = self.processes.iter_mut().all(ChildGuard::running);
        assert!(alive, "a {} process exited\n{}", self.name, self.logs());
    }

    /// `jvpn stats` of a jvpn gateway (its XDP accept count beside the tunnel's packet
    /// counts shows whether the program judged datagrams one by one); `None` for boringtun.
    pub fn jvpn_stats(&self) -> Option<String> {
        let socket = self.dir.path().join("jvpn.sock");
        if self.name != "jvpn" || !socket.exists() {
            return None;
        }
        let out = run_ok(
            Command::new(jvpn_tests::gateway::jvpn_binary())
                .args(["stats", "--socket"])
                .arg(socket),
        );
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn logs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(self.dir.path()).into_iter().flatten() {
            let path = entry.map(|e| e.path()).unwrap_or_default();
            if path.extension().is_some_and(|e| e == "log") {
                let log = std::fs::read_to_string(&path).unwrap_or_default();
                text += &format!("{}:\n{log}\n", path.display());
            }
        }
        text
    }

    /// Starts boringtun at both ends and configures it with `wg`.
    pub fn boringtun(topology: &Topology) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let keys: Vec<(PathBuf, String)> = (0..2)
            .map(|i| {
                let private = run_ok(Command::new("wg").arg("genkey")).stdout;
                let path = dir.path().join(format!("wg{i}.key"));
                std::fs::write(&path, &private).expect("writing a WireGuard key");
                let public = pipe("wg", &["pubkey"], &private);
                (path, public.trim().to_owned())
            })
            .collect();
        let mut processes = Vec::new();
        for (i, ns) in [&topology.client, &topology.gateway]
            .into_iter()
            .enumerate()
        {
            let _ = std::fs::remove_file(wg_socket(WG_IFS[i]));
            let log = log_file(dir.path(), &format!("boringtun-{i}.log"));
            let mut child = ChildGuard::spawn(
                ns.nsenter("boringtun-cli")
                    .args(["--foreground", "--disable-drop-privileges", WG_IFS[i]])
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().expect("a log handle"))
                    .stderr(log),
            );
            eventually_within("boringtun's configuration socket", START_PATIENCE, || {
                assert!(
                    child.running(),
                    "boringtun-cli exited; is it installed (`cargo xtask setup`)?"
                );
                wg_socket(WG_IFS[i]).exists()
            });
            processes.push(child);
            let peer = 1 - i;
            let own_port = WG_PORT.to_string();
            let endpoint = if peer == 1 {
                format!("{GATEWAY_ADDR}:{WG_PORT}")
            } else {
                String::new()
            };
            let allowed = format!("{}/32", WG_ADDRS[peer]);
            let mut wg = ns.nsenter("wg");
            wg.args(["set", WG_IFS[i], "listen-port", &own_port, "private-key"])
                .arg(&keys[i].0)
                .args(["peer", &keys[peer].1, "allowed-ips", &allowed]);
            if !endpoint.is_empty() {
                wg.args(["endpoint", &endpoint]);
            }
            run_ok(&mut wg);
            ns.ip(&[
                "addr",
                "add",
                &format!("{}/24", WG_ADDRS[i]),
                "dev",
                WG_IFS[i],
            ]);
            ns.ip(&["link", "set", WG_IFS[i], "mtu", WG_MTU, "up"]);
        }
        Self {
            name: "boringtun",
            server: WG_ADDRS[1],
            processes,
            dir,
        }
    }

    /// Starts `jvpn gateway` (XDP attached in driver mode) and `jvpn client`, and waits for the
    /// client's TUN device to carry its tunnel address.
    pub fn jvpn(topology: &Topology) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = |name: &str| dir.path().join(name);
        let gateway_key =
            jvpn_user::config::keygen(&path("gateway.key")).expect("writing the gateway key");
        let client_key =
            jvpn_user::config::keygen(&path("client.key")).expect("writing the client key");
        let config = format!(
            "private_key_file = \"gateway.key\"\n\
             tun = \"{}\"\n\
             [tunnel]\n\
             ipv4 = \"{}/24\"\n\
             [[client]]\n\
             name = \"bench\"\n\
             public_key = \"{}\"\n\
             ipv4 = \"{}\"\n",
            JVPN_TUNS[1],
            JVPN_ADDRS[1],
            client_key.to_base64(),
            JVPN_ADDRS[0]
        );
        std::fs::write(path("gateway.toml"), config).expect("writing the gateway config");
        let jvpn = &jvpn_tests::gateway::jvpn_binary();
        let mut gateway = ChildGuard::spawn(
            topology
                .gateway
                .nsenter(jvpn)
                .args(["gateway", "--iface", GATEWAY_IF, "--xdp-mode", "driver"])
                .arg("--config")
                .arg(path("gateway.toml"))
                .arg("--state-dir")
                .arg(path("state"))
                .arg("--socket")
                .arg(path("jvpn.sock"))
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file(dir.path(), "gateway.log")),
        );
        eventually_within("the gateway's control socket", START_PATIENCE, || {
            assert!(gateway.running(), "jvpn gateway exited");
            Command::new(jvpn)
                .args(["status", "--socket"])
                .arg(path("jvpn.sock"))
                .output()
                .is_ok_and(|out| out.status.success())
        });
        let mut client = ChildGuard::spawn(
            topology
                .client
                .nsenter(jvpn)
                .arg("client")
                .arg("--gateway")
                .arg(format!("{GATEWAY_ADDR}:{}", jvpn_common::abi::DEFAULT_PORT))
                .arg("--gateway-public-key")
                .arg(gateway_key.to_base64())
                .arg("--key")
                .arg(path("client.key"))
                .args(["--tun", JVPN_TUNS[0]])
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file(dir.path(), "client.log")),
        );
        eventually_within("the jvpn client's TUN device", START_PATIENCE, || {
            assert!(client.running(), "jvpn client exited");
            has_address(&topology.client, JVPN_ADDRS[0])
        });
        Self {
            name: "jvpn",
            server: JVPN_ADDRS[1],
            processes: vec![client, gateway],
            dir,
        }
    }
}

impl Drop for Vpn {
    fn drop(&mut self) {
        // Kill the processes before removing what they leave behind.
        self.processes.clear();
        remove_host_files();
    }
}

/// Removes what the daemons leave outside their namespaces: the gateway's pins (which outlive
/// it on purpose), the jvpn client's control socket and boringtun's configuration sockets.
pub fn remove_host_files() {
    let pins = Path::new(jvpn_common::abi::PIN_ROOT).join(GATEWAY_IF);
    if pins.exists() {
        if let Err(e) = std::fs::remove_dir_all(&pins) {
            eprintln!("could not remove the pins {}: {e}", pins.display());
        }
    }
    let _ = std::fs::remove_file(jvpn_user::tunnel_client::control_socket_path(JVPN_TUNS[0]));
    for name in WG_IFS {
        let _ = std::fs::remove_file(wg_socket(name));
    }
}

fn wg_socket(name: &str) -> PathBuf {
    Path::new(WG_SOCKET_DIR).join(format!("{name}.sock"))
}

fn log_file(dir: &Path, name: &str) -> std::fs::File {
    std::fs::File::create(dir.join(name)).expect("a log file")
}

fn has_address(ns: &Netns, address: Ipv4Addr) -> bool {
    let out = ns.ip(&["-4", "addr", "show"]);
    String::from_utf8_lossy(&out.stdout).contains(&address.to_string())
}

/// Runs `program args` with `input` on its stdin; returns its stdout.
fn pipe(program: &str, args: &[&str], input: &[u8]) -> String {
    use std::io::Write as _;
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running {program}: {e}; install it with `cargo xtask setup`"));
    child
        .stdin
        .take()
        .expect("a stdin pipe")
        .write_all(input)
        .expect("writing to a pipe");
    let out = child.wait_with_output().expect("waiting for a child");
    assert!(out.status.success(), "{program} {args:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
