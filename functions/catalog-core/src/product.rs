use serde::{Deserialize, Serialize};

/// A catalogue product as stored in the products table and pushed to clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub product_id: String,
    pub name: String,
    pub category: String,
    pub price_cents: i64,
    pub currency: String,
    pub stock: i64,
    /// The current original photo in the photos bucket.
    pub photo_key: String,
    /// Its thumbnail, once the thumbnailer has made it.
    #[serde(default)]
    pub thumb_key: Option<String>,
    /// Counts photo uploads; 0 for the seeded photo.
    #[serde(default)]
    pub photo_version: u64,
    /// Version of the last change applied to this state; 0 for a freshly seeded product.
    pub version: u64,
    /// RFC 3339 time of the last applied change (or of the seed).
    pub updated_at: String,
}
