use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_sqs::types::MessageAttributeValue;
use aws_sdk_sqs::Client;

use crate::ports::dead_letters::*;
use crate::ports::DownstreamError;

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
    async fn send(&self, letter: &DeadLetter) -> Result<(), DownstreamError> {
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
        .map_err(|e| DownstreamError::aws("SQS SendMessage (dead-letter queue)", e))?;
        Ok(())
    }
}
