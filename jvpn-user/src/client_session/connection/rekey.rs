//! When the client rekeys (docs/rekey.md): once its keys are [`ConnectOptions::rekey_after`] old
//! or sealed [`ConnectOptions::rekey_after_messages`] messages, it sends a REKEY_INIT, and another
//! every [`ConnectOptions::rekey_wait`] until a REKEY_ACK switches the keys (the receive loop
//! handles the ACK). It does not start one while a reattach is pending: a jump and a rekey would
//! both claim the next version.
//!
//! While a REKEY_INIT awaits its ACK, upstream packets are held (at most [`MAX_HELD_PACKETS`], for
//! at most [`ConnectOptions::rekey_hold`]) and sent under the new keys once the ACK arrives:
//! sealed at the version the rekey leaves, they would reach the gateway after its commit and be
//! dropped as stale (docs/rekey.md). Past the hold time (a lost REKEY_INIT) or the cap they go out
//! as they are.

use super::ClientConnection;
use crate::client_session::birth::send;
use crate::client_session::connection_error::ConnectionError;
use crate::client_session::options::ConnectOptions;
use crate::datapath::segment::Packets;
use std::time::Duration;
use tokio::time::Instant;

/// Upstream packets held at most while a rekey is pending.
pub const MAX_HELD_PACKETS: usize = 1024;

/// Upstream packets held while a rekey is pending, and since when.
#[derive(Debug, Default)]
pub(super) struct Held {
    packets: Vec<Vec<u8>>,
    since: Option<Instant>,
}

/// What to do with an upstream batch.
pub(super) enum Upstream {
    /// It was held.
    Held,
    /// Send it, after the packets held `earlier`.
    Send {
        /// Packets held before, to send first.
        earlier: Vec<Vec<u8>>,
    },
}

/// Whether keys `age` old that sealed `messages` messages are due for a rekey.
pub fn rekey_due(age: Duration, messages: u64, options: &ConnectOptions) -> bool {
    age >= options.rekey_after || messages >= options.rekey_after_messages
}

/// How often the rekey loop looks at the keys: a quarter of the rekey age, within 10 ms..1 s.
fn poll_interval(options: &ConnectOptions) -> Duration {
    (options.rekey_after / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
}

impl ClientConnection {
    /// Rekeys the session whenever its keys are due; runs until sending fails. Spawn it beside
    /// the connection, like the keepalives. A re-handshake's new keys count as fresh.
    pub async fn run_rekeys(&self) -> Result<(), ConnectionError> {
        let poll = poll_interval(&self.options);
        let mut generation = self.key_generation();
        let mut keys_since = Instant::now();
        let mut last_init: Option<Instant> = None;
        loop {
            tokio::time::sleep(poll).await;
            let now = Instant::now();
            let current = self.key_generation();
            if current != generation {
                generation = current;
                keys_since = now;
                last_init = None;
            }
            let datagram = {
                let mut core = self.core();
                let due = rekey_due(
                    now.duration_since(keys_since),
                    core.messages_under_current_keys(),
                    &self.options,
                );
                let waited = last_init.is_none_or(|at| now >= at + self.options.rekey_wait);
                let pending = core.rekey_pending();
                if !due || core.pending_reattach().is_some() || (pending && !waited) {
                    continue;
                }
                (core.rekey_init()?, self.current_socket())
            };
            tracing::debug!(
                session = format_args!("{:#x}", self.session_id()),
                "rekey requested"
            );
            send(&datagram.1, &datagram.0).await?;
            self.stats.sent(0);
            last_init = Some(now);
        }
    }

    /// Holds `packets` while a rekey is pending and the hold has time and room left; otherwise
    /// says to send them after whatever was held.
    pub(super) fn hold_or_release(&self, packets: &Packets) -> Upstream {
        let pending = self.core().rekey_pending();
        let mut held = self.held.lock().expect("held packets lock poisoned");
        let now = Instant::now();
        let since = *held.since.get_or_insert(now);
        let room = held.packets.len() + packets.iter().count() <= MAX_HELD_PACKETS;
        if pending && room && now < since + self.options.rekey_hold {
            held.packets.extend(packets.iter().map(<[u8]>::to_vec));
            return Upstream::Held;
        }
        held.since = None;
        Upstream::Send {
            earlier: std::mem::take(&mut held.packets),
        }
    }

    /// The packets held so far, released.
    pub(super) fn take_held(&self) -> Vec<Vec<u8>> {
        let mut held = self.held.lock().expect("held packets lock poisoned");
        held.since = None;
        std::mem::take(&mut held.packets)
    }

    /// Seals and sends held packets in order, under the keys current now.
    pub(super) async fn send_held(&self, packets: Vec<Vec<u8>>) -> Result<(), ConnectionError> {
        for packet in packets {
            self.send(&packet).await?;
        }
        Ok(())
    }

    /// Identifies the current keys: the session and how many rekeys it completed.
    fn key_generation(&self) -> (u64, u64) {
        let core = self.core();
        (core.session_id(), core.rekeys_completed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_due_by_age_or_by_messages_whichever_first() {
        let options = ConnectOptions {
            rekey_after: Duration::from_secs(120),
            rekey_after_messages: 1_000,
            ..ConnectOptions::default()
        };
        let cases = [
            (119, 999, false),
            (120, 0, true),
            (0, 1_000, true),
            (0, 0, false),
        ];
        for (secs, messages, due) in cases {
            assert_eq!(
                rekey_due(Duration::from_secs(secs), messages, &options),
                due,
                "{secs} s, {messages} messages"
            );
        }
        assert_eq!(poll_interval(&options), Duration::from_secs(1));
        let fast = ConnectOptions {
            rekey_after: Duration::from_millis(200),
            ..options
        };
        assert_eq!(poll_interval(&fast), Duration::from_millis(50));
    }
}
