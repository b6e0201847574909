//! The loader API against the real kernel: load, refuse a second load, adopt, detach; the session
//! table's version ordering and capacity; the errors an operator meets first.
//!
//! ```text
//!   +------------------------ one test ns ------------------------+
//!   |                                                              |
//!   |   <a>  (XDP jvpn_xdp, pinned link) <==== veth ====>  <b>     |
//!   |                                                              |
//!   +--------------------------------------------------------------+
//!   pins: /sys/fs/bpf/jvpn/<a>/v<layout>/{JVPN_*, link}  (host bpffs)
//! ```
//!
//! No traffic flows here; `dataplane_netns.rs` sends real packets.

use jvpn_common::{abi, SessionState};
use jvpn_tests::guard::PinDirGuard;
use jvpn_tests::jvpn::TestSession;
use jvpn_tests::netns::{unique_name, Netns};
use jvpn_tests::require_root;
use jvpn_user::dataplane::{
    Dataplane, DataplaneError, DataplaneOptions, Origin, PinDir, XdpAttachMode,
};
use std::net::SocketAddr;
use std::path::Path;

/// A namespace with a veth pair in it; XDP goes on `iface`.
struct OneHost {
    netns: Netns,
    iface: String,
}

impl OneHost {
    fn new() -> Self {
        let netns = Netns::new("l");
        let iface = unique_name("a");
        let peer = unique_name("b");
        netns.ip(&["link", "add", &iface, "type", "veth", "peer", "name", &peer]);
        netns.ip(&["link", "set", &iface, "up"]);
        netns.ip(&["link", "set", &peer, "up"]);
        Self { netns, iface }
    }

    fn options(&self) -> DataplaneOptions {
        let mut options = DataplaneOptions::new(self.iface.as_str());
        options.max_sessions = 64;
        options
    }

    fn pins(&self) -> PinDirGuard {
        PinDirGuard::new(
            PinDir::new(Path::new(abi::PIN_ROOT), &self.iface)
                .unwrap()
                .path(),
        )
    }

    fn has_xdp(&self) -> bool {
        let out = self.netns.ip(&["link", "show", "dev", &self.iface]);
        String::from_utf8_lossy(&out.stdout).contains("xdp")
    }
}

fn client() -> SocketAddr {
    "10.9.0.2:40000".parse().unwrap()
}

#[test]
fn load_refuses_a_second_load_adopts_and_detaches_cleanly() {
    require_root();
    let host = OneHost::new();
    let _pins = host.pins();
    let options = host.options();

    let loaded = host.netns.run(|| Dataplane::load(&options)).expect("load");
    assert_eq!(loaded.origin(), Origin::Loaded);
    assert!(host.has_xdp(), "XDP is attached after load");
    assert!(loaded.pin_dir().join(abi::PIN_LINK).exists());
    assert!(loaded
        .pin_dir()
        .ends_with(format!("{}/v{}", host.iface, abi::MAP_LAYOUT_VERSION)));
    assert_eq!(loaded.config().unwrap(), options.gateway_config());

    let second = host.netns.run(|| Dataplane::load(&options));
    assert!(
        matches!(second, Err(DataplaneError::AlreadyAttached { .. })),
        "{second:?}"
    );

    let session = TestSession::new(7);
    loaded
        .upsert_session(
            session.id,
            &session.entry(SessionState::Attached, 1, client()),
        )
        .unwrap();
    let program_id = loaded.program_id();
    drop(loaded);
    assert!(host.has_xdp(), "dropping the handle must not detach");

    let mut changed = options.clone();
    changed.port = 4242;
    let adopted = host
        .netns
        .run(|| Dataplane::open_or_load(&changed))
        .expect("adopt");
    assert_eq!(adopted.origin(), Origin::Adopted);
    assert_eq!(adopted.program_id(), program_id);
    assert_eq!(adopted.session_count().unwrap(), 1, "the table survived");
    assert_eq!(
        adopted.config().unwrap().port.get(),
        4242,
        "open_or_load applies the config"
    );

    let pin_dir = adopted.pin_dir().to_owned();
    adopted.detach().expect("detach");
    assert!(!host.has_xdp(), "XDP is gone after detach");
    assert!(!pin_dir.exists(), "pins are gone after detach");
    assert!(
        !pin_dir.parent().unwrap().exists(),
        "the interface directory too"
    );

    let again = Dataplane::adopt(&host.iface);
    assert!(
        matches!(again, Err(DataplaneError::NotAttached { .. })),
        "{again:?}"
    );
}

