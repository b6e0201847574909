//! `cargo xtask demo`: builds jvpn, lays out the demo network, runs a real gateway with the XDP
//! program attached and a client whose session jumps between two uplinks while late packets keep
//! arriving on the old one, shows the live event stream, then a summary. Everything it creates is
//! owned by RAII guards, so it is removed when the demo ends, fails, or is stopped with Ctrl-C (or
//! SIGTERM): the handler only raises a flag, and each step returns [`Interrupted`] once it sees it.
//!
//! ```text
//!  +--- jvpn-demo-client ---+        +---- jvpn-demo-router ----+        +-- jvpn-demo-gw --+
//!  | wifi 10.77.1.2/24 =====|==veth==|= rt-wifi 10.77.1.1/24    |        |                  |
//!  | lte  10.77.2.2/24 =====|==veth==|= rt-lte  10.77.2.1/24    |        |  jvpn gateway    |
//!  |  (source routing: each |        |  rt-gw 10.200.0.254/24 ==|==veth==|= jvpndemo0       |
//!  |   uplink its own table)|        |  (forwards)              |        |  10.200.0.1/24   |
//!  +------------------------+        +--------------------------+        |  XDP jvpn_xdp    |
//!                                                                         +------------------+
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::netns::{self, NetNs};
use crate::util::{self, Interrupted};

/// Set by the Ctrl-C/SIGTERM handler; polled between and during steps.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

const GATEWAY_NAMESPACE: &str = "jvpn-demo-gw";
const ROUTER_NAMESPACE: &str = "jvpn-demo-router";
const CLIENT_NAMESPACE: &str = "jvpn-demo-client";
const GATEWAY_IFACE: &str = "jvpndemo0";
const GATEWAY_ADDRESS: &str = "10.200.0.1";
const JUMPS: &str = "6";

/// One of the client's uplinks to the router, with its own routing table.
struct Uplink {
    name: &'static str,
    router_device: &'static str,
    client_address: &'static str,
    router_address: &'static str,
    table: &'static str,
}

const UPLINKS: [Uplink; 2] = [
    Uplink {
        name: "wifi",
        router_device: "rt-wifi",
        client_address: "10.77.1.2",
        router_address: "10.77.1.1",
        table: "101",
    },
    Uplink {
        name: "lte",
        router_device: "rt-lte",
        client_address: "10.77.2.2",
        router_address: "10.77.2.1",
        table: "102",
    },
];

/// The demo's namespaces; dropping it deletes them and with them every veth.
struct Topology {
    gateway: NetNs,
    router: NetNs,
    client: NetNs,
}

impl Topology {
    fn create() -> Result<Self> {
        let t = Topology {
            gateway: NetNs::create(GATEWAY_NAMESPACE)?,
            router: NetNs::create(ROUTER_NAMESPACE)?,
            client: NetNs::create(CLIENT_NAMESPACE)?,
        };
        netns::veth_pair(&t.router, "rt-gw", &t.gateway, GATEWAY_IFACE)?;
        t.router.address_up("rt-gw", "10.200.0.254/24")?;
        t.gateway
            .address_up(GATEWAY_IFACE, &format!("{GATEWAY_ADDRESS}/24"))?;
        t.gateway
            .ip(&["route", "add", "10.77.0.0/16", "via", "10.200.0.254"])?;
        util::run(
            t.router
                .command("sysctl")
                .args(["-qw", "net.ipv4.ip_forward=1"]),
        )?;
        for u in &UPLINKS {
            netns::veth_pair(&t.client, u.name, &t.router, u.router_device)?;
            t.client
                .address_up(u.name, &format!("{}/24", u.client_address))?;
            t.router
                .address_up(u.router_device, &format!("{}/24", u.router_address))?;
            t.client
                .ip(&["rule", "add", "from", u.client_address, "table", u.table])?;
            t.client.ip(&[
                "route",
                "add",
                "10.200.0.0/24",
                "via",
                u.router_address,
                "dev",
                u.name,
                "table",
                u.table,
            ])?;
        }
        Ok(t)
    }
}

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

fn scenario() -> Result<()> {
    let mut steps = Steps { done: 0, total: 7 };
    steps.next("checking prerequisites")?;
    crate::setup::ensure()?;

    steps.next("building jvpn and the demo client (release)")?;
    let jvpn = util::build_release()?;
    let demo_client = jvpn.with_file_name("jvpn-demo-client");

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
        "starting `jvpn gateway --iface {GATEWAY_IFACE}` (embedded redb store, XDP in driver mode)"
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
        "client: handshake over wifi, then {JUMPS} jumps between wifi and lte"
    ))?;
    let mut client = topology.client.command(&demo_client.display().to_string());
    client
        .arg(format!("{GATEWAY_ADDRESS}:51900"))
        .arg(dir.path().join("client.key"))
        .arg(&gateway_key)
        .arg(JUMPS)
        .args(
            UPLINKS
                .iter()
                .map(|u| format!("{}={}", u.name, u.client_address)),
        );
    util::run_cancellable(&mut client, &INTERRUPTED).context("the demo client failed")?;
    std::thread::sleep(Duration::from_millis(500));
    drop(events);

    steps.next("summary")?;
    summary(&jvpn, &socket)?;
    drop(gateway);
    drop(pins);
    drop(topology);
    println!("\ndemo: done; namespaces and pins removed");
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
    let deadline = Instant::now() + Duration::from_secs(20);
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

fn summary(jvpn: &Path, socket: &Path) -> Result<()> {
    let json = |args: &[&str]| -> Result<serde_json::Value> {
        let out = Command::new(jvpn)
            .args(args)
            .arg("--socket")
            .arg(socket)
            .arg("--json")
            .output()
            .with_context(|| format!("running `jvpn {}`", args.join(" ")))?;
        serde_json::from_slice(&out.stdout)
            .with_context(|| format!("`jvpn {}` printed no JSON", args.join(" ")))
    };
    let sessions = json(&["sessions", "list"])?;
    for s in sessions.as_array().into_iter().flatten() {
        let id = s["id"].as_str().unwrap_or_default();
        let audit = json(&["audit", id])?;
        let versions: Vec<String> = audit
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                format!(
                    "{}({})",
                    e["version"],
                    e["cause"].as_str().unwrap_or_default()
                )
            })
            .collect();
        println!(
            "  session {id}: {} at version {}",
            s["state"].as_str().unwrap_or_default(),
            s["version"]
        );
        println!("    versions: 0(BIRTH) -> {}", versions.join(" -> "));
    }
    let stats = json(&["stats"])?;
    let dp = &stats["dataplane"];
    println!(
        "\n  {:<28} {:>10} {:>12}",
        "XDP verdict", "packets", "bytes"
    );
    let row = |name: &str, count: &serde_json::Value| {
        println!(
            "  {name:<28} {:>10} {:>12}",
            count["packets"].as_u64().unwrap_or(0),
            count["bytes"].as_u64().unwrap_or(0)
        );
    };
    row("accepted (DATA, KEEPALIVE)", &dp["accepted"]);
    row("to controller (control)", &dp["to_controller"]);
    for d in dp["drops"].as_array().into_iter().flatten() {
        if d["packets"].as_u64().unwrap_or(0) > 0 {
            row(
                &format!("dropped {}", d["reason"].as_str().unwrap_or_default()),
                d,
            );
        }
    }
    println!(
        "  controller: {} transitions, {} CAS conflicts",
        stats["controller"]["transitions"], stats["controller"]["cas_conflicts"]
    );
    Ok(())
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
