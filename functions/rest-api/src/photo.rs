//! Pure photo logic: what an upload is, validators for conditional GETs.

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
}
