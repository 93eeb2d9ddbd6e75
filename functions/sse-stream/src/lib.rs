//! The SSE stream, independent of how it is served: the Lambda function URL (response
//! streaming, `main.rs`) and the local adapter (`infra/local-server`) both run
//! [`run_session`] and forward what it sends.
//!
//! Each event is one change-log entry: `id:` is the reader's [`LogPosition`] once the event
//! is read (the last sequence number of each shard), `event:` its type, `data:` the same
//! JSON a WebSocket client gets. A client that reconnects with `Last-Event-ID` gets
//! everything after that position still in the log (the retention window): nothing twice,
//! nothing skipped. Order: a product's events in version order (a product stays in one
//! shard); across shards, the order they were logged in as the session reads them.

use std::collections::BTreeSet;
use std::time::Duration;

use catalog_core::aws::{shard_of, ChangeLog, LogEntry, LogPosition, StoreError};
use catalog_core::frames::wants;
use tokio::sync::mpsc;
use tokio::time::Instant;

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
pub fn format_event(entry: &LogEntry, position: &LogPosition) -> String {
    format!(
        "id: {position}\nevent: {}\ndata: {}\n\n",
        entry.event_type, entry.data
    )
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
    out: mpsc::Sender<String>,
) -> Result<SessionSummary, StoreError> {
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
    if out
        .send(format!("retry: 1000\n: connected, after event {start}\n\n"))
        .await
        .is_err()
    {
        return Ok(left);
    }
    let mut quiet_since = Instant::now();
    while Instant::now() < ends {
        let reads = futures::future::try_join_all(
            wanted_shards
                .iter()
                .map(|&shard| log.read_after(shard, order.position.0[shard], PAGE)),
        )
        .await?;
        let full_page = reads.iter().any(|entries| entries.len() == PAGE);
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut admitted = vec![std::collections::VecDeque::new(); shards];
        for (&shard, entries) in wanted_shards.iter().zip(reads) {
            admitted[shard] = order.admit(shard, entries, now_ms).into();
        }
        for entry in merge_by_log_time(admitted) {
            sent.0[entry.shard] = entry.seq;
            if !wants(request.product_ids.as_ref(), &entry.product_id) {
                continue;
            }
            if out.send(format_event(&entry, &sent)).await.is_err() {
                return Ok(SessionSummary {
                    client_left: true,
                    ..summary
                });
            }
            summary.events += 1;
            quiet_since = Instant::now();
        }
        if quiet_since.elapsed() >= config.heartbeat {
            if out.send(": heartbeat\n\n".to_owned()).await.is_err() {
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

#[cfg(test)]
mod tests;
