use std::collections::BTreeSet;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;

use super::item::{conditional, get_n_or, get_s, n, s, Item};
use crate::ports::connections::*;
use crate::ports::DownstreamError;

/// The connections table, keyed by `connectionId`, with `expiresAt` (epoch seconds) as its TTL attribute.
#[derive(Clone)]
pub struct DynamoConnections {
    client: Client,
    table: String,
}

impl DynamoConnections {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl ConnectionStore for DynamoConnections {
    async fn add(
        &self,
        connection_id: &str,
        connected_at_ms: i64,
        expires_at_s: i64,
    ) -> Result<(), DownstreamError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .item("connectionId", s(connection_id))
            .item("connectedAt", n(connected_at_ms))
            .item("expiresAt", n(expires_at_s))
            .send()
            .await
            .map_err(|e| DownstreamError::aws("PutItem connection", e))?;
        Ok(())
    }

    async fn remove(&self, connection_id: &str) -> Result<(), DownstreamError> {
        self.client
            .delete_item()
            .table_name(&self.table)
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
        Ok(conditional(request.send().await, "UpdateItem connection")?.is_some())
    }

    async fn all(&self) -> Result<Vec<Connection>, DownstreamError> {
        let now_s = chrono::Utc::now().timestamp();
        let items: Vec<Item> = self
            .client
            .scan()
            .table_name(&self.table)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| DownstreamError::aws("Scan connections", e))?;
        let mut connections = Vec::with_capacity(items.len());
        for item in &items {
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
    })
}
