//! The generated sample's helpers: bodies sealed for the real session, the gateway's XDP
//! counters by name beside the model's verdicts, and a jump mirrored in the model.

use super::*;
use jvpn_common::WireHeader;
use jvpn_user::crypto::seal_message;
use xdp_model::random::{Bodies, RandomBodies, Rng};

/// Seals DATA of the real session for real (an inner packet the TUN accepts); anything else is
/// a header with a noise body, as in the test-run world.
pub(crate) struct RealData<'a> {
    pub(crate) keys: &'a SessionKeys,
    pub(crate) session: u64,
    pub(crate) next_inner: u16,
}

impl Bodies for RealData<'_> {
    fn datagram(&mut self, header: WireHeader, key: Option<&[u8; 16]>, rng: &mut Rng) -> Vec<u8> {
        let ours = header.session_id.get() == self.session
            && header.message_type() == Some(MessageType::Data)
            && key == Some(self.keys.header_key(Direction::ClientToGateway));
        match ours {
            true => {
                self.next_inner = self.next_inner.wrapping_add(1);
                seal_message(
                    self.keys,
                    Direction::ClientToGateway,
                    header,
                    &inner_packet(self.next_inner),
                )
                .unwrap_or_else(|_| RandomBodies.datagram(header, key, rng))
            }
            false => RandomBodies.datagram(header, key, rng),
        }
    }
}

/// Every XDP counter slot, per `jvpn stats`: accepted, to the controller, and drops by reason.
pub(crate) fn xdp_counters(f: &GatewayFixture) -> BTreeMap<String, u64> {
    let stats = f.cli_json(&["stats"]);
    let d = &stats["dataplane"];
    let mut out = BTreeMap::new();
    out.insert(
        "Accepted".to_owned(),
        d["accepted"]["packets"].as_u64().expect("accepted"),
    );
    out.insert(
        "ToController".to_owned(),
        d["to_controller"]["packets"].as_u64().unwrap_or(0),
    );
    for drop in d["drops"].as_array().expect("drops") {
        out.insert(
            drop["reason"].as_str().expect("reason").to_owned(),
            drop["packets"].as_u64().expect("packets"),
        );
    }
    out.retain(|_, v| *v > 0);
    out
}

pub(crate) fn verdict_name(v: Verdict) -> Option<String> {
    match v {
        Verdict::NotJvpn => None,
        Verdict::Dropped(reason) => Some(reason.name().to_owned()),
        other => Some(format!("{other:?}")),
    }
}

pub(crate) fn added(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// Moves the session to a new socket of the client through the real gateway (request,
/// challenge, response, ack) and mirrors it in `model`: the two control messages' nonces, then
/// the new version and binding.
pub(crate) fn jump(f: &GatewayFixture, c: &mut WireClient, model: &mut Model) {
    let address = SocketAddr::new(Family::V4.client(), CLIENT_PORT + 2);
    let socket = jvpn_tests::probe::client_socket(f, Family::V4, address.port());
    let nonce = model.window_max(c.id) + 1;
    let claimed = c.acked;
    c.next_nonce = nonce;
    let version = c.jump(&socket);
    assert_eq!(version, claimed + 1);
    let key = *c.keys.header_key(Direction::ClientToGateway);
    for (kind, nonce) in [
        (MessageType::ReattachRequest, nonce),
        (MessageType::PathResponse, nonce + 1),
    ] {
        let mut header = WireHeader::new(kind, c.id, claimed, nonce);
        header.seal(jvpn_common::siphash::SipKey::from_bytes(&key));
        let frame = Udp::new(address, gateway_address(), header.as_bytes().to_vec()).frame();
        assert_eq!(
            model.judge(&frame).verdict,
            Verdict::ToController,
            "{kind:?}"
        );
    }
    let mut session = model.sessions[&c.id];
    session.version = version;
    session.binding = TransportBinding::from_socket_addr(address);
    model.set_session(c.id, Some(session));
}

/// The gateway's jvpn address on the veth.
pub(crate) fn gateway_address() -> SocketAddr {
    SocketAddr::new(Family::V4.gateway(), DEFAULT_PORT)
}

/// A seed from the clock, printed so that a failing run can be replayed.
pub(crate) fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .expect("a clock after 1970")
        .as_nanos() as u64
}
