//! Unauthenticated junk is limited before it costs an fsync each. Every refused call is
//! recorded (a refusal is an audit event), up to a rate per source address: past it, the
//! refusal is answered `ThrottlingException` without being recorded, counted in
//! `cairn_refusals_throttled_total`, and summarised in the log. A client that signs its
//! requests is never limited here.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Refusals recorded per second per source address, and the burst allowed above it.
const REFUSALS_PER_SECOND: f64 = 20.0;
const BURST: f64 = 200.0;
/// Addresses remembered at most; past this the memory starts over (forgetting only gives
/// addresses a fresh burst).
const MAX_ADDRESSES: usize = 10_000;

#[derive(Default)]
pub struct RefusalLimiter {
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RefusalLimiter {
    /// Whether a refusal from `address` is recorded (`true`) or throttled.
    pub fn allow(&self, address: IpAddr) -> bool {
        self.allow_at(address, Instant::now())
    }

    fn allow_at(&self, address: IpAddr, now: Instant) -> bool {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_ADDRESSES && !buckets.contains_key(&address) {
            buckets.clear();
        }
        let bucket = buckets.entry(address).or_insert(Bucket {
            tokens: BURST,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * REFUSALS_PER_SECOND).min(BURST);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            metrics::counter!("cairn_refusals_throttled_total").increment(1);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_burst_is_recorded_then_the_rate_and_other_addresses_are_unaffected() {
        let limiter = RefusalLimiter::default();
        let start = Instant::now();
        let junk: IpAddr = "192.0.2.1".parse().unwrap();
        let allowed = (0..300).filter(|_| limiter.allow_at(junk, start)).count();
        assert_eq!(allowed, BURST as usize);
        assert!(limiter.allow_at("192.0.2.2".parse().unwrap(), start));
        let later = start + Duration::from_secs(1);
        let refilled = (0..100).filter(|_| limiter.allow_at(junk, later)).count();
        assert_eq!(refilled, REFUSALS_PER_SECOND as usize);
    }
}
