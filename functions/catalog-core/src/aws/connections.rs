use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::item::{batch_get_all, conditional, get_n, get_n_or, get_s, n, s, Item};
use crate::ports::connections::*;
use crate::ports::DownstreamError;

/// The sort key of a shard's revision item; connection ids never start with `#`.
const REVISION: &str = "#revision";

/// The connections table: partition key `shard` (N, [`connection_shard`] of the id), sort key
/// `connectionId`, `expiresAt` (epoch seconds) as its TTL attribute, and one revision item
/// per shard (`connectionId = "#revision"`, attribute `rev`).
#[derive(Clone)]
pub struct DynamoConnections {
    client: Client,
    table: String,
    shards: usize,
}

impl DynamoConnections {
    pub fn new(client: Client, table: impl Into<String>, shards: usize) -> Self {
        Self {
            client,
            table: table.into(),
            shards: shards.max(1),
        }
    }

    fn shard_of(&self, connection_id: &str) -> AttributeValue {
        n(connection_shard(connection_id, self.shards))
    }

    /// Raises the revision of the connection's shard; called after its record was written.
    async fn raise_revision(&self, connection_id: &str) -> Result<(), DownstreamError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("shard", self.shard_of(connection_id))
            .key("connectionId", s(REVISION))
            .update_expression("ADD rev :one")
            .expression_attribute_values(":one", n(1))
            .send()
            .await
            .map_err(|e| DownstreamError::aws("UpdateItem connections revision", e))?;
        Ok(())
    }
}

#[async_trait]
impl ConnectionStore for DynamoConnections {
    fn shards(&self) -> usize {
        self.shards
    }

    async fn add(
        &self,
        connection_id: &str,
        connected_at_ms: i64,
        expires_at_s: i64,
    ) -> Result<(), DownstreamError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("shard", self.shard_of(connection_id))
            .item("connectionId", s(connection_id))
            .item("connectedAt", n(connected_at_ms))
            .item("expiresAt", n(expires_at_s))
            .send()
            .await
            .map_err(|e| DownstreamError::aws("PutItem connection", e))?;
        self.raise_revision(connection_id).await
    }

    async fn remove(&self, connection_id: &str) -> Result<(), DownstreamError> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .key("shard", self.shard_of(connection_id))
            .key("connectionId", s(connection_id))
            .send()
            .await
            .map_err(|e| DownstreamError::aws("DeleteItem connection", e))?;
        Ok(())
    }

    async fn subscribe(
        &self,
        connection_id: &str,
        product_ids: Option<&BTreeSet<String>>,
        batched: bool,
    ) -> Result<bool, DownstreamError> {
        let request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("shard", self.shard_of(connection_id))
            .key("connectionId", s(connection_id))
            .condition_expression("attribute_exists(connectionId)")
            .expression_attribute_values(":batched", AttributeValue::Bool(batched));
        let request = match product_ids {
            Some(ids) => request
                .update_expression("SET productIds = :ids, batched = :batched")
                .expression_attribute_values(
                    ":ids",
                    AttributeValue::Ss(ids.iter().cloned().collect()),
                ),
            None => request.update_expression("SET batched = :batched REMOVE productIds"),
        };
        let found = conditional(request.send().await, "UpdateItem connection")?.is_some();
        if found {
            self.raise_revision(connection_id).await?;
        }
        Ok(found)
    }

    async fn get(&self, connection_id: &str) -> Result<Option<Connection>, DownstreamError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("shard", self.shard_of(connection_id))
            .key("connectionId", s(connection_id))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| DownstreamError::aws("GetItem connection", e))?;
        out.item.as_ref().map(connection_from_item).transpose()
    }

    async fn revisions(&self) -> Result<Vec<u64>, DownstreamError> {
        let keys = (0..self.shards)
            .map(|shard| {
                Item::from([
                    ("shard".to_owned(), n(shard)),
                    ("connectionId".to_owned(), s(REVISION)),
                ])
            })
            .collect();
        let mut revisions = vec![0; self.shards];
        let items = batch_get_all(
            &self.client,
            &self.table,
            keys,
            "BatchGetItem connections revisions",
        )
        .await?;
        for item in &items {
            let shard: usize = get_n(item, "shard")?;
            if let Some(slot) = revisions.get_mut(shard) {
                *slot = get_n_or(item, "rev", 0)?;
            }
        }
        Ok(revisions)
    }

    async fn shard(&self, shard: usize) -> Result<Vec<Connection>, DownstreamError> {
        let now_s = chrono::Utc::now().timestamp();
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#shard = :shard")
            .expression_attribute_names("#shard", "shard")
            .expression_attribute_values(":shard", n(shard))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| DownstreamError::aws("Query connections shard", e))?;
        let mut connections = Vec::with_capacity(items.len());
        for item in &items {
            if get_s(item, "connectionId")? == REVISION {
                continue;
            }
            // TTL deletion lags expiry by up to days in AWS; an expired record is already dead.
            if get_n_or(item, "expiresAt", i64::MAX)? < now_s {
                continue;
            }
            connections.push(connection_from_item(item)?);
        }
        Ok(connections)
    }
}

fn connection_from_item(item: &Item) -> Result<Connection, DownstreamError> {
    let product_ids = match item.get("productIds") {
        Some(AttributeValue::Ss(ids)) => Some(ids.iter().cloned().collect()),
        None => None,
        Some(other) => {
            return Err(DownstreamError::CorruptItem(format!(
                "productIds is not a string set: {other:?}"
            )))
        }
    };
    let batched = match item.get("batched") {
        Some(AttributeValue::Bool(batched)) => *batched,
        None => false,
        Some(other) => {
            return Err(DownstreamError::CorruptItem(format!(
                "batched is not a boolean: {other:?}"
            )))
        }
    };
    Ok(Connection {
        connection_id: get_s(item, "connectionId")?,
        product_ids,
        batched,
        connected_at_ms: get_n_or(item, "connectedAt", 0)?,
    })
}
