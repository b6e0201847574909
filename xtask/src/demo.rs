//! `cargo xtask demo`: builds jvpn, lays out the demo network and runs the scenario in it, printing one
//! numbered line per step. Everything it creates is owned by RAII guards, so it is removed when the demo
//! ends, fails, or is stopped with Ctrl-C (or SIGTERM): the handler only raises a flag, and each step
//! returns [`Interrupted`] once it sees it, unwinding through the guards.
//!
//! ```text
//!   +------ jvpn-demo-client ------+              +------- jvpn-demo-gw -------+
//!   |  wifi  10.77.1.2/24          |---- veth ----|  gw-wifi  10.77.1.1/24     |
//!   |  lte   10.77.2.2/24          |---- veth ----|  gw-lte   10.77.2.1/24     |
//!   +------------------------------+              +----------------------------+
//! ```
//!
//! So far the scenario checks that the client reaches the gateway over each uplink; the tunnel, the
//! jumps between uplinks and the live event stream come with issue 4.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};

use crate::netns::{self, NetNs};
use crate::util::{self, Interrupted};

/// Set by the Ctrl-C/SIGTERM handler; polled between and during steps.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

const GATEWAY_NAMESPACE: &str = "jvpn-demo-gw";
const CLIENT_NAMESPACE: &str = "jvpn-demo-client";

/// One of the client's uplinks: a veth pair from the client to the gateway on a subnet of its own.
struct Uplink {
    client_device: &'static str,
    gateway_device: &'static str,
    client_cidr: &'static str,
    gateway_cidr: &'static str,
    gateway_address: &'static str,
}

const UPLINKS: [Uplink; 2] = [
    Uplink {
        client_device: "wifi",
        gateway_device: "gw-wifi",
        client_cidr: "10.77.1.2/24",
        gateway_cidr: "10.77.1.1/24",
        gateway_address: "10.77.1.1",
    },
    Uplink {
        client_device: "lte",
        gateway_device: "gw-lte",
        client_cidr: "10.77.2.2/24",
        gateway_cidr: "10.77.2.1/24",
        gateway_address: "10.77.2.1",
    },
];

/// The demo's namespaces; dropping it deletes them and with them every veth.
struct Topology {
    gateway: NetNs,
    client: NetNs,
}

impl Topology {
    fn create() -> Result<Self> {
        let topology = Topology {
            gateway: NetNs::create(GATEWAY_NAMESPACE)?,
            client: NetNs::create(CLIENT_NAMESPACE)?,
        };
        for uplink in &UPLINKS {
            netns::veth_pair(
                &topology.client,
                uplink.client_device,
                &topology.gateway,
                uplink.gateway_device,
            )?;
            topology
                .client
                .address_up(uplink.client_device, uplink.client_cidr)?;
            topology
                .gateway
                .address_up(uplink.gateway_device, uplink.gateway_cidr)?;
        }
        Ok(topology)
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
    // A step killed by the same Ctrl-C fails with its own error; report the interruption instead.
    match result {
        Err(_) if INTERRUPTED.load(Ordering::SeqCst) => Err(Interrupted.into()),
        other => other,
    }
}

fn scenario() -> Result<()> {
    let mut steps = Steps {
        done: 0,
        total: 4 + UPLINKS.len(),
    };
    steps.next("checking prerequisites")?;
    crate::setup::ensure()?;

    steps.next("building jvpn (release)")?;
    let jvpn = util::build_release()?;
    println!("  built {}", jvpn.display());

    steps.next("creating namespaces and uplinks (wifi, lte)")?;
    let topology = Topology::create()?;

    for uplink in &UPLINKS {
        steps.next(&format!(
            "client reaches the gateway over {} ({} -> {})",
            uplink.client_device, uplink.client_cidr, uplink.gateway_address
        ))?;
        let mut ping = topology.client.command("ping");
        ping.args(["-c", "2", "-i", "0.2", "-W", "2", "-I"])
            .args([uplink.client_device, uplink.gateway_address]);
        util::run_cancellable(&mut ping, &INTERRUPTED).with_context(|| {
            format!(
                "the client cannot reach the gateway over {}",
                uplink.client_device
            )
        })?;
    }

    steps.next("cleaning up")?;
    drop(topology);
    println!(
        "\ndemo: both uplinks reach the gateway; the tunnel scenario is not written yet (issue 4)"
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
