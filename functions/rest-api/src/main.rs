//! The REST API in Lambda: the axum router, run by `lambda_http` behind the HTTP API, with
//! one span and one EMF metrics line per request.

use std::sync::Arc;

use catalog_core::auth::TokenVerifier;
use catalog_core::aws::clients;
use catalog_core::config::FromEnv;
use catalog_core::metrics::MetricsTarget;
use catalog_core::settings::RestApiSettings;
use lambda_http::{service_fn, Error, Request, RequestExt};
use rest_api::{below_stage, router, RestApi, PRESIGN_CACHE_HEADER};
use tower::ServiceExt;
use tracing::{info_span, Instrument};

#[tokio::main]
async fn main() -> Result<(), Error> {
    catalog_core::telemetry::init();
    let settings = RestApiSettings::from_env()?;
    let verifier = TokenVerifier::from_env()?;
    let metrics_target = MetricsTarget::from_env("rest-api")?;
    let sdk = clients::sdk_config().await;
    let (api, dynamo_breaker) = RestApi::connect(&sdk, settings, verifier);
    let app = router(Arc::new(api));
    let (metrics_target, dynamo_breaker) = (&metrics_target, &dynamo_breaker);
    lambda_http::run(service_fn(move |request: Request| {
        let app = app.clone();
        async move {
            let span = info_span!(
                "invocation",
                request_id = request.lambda_context_ref().map(|c| c.request_id.as_str()).unwrap_or(""),
                method = %request.method(),
                path = request.uri().path(),
            );
            async move {
                let started = std::time::Instant::now();
                let response = app.oneshot(below_stage(request)).await?;
                let status = response.status().as_u16();
                let presign_hit = response
                    .headers()
                    .get(PRESIGN_CACHE_HEADER)
                    .is_some_and(|v| v == "hit");
                let mut metrics = metrics_target.set();
                metrics
                    .count("Requests", 1)
                    .count("ClientErrors", usize::from((400..500).contains(&status)))
                    .count("ServerErrors", usize::from(status >= 500))
                    .count("PresignCacheHits", usize::from(presign_hit))
                    .milliseconds(
                        "RequestLatencyMs",
                        &[started.elapsed().as_secs_f64() * 1000.0],
                    )
                    .breaker("DynamoDb", dynamo_breaker);
                metrics.emit();
                tracing::info!(status, "answered");
                Ok::<_, Error>(response)
            }
            .instrument(span)
            .await
        }
    }))
    .await
}
