//! Crash storms (issue 8): the real `jvpn gateway` killed with SIGKILL at seeded random moments
//! while many clients jump between their two transports, restarted on the same state dir, round
//! after round; some rounds also lose the pinned maps, as a reboot would, or kill a start too. After each restart every session's audit history is one unbroken chain that
//! extends the one seen before (no gap, no fork, no version back), every version a client was
//! acknowledged is in it with the binding the ACK named, the XDP map, the store (`jvpn audit`)
//! and `jvpn sessions list` agree on version, state and binding, and after lost maps every
//! session moved to RECOVERING.
//!
//! ```text
//!  +------------- gateway ns --------------+        +------------ client ns --------------+
//!  |  jvpn gateway (nsenter --net)          |        |  CLIENTS threads, one client each,  |
//!  |    SIGKILLed and restarted each round  |        |  two sockets per client:            |
//!  |    UDP [::]:51900, redb store in tmp   |        |   :41000+2i and :41001+2i           |
//!  |  <gw> 10.200.0.1/24                    |        |  jumping between them in a loop     |
//!  |       XDP jvpn_xdp (driver) <==========|==veth==|==> <cl> 10.200.0.2/24               |
//!  +----------------------------------------+        +-------------------------------------+
//!     pins: /sys/fs/bpf/jvpn/<gw>/v1/ (survive the kill and are adopted, or `jvpn detach`ed)
//!     control socket + store: the test's temp dir; the test reads the pinned map directly
//! ```
//!
//! `JVPN_STORM_ROUNDS` (default 50) sets the rounds, `JVPN_STORM_SEED` replays a run (the seed is
//! printed at the start).

use jvpn_common::SessionState;
use jvpn_tests::gateway::GatewayFixture;
use jvpn_tests::probe::{client_socket, gateway, session_hex};
use jvpn_tests::spoof::StopOnDrop;
use jvpn_tests::topology::Family;
use jvpn_tests::wire_client::{JumpOutcome, WireClient};
use jvpn_user::crypto::ClientIdentity;
use jvpn_user::dataplane::Dataplane;
use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[path = "gateway_crash_storm_netns/checks.rs"]
mod checks;
use checks::{check_after_restart, Seen};

/// Clients jumping at once, each with its own identity and sessions.
const CLIENTS: u8 = 16;
/// Rounds unless `JVPN_STORM_ROUNDS` says otherwise.
const DEFAULT_ROUNDS: u32 = 50;
/// How long a client waits for each answer before it retries: short, so pauses are quick.
const REPLY_PATIENCE: Duration = Duration::from_millis(400);
/// How long the clients may take to finish their current attempt and pause.
const PAUSE_PATIENCE: Duration = Duration::from_secs(10);
/// One round in this many also loses the pinned maps (`jvpn detach`, as a reboot would), so the
/// restart moves every session to RECOVERING and the clients cross that gap.
const REBOOT_ONE_IN: u32 = 8;
/// `jvpn audit` processes run at once after each restart.
const AUDIT_WORKERS: usize = 4;
/// One round in this many (in two after lost maps) also kills a start of the gateway before the
/// one that is checked.
const INTERRUPTED_START_ONE_IN: u32 = 4;
/// The first client port; client `i` has `BASE_PORT + 2i` and the next.
const BASE_PORT: u16 = 41000;

/// What the clients were told, shared by their threads: per session, every acknowledged
/// version with the binding its ACK (or WELCOME) named; and anything a client found wrong.
#[derive(Default)]
struct Ledger {
    acks: Mutex<BTreeMap<u64, BTreeMap<u64, SocketAddr>>>,
    violations: Mutex<Vec<String>>,
    abandoned: AtomicUsize,
}

impl Ledger {
    fn ack(&self, id: u64, version: u64, binding: SocketAddr) {
        let mut acks = self.acks.lock().expect("ledger");
        let session = acks.entry(id).or_default();
        if let Some(earlier) = session.insert(version, binding) {
            if earlier != binding {
                self.violations.lock().expect("violations").push(format!(
                    "session {id:016x}: version {version} acknowledged bound to {earlier}, then to {binding}"
                ));
            }
        }
    }
}

/// Starts and pauses the clients between rounds.
#[derive(Default)]
struct Phase {
    storming: AtomicBool,
    stop: AtomicBool,
    paused: AtomicUsize,
}

impl Phase {
    fn resume(&self) {
        self.storming.store(true, Ordering::SeqCst);
    }

