//! After the maps were lost: the gateway challenges every RECOVERING session at its last binding,
//! paced, so a reboot costs each client about one round trip and a commit instead of its
//! silence timeout (issue 12).
//!
//! A start that lost the maps moves every live session to RECOVERING ([`super::reconcile`]), and
//! its clients, whose DATA and KEEPALIVE are now refused, used to learn it only from three
//! keepalive intervals of silence. The gateway knows each session's last binding, so it sends a
//! PATH_CHALLENGE there at once, sealed under the session's keys at the RECOVERING version, with
//! the attempt [`GATEWAY_CHALLENGE_ATTEMPT`] (docs/protocol.md, "After the gateway lost its
//! maps"). The client answers with a PATH_RESPONSE from where the challenge reached it, and that
//! response goes through the reattach path unchanged ([`super::reattach`]): its seal, its nonce,
//! the token, the attempt and the source address must all match, then the compare-and-set moves
//! the session to ATTACHED (version +1, audited as a reattach). So the challenge itself moves
//! nothing: a challenge reflected back to the gateway does not open (wrong direction's keys), and
//! one sent to an old or spoofed binding is answered by no one who holds the keys.
//!
//! Every session RECOVERING after the start-up reconcile is challenged, whichever start moved it
//! there. [`Controller::challenge_recovering`] decides one challenge and returns its effects (the
//! pending challenge is recorded, the sealed PATH_CHALLENGE is an [`Effect::Send`]); [`run`], in
//! the shell, paces the steps and has the [`Executor`] perform them. Challenges leave through a
//! token bucket ([`Pacer`], `jvpn gateway --recovery-challenges N`
//! per second, [`DEFAULT_RECOVERY_CHALLENGES_PER_SECOND`] by default, 0 turns them off), so a
//! million sessions do not flood the link or the store with commits. A session still RECOVERING
//! after a round is challenged again, for [`RECOVERY_ROUNDS`] rounds in all; a client that never
//! answers falls back to its own reattach after silence, as before.

use super::core::Controller;
use super::effect::Effect;
use super::executor::Executor;
use super::live::{PendingChallenge, CHALLENGE_LIFETIME_MS};
use crate::session::{Millis, SessionId};
use jvpn_common::control::{PathChallenge, GATEWAY_CHALLENGE_ATTEMPT, PATH_TOKEN_LEN};
use jvpn_common::maps::SessionState;
use jvpn_common::wire::Be64;
use rand::RngCore;
use std::sync::Arc;
use std::time::Duration;

/// Recovery challenges sent per second by default: about 0.5 MB/s of challenges, and as many
/// commits a second as their answers cause; 65,536 sessions are challenged in 16 s.
pub const DEFAULT_RECOVERY_CHALLENGES_PER_SECOND: u32 = 4_096;
/// Challenges that may leave back to back before the pace applies.
pub const RECOVERY_BURST: u32 = 64;
/// Rounds over the sessions still RECOVERING; a challenge or its answer may be lost.
pub const RECOVERY_ROUNDS: u32 = 3;

/// A token bucket over the controller's monotonic clock: `per_second` tokens a second, at most
/// [`RECOVERY_BURST`] saved. Counts in thousandths of a token so that any rate refills exactly
/// per millisecond.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pacer {
    per_second: u64,
    milli_tokens: u64,
    at: Millis,
}

impl Pacer {
    const ONE: u64 = 1_000;

    /// A full bucket at `now`. `per_second` must be at least 1.
    pub fn new(per_second: u32, now: Millis) -> Self {
        Self {
            per_second: u64::from(per_second.max(1)),
            milli_tokens: Self::capacity(),
            at: now,
        }
    }

    fn capacity() -> u64 {
        u64::from(RECOVERY_BURST) * Self::ONE
    }

    /// Takes a token at `now`, or says how many milliseconds until one is there.
    pub fn take(&mut self, now: Millis) -> Result<(), Millis> {
        let elapsed = now.saturating_sub(self.at);
        self.at = self.at.max(now);
        // per_second tokens a second are per_second thousandths a millisecond.
        let refill = elapsed.saturating_mul(self.per_second);
        self.milli_tokens = self
            .milli_tokens
            .saturating_add(refill)
            .min(Self::capacity());
        if self.milli_tokens >= Self::ONE {
            self.milli_tokens -= Self::ONE;
            Ok(())
        } else {
            Err((Self::ONE - self.milli_tokens).div_ceil(self.per_second))
        }
    }
}

