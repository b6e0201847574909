//! `cargo xtask bench cluster` (`cargo bench -p jvpn-tests --bench cluster`, as root): what the
//! clustered store costs a reattach, beside the embedded store in the same run, and how long a
//! session takes to move between two gateways (issue 11).
//!
//! - **Reattach transitions**: one session moved through `--transitions` reattaches, one
//!   compare-and-set at a time (each durable before the next starts), on the embedded store
//!   (`RedbStore`, fsync) and on a real three-member etcd (`EtcdStore` from its own namespace on
//!   the cluster's hub, every member in its own namespace): transitions per second and p50/p99
//!   latency.
//! - **Move between nodes**: two real `jvpn gateway`s (XDP attached) on that etcd and a wire
//!   client; each move is timed from its REATTACH_REQUEST to the REATTACH_ACK (store read, fresh
//!   epoch, path challenge, compare-and-set that moves the owner key). Beside it, the same
//!   client's jumps to a new port on the node that already owns the session.
//!
//! Options: `--transitions N` (300), `--moves N` (20), `--quick` (100, 10). Writes `cluster.json`.
//! Makes no performance assertions.

#![deny(unsafe_code)]

use jvpn_tests::bench::report::{percentile, Report};
use jvpn_tests::bench::Args;
use jvpn_tests::cluster_node::{create, fresh_id, reattach, StoreNode, TwoGateways};
use jvpn_tests::etcd_cluster::EtcdCluster;
use jvpn_tests::probe::{client_socket, gateway};
use jvpn_tests::topology::Family;
use jvpn_tests::wire_client::WireClient;
use jvpn_user::store::{CasOutcome, Expected, RedbStore, SessionStore};
use std::time::Instant;

struct Options {
    transitions: u64,
    moves: u64,
}

impl Options {
    fn parse() -> Self {
        let mut options = Self {
            transitions: 300,
            moves: 20,
        };
        let mut args = Args::from_env();
        while let Some(arg) = args.next_flag() {
            match arg.as_str() {
                "--transitions" => options.transitions = args.number("--transitions").max(10),
                "--moves" => options.moves = args.number("--moves").max(2),
                "--quick" => (options.transitions, options.moves) = (100, 10),
                other => {
                    panic!("unknown option {other}; use --transitions N, --moves N or --quick")
                }
            }
        }
        options
    }
}

/// Milliseconds of each of `n` sequential reattaches of one new session on `store`.
fn reattach_latencies(store: &dyn SessionStore, n: u64) -> Vec<f64> {
    let mut session = create(store, fresh_id(3));
    (0..n)
        .map(|i| {
            let (next, audit) = reattach(&session, (i % 1000) as u16 + 2);
            let started = Instant::now();
            let outcome = store
                .compare_and_set(
                    session.id,
                    Expected::Version(session.state_version),
                    &next,
                    &audit,
                )
                .expect("reattach");
            let took = started.elapsed().as_secs_f64() * 1e3;
            assert_eq!(outcome, CasOutcome::Committed);
            session = next;
            took
        })
        .collect()
}

/// Records the throughput and latency figures of `samples` under `name`.
fn record(report: &mut Report, name: &str, samples: &[f64], baseline: Option<&str>) {
    let per_second = samples.len() as f64 / (samples.iter().sum::<f64>() / 1e3);
    let rows = [
        (format!("{name}_reattach_per_s"), per_second, "1/s"),
        (
            format!("{name}_reattach_p50"),
            percentile(samples, 0.50),
            "ms",
        ),
        (
            format!("{name}_reattach_p99"),
            percentile(samples, 0.99),
            "ms",
        ),
    ];
    for (i, (metric, value, unit)) in rows.into_iter().enumerate() {
        match baseline {
            Some(base) => {
                let suffix = ["_reattach_per_s", "_reattach_p50", "_reattach_p99"][i];
                report.add_vs(metric, value, unit, &format!("{base}{suffix}"))
            }
            None => report.add(metric, value, unit),
        }
    }
}

fn main() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the cluster benchmark creates network namespaces and loads XDP: run it as root, e.g. \
         `cargo xtask bench cluster` in a root shell"
    );
    let options = Options::parse();
    let mut report = Report::start();
    let mut cluster = EtcdCluster::start();

    let dir = tempfile::tempdir().expect("a temp dir for the embedded store");
    let embedded = RedbStore::open(dir.path()).expect("open the embedded store");
    let samples = reattach_latencies(&embedded, options.transitions);
    record(&mut report, "embedded", &samples, None);
    drop(embedded);
    // Node 3: the gateways below are nodes 1 and 2, and start from the sessions they own.
    let etcd = StoreNode::connect(&mut cluster, 3);
    let samples = reattach_latencies(&etcd.store, options.transitions);
    record(&mut report, "etcd", &samples, Some("embedded"));
    drop(etcd);

    let nodes = TwoGateways::start(&mut cluster);
    let gw = gateway(Family::V4);
    let first = client_socket(&nodes.a, Family::V4, 40000);
    let mut c = WireClient::handshake(&nodes.a.client, &first, gw);
    let (mut same_node, mut between_nodes) = (Vec::new(), Vec::new());
    for i in 0..options.moves as u16 {
        // A jump on the node that owns the session, then a move to the other node.
        let (here, there) = if i % 2 == 0 {
            (&nodes.a, &nodes.b)
        } else {
            (&nodes.b, &nodes.a)
        };
        let socket = client_socket(here, Family::V4, 41000 + i);
        let started = Instant::now();
        c.jump(&socket);
        same_node.push(started.elapsed().as_secs_f64() * 1e3);
        let socket = client_socket(there, Family::V4, 42000 + i);
        let started = Instant::now();
        c.jump(&socket);
        between_nodes.push(started.elapsed().as_secs_f64() * 1e3);
    }
    report.add("jump_same_node_p50", percentile(&same_node, 0.50), "ms");
    report.add("jump_same_node_p99", percentile(&same_node, 0.99), "ms");
    report.add_vs(
        "move_between_nodes_p50",
        percentile(&between_nodes, 0.50),
        "ms",
        "jump_same_node_p50",
    );
    report.add_vs(
        "move_between_nodes_p99",
        percentile(&between_nodes, 0.99),
        "ms",
        "jump_same_node_p99",
    );
    report.print();
    println!("results: {}", report.write_as("cluster").display());
}
