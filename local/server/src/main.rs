//! The local stand-in for what the emulator can't serve, on 127.0.0.1:$PORT (default 4600):
//!   GET  /events        the SSE stream: the sse-stream crate's router, the one the Lambda
//!                       runs (MiniStack returns a streaming function URL's response only
//!                       when the invocation ends, which is no stream)
//!   ANY  /api/…         the REST API: the rest-api crate's router, in process, against the
//!                       same table, bucket and queue (MiniStack's HTTP API sends no CORS
//!                       headers, so the page reaches the API through its own origin)
//!   GET  /config.json   where the page finds the REST API and the stream
//!   GET  /metrics.json  the dashboard's figures of the last minute, from the consumer's and
//!                       the REST API's EMF log lines and the queues (web/metrics.html shows them)
//!   GET  /…             the live page's static files (web/)
//!
//! Env: as the two functions read it (PRODUCTS_TABLE, PHOTOS_BUCKET, PHOTO_JOBS_QUEUE_URL,
//! AUTH_TOKEN_SECRET, CHANGE_LOG_TABLE, SSE_SESSION_SECONDS, …), plus PORT and WEB_DIR, and for
//! the metrics CONSUMER_FUNCTION_NAME, REST_API_FUNCTION_NAME, CHANGES_QUEUE_URL,
//! CHANGES_DEAD_LETTER_QUEUE_URL and PHOTO_JOBS_DEAD_LETTER_QUEUE_URL.

mod figures;
mod metrics_source;

use std::path::PathBuf;
use std::sync::Arc;

use axum::http::{header, HeaderName, Method};
use axum::routing::get;
use axum::{Json, Router};
use catalog_core::auth::TokenVerifier;
use catalog_core::aws::{clients, DynamoChangeLog};
use catalog_core::config;
use catalog_core::config::FromEnv;
use rest_api::RestApi;
use sse_stream::SseStream;
use tower_http::cors::{Any, CorsLayer};
use tower_http::services::ServeDir;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    catalog_core::telemetry::init();
    let port: u16 = config::parsed_or("PORT", 4600)?;
    let web_dir = PathBuf::from(config::parsed_or(
        "WEB_DIR",
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../web").to_owned(),
    )?);
    let rest_settings = catalog_core::settings::RestApiSettings::from_env()?;
    // Local sessions last 5 minutes: no Lambda timeout to stay under.
    let sse_settings = sse_stream::Settings::from_env_with_session(300)?;
    let verifier = TokenVerifier::from_env()?;
    let sdk = clients::sdk_config().await;

    let (api, _breaker) = RestApi::connect(&sdk, rest_settings, verifier);
    let log = DynamoChangeLog::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        sse_settings.change_log_table,
        sse_settings.change_log_retention_seconds,
        sse_settings.change_log_shards,
    );
    let events = sse_stream::router(Arc::new(SseStream {
        log: Arc::new(log),
        session: sse_settings.session,
        on_session_end: None,
    }))
    // What the function URL's CORS settings in template.yaml allow.
    .layer(
        CorsLayer::new()
            .allow_origin(Any)
            .allow_methods([Method::GET])
            .allow_headers([HeaderName::from_static("last-event-id")]),
    );
    let metrics = Arc::new(metrics_source::MetricsSource::from_env(&sdk)?);
    let page_config = Json(
        serde_json::json!({"restUrl": "/api", "sseUrl": "/events", "metricsUrl": "/metrics.html"}),
    );
    let app = Router::new()
        .nest("/api", rest_api::router(Arc::new(api)))
        .nest("/events", events)
        .route("/config.json", get(move || async { page_config }))
        .route(
            "/metrics.json",
            get(metrics_source::metrics_json).with_state(metrics),
        )
        .fallback_service(ServeDir::new(web_dir))
        .layer(
            tower_http::set_header::SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-cache"),
            ),
        );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("local server on http://127.0.0.1:{port} (live page /, SSE /events, REST /api)");
    axum::serve(listener, app).await?;
    Ok(())
}
