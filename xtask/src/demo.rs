//! `cargo xtask demo`: builds jvpn, lays out the demo network, runs the real `jvpn gateway` (XDP
//! program attached, TUN device) and the real `jvpn client` (TUN device) in namespaces, carries a
//! TCP stream through the tunnel while the client jumps between two uplinks with `jvpn client
//! jump`, re-sends packets recorded on the old uplink as a slow path would deliver them, shows the
//! live event stream, then a summary. Everything it creates is owned by RAII guards, so it is
//! removed when the demo ends, fails, or is stopped with Ctrl-C (or SIGTERM): the handler only
//! raises a flag, and each step returns [`Interrupted`] once it sees it.
//!
//! `cargo xtask demo --cluster` is [`cluster`]: it builds and runs the tests crate's
//! `jvpn-cluster-demo`, which uses the cluster tests' harness (etcd, two gateways).
//!
//! ```text
//!  +---- jvpn-demo-client ----+      +---- jvpn-demo-router ----+      +--- jvpn-demo-gw ----+
//!  | jvpn client              |      |                          |      | jvpn gateway        |
//!  |  TUN 10.99.0.2 ==========|======|=== tunnel (UDP 51900) ===|======|=> TUN 10.99.0.1     |
//!  |  TCP sender              |      |                          |      |   TCP server :5201  |
//!  | wifi 10.77.1.2/24 =======|=veth=|= rt-wifi 10.77.1.1/24    |      |                     |
//!  | lte  10.77.2.2/24 =======|=veth=|= rt-lte  10.77.2.1/24    |      |                     |
//!  |  (a route per uplink;    |      |  rt-gw 10.200.0.254/24 ==|=veth=|= jvpndemo0          |
//!  |   --uplink picks one)    |      |  (forwards)              |      |  10.200.0.1, XDP    |
//!  +--------------------------+      +--------------------------+      +---------------------+
//! ```

mod cluster;
mod summary;
mod topology;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::util::{self, Interrupted};
use topology::{Topology, GATEWAY_ADDRESS, GATEWAY_IFACE, UPLINKS};

/// Set by the Ctrl-C/SIGTERM handler; polled between and during steps.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The client's TUN device; its control socket is `/run/jvpn/client-<this>.sock` on the host.
const CLIENT_TUN: &str = "jvpndemo-tun";
const JUMPS: &str = "6";
/// How long `jvpn gateway` and `jvpn client` may take to come up: a failure bound, not a sleep.
const START_PATIENCE: Duration = Duration::from_secs(20);

/// A child process killed when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The gateway's pins outlive it by design (enforcement survives restarts); the demo's
/// interface dies with its namespace, so its pins are removed before and after the run.
struct DemoPins(PathBuf);

impl DemoPins {
    fn claim() -> Self {
        let pins = DemoPins(PathBuf::from("/sys/fs/bpf/jvpn").join(GATEWAY_IFACE));
        let _ = std::fs::remove_dir_all(&pins.0);
        pins
    }
}