impl Controller {
    /// Ids of every session that is RECOVERING now.
    pub fn recovering_ids(&self) -> Vec<u64> {
        self.sessions
            .lock()
            .iter()
            .filter(|(_, live)| live.session.state == SessionState::Recovering)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Challenges session `id` at its last binding if it is still RECOVERING and no challenge to
    /// that address is outstanding (the client's own reattach may be under way there): the
    /// challenge's effects, none if there is nothing to challenge.
    pub fn challenge_recovering(&self, id: u64, now: Millis) -> Vec<Effect> {
        let mut out = Vec::new();
        let mut token = [0u8; PATH_TOKEN_LEN];
        self.with_rng(|rng| rng.fill_bytes(&mut token));
        let (addr, version) = {
            let mut table = self.sessions.lock();
            let Some(live) = table.get_mut(&id) else {
                return out;
            };
            let addr = live.session.binding.to_socket_addr();
            let outstanding = live
                .challenges
                .iter()
                .any(|c| c.addr == addr && c.expires_at > now);
            if live.session.state != SessionState::Recovering
                || outstanding
                || addr.port() == 0
                || addr.ip().is_unspecified()
            {
                return out;
            }
            let version = live.session.state_version;
            live.add_challenge(PendingChallenge {
                token,
                addr,
                attempt: GATEWAY_CHALLENGE_ATTEMPT,
                version,
                expires_at: now + CHALLENGE_LIFETIME_MS,
            });
            (addr, version)
        };
        tracing::debug!(session = %SessionId::show(id), peer = %addr, state_version = version, "recovery challenge sent");
        let challenge = PathChallenge {
            token,
            attempt: Be64::new(GATEWAY_CHALLENGE_ATTEMPT),
        };
        self.send_body(id, addr, version, &challenge, &mut out);
        out
    }
}

/// Challenges every RECOVERING session at `per_second`, for [`RECOVERY_ROUNDS`] rounds (see the
/// module doc). Spawned at every start, after the reconcile: besides the sessions a lost map just
/// moved, it reaches those an earlier start moved and did not get to challenge before it died.
pub async fn run(exec: Arc<Executor>, per_second: u32) {
    if per_second == 0 {
        return;
    }
    let controller = exec.controller().clone();
    let clock = controller.clock();
    let mut pacer = Pacer::new(per_second, clock.now());
    for round in 1..=RECOVERY_ROUNDS {
        let ids = controller.recovering_ids();
        if ids.is_empty() {
            return;
        }
        let mut sent = 0usize;
        for id in &ids {
            loop {
                match pacer.take(clock.now()) {
                    Ok(()) => break,
                    Err(wait) => tokio::time::sleep(Duration::from_millis(wait)).await,
                }
            }
            let effects = controller.challenge_recovering(*id, clock.now());
            if !effects.is_empty() {
                sent += 1;
                exec.execute(effects).await;
            }
        }
        tracing::info!(
            round,
            recovering = ids.len(),
            challenged = sent,
            per_second,
            "challenged the RECOVERING sessions at their last binding"
        );
        // Answers arrive within the challenge's lifetime; only then is a session still
        // RECOVERING worth another challenge.
        if round < RECOVERY_ROUNDS {
            tokio::time::sleep(Duration::from_millis(CHALLENGE_LIFETIME_MS)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pacer_lets_a_burst_through_then_keeps_the_rate() {
        let mut pacer = Pacer::new(1_000, 0);
        for i in 0..RECOVERY_BURST {
            assert_eq!(pacer.take(0), Ok(()), "burst token {i}");
        }
        assert_eq!(pacer.take(0), Err(1), "one token a millisecond at 1,000/s");
        assert_eq!(pacer.take(1), Ok(()));
        assert_eq!(pacer.take(1), Err(1));
        // A second later: one second's worth, but never more than the burst.
        let sent = (0..10_000)
            .take_while(|_| pacer.take(1_001).is_ok())
            .count();
        assert_eq!(sent, RECOVERY_BURST as usize);
    }

    #[test]
    fn slow_paces_wait_whole_milliseconds_and_sum_to_the_rate() {
        let mut pacer = Pacer::new(3, 0);
        for _ in 0..RECOVERY_BURST {
            pacer.take(0).expect("burst");
        }
        assert_eq!(pacer.take(0), Err(334), "a third of a second, rounded up");
        let mut now = 0;
        let mut sent = 0;
        while now <= 10_000 {
            match pacer.take(now) {
                Ok(()) => sent += 1,
                Err(wait) => now += wait,
            }
        }
        assert_eq!(sent, 30, "3 a second over 10 s");
    }

    #[test]
    fn a_clock_that_goes_back_refills_nothing() {
        let mut pacer = Pacer::new(1_000, 5_000);
        for _ in 0..RECOVERY_BURST {
            pacer.take(5_000).expect("burst");
        }
        assert!(pacer.take(4_000).is_err());
        assert!(
            pacer.take(5_000).is_err(),
            "time before 5,000 s was not owed"
        );
        assert_eq!(pacer.take(5_001), Ok(()));
    }
}
