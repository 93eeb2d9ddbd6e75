//! The SSE stream as a Lambda function URL with response streaming (InvokeMode
//! RESPONSE_STREAM). A session lasts `SSE_SESSION_SECONDS`, below the function's timeout;
//! the client then reconnects with `Last-Event-ID` (EventSource does this by itself).

use std::time::Duration;

use aws_lambda_events::event::lambda_function_urls::LambdaFunctionUrlRequest;
use catalog_core::aws::{clients, ChangeLog, DynamoChangeLog};
use catalog_core::config;
use catalog_core::metrics::MetricsTarget;
use lambda_runtime::streaming::{channel, Response};
use lambda_runtime::{service_fn, Error, LambdaEvent, MetadataPrelude};
use sse_stream::{run_session, SessionConfig, SseRequest};
use tokio::sync::mpsc;
use tracing::{info, info_span, warn, Instrument};

#[tokio::main]
async fn main() -> Result<(), Error> {
    catalog_core::telemetry::init();
    let sdk = clients::sdk_config().await;
    let log = DynamoChangeLog::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        config::required("CHANGE_LOG_TABLE")?,
        config::parsed_or("CHANGE_LOG_RETENTION_SECONDS", 3600)?,
        catalog_core::aws::change_log::shards_from_env()?,
    );
    let session = SessionConfig {
        max_duration: Duration::from_secs(config::parsed_or("SSE_SESSION_SECONDS", 50)?),
        ..SessionConfig::default()
    };
    // Sessions outlive the handler call (they stream after it returns), so they borrow for 'static.
    let log: &'static DynamoChangeLog = Box::leak(Box::new(log));
    let metrics_target: &'static MetricsTarget =
        Box::leak(Box::new(MetricsTarget::from_env("sse-stream")?));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<LambdaFunctionUrlRequest>| async move {
        let span = info_span!("invocation", request_id = %event.context.request_id);
        async move {
            let headers = &event.payload.headers;
            let last_event_id = headers.get("last-event-id").and_then(|v| v.to_str().ok());
            let query = event.payload.raw_query_string.as_deref().unwrap_or("");
            let (mut sender, body) = channel();
            let mut prelude = MetadataPrelude::default();
            match SseRequest::parse(last_event_id, query, log.shards()) {
                Ok(request) => {
                    prelude.status_code = http::StatusCode::OK;
                    prelude.headers.insert("content-type", "text/event-stream".parse()?);
                    prelude.headers.insert("cache-control", "no-cache".parse()?);
                    info!(last_event_id = ?request.last_event_id, "session starts");
                    let (tx, mut rx) = mpsc::channel::<String>(64);
                    tokio::spawn(async move {
                        let started = std::time::Instant::now();
                        let result = run_session(log, &request, session, tx).await;
                        let mut metrics = metrics_target.set();
                        match result {
                            Ok(summary) => {
                                info!(?summary, "session ended");
                                metrics
                                    .count("SseEventsSent", summary.events)
                                    .count("SseHeartbeats", summary.heartbeats)
                                    .count("SseSessionErrors", 0);
                            }
                            Err(e) => {
                                warn!(error = %e, "session ended by a change-log failure");
                                metrics.count("SseSessionErrors", 1);
                            }
                        }
                        metrics
                            .milliseconds("SseSessionMs", &[started.elapsed().as_secs_f64() * 1000.0])
                            .emit();
                    });
                    tokio::spawn(async move {
                        while let Some(chunk) = rx.recv().await {
                            if sender.send_data(bytes::Bytes::from(chunk)).await.is_err() {
                                break;
                            }
                        }
                    });
                }
                Err(message) => {
                    prelude.status_code = http::StatusCode::BAD_REQUEST;
                    prelude.headers.insert("content-type", "application/json".parse()?);
                    let body = serde_json::json!({"error": {"code": "bad_request", "message": message}});
                    // Sent once the runtime polls the body, which is after this returns.
                    tokio::spawn(async move {
                        let _ = sender.send_data(bytes::Bytes::from(body.to_string())).await;
                    });
                }
            }
            Ok::<_, Error>(Response { metadata_prelude: prelude, stream: body })
        }
        .instrument(span)
        .await
    }))
    .await
}
