//! The WebSocket API's routes: `$connect` records the connection, `$disconnect`
//! removes it, `$default` answers `subscribe` and `snapshot` frames. Replies go
//! back through PostToConnection; nothing relies on the integration's return body.

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use catalog_core::aws::{ConnectionStore, ProductStore, PushError, Pusher, StoreError};
use catalog_core::frames::{ClientFrame, ServerFrame};
use catalog_core::telemetry::truncated;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("request has no {0}")]
    BadRequest(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reply to {connection_id} failed: {reason}")]
    Reply {
        connection_id: String,
        reason: String,
    },
}

pub struct WsHandler<C, P, U> {
    pub connections: C,
    pub products: P,
    pub pusher: U,
    /// How long a connection record lives without a `$disconnect` (API Gateway closes connections after 2 h).
    pub connection_ttl_secs: i64,
}

impl<C: ConnectionStore, P: ProductStore, U: Pusher> WsHandler<C, P, U> {
    /// Handles one route event; an error answers 500, which refuses a `$connect`.
    pub async fn handle(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<(), RouteError> {
        let context = &request.request_context;
        let connection_id = context
            .connection_id
            .as_deref()
            .ok_or(RouteError::BadRequest("connectionId"))?;
        match context
            .route_key
            .as_deref()
            .ok_or(RouteError::BadRequest("routeKey"))?
        {
            "$connect" => {
                let now = chrono::Utc::now();
                self.connections
                    .add(
                        connection_id,
                        now.timestamp_millis(),
                        now.timestamp() + self.connection_ttl_secs,
                    )
                    .await?;
                info!(connection_id, "connected");
            }
            "$disconnect" => {
                self.connections.remove(connection_id).await?;
                info!(
                    connection_id,
                    reason = context.disconnect_reason.as_deref().unwrap_or(""),
                    "disconnected"
                );
            }
            // Every other route key is a message: the API routes by `action`, and anything it does not know lands in $default.
            _ => {
                self.handle_message(connection_id, request.body.as_deref().unwrap_or(""))
                    .await?
            }
        }
        Ok(())
    }

    async fn handle_message(&self, connection_id: &str, body: &str) -> Result<(), RouteError> {
        let replies = match ClientFrame::parse(body) {
            Ok(ClientFrame::Subscribe { product_ids }) => {
                if self
                    .connections
                    .set_filter(connection_id, product_ids.as_ref())
                    .await?
                {
                    info!(
                        connection_id,
                        products = product_ids.as_ref().map_or(0, |ids| ids.len()),
                        "subscribed"
                    );
                    vec![ServerFrame::Subscribed { product_ids }]
                } else {
                    vec![ServerFrame::Error {
                        code: "unknown_connection".to_owned(),
                        message: "this connection is not registered; reconnect".to_owned(),
                    }]
                }
            }
            Ok(ClientFrame::Snapshot) => ServerFrame::snapshot(self.products.all_products().await?),
            Err(err) => {
                warn!(connection_id, error = %err, body = truncated(body, 200), "refused frame");
                vec![ServerFrame::error(&err)]
            }
        };
        for reply in replies {
            match self.pusher.push(connection_id, &reply.to_json()).await {
                Ok(()) => {}
                Err(PushError::Gone) => {
                    self.connections.remove(connection_id).await?;
                    return Ok(());
                }
                Err(err) => {
                    return Err(RouteError::Reply {
                        connection_id: connection_id.to_owned(),
                        reason: err.to_string(),
                    })
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
