//! A real three-member etcd cluster for the clustered store's tests, each member in its own
//! network namespace, so partitions are made by cutting links:
//!
//! ```text
//!   member 0 (10.231.0.1)   member 1 (10.231.0.2)   member 2 (10.231.0.3)
//!        | m                      | m                      | m
//!   +----+------------------------+------------------------+---------------+
//!   |   hub: bridge br0 (each member's and each node's link ends here)      |
//!   +----+--------------------------------------------+----------------------+
//!        | n                                          | n
//!   node A (10.231.0.11)                         node B (10.231.0.12)  ...
//! ```
//!
//! [`EtcdCluster`] starts the members (short heartbeats and elections, so failover takes well
//! under a second), kills and restarts them, and cuts or restores any link at the hub; dropping
//! it kills the members, deletes the namespaces and the data directories.

use crate::guard::ChildGuard;
use crate::netns::{run_ok, Netns};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The members of a test cluster.
pub const MEMBERS: usize = 3;
const SUBNET: &str = "10.231.0";
const CLIENT_PORT: u16 = 2379;
const PEER_PORT: u16 = 2380;

/// One member: its namespace, the hub side of its link, and its process while it runs.
struct Member {
    ns: Netns,
    hub_if: String,
    process: Option<ChildGuard>,
}

/// A namespace for a node of the cluster (a gateway or a store client) linked to the hub.
pub struct NodeNs {
    /// The node's namespace.
    pub ns: Netns,
    /// The hub side of its link (cut it to isolate the node).
    pub hub_if: String,
    /// The node's address on the hub.
    pub addr: String,
}

/// A running three-member etcd cluster (see the module doc).
pub struct EtcdCluster {
    hub: Netns,
    members: Vec<Member>,
    nodes: usize,
    data: tempfile::TempDir,
    token: String,
}

impl EtcdCluster {
    /// Creates the namespaces and starts the three members; returns once the cluster answers.
    pub fn start() -> Self {
        let hub = Netns::new("h");
        hub.ip(&["link", "add", "br0", "type", "bridge"]);
        hub.ip(&["link", "set", "br0", "up"]);
        let data = tempfile::tempdir().expect("a temp dir for etcd's data");
        let token = crate::netns::unique_name("");
        let mut cluster = Self {
            hub,
            members: Vec::new(),
            nodes: 0,
            data,
            token,
        };
        for i in 0..MEMBERS {
            let (ns, hub_if) = cluster.link("m", &member_addr(i));
            cluster.members.push(Member {
                ns,
                hub_if,
                process: None,
            });
        }
        for i in 0..MEMBERS {
            cluster.start_member(i);
        }
        cluster.wait_healthy(Duration::from_secs(20));
        cluster
    }

    /// A new namespace linked to the hub, for a node (addresses .11, .12, ...).
    pub fn node_ns(&mut self) -> NodeNs {
        let addr = self.next_node_addr();
        let (ns, hub_if) = self.link("n", &addr);
        NodeNs { ns, hub_if, addr }
    }

    /// Links the existing namespace `ns` (e.g. a gateway's) to the hub through its interface
    /// `etcd0`; returns the hub side of the link, for [`Self::set_hub_link`].
    pub fn attach(&mut self, ns: &Netns) -> String {
        let addr = self.next_node_addr();
        self.link_into(ns, &addr, "etcd0")
    }

    /// Cuts (`up == false`) or restores the link whose hub side is `hub_if`.
    pub fn set_hub_link(&self, hub_if: &str, up: bool) {
        self.set_link(hub_if, up);
    }

    fn next_node_addr(&mut self) -> String {
        self.nodes += 1;
        format!("{SUBNET}.{}", 10 + self.nodes)
    }

    /// `host:port` of every member's client URL, as `--store etcd://` takes them.
    pub fn endpoints(&self) -> Vec<String> {
        (0..MEMBERS)
            .map(|i| format!("{}:{CLIENT_PORT}", member_addr(i)))
            .collect()
    }

    /// Kills member `i` with SIGKILL (its data stays for a restart).
    pub fn kill(&mut self, i: usize) {
        if let Some(process) = self.members[i].process.take() {
            process.kill();
        }
    }

