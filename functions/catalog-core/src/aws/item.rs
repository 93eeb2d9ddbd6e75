//! Reading typed attributes out of DynamoDB items.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;

use crate::ports::DownstreamError;

pub type Item = HashMap<String, AttributeValue>;

pub fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub fn get_s(item: &Item, name: &str) -> Result<String, DownstreamError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        other => Err(DownstreamError::CorruptItem(format!(
            "{name} is not a string: {other:?}"
        ))),
    }
}

pub fn get_opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

pub fn get_n<T: std::str::FromStr>(item: &Item, name: &str) -> Result<T, DownstreamError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map_err(|_| DownstreamError::CorruptItem(format!("{name}={v} is not a valid number"))),
        other => Err(DownstreamError::CorruptItem(format!(
            "{name} is not a number: {other:?}"
        ))),
    }
}

/// A numeric attribute that may be absent (treated as `default`).
pub fn get_n_or<T: std::str::FromStr>(
    item: &Item,
    name: &str,
    default: T,
) -> Result<T, DownstreamError> {
    if item.contains_key(name) {
        get_n(item, name)
    } else {
        Ok(default)
    }
}

/// The outcome of a conditional write: `Some(output)` if it happened, `None` if its
/// condition did not hold, an error for anything else.
pub fn conditional<T, E, R>(
    result: Result<T, aws_sdk_dynamodb::error::SdkError<E, R>>,
    operation: &'static str,
) -> Result<Option<T>, DownstreamError>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e)
            if e.as_service_error().and_then(|se| se.code())
                == Some("ConditionalCheckFailedException") =>
        {
            Ok(None)
        }
        Err(e) => Err(DownstreamError::aws(operation, e)),
    }
}

/// Every item of `keys` that exists, read strongly with BatchGetItem: 100 keys a request,
/// and the keys DynamoDB left unprocessed asked for again.
pub async fn batch_get_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
    keys: Vec<Item>,
    operation: &'static str,
) -> Result<Vec<Item>, DownstreamError> {
    let mut items = Vec::with_capacity(keys.len());
    for chunk in keys.chunks(100) {
        let mut request = Some(
            aws_sdk_dynamodb::types::KeysAndAttributes::builder()
                .consistent_read(true)
                .set_keys(Some(chunk.to_vec()))
                .build()
                .map_err(|e| DownstreamError::aws(operation, e))?,
        );
        while let Some(keys) = request.take() {
            let out = client
                .batch_get_item()
                .request_items(table, keys)
                .send()
                .await
                .map_err(|e| DownstreamError::aws(operation, e))?;
            if let Some(found) = out.responses.as_ref().and_then(|r| r.get(table)) {
                items.extend(found.iter().cloned());
            }
            request = out
                .unprocessed_keys
                .and_then(|mut u| u.remove(table))
                .filter(|k| !k.keys().is_empty());
        }
    }
    Ok(items)
}
