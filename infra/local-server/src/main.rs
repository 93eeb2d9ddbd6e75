//! Serves, on 127.0.0.1:$PORT (default 4600):
//!   GET /events        the SSE stream: the same `sse_stream::run_session` the Lambda runs,
//!                      written straight to the socket (MiniStack returns a streaming
//!                      function URL's response only when the invocation ends)
//!   GET /api/…         the REST API (REST_URL), proxied: MiniStack's HTTP API sends no CORS
//!                      headers, so the page reaches it through its own origin
//!   GET /config.json   where the page finds the REST API and the stream
//!   GET /…             the live page's static files (web/)
//!
//! Env: CHANGE_LOG_TABLE, REST_URL, WEB_DIR, PORT, SSE_SESSION_SECONDS (AWS_ENDPOINT_URL as usual).

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use catalog_core::aws::{clients, ChangeLog, DynamoChangeLog};
use catalog_core::config;
use sse_stream::{run_session, SessionConfig, SseRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tracing::{info, warn};

struct Server {
    log: DynamoChangeLog,
    session: SessionConfig,
    web_dir: PathBuf,
    config_json: String,
    /// The REST API as `host:port` and base path (`/_aws/execute-api/{id}/v1`).
    rest_authority: String,
    rest_base: String,
}

struct Request {
    method: String,
    path: String,
    query: String,
    last_event_id: Option<String>,
    if_none_match: Option<String>,
}

async fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 32 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    Some(Request {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        last_event_id: header("last-event-id"),
        if_none_match: header("if-none-match"),
    })
}

async fn respond(stream: &mut TcpStream, status: &str, content_type: &str, body: &[u8]) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body).await;
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

impl Server {
    async fn serve(self: Arc<Self>, mut stream: TcpStream) {
        let Some(request) = read_request(&mut stream).await else {
            return;
        };
        if request.method != "GET" {
            return respond(
                &mut stream,
                "405 Method Not Allowed",
                "text/plain",
                b"GET only",
            )
            .await;
        }
        match request.path.as_str() {
            "/events" => self.events(stream, &request).await,
            path if path.starts_with("/api/") => self.proxy(&mut stream, &request).await,
            "/config.json" => {
                respond(
                    &mut stream,
                    "200 OK",
                    "application/json",
                    self.config_json.as_bytes(),
                )
                .await
            }
            path => self.static_file(&mut stream, path).await,
        }
    }

    async fn events(&self, mut stream: TcpStream, request: &Request) {
        let sse = match SseRequest::parse(
            request.last_event_id.as_deref(),
            &request.query,
            self.log.shards(),
        ) {
            Ok(sse) => sse,
            Err(message) => {
                let body =
                    serde_json::json!({"error": {"code": "bad_request", "message": message}});
                return respond(
                    &mut stream,
                    "400 Bad Request",
                    "application/json",
                    body.to_string().as_bytes(),
                )
                .await;
            }
        };
        let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\n\r\n";
        if stream.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let (tx, mut rx) = mpsc::channel::<String>(64);
        let writer = tokio::spawn(async move {
            while let Some(chunk) = rx.recv().await {
                if stream.write_all(chunk.as_bytes()).await.is_err() {
                    break; // the client left: dropping rx ends the session
                }
            }
        });
        info!(last_event_id = ?sse.last_event_id, "SSE session starts");
        match run_session(&self.log as &dyn ChangeLog, &sse, self.session, tx).await {
            Ok(summary) => info!(?summary, "SSE session ended"),
            Err(e) => warn!(error = %e, "SSE session ended by a change-log failure"),
        }
        let _ = writer.await;
    }

    async fn proxy(&self, stream: &mut TcpStream, request: &Request) {
        let target = format!(
            "{}{}{}{}",
            self.rest_base,
            &request.path["/api".len()..],
            if request.query.is_empty() { "" } else { "?" },
            request.query
        );
        let mut head = format!(
            "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
            self.rest_authority
        );
        if let Some(tag) = &request.if_none_match {
            head.push_str(&format!("If-None-Match: {tag}\r\n"));
        }
        head.push_str("\r\n");
        let answer = async {
            let mut upstream = TcpStream::connect(&self.rest_authority).await?;
            upstream.write_all(head.as_bytes()).await?;
            let mut response = Vec::new();
            upstream.read_to_end(&mut response).await?;
            Ok::<_, std::io::Error>(response)
        };
        match answer.await {
            Ok(response) => {
                let _ = stream.write_all(&response).await;
            }
            Err(e) => {
                let body =
                    serde_json::json!({"error": {"code": "unavailable", "message": e.to_string()}});
                respond(
                    stream,
                    "502 Bad Gateway",
                    "application/json",
                    body.to_string().as_bytes(),
                )
                .await
            }
        }
    }

    async fn static_file(&self, stream: &mut TcpStream, path: &str) {
        let relative = Path::new(path.trim_start_matches('/'));
        if relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
            && path != "/"
        {
            return respond(stream, "400 Bad Request", "text/plain", b"bad path").await;
        }
        let mut file = self.web_dir.join(relative);
        if path == "/" || file.is_dir() {
            file = file.join("index.html");
        }
        match tokio::fs::read(&file).await {
            Ok(bytes) => respond(stream, "200 OK", content_type(&file), &bytes).await,
            Err(_) => respond(stream, "404 Not Found", "text/plain", b"not found").await,
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    catalog_core::telemetry::init();
    let sdk = clients::sdk_config().await;
    let port: u16 = config::parsed_or("PORT", 4600)?;
    let rest_url = config::required("REST_URL")?;
    let (rest_authority, rest_base) = rest_url
        .strip_prefix("http://")
        .and_then(|rest| rest.split_once('/'))
        .map(|(authority, base)| (authority.to_owned(), format!("/{base}")))
        .ok_or("REST_URL must be http://host:port/path (the local REST API)")?;
    let server = Arc::new(Server {
        log: DynamoChangeLog::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config::required("CHANGE_LOG_TABLE")?,
            3600,
            catalog_core::aws::change_log::shards_from_env()?,
        ),
        session: SessionConfig {
            max_duration: Duration::from_secs(config::parsed_or("SSE_SESSION_SECONDS", 300)?),
            ..SessionConfig::default()
        },
        web_dir: PathBuf::from(config::parsed_or(
            "WEB_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../web").to_owned(),
        )?),
        config_json: serde_json::json!({"restUrl": "/api", "sseUrl": "/events"}).to_string(),
        rest_authority,
        rest_base,
    });
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("local server on http://127.0.0.1:{port} (live page /, SSE /events)");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(server.clone().serve(stream));
    }
}
