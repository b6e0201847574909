//! The decision list of the versioning model, applied in its order (issue 2, steps 1 to 6, with
//! the one-datagram rule of docs/datapath.md, "Merged runs", in step 1): the first rule a jvpn
//! packet breaks is the reason it is refused. Reads maps, writes only the replay window (through
//! [`crate::replay`]) and the HELLO buckets (through [`crate::hello`]).

use crate::ratelimit::admit_hello;
use crate::verdict::{Refusal, Seen, Verdict};
use crate::{hello, replay, session};
use aya_ebpf::programs::XdpContext;
use bytemuck::Zeroable;
use jvpn_common::abi::HEADER_LEN;
use jvpn_common::control::MAX_DATAGRAM_LEN;
use jvpn_common::maps::CONFIG_FLAG_CLUSTER;
use jvpn_common::siphash::SipKey;
use jvpn_common::version::check_version;
use jvpn_common::{
    GatewayConfig, MessageType, RejectReason, SessionLine, SessionState, WireHeader,
};
use jvpn_ebpf::packet::{udp_datagram, Packet, Transport};

/// Judges one frame under `config`.
#[inline(always)]
pub fn try_jvpn_xdp(
    ctx: &XdpContext,
    packet: &Packet,
    config: &GatewayConfig,
) -> Result<Verdict, Refusal> {
    // Unconfigured: pass everything rather than black-hole the interface.
    if config.port.get() == 0 {
        return Ok(Verdict::NotJvpn);
    }
    let datagram = match udp_datagram(packet) {
        Transport::Udp(datagram) if datagram.destination_port == config.port => datagram,
        Transport::Udp(_) | Transport::Other => return Ok(Verdict::NotJvpn),
        // It may be ours, and the stack would deliver it uninspected: step 1 refuses it.
        Transport::Hidden(source) => {
            return Err(Seen::source(source).refuse(RejectReason::Malformed))
        }
    };
    let seen = Seen::source(datagram.source);

    // 1. Malformed: fragmented, lengths that disagree, truncated, or a header that breaks a
    //    field rule.
    if datagram.fragmented || !datagram.lengths_agree || datagram.payload_len < HEADER_LEN {
        return Err(seen.refuse(RejectReason::Malformed));
    }
    let Some(header) = packet.read::<WireHeader>(datagram.payload) else {
        return Err(seen.refuse(RejectReason::Malformed));
    };
    let seen = seen.header(&header);
    // 1a. Longer than any one datagram: several laid end to end (generic XDP sees a GSO packet
    //     or a GRO merge whole, and the stack splits it again after this program), or forged.
    //     Only the first header could be judged here, so the whole frame is dropped.
    if datagram.payload_len > MAX_DATAGRAM_LEN {
        return Err(seen.refuse(RejectReason::MergedRun));
    }
    let msg_type = match header.validate() {
        Ok(t) if t.sent_by_client() => t,
        _ => return Err(seen.refuse(RejectReason::Malformed)),
    };

    // 2. HELLO: length, mac1, per-source and global budgets, cookie under load (see `hello`);
    // then the controller runs the handshake.
    if msg_type == MessageType::Hello {
        return hello::judge(packet, &datagram, config, seen);
    }

    // 3. The session must exist and the tag verify before anything of it is touched.
    let session_id = header.session_id.get();
    let mut session = SessionLine::zeroed();
    let found = session::find(&header, session_id, &mut session).map_err(|r| seen.refuse(r))?;
    let Some(slot) = found else {
        // In a cluster, another node may have served it: the controller looks it up in the
        // shared store. Unauthenticated here, so within the per-source HELLO budget.
        let takeover = matches!(
            msg_type,
            MessageType::ReattachRequest | MessageType::PathResponse
        );
        if takeover && config.flags & CONFIG_FLAG_CLUSTER != 0 {
            if !admit_hello(&datagram.source.addr, config) {
                return Err(seen.refuse(RejectReason::HandshakeRate));
            }
            return Ok(Verdict::ToController);
        }
        return Err(seen.refuse(RejectReason::UnknownSession));
    };
    if !header.tag_verifies(SipKey::from_bytes(&session.header_key)) {
        return Err(seen.refuse(RejectReason::BadTag));
    }

    // 4. Terminated (an unknown state byte counts as terminated: fail closed).
    let state = SessionState::from_u8(session.state).unwrap_or(SessionState::Terminated);
    if state == SessionState::Terminated {
        return Err(seen.refuse(RejectReason::Terminated));
    }

    let nonce = header.nonce.get();
    match msg_type {
        // 5. Control messages: replay-checked here, decided by the controller (CAS).
        MessageType::ReattachRequest | MessageType::PathResponse | MessageType::Terminate => {
            replay::check_and_record(ctx, session_id, slot, nonce).map_err(|r| seen.refuse(r))?;
            Ok(Verdict::ToController)
        }
        // 6. DATA, KEEPALIVE and REKEY_INIT: the full versioning check. A rekey is only asked
        // for by the attached client at the current version from its bound transport; the
        // controller then runs the key exchange and commits it (docs/rekey.md).
        MessageType::Data | MessageType::Keepalive | MessageType::RekeyInit => {
            if state != SessionState::Attached {
                return Err(seen.refuse(RejectReason::NotAttached));
            }
            check_version(header.state_version.get(), session.state_version)
                .map_err(|r| seen.refuse(r))?;
            if datagram.source != session.transport() {
                return Err(seen.refuse(RejectReason::TransportMismatch));
            }
            replay::check_and_record(ctx, session_id, slot, nonce).map_err(|r| seen.refuse(r))?;
            if msg_type == MessageType::RekeyInit {
                return Ok(Verdict::ToController);
            }
            Ok(Verdict::Accepted)
        }
        // HELLO was handled in step 2 and gateway-only types refused in step 1.
        _ => Err(seen.refuse(RejectReason::Malformed)),
    }
}
