//! The one way the library tries a call again: a bounded number of attempts, with capped
//! exponential backoff and full jitter between them.

use std::future::Future;
use std::time::Duration;

/// How long to wait before each retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Always wait at least this long: a quota's period, zero where there is none.
    pub floor: Duration,
    /// The jitter range before the first retry; it doubles with each retry after.
    pub base: Duration,
    /// The largest jitter range.
    pub max: Duration,
}

impl Backoff {
    /// A short backoff for a call on the same object or entry that broke off or met a
    /// transient error: 50 ms doubling to 1 s.
    pub const SHORT: Self = Self {
        floor: Duration::ZERO,
        base: Duration::from_millis(50),
        max: Duration::from_secs(1),
    };

    /// The wait before retry number `retry` (1 before the second attempt): `floor` plus a
    /// uniform draw between zero and `base × 2^(retry-1)`, capped at `max` ("full jitter",
    /// so that callers throttled together do not come back together).
    pub fn delay(&self, retry: u32) -> Duration {
        let range = self
            .base
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
            .min(self.max);
        let millis = u64::try_from(range.as_millis()).unwrap_or(u64::MAX);
        self.floor + Duration::from_millis(rand::random_range(0..=millis))
    }
}

/// Calls `call` until it succeeds, fails with an error `retryable` refuses, or has been made
/// `attempts` times (at least once), waiting `backoff` between attempts. `what` names the
/// call in the log.
pub async fn retry<T, E, Fut>(
    what: &str,
    attempts: u32,
    backoff: Backoff,
    retryable: impl Fn(&E) -> bool,
    mut call: impl FnMut() -> Fut,
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(error) if attempt < attempts && retryable(&error) => {
                let delay = backoff.delay(attempt);
                tracing::debug!(
                    call = what,
                    attempt,
                    delay_ms = delay.as_millis() as u64,
                    "trying again"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
            result => return result,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const TINY: Backoff = Backoff {
        floor: Duration::ZERO,
        base: Duration::from_millis(1),
        max: Duration::from_millis(1),
    };

    #[test]
    fn the_first_retry_waits_at_most_the_base_delay() {
        let backoff = Backoff {
            floor: Duration::ZERO,
            base: Duration::from_millis(50),
            max: Duration::from_secs(5),
        };
        for _ in 0..200 {
            assert!(backoff.delay(1) <= Duration::from_millis(50));
            assert!(backoff.delay(3) <= Duration::from_millis(200));
            assert!(backoff.delay(30) <= Duration::from_secs(5));
        }
    }

    #[test]
    fn the_floor_is_always_waited() {
        let backoff = Backoff {
            floor: Duration::from_secs(1),
            base: Duration::from_millis(500),
            max: Duration::from_millis(500),
        };
        for retry in 1..50 {
            let delay = backoff.delay(retry);
            assert!(delay >= Duration::from_secs(1) && delay <= Duration::from_millis(1500));
        }
    }

    #[tokio::test]
    async fn a_retryable_error_is_tried_again_until_it_passes() {
        let calls = Cell::new(0);
        let result: Result<u32, &str> = retry(
            "test",
            5,
            TINY,
            |_| true,
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { if n < 3 { Err("broke") } else { Ok(n) } }
            },
        )
        .await;
        assert_eq!(result, Ok(3));
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_the_last_error_is_returned() {
        let calls = Cell::new(0);
        let result: Result<(), u32> = retry(
            "test",
            4,
            TINY,
            |_| true,
            || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move { Err(n) }
            },
        )
        .await;
        assert_eq!(result, Err(4));
    }

    #[tokio::test]
    async fn an_error_that_cannot_pass_is_returned_at_once() {
        let calls = Cell::new(0);
        let result: Result<(), &str> = retry(
            "test",
            4,
            TINY,
            |e| *e != "denied",
            || {
                calls.set(calls.get() + 1);
                async { Err("denied") }
            },
        )
        .await;
        assert_eq!((result, calls.get()), (Err("denied"), 1));
    }
}
