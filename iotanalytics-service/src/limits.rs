//! Channel quotas (token buckets) and fault injection, both adjustable while the service runs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::config::{FaultConfig, ServiceConfig};

/// A bucket holding one second of a channel's rate.
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        Self {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            last: Instant::now(),
        }
    }

    /// Takes `n` tokens if the bucket can afford them. A batch larger than the whole bucket
    /// goes through when the bucket is full and leaves a debt, so the long-run rate holds.
    fn try_take(&mut self, n: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        if self.tokens >= n.min(self.rate) {
            self.tokens -= n;
            true
        } else {
            false
        }
    }
}

struct Inner {
    default_quota: u32,
    quotas: HashMap<String, u32>,
    buckets: HashMap<String, Bucket>,
    default_faults: FaultConfig,
    faults: HashMap<String, FaultConfig>,
    rng: StdRng,
}

/// Run-time controls: channel quotas and injected faults.
pub struct Controls {
    inner: Mutex<Inner>,
}

/// What the fault injector decided for one request.
#[derive(Debug, Default)]
pub struct FaultDecision {
    /// Delay to add before answering.
    pub latency: std::time::Duration,
    /// Answer `ThrottlingException`.
    pub throttle: bool,
    /// Answer `InternalFailureException`.
    pub server_error: bool,
    /// Indices of messages to reject individually.
    pub failed_entries: Vec<usize>,
}

impl Controls {
    pub(crate) fn new(config: &ServiceConfig) -> Self {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        Self {
            inner: Mutex::new(Inner {
                default_quota: config.channel_quota,
                quotas: config.channel_quotas.clone(),
                buckets: HashMap::new(),
                default_faults: config.faults,
                faults: config.channel_faults.clone(),
                rng,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the quota (messages/s) of every channel without an override.
    pub fn set_default_quota(&self, messages_per_second: u32) {
        let mut inner = self.lock();
        inner.default_quota = messages_per_second;
        inner.buckets.clear();
    }

    /// Sets (`Some`) or removes (`None`) one channel's quota override.
    pub fn set_channel_quota(&self, channel: &str, messages_per_second: Option<u32>) {
        let mut inner = self.lock();
        match messages_per_second {
            Some(q) => inner.quotas.insert(channel.to_owned(), q),
            None => inner.quotas.remove(channel),
        };
        inner.buckets.remove(channel);
    }

    /// Sets the faults injected on every channel without an override.
    pub fn set_default_faults(&self, faults: FaultConfig) {
        self.lock().default_faults = faults;
    }

    /// Sets (`Some`) or removes (`None`) one channel's fault override.
    pub fn set_channel_faults(&self, channel: &str, faults: Option<FaultConfig>) {
        let mut inner = self.lock();
        match faults {
            Some(f) => inner.faults.insert(channel.to_owned(), f),
            None => inner.faults.remove(channel),
        };
    }

    /// Reseeds the fault injection generator, making the following decisions reproducible.
    pub fn reseed(&self, seed: u64) {
        self.lock().rng = StdRng::seed_from_u64(seed);
    }

    /// Charges `messages` to the channel's bucket; false means the request must be throttled.
    pub(crate) fn admit(&self, channel: &str, messages: usize) -> bool {
        let mut inner = self.lock();
        let quota = inner
            .quotas
            .get(channel)
            .copied()
            .unwrap_or(inner.default_quota);
        let bucket = inner
            .buckets
            .entry(channel.to_owned())
            .or_insert_with(|| Bucket::new(quota));
        bucket.try_take(messages as f64, Instant::now())
    }

    /// Draws the faults for one request of `messages` messages on `channel`.
    pub(crate) fn faults_for(&self, channel: &str, messages: usize) -> FaultDecision {
        let mut inner = self.lock();
        let faults = inner
            .faults
            .get(channel)
            .copied()
            .unwrap_or(inner.default_faults);
        if faults.is_off() {
            return FaultDecision::default();
        }
        let rng = &mut inner.rng;
        let mut decision = FaultDecision {
            latency: faults.latency,
            throttle: faults.throttle_probability > 0.0
                && rng.random_bool(faults.throttle_probability.min(1.0)),
            server_error: faults.server_error_probability > 0.0
                && rng.random_bool(faults.server_error_probability.min(1.0)),
            failed_entries: Vec::new(),
        };
        if faults.entry_error_probability > 0.0 {
            let p = faults.entry_error_probability.min(1.0);
            decision.failed_entries = (0..messages).filter(|_| rng.random_bool(p)).collect();
        }
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_bucket_refills_at_its_rate_and_caps_at_one_second() {
        let start = Instant::now();
        let mut b = Bucket::new(100);
        assert!(b.try_take(100.0, start));
        assert!(!b.try_take(1.0, start));
        assert!(b.try_take(50.0, start + Duration::from_millis(500)));
        assert!(!b.try_take(10.0, start + Duration::from_millis(500)));
        // After a long pause the bucket holds one second, not more.
        assert!(b.try_take(100.0, start + Duration::from_secs(60)));
        assert!(!b.try_take(1.0, start + Duration::from_secs(60)));
    }

    #[test]
    fn seeded_fault_decisions_repeat() {
        let mut config = ServiceConfig::new("/nonexistent");
        config.seed = Some(7);
        config.faults.entry_error_probability = 0.5;
        let a = Controls::new(&config).faults_for("c", 100).failed_entries;
        let b = Controls::new(&config).faults_for("c", 100).failed_entries;
        assert_eq!(a, b);
        assert!(!a.is_empty() && a.len() < 100);
    }
}
