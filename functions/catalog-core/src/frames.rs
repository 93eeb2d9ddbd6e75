//! WebSocket frames: what clients may send, and everything the server sends them.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ports::LogMark;
use crate::{Product, ProductChanged, ProductPhotoChanged, StockAndPrice};

/// Most product ids one subscribe frame may carry: a bound on the stored record.
pub const MAX_SUBSCRIBED_PRODUCTS: usize = 500;

/// A frame a client sent, once understood.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientFrame {
    /// Receive only these products; an empty set is not allowed (use no filter instead).
    /// `batched`: receive a batch's changes as one `batch` frame instead of one frame each.
    /// `after`: a change-log position (as a `subscribed` frame gives it); the changes of
    /// these products logged after it are sent first (a reconnecting client's resume).
    Subscribe {
        product_ids: Option<BTreeSet<String>>,
        batched: bool,
        after: Option<String>,
    },
    /// The current state of the products the connection subscribed to.
    Snapshot,
}

/// Why a frame was refused; sent back to the client as an error frame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame is not a JSON object: {0}")]
    MalformedJson(String),
    #[error("frame has no \"action\" field")]
    MissingAction,
    #[error("unknown action {0:?}; expected \"subscribe\" or \"snapshot\"")]
    UnknownAction(String),
    #[error("invalid field: {0}")]
    InvalidField(String),
}

impl FrameError {
    pub fn code(&self) -> &'static str {
        match self {
            FrameError::MalformedJson(_) => "malformed_frame",
            FrameError::MissingAction => "missing_action",
            FrameError::UnknownAction(_) => "unknown_action",
            FrameError::InvalidField(_) => "invalid_field",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SubscribeBody {
    #[allow(dead_code)]
    action: String,
    product_ids: Option<Vec<String>>,
    #[serde(default)]
    batched: bool,
    after: Option<String>,
}

impl ClientFrame {
    pub fn parse(body: &str) -> Result<Self, FrameError> {
        let value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| FrameError::MalformedJson(e.to_string()))?;
        let object = value
            .as_object()
            .ok_or_else(|| FrameError::MalformedJson("expected an object".to_owned()))?;
        let action = match object.get("action") {
            None => return Err(FrameError::MissingAction),
            Some(serde_json::Value::String(a)) => a.as_str(),
            Some(_) => {
                return Err(FrameError::InvalidField(
                    "action must be a string".to_owned(),
                ))
            }
        };
        match action {
            "subscribe" => {
                let body: SubscribeBody = serde_json::from_value(value.clone())
                    .map_err(|e| FrameError::InvalidField(e.to_string()))?;
                let product_ids = match body.product_ids {
                    None => None,
                    Some(ids) if ids.is_empty() => {
                        return Err(FrameError::InvalidField(
                            "productIds must not be empty; omit it to receive every product".to_owned(),
                        ))
                    }
                    Some(ids) if ids.len() > MAX_SUBSCRIBED_PRODUCTS => {
                        return Err(FrameError::InvalidField(format!(
                            "productIds holds {} ids; at most {MAX_SUBSCRIBED_PRODUCTS} are allowed",
                            ids.len()
                        )))
                    }
                    Some(ids) if ids.iter().any(|id| id.trim().is_empty()) => {
                        return Err(FrameError::InvalidField("productIds must not contain empty ids".to_owned()))
                    }
                    Some(ids) => Some(ids.into_iter().collect()),
                };
                if body.after.as_deref().is_some_and(|a| a.trim().is_empty()) {
                    return Err(FrameError::InvalidField(
                        "after must be a position from a subscribed frame; omit it to start from now".to_owned(),
                    ));
                }
                Ok(ClientFrame::Subscribe {
                    product_ids,
                    batched: body.batched,
                    after: body.after,
                })
            }
            "snapshot" => Ok(ClientFrame::Snapshot),
            other => Err(FrameError::UnknownAction(other.to_owned())),
        }
    }
}

/// Which products a connection receives: `None` means all of them.
pub fn wants(filter: Option<&BTreeSet<String>>, product_id: &str) -> bool {
    filter.is_none_or(|ids| ids.contains(product_id))
}

/// Everything the server sends to a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerFrame {
    #[serde(rename_all = "camelCase")]
    ProductChanged {
        change_id: String,
        product_id: String,
        version: u64,
        changed_at: DateTime<Utc>,
        previous: StockAndPrice,
        product: Box<Product>,
        /// Where the change-log entry of this change sits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log: Option<LogMark>,
    },
    #[serde(rename_all = "camelCase")]
    ProductPhotoChanged {
        change_id: String,
        product_id: String,
        photo_version: u64,
        full_url: String,
        thumb_url: String,
        urls_expire_at: DateTime<Utc>,
        changed_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log: Option<LogMark>,
    },
    #[serde(rename_all = "camelCase")]
    Subscribed {
        product_ids: Option<BTreeSet<String>>,
        /// Present (true) only for a batched subscription, so other clients see what they always did.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        batched: bool,
        /// The change-log position from which this subscription is live: every change logged
        /// after it reaches the client (README, "Resume").
        #[serde(default, skip_serializing_if = "Option::is_none")]
        position: Option<String>,
        /// How old a live frame's `log` mark must be before the client counts it toward its
        /// resume position.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        settle_ms: Option<u64>,
    },
    /// Several `productChanged` / `productPhotoChanged` frames, in the order they were handled
    /// (a product's changes in version order), for clients that subscribed with `batched`.
    #[serde(rename_all = "camelCase")]
    Batch { frames: Vec<ServerFrame> },
    #[serde(rename_all = "camelCase")]
    Snapshot {
        part: usize,
        parts: usize,
        products: Vec<Product>,
    },
    #[serde(rename_all = "camelCase")]
    Error { code: String, message: String },
}

