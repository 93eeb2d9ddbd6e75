//! The change log: every event pushed to clients, numbered by one increasing sequence,
//! kept for a retention window (TTL). The SSE stream reads it, and a client that
//! reconnects with `Last-Event-ID` resumes from it.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::Client;

use super::item::{get_n, get_s, n, s, Item};
use super::StoreError;

/// The partition every entry is in: the sequence is global, so reads are one Query.
const STREAM: &str = "changes";
/// The counter item that hands out sequence numbers.
const COUNTER: &str = "counter";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub seq: u64,
    /// `productChanged` or `productPhotoChanged`: the SSE `event:` name.
    pub event_type: String,
    pub product_id: String,
    /// The frame as clients receive it over the WebSocket (JSON).
    pub data: String,
    /// When it was logged, in epoch milliseconds.
    pub logged_at_ms: i64,
}

#[async_trait]
pub trait ChangeLog: Send + Sync {
    /// Appends an entry with the next sequence number and returns that number.
    async fn append(
        &self,
        event_type: &str,
        product_id: &str,
        data: &str,
    ) -> Result<u64, StoreError>;
    /// Entries with a sequence number above `after`, in order, at most `limit`.
    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LogEntry>, StoreError>;
    /// The last sequence number handed out (0 before the first entry).
    async fn head(&self) -> Result<u64, StoreError>;
}

#[derive(Clone)]
pub struct DynamoChangeLog {
    client: Client,
    table: String,
    retention_secs: i64,
}

impl DynamoChangeLog {
    pub fn new(client: Client, table: impl Into<String>, retention_secs: i64) -> Self {
        Self {
            client,
            table: table.into(),
            retention_secs,
        }
    }
}

fn entry_from_item(item: &Item) -> Result<LogEntry, StoreError> {
    Ok(LogEntry {
        seq: get_n(item, "seq")?,
        event_type: get_s(item, "eventType")?,
        product_id: get_s(item, "productId")?,
        data: get_s(item, "data")?,
        logged_at_ms: get_n(item, "loggedAt")?,
    })
}

#[async_trait]
impl ChangeLog for DynamoChangeLog {
    async fn append(
        &self,
        event_type: &str,
        product_id: &str,
        data: &str,
    ) -> Result<u64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("stream", s(COUNTER))
            .key("seq", n(0))
            .update_expression("ADD #next :one")
            .expression_attribute_names("#next", "next")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(|e| StoreError::aws("UpdateItem change-log counter", e))?;
        let seq: u64 = get_n(&out.attributes.unwrap_or_default(), "next")?;
        let now = chrono::Utc::now();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("stream", s(STREAM))
            .item("seq", n(seq))
            .item("eventType", s(event_type))
            .item("productId", s(product_id))
            .item("data", s(data))
            .item("loggedAt", n(now.timestamp_millis()))
            .item("expiresAt", n(now.timestamp() + self.retention_secs))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem change-log entry", e))?;
        Ok(seq)
    }

    async fn read_after(&self, after: u64, limit: usize) -> Result<Vec<LogEntry>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#stream = :stream AND seq > :after")
            .expression_attribute_names("#stream", "stream")
            .expression_attribute_values(":stream", s(STREAM))
            .expression_attribute_values(":after", n(after))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query change log", e))?;
        out.items().iter().map(entry_from_item).collect()
    }

    async fn head(&self) -> Result<u64, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("stream", s(COUNTER))
            .key("seq", n(0))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("GetItem change-log counter", e))?;
        match out.item {
            Some(item) => get_n(&item, "next"),
            None => Ok(0),
        }
    }
}
