use std::collections::HashMap;

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsMessage};
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;

use super::StoreError;

/// A message that can never be processed, as it came off the queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    /// The FIFO group it was in; kept so a redrive puts it back where it was.
    pub group_id: Option<String>,
    pub reason: String,
}

#[async_trait]
pub trait DeadLetters: Send + Sync {
    async fn send(&self, letter: &DeadLetter) -> Result<(), StoreError>;
}

/// Sends poison messages straight to the dead-letter queue with the reason attached
/// (`failureReason`), instead of letting them be redelivered until maxReceiveCount:
/// a malformed body never becomes valid, and on a FIFO queue it would hold up its group.
#[derive(Clone)]
pub struct SqsDeadLetters {
    client: Client,
    queue_url: String,
}

impl SqsDeadLetters {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .expect("data_type is set")
}

#[async_trait]
impl DeadLetters for SqsDeadLetters {
    async fn send(&self, letter: &DeadLetter) -> Result<(), StoreError> {
        // SQS caps an attribute value with the message at 256 KB; a reason is a line.
        let reason: String = letter.reason.chars().take(1000).collect();
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(&letter.body);
        // Only FIFO queues take (and require) a group and a deduplication id.
        if self.queue_url.ends_with(".fifo") {
            send = send
                .message_group_id(letter.group_id.as_deref().unwrap_or("poison"))
                .message_deduplication_id(&letter.message_id);
        }
        send.set_message_attributes(Some(HashMap::from([
            ("failureReason".to_owned(), string_attribute(&reason)),
            (
                "sourceMessageId".to_owned(),
                string_attribute(&letter.message_id),
            ),
        ])))
        .send()
        .await
        .map_err(|e| StoreError::aws("SQS SendMessage (dead-letter queue)", e))?;
        Ok(())
    }
}

/// Moves a record that can never be processed to the dead-letter queue and logs why;
/// false if that failed, and the record must return to its queue instead.
pub async fn dead_letter_record<D: DeadLetters + ?Sized>(
    dead_letters: &D,
    record: &SqsMessage,
    reason: &str,
) -> bool {
    let letter = DeadLetter {
        message_id: record.message_id.clone().unwrap_or_default(),
        body: record.body.clone().unwrap_or_default(),
        group_id: record.attributes.get("MessageGroupId").cloned(),
        reason: reason.to_owned(),
    };
    match dead_letters.send(&letter).await {
        Ok(()) => {
            tracing::warn!(
                reason,
                body = crate::telemetry::truncated(&letter.body, 300),
                "moved to the dead-letter queue"
            );
            true
        }
        Err(e) => {
            tracing::warn!(reason, error = %e, "could not be dead-lettered; it returns to the queue");
            false
        }
    }
}

/// The `batchItemFailures` entry that returns one message to its queue.
pub fn retry_later(message_id: String) -> BatchItemFailure {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = message_id;
    failure
}