/// Products per snapshot frame: API Gateway caps a frame at 128 KB and a product
/// is well under 500 bytes.
pub const SNAPSHOT_FRAME_PRODUCTS: usize = 100;

impl ServerFrame {
    pub fn product_changed(change: &ProductChanged, product: Product) -> Self {
        ServerFrame::ProductChanged {
            change_id: change.change_id.clone(),
            product_id: change.product_id.clone(),
            version: product.version,
            changed_at: change.changed_at,
            previous: change.previous,
            product: Box::new(product),
            log: None,
        }
    }

    pub fn photo_changed(change: &ProductPhotoChanged) -> Self {
        ServerFrame::ProductPhotoChanged {
            change_id: change.change_id.clone(),
            product_id: change.product_id.clone(),
            photo_version: change.photo_version,
            full_url: change.full_url.clone(),
            thumb_url: change.thumb_url.clone(),
            urls_expire_at: change.urls_expire_at,
            changed_at: change.changed_at,
            log: None,
        }
    }

    /// The frame marked with its change-log entry.
    pub fn logged_at(mut self, mark: LogMark) -> Self {
        if let ServerFrame::ProductChanged { log, .. }
        | ServerFrame::ProductPhotoChanged { log, .. } = &mut self
        {
            *log = Some(mark);
        }
        self
    }

