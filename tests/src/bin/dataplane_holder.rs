//! A stand-in controller for the persistence test: enters a network namespace, loads and pins the
//! dataplane on an interface, installs one ATTACHED session, prints `ready <program id>` and then
//! blocks until it is killed. It must enter the namespace itself (rather than run under
//! `ip netns exec`, which remounts `/sys`) so its pins land in the host's BPF filesystem.
//!
//! Usage: `jvpn-dataplane-holder <netns path> <iface> <port> <session id> <version> <client addr>`

use anyhow::Context as _;
use jvpn_common::SessionState;
use jvpn_tests::jvpn::TestSession;
use jvpn_user::dataplane::{Dataplane, DataplaneOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [netns, iface, port, session_id, version, client] = args.as_slice() else {
        anyhow::bail!(
            "usage: jvpn-dataplane-holder <netns path> <iface> <port> <session id> <version> \
             <client addr>"
        );
    };
    jvpn_tests::netns::enter(&PathBuf::from(netns));
    let mut options = DataplaneOptions::new(iface.as_str());
    options.port = port.parse().context("port")?;
    options.max_sessions = 1024;
    let dataplane = Dataplane::load(&options)?;
    let session = TestSession::new(session_id.parse().context("session id")?);
    let client: SocketAddr = client.parse().context("client address")?;
    let version: u64 = version.parse().context("version")?;
    dataplane.upsert_session(
        session.id,
        &session.entry(SessionState::Attached, version, client),
    )?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "ready {}", dataplane.program_id())?;
    stdout.flush()?;
    loop {
        std::thread::park();
    }
}