    /// Starts member `i` again from its data directory.
    pub fn restart(&mut self, i: usize) {
        assert!(self.members[i].process.is_none(), "member {i} is running");
        self.start_member(i);
    }

    /// Cuts (`up == false`) or restores member `i`'s link to the hub.
    pub fn set_member_link(&self, i: usize, up: bool) {
        self.set_link(&self.members[i].hub_if, up);
    }

    /// Cuts (`up == false`) or restores `node`'s link to the hub.
    pub fn set_node_link(&self, node: &NodeNs, up: bool) {
        self.set_link(&node.hub_if, up);
    }

    /// Waits until a member answers a linearizable read (the cluster has a leader and quorum).
    pub fn wait_healthy(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let healthy = (0..MEMBERS).any(|i| {
                self.members[i].process.is_some()
                    && self.members[i]
                        .ns
                        .command("etcdctl")
                        .args(["--endpoints", &format!("http://127.0.0.1:{CLIENT_PORT}")])
                        .args(["--command-timeout=1s", "get", "health-probe"])
                        .env("ETCDCTL_API", "3")
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .is_ok_and(|s| s.success())
            });
            if healthy {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the etcd cluster did not become healthy within {within:?}; is etcd-server installed (cargo xtask setup)?"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_member(&mut self, i: usize) {
        let name = format!("m{i}");
        let addr = member_addr(i);
        let initial: Vec<String> = (0..MEMBERS)
            .map(|j| format!("m{j}=http://{}:{PEER_PORT}", member_addr(j)))
            .collect();
        let dir = self.data.path().join(&name);
        let log = std::fs::File::create(self.data.path().join(format!("{name}.log")))
            .expect("creating the member's log file");
        let child = self.members[i]
            .ns
            .command("etcd")
            .args(["--name", &name, "--data-dir"])
            .arg(&dir)
            .args([
                "--listen-client-urls",
                &format!("http://{addr}:{CLIENT_PORT},http://127.0.0.1:{CLIENT_PORT}"),
                "--advertise-client-urls",
                &format!("http://{addr}:{CLIENT_PORT}"),
                "--listen-peer-urls",
                &format!("http://{addr}:{PEER_PORT}"),
                "--initial-advertise-peer-urls",
                &format!("http://{addr}:{PEER_PORT}"),
                "--initial-cluster",
                &initial.join(","),
                "--initial-cluster-token",
                &self.token,
                "--initial-cluster-state",
                "new",
                "--heartbeat-interval",
                "50",
                "--election-timeout",
                "400",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("starting etcd (install it with `cargo xtask setup`)");
        self.members[i].process = Some(ChildGuard::new(child));
    }

    /// A namespace with a veth to the hub's bridge, addressed `addr`/24.
    fn link(&self, suffix: &str, addr: &str) -> (Netns, String) {
        let ns = Netns::new(suffix);
        let hub_if = self.link_into(&ns, addr, "eth0");
        (ns, hub_if)
    }

    /// A veth from the hub's bridge to `inner` in `ns`, addressed `addr`/24; the hub side's name.
    fn link_into(&self, ns: &Netns, addr: &str, inner: &str) -> String {
        let hub_if = crate::netns::unique_name("b");
        run_ok(Command::new("ip").args([
            "-n",
            self.hub.name(),
            "link",
            "add",
            &hub_if,
            "type",
            "veth",
            "peer",
            "name",
            inner,
            "netns",
            ns.name(),
        ]));
        self.hub
            .ip(&["link", "set", &hub_if, "master", "br0", "up"]);
        ns.ip(&["addr", "add", &format!("{addr}/24"), "dev", inner]);
        ns.ip(&["link", "set", inner, "up"]);
        hub_if
    }

    fn set_link(&self, hub_if: &str, up: bool) {
        self.hub
            .ip(&["link", "set", hub_if, if up { "up" } else { "down" }]);
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for member in &mut self.members {
            member.process.take();
        }
    }
}

fn member_addr(i: usize) -> String {
    format!("{SUBNET}.{}", i + 1)
}
