//! How long the client driver waits for the gateway, and how often it asks again.

use std::time::Duration;

/// Default age of keys at which the client rekeys (WireGuard's REKEY_AFTER_TIME); the gateway's
/// default reject-after is 180 s.
pub const DEFAULT_REKEY_AFTER: Duration = Duration::from_secs(120);
/// Default number of messages under one set of keys at which the client rekeys (WireGuard's
/// REKEY_AFTER_MESSAGES).
pub const DEFAULT_REKEY_AFTER_MESSAGES: u64 = 1 << 60;

/// Retry and timeout settings of [`super::ClientConnection`]. Each retry doubles the previous
/// wait, up to [`ConnectOptions::max_wait`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectOptions {
    /// How long to wait for a WELCOME before sending a new HELLO.
    pub handshake_wait: Duration,
    /// How many HELLOs to send before giving up.
    pub handshake_attempts: u32,
    /// How long to wait for a reattach to complete before a new REATTACH_REQUEST.
    pub reattach_wait: Duration,
    /// How many REATTACH_REQUESTs to send before giving up on a jump.
    pub reattach_attempts: u32,
    /// The longest single wait.
    pub max_wait: Duration,
    /// Keys this old are replaced by a rekey (docs/rekey.md; WireGuard's REKEY_AFTER_TIME).
    pub rekey_after: Duration,
    /// Keys that sealed this many messages are replaced by a rekey.
    pub rekey_after_messages: u64,
    /// How long to wait for a REKEY_ACK before a new REKEY_INIT.
    pub rekey_wait: Duration,
    /// How long upstream packets may be held while a REKEY_INIT awaits its ACK, so that none is
    /// sealed at the version the rekey is about to leave (docs/rekey.md).
    pub rekey_hold: Duration,
}

impl Default for ConnectOptions {
    /// One second for a first WELCOME, 5 HELLOs (15 s in all); a jump waits 250 ms for its first
    /// round trips, 6 requests (about 12 s in all); no single wait longer than 4 s. Rekey after
    /// 120 s or 2^60 messages, asking again every second until the REKEY_ACK comes.
    fn default() -> Self {
        Self {
            handshake_wait: Duration::from_secs(1),
            handshake_attempts: 5,
            reattach_wait: Duration::from_millis(250),
            reattach_attempts: 6,
            max_wait: Duration::from_secs(4),
            rekey_after: DEFAULT_REKEY_AFTER,
            rekey_after_messages: DEFAULT_REKEY_AFTER_MESSAGES,
            rekey_wait: Duration::from_secs(1),
            rekey_hold: Duration::from_millis(250),
        }
    }
}

impl ConnectOptions {
    /// The wait after the `round`-th send (from 0) of a message first waited for `first`.
    pub fn wait(&self, first: Duration, round: u32) -> Duration {
        first
            .saturating_mul(1u32.checked_shl(round).unwrap_or(u32::MAX))
            .min(self.max_wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_up_to_the_maximum() {
        let options = ConnectOptions::default();
        let first = Duration::from_millis(250);
        let waits: Vec<u64> = (0..7)
            .map(|round| options.wait(first, round).as_millis() as u64)
            .collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 4000, 4000]);
        assert_eq!(options.wait(first, 40), Duration::from_secs(4));
    }
}
