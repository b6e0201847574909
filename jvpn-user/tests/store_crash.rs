//! Crash safety of the session store: a writer process is killed with SIGKILL at random points
//! while it commits compare-and-sets, and the reopened store must show that no version went back
//! (spec section 9), that every stored version has its STATE_CHANGE record and the audit of each
//! session is gapless (section 11), and that every id stays issued (section 2, never reused).
//!
//! ```text
//!   parent (this test)                        child (this binary, ignored test `writer`)
//!   ──────────────────                        ────────────────────────────────────────────
//!   spawn child on a temp state dir  ───────▶ open store, CAS in a loop, print
//!   read "committed ID VERSION" lines ◀────── "committed ID VERSION" after each durable commit
//!   after a random count: SIGKILL    ───────▶ dies mid-transaction, wherever it is
//!   reopen, check invariants, repeat
//! ```

use jvpn_common::maps::{SessionState, TransportBinding};
use jvpn_user::session::{
    Input, NodeId, RecoverCause, Session, SessionId, SessionMachine, TerminateCause, Timers,
};
use jvpn_user::store::{CasOutcome, CasRequest, Expected, RedbStore, SessionStore};
use rand::Rng;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

const CHILD_DIR_ENV: &str = "JVPN_STORE_CRASH_DIR";
const ROUNDS: usize = 4;

#[test]
fn sigkill_at_random_points_never_loses_a_version_or_its_audit_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = rand::thread_rng();
    // The highest version the child reported as committed, per session.
    let mut reported: BTreeMap<u64, u64> = BTreeMap::new();
    for round in 0..ROUNDS {
        let kill_after = rng.gen_range(20..400);
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "writer",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_DIR_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("child stdout");
        let mut commits = 0;
        for line in BufReader::new(stdout).lines() {
            let line = line.expect("child output");
            let Some(rest) = line.strip_prefix("committed ") else {
                continue;
            };
            let (id, version) = rest.split_once(' ').expect("ID VERSION");
            let id = u64::from_str_radix(id, 16).expect("hex id");
            let version: u64 = version.parse().expect("version");
            let highest = reported.entry(id).or_default();
            *highest = (*highest).max(version);
            commits += 1;
            if commits == kill_after {
                break;
            }
        }
        assert_eq!(
            commits, kill_after,
            "round {round}: the writer stopped early"
        );
        child.kill().expect("SIGKILL the writer");
        let status = child.wait().expect("reap the writer");
        assert!(!status.success(), "round {round}: the writer was killed");
        check_invariants(dir.path(), &reported, round);
    }
}

fn check_invariants(dir: &Path, reported: &BTreeMap<u64, u64>, round: usize) {
    let store = RedbStore::open(dir).expect("reopen after SIGKILL");
    let sessions: BTreeMap<u64, Session> = store
        .list()
        .expect("list")
        .into_iter()
        .map(|s| (s.id.get(), s))
        .collect();
    for (&id, &version) in reported {
        let stored = sessions
            .get(&id)
            .unwrap_or_else(|| panic!("round {round}: committed session {id:016x} is gone"));
        assert!(
            stored.state_version >= version,
            "round {round}: session {id:016x} went back from {version} to {}",
            stored.state_version
        );
    }
    for s in sessions.values() {
        assert!(store.is_issued(s.id).expect("issued"), "round {round}");
        let audit = store.audit(s.id).expect("audit");
        assert_eq!(
            audit.len() as u64,
            s.state_version,
            "round {round}: session {} at version {} has {} audit records",
            s.id,
            s.state_version,
            audit.len()
        );
        let (mut state, mut version) = (SessionState::Birth, 0);
        for change in &audit {
            assert_eq!(change.session, s.id);
            assert_eq!((change.from_state, change.from_version), (state, version));
            assert_eq!(change.to_version, version + 1, "round {round}: a gap");
            (state, version) = (change.to_state, change.to_version);
        }
        assert_eq!(
            (state, version),
            (s.state, s.state_version),
            "round {round}"
        );
    }
}

/// The child: CAS in a loop until killed. Ignored so it only runs when the parent starts it.
#[test]
#[ignore = "the writer half of the SIGKILL test; started by it"]
fn writer() {
    let dir = std::env::var_os(CHILD_DIR_ENV).expect("run by the SIGKILL test, not by hand");
    let store = RedbStore::open(Path::new(&dir)).expect("open store");
    let machine = SessionMachine::new(Timers::default());
    let mut rng = rand::thread_rng();
    let mut live: Vec<Session> = store
        .list()
        .expect("list")
        .into_iter()
        .filter(|s| s.state != SessionState::Terminated)
        .collect();
    let mut now = 1_700_000_000_000u64;
    let stdout = std::io::stdout();
    loop {
        now += 1;
        let batch_len = if rng.gen_bool(0.3) {
            rng.gen_range(2..16)
        } else {
            1
        };
        let mut batch = Vec::with_capacity(batch_len);
        for _ in 0..batch_len {
            if live.len() < 8 || rng.gen_bool(0.1) {
                let id = SessionId::generate(NodeId::SINGLE, &mut rng);
                let born = Session::birth(id, [1; 32], now);
                let input = Input::HandshakeComplete {
                    binding: TransportBinding::from_v4([10, 0, 0, 1], 1),
                    header_key: rng.gen::<[u8; 16]>().into(),
                    secrets: vec![rng.gen(); 64].into(),
                };
                let t = machine.transition(&born, &input, now).expect("handshake");
                batch.push(CasRequest::from_transition(Expected::Absent, t));
                continue;
            }
            let s = &live[rng.gen_range(0..live.len())];
            let input = match rng.gen_range(0..10) {
                0 => Input::Terminate {
                    cause: TerminateCause::Client,
                },
                1..=3 => Input::ForceRecover {
                    cause: RecoverCause::Policy,
                },
                _ => Input::ReattachValidated {
                    claimed_version: s.state_version,
                    new_binding: TransportBinding::from_v4(rng.gen(), rng.gen()),
                },
            };
            let t = machine.transition(s, &input, now).expect("accepted");
            let expected = Expected::Version(s.state_version);
            batch.push(CasRequest::from_transition(expected, t));
        }
        let outcomes = if batch.len() == 1 {
            let r = &batch[0];
            vec![store
                .compare_and_set(r.session.id, r.expected, &r.session, &r.audit)
                .expect("cas")]
        } else {
            store
                .compare_and_set_batch(&batch)
                .expect("batch")
                .into_iter()
                .map(|item| item.expect("valid request"))
                .collect()
        };
        let mut out = stdout.lock();
        for (request, outcome) in batch.into_iter().zip(outcomes) {
            // Two requests for one session in a batch: the second loses, as it should.
            if outcome != CasOutcome::Committed {
                continue;
            }
            let s = request.session;
            writeln!(out, "committed {} {}", s.id, s.state_version).expect("stdout");
            live.retain(|l| l.id != s.id);
            if s.state != SessionState::Terminated {
                live.push(s);
            }
        }
        out.flush().expect("stdout");
    }
}
