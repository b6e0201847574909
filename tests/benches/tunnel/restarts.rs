//! Restarts that lose the maps (issue 12): the gateway is killed with SIGKILL, its pins removed as
//! a reboot would lose them (`jvpn detach`), and started again on the same state dir. Measured as
//! an operator sees it: from the kill to the gateway serving (its control socket answers), and
//! from the kill to the first answer through the tunnel (a ping from the client namespace to the
//! gateway's tunnel address every 10 ms). Once with the gateway's recovery challenge turned off
//! (`--recovery-challenges 0`: the client learns from its own silence timeout) and once with it
//! on (the default), in the same run.

use jvpn_tests::bench::daemons::Vpn;
use jvpn_tests::bench::report::{mean, Report};
use jvpn_tests::bench::topology::{Topology, TUNNEL_GATEWAY_ADDR};
use std::time::Instant;

/// The two ways back, by report key: the client's silence timeout, the gateway's challenge.
const MODES: [(&str, &[&str]); 2] = [
    ("silence", &["--recovery-challenges", "0"]),
    ("challenge", &[]),
];
/// The bound on one restart's way back, in seconds; far above the silence timeout.
const PATIENCE_SECS: &str = "120";

/// Milliseconds from the kill to the restarted gateway serving, and to the first answer through
/// the tunnel, for each of `rounds` restarts with `extra` arguments.
fn measure(topology: &Topology, vpn: &mut Vpn, extra: &[&str], rounds: usize) -> [Vec<f64>; 2] {
    let (mut serving, mut tunnel) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let killed = Instant::now();
        vpn.restart_gateway_losing_maps(topology, extra);
        serving.push(killed.elapsed().as_secs_f64() * 1e3);
        let ping = topology
            .client
            .command("ping")
            .args(["-n", "-q", "-i", "0.01", "-c", "1", "-w", PATIENCE_SECS])
            .arg(TUNNEL_GATEWAY_ADDR.to_string())
            .output()
            .expect("running ping");
        assert!(
            ping.status.success(),
            "no answer through the tunnel within {PATIENCE_SECS} s of a restart ({extra:?})"
        );
        tunnel.push(killed.elapsed().as_secs_f64() * 1e3);
        vpn.check_running();
    }
    [serving, tunnel]
}

/// Runs both modes, `rounds` restarts each, and records their means, the challenge against the
/// silence.
pub fn run(topology: &Topology, vpn: &mut Vpn, rounds: usize, report: &mut Report) {
    report.add("restart.lost_maps.rounds", rounds as f64, "restarts");
    for (key, extra) in MODES {
        eprintln!("restarts losing the maps, {key} ({rounds} restarts)");
        let [serving, tunnel] = measure(topology, vpn, extra, rounds);
        let after_serving: Vec<f64> = tunnel.iter().zip(&serving).map(|(t, s)| t - s).collect();
        for (what, samples) in [
            ("serving", &serving),
            ("tunnel_back", &tunnel),
            ("tunnel_back_after_serving", &after_serving),
        ] {
            let metric = format!("restart.lost_maps.{key}.{what}");
            match key {
                "silence" => report.add(metric, mean(samples), "ms"),
                _ => {
                    let base = format!("restart.lost_maps.{}.{what}", MODES[0].0);
                    report.add_vs(metric, mean(samples), "ms", &base);
                }
            }
        }
    }
}
