//! The SSE stream as a Lambda function URL with response streaming (InvokeMode
//! RESPONSE_STREAM): the crate's router, run by `lambda_http::run_with_streaming_response`.
//! A session lasts `SSE_SESSION_SECONDS`, below the function's timeout; the client then
//! reconnects with `Last-Event-ID` (EventSource does this by itself).

use std::sync::Arc;

use catalog_core::aws::{clients, DynamoChangeLog};
use catalog_core::metrics::MetricsTarget;
use lambda_http::{service_fn, Error, Request, RequestExt};
use sse_stream::{router, Settings, SseStream};
use tower::ServiceExt;
use tracing::{info_span, Instrument};

#[tokio::main]
async fn main() -> Result<(), Error> {
    catalog_core::telemetry::init();
    let settings = Settings::from_env()?;
    let metrics_target = MetricsTarget::from_env("sse-stream")?;
    let sdk = clients::sdk_config().await;
    let log = DynamoChangeLog::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        settings.change_log_table,
        settings.change_log_retention_seconds,
        settings.change_log_shards,
    );
    let app = router(Arc::new(SseStream {
        log: Arc::new(log),
        session: settings.session,
        on_session_end: Some(Box::new(move |result, elapsed| {
            let mut metrics = metrics_target.set();
            match result {
                Ok(summary) => metrics
                    .count("SseEventsSent", summary.events)
                    .count("SseHeartbeats", summary.heartbeats)
                    .count("SseSessionErrors", 0),
                Err(_) => metrics.count("SseSessionErrors", 1),
            };
            metrics
                .milliseconds("SseSessionMs", &[elapsed.as_secs_f64() * 1000.0])
                .emit();
        })),
    }));
    lambda_http::run_with_streaming_response(service_fn(move |request: Request| {
        let span = info_span!(
            "invocation",
            request_id = request
                .lambda_context_ref()
                .map(|c| c.request_id.as_str())
                .unwrap_or(""),
        );
        app.clone().oneshot(request).instrument(span)
    }))
    .await
}
