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

/// Changes the visibility of returned messages (ChangeMessageVisibilityBatch), so a FIFO
/// group whose downstream failed resumes seconds after it recovers, not a timeout later.
#[derive(Clone)]
pub struct SqsRedelivery {
    client: Client,
    queue_url: String,
}

impl SqsRedelivery {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }
}

#[async_trait]
impl Redelivery for SqsRedelivery {
    async fn redeliver_after(
        &self,
        messages: &[(String, std::time::Duration)],
    ) -> Result<(), DownstreamError> {
        use aws_sdk_sqs::types::ChangeMessageVisibilityBatchRequestEntry as Entry;
        // A batch takes at most 10 entries.
        for chunk in messages.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (receipt, delay))| {
                    Entry::builder()
                        .id(i.to_string())
                        .receipt_handle(receipt)
                        .visibility_timeout(i32::try_from(delay.as_secs()).unwrap_or(i32::MAX))
                        .build()
                        .map_err(|e| DownstreamError::aws("ChangeMessageVisibilityBatch", e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .change_message_visibility_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| DownstreamError::aws("ChangeMessageVisibilityBatch", e))?;
            if let Some(failed) = out.failed().first() {
                return Err(DownstreamError::Aws {
                    operation: "ChangeMessageVisibilityBatch",
                    message: format!(
                        "{} of {} entries refused; first: {}",
                        out.failed().len(),
                        chunk.len(),
                        failed.message().unwrap_or(failed.code())
                    ),
                });
            }
        }
        Ok(())
    }
}
