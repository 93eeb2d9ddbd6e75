//! The WebSocket API's routes: `$connect` records the connection, `$disconnect`
//! removes it, `$default` answers `subscribe` and `snapshot` frames. Replies go
//! back through PostToConnection; nothing relies on the integration's return body.

use aws_lambda_events::event::apigw::ApiGatewayWebsocketProxyRequest;
use catalog_core::auth::{bearer, TokenVerifier};
use std::collections::BTreeSet;
use std::time::Duration;

use catalog_core::frames::{wants, ClientFrame, ServerFrame};
use catalog_core::ports::{
    shard_of, ChangeLog, ConnectionStore, DownstreamError, LogPosition, ProductStore, PushError,
    Pusher,
};
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

/// Most change-log entries one resuming `subscribe` may read; past that the client is told
/// to take a snapshot instead (`resume_too_far`).
pub const MAX_REPLAY_ENTRIES: u64 = 1000;
/// Changes per `batch` frame of a replay: well under API Gateway's 128 KB frame.
pub const REPLAY_FRAME_CHANGES: usize = 50;
/// How long a replay waits for a numbered entry still being written (as the SSE stream does).
pub const HOLE_GRACE: Duration = Duration::from_secs(2);

pub struct WsHandler<C, P, U, L> {
    pub connections: C,
    pub products: P,
    pub pusher: U,
    /// Where a resuming client's missed changes are read from.
    pub change_log: L,
    /// Told to clients in the `subscribed` frame (`settleMs`).
    pub resume_settle_ms: u64,
    /// Checks the token a `$connect` carries (`?token=` or `Authorization: Bearer`).
    pub verifier: TokenVerifier,
    /// Frames per connection (a token bucket in this container).
    pub limiter: RateLimiter,
    /// How long a connection record lives without a `$disconnect` (API Gateway closes connections after 2 h).
    pub connection_ttl_secs: i64,
}

