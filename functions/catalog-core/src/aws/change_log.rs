use async_trait::async_trait;
use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::Client;

use super::item::{batch_get_all, get_n, get_s, n, s, Item};
use crate::ports::change_log::*;
use crate::ports::DownstreamError;
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

/// Entries per partition: a shard's entries are spread over partitions of this many
/// consecutive sequence numbers, so a read touches a bounded item collection however long
/// the retention window is (an emulator that evaluates a Query item by item pays for the
/// whole partition; DynamoDB itself keeps every item collection small).
pub const ENTRIES_PER_PARTITION: u64 = 100;

fn entries_key(shard: usize, seq: u64) -> String {
    format!("changes#{shard}#{}", seq / ENTRIES_PER_PARTITION)
}

fn entry_from_item(shard: usize, item: &Item) -> Result<LogEntry, DownstreamError> {
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

    async fn reserve(&self, product_id: &str) -> Result<LogMark, DownstreamError> {
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
            .map_err(|e| DownstreamError::aws("UpdateItem change-log counter", e))?;
        let seq: u64 = get_n(&out.attributes.unwrap_or_default(), "next")?;
        Ok(LogMark { shard, seq })
    }

    async fn write(
        &self,
        mark: LogMark,
        event_type: &str,
        product_id: &str,
        data: &str,
    ) -> Result<(), DownstreamError> {
        let now = chrono::Utc::now();
        self.client
            .put_item()
            .table_name(&self.table)
            .item("stream", s(entries_key(mark.shard, mark.seq)))
            .item("seq", n(mark.seq))
            .item("eventType", s(event_type))
            .item("productId", s(product_id))
            .item("data", s(data))
            .item("loggedAt", n(now.timestamp_millis()))
            .item("expiresAt", n(now.timestamp() + self.retention_secs))
            .send()
            .await
            .map_err(|e| DownstreamError::aws("PutItem change-log entry", e))?;
        Ok(())
    }

    async fn read_after(
        &self,
        shard: usize,
        after: u64,
        through: u64,
        limit: usize,
    ) -> Result<Vec<LogEntry>, DownstreamError> {
        let mut entries = Vec::new();
        let mut from = after + 1;
        // One partition after another, each from where the last one stopped.
        while from <= through && entries.len() < limit {
            let partition_end = (from / ENTRIES_PER_PARTITION + 1) * ENTRIES_PER_PARTITION - 1;
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#stream = :stream AND seq BETWEEN :from AND :to")
                .expression_attribute_names("#stream", "stream")
                .expression_attribute_values(":stream", s(entries_key(shard, from)))
                .expression_attribute_values(":from", n(from))
                .expression_attribute_values(":to", n(partition_end.min(through)))
                .limit(i32::try_from(limit - entries.len()).unwrap_or(i32::MAX))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| DownstreamError::aws("Query change log", e))?;
            let page: Vec<LogEntry> = out
                .items()
                .iter()
                .map(|item| entry_from_item(shard, item))
                .collect::<Result<_, _>>()?;
            let read_to_the_end = out.last_evaluated_key.is_none();
            from = match page.last() {
                Some(last) if !read_to_the_end => last.seq + 1,
                _ => partition_end + 1,
            };
            entries.extend(page);
        }
        Ok(entries)
    }

    async fn head(&self) -> Result<LogPosition, DownstreamError> {
        let mut position = LogPosition::start(self.shards);
        let keys = (0..self.shards)
            .map(|shard| {
                Item::from([
                    ("stream".to_owned(), s(counter_key(shard))),
                    ("seq".to_owned(), n(0)),
                ])
            })
            .collect();
        let counters = batch_get_all(
            &self.client,
            &self.table,
            keys,
            "BatchGetItem change-log counters",
        )
        .await?;
        for item in &counters {
            let stream = get_s(item, "stream")?;
            let shard: usize = stream
                .strip_prefix("counter#")
                .and_then(|k| k.parse().ok())
                .ok_or_else(|| DownstreamError::CorruptItem(format!("counter {stream}")))?;
            if let Some(slot) = position.0.get_mut(shard) {
                *slot = get_n(item, "next")?;
            }
        }
        Ok(position)
    }
}
