//! `cargo xtask demo --cluster`: checks the prerequisites (etcd among them), builds jvpn and the
//! tests crate's `jvpn-cluster-demo` in release, and runs it. The demo itself lives in the tests
//! crate because it is made of the cluster tests' harness (three etcd members in namespaces, two
//! gateways of one cluster, child-process and pin guards); xtask only orchestrates. On Ctrl-C the
//! demo gets the signal too and cleans up; xtask waits for it rather than killing it.

use std::sync::atomic::AtomicBool;

use anyhow::{Context, Result};

use crate::util;

/// Runs the cluster demo; `interrupted` is the Ctrl-C flag.
pub fn scenario(interrupted: &AtomicBool) -> Result<()> {
    println!("[cluster demo] checking prerequisites (etcd-server among them)");
    crate::setup::ensure()?;
    println!("\n[cluster demo] building jvpn and the cluster demo (release)");
    let jvpn = util::build_release()?;
    let demo = jvpn.with_file_name("jvpn-cluster-demo");
    util::run_to_the_end(&mut std::process::Command::new(&demo), interrupted)
        .context("the cluster demo failed")
}
