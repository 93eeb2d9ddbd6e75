//! The presigned-URL cache of a warm function: pure logic, no AWS.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Presigned URLs kept by the warm function until `margin` before they expire, so
/// repeated photo requests skip the signing work and answer with the same URL
/// (which browsers and CDNs can then cache too).
pub struct PresignCache {
    pub ttl: Duration,
    pub margin: Duration,
    entries: Mutex<HashMap<String, (String, Instant)>>,
}

impl PresignCache {
    pub fn new(ttl: Duration, margin: Duration) -> Self {
        assert!(
            margin < ttl,
            "the margin must be shorter than the URL's lifetime"
        );
        Self {
            ttl,
            margin,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn lookup(&self, key: &str, now: Instant) -> Option<String> {
        let entries = self.entries.lock().unwrap();
        let (url, expires) = entries.get(key)?;
        (now + self.margin < *expires).then(|| url.clone())
    }

    pub fn store(&self, key: &str, url: String, signed_at: Instant) {
        let mut entries = self.entries.lock().unwrap();
        // Keys are per photo version, so old ones only expire; drop them when the map grows.
        if entries.len() > 10_000 {
            entries.retain(|_, (_, expires)| *expires > signed_at);
        }
        entries.insert(key.to_owned(), (url, signed_at + self.ttl));
    }

    /// Seconds a client may reuse the redirect: never beyond the cached URL's margin.
    pub fn max_age_secs(&self) -> u64 {
        self.margin.as_secs().min(60)
    }
}

/// How long presigned photo URLs live (at least 2 minutes), and how early the cache replaces them.
pub fn presign_cache_from(ttl_secs: u64) -> PresignCache {
    let ttl = Duration::from_secs(ttl_secs.max(120));
    PresignCache::new(ttl, ttl / 5)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_serves_until_the_margin_before_expiry() {
        let cache = PresignCache::new(Duration::from_secs(900), Duration::from_secs(120));
        let t0 = Instant::now();
        assert_eq!(cache.lookup("k", t0), None);
        cache.store("k", "url-1".into(), t0);
        assert_eq!(
            cache.lookup("k", t0 + Duration::from_secs(779)).as_deref(),
            Some("url-1")
        );
        assert_eq!(
            cache.lookup("k", t0 + Duration::from_secs(780)),
            None,
            "inside the margin: sign again"
        );
        assert_eq!(cache.lookup("other", t0), None);
        assert!(cache.max_age_secs() <= 120);
    }
}
