//! The SSE stream, independent of how it is served: the Lambda function URL (response
//! streaming, `main.rs`) and the local adapter (`infra/local-server`) both run
//! [`run_session`] and forward what it sends.
//!
//! Each event is one change-log entry: `id:` is its global sequence number, `event:` its
//! type, `data:` the same JSON a WebSocket client gets. A client that reconnects with
//! `Last-Event-ID` gets everything after that id still in the log (the retention window).

use std::collections::BTreeSet;
use std::time::Duration;

use catalog_core::aws::{ChangeLog, LogEntry, StoreError};
use catalog_core::frames::wants;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// What the client asked for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseRequest {
    /// Resume after this sequence number (the `Last-Event-ID` header, or `?lastEventId=`).
    pub last_event_id: Option<u64>,
    /// Only these products (`?productIds=p-001,p-002`); `None` is everything.
    pub product_ids: Option<BTreeSet<String>>,
}

impl SseRequest {
    pub fn parse(last_event_id_header: Option<&str>, query: &str) -> Result<Self, String> {
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
            request.last_event_id = Some(last.trim().parse().map_err(|_| {
                format!("Last-Event-ID {last:?} is not an event id of this stream")
            })?);
        }
        Ok(request)
    }
}

pub fn format_event(entry: &LogEntry) -> String {
    format!(
        "id: {}\nevent: {}\ndata: {}\n\n",
        entry.seq, entry.event_type, entry.data
    )
}

/// Hands out log entries strictly in sequence order. Sequence numbers are taken before
/// entries are written, so two consumers can write n+1 before n: an entry after a hole
/// is held back until the hole fills, or until it has been in the log for `grace` (the
/// missing one is then lost or expired, and waiting longer would not bring it back).
#[derive(Clone, Debug)]
pub struct InOrder {
    pub last: u64,
    pub grace_ms: i64,
}

impl InOrder {
    pub fn admit(&mut self, entries: Vec<LogEntry>, now_ms: i64) -> Vec<LogEntry> {
        let mut out = Vec::new();
        for entry in entries {
            if entry.seq <= self.last {
                continue;
            }
            let next_in_line = entry.seq == self.last + 1;
            if !next_in_line && now_ms - entry.logged_at_ms < self.grace_ms {
                break;
            }
            self.last = entry.seq;
            out.push(entry);
        }
        out
    }
}

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
    let start = match request.last_event_id {
        Some(id) => id,
        None => log.head().await?,
    };
    let mut order = InOrder {
        last: start,
        grace_ms: config.grace.as_millis() as i64,
    };
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
        let entries = log.read_after(order.last, 100).await?;
        let full_page = entries.len() == 100;
        for entry in order.admit(entries, chrono::Utc::now().timestamp_millis()) {
            if !wants(request.product_ids.as_ref(), &entry.product_id) {
                continue;
            }
            if out.send(format_event(&entry)).await.is_err() {
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
