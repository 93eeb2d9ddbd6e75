use async_trait::async_trait;
use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;

use crate::ports::publisher::*;
use crate::ports::DownstreamError;
use crate::{ProductChanged, ProductPhotoChanged};

/// Publishes changes to the product-changes topic. Message attributes carry the
/// event type and product id so subscriptions can filter without parsing bodies.
#[derive(Clone)]
pub struct SnsPublisher {
    client: Client,
    topic_arn: String,
}

impl SnsPublisher {
    pub fn new(client: Client, topic_arn: impl Into<String>) -> Self {
        Self {
            client,
            topic_arn: topic_arn.into(),
        }
    }

    async fn publish_event(
        &self,
        event_type: &str,
        product_id: &str,
        change_id: &str,
        body: String,
    ) -> Result<String, DownstreamError> {
        let out = self
            .client
            .publish()
            .topic_arn(&self.topic_arn)
            .message(body)
            // FIFO topic: one ordered group per product; SNS drops a re-published change id within 5 minutes.
            .message_group_id(product_id)
            .message_deduplication_id(change_id)
            .message_attributes("eventType", string_attribute(event_type))
            .message_attributes("productId", string_attribute(product_id))
            .send()
            .await
            .map_err(|e| DownstreamError::aws("SNS Publish", e))?;
        Ok(out.message_id.unwrap_or_default())
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
impl ChangePublisher for SnsPublisher {
    async fn publish(&self, change: &ProductChanged) -> Result<String, DownstreamError> {
        self.publish_event(
            &change.event_type,
            &change.product_id,
            &change.change_id,
            change.to_json(),
        )
        .await
    }
}

#[async_trait]
impl PhotoChangePublisher for SnsPublisher {
    async fn publish_photo(&self, change: &ProductPhotoChanged) -> Result<String, DownstreamError> {
        self.publish_event(
            &change.event_type,
            &change.product_id,
            &change.change_id,
            change.to_json(),
        )
        .await
    }
}