#[test]
fn session_updates_apply_in_version_order() {
    require_root();
    let host = OneHost::new();
    let _pins = host.pins();
    let dataplane = host.netns.run(|| Dataplane::load(&host.options())).unwrap();
    let session = TestSession::new(0x1234);
    let at = |version| session.entry(SessionState::Attached, version, client());

    assert_eq!(dataplane.session(session.id).unwrap(), None);
    dataplane.upsert_session(session.id, &at(3)).unwrap();
    let stale = dataplane.upsert_session(session.id, &at(2));
    assert!(
        matches!(
            stale,
            Err(DataplaneError::StaleUpdate {
                current: 3,
                attempted: 2,
                ..
            })
        ),
        "{stale:?}"
    );
    assert_eq!(
        dataplane.session(session.id).unwrap(),
        Some(at(3)),
        "untouched"
    );
    dataplane
        .upsert_session(session.id, &at(3))
        .expect("same version is idempotent");
    let terminated = session.entry(SessionState::Terminated, 4, client());
    dataplane.upsert_session(session.id, &terminated).unwrap();
    assert_eq!(dataplane.session(session.id).unwrap(), Some(terminated));
    assert_eq!(dataplane.session_count().unwrap(), 1);

    assert!(matches!(
        dataplane.upsert_session(0, &at(1)),
        Err(DataplaneError::ReservedSessionId)
    ));
    assert!(dataplane.remove_session(session.id).unwrap());
    assert!(!dataplane.remove_session(session.id).unwrap());
    assert_eq!(dataplane.session_count().unwrap(), 0);
    dataplane
        .upsert_session(session.id, &at(1))
        .expect("a removed id starts over");
    dataplane.detach().unwrap();
}

#[test]
fn a_full_session_table_is_a_typed_error() {
    require_root();
    let host = OneHost::new();
    let _pins = host.pins();
    let mut options = host.options();
    options.max_sessions = 4;
    let dataplane = host.netns.run(|| Dataplane::load(&options)).unwrap();
    assert_eq!(dataplane.session_capacity(), 4);
    for id in 1..=4 {
        let s = TestSession::new(id);
        dataplane
            .upsert_session(id, &s.entry(SessionState::Attached, 1, client()))
            .unwrap();
    }
    let fifth = TestSession::new(5);
    let full = dataplane.upsert_session(5, &fifth.entry(SessionState::Attached, 1, client()));
    match full {
        Err(ref e @ DataplaneError::TableFull { capacity: 4 }) => {
            assert!(e.to_string().contains("raise --max-sessions"), "{e}")
        }
        other => panic!("expected TableFull, got {other:?}"),
    }
    let first = TestSession::new(1);
    dataplane
        .upsert_session(1, &first.entry(SessionState::Recovering, 2, client()))
        .expect("updating an existing session needs no room");
    dataplane.detach().unwrap();
}

/// Slots follow the sessions: a new session gets a never-used slot before a freed one, an
/// update keeps its slot (whatever the caller wrote there), and an adopted dataplane knows which
/// slots are taken and reads back the lines written through the memory map (layout v5).
#[test]
fn replay_slots_follow_sessions_and_survive_adoption() {
    require_root();
    let host = OneHost::new();
    let _pins = host.pins();
    let mut options = host.options();
    options.max_sessions = 4;
    let dataplane = host.netns.run(|| Dataplane::load(&options)).unwrap();
    let put = |dp: &Dataplane, id: u64, version: u64| {
        let mut entry = TestSession::new(id).entry(SessionState::Attached, version, client());
        entry.replay_slot = 99;
        dp.upsert_session(id, &entry)
    };
    let slot = |dp: &Dataplane, id: u64| dp.session(id).unwrap().expect("in the table").replay_slot;
    for id in [1, 2] {
        put(&dataplane, id, 1).unwrap();
    }
    assert_eq!((slot(&dataplane, 1), slot(&dataplane, 2)), (0, 1));
    assert!(dataplane.remove_session(1).unwrap());
    put(&dataplane, 3, 1).unwrap();
    assert_eq!(slot(&dataplane, 3), 2, "never-used slots first");
    put(&dataplane, 2, 2).unwrap();
    assert_eq!(slot(&dataplane, 2), 1, "an update keeps its slot");
    put(&dataplane, 4, 1).unwrap();
    put(&dataplane, 5, 1).unwrap();
    assert_eq!(slot(&dataplane, 5), 0, "then the freed one");
    assert!(matches!(
        put(&dataplane, 6, 1),
        Err(DataplaneError::TableFull { capacity: 4 })
    ));
    assert_eq!(dataplane.highest_nonce(2).unwrap(), None, "no traffic yet");
    drop(dataplane);

    let adopted = host
        .netns
        .run(|| Dataplane::open_or_load(&options))
        .expect("adopt");
    assert_eq!(adopted.origin(), Origin::Adopted);
    for (id, expected) in [(2, 1), (3, 2), (4, 3), (5, 0)] {
        assert_eq!(slot(&adopted, id), expected, "session {id} kept its slot");
    }
    let mut two = TestSession::new(2).entry(SessionState::Attached, 2, client());
    (two.session_id, two.replay_slot) = (2, 1);
    assert_eq!(
        adopted.session(2).unwrap(),
        Some(two),
        "the line written in place is the kernel map's, whole"
    );
    assert_eq!(
        adopted.session(1).unwrap(),
        None,
        "a removed session is gone"
    );
    assert!(matches!(
        put(&adopted, 6, 1),
        Err(DataplaneError::TableFull { capacity: 4 })
    ));
    assert!(adopted.remove_session(3).unwrap());
    put(&adopted, 6, 1).unwrap();
    assert_eq!(slot(&adopted, 6), 2, "the one slot freed since adoption");
    adopted.detach().unwrap();
}

