//! A worker's share of the channel quota, kept by its execution environment across
//! invocations.
//!
//! A Map runs at most `n` workers at once (the launcher's plan for the page: `maxConcurrency`, or
//! fewer when the page has fewer batches or objects), each paced at `quota ÷ n`.
//! A Lambda execution environment serves one invocation at a time and is reused for the next
//! object, so its rate limiter is one share of the quota over time: while an invocation claims
//! its object, opens it and records it in the ledger, the limiter banks what it did not send,
//! and the next object spends it. Per-invocation limiters would either start each object with
//! a fresh burst (the sum of the shares then exceeds the quota at every object boundary) or
//! start empty and leave the quota unused during those fixed costs.
//!
//! The bank is bounded by one second of the share. Flows that each conform to a token bucket
//! of rate `r_i` and depth `b_i` add up to one that conforms to rate `Σ r_i` and depth `Σ b_i`,
//! so with depths of at most one second of each share the workers together never exceed the
//! channel's own bucket of one second of its quota. A new environment starts with one batch in
//! hand, not a full second, because environments come and go.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// The rate limiters of one execution environment, one per channel and rate share.
///
/// Build it once per process (a Lambda function's `main`), beside the SDK clients, and pass it
/// to every invocation; the local stack keeps one per emulated execution environment.
#[derive(Debug, Default)]
pub struct Pacing {
    limiters: Mutex<HashMap<(String, u32), Arc<DefaultDirectRateLimiter>>>,
}

impl Pacing {
    /// A new environment's pacing, holding no limiter yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The limiter for `rate` messages per second on `channel`, created with `first_batch`
    /// messages in hand the first time this environment sees that channel and rate.
    pub fn limiter(
        &self,
        channel: &str,
        rate: NonZeroU32,
        first_batch: NonZeroU32,
    ) -> Arc<DefaultDirectRateLimiter> {
        let mut limiters = self.limiters.lock().unwrap_or_else(|p| p.into_inner());
        limiters
            .entry((channel.to_owned(), rate.get()))
            .or_insert_with(|| Arc::new(new_limiter(rate, first_batch)))
            .clone()
    }
}

/// A limiter of `rate` per second banking up to one second, holding `in_hand` at the start.
fn new_limiter(rate: NonZeroU32, in_hand: NonZeroU32) -> DefaultDirectRateLimiter {
    let limiter = RateLimiter::direct(Quota::per_second(rate));
    if let Some(spend) = NonZeroU32::new(rate.get().saturating_sub(in_hand.get())) {
        // `spend` never exceeds the burst (the rate), so this always succeeds.
        let _ = limiter.check_n(spend);
    }
    limiter
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(value: u32) -> NonZeroU32 {
        NonZeroU32::new(value).unwrap()
    }

    #[test]
    fn a_new_environment_holds_exactly_one_batch() {
        let pacing = Pacing::new();
        let limiter = pacing.limiter("ch", n(1_000), n(100));
        assert!(limiter.check_n(n(100)).unwrap().is_ok());
        assert!(limiter.check_n(n(10)).unwrap().is_err());
    }

    #[test]
    fn a_rate_no_larger_than_a_batch_starts_with_it_in_hand() {
        let limiter = Pacing::new().limiter("ch", n(30), n(30));
        assert!(limiter.check_n(n(30)).unwrap().is_ok());
        assert!(limiter.check_n(n(1)).unwrap().is_err());
    }

    #[test]
    fn the_same_channel_and_rate_share_one_limiter_across_invocations() {
        let pacing = Pacing::new();
        let first = pacing.limiter("ch", n(1_000), n(100));
        assert!(first.check_n(n(100)).unwrap().is_ok());
        // The next invocation finds the bucket the last one spent.
        let second = pacing.limiter("ch", n(1_000), n(100));
        assert!(Arc::ptr_eq(&first, &second));
        assert!(second.check_n(n(100)).unwrap().is_err());
        // Another channel or share is paced on its own.
        assert!(!Arc::ptr_eq(
            &first,
            &pacing.limiter("other", n(1_000), n(100))
        ));
        assert!(!Arc::ptr_eq(&first, &pacing.limiter("ch", n(500), n(100))));
    }

    #[test]
    fn what_an_idle_environment_banks_is_capped_at_one_second() {
        let limiter = Pacing::new().limiter("ch", n(1_000), n(100));
        std::thread::sleep(std::time::Duration::from_millis(1_300));
        assert!(limiter.check_n(n(1_000)).unwrap().is_ok());
        assert!(limiter.check_n(n(50)).unwrap().is_err());
    }
}
