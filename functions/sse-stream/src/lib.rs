//! The SSE stream as an axum [`Router`]: the Lambda function URL runs it with response
//! streaming (`main.rs`, `lambda_http::run_with_streaming_response`) and the local server
//! mounts the same router at `/events`. axum's [`Sse`] frames what [`run_session`] sends.
//!
//! Each event is one change-log entry: `id:` is the reader's [`LogPosition`] once the event
//! is read (the last sequence number of each shard), `event:` its type, `data:` the same
//! JSON a WebSocket client gets. The first event of a session is `ready` (no `id:`): the
//! session's start position is fixed, so a page may now load the catalogue and apply the
//! events that follow by version. A client that reconnects with `Last-Event-ID` gets
//! everything after that position still in the log (the retention window): nothing twice,
//! nothing skipped. Order: a product's events in version order (a product stays in one
//! shard); across shards, the order they were logged in as the session reads them.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use catalog_core::frames::wants;
use catalog_core::ports::{shard_of, ChangeLog, DownstreamError, LogEntry, LogPosition};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn, Instrument};

/// What the client asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseRequest {
    /// Resume after this position (the `Last-Event-ID` header, or `?lastEventId=`).
    pub last_event_id: Option<LogPosition>,
    /// Only these products (`?productIds=p-001,p-002`); `None` is everything.
    pub product_ids: Option<BTreeSet<String>>,
}

impl SseRequest {
    /// Reads a request to a log of `shards` shards.
    pub fn parse(
        last_event_id_header: Option<&str>,
        query: &str,
        shards: usize,
    ) -> Result<Self, String> {
        let mut request = SseRequest::default();
        let mut last = last_event_id_header.map(str::to_owned);
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "lastEventId" if last.is_none() => last = Some(value.into_owned()),
                "productIds" => {
                    let ids: BTreeSet<String> = value
                        .split(',')
                        .map(str::trim)
                        .filter(|id| !id.is_empty())
                        .map(str::to_owned)
                        .collect();
                    if ids.is_empty() || ids.len() > 100 {
                        return Err(
                            "productIds must list 1 to 100 product ids, comma-separated".into()
                        );
                    }
                    request.product_ids = Some(ids);
                }
                _ => {}
            }
        }
        if let Some(last) = last.filter(|l| !l.trim().is_empty()) {
            request.last_event_id = Some(LogPosition::parse(&last, shards)?);
        }
        Ok(request)
    }
}

/// One event; `position` is the reader's place once it has read `entry`.
pub fn event_of(entry: &LogEntry, position: &LogPosition) -> Event {
    Event::default()
        .id(position.to_string())
        .event(&entry.event_type)
        .data(&entry.data)
}

/// Hands out each shard's entries strictly in sequence order. Sequence numbers are taken
/// before entries are written, so two consumers can write n+1 before n: an entry after a
/// hole is held back until the hole fills, or until it has been in the log for `grace`
/// (the missing one is then lost or expired, and waiting longer would not bring it back).
#[derive(Clone, Debug)]
pub struct InOrder {
    pub position: LogPosition,
    pub grace_ms: i64,
}

impl InOrder {
    /// Admits what can go of one shard's entries (read in sequence order).
    pub fn admit(&mut self, shard: usize, entries: Vec<LogEntry>, now_ms: i64) -> Vec<LogEntry> {
        let mut out = Vec::new();
        let last = &mut self.position.0[shard];
        for entry in entries {
            if entry.seq <= *last {
                continue;
            }
            let next_in_line = entry.seq == *last + 1;
            if !next_in_line && now_ms - entry.logged_at_ms < self.grace_ms {
                break;
            }
            *last = entry.seq;
            out.push(entry);
        }
        out
    }
}

/// Interleaves the shards' admitted entries by when they were logged, keeping each shard's
/// own order.
fn merge_by_log_time(mut per_shard: Vec<std::collections::VecDeque<LogEntry>>) -> Vec<LogEntry> {
    let mut merged = Vec::new();
    while let Some(shard) = (0..per_shard.len())
        .filter(|&s| !per_shard[s].is_empty())
        .min_by_key(|&s| (per_shard[s][0].logged_at_ms, s))
    {
        merged.extend(per_shard[shard].pop_front());
    }
    merged
}

/// Entries read from one shard per poll.
const PAGE: usize = 100;

#[derive(Clone, Copy, Debug)]
pub struct SessionConfig {
    pub poll: Duration,
    pub heartbeat: Duration,
    /// A session ends after this; the client reconnects with `Last-Event-ID` (a Lambda
    /// invocation must end before its timeout).
    pub max_duration: Duration,
    pub grace: Duration,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(250),
            heartbeat: Duration::from_secs(15),
            max_duration: Duration::from_secs(50),
            grace: Duration::from_secs(2),
        }
    }
}

/// What one session sent, for its log line and metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionSummary {
    pub events: usize,
    pub heartbeats: usize,
    /// Whether the client left before the session's time was up.
    pub client_left: bool,
}