#[test]
fn operator_mistakes_get_errors_that_say_what_to_do() {
    require_root();
    let host = OneHost::new();
    let _pins = host.pins();

    let mut missing = host.options();
    missing.iface = unique_name("z");
    let err = host.netns.run(|| Dataplane::load(&missing)).unwrap_err();
    assert!(
        matches!(err, DataplaneError::InterfaceNotFound { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("ip link"), "{err}");

    let mut escape = host.options();
    escape.iface = "../etc".into();
    let err = Dataplane::load(&escape).unwrap_err();
    assert!(
        matches!(err, DataplaneError::InvalidInterfaceName { .. }),
        "{err:?}"
    );

    // A bridge has no native XDP.
    let bridge = unique_name("d");
    host.netns.ip(&["link", "add", &bridge, "type", "bridge"]);
    let _bridge_pins = PinDirGuard::new(
        PinDir::new(Path::new(abi::PIN_ROOT), &bridge)
            .unwrap()
            .path(),
    );
    let mut native = host.options();
    native.iface = bridge.clone();
    let err = host.netns.run(|| Dataplane::load(&native)).unwrap_err();
    assert!(
        matches!(err, DataplaneError::DriverModeUnsupported { .. }),
        "{err:?}"
    );
    assert!(
        !PinDir::new(Path::new(abi::PIN_ROOT), &bridge)
            .unwrap()
            .path()
            .join(abi::MAP_SESSIONS)
            .exists(),
        "a failed load leaves no pins"
    );
    let mut generic = native.clone();
    generic.xdp_mode = XdpAttachMode::Skb;
    let dataplane = host
        .netns
        .run(|| Dataplane::load(&generic))
        .expect("skb mode works");
    assert_eq!(dataplane.attach_mode().unwrap(), XdpAttachMode::Skb);
    drop(dataplane);
    // Adopted by a run that asks for driver mode, the link keeps the mode it was attached in,
    // and says so (the gateway then leaves UDP_GRO off).
    let adopted = host
        .netns
        .run(|| Dataplane::open_or_load(&native))
        .expect("adopting the generic-mode link");
    assert_eq!(adopted.origin(), Origin::Adopted);
    assert_eq!(adopted.attach_mode().unwrap(), XdpAttachMode::Skb);
    adopted.detach().unwrap();
}

#[test]
fn detach_works_after_the_interface_is_gone() {
    require_root();
    let host = OneHost::new();
    let _pins = host.pins();
    drop(host.netns.run(|| Dataplane::load(&host.options())).unwrap());
    host.netns.ip(&["link", "del", &host.iface]);

    let adopted = Dataplane::adopt(&host.iface).expect("the pins outlive the interface");
    let pin_dir = adopted.pin_dir().to_owned();
    adopted
        .detach()
        .expect("detaching a link whose interface is gone");
    assert!(!pin_dir.exists(), "pins are gone");
}

/// Pins left by a build of another map layout (here the previous one, still attached) are never
/// adopted: a fresh load removes them, which detaches the old program, and attaches its own.
#[test]
fn pins_of_another_map_layout_are_retired_not_adopted() {
    require_root();
    let host = OneHost::new();
    let _pins = host.pins();
    let options = host.options();
    let old = host.netns.run(|| Dataplane::load(&options)).expect("load");
    let old_program = old.program_id();
    let current = old.pin_dir().to_owned();
    drop(old);
    let previous_layout = current
        .parent()
        .unwrap()
        .join(format!("v{}", abi::MAP_LAYOUT_VERSION - 1));
    let _old_pins = PinDirGuard::new(&previous_layout);
    std::fs::rename(&current, &previous_layout).expect("move the pins to the previous layout");
    assert!(host.has_xdp(), "the old layout's program is still attached");

    let loaded = host
        .netns
        .run(|| Dataplane::open_or_load(&options))
        .expect("a load beside another layout's pins");
    assert_eq!(loaded.origin(), Origin::Loaded, "nothing of v1 is adopted");
    assert_ne!(loaded.program_id(), old_program);
    assert!(
        !previous_layout.exists(),
        "the previous layout's pins are gone"
    );
    assert!(host.has_xdp());
    loaded.detach().expect("detach");
    assert!(
        !host.has_xdp(),
        "nothing of the old layout keeps XDP attached"
    );
}
