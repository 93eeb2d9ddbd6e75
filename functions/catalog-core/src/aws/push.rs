use crate::ports::push::*;
use async_trait::async_trait;
use aws_sdk_apigatewaymanagement::operation::post_to_connection::PostToConnectionError;
use aws_sdk_apigatewaymanagement::primitives::Blob;
use aws_sdk_apigatewaymanagement::Client;

/// Sends frames to clients through the API Gateway management API (PostToConnection).
#[derive(Clone)]
pub struct ManagementApiPusher {
    client: Client,
}

impl ManagementApiPusher {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl Pusher for ManagementApiPusher {
    async fn push(&self, connection_id: &str, payload: &str) -> Result<(), PushError> {
        let result = self
            .client
            .post_to_connection()
            .connection_id(connection_id)
            .data(Blob::new(payload.as_bytes()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(PostToConnectionError::GoneException(_))
                ) =>
            {
                Err(PushError::Gone)
            }
            Err(e) => Err(PushError::Failed(crate::ports::full_message(&e))),
        }
    }
}
