//! Pure photo logic: what an upload is, validators for conditional GETs, the presigned-URL cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImageKind {
    Png,
    Jpeg,
}

impl ImageKind {
    pub fn from_content_type(content_type: &str) -> Option<Self> {
        let essence = content_type.split(';').next().unwrap_or("").trim();
        match essence.to_ascii_lowercase().as_str() {
            "image/png" => Some(ImageKind::Png),
            "image/jpeg" | "image/jpg" => Some(ImageKind::Jpeg),
            _ => None,
        }
    }

    /// What the bytes are, by their signature; the declared type is not trusted alone.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(ImageKind::Png)
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            Some(ImageKind::Jpeg)
        } else {
            None
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            ImageKind::Png => "png",
            ImageKind::Jpeg => "jpg",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ImageKind::Png => "image/png",
            ImageKind::Jpeg => "image/jpeg",
        }
    }
}

/// Photo objects are never overwritten (each version has its own key), so the key is a strong validator.
pub fn etag(key: &str) -> String {
    format!("\"{}\"", key.replace(['/', '"'], "."))
}

/// Whether an `If-None-Match` header value matches `etag` (a list, `*`, or weak forms).
pub fn none_match(header: Option<&str>, etag: &str) -> bool {
    let Some(header) = header else { return false };
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_and_signatures() {
        assert_eq!(
            ImageKind::from_content_type("image/PNG"),
            Some(ImageKind::Png)
        );
        assert_eq!(
            ImageKind::from_content_type("image/jpeg; charset=binary"),
            Some(ImageKind::Jpeg)
        );
        assert_eq!(ImageKind::from_content_type("text/plain"), None);
        assert_eq!(
            ImageKind::sniff(b"\x89PNG\r\n\x1a\n...."),
            Some(ImageKind::Png)
        );
        assert_eq!(
            ImageKind::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageKind::Jpeg)
        );
        assert_eq!(ImageKind::sniff(b"GIF89a"), None);
        assert_eq!(ImageKind::sniff(b""), None);
    }

    #[test]
    fn if_none_match_forms() {
        let tag = etag("photos/thumb/p-001/v2.png");
        assert_eq!(tag, "\"photos.thumb.p-001.v2.png\"");
        assert!(none_match(Some(&tag), &tag));
        assert!(none_match(Some(&format!("\"x\", W/{tag}")), &tag));
        assert!(none_match(Some("*"), &tag));
        assert!(!none_match(Some("\"photos.thumb.p-001.v1.png\""), &tag));
        assert!(!none_match(None, &tag));
    }

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