    /// Stops the storm and waits until every client finished its current attempt.
    fn pause(&self) {
        self.storming.store(false, Ordering::SeqCst);
        let deadline = Instant::now() + PAUSE_PATIENCE;
        while self.paused.load(Ordering::SeqCst) < usize::from(CLIENTS) {
            assert!(
                Instant::now() < deadline,
                "the clients did not pause within {PAUSE_PATIENCE:?} (a client thread panicked?)"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// One client: a session (handshaking anew when it must fail closed), jumping between its two
/// sockets while the storm lasts.
fn client_loop(
    identity: &ClientIdentity,
    sockets: &[UdpSocket; 2],
    gw: SocketAddr,
    phase: &Phase,
    ledger: &Ledger,
) {
    let local = |i: usize| sockets[i].local_addr().expect("local address");
    let mut session: Option<WireClient> = None;
    let mut bound = 0;
    let mut attempt = 0;
    let mut paused = false;
    while !phase.stop.load(Ordering::SeqCst) {
        if !phase.storming.load(Ordering::SeqCst) {
            if !paused {
                paused = true;
                phase.paused.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        if paused {
            paused = false;
            phase.paused.fetch_sub(1, Ordering::SeqCst);
        }
        let Some(client) = session.as_mut() else {
            session = WireClient::try_handshake(identity, &sockets[bound], gw, REPLY_PATIENCE);
            if let Some(c) = &session {
                ledger.ack(c.id, c.acked, local(bound));
            }
            continue;
        };
        let target = 1 - bound;
        attempt += 1;
        match client.try_jump(&sockets[target], attempt, REPLY_PATIENCE) {
            JumpOutcome::Acked { version, binding } => {
                ledger.ack(client.id, version, binding);
                if binding == local(target) {
                    bound = target;
                }
            }
            JumpOutcome::NoAnswer | JumpOutcome::Refused(_) => {}
            JumpOutcome::Ahead { .. } => {
                ledger.abandoned.fetch_add(1, Ordering::Relaxed);
                session = None;
            }
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| {
        v.parse()
            .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
    })
}

#[test]
fn sigkill_during_a_reattach_storm_loses_no_acknowledged_version() {
    jvpn_tests::require_root();
    let rounds = env_u64("JVPN_STORM_ROUNDS").map_or(DEFAULT_ROUNDS, |r| r as u32);
    let seed = env_u64("JVPN_STORM_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos() as u64
    });
    eprintln!("crash storm: {rounds} rounds, {CLIENTS} clients, JVPN_STORM_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);

    let mut f = GatewayFixture::new();
    let identities = f.add_clients(CLIENTS);
    f.start(&[]);
    let gw = gateway(Family::V4);
    let sockets: Vec<[UdpSocket; 2]> = (0..u16::from(CLIENTS))
        .map(|i| {
            [0, 1].map(|j| {
                let s = client_socket(&f, Family::V4, BASE_PORT + 2 * i + j);
                s.set_read_timeout(Some(REPLY_PATIENCE)).expect("timeout");
                s
            })
        })
        .collect();
    let phase = Phase::default();
    let ledger = Ledger::default();
    let mut seen = Seen::default();
    let started = Instant::now();
    let mut reboots = 0;
    let mut interrupted = 0;

    std::thread::scope(|scope| {
        for (identity, pair) in identities.iter().zip(&sockets) {
            let (phase, ledger) = (&phase, &ledger);
            scope.spawn(move || client_loop(identity, pair, gw, phase, ledger));
        }
        // A failed round stops the clients as it unwinds: the scope would wait for them forever.
        let _stop_clients = StopOnDrop(&phase.stop);
        for round in 1..=rounds {
            phase.resume();
            std::thread::sleep(Duration::from_millis(rng.gen_range(50..400)));
            f.kill();
            let killed_at = jvpn_user::events::unix_millis_now();
            // The clients meet a vanished gateway, then one starting up under their traffic.
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..200)));
            let maps_lost = rng.gen_ratio(1, REBOOT_ONE_IN);
            if maps_lost {
                f.detach();
                reboots += 1;
            }
            // After lost maps the start has a RECOVERING pass to finish: kill it more often.
            let one_in = if maps_lost {
                2
            } else {
                INTERRUPTED_START_ONE_IN
            };
            if rng.gen_ratio(1, one_in) {
                // Killed again while starting: loading, adopting or reconciling.
                f.spawn(&[]);
                std::thread::sleep(Duration::from_millis(rng.gen_range(0..400)));
                f.kill();
                interrupted += 1;
            }
            f.start(&[]);
            phase.pause();
            let maps_lost_at = maps_lost.then_some(killed_at);
            check_after_restart(&f, round, maps_lost_at, &ledger, &mut seen);
        }
    });

    let acks: usize = ledger
        .acks
        .lock()
        .expect("ledger")
        .values()
        .map(BTreeMap::len)
        .sum();
    eprintln!(
        "crash storm: {rounds} rounds ({reboots} with the maps lost, {interrupted} with a start \
         killed too) in {:?}; {} sessions, {acks} \
         acknowledged versions, {} sessions abandoned by their clients (failed closed)",
        started.elapsed(),
        seen.audits.len(),
        ledger.abandoned.load(Ordering::Relaxed)
    );
    assert!(
        acks > usize::from(CLIENTS) * 2,
        "the storm must actually move sessions; only {acks} versions were acknowledged"
    );
}