    /// The frame's `type`, which is also its SSE `event:` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ServerFrame::ProductChanged { .. } => "productChanged",
            ServerFrame::ProductPhotoChanged { .. } => "productPhotoChanged",
            ServerFrame::Subscribed { .. } => "subscribed",
            ServerFrame::Batch { .. } => "batch",
            ServerFrame::Snapshot { .. } => "snapshot",
            ServerFrame::Error { .. } => "error",
        }
    }

    /// The product a frame is about, for frames about one product.
    pub fn product_id(&self) -> Option<&str> {
        match self {
            ServerFrame::ProductChanged { product_id, .. }
            | ServerFrame::ProductPhotoChanged { product_id, .. } => Some(product_id),
            _ => None,
        }
    }

    pub fn error(err: &FrameError) -> Self {
        ServerFrame::Error {
            code: err.code().to_owned(),
            message: err.to_string(),
        }
    }

    /// The catalogue split into frames small enough to send; at least one frame,
    /// so an empty catalogue is still answered.
    pub fn snapshot(mut products: Vec<Product>) -> Vec<Self> {
        products.sort_by(|a, b| a.product_id.cmp(&b.product_id));
        let chunks: Vec<Vec<Product>> = if products.is_empty() {
            vec![Vec::new()]
        } else {
            products
                .chunks(SNAPSHOT_FRAME_PRODUCTS)
                .map(<[Product]>::to_vec)
                .collect()
        };
        let parts = chunks.len();
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, products)| ServerFrame::Snapshot {
                part: i + 1,
                parts,
                products,
            })
            .collect()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("server frames always serialize")
    }

    /// A `batch` frame from frames already serialized, without parsing them again.
    pub fn batch_json<'a>(frames: impl IntoIterator<Item = &'a str>) -> String {
        let mut json = String::from(r#"{"type":"batch","frames":["#);
        for (i, frame) in frames.into_iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            json.push_str(frame);
        }
        json.push_str("]}");
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn subscribe_with_ids() {
        let frame =
            ClientFrame::parse(r#"{"action":"subscribe","productIds":["p-001","p-002","p-001"]}"#)
                .unwrap();
        assert_eq!(
            frame,
            ClientFrame::Subscribe {
                product_ids: Some(ids(&["p-001", "p-002"])),
                batched: false,
                after: None,
            }
        );
    }

    #[test]
    fn subscribe_batched() {
        assert_eq!(
            ClientFrame::parse(r#"{"action":"subscribe","batched":true}"#).unwrap(),
            ClientFrame::Subscribe {
                product_ids: None,
                batched: true,
                after: None,
            }
        );
        let err = ClientFrame::parse(r#"{"action":"subscribe","batched":"yes"}"#).unwrap_err();
        assert_eq!(err.code(), "invalid_field", "{err}");
    }

    #[test]
    fn a_subscribed_frame_names_batched_only_when_it_is() {
        let plain = ServerFrame::Subscribed {
            product_ids: None,
            batched: false,
            position: None,
            settle_ms: None,
        };
        assert_eq!(
            plain.to_json(),
            r#"{"type":"subscribed","productIds":null}"#
        );
        let batched = ServerFrame::Subscribed {
            product_ids: None,
            batched: true,
            position: Some("3.0.1".into()),
            settle_ms: Some(15000),
        };
        assert_eq!(
            batched.to_json(),
            r#"{"type":"subscribed","productIds":null,"batched":true,"position":"3.0.1","settleMs":15000}"#
        );
    }

    #[test]
    fn a_batch_frame_holds_the_frames_as_they_were() {
        let frames = [
            ServerFrame::error(&FrameError::MissingAction),
            ServerFrame::error(&FrameError::UnknownAction("x".into())),
        ];
        let jsons: Vec<String> = frames.iter().map(ServerFrame::to_json).collect();
        let batch = ServerFrame::batch_json(jsons.iter().map(String::as_str));
        let parsed: ServerFrame = serde_json::from_str(&batch).unwrap();
        assert_eq!(
            parsed,
            ServerFrame::Batch {
                frames: frames.to_vec()
            }
        );
        assert_eq!(parsed.type_name(), "batch");
        assert_eq!(
            ServerFrame::batch_json([]),
            r#"{"type":"batch","frames":[]}"#
        );
    }

    #[test]
    fn subscribe_without_ids_means_everything() {
        assert_eq!(
            ClientFrame::parse(r#"{"action":"subscribe"}"#).unwrap(),
            ClientFrame::Subscribe {
                product_ids: None,
                batched: false,
                after: None,
            }
        );
        assert_eq!(
            ClientFrame::parse(r#"{"action":"subscribe","after":"4.0.17"}"#).unwrap(),
            ClientFrame::Subscribe {
                product_ids: None,
                batched: false,
                after: Some("4.0.17".into()),
            }
        );
    }

    #[test]
    fn snapshot_frame() {
        assert_eq!(
            ClientFrame::parse(r#"{"action":"snapshot"}"#).unwrap(),
            ClientFrame::Snapshot
        );
    }

    #[test]
    fn refusals_name_the_problem() {
        let cases = [
            ("not json", "malformed_frame"),
            ("[1,2]", "malformed_frame"),
            (r#"{"productIds":[]}"#, "missing_action"),
            (r#"{"action":7}"#, "invalid_field"),
            (r#"{"action":"dance"}"#, "unknown_action"),
            (r#"{"action":"subscribe","productIds":[]}"#, "invalid_field"),
            (
                r#"{"action":"subscribe","productIds":"p-001"}"#,
                "invalid_field",
            ),
            (
                r#"{"action":"subscribe","productIds":[""]}"#,
                "invalid_field",
            ),
            (
                r#"{"action":"subscribe","productIDs":["p-001"]}"#,
                "invalid_field",
            ),
            (r#"{"action":"subscribe","after":""}"#, "invalid_field"),
            (r#"{"action":"subscribe","after":17}"#, "invalid_field"),
        ];
        for (body, code) in cases {
            let err = ClientFrame::parse(body).unwrap_err();
            assert_eq!(err.code(), code, "{body}: {err}");
        }
    }

    #[test]
    fn too_many_ids_are_refused() {
        let many: Vec<String> = (0..=MAX_SUBSCRIBED_PRODUCTS)
            .map(|i| format!("p-{i}"))
            .collect();
        let body = serde_json::json!({"action":"subscribe","productIds":many}).to_string();
        assert_eq!(
            ClientFrame::parse(&body).unwrap_err().code(),
            "invalid_field"
        );
    }

    #[test]
    fn filter_matching() {
        let f = ids(&["p-001"]);
        assert!(wants(None, "p-009"));
        assert!(wants(Some(&f), "p-001"));
        assert!(!wants(Some(&f), "p-002"));
    }

    #[test]
    fn error_frame_shape() {
        let json = ServerFrame::error(&FrameError::UnknownAction("x".into())).to_json();
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["code"], "unknown_action");
        assert!(v["message"].as_str().unwrap().contains("\"x\""));
    }

    #[test]
    fn snapshot_splits_and_numbers_parts() {
        let product = |i: usize| Product {
            product_id: format!("p-{i:03}"),
            name: "n".into(),
            category: "c".into(),
            price_cents: 100,
            currency: "EUR".into(),
            stock: 1,
            photo_key: "k".into(),
            thumb_key: None,
            photo_version: 0,
            version: 0,
            updated_at: "t".into(),
        };
        let frames = ServerFrame::snapshot((0..250).rev().map(product).collect());
        assert_eq!(frames.len(), 3);
        match &frames[0] {
            ServerFrame::Snapshot {
                part,
                parts,
                products,
            } => {
                assert_eq!((*part, *parts, products.len()), (1, 3, 100));
                assert_eq!(products[0].product_id, "p-000");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ServerFrame::snapshot(vec![]).len(), 1);
    }
}
