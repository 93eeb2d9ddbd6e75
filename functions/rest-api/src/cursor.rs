//! The opaque pagination cursor: base64url(JSON) of where the previous page ended.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use catalog_core::ports::PageKey;
use serde::{Deserialize, Serialize};

use crate::errors::ApiError;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Cursor {
    after: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    category: Option<String>,
}

pub fn encode(key: &PageKey) -> String {
    let cursor = Cursor {
        after: key.product_id.clone(),
        category: key.category.clone(),
    };
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&cursor).expect("a cursor serializes"))
}

/// Reads a cursor given back by a client; it must come from a listing of the same category.
pub fn decode(cursor: &str, category: Option<&str>) -> Result<PageKey, ApiError> {
    let bad = |why: &str| {
        ApiError::bad_request(
            "bad_cursor",
            format!("cursor is not valid: {why}; use the nextCursor of a previous page"),
        )
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| bad("not base64url"))?;
    let cursor: Cursor = serde_json::from_slice(&bytes).map_err(|_| bad("unreadable"))?;
    if !crate::valid_id(&cursor.after) {
        return Err(bad("unreadable"));
    }
    if cursor.category.as_deref() != category {
        return Err(bad("it belongs to a listing with another category filter"));
    }
    Ok(PageKey {
        product_id: cursor.after,
        category: cursor.category,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_and_without_a_category() {
        for category in [None, Some("tea".to_owned())] {
            let key = PageKey {
                product_id: "p-020".into(),
                category: category.clone(),
            };
            assert_eq!(decode(&encode(&key), category.as_deref()).unwrap(), key);
        }
    }

    #[test]
    fn refuses_garbage_tampering_and_a_foreign_category() {
        let tea = encode(&PageKey {
            product_id: "p-020".into(),
            category: Some("tea".into()),
        });
        let forged = URL_SAFE_NO_PAD.encode(br#"{"after":"x\"; DROP","category":"tea"}"#);
        let extra = URL_SAFE_NO_PAD.encode(br#"{"after":"p-1","admin":true}"#);
        for (cursor, category) in [
            ("%%%", None),
            ("bm90IGpzb24", None),
            (tea.as_str(), None),
            (tea.as_str(), Some("coffee")),
            (forged.as_str(), Some("tea")),
            (extra.as_str(), None),
        ] {
            let err = decode(cursor, category).unwrap_err();
            assert_eq!((err.status, err.code), (400, "bad_cursor"), "{cursor}");
        }
    }
}
