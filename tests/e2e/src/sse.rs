//! An SSE client read in the background, as a browser's EventSource would read it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use catalog_core::ports::LogPosition;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::{eventually, Published};

const WAIT: Duration = Duration::from_secs(60);

/// One SSE connection, read in the background: (id, event, data) per event.
pub struct SseConnection {
    events: Arc<Mutex<Vec<(LogPosition, String, String)>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl SseConnection {
    pub async fn open(url: &str, last_event_id: Option<&LogPosition>) -> SseConnection {
        SseConnection::try_open(url, last_event_id)
            .await
            .unwrap_or_else(|e| panic!("connect to the SSE stream at {url}: {e}"))
    }

    /// Opens the stream, or says why the connection could not be made.
    pub async fn try_open(
        url: &str,
        last_event_id: Option<&LogPosition>,
    ) -> std::io::Result<SseConnection> {
        let rest = url.strip_prefix("http://").expect("an http:// SSE URL");
        let (authority, path) = rest.split_at(rest.find('/').unwrap());
        let mut stream = TcpStream::connect(authority).await?;
        let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: text/event-stream\r\nConnection: close\r\n{resume}\r\n"
        );
        stream.write_all(request.as_bytes()).await?;
        let events: Arc<Mutex<Vec<(LogPosition, String, String)>>> = Arc::default();
        let sink = events.clone();
        let reader = tokio::spawn(async move {
            let mut text = String::new();
            let mut buf = [0u8; 8192];
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                text.push_str(&String::from_utf8_lossy(&buf[..n]));
                while let Some(end) = text.find("\n\n") {
                    let block: String = text.drain(..end + 2).collect();
                    let field = |name: &str| {
                        block
                            .lines()
                            .find_map(|l| l.strip_prefix(name))
                            .map(|v| v.trim().to_owned())
                    };
                    if let (Some(id), Some(event), Some(data)) =
                        (field("id:"), field("event:"), field("data:"))
                    {
                        sink.lock()
                            .unwrap()
                            .push((crate::log_position(&id), event, data));
                    }
                }
            }
        });
        Ok(SseConnection { events, reader })
    }

    /// Whether the server has ended this response (a session's end, or an error).
    pub fn is_closed(&self) -> bool {
        self.reader.is_finished()
    }

    pub fn events(&self) -> Vec<(LogPosition, String, String)> {
        self.events.lock().unwrap().clone()
    }

    pub async fn wait_for_changes(&self, changes: &[Published]) {
        self.wait_for_changes_within(changes, WAIT).await;
    }

    /// Waits at most `limit` for every change to arrive.
    pub async fn wait_for_changes_within(&self, changes: &[Published], limit: Duration) {
        eventually("the changes on the SSE stream", limit, || async {
            let events = self.events();
            changes
                .iter()
                .all(|c| events.iter().any(|e| e.2.contains(&c.change_id)))
        })
        .await;
    }

    /// Drops the connection, as a client whose network went away.
    pub fn drop_connection(self) {
        self.reader.abort();
    }
}
