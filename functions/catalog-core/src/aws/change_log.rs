//! The change log: every event pushed to clients, kept for a retention window (TTL). The
//! SSE stream reads it, and a client that reconnects with `Last-Event-ID` resumes from it.
//!
//! No key is written by every change. The log is split into shards by product (a product's
//! events always land in the same shard, so their order is kept); each shard has its own
//! counter item and its own partition of entries. At 16 shards and 5,000 changes/s each
//! counter and each partition takes about 310 writes/s, well under DynamoDB's 1,000 per
//! partition. A reader's place in the log is a [`LogPosition`]: the last sequence number it
//! has of every shard. That is the SSE event id.

use std::fmt;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{KeysAndAttributes, ReturnValue};
use aws_sdk_dynamodb::Client;

use super::item::{get_n, get_s, n, s, Item};
use super::StoreError;

/// How many shards the log has unless `CHANGE_LOG_SHARDS` says otherwise.
pub const DEFAULT_SHARDS: usize = 16;

/// The shard count every reader and writer of the log must agree on (`CHANGE_LOG_SHARDS`).
pub fn shards_from_env() -> Result<usize, crate::config::ConfigError> {
    crate::config::parsed_or("CHANGE_LOG_SHARDS", DEFAULT_SHARDS)
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub shard: usize,
    /// Increasing within its shard.
    pub seq: u64,
    /// `productChanged` or `productPhotoChanged`: the SSE `event:` name.
    pub event_type: String,
    pub product_id: String,
    /// The frame as clients receive it over the WebSocket (JSON).
    pub data: String,
    /// When it was logged, in epoch milliseconds.
    pub logged_at_ms: i64,
}

/// The shard a product's events go to: FNV-1a of its id, stable across processes and releases.
pub fn shard_of(product_id: &str, shards: usize) -> usize {
    let hash = product_id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % shards.max(1) as u64) as usize
}

/// A place in the log: the last sequence number read of each shard. Written as the numbers
/// joined by dots (`4.0.17.…`), which is the SSE event id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPosition(pub Vec<u64>);

impl LogPosition {
    /// Before the first entry of every shard.
    pub fn start(shards: usize) -> Self {
        Self(vec![0; shards])
    }

    /// Reads an event id of a log with `shards` shards.
    pub fn parse(text: &str, shards: usize) -> Result<Self, String> {
        let parts: Result<Vec<u64>, _> = text.trim().split('.').map(str::parse).collect();
        match parts {
            Ok(parts) if parts.len() == shards => Ok(Self(parts)),
            _ => Err(format!(
                "Last-Event-ID {text:?} is not an event id of this stream ({shards} dot-separated numbers)"
            )),
        }
    }

    /// Whether `next` is this position plus exactly one entry: one shard one further, the
    /// rest the same. Along an unfiltered stream every event's id is its predecessor's plus one.
    pub fn followed_by(&self, next: &LogPosition) -> bool {
        self.0.len() == next.0.len()
            && self
                .0
                .iter()
                .zip(&next.0)
                .map(|(a, b)| b.checked_sub(*a))
                .try_fold(0u64, |sum, step| step.map(|s| sum + s))
                == Some(1)
    }

    /// Whether `next` is at or after this position in every shard and further in one.
    pub fn precedes(&self, next: &LogPosition) -> bool {
        self.0.len() == next.0.len()
            && self.0.iter().zip(&next.0).all(|(a, b)| a <= b)
            && self != next
    }
}

impl fmt::Display for LogPosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seq) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{seq}")?;
        }
        Ok(())
    }
}

#[async_trait]
pub trait ChangeLog: Send + Sync {
    /// How many shards the log is split into.
    fn shards(&self) -> usize;
    /// Appends an entry to its product's shard; returns (shard, sequence number).
    async fn append(
        &self,
        event_type: &str,
        product_id: &str,
        data: &str,
    ) -> Result<(usize, u64), StoreError>;
    /// A shard's entries with a sequence number above `after`, in order, at most `limit`.
    async fn read_after(
        &self,
        shard: usize,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError>;
    /// The last sequence number handed out in each shard.
    async fn head(&self) -> Result<LogPosition, StoreError>;
}

#[derive(Clone)]
pub struct DynamoChangeLog {
    client: Client,
    table: String,
    retention_secs: i64,
    shards: usize,
}

impl DynamoChangeLog {
    pub fn new(
        client: Client,
        table: impl Into<String>,
        retention_secs: i64,
        shards: usize,
    ) -> Self {
        Self {
            client,
            table: table.into(),
            retention_secs,
            shards: shards.max(1),
        }
    }
}

fn counter_key(shard: usize) -> String {
    format!("counter#{shard}")
}

fn entries_key(shard: usize) -> String {
    format!("changes#{shard}")
}

fn entry_from_item(shard: usize, item: &Item) -> Result<LogEntry, StoreError> {
    Ok(LogEntry {
        shard,
        seq: get_n(item, "seq")?,
        event_type: get_s(item, "eventType")?,
        product_id: get_s(item, "productId")?,
        data: get_s(item, "data")?,
        logged_at_ms: get_n(item, "loggedAt")?,
    })
}

#[async_trait]
impl ChangeLog for DynamoChangeLog {
    fn shards(&self) -> usize {
        self.shards
    }

