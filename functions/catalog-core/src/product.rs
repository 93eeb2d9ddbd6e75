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
    pub photo_key: String,
    /// Version of the last change applied to this state; 0 for a freshly seeded product.
    pub version: u64,
    /// RFC 3339 time of the last applied change (or of the seed).
    pub updated_at: String,
}
