//! How many REJECT replies a session may send, per source address (issue 8, defect 6).
//!
//! A REJECT answers only an authenticated message, but an on-path attacker can replay one from
//! any address it likes (a replayed DATA from a new address is `TRANSPORT_MISMATCH` in XDP, which
//! [`super::roaming`] answers). One budget per session let such a replayer spend the REJECTs the
//! real client needs, such as the one telling it that its NAT moved; one budget per address alone
//! would let it make the gateway send without bound. So:
//! - each source address has its own bucket of [`REJECTS_PER_SECOND`];
//! - a session keeps at most [`MAX_REJECT_SOURCES`] buckets, and when it needs another the least
//!   recently used one goes, never the one of the session's bound transport, so the client's own
//!   address keeps its budget however many addresses a replayer uses;
//! - at most [`NEW_REJECT_SOURCES_PER_SECOND`] buckets are created per session per second (the
//!   bound transport's aside), so rotating addresses does not refill budgets. A session sends at
//!   most `(MAX_REJECT_SOURCES + NEW_REJECT_SOURCES_PER_SECOND + 1) * REJECTS_PER_SECOND` REJECTs
//!   a second, whatever arrives.
//!
//! Time is the controller's monotonic clock ([`super::clock`]), in whole seconds.

use crate::session::Millis;
use std::net::SocketAddr;

/// REJECT replies one source address may receive per second per session (burst equal).
pub const REJECTS_PER_SECOND: u32 = 10;
/// Source addresses a session keeps a REJECT bucket for.
pub const MAX_REJECT_SOURCES: usize = 8;
/// New source buckets a session may create per second, its bound transport's aside.
pub const NEW_REJECT_SOURCES_PER_SECOND: u32 = 4;

/// One source address's bucket.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    addr: SocketAddr,
    /// The second `tokens` belong to.
    second: Millis,
    tokens: u32,
    /// When it was last asked for a token, in [`RejectBudget::uses`]: the eviction order.
    last_use: u64,
}

/// A session's REJECT buckets, one per recent source address (see the module doc).
#[derive(Debug, Default)]
pub struct RejectBudget {
    buckets: Vec<Bucket>,
    /// The second `created` counts buckets of.
    created_second: Millis,
    /// Buckets created in `created_second`, the bound transport's aside.
    created: u32,
    /// Requests so far: a logical clock for least-recently-used eviction.
    uses: u64,
}

impl RejectBudget {
    /// Whether a REJECT may go to `to` at `now` (monotonic ms); spends a token if so. `bound` is
    /// the session's bound transport, whose bucket is never evicted or refused creation.
    pub fn take(&mut self, to: SocketAddr, bound: SocketAddr, now: Millis) -> bool {
        let second = now / 1000;
        self.uses += 1;
        let index = match self.buckets.iter().position(|b| b.addr == to) {
            Some(i) => i,
            None => {
                if to != bound {
                    if self.created_second != second {
                        self.created_second = second;
                        self.created = 0;
                    }
                    if self.created >= NEW_REJECT_SOURCES_PER_SECOND {
                        return false;
                    }
                    self.created += 1;
                }
                if self.buckets.len() >= MAX_REJECT_SOURCES {
                    let oldest = self
                        .buckets
                        .iter()
                        .enumerate()
                        .filter(|(_, b)| b.addr != bound)
                        .min_by_key(|(_, b)| b.last_use)
                        .map(|(i, _)| i);
                    if let Some(i) = oldest {
                        self.buckets.swap_remove(i);
                    }
                }
                self.buckets.push(Bucket {
                    addr: to,
                    second,
                    tokens: REJECTS_PER_SECOND,
                    last_use: 0,
                });
                self.buckets.len() - 1
            }
        };
        let bucket = &mut self.buckets[index];
        bucket.last_use = self.uses;
        if bucket.second != second {
            bucket.second = second;
            bucket.tokens = REJECTS_PER_SECOND;
        }
        if bucket.tokens == 0 {
            return false;
        }
        bucket.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from(([198, 51, (i >> 8) as u8, i as u8], 40_000))
    }

    const CLIENT: &str = "192.0.2.1:40000";

    fn sent(budget: &mut RejectBudget, to: SocketAddr, tries: u32, now: Millis) -> u32 {
        let bound = CLIENT.parse().expect("addr");
        (0..tries).filter(|_| budget.take(to, bound, now)).count() as u32
    }

    /// A replayer sending from a thousand addresses neither spends the client's REJECTs nor
    /// makes the gateway send more than the bound in a second.
    #[test]
    fn many_sources_cannot_spend_the_clients_budget_or_the_bound() {
        let client: SocketAddr = CLIENT.parse().expect("addr");
        let mut budget = RejectBudget::default();
        let mut spoofed = 0;
        for i in 0..1000 {
            spoofed += sent(&mut budget, addr(i), 100, 5_500);
        }
        assert_eq!(
            spoofed,
            NEW_REJECT_SOURCES_PER_SECOND * REJECTS_PER_SECOND,
            "new sources are limited per second"
        );
        assert_eq!(
            sent(&mut budget, client, 100, 5_600),
            REJECTS_PER_SECOND,
            "the bound transport has its own full budget"
        );
        // Next second, again: the client's bucket survived every eviction.
        for i in 1000..2000 {
            sent(&mut budget, addr(i), 100, 6_100);
        }
        assert!(budget.buckets.iter().any(|b| b.addr == client));
        assert!(budget.buckets.len() <= MAX_REJECT_SOURCES);
        assert_eq!(sent(&mut budget, client, 100, 6_200), REJECTS_PER_SECOND);
    }

    /// Per source, not per session: one busy address does not silence another.
    #[test]
    fn each_source_has_its_own_bucket_refilled_each_second() {
        let mut budget = RejectBudget::default();
        assert_eq!(sent(&mut budget, addr(1), 100, 1_000), REJECTS_PER_SECOND);
        assert_eq!(sent(&mut budget, addr(2), 100, 1_999), REJECTS_PER_SECOND);
        assert_eq!(sent(&mut budget, addr(1), 100, 1_999), 0);
        assert_eq!(sent(&mut budget, addr(1), 100, 2_000), REJECTS_PER_SECOND);
    }

    /// Over many seconds the total stays within the stated bound.
    #[test]
    fn the_total_per_second_is_bounded() {
        let mut budget = RejectBudget::default();
        let bound =
            (MAX_REJECT_SOURCES as u32 + NEW_REJECT_SOURCES_PER_SECOND + 1) * REJECTS_PER_SECOND;
        let client: SocketAddr = CLIENT.parse().expect("addr");
        for second in 0..20u64 {
            let now = second * 1000;
            let mut total = sent(&mut budget, client, 50, now);
            for i in 0..200 {
                // A few addresses come back every second; most are new.
                let source = if i % 10 == 0 {
                    i
                } else {
                    second as u32 * 1000 + i
                };
                total += sent(&mut budget, addr(source), 20, now);
            }
            assert!(total <= bound, "second {second}: {total} REJECTs > {bound}");
        }
    }
}
