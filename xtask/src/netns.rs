//! Network namespaces for the demo, driven through iproute2. A [`NetNs`] deletes its namespace when dropped,
//! which also removes every veth end inside it, so a demo that fails or is interrupted leaves nothing behind.

use std::process::Command;

use anyhow::{Context, Result};

use crate::util;

/// A named network namespace that exists for as long as this value does.
#[derive(Debug)]
pub struct NetNs {
    name: String,
}

impl NetNs {
    /// Creates namespace `name` with its loopback up, first deleting a stale one of that name (left by a
    /// run that was killed before it could clean up).
    pub fn create(name: &str) -> Result<Self> {
        if exists(name)? {
            println!("  removing stale namespace {name} from an earlier run");
            util::run(Command::new("ip").args(["netns", "delete", name]))?;
        }
        util::run(Command::new("ip").args(["netns", "add", name]))?;
        let namespace = NetNs {
            name: name.to_string(),
        };
        namespace.ip(&["link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// The namespace's name, as `ip netns` knows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        util::run(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// A command that runs `program` inside this namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Gives `device` in this namespace the address `cidr` (e.g. `10.77.1.2/24`) and brings it up.
    pub fn address_up(&self, device: &str, cidr: &str) -> Result<()> {
        self.ip(&["address", "add", cidr, "dev", device])?;
        self.ip(&["link", "set", device, "up"])
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let result = util::output(Command::new("ip").args(["netns", "delete", &self.name]));
        match result {
            Ok(_) => println!("  deleted namespace {}", self.name),
            Err(error) => eprintln!(
                "could not delete namespace {}: {error:#}; delete it with `ip netns delete {}`",
                self.name, self.name
            ),
        }
    }
}

/// Creates a veth pair with one end, `left_device`, in `left` and the other, `right_device`, in `right`.
///
/// Both ends live inside namespaces, so deleting either namespace removes the pair: no guard of its own.
pub fn veth_pair(left: &NetNs, left_device: &str, right: &NetNs, right_device: &str) -> Result<()> {
    util::run(Command::new("ip").args([
        "link",
        "add",
        left_device,
        "netns",
        left.name(),
        "type",
        "veth",
        "peer",
        "name",
        right_device,
        "netns",
        right.name(),
    ]))
    .with_context(|| {
        format!(
            "creating veth {left_device} ({}) <-> {right_device} ({})",
            left.name(),
            right.name()
        )
    })
}

fn exists(name: &str) -> Result<bool> {
    let listing = util::output(Command::new("ip").args(["netns", "list"]))?;
    // Lines read `NAME` or `NAME (id: N)`.
    Ok(listing
        .lines()
        .any(|line| line.split_whitespace().next() == Some(name)))
}
