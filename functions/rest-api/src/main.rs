use catalog_core::auth::TokenVerifier;
use std::sync::Arc;

use catalog_core::aws::{clients, DynamoProducts, Guarded, S3Photos, SqsPhotoJobs};
use catalog_core::breaker::{BreakerConfig, CircuitBreaker};
use catalog_core::config;
use catalog_core::metrics::MetricsTarget;
use lambda_http::{service_fn, Error, Request, RequestExt};
use rest_api::{presign_cache_from, RestApi};
use tracing::{info_span, Instrument};

#[tokio::main]
async fn main() -> Result<(), Error> {
    catalog_core::telemetry::init();
    let sdk = clients::sdk_config().await;
    // Open, it answers 503 at once instead of letting every request wait out the retries.
    let dynamo_breaker = Arc::new(CircuitBreaker::new("dynamodb", BreakerConfig::from_env()?));
    let api = RestApi {
        products: Box::new(Guarded::new(
            DynamoProducts::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                config::required("PRODUCTS_TABLE")?,
            ),
            dynamo_breaker.clone(),
        )),
        bucket: Box::new(S3Photos::new(
            clients::s3_client(&sdk),
            config::required("PHOTOS_BUCKET")?,
        )),
        jobs: Box::new(SqsPhotoJobs::new(
            aws_sdk_sqs::Client::new(&sdk),
            config::required("PHOTO_JOBS_QUEUE_URL")?,
        )),
        verifier: TokenVerifier::from_env()?,
        presigned: presign_cache_from(config::parsed_or("PHOTO_URL_TTL_SECONDS", 900)?),
        max_photo_bytes: config::parsed_or("MAX_PHOTO_BYTES", 4_000_000)?,
    };
    let metrics_target = MetricsTarget::from_env("rest-api")?;
    let (api, metrics_target, dynamo_breaker) = (&api, &metrics_target, &dynamo_breaker);
    lambda_http::run(service_fn(move |request: Request| async move {
        let span = info_span!(
            "invocation",
            request_id = request.lambda_context_ref().map(|c| c.request_id.as_str()).unwrap_or(""),
            method = %request.method(),
            path = request.uri().path(),
        );
        async move {
            let started = std::time::Instant::now();
            let response = api.handle(&request).await;
            let status = response.status().as_u16();
            let mut metrics = metrics_target.set();
            metrics
                .count("Requests", 1)
                .count("ClientErrors", usize::from((400..500).contains(&status)))
                .count("ServerErrors", usize::from(status >= 500))
                .count(
                    "PresignCacheHits",
                    usize::from(
                        response
                            .headers()
                            .get("x-presign-cache")
                            .is_some_and(|v| v == "hit"),
                    ),
                )
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
    }))
    .await
}
