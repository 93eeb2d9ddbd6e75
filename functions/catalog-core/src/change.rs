use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The only event type this version of the pipeline understands.
pub const PRODUCT_CHANGED: &str = "ProductChanged";

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

impl ProductChanged {
    /// Parses a queue message body. SNS raw delivery puts the event itself in the
    /// body; without raw delivery it is wrapped in an SNS notification envelope,
    /// which is unwrapped here so a misconfigured subscription still works.
    pub fn from_message_body(body: &str) -> Result<Self, ChangeError> {
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| ChangeError::Undeserializable(e.to_string()))?;
        let value = match (value.get("Type"), value.get("Message")) {
            (Some(t), Some(serde_json::Value::String(inner))) if t == "Notification" => {
                serde_json::from_str(inner)
                    .map_err(|e| ChangeError::Undeserializable(e.to_string()))?
            }
            _ => value,
        };
        match value.get("eventType").and_then(|t| t.as_str()) {
            Some(PRODUCT_CHANGED) => {}
            Some(other) => return Err(ChangeError::UnknownEventType(other.to_owned())),
            None => {
                return Err(ChangeError::Undeserializable(
                    "missing eventType".to_owned(),
                ))
            }
        }
        let change: ProductChanged = serde_json::from_value(value)
            .map_err(|e| ChangeError::Undeserializable(e.to_string()))?;
        change.validate()?;
        Ok(change)
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
