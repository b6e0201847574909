//! The benchmark's two namespaces and the one veth pair between them, with fixed `jvbp-*` names so
//! that a run killed midway leaves nothing a later run cannot find and remove.
//!
//! ```text
//!  +------------- jvbp-cl --------------+          +------------- jvbp-gw --------------+
//!  | iperf3 -c                          |          | iperf3 -s                          |
//!  | boringtun-cli jvbp-wc 10.212.0.2   |          | boringtun-cli jvbp-wg 10.212.0.1   |
//!  | jvpn client, TUN jvbp-ctun         |          | jvpn gateway, TUN jvbp-gtun        |
//!  |   10.213.0.2                       |          |   10.213.0.1, XDP on jvbp-g        |
//!  |            jvbp-c 10.210.0.2 <=====|== veth ==|=====> jvbp-g 10.210.0.1            |
//!  +------------------------------------+          +------------------------------------+
//! ```
//! Only one of the two tunnels runs at a time; the bare rows use the veth addresses.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Output};

/// The client's (iperf3 client's) namespace.
pub const CLIENT_NS: &str = "jvbp-cl";
/// The gateway's (iperf3 server's) namespace.
pub const GATEWAY_NS: &str = "jvbp-gw";
/// The client's veth end.
pub const CLIENT_IF: &str = "jvbp-c";
/// The gateway's veth end, where jvpn's XDP program attaches.
pub const GATEWAY_IF: &str = "jvbp-g";
/// The gateway's veth address.
pub const GATEWAY_ADDR: Ipv4Addr = Ipv4Addr::new(10, 210, 0, 1);

/// Runs `command` and panics with its output unless it succeeds.
pub fn run_ok(command: &mut Command) -> Output {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace of this benchmark; dropping it kills what still runs in it and deletes it.
#[derive(Debug)]
pub struct Netns {
    name: &'static str,
}

impl Netns {
    fn create(name: &'static str) -> Self {
        run_ok(Command::new("ip").args(["netns", "add", name]));
        let netns = Self { name };
        netns.ip(&["link", "set", "lo", "up"]);
        netns
    }

    /// `--net=<bind mount>` for `nsenter`, which execs the program (so a child's pid is the
    /// program's, for its CPU time) and keeps the host's `/sys` (and the BPF filesystem).
    pub fn nsenter_arg(&self) -> String {
        format!("--net=/run/netns/{}", self.name)
    }

    /// A command running `program` in this namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command.arg(self.nsenter_arg()).arg(program);
        command
    }

    /// Runs `ip -n <ns> <args>`; panics if it fails.
    pub fn ip(&self, args: &[&str]) -> Output {
        run_ok(Command::new("ip").args(["-n", self.name]).args(args))
    }

    /// `ethtool -k DEVICE` in this namespace, reduced to the offloads that decide aggregation.
    pub fn offloads(&self, device: &str) -> String {
        let out = run_ok(self.command("ethtool").args(["-k", device]));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::trim)
            .filter(|line| {
                [
                    "tcp-segmentation-offload:",
                    "generic-segmentation-offload:",
                    "generic-receive-offload:",
                    "rx-gro-list:",
                    "rx-udp-gro-forwarding:",
                ]
                .iter()
                .any(|key| line.starts_with(key))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `ethtool -K DEVICE FEATURE on|off` in this namespace.
    pub fn set_offload(&self, device: &str, feature: &str, on: bool) {
        run_ok(self.command("ethtool").args([
            "-K",
            device,
            feature,
            if on { "on" } else { "off" },
        ]));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        delete_netns(self.name);
    }
}

/// Kills (SIGKILL, by pid) whatever still runs in namespace `name`, then deletes it. Only
/// processes this benchmark started live in its namespaces.
fn delete_netns(name: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", name]).output() {
        for pid in String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    match Command::new("ip").args(["netns", "del", name]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => eprintln!(
            "could not delete netns {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => eprintln!("could not run `ip netns del {name}`: {e}"),
    }
}

/// The two namespaces; the client's goes first on drop.
#[derive(Debug)]
pub struct Topology {
    /// The client's namespace.
    pub client: Netns,
    /// The gateway's namespace.
    pub gateway: Netns,
}

impl Topology {
    /// Removes leftovers of a killed run and builds the topology of the module diagram.
    pub fn build() -> Self {
        for name in [CLIENT_NS, GATEWAY_NS] {
            if std::path::Path::new("/run/netns").join(name).exists() {
                eprintln!("removing netns {name} left by an earlier run");
                delete_netns(name);
            }
        }
        crate::vpn::remove_host_files();
        let topology = Self {
            client: Netns::create(CLIENT_NS),
            gateway: Netns::create(GATEWAY_NS),
        };
        let (client, gateway) = (&topology.client, &topology.gateway);
        client.ip(&[
            "link", "add", CLIENT_IF, "type", "veth", "peer", "name", GATEWAY_IF, "netns",
            GATEWAY_NS,
        ]);
        client.ip(&["addr", "add", "10.210.0.2/24", "dev", CLIENT_IF]);
        gateway.ip(&["addr", "add", "10.210.0.1/24", "dev", GATEWAY_IF]);
        client.ip(&["link", "set", CLIENT_IF, "up"]);
        gateway.ip(&["link", "set", GATEWAY_IF, "up"]);
        topology
    }
}

/// A child process, killed (SIGKILL, by pid) and reaped when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Spawns `command` under guard.
    pub fn spawn(command: &mut Command) -> Self {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {command:?}: {e}"));
        Self { child }
    }

    /// Whether the child is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// CPU time (user + system, all threads) the child used so far, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
        let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let ticks: f64 = after_name
            .split_whitespace()
            .skip(11)
            .take(2)
            .map(|field| field.parse::<f64>().expect("a tick count"))
            .sum();
        ticks / clock_ticks_per_second()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kernel's clock tick (`USER_HZ`), the unit of `/proc` CPU times.
pub fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions; _SC_CLK_TCK is a valid name.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    per_second as f64
}

/// CPU seconds the whole machine spent busy so far (every state of `/proc/stat`'s `cpu` line but
/// idle and iowait): the kernel's share of a transfer runs in softirq wherever it lands.
pub fn machine_busy_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").expect("reading /proc/stat");
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|field| field.parse().expect("a tick count"))
        .collect();
    let busy: f64 = fields.iter().sum::<f64>() - fields[3] - fields[4];
    busy / clock_ticks_per_second()
}
