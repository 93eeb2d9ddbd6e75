use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The event types on the changes topic.
pub const PRODUCT_CHANGED: &str = "ProductChanged";
pub const PRODUCT_PHOTO_CHANGED: &str = "ProductPhotoChanged";

/// The two attributes the generator changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StockAndPrice {
    pub price_cents: i64,
    pub stock: i64,
}

/// One change of one product: the message that travels SNS → SQS → consumer.
///
/// `version` is the product's version after this change (previous + 1). Consumers
/// apply it only if it is newer than what they hold, which makes redelivery and
/// reordering harmless. Values are absolute ("set to X"), never deltas.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductChanged {
    pub event_type: String,
    pub change_id: String,
    pub product_id: String,
    pub version: u64,
    pub previous: StockAndPrice,
    pub current: StockAndPrice,
    pub changed_at: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChangeError {
    #[error("message body is not a ProductChanged event: {0}")]
    Undeserializable(String),
    #[error("unknown event type {0:?}")]
    UnknownEventType(String),
    #[error("impossible value: {0}")]
    ImpossibleValue(String),
}

/// A product's photo was replaced and its thumbnail made; published by the thumbnailer
/// once the product record points at the new photo. The URLs are presigned and expire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductPhotoChanged {
    pub event_type: String,
    /// The photo job's id: one job, one event.
    pub change_id: String,
    pub product_id: String,
    pub photo_version: u64,
    pub full_url: String,
    pub thumb_url: String,
    pub urls_expire_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
}

impl ProductPhotoChanged {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ProductPhotoChanged always serializes")
    }
}

/// Any event on the changes topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogEvent {
    Product(ProductChanged),
    Photo(ProductPhotoChanged),
}

impl CatalogEvent {
    /// Parses a queue message body. SNS raw delivery puts the event itself in the
    /// body; without raw delivery it is wrapped in an SNS notification envelope,
    /// which is unwrapped here so a misconfigured subscription still works.
    pub fn from_message_body(body: &str) -> Result<Self, ChangeError> {
        let undeserializable = |e: serde_json::Error| ChangeError::Undeserializable(e.to_string());
        let value: serde_json::Value = serde_json::from_str(body).map_err(undeserializable)?;
        let value = match (value.get("Type"), value.get("Message")) {
            (Some(t), Some(serde_json::Value::String(inner))) if t == "Notification" => {
                serde_json::from_str(inner).map_err(undeserializable)?
            }
            _ => value,
        };
        match value.get("eventType").and_then(|t| t.as_str()) {
            Some(PRODUCT_CHANGED) => {
                let change: ProductChanged =
                    serde_json::from_value(value).map_err(undeserializable)?;
                change.validate()?;
                Ok(CatalogEvent::Product(change))
            }
            Some(PRODUCT_PHOTO_CHANGED) => {
                let change: ProductPhotoChanged =
                    serde_json::from_value(value).map_err(undeserializable)?;
                if change.change_id.is_empty() || change.product_id.is_empty() {
                    return Err(ChangeError::ImpossibleValue(
                        "empty changeId or productId".to_owned(),
                    ));
                }
                Ok(CatalogEvent::Photo(change))
            }
            Some(other) => Err(ChangeError::UnknownEventType(other.to_owned())),
            None => Err(ChangeError::Undeserializable(
                "missing eventType".to_owned(),
            )),
        }
    }

    pub fn change_id(&self) -> &str {
        match self {
            CatalogEvent::Product(c) => &c.change_id,
            CatalogEvent::Photo(c) => &c.change_id,
        }
    }

    pub fn product_id(&self) -> &str {
        match self {
            CatalogEvent::Product(c) => &c.product_id,
            CatalogEvent::Photo(c) => &c.product_id,
        }
    }

    pub fn changed_at(&self) -> DateTime<Utc> {
        match self {
            CatalogEvent::Product(c) => c.changed_at,
            CatalogEvent::Photo(c) => c.changed_at,
        }
    }
}

impl ProductChanged {
    /// Parses a queue message body that must hold a `ProductChanged` event.
    pub fn from_message_body(body: &str) -> Result<Self, ChangeError> {
        match CatalogEvent::from_message_body(body)? {
            CatalogEvent::Product(change) => Ok(change),
            CatalogEvent::Photo(_) => Err(ChangeError::UnknownEventType(
                PRODUCT_PHOTO_CHANGED.to_owned(),
            )),
        }
    }

    /// Rejects values no real change can have, so they never reach the table.
    pub fn validate(&self) -> Result<(), ChangeError> {
        let bad = |why: String| Err(ChangeError::ImpossibleValue(why));
        if self.change_id.is_empty() || self.product_id.is_empty() {
            return bad("empty changeId or productId".to_owned());
        }
        if self.version == 0 {
            return bad("version must be at least 1".to_owned());
        }
        for (label, v) in [("previous", self.previous), ("current", self.current)] {
            if v.price_cents <= 0 {
                return bad(format!(
                    "{label}.priceCents {} is not positive",
                    v.price_cents
                ));
            }
            if v.stock < 0 {
                return bad(format!("{label}.stock {} is negative", v.stock));
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("ProductChanged always serializes")
    }
}