    async fn append(
        &self,
        event_type: &str,
        product_id: &str,
        data: &str,
    ) -> Result<(usize, u64), StoreError> {
        let shard = shard_of(product_id, self.shards);
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("stream", s(counter_key(shard)))
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
            .item("stream", s(entries_key(shard)))
            .item("seq", n(seq))
            .item("eventType", s(event_type))
            .item("productId", s(product_id))
            .item("data", s(data))
            .item("loggedAt", n(now.timestamp_millis()))
            .item("expiresAt", n(now.timestamp() + self.retention_secs))
            .send()
            .await
            .map_err(|e| StoreError::aws("PutItem change-log entry", e))?;
        Ok((shard, seq))
    }

    async fn read_after(
        &self,
        shard: usize,
        after: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#stream = :stream AND seq > :after")
            .expression_attribute_names("#stream", "stream")
            .expression_attribute_values(":stream", s(entries_key(shard)))
            .expression_attribute_values(":after", n(after))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::aws("Query change log", e))?;
        out.items()
            .iter()
            .map(|item| entry_from_item(shard, item))
            .collect()
    }

    async fn head(&self) -> Result<LogPosition, StoreError> {
        let mut position = LogPosition::start(self.shards);
        // BatchGetItem takes at most 100 keys.
        for first in (0..self.shards).step_by(100) {
            let mut keys = KeysAndAttributes::builder().consistent_read(true);
            for shard in first..(first + 100).min(self.shards) {
                keys = keys.keys(
                    [
                        ("stream".to_owned(), s(counter_key(shard))),
                        ("seq".to_owned(), n(0)),
                    ]
                    .into(),
                );
            }
            let mut request = Some(
                keys.build()
                    .map_err(|e| StoreError::aws("BatchGetItem change-log counters", e))?,
            );
            while let Some(keys) = request.take() {
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, keys)
                    .send()
                    .await
                    .map_err(|e| StoreError::aws("BatchGetItem change-log counters", e))?;
                for item in out
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    let stream = get_s(item, "stream")?;
                    let shard: usize = stream
                        .strip_prefix("counter#")
                        .and_then(|k| k.parse().ok())
                        .ok_or_else(|| StoreError::CorruptItem(format!("counter {stream}")))?;
                    if let Some(slot) = position.0.get_mut(shard) {
                        *slot = get_n(item, "next")?;
                    }
                }
                request = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
            }
        }
        Ok(position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_reads_back_what_it_writes_and_refuses_other_shapes() {
        let p = LogPosition(vec![4, 0, 17]);
        assert_eq!(p.to_string(), "4.0.17");
        assert_eq!(LogPosition::parse("4.0.17", 3), Ok(p));
        for bad in ["", "4.0", "4.0.17.1", "a.b.c", "yesterday", "-1.0.0"] {
            assert!(LogPosition::parse(bad, 3).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn followed_by_means_exactly_one_more_entry() {
        let p = LogPosition(vec![4, 0, 17]);
        assert!(p.followed_by(&LogPosition(vec![4, 1, 17])));
        assert!(
            !p.followed_by(&LogPosition(vec![4, 2, 17])),
            "a skipped entry"
        );
        assert!(!p.followed_by(&LogPosition(vec![5, 1, 17])), "two entries");
        assert!(!p.followed_by(&p), "the same entry twice");
        assert!(!p.followed_by(&LogPosition(vec![3, 1, 18])), "going back");
        assert!(p.precedes(&LogPosition(vec![5, 1, 17])));
        assert!(!p.precedes(&LogPosition(vec![3, 9, 99])));
    }

    #[test]
    fn products_spread_over_the_shards_and_keep_theirs() {
        let mut per_shard = [0usize; 16];
        for i in 0..1000 {
            per_shard[shard_of(&format!("p-{i:03}"), 16)] += 1;
        }
        assert!(
            per_shard.iter().all(|&c| (30..=95).contains(&c)),
            "{per_shard:?}"
        );
        assert_eq!(shard_of("p-001", 16), shard_of("p-001", 16));
        assert_eq!(shard_of("anything", 1), 0);
    }
}
