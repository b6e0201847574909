//! Writes the seed corpus of every fuzz target under `fuzz/corpus/TARGET/`: a few valid inputs per
//! target, made with jvpn's own encoders, so the fuzzer starts from messages, records and configs
//! that reach deep into each decoder. Run it again after a format change:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example seed_corpus
//! ```
//!
//! Seeds are named by content (`seed-NAME`), so a rerun replaces them and leaves the entries the
//! fuzzer found alone. The structured targets (decoded with `arbitrary`) get a few fixed
//! pseudo-random byte strings: any bytes decode to some case.

use jvpn_common::control::{
    Body, HelloPayload, PathChallenge, PathResponse, ReattachAck, ReattachRequest, Reject, Tai64N,
    Terminate, TerminateCause, WelcomePayload,
};
use jvpn_common::maps::{SessionState, TransportBinding};
use jvpn_common::siphash::SipKey;
use jvpn_common::wire::{Be16, Be64, MessageType, WireHeader};
use jvpn_common::RejectReason;
use jvpn_user::control::protocol::to_line;
use jvpn_user::control::{ApiError, Request, Response};
use jvpn_user::crypto::{seal_body, ClientHandshake, ClientIdentity, Direction, PrivateKey};
use jvpn_user::events::{EventFilter, EventKind};
use jvpn_user::session::{Cause, Session, SessionId, StateChange};
use jvpn_user::store::codec::{encode_session, encode_state_change};
use std::path::{Path, PathBuf};

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut corpus = Corpus { root };
    wire_header(&mut corpus);
    control_body(&mut corpus);
    aead_open(&mut corpus);
    handshake_hello(&mut corpus);
    configs(&mut corpus);
    control_protocol(&mut corpus);
    store_codec(&mut corpus);
    for target in [
        "session_machine",
        "replay_window",
        "aead_open",
        "handshake_hello",
    ] {
        for (i, len) in [16usize, 64, 256].into_iter().enumerate() {
            corpus.put(
                target,
                &format!("bytes-{i}"),
                &pseudo_random(i as u64 + 1, len),
            );
        }
    }
}

struct Corpus {
    root: PathBuf,
}

impl Corpus {
    fn put(&mut self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.root.join(target);
        std::fs::create_dir_all(&dir).expect("create the corpus directory");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("write a seed");
    }
}

