//! The HELLO rate limit: a token bucket per source address (IPv4) or /64 (IPv6) in an LRU map
//! (rate and burst from the config map), so handshakes, the expensive path of the controller,
//! cannot be flooded from one address, and the buckets of many addresses evict each other instead
//! of filling a table. [`take_token`] is the bucket arithmetic, shared with the global budgets.
//!
//! Buckets are updated without atomics: two CPUs updating one source's bucket at the same instant
//! can lose one of the two updates, letting at most one extra HELLO per CPU through per race. The
//! limit is a flood brake, not an exact count, and the controller re-checks handshakes anyway.

use crate::clock::coarse_now_ns;
use crate::maps::JVPN_HELLO_RL;
use jvpn_common::maps::{SourceKey, NANO_TOKENS_PER_TOKEN};
use jvpn_common::{GatewayConfig, TokenBucket};

/// Takes one token from the bucket of `source`; `false` if it has none.
#[inline(always)]
pub fn admit_hello(source: &[u8; 16], config: &GatewayConfig) -> bool {
    let key = SourceKey::of(source);
    let capacity = config.hello_burst as u64 * NANO_TOKENS_PER_TOKEN;
    let now = coarse_now_ns();
    let Some(bucket) = JVPN_HELLO_RL.get_ptr_mut(key) else {
        // A new source starts with a full bucket, less this HELLO.
        if capacity < NANO_TOKENS_PER_TOKEN {
            return false;
        }
        let fresh = TokenBucket {
            nano_tokens: capacity - NANO_TOKENS_PER_TOKEN,
            last_ns: now,
        };
        // If the insert fails (a racing CPU inserted first) this HELLO still had a full bucket.
        let _ = JVPN_HELLO_RL.insert(key, fresh, 0);
        return true;
    };
    // SAFETY: a live value of the LRU map, valid for this run; read by value (see the module doc
    // for concurrent updates).
    let mut state = unsafe { bucket.read() };
    let tokens = refill(
        state.nano_tokens,
        now.saturating_sub(state.last_ns),
        config.hello_rate,
        capacity,
    );
    let admitted = tokens >= NANO_TOKENS_PER_TOKEN;
    state.nano_tokens = if admitted {
        tokens - NANO_TOKENS_PER_TOKEN
    } else {
        tokens
    };
    state.last_ns = now;
    // SAFETY: as above; written whole, by value.
    unsafe { bucket.write(state) };
    admitted
}

/// Takes one token from `bucket` (refilled at `rate` per second up to `burst`); `false` if it has
/// none. The caller owns the bucket for the run (a per-CPU value).
#[inline(always)]
pub fn take_token(bucket: &mut TokenBucket, rate: u32, burst: u32) -> bool {
    let capacity = burst as u64 * NANO_TOKENS_PER_TOKEN;
    let now = coarse_now_ns();
    // A bucket never used (last_ns 0) starts full.
    let tokens = match bucket.last_ns {
        0 => capacity,
        last => refill(bucket.nano_tokens, now.saturating_sub(last), rate, capacity),
    };
    bucket.last_ns = now;
    if tokens >= NANO_TOKENS_PER_TOKEN {
        bucket.nano_tokens = tokens - NANO_TOKENS_PER_TOKEN;
        true
    } else {
        bucket.nano_tokens = tokens;
        false
    }
}

/// The tokens after `elapsed_ns` at `rate` tokens per second, at most `capacity` (all in
/// nano-tokens). Free of overflow: the product is only formed while it is below `capacity`.
#[inline(always)]
fn refill(nano_tokens: u64, elapsed_ns: u64, rate: u32, capacity: u64) -> u64 {
    if rate == 0 {
        return nano_tokens.min(capacity);
    }
    let fill_ns = capacity / rate as u64;
    if elapsed_ns >= fill_ns {
        return capacity;
    }
    (nano_tokens + elapsed_ns * rate as u64).min(capacity)
}
