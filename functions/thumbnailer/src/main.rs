use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use catalog_core::aws::{
    clients, DynamoJobLog, DynamoProducts, S3Photos, SnsPublisher, SqsDeadLetters,
};
use catalog_core::config::FromEnv;
use catalog_core::metrics::MetricsTarget;
use catalog_core::settings::ThumbnailerSettings;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use thumbnailer::Thumbnailer;
use tracing::{info, info_span, Instrument};

#[tokio::main]
async fn main() -> Result<(), Error> {
    catalog_core::telemetry::init();
    let settings = ThumbnailerSettings::from_env()?;
    let sdk = clients::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let thumbnailer = Thumbnailer {
        bucket: Box::new(S3Photos::new(
            clients::s3_client(&sdk),
            settings.photos_bucket,
        )),
        products: Box::new(DynamoProducts::new(dynamo.clone(), settings.products_table)),
        jobs: Box::new(DynamoJobLog::new(dynamo, settings.photo_jobs_table)),
        publisher: Box::new(SnsPublisher::new(
            aws_sdk_sns::Client::new(&sdk),
            settings.changes_topic_arn,
        )),
        dead_letters: Box::new(SqsDeadLetters::new(
            aws_sdk_sqs::Client::new(&sdk),
            settings.dead_letter_queue_url,
        )),
        lease_secs: settings.job_lease_seconds,
        url_ttl: Duration::from_secs(settings.photo_url_ttl_seconds),
    };
    let metrics_target = MetricsTarget::from_env("thumbnailer")?;
    let (thumbnailer, metrics_target) = (&thumbnailer, &metrics_target);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let request_id = event.context.request_id.clone();
        let span =
            info_span!("invocation", request_id = %request_id, jobs = event.payload.records.len());
        async move {
            let (response, counts) = thumbnailer.handle_batch(event.payload, &request_id).await;
            info!(?counts, "batch done");
            metrics_target
                .set()
                .count("PhotoJobsReceived", counts.received)
                .count("ThumbnailsMade", counts.made)
                .count("PhotoJobsAlreadyDone", counts.already_done)
                .count("PhotoJobsSuperseded", counts.superseded)
                .count("PhotoJobsDeadLettered", counts.dead_lettered)
                .count("PhotoJobsFailed", counts.failed)
                .emit();
            Ok::<SqsBatchResponse, Error>(response)
        }
        .instrument(span)
        .await
    }))
    .await
}
