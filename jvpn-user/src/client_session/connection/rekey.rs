//! When the client rekeys (docs/rekey.md): once its keys are [`ConnectOptions::rekey_after`] old
//! or sealed [`ConnectOptions::rekey_after_messages`] messages, it sends a REKEY_INIT, and another
//! every [`ConnectOptions::rekey_wait`] until a REKEY_ACK switches the keys (the receive loop
//! handles the ACK). It does not start one while a reattach is pending: a jump and a rekey would
//! both claim the next version.

use super::ClientConnection;
use crate::client_session::birth::send;
use crate::client_session::connection_error::ConnectionError;
use crate::client_session::options::ConnectOptions;
use std::time::Duration;
use tokio::time::Instant;

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
