//! What every restart of the storm must keep: one unbroken audit chain per session extending
//! the one seen before, every acknowledged version in it with its binding, the XDP map, the
//! store and `jvpn sessions list` in agreement, and RECOVERING after lost maps.

use super::*;

/// One session as `jvpn sessions list` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    state: String,
    version: u64,
    peer: Option<SocketAddr>,
}

pub(crate) fn list(f: &GatewayFixture) -> BTreeMap<u64, Listed> {
    let value = f.cli_json(&["sessions", "list"]);
    let mut out = BTreeMap::new();
    for s in value.as_array().expect("sessions list prints an array") {
        let id = u64::from_str_radix(s["id"].as_str().expect("id"), 16).expect("hex id");
        let listed = Listed {
            state: s["state"].as_str().expect("state").to_owned(),
            version: s["version"].as_u64().expect("version"),
            peer: s["peer"].as_str().map(|p| p.parse().expect("peer address")),
        };
        assert!(
            out.insert(id, listed).is_none(),
            "session {id:016x} listed twice"
        );
    }
    out
}

pub(crate) fn peer(entry: &Value) -> Option<SocketAddr> {
    entry["peer"]
        .as_str()
        .map(|p| p.parse().expect("audit peer"))
}

/// Checks one session's audit history on its own: versions 1..=n, each transition from the
/// state the one before reached, starting with the handshake.
pub(crate) fn check_chain(id: u64, audit: &[Value]) {
    let versions: Vec<u64> = audit
        .iter()
        .map(|e| e["version"].as_u64().expect("version"))
        .collect();
    let expected: Vec<u64> = (1..=audit.len() as u64).collect();
    assert_eq!(
        versions, expected,
        "session {id:016x}: gap or duplicate in {audit:#?}"
    );
    assert_eq!(
        audit[0]["from_state"], "BIRTH",
        "session {id:016x}: {audit:#?}"
    );
    assert_eq!(
        audit[0]["cause"], "HANDSHAKE_COMPLETE",
        "session {id:016x}: {audit:#?}"
    );
    for pair in audit.windows(2) {
        assert_eq!(
            pair[1]["from_state"], pair[0]["to_state"],
            "session {id:016x}: fork, version {} does not start where {} ended: {audit:#?}",
            pair[1]["version"], pair[0]["version"]
        );
    }
}

/// `jvpn audit` of every session in `ids`, a few CLI processes at a time.
pub(crate) fn audit_all(f: &GatewayFixture, ids: Vec<u64>) -> BTreeMap<u64, Value> {
    let chunk = ids.len().div_ceil(AUDIT_WORKERS).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = ids
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|&id| (id, f.cli_json(&["audit", &session_hex(id)])))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// What the previous rounds saw, for the checks that span restarts.
#[derive(Default)]
pub(crate) struct Seen {
    pub(crate) audits: HashMap<u64, Vec<Value>>,
}

/// Everything a restart must keep, read while the clients are paused and the gateway is idle.
pub(crate) fn check_after_restart(
    f: &GatewayFixture,
    round: u32,
    maps_lost_at: Option<u64>,
    ledger: &Ledger,
    seen: &mut Seen,
) {
    let violations = ledger.violations.lock().expect("violations").clone();
    assert!(violations.is_empty(), "round {round}: {violations:#?}");
    // The gateway may still be finishing what the last messages started: read until two lists
    // around the reads agree.
    let mut settled = None;
    for _ in 0..5 {
        let before = list(f);
        let dataplane = Dataplane::adopt(&f.hosts.gateway_if).expect("adopt the pinned maps");
        let entries: BTreeMap<u64, _> = before
            .keys()
            .map(|&id| (id, dataplane.session(id).expect("read the session map")))
            .collect();
        let audits = audit_all(f, before.keys().copied().collect());
        if list(f) == before {
            settled = Some((before, audits, entries));
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (listed, audits, entries) =
        settled.unwrap_or_else(|| panic!("round {round}: the gateway never went quiet"));

    for (id, l) in &listed {
        let audit = audits[id].as_array().expect("audit prints an array");
        check_chain(*id, audit);
        let last = audit.last().expect("non-empty");
        assert_eq!(
            (
                last["version"].as_u64(),
                last["to_state"].as_str(),
                peer(last)
            ),
            (Some(l.version), Some(l.state.as_str()), l.peer),
            "round {round}, session {id:016x}: `jvpn sessions list` disagrees with the store"
        );
        let entry = entries[id].unwrap_or_else(|| {
            panic!("round {round}, session {id:016x}: listed but not in the XDP map")
        });
        let map_state = SessionState::from_u8(entry.state).map(SessionState::name);
        assert_eq!(
            (
                entry.state_version,
                map_state,
                entry.transport.to_socket_addr()
            ),
            (
                l.version,
                Some(l.state.as_str()),
                l.peer.expect("a bound session")
            ),
            "round {round}, session {id:016x}: the XDP map disagrees with the store"
        );
        if let Some(earlier) = seen.audits.get(id) {
            assert!(
                audit.len() >= earlier.len() && audit[..earlier.len()] == earlier[..],
                "round {round}, session {id:016x}: history rewritten or shortened across the \
                 restart:\nbefore {earlier:#?}\nafter {audit:#?}"
            );
        }
        // With the maps (and their replay windows) gone, only a new version keeps what was
        // captured before from being accepted again: a session ATTACHED when the gateway was
        // killed must have moved to RECOVERING next.
        if let Some(lost_at) = maps_lost_at {
            let before_loss = audit
                .iter()
                .rposition(|e| e["time_ms"].as_u64().expect("time") <= lost_at);
            if let Some(k) = before_loss.filter(|&k| audit[k]["to_state"] == "ATTACHED") {
                assert_eq!(
                    audit.get(k + 1).map(|e| &e["cause"]),
                    Some(&Value::from("DATAPLANE_LOST")),
                    "round {round}, session {id:016x}: the maps were lost but the session was \
                     not moved to RECOVERING: {audit:#?}"
                );
            }
        }
    }
    for id in seen.audits.keys() {
        assert!(
            listed.contains_key(id),
            "round {round}: session {id:016x} vanished"
        );
    }
    for (id, acked) in ledger.acks.lock().expect("ledger").iter() {
        let audit = audits
            .get(id)
            .unwrap_or_else(|| panic!("round {round}: acknowledged session {id:016x} is lost"))
            .as_array()
            .expect("array");
        for (&version, &binding) in acked {
            let entry = audit.get(version as usize - 1).unwrap_or_else(|| {
                panic!(
                    "round {round}, session {id:016x}: acknowledged version {version} is not \
                     durable; the store holds {}",
                    audit.len()
                )
            });
            assert_eq!(
                peer(entry),
                Some(binding),
                "round {round}, session {id:016x}: version {version} was acknowledged bound to \
                 {binding}; the store says otherwise: {entry}"
            );
        }
    }
    for (id, audit) in audits {
        seen.audits
            .insert(id, audit.as_array().expect("array").clone());
    }
}