/// Streams events to `out` until the session's time is up or the client is gone.
pub async fn run_session(
    log: &dyn ChangeLog,
    request: &SseRequest,
    config: SessionConfig,
    out: mpsc::Sender<Event>,
) -> Result<SessionSummary, DownstreamError> {
    let mut summary = SessionSummary::default();
    let left = SessionSummary {
        client_left: true,
        ..SessionSummary::default()
    };
    let shards = log.shards();
    let start = match &request.last_event_id {
        Some(position) => position.clone(),
        None => log.head().await?,
    };
    // A filtered session reads only the shards its products are in.
    let wanted_shards: Vec<usize> = match &request.product_ids {
        Some(ids) => ids
            .iter()
            .map(|id| shard_of(id, shards))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
        None => (0..shards).collect(),
    };
    let mut order = InOrder {
        position: start.clone(),
        grace_ms: config.grace.as_millis() as i64,
    };
    // The id of the last event sent: it moves only as events go out.
    let mut sent = start.clone();
    let ends = Instant::now() + config.max_duration;
    // `ready` (no id, so a client's Last-Event-ID stays where it was) tells the client the
    // stream's start is fixed: whatever it loads from now on is older than what follows.
    let ready = [
        Event::default()
            .retry(Duration::from_secs(1))
            .comment(format!("connected, after event {start}")),
        Event::default()
            .event("ready")
            .data(serde_json::json!({ "position": start.to_string() }).to_string()),
    ];
    for event in ready {
        if out.send(event).await.is_err() {
            return Ok(left);
        }
    }
    let mut quiet_since = Instant::now();
    while Instant::now() < ends {
        // The counters first (one request): only a shard that moved past the session is read.
        let head = log.head().await?;
        let moved: Vec<usize> = wanted_shards
            .iter()
            .copied()
            .filter(|&shard| head.0[shard] > order.position.0[shard])
            .collect();
        let reads = futures::future::try_join_all(
            moved
                .iter()
                .map(|&shard| log.read_after(shard, order.position.0[shard], head.0[shard], PAGE)),
        )
        .await?;
        let full_page = reads.iter().any(|entries| entries.len() == PAGE);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut admitted = vec![std::collections::VecDeque::new(); shards];
        for (&shard, entries) in moved.iter().zip(reads) {
            admitted[shard] = order.admit(shard, entries, now_ms).into();
        }
        for entry in merge_by_log_time(admitted) {
            sent.0[entry.shard] = entry.seq;
            if !wants(request.product_ids.as_ref(), &entry.product_id) {
                continue;
            }
            if out.send(event_of(&entry, &sent)).await.is_err() {
                return Ok(SessionSummary {
                    client_left: true,
                    ..summary
                });
            }
            summary.events += 1;
            quiet_since = Instant::now();
        }
        if quiet_since.elapsed() >= config.heartbeat {
            if out
                .send(Event::default().comment("heartbeat"))
                .await
                .is_err()
            {
                return Ok(SessionSummary {
                    client_left: true,
                    ..summary
                });
            }
            summary.heartbeats += 1;
            quiet_since = Instant::now();
        }
        if !full_page {
            tokio::select! {
                _ = tokio::time::sleep(config.poll) => {}
                _ = out.closed() => return Ok(SessionSummary { client_left: true, ..summary }),
            }
        }
    }
    Ok(summary)
}

/// How a session ended and how long it ran; the Lambda turns it into metrics.
pub type SessionEnd = dyn Fn(&Result<SessionSummary, DownstreamError>, Duration) + Send + Sync;

/// What the stream reads from its environment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub change_log_table: String,
    pub change_log_retention_seconds: i64,
    pub change_log_shards: usize,
    pub session: SessionConfig,
}

impl Settings {
    /// `default_session_seconds` is the Lambda's (below its timeout) or the local server's.
    pub fn from_env_with_session(
        default_session_seconds: u64,
    ) -> Result<Self, catalog_core::config::ConfigError> {
        Self::read(&catalog_core::config::Env::Process, default_session_seconds)
    }

    pub fn read(
        env: &catalog_core::config::Env,
        default_session_seconds: u64,
    ) -> Result<Self, catalog_core::config::ConfigError> {
        Ok(Self {
            change_log_table: env.required("CHANGE_LOG_TABLE")?,
            change_log_retention_seconds: env.parsed_or("CHANGE_LOG_RETENTION_SECONDS", 3600)?,
            change_log_shards: catalog_core::ports::change_log::shards_of(env)?,
            session: SessionConfig {
                max_duration: Duration::from_secs(
                    env.parsed_or("SSE_SESSION_SECONDS", default_session_seconds)?,
                ),
                ..SessionConfig::default()
            },
        })
    }

    pub fn from_env() -> Result<Self, catalog_core::config::ConfigError> {
        Self::from_env_with_session(SessionConfig::default().max_duration.as_secs())
    }
}

/// What the router serves from.
pub struct SseStream {
    pub log: Arc<dyn ChangeLog>,
    pub session: SessionConfig,
    pub on_session_end: Option<Box<SessionEnd>>,
}

/// `GET /` streams events; a bad `Last-Event-ID` or `productIds` is a 400 with a JSON error.
pub fn router(stream: Arc<SseStream>) -> Router {
    Router::new().route("/", get(events)).with_state(stream)
}

async fn events(
    State(stream): State<Arc<SseStream>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let request = match SseRequest::parse(
        last_event_id,
        query.as_deref().unwrap_or(""),
        stream.log.shards(),
    ) {
        Ok(request) => request,
        Err(message) => {
            let body = serde_json::json!({"error": {"code": "bad_request", "message": message}});
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    info!(last_event_id = ?request.last_event_id, "session starts");
    let (tx, rx) = mpsc::channel::<Event>(64);
    // The session outlives this call: it streams after the response head has gone.
    tokio::spawn(
        async move {
            let started = std::time::Instant::now();
            let result = run_session(stream.log.as_ref(), &request, stream.session, tx).await;
            match &result {
                Ok(summary) => info!(?summary, "session ended"),
                Err(e) => warn!(error = %e, "session ended by a change-log failure"),
            }
            if let Some(on_end) = &stream.on_session_end {
                on_end(&result, started.elapsed());
            }
        }
        .instrument(tracing::Span::current()),
    );
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    Sse::new(events).into_response()
}

#[cfg(test)]
mod tests;
