//! Per-client rate limiting for WebSocket frames: a token bucket per connection.
//!
//! It lives in the warm function's memory. API Gateway may spread one connection's
//! frames over several containers, so the effective limit is at most N × the rate for
//! N containers: a cheap guard against a chatty client, with no write per frame.
//! The stage's throttling (template.yaml) bounds the whole API.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl RateLimiter {
    pub fn new(per_second: f64, burst: u32) -> Self {
        Self {
            per_second: per_second.max(0.001),
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `client`; false if it has none left (the frame is refused).
    pub fn allow(&self, client: &str, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap();
        if buckets.len() > 50_000 {
            // Idle buckets are full again anyway; forgetting them changes nothing.
            let idle = Duration::from_secs_f64(self.burst / self.per_second);
            buckets.retain(|_, b| now.saturating_duration_since(b.updated) < idle);
        }
        let bucket = buckets.entry(client.to_owned()).or_insert(Bucket {
            tokens: self.burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    pub fn forget(&self, client: &str) {
        self.buckets.lock().unwrap().remove(client);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_steady_rate_per_client() {
        let limiter = RateLimiter::new(2.0, 5);
        let t0 = Instant::now();
        let allowed = (0..8).filter(|_| limiter.allow("a", t0)).count();
        assert_eq!(allowed, 5, "the burst");
        assert!(limiter.allow("b", t0), "clients are independent");
        assert!(!limiter.allow("a", t0 + Duration::from_millis(400)));
        assert!(
            limiter.allow("a", t0 + Duration::from_millis(500)),
            "one token per 0.5 s"
        );
        assert!(!limiter.allow("a", t0 + Duration::from_millis(600)));
        let later = t0 + Duration::from_secs(60);
        assert_eq!(
            (0..8).filter(|_| limiter.allow("a", later)).count(),
            5,
            "refills to the burst, no more"
        );
    }

    #[test]
    fn forgetting_a_client_resets_it() {
        let limiter = RateLimiter::new(1.0, 1);
        let t0 = Instant::now();
        assert!(limiter.allow("a", t0));
        assert!(!limiter.allow("a", t0));
        limiter.forget("a");
        assert!(limiter.allow("a", t0));
    }
}
