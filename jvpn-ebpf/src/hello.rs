//! HELLO admission, in order (each refusal counted and reported): the exact length, mac1 under the
//! gateway's key (`BAD_MAC`), the per-source bucket (`HANDSHAKE_RATE`, IPv6 per /64), then the
//! global budget. Once that budget is spent on this CPU, or while the controller says it is under
//! load, a HELLO passes only with a valid mac2 for its source; without one it still passes within
//! the small cookie budget, so the controller can answer it with a COOKIE_REPLY, and is dropped as
//! `COOKIE_REQUIRED` beyond it. A spoofed flood thus reaches the controller at most at the cookie
//! budget's rate, and no HELLO reaches it without passing mac1.
//!
//! The MACs are computed from packet memory word by word (`jvpn_common::hello`), with the same
//! functions the client and the controller use.

use crate::maps::{JVPN_HELLO_BUDGET, JVPN_SCRATCH};
use crate::ratelimit::{self, admit_hello};
use crate::verdict::{Refusal, Seen, Verdict};
use jvpn_common::abi::{
    HELLO_BUDGET_COOKIE, HELLO_BUDGET_GLOBAL, HELLO_LEN, HELLO_MAC1_OFFSET, HELLO_MAC2_OFFSET,
};
use jvpn_common::hello::{cookie_key, MAC1_WORDS, MAC2_WORDS};
use jvpn_common::siphash::{siphash24_word_fn, SipKey};
use jvpn_common::{GatewayConfig, RejectReason};
use jvpn_ebpf::packet::{Datagram, Packet};

/// Judges a HELLO whose header already validated.
#[inline(always)]
pub fn judge(
    packet: &Packet,
    datagram: &Datagram,
    config: &GatewayConfig,
    seen: Seen,
) -> Result<Verdict, Refusal> {
    if datagram.payload_len != HELLO_LEN {
        return Err(seen.refuse(RejectReason::Malformed));
    }
    let guard = &config.handshake;
    let Some(at) = opaque(datagram.payload) else {
        return Err(seen.refuse(RejectReason::Malformed));
    };
    let hello = packet.tail(at);
    // One check of the whole HELLO up front, which the verifier carries to every word read below
    // (a frame shorter than its UDP length claims is malformed).
    if read_u64(&hello, HELLO_LEN - 8).is_none() {
        return Err(seen.refuse(RejectReason::Malformed));
    }
    let mac1_key = SipKey::from_bytes(&guard.mac1_key);
    let mac1 = mac::<MAC1_WORDS>(&hello, mac1_key);
    // No key yet (no controller has set one): no HELLO can be answered, refuse them all.
    if mac1_key.k0 | mac1_key.k1 == 0 || Some(mac1) != read_u64(&hello, HELLO_MAC1_OFFSET) {
        return Err(seen.refuse(RejectReason::BadMac));
    }
    if !admit_hello(&datagram.source.addr, config) {
        return Err(seen.refuse(RejectReason::HandshakeRate));
    }
    let cookie_needed =
        guard.under_load != 0 || !take(HELLO_BUDGET_GLOBAL, guard.global_rate, guard.global_burst);
    if !cookie_needed {
        return Ok(Verdict::ToController);
    }
    let mac2 = read_u64(&hello, HELLO_MAC2_OFFSET).unwrap_or(0);
    if mac2 != 0 {
        for secret in [&guard.cookie_secret, &guard.previous_cookie_secret] {
            let (k0, k1) = cookie_key(SipKey::from_bytes(secret), &datagram.source);
            if mac::<MAC2_WORDS>(&hello, SipKey { k0, k1 }) == mac2 {
                return Ok(Verdict::ToController);
            }
        }
    }
    if take(HELLO_BUDGET_COOKIE, guard.cookie_rate, guard.cookie_burst) {
        // Passed so the controller can send this source its cookie; it runs no DH for it.
        return Ok(Verdict::ToController);
    }
    Err(seen.refuse(RejectReason::CookieRequired))
}

/// Largest payload offset a HELLO may have: far beyond any real header chain, and low enough that
/// offset plus HELLO stays under the verifier's packet offset limit (0xffff), past which it
/// stops tracking bounds checks.
const MAX_PAYLOAD_OFFSET: usize = 0x7fff;

/// `offset`, as a value the verifier cannot know: every parse path (IPv4 or IPv6, tagged or not,
/// extension headers) reaches the HELLO code with a different constant offset, and the verifier
/// would check the unrolled MACs once per path, past its instruction limit. Passed through map
/// memory, the offset is an unknown bounded scalar on every path, and the states merge.
#[inline(always)]
fn opaque(offset: usize) -> Option<usize> {
    let slot = JVPN_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: this CPU's scratch word, valid for the run and used by nothing else meanwhile;
    // volatile so the compiler keeps the round trip.
    let offset = unsafe {
        core::ptr::write_volatile(slot, offset as u64);
        core::ptr::read_volatile(slot)
    } as usize;
    (offset <= MAX_PAYLOAD_OFFSET).then_some(offset)
}

/// The MAC over the first `N` words of `hello` (its length was checked whole).
#[inline(always)]
fn mac<const N: usize>(hello: &Packet, key: SipKey) -> u64 {
    siphash24_word_fn::<N>(key, |i| read_u64(hello, i * 8).unwrap_or(0))
}

/// The little-endian word at `offset`, as SipHash reads it and as the MACs are stored.
#[inline(always)]
fn read_u64(packet: &Packet, offset: usize) -> Option<u64> {
    packet.read::<[u8; 8]>(offset).map(u64::from_le_bytes)
}

/// Takes one token from this CPU's budget in `slot`; `false` if it has none.
#[inline(always)]
fn take(slot: u32, rate: u32, burst: u32) -> bool {
    let Some(bucket) = JVPN_HELLO_BUDGET.get_ptr_mut(slot) else {
        return false;
    };
    // SAFETY: this CPU's value of a per-CPU array, valid for the run; XDP runs with bottom halves
    // disabled, so no other run on this CPU touches it meanwhile.
    let bucket = unsafe { &mut *bucket };
    ratelimit::take_token(bucket, rate, burst)
}
