//! Helpers for tests against the deployed stack: its outputs, SDK clients, and a
//! real WebSocket client that records every frame it receives.
//!
//! The tests are `#[ignore]`d so a plain `cargo test` needs no emulator;
//! `scripts/test` deploys the stack and runs them with `--ignored`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use catalog_core::aws::clients;
use catalog_core::aws::products::product_from_item;
use catalog_core::{Product, ProductChanged, StockAndPrice};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

pub mod http;
pub mod sse;

pub struct Stack {
    pub outputs: BTreeMap<String, String>,
    /// The WebSocket URL with a valid `?token=`.
    pub ws_url: String,
    /// The WebSocket URL as the stack gives it, without a token.
    pub ws_url_without_token: String,
    /// The REST API's base URL (`…/v1`).
    pub rest_url: String,
    /// The SSE stream (local/server's `/events` locally).
    pub sse_url: String,
    pub auth_secret: String,
    pub dynamo: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub sns: aws_sdk_sns::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub s3: aws_sdk_s3::Client,
}

impl Stack {
    /// Reads the outputs `infra/deploy.py` wrote. `STACK_OUTPUTS`, `WS_URL`, `REST_URL` and
    /// `AUTH_TOKEN_SECRET` are set by scripts/test.
    pub async fn load() -> Stack {
        let path = std::env::var("STACK_OUTPUTS").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../.local/outputs.json").to_owned()
        });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("no deployed stack ({path}: {e}); run scripts/test, which deploys one")
        });
        let outputs: BTreeMap<String, String> =
            serde_json::from_str(&text).expect("outputs are a JSON object");
        let env = |name: &str| {
            std::env::var(name)
                .unwrap_or_else(|_| panic!("{name} is not set; scripts/test sets it"))
        };
        let ws_url_without_token = env("WS_URL");
        let auth_secret = env("AUTH_TOKEN_SECRET");
        let token = catalog_core::auth::issue(auth_secret.as_bytes(), "e2e", 3600);
        let sdk = clients::sdk_config().await;
        let stack = Stack {
            outputs,
            ws_url: format!("{ws_url_without_token}?token={token}"),
            ws_url_without_token,
            rest_url: env("REST_URL"),
            sse_url: env("SSE_URL"),
            auth_secret,
            s3: clients::s3_client(&sdk),
            dynamo: aws_sdk_dynamodb::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            sns: aws_sdk_sns::Client::new(&sdk),
            lambda: aws_sdk_lambda::Client::new(&sdk),
            logs: aws_sdk_cloudwatchlogs::Client::new(&sdk),
        };
        stack.settle().await;
        stack
    }

    /// Waits until no earlier work is still flowing: the changes and photo-jobs queues are
    /// empty (visible and in flight) for three polls in a row. Every test starts from here,
    /// whatever ran before it, so none sees another test's changes arrive mid-way.
    pub async fn settle(&self) {
        let timeout = Duration::from_secs(120);
        for queue in ["ChangesQueueUrl", "PhotoJobsQueueUrl"] {
            self.wait_for_drained_queue(queue, timeout).await;
        }
    }

    /// A fresh `Authorization` header value for the REST API.
    pub fn bearer(&self) -> String {
        format!(
            "Bearer {}",
            catalog_core::auth::issue(self.auth_secret.as_bytes(), "e2e", 600)
        )
    }

    pub fn output(&self, key: &str) -> &str {
        self.outputs
            .get(key)
            .unwrap_or_else(|| panic!("stack output {key} is missing"))
    }

    /// Invokes the generator once, synchronously, and returns the changes it published.
    pub async fn run_generator(&self) -> Vec<Published> {
        self.try_run_generator()
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Invokes the generator once; says why when the invocation or the function failed.
    pub async fn try_run_generator(&self) -> Result<Vec<Published>, String> {
        let out = self
            .lambda
            .invoke()
            .function_name(self.output("GeneratorFunctionName"))
            .payload(aws_sdk_lambda::primitives::Blob::new(include_str!(
                "../../../events/generator/scheduled.json"
            )))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "invoke generator: {}",
                    aws_sdk_lambda::error::DisplayErrorContext(e)
                )
            })?;
        let payload = out.payload.map(|b| b.into_inner()).unwrap_or_default();
        if out.function_error.is_some() {
            return Err(format!(
                "generator failed: {}",
                String::from_utf8_lossy(&payload)
            ));
        }
        let report: Value = serde_json::from_slice(&payload)
            .map_err(|e| format!("generator returned no JSON ({e})"))?;
        serde_json::from_value(report["published"].clone())
            .map_err(|e| format!("the generator's report lists no published changes ({e})"))
    }

    /// Uploads a photo through the REST API, as the page and `curl` do.
    pub async fn upload_photo(
        &self,
        product_id: &str,
        content_type: &str,
        body: &[u8],
    ) -> http::HttpResponse {
        let auth = self.bearer();
        http::request(
            "PUT",
            &format!("{}/products/{product_id}/photo", self.rest_url),
            &[("authorization", &auth), ("content-type", content_type)],
            body,
        )
        .await
    }

    pub async fn object_exists(&self, key: &str) -> bool {
        self.s3
            .head_object()
            .bucket(self.output("PhotosBucketName"))
            .key(key)
            .send()
            .await
            .is_ok()
    }

    pub async fn product(&self, product_id: &str) -> Product {
        let out = self
            .dynamo
            .get_item()
            .table_name(self.output("ProductsTableName"))
            .key("productId", AttributeValue::S(product_id.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .expect("GetItem product");
        product_from_item(&out.item.expect("product exists")).expect("product item is readable")
    }

    pub async fn connection_ids(&self) -> Vec<String> {
        let out = self
            .dynamo
            .scan()
            .table_name(self.output("ConnectionsTableName"))
            .consistent_read(true)
            .send()
            .await
            .expect("Scan connections");
        out.items()
            .iter()
            .filter_map(|i| i.get("connectionId").and_then(|v| v.as_s().ok()).cloned())
            .filter(|id| !id.starts_with('#'))
            .collect()
    }

    /// The deployed connections table, as the functions write it.
    pub fn connections(&self) -> catalog_core::aws::DynamoConnections {
        catalog_core::aws::DynamoConnections::new(
            self.dynamo.clone(),
            self.output("ConnectionsTableName"),
            catalog_core::ports::connections::DEFAULT_CONNECTION_SHARDS,
        )
    }

    /// Waits until no connection record is left but those in `before`, running the generator
    /// meanwhile: a client that vanished without a close frame is removed by the 410 of the
    /// next push to it. Returns how many are left after `timeout`.
    pub async fn wait_for_connections_cleared(
        &self,
        before: &std::collections::BTreeSet<String>,
        timeout: Duration,
    ) -> usize {
        let left = || async {
            self.connection_ids()
                .await
                .into_iter()
                .filter(|id| !before.contains(id))
                .count()
        };
        let deadline = Instant::now() + timeout;
        while left().await > 0 && Instant::now() < deadline {
            let _ = self.try_run_generator().await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        left().await
    }

    /// Publishes like the generator does. `delivery` tells deliveries of the same change
    /// apart: SNS FIFO deduplicates equal ids, and these tests want at-least-once repeats.
    pub async fn publish(&self, change: &ProductChanged, delivery: u32) {
        self.sns
            .publish()
            .topic_arn(self.output("ChangesTopicArn"))
            .message(change.to_json())
            .message_group_id(&change.product_id)
            .message_deduplication_id(format!("{}-{delivery}", change.change_id))
            .send()
            .await
            .expect("SNS publish");
    }

    /// Visible plus in-flight messages in a queue.
    pub async fn queue_depth(&self, queue_url: &str) -> u64 {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("GetQueueAttributes");
        let attrs = out.attributes.unwrap_or_default();
        [
            A::ApproximateNumberOfMessages,
            A::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .map(|a| {
            attrs
                .get(a)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
    }

    /// Waits until the changes queue has been empty for three polls in a row.
    pub async fn wait_for_drained_changes_queue(&self, timeout: Duration) {
        self.wait_for_drained_queue("ChangesQueueUrl", timeout)
            .await;
    }

    /// Waits until the queue named by a stack output has been empty for three polls in a row.
    pub async fn wait_for_drained_queue(&self, queue_output: &str, timeout: Duration) {
        let url = self.output(queue_output).to_owned();
        let deadline = Instant::now() + timeout;
        let mut empty_polls = 0;
        while empty_polls < 3 {
            assert!(
                Instant::now() < deadline,
                "{queue_output} did not drain within {timeout:?} (depth {})",
                self.queue_depth(&url).await
            );
            empty_polls = if self.queue_depth(&url).await == 0 {
                empty_polls + 1
            } else {
                0
            };
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
}

/// An SSE event id as the stream writes it.
pub fn log_position(id: &str) -> catalog_core::ports::LogPosition {
    catalog_core::ports::LogPosition::parse(id, id.split('.').count())
        .unwrap_or_else(|e| panic!("{e}"))
}

impl Stack {
    /// The deployed change log, with the shard count the functions run with.
    /// Where the change log ends now: an SSE client resuming from here gets what follows.
    pub async fn change_log_head(&self) -> catalog_core::ports::LogPosition {
        use catalog_core::ports::ChangeLog;
        self.change_log()
            .await
            .head()
            .await
            .expect("change-log head")
    }

    pub async fn change_log(&self) -> catalog_core::aws::DynamoChangeLog {
        let shards = self
            .function_env("SseFunctionName", "CHANGE_LOG_SHARDS")
            .await
            .and_then(|v| v.parse().ok())
            .expect("the SSE function names CHANGE_LOG_SHARDS");
        catalog_core::aws::DynamoChangeLog::new(
            self.dynamo.clone(),
            self.output("ChangeLogTableName"),
            3600,
            shards,
        )
    }
}

/// A new change of `product` to `current` with the given version, stamped now.
pub fn change_of(product: &Product, version: u64, current: StockAndPrice) -> ProductChanged {
    ProductChanged {
        event_type: "ProductChanged".into(),
        change_id: uuid::Uuid::new_v4().to_string(),
        product_id: product.product_id.clone(),
        version,
        previous: StockAndPrice {
            price_cents: product.price_cents,
            stock: product.stock,
        },
        current,
        changed_at: chrono::Utc::now(),
    }
}

impl Stack {
    /// Every log line a function wrote at or after `since` (its CloudWatch Logs group, all streams).
    pub async fn function_logs(
        &self,
        function_output: &str,
        since: chrono::DateTime<chrono::Utc>,
    ) -> Vec<String> {
        let since_ms = since.timestamp_millis();
        let group = format!("/aws/lambda/{}", self.output(function_output));
        // The emulator writes a stream per invocation, 50 to a page: read every page, newest
        // streams first, until the streams are older than `since`.
        let mut streams = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let out = match self
                .logs
                .describe_log_streams()
                .log_group_name(&group)
                .order_by(aws_sdk_cloudwatchlogs::types::OrderBy::LastEventTime)
                .descending(true)
                .set_next_token(next.clone())
                .send()
                .await
            {
                Ok(out) => out,
                Err(_) => return Vec::new(), // no invocation has logged yet
            };
            let page = out.log_streams.unwrap_or_default();
            let older = page
                .iter()
                .any(|s| s.last_event_timestamp.is_some_and(|t| t < since_ms));
            streams.extend(page);
            next = out.next_token.filter(|t| Some(t) != next.as_ref());
            if older || next.is_none() {
                break;
            }
        }
        let mut lines = Vec::new();
        for stream in streams {
            let Some(name) = stream.log_stream_name else {
                continue;
            };
            let mut token: Option<String> = None;
            loop {
                let out = self
                    .logs
                    .get_log_events()
                    .log_group_name(&group)
                    .log_stream_name(&name)
                    .start_from_head(true)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .expect("GetLogEvents");
                let events = out.events.unwrap_or_default();
                let done = events.is_empty() || out.next_forward_token == token;
                lines.extend(
                    events
                        .into_iter()
                        .filter(|e| e.timestamp.unwrap_or(0) >= since_ms)
                        .filter_map(|e| e.message),
                );
                if done {
                    break;
                }
                token = out.next_forward_token;
            }
        }
        lines
    }

    /// The current value of one of a function's environment variables.
    pub async fn function_env(&self, function_output: &str, name: &str) -> Option<String> {
        self.lambda
            .get_function_configuration()
            .function_name(self.output(function_output))
            .send()
            .await
            .expect("config")
            .environment
            .and_then(|e| e.variables)
            .and_then(|mut vars| vars.remove(name))
    }

    /// Sets extra environment variables on a function (merged into what the template set).
    /// The emulator restarts the function's process, as Lambda starts new environments.
    pub async fn set_function_env(&self, function_output: &str, vars: &[(&str, Option<&str>)]) {
        let name = self.output(function_output).to_owned();
        let config = self
            .lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
            .expect("config");
        let mut env = config
            .environment
            .and_then(|e| e.variables)
            .unwrap_or_default();
        for (k, v) in vars {
            match v {
                Some(v) => env.insert((*k).to_owned(), (*v).to_owned()),
                None => env.remove(*k),
            };
        }
        self.lambda
            .update_function_configuration()
            .function_name(&name)
            .environment(
                aws_sdk_lambda::types::Environment::builder()
                    .set_variables(Some(env))
                    .build(),
            )
            .send()
            .await
            .expect("UpdateFunctionConfiguration");
    }

    /// Sends raw bodies to the changes queue as (group id, body), ten per SendMessageBatch.
    pub async fn send_to_changes_queue(&self, messages: &[(String, String)]) {
        for (chunk_index, chunk) in messages.chunks(10).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, (group, body))| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(format!("m{i}"))
                        .message_body(body)
                        .message_group_id(group)
                        .message_deduplication_id(format!(
                            "{}-{chunk_index}-{i}",
                            uuid::Uuid::new_v4()
                        ))
                        .build()
                        .unwrap()
                })
                .collect();
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(self.output("ChangesQueueUrl"))
                .set_entries(Some(entries))
                .send()
                .await
                .expect("SendMessageBatch");
            assert!(out.failed.is_empty(), "{:?}", out.failed);
        }
    }

    /// Takes the messages whose body contains `marker` out of the dead-letter queue and
    /// returns their bodies. They are deleted: on a FIFO queue a received message holds up
    /// the rest of its group until it is deleted or its visibility times out.
    pub async fn dead_letters_containing(&self, marker: &str) -> Vec<String> {
        let mut bodies = Vec::new();
        let mut empty_polls = 0;
        while empty_polls < 3 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(self.output("ChangesDeadLetterQueueUrl"))
                .max_number_of_messages(10)
                .visibility_timeout(60)
                .send()
                .await
                .expect("ReceiveMessage DLQ");
            let messages = out.messages.unwrap_or_default();
            empty_polls = if messages.is_empty() {
                empty_polls + 1
            } else {
                0
            };
            // A received FIFO message locks its group until it is deleted or its visibility
            // expires, so each match is deleted; otherwise the rest of its group stays hidden.
            for message in messages {
                let body = message.body.unwrap_or_default();
                if !body.contains(marker) {
                    continue;
                }
                self.sqs
                    .delete_message()
                    .queue_url(self.output("ChangesDeadLetterQueueUrl"))
                    .receipt_handle(message.receipt_handle.unwrap_or_default())
                    .send()
                    .await
                    .expect("DeleteMessage DLQ");
                bodies.push(body);
            }
        }
        bodies
    }
}

/// Switches the management API fault on (`Some(status)`) or off, through tests/tools/fault_proxy.py.
pub fn set_management_fault(status: Option<u16>) {
    use std::io::{Read, Write};
    let address = std::env::var("FAULT_PROXY")
        .expect("FAULT_PROXY is the fault proxy's host:port; scripts/test sets it");
    let body = serde_json::json!({ "status": status }).to_string();
    let mut stream = std::net::TcpStream::connect(&address).expect("connect to the fault proxy");
    write!(
        stream,
        "POST /__fault HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    assert!(
        reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200"),
        "fault proxy said: {reply}"
    );
}

/// The management API fault for as long as the guard lives: a scenario that fails mid-way
/// still leaves the proxy healthy for the tests after it.
pub struct ManagementFault;

impl ManagementFault {
    pub fn on(status: u16) -> ManagementFault {
        set_management_fault(Some(status));
        ManagementFault
    }
}

impl Drop for ManagementFault {
    fn drop(&mut self) {
        set_management_fault(None);
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Published {
    pub change_id: String,
    pub product_id: String,
    pub version: u64,
}

/// A frame and when it was read off the socket.
pub type Received = (Value, chrono::DateTime<chrono::Utc>);

/// A real WebSocket client: frames are read in the background and kept in order. A `batch`
/// frame (a batched subscription) is kept as the frames it holds, each with the batch's time.
pub struct WsClient {
    /// Every frame, with the time it was read off the socket.
    frames: Arc<Mutex<Vec<Received>>>,
    /// `batch` frames received, and how many frames they held.
    batches: Arc<Mutex<(usize, usize)>>,
    outgoing: mpsc::UnboundedSender<Message>,
    reader: tokio::task::JoinHandle<()>,
}

/// Why a WebSocket handshake did not complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The server answered the handshake with this HTTP status.
    Status(u16),
    /// No answer within the time allowed.
    TimedOut,
    /// The connection failed some other way (reset, refused by the OS...).
    Other(String),
}

impl WsClient {
    pub async fn connect(url: &str) -> WsClient {
        WsClient::try_connect(url, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e:?}"))
    }

    /// Connects, or says why not: the handshake's HTTP status, a time-out, or another failure.
    pub async fn try_connect(url: &str, timeout: Duration) -> Result<WsClient, Refusal> {
        use tokio_tungstenite::tungstenite::Error;
        let (socket, _) =
            match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(url)).await {
                Err(_) => return Err(Refusal::TimedOut),
                Ok(Err(Error::Http(response))) => {
                    return Err(Refusal::Status(response.status().as_u16()))
                }
                Ok(Err(other)) => return Err(Refusal::Other(other.to_string())),
                Ok(Ok(connected)) => connected,
            };
        let (mut sink, mut stream) = socket.split();
        let frames = Arc::new(Mutex::new(Vec::new()));
        let batches = Arc::new(Mutex::new((0, 0)));
        let (outgoing, mut queue) = mpsc::unbounded_channel::<Message>();
        let recorded = frames.clone();
        let batches_seen = batches.clone();
        let reader = tokio::spawn(async move {
            loop {
                tokio::select! {
                    msg = queue.recv() => match msg {
                        Some(m) => { let close = matches!(m, Message::Close(_)); if sink.send(m).await.is_err() || close { break } }
                        None => break,
                    },
                    frame = stream.next() => match frame {
                        Some(Ok(Message::Text(text))) => {
                            let received = chrono::Utc::now();
                            let value = serde_json::from_str(text.as_str()).unwrap_or_else(|_| Value::String(text.to_string()));
                            match (value["type"].as_str(), value["frames"].as_array()) {
                                (Some("batch"), Some(inner)) => {
                                    let mut seen = batches_seen.lock().unwrap();
                                    seen.0 += 1;
                                    seen.1 += inner.len();
                                    recorded.lock().unwrap().extend(inner.iter().map(|f| (f.clone(), received)));
                                }
                                _ => recorded.lock().unwrap().push((value, received)),
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                }
            }
        });
        Ok(WsClient {
            frames,
            batches,
            outgoing,
            reader,
        })
    }

    /// Connects and subscribes (`None`: every product), and waits for the server's ack.
    pub async fn subscribed(url: &str, product_ids: Option<&[&str]>) -> WsClient {
        WsClient::subscribed_as(url, product_ids, false).await
    }

    /// As `subscribed`; `batched` asks for a batch's changes in one `batch` frame.
    pub async fn subscribed_as(url: &str, product_ids: Option<&[&str]>, batched: bool) -> WsClient {
        let client = WsClient::connect(url).await;
        let mut frame = serde_json::json!({"action": "subscribe"});
        if let Some(ids) = product_ids {
            frame["productIds"] = serde_json::json!(ids);
        }
        if batched {
            frame["batched"] = Value::Bool(true);
        }
        client.send(frame.to_string());
        client
            .wait_for("subscribe ack", Duration::from_secs(30), |f| {
                f.iter().any(|f| f["type"] == "subscribed")
            })
            .await;
        client
    }

    pub fn send(&self, text: impl Into<String>) {
        assert!(self.try_send(text), "client is open");
    }

    /// Sends a text frame; false when the connection has already ended.
    pub fn try_send(&self, text: impl Into<String>) -> bool {
        self.outgoing.send(Message::text(text.into())).is_ok()
    }

    /// The `batch` frames received so far, and how many frames they held in all.
    pub fn batches(&self) -> (usize, usize) {
        *self.batches.lock().unwrap()
    }

    /// Whether the connection is still up (the server has not closed or dropped it).
    pub fn is_open(&self) -> bool {
        !self.reader.is_finished()
    }

    pub fn frames(&self) -> Vec<Value> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .map(|(f, _)| f.clone())
            .collect()
    }

    /// The frames after the first `skip`, each with the time it arrived.
    pub fn frames_since(&self, skip: usize) -> Vec<Received> {
        self.frames
            .lock()
            .unwrap()
            .iter()
            .skip(skip)
            .cloned()
            .collect()
    }

    pub fn frames_of_type(&self, kind: &str) -> Vec<Value> {
        self.frames()
            .into_iter()
            .filter(|f| f["type"] == kind)
            .collect()
    }

    /// Waits until `done` holds for the frames received so far.
    pub async fn wait_for(&self, what: &str, timeout: Duration, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.frames()) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {timeout:?} waiting for {what}; got {:#?}",
                self.frames()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A clean close: the server sees $disconnect.
    pub async fn close(self) {
        let _ = self.outgoing.send(Message::Close(None));
        let _ = tokio::time::timeout(Duration::from_secs(5), self.reader).await;
    }

    /// Vanishes without a close frame, like a client whose network dropped.
    pub fn abandon(self) {
        self.reader.abort();
    }
}

/// A real PNG of `side`×`side` pixels.
pub fn png(side: u32, shade: u8) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let pixels: Vec<u8> = (0..side * side)
        .flat_map(|i| [shade, (i % 251) as u8, 200])
        .collect();
    let mut writer = encoder.write_header().unwrap();
    writer.write_image_data(&pixels).unwrap();
    drop(writer);
    out
}

/// Versions per product, in the order a client received them.
pub fn versions_by_product(frames: &[Value]) -> BTreeMap<String, Vec<u64>> {
    let mut map: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for f in frames.iter().filter(|f| f["type"] == "productChanged") {
        map.entry(f["productId"].as_str().unwrap_or_default().to_owned())
            .or_default()
            .push(f["version"].as_u64().unwrap_or_default());
    }
    map
}

/// A setting from the environment, or `default` when it is unset or unreadable.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value at percentile `p` of sorted values (nearest rank); NaN when there are none.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// The process ids of every running Lambda `bootstrap` (the emulator runs one per warm
/// function instance, as a local process).
pub fn bootstrap_pids() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| {
            std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == "bootstrap")
        })
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Restarts the emulator through the command scripts/test and scripts/soak name in
/// EMULATOR_RESTART (scripts/emulator restart: SIGTERM, which saves the persisted state,
/// then start again).
pub fn restart_emulator() {
    let command = std::env::var("EMULATOR_RESTART").expect(
        "EMULATOR_RESTART names the command that restarts the emulator; scripts/test sets it",
    );
    let status = std::process::Command::new("bash")
        .arg("-c")
        .arg(&command)
        .status()
        .expect("run the emulator restart command");
    assert!(status.success(), "`{command}` failed: {status}");
}

/// Polls `check` until it returns true.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