impl<C: ConnectionStore, P: ProductStore, U: Pusher, L: ChangeLog> WsHandler<C, P, U, L> {
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
            let frame = error_frame(
                "rate_limited",
                "too many frames from this connection; slow down",
            );
            return self
                .reply(connection_id, vec![frame], RouteOutcome::RateLimited)
                .await;
        }
        let (outcome, replies) = match ClientFrame::parse(body) {
            Ok(ClientFrame::Subscribe {
                product_ids,
                batched,
                after,
            }) => {
                self.subscribe(connection_id, product_ids, batched, after.as_deref())
                    .await?
            }
            Ok(ClientFrame::Snapshot) => match self.connections.get(connection_id).await? {
                Some(connection) => {
                    let products = match &connection.product_ids {
                        Some(ids) => self.products.products(ids).await?,
                        None => self.products.all_products().await?,
                    };
                    let frames = ServerFrame::snapshot(products);
                    (
                        RouteOutcome::SnapshotSent,
                        frames.iter().map(ServerFrame::to_json).collect(),
                    )
                }
                None => (RouteOutcome::FrameRefused, vec![unknown_connection()]),
            },
            Err(err) => {
                warn!(connection_id, error = %err, body = truncated(body, 200), "refused frame");
                (
                    RouteOutcome::FrameRefused,
                    vec![ServerFrame::error(&err).to_json()],
                )
            }
        };
        self.reply(connection_id, replies, outcome).await
    }

    /// Records the subscription, then reads the change log's head: every change numbered after
    /// it reaches this connection live (the consumer reads the connection list after numbering
    /// a change). With `after`, the changes of these products numbered between `after` and the
    /// head are sent first, in log order; the `subscribed` frame names the head.
    async fn subscribe(
        &self,
        connection_id: &str,
        product_ids: Option<BTreeSet<String>>,
        batched: bool,
        after: Option<&str>,
    ) -> Result<(RouteOutcome, Vec<String>), RouteError> {
        let after = match after
            .map(|a| LogPosition::parse(a, self.change_log.shards()))
            .transpose()
        {
            Ok(after) => after,
            Err(message) => {
                return Ok((
                    RouteOutcome::FrameRefused,
                    vec![error_frame("invalid_field", &message)],
                ))
            }
        };
        if !self
            .connections
            .subscribe(connection_id, product_ids.as_ref(), batched)
            .await?
        {
            return Ok((RouteOutcome::FrameRefused, vec![unknown_connection()]));
        }
        let head = self.change_log.head().await?;
        let mut replies = match &after {
            Some(after) => self.replay(after, &head, product_ids.as_ref()).await?,
            None => Vec::new(),
        };
        info!(
            connection_id,
            products = product_ids.as_ref().map_or(0, |ids| ids.len()),
            batched,
            resumed = after.is_some(),
            replayed_frames = replies.len(),
            "subscribed"
        );
        replies.push(
            ServerFrame::Subscribed {
                product_ids,
                batched,
                position: Some(head.to_string()),
                settle_ms: Some(self.resume_settle_ms),
            }
            .to_json(),
        );
        Ok((RouteOutcome::Subscribed, replies))
    }

    /// The changes of the wanted products numbered after `after` and up to `head`, shard by
    /// shard in log order, as `batch` frames; or one error frame when the gap is too wide to
    /// replay (the client takes a snapshot instead).
    async fn replay(
        &self,
        after: &LogPosition,
        head: &LogPosition,
        filter: Option<&BTreeSet<String>>,
    ) -> Result<Vec<String>, RouteError> {
        let shards = self.change_log.shards();
        let wanted_shards: BTreeSet<usize> = match filter {
            Some(ids) => ids.iter().map(|id| shard_of(id, shards)).collect(),
            None => (0..shards).collect(),
        };
        if let Some(shard) = (0..shards).find(|&k| after.0[k] > head.0[k]) {
            return Ok(vec![error_frame(
                "invalid_field",
                &format!("after is ahead of this change log (shard {shard}); use a position this server sent"),
            )]);
        }
        let missed: u64 = wanted_shards.iter().map(|&k| head.0[k] - after.0[k]).sum();
        if missed > MAX_REPLAY_ENTRIES {
            return Ok(vec![too_far(&format!(
                "{missed} changes were logged since that position, more than the {MAX_REPLAY_ENTRIES} a resume replays"
            ))]);
        }
        let mut changes: Vec<String> = Vec::new();
        for &shard in &wanted_shards {
            let (from, through) = (after.0[shard], head.0[shard]);
            if through == from {
                continue;
            }
            let entries = self.read_without_holes(shard, from, through).await?;
            // The first entries gone: past the log's retention (TTL), so not replayable.
            if entries.first().is_none_or(|e| e.seq != from + 1) {
                return Ok(vec![too_far(&format!(
                    "the changes after that position are no longer in the log (shard {shard})"
                ))]);
            }
            changes.extend(
                entries
                    .into_iter()
                    .filter(|e| wants(filter, &e.product_id))
                    .map(|e| e.data),
            );
        }
        Ok(changes
            .chunks(REPLAY_FRAME_CHANGES)
            .map(|chunk| ServerFrame::batch_json(chunk.iter().map(String::as_str)))
            .collect())
    }

    /// A shard's entries in `(after, through]`, waiting up to [`HOLE_GRACE`] for numbers whose
    /// entry is still being written. A number never written (its consumer died) is passed:
    /// the change's redelivery is numbered again and pushed live.
    async fn read_without_holes(
        &self,
        shard: usize,
        after: u64,
        through: u64,
    ) -> Result<Vec<catalog_core::ports::LogEntry>, RouteError> {
        let expected = usize::try_from(through - after).unwrap_or(usize::MAX);
        let deadline = tokio::time::Instant::now() + HOLE_GRACE;
        loop {
            let entries = self
                .change_log
                .read_after(shard, after, through, expected)
                .await?;
            if entries.len() >= expected || tokio::time::Instant::now() >= deadline {
                return Ok(entries);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn reply(
        &self,
        connection_id: &str,
        replies: Vec<String>,
        outcome: RouteOutcome,
    ) -> Result<RouteOutcome, RouteError> {
        for reply in replies {
            match self.pusher.push(connection_id, &reply).await {
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

fn error_frame(code: &str, message: &str) -> String {
    ServerFrame::Error {
        code: code.to_owned(),
        message: message.to_owned(),
    }
    .to_json()
}

fn too_far(why: &str) -> String {
    error_frame(
        "resume_too_far",
        &format!("{why}; send {{\"action\":\"snapshot\"}} for the current state"),
    )
}

fn unknown_connection() -> String {
    error_frame(
        "unknown_connection",
        "this connection is not registered; reconnect",
    )
}

#[cfg(test)]
mod tests;
