//! The WebSocket API's routes: `$connect` records the connection, `$disconnect`
//! removes it, `$default` answers `subscribe` and `snapshot` frames. Replies go
//! back through PostToConnection; nothing relies on the integration's return body.

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use catalog_core::auth::{bearer, TokenVerifier};
use catalog_core::frames::{ClientFrame, ServerFrame};
use catalog_core::ports::{ConnectionStore, DownstreamError, ProductStore, PushError, Pusher};
use catalog_core::rate::RateLimiter;
use catalog_core::telemetry::truncated;
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("request has no {0}")]
    BadRequest(&'static str),
    #[error(transparent)]
    Store(#[from] DownstreamError),
    #[error("reply to {connection_id} failed: {reason}")]
    Reply {
        connection_id: String,
        reason: String,
    },
}

/// What one route event did; the function counts these as metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteOutcome {
    Connected,
    /// `$connect` without a valid token: answered 401 before any record is written.
    ConnectRefused,
    Disconnected,
    Subscribed,
    SnapshotSent,
    /// A frame that could not be parsed or is not allowed; it was answered with an error frame.
    FrameRefused,
    /// The client was gone before the reply reached it; its record was removed.
    ReplyGone,
    /// Over the per-connection frame rate: answered with a `rate_limited` error frame.
    RateLimited,
}

impl RouteOutcome {
    /// The EMF metric that counts this outcome (docs/operations.md).
    pub fn metric_name(self) -> &'static str {
        match self {
            RouteOutcome::Connected => "Connects",
            RouteOutcome::ConnectRefused => "ConnectsRefused",
            RouteOutcome::Disconnected => "Disconnects",
            RouteOutcome::Subscribed => "Subscriptions",
            RouteOutcome::SnapshotSent => "SnapshotsSent",
            RouteOutcome::FrameRefused => "FramesRefused",
            RouteOutcome::ReplyGone => "RepliesGone",
            RouteOutcome::RateLimited => "FramesRateLimited",
        }
    }

    pub const ALL: [RouteOutcome; 8] = [
        RouteOutcome::Connected,
        RouteOutcome::ConnectRefused,
        RouteOutcome::Disconnected,
        RouteOutcome::Subscribed,
        RouteOutcome::SnapshotSent,
        RouteOutcome::FrameRefused,
        RouteOutcome::ReplyGone,
        RouteOutcome::RateLimited,
    ];
}

pub struct WsHandler<C, P, U> {
    pub connections: C,
    pub products: P,
    pub pusher: U,
    /// Checks the token a `$connect` carries (`?token=` or `Authorization: Bearer`).
    pub verifier: TokenVerifier,
    /// Frames per connection (a token bucket in this container).
    pub limiter: RateLimiter,
    /// How long a connection record lives without a `$disconnect` (API Gateway closes connections after 2 h).
    pub connection_ttl_secs: i64,
}

impl<C: ConnectionStore, P: ProductStore, U: Pusher> WsHandler<C, P, U> {
    /// Handles one route event; an error answers 500, which refuses a `$connect`.
    pub async fn handle(
        &self,
        request: &ApiGatewayWebsocketProxyRequest,
    ) -> Result<RouteOutcome, RouteError> {
        let context = &request.request_context;
        let connection_id = context
            .connection_id
            .as_deref()
            .ok_or(RouteError::BadRequest("connectionId"))?;
        let outcome = match context
            .route_key
            .as_deref()
            .ok_or(RouteError::BadRequest("routeKey"))?
        {
            "$connect" => {
                let token = request.query_string_parameters.first("token").or_else(|| {
                    bearer(
                        request
                            .headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok()),
                    )
                });
                if let Err(err) = self.verifier.verify(token) {
                    warn!(connection_id, error = %err, "connect refused");
                    return Ok(RouteOutcome::ConnectRefused);
                }
                let now = chrono::Utc::now();
                self.connections
                    .add(
                        connection_id,
                        now.timestamp_millis(),
                        now.timestamp() + self.connection_ttl_secs,
                    )
                    .await?;
                info!(connection_id, "connected");
                RouteOutcome::Connected
            }
            "$disconnect" => {
                self.limiter.forget(connection_id);
                self.connections.remove(connection_id).await?;
                info!(
                    connection_id,
                    reason = context.disconnect_reason.as_deref().unwrap_or(""),
                    "disconnected"
                );
                RouteOutcome::Disconnected
            }
            // Every other route key is a message: the API routes by `action`, and anything it does not know lands in $default.
            _ => {
                self.handle_message(connection_id, request.body.as_deref().unwrap_or(""))
                    .await?
            }
        };
        Ok(outcome)
    }

    async fn handle_message(
        &self,
        connection_id: &str,
        body: &str,
    ) -> Result<RouteOutcome, RouteError> {
        if !self.limiter.allow(connection_id, std::time::Instant::now()) {
            let frame = ServerFrame::Error {
                code: "rate_limited".to_owned(),
                message: "too many frames from this connection; slow down".to_owned(),
            };
            return self
                .reply(connection_id, vec![frame], RouteOutcome::RateLimited)
                .await;
        }
        let (outcome, replies) = match ClientFrame::parse(body) {
            Ok(ClientFrame::Subscribe {
                product_ids,
                batched,
            }) => {
                if self
                    .connections
                    .subscribe(connection_id, product_ids.as_ref(), batched)
                    .await?
                {
                    info!(
                        connection_id,
                        products = product_ids.as_ref().map_or(0, |ids| ids.len()),
                        batched,
                        "subscribed"
                    );
                    (
                        RouteOutcome::Subscribed,
                        vec![ServerFrame::Subscribed {
                            product_ids,
                            batched,
                        }],
                    )
                } else {
                    (
                        RouteOutcome::FrameRefused,
                        vec![ServerFrame::Error {
                            code: "unknown_connection".to_owned(),
                            message: "this connection is not registered; reconnect".to_owned(),
                        }],
                    )
                }
            }
            Ok(ClientFrame::Snapshot) => (
                RouteOutcome::SnapshotSent,
                ServerFrame::snapshot(self.products.all_products().await?),
            ),
            Err(err) => {
                warn!(connection_id, error = %err, body = truncated(body, 200), "refused frame");
                (RouteOutcome::FrameRefused, vec![ServerFrame::error(&err)])
            }
        };
        self.reply(connection_id, replies, outcome).await
    }

    async fn reply(
        &self,
        connection_id: &str,
        replies: Vec<ServerFrame>,
        outcome: RouteOutcome,
    ) -> Result<RouteOutcome, RouteError> {
        for reply in replies {
            match self.pusher.push(connection_id, &reply.to_json()).await {
                Ok(()) => {}
                Err(PushError::Gone) => {
                    self.connections.remove(connection_id).await?;
                    return Ok(RouteOutcome::ReplyGone);
                }
                Err(err) => {
                    return Err(RouteError::Reply {
                        connection_id: connection_id.to_owned(),
                        reason: err.to_string(),
                    })
                }
            }
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests;