impl Drop for DemoPins {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Numbers the demo's steps and stops at the next one once Ctrl-C was pressed.
struct Steps {
    done: usize,
    total: usize,
}

impl Steps {
    fn next(&mut self, what: &str) -> Result<()> {
        check_interrupted()?;
        self.done += 1;
        println!("\n[{}/{}] {what}", self.done, self.total);
        Ok(())
    }
}

/// `cargo xtask demo`.
pub fn run() -> Result<()> {
    util::require_root(
        "cargo xtask demo",
        "it creates network namespaces and loads XDP programs",
    )?;
    install_interrupt_handler()?;
    let result = scenario();
    match result {
        Err(_) if INTERRUPTED.load(Ordering::SeqCst) => Err(Interrupted.into()),
        other => other,
    }
}

/// `cargo xtask demo --cluster`.
pub fn run_cluster() -> Result<()> {
    util::require_root(
        "cargo xtask demo --cluster",
        "it creates network namespaces, loads XDP programs and runs etcd",
    )?;
    install_interrupt_handler()?;
    let result = cluster::scenario(&INTERRUPTED);
    match result {
        Err(_) if INTERRUPTED.load(Ordering::SeqCst) => Err(Interrupted.into()),
        other => other,
    }
}

fn scenario() -> Result<()> {
    let mut steps = Steps { done: 0, total: 9 };
    steps.next("checking prerequisites")?;
    crate::setup::ensure()?;

    steps.next("building jvpn and the demo's traffic helper (release)")?;
    let jvpn = util::build_release()?;
    let traffic_helper = jvpn.with_file_name("jvpn-demo-traffic");

    steps.next("creating namespaces: client (wifi, lte) -> router -> gateway")?;
    let topology = Topology::create()?;
    let dir = tempfile::tempdir().context("creating a temp dir for keys and the store")?;
    let gateway_key = keygen(&jvpn, &dir.path().join("gateway.key"))?;
    let client_key = keygen(&jvpn, &dir.path().join("client.key"))?;
    std::fs::write(
        dir.path().join("gateway.toml"),
        format!(
            "private_key_file = \"gateway.key\"\n[tunnel]\nipv4 = \"10.99.0.1/24\"\n\n\
             [[client]]\nname = \"demo-laptop\"\npublic_key = \"{client_key}\"\nipv4 = \"10.99.0.2\"\n"
        ),
    )
    .context("writing the gateway config")?;
    let socket = dir.path().join("jvpn.sock");

    steps.next(&format!(
        "starting `jvpn gateway --iface {GATEWAY_IFACE}` (embedded redb store, XDP in driver mode, TUN 10.99.0.1)"
    ))?;
    let pins = DemoPins::claim();
    let gateway = start_gateway(&jvpn, &topology, dir.path(), &socket)?;

    steps.next("following the event stream (`jvpn events --follow`)")?;
    let events = Running(
        Command::new(&jvpn)
            .args(["events", "--follow", "--socket"])
            .arg(&socket)
            .stdin(Stdio::null())
            .spawn()
            .context("starting `jvpn events --follow`")?,
    );

    steps.next(&format!(
        "starting `jvpn client --tun {CLIENT_TUN} --uplink {}` in the client namespace",
        UPLINKS[0].name
    ))?;
    let control_socket = ClientControlSocket;
    let client = start_client(&jvpn, &topology, dir.path(), &gateway_key)?;

    steps.next(&format!(
        "TCP through the tunnel while the client jumps {JUMPS} times between wifi and lte"
    ))?;
    let report = dir.path().join("traffic.json");
    let mut traffic = Command::new(&traffic_helper);
    traffic
        .args([
            topology.client.name(),
            topology.gateway.name(),
            CLIENT_TUN,
            JUMPS,
        ])
        .arg(&report)
        .args(UPLINKS.iter().map(|u| u.name));
    util::run_cancellable(&mut traffic, &INTERRUPTED).context("the demo's traffic failed")?;

    steps.next("stopping the client (it sends TERMINATE)")?;
    drop(client);
    drop(control_socket);
    std::thread::sleep(Duration::from_millis(500));
    drop(events);

    steps.next("summary")?;
    summary::print(&jvpn, &socket, &report)?;
    drop(gateway);
    drop(pins);
    drop(topology);
    println!("\ndemo: done; processes stopped, namespaces and pins removed");
    Ok(())
}

/// Runs `jvpn keygen FILE` and returns the public key it prints.
fn keygen(jvpn: &Path, file: &Path) -> Result<String> {
    let out = Command::new(jvpn)
        .arg("keygen")
        .arg(file)
        .output()
        .context("running `jvpn keygen`")?;
    if !out.status.success() {
        bail!(
            "`jvpn keygen` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .last()
        .map(str::to_string)
        .context("`jvpn keygen` printed no public key")
}

fn start_gateway(jvpn: &Path, topology: &Topology, dir: &Path, socket: &Path) -> Result<Running> {
    let log = std::fs::File::create(dir.join("gateway.log")).context("creating the gateway log")?;
    let child = Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", topology.gateway.name()))
        .arg(jvpn)
        .args(["gateway", "--iface", GATEWAY_IFACE, "--config"])
        .arg(dir.join("gateway.toml"))
        .arg("--state-dir")
        .arg(dir.join("state"))
        .arg("--socket")
        .arg(socket)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .context("starting `jvpn gateway` (needs nsenter from util-linux)")?;
    let gateway = Running(child);
    let deadline = Instant::now() + START_PATIENCE;
    loop {
        check_interrupted()?;
        let status = Command::new(jvpn)
            .args(["status", "--socket"])
            .arg(socket)
            .output()
            .context("running `jvpn status`")?;
        if status.status.success() {
            print!("{}", String::from_utf8_lossy(&status.stdout));
            return Ok(gateway);
        }
        if Instant::now() > deadline {
            bail!(
                "the gateway did not come up; its log:\n{}",
                std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The running client's control socket lives on the host's `/run`; a client that had to be
/// killed leaves it behind, so it is removed when the demo ends.
struct ClientControlSocket;

impl Drop for ClientControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(format!("/run/jvpn/client-{CLIENT_TUN}.sock"));
    }
}

/// Starts `jvpn client` on the first uplink and waits until its TUN device has its address.
fn start_client(
    jvpn: &Path,
    topology: &Topology,
    dir: &Path,
    gateway_key: &str,
) -> Result<Running> {
    let log_path = dir.join("client.log");
    let log = std::fs::File::create(&log_path).context("creating the client log")?;
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net=/run/netns/{}", topology.client.name()))
        .arg(jvpn)
        .args(["client", "--gateway", &format!("{GATEWAY_ADDRESS}:51900")])
        .args(["--gateway-public-key", gateway_key, "--key"])
        .arg(dir.join("client.key"))
        .args(["--tun", CLIENT_TUN, "--uplink", UPLINKS[0].name])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    println!("+ {}", util::describe(&command));
    let mut client = Running(command.spawn().context("starting `jvpn client`")?);
    let deadline = Instant::now() + START_PATIENCE;
    loop {
        check_interrupted()?;
        if let Some(status) = client.0.try_wait().context("waiting for `jvpn client`")? {
            bail!(
                "`jvpn client` exited ({status}) before its tunnel came up; its log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        let address = util::output(Command::new("ip").args([
            "-n",
            topology.client.name(),
            "-brief",
            "address",
            "show",
            "dev",
            CLIENT_TUN,
        ]));
        if let Ok(line) = address {
            if line.contains("10.99.0.2") {
                println!("  client tunnel up: {}", line.trim());
                return Ok(client);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the client's tunnel did not come up; its log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        Err(Interrupted.into())
    } else {
        Ok(())
    }
}

fn install_interrupt_handler() -> Result<()> {
    ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nsecond interrupt: quitting without cleanup; check `ip netns list`");
            std::process::exit(util::INTERRUPTED_EXIT_STATUS.into());
        }
        eprintln!("\ninterrupted: cleaning up (press Ctrl-C again to quit at once)");
    })
    .context("installing the Ctrl-C handler")
}