/// xorshift64: fixed bytes, so a rerun writes the same seeds.
fn pseudo_random(mut state: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn bodies() -> Vec<(&'static str, MessageType, Vec<u8>)> {
    let binding = TransportBinding::from_v4([198, 51, 100, 7], 50_000);
    let challenge = PathChallenge {
        token: [0xab; 32],
        attempt: Be64::new(1),
    };
    vec![
        (
            "reattach_request",
            MessageType::ReattachRequest,
            ReattachRequest {
                acked_version: Be64::new(3),
                attempt: Be64::new(1),
            }
            .as_body()
            .to_vec(),
        ),
        (
            "path_challenge",
            MessageType::PathChallenge,
            challenge.as_body().to_vec(),
        ),
        (
            "path_response",
            MessageType::PathResponse,
            PathResponse::answering(&challenge).as_body().to_vec(),
        ),
        (
            "reattach_ack",
            MessageType::ReattachAck,
            ReattachAck {
                new_version: Be64::new(4),
                binding,
            }
            .as_body()
            .to_vec(),
        ),
        (
            "reject",
            MessageType::Reject,
            Reject::new(RejectReason::StaleVersion, 4, 9)
                .as_body()
                .to_vec(),
        ),
        (
            "terminate",
            MessageType::Terminate,
            Terminate::new(TerminateCause::Operator).as_body().to_vec(),
        ),
    ]
}

fn welcome() -> WelcomePayload {
    WelcomePayload {
        session_id: Be64::new(0x0000_1234_5678_9abc),
        ipv4: [10, 77, 0, 2],
        ipv4_prefix_len: 24,
        ipv6_prefix_len: 64,
        tunnel_mtu: Be16::new(1396),
        ipv6: [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
        keepalive_interval_secs: Be16::new(10),
        reserved: [0; 6],
    }
}

fn wire_header(corpus: &mut Corpus) {
    let key = SipKey::from_bytes(&[0x5a; 16]);
    for t in 1..=10u8 {
        let message_type = MessageType::from_u8(t).expect("types 1..=10 exist");
        let header = if message_type == MessageType::Hello {
            WireHeader::new(message_type, 0, 0, 0)
        } else {
            let mut h = WireHeader::new(message_type, 0x0000_1234_5678_9abc, 3, 9);
            h.seal(key);
            h
        };
        corpus.put(
            "wire_header",
            &format!("{message_type:?}"),
            header.as_bytes(),
        );
    }
}

fn control_body(corpus: &mut Corpus) {
    for (name, _, body) in bodies() {
        corpus.put("control_body", name, &body);
    }
    let hello = HelloPayload {
        timestamp: Tai64N::from_unix(1_780_000_000, 5),
    };
    corpus.put("control_body", "hello", hello.as_body());
    corpus.put("control_body", "welcome", welcome().as_body());
}

fn aead_open(corpus: &mut Corpus) {
    // Mode byte 0 or 1 (the direction), then a genuine sealed message.
    let keys = jvpn_fuzz::session_keys();
    for (name, message_type, body) in bodies() {
        let direction = if message_type.sent_by_client() {
            Direction::ClientToGateway
        } else {
            Direction::GatewayToClient
        };
        let header = WireHeader::new(message_type, 0x0000_1234_5678_9abc, 3, 9);
        let sealed = match message_type {
            MessageType::ReattachRequest => {
                seal::<ReattachRequest>(&keys, direction, header, &body)
            }
            MessageType::PathChallenge => seal::<PathChallenge>(&keys, direction, header, &body),
            MessageType::PathResponse => seal::<PathResponse>(&keys, direction, header, &body),
            MessageType::ReattachAck => seal::<ReattachAck>(&keys, direction, header, &body),
            MessageType::Reject => seal::<Reject>(&keys, direction, header, &body),
            _ => seal::<Terminate>(&keys, direction, header, &body),
        };
        let mode = u8::from(direction == Direction::GatewayToClient);
        corpus.put(
            "aead_open",
            &format!("sealed-{name}"),
            &[&[mode], &sealed[..]].concat(),
        );
    }
}

fn seal<B: Body>(
    keys: &jvpn_user::crypto::SessionKeys,
    direction: Direction,
    header: WireHeader,
    body: &[u8],
) -> Vec<u8> {
    let body = B::from_body(body).expect("a seed body is valid");
    seal_body(keys, direction, header, &body).expect("a seed message seals")
}

fn handshake_hello(corpus: &mut Corpus) {
    let identity = ClientIdentity {
        private_key: jvpn_fuzz::client_private_key(),
        gateway_public_key: jvpn_fuzz::gateway_private_key().public_key(),
        psk: jvpn_fuzz::psk(),
    };
    let (_, hello) = ClientHandshake::start(&identity, Tai64N::from_unix(1_780_000_000, 0))
        .expect("the client makes a HELLO");
    // Mode byte 0: the datagram as it is.
    corpus.put("handshake_hello", "hello", &[&[0u8], &hello[..]].concat());
}

fn configs(corpus: &mut Corpus) {
    let gateway = jvpn_fuzz::gateway_private_key().to_base64();
    let psk = jvpn_fuzz::psk().to_base64();
    let laptop = jvpn_fuzz::client_private_key().public_key();
    let phone = PrivateKey::from_bytes([0x44; 32]).public_key();
    let full = format!(
        r#"private_key = "{gateway}"
psk = "{psk}"
port = 51999
listen = "::"
iface = "eth0"
state_dir = "/var/lib/jvpn"
tun = "jvpn0"
mtu = 1396
keepalive_interval_secs = 5
keepalive_timeout_secs = 30
idle_timeout_secs = 300

[tunnel]
ipv4 = "10.77.0.1/24"
ipv6 = "fd77::1/64"

[[client]]
name = "laptop"
public_key = "{laptop}"
ipv4 = "10.77.0.2"
ipv6 = "fd77::2"
allowed_ips = ["192.168.50.0/24"]

[[client]]
public_key = "{phone}"
psk = "{psk}"
ipv6 = "fd77::3"
"#,
        gateway = gateway.as_str(),
        psk = psk.as_str(),
    );
    corpus.put("gateway_config", "full", full.as_bytes());
    let minimal = format!(
        "private_key = \"{}\"\n[tunnel]\nipv4 = \"10.77.0.1/24\"\n",
        gateway.as_str()
    );
    corpus.put("gateway_config", "minimal", minimal.as_bytes());

    let client = jvpn_fuzz::client_private_key().to_base64();
    let gateway_public = jvpn_fuzz::gateway_private_key().public_key();
    for (name, address) in [
        ("name", "vpn.example.net:51900"),
        ("v6", "[2001:db8::1]:51900"),
        ("default_port", "192.0.2.1"),
    ] {
        let text = format!(
            "gateway = \"{address}\"\ngateway_public_key = \"{gateway_public}\"\n\
             private_key = \"{}\"\npsk = \"{}\"\ntun = \"jvpn0\"\n",
            client.as_str(),
            psk.as_str()
        );
        corpus.put("client_config", name, text.as_bytes());
    }
}

fn control_protocol(corpus: &mut Corpus) {
    let requests = [
        Request::Status,
        Request::ListSessions,
        Request::ShowSession { id: 0xdead_beef },
        Request::TerminateSession { id: 7 },
        Request::Stats,
        Request::Audit { id: 7 },
        Request::Events {
            follow: true,
            filter: EventFilter {
                session: Some(7),
                kind: Some(EventKind::StateChange),
            },
        },
    ];
    let responses = [
        Response::Sessions(Vec::new()),
        Response::Audit(Vec::new()),
        Response::EndOfEvents,
        Response::Error(ApiError::UnknownSession { id: 7 }),
        Response::Error(ApiError::BadRequest {
            problem: "line longer than 65536 bytes".into(),
        }),
    ];
    // The first byte is the target's line limit.
    let mut all = vec![255u8];
    for (i, request) in requests.iter().enumerate() {
        let line = to_line(request);
        all.extend_from_slice(line.as_bytes());
        corpus.put(
            "control_protocol",
            &format!("request-{i}"),
            &[&[255u8], line.as_bytes()].concat(),
        );
    }
    for (i, response) in responses.iter().enumerate() {
        let line = to_line(response);
        all.extend_from_slice(line.as_bytes());
        corpus.put(
            "control_protocol",
            &format!("response-{i}"),
            &[&[255u8], line.as_bytes()].concat(),
        );
    }
    corpus.put("control_protocol", "stream", &all);
}

fn store_codec(corpus: &mut Corpus) {
    let id = SessionId::new(0x0000_1234_5678_9abc).expect("not 0");
    let mut session = Session::birth(id, [7; 32], 1_780_000_000_000);
    session.state = SessionState::Attached;
    session.state_version = 3;
    session.binding = TransportBinding::from_v4([198, 51, 100, 7], 50_000);
    session.header_key = [9; 16];
    session.secrets = vec![5; 64].into();
    session.hello_timestamp = Tai64N::from_unix(1_780_000_000, 1);
    let record = encode_session(&session).expect("a seed session encodes");
    corpus.put("store_codec", "session", &record);
    // Format 1: no hello_timestamp.
    let mut old = record[..record.len() - 12].to_vec();
    old[0] = 1;
    corpus.put("store_codec", "session-format1", &old);

    let change = StateChange {
        session: id,
        from_state: SessionState::Attached,
        to_state: SessionState::Attached,
        from_version: 3,
        to_version: 4,
        cause: Cause::Reattach,
        at: 1_780_000_000_500,
        binding: TransportBinding::from_v4([203, 0, 113, 9], 40_000),
    };
    let record = encode_state_change(&change);
    corpus.put("store_codec", "state_change", &record);
    let mut old = record[..record.len() - 18].to_vec();
    old[0] = 1;
    corpus.put("store_codec", "state_change-format1", &old);
}
