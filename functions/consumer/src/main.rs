use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use catalog_core::aws::{clients, Downstreams, DynamoChangeLog, SqsDeadLetters, SqsRedelivery};
use catalog_core::config::FromEnv;
use catalog_core::metrics::MetricsTarget;
use catalog_core::settings::ConsumerSettings;
use consumer::{faults::Faults, Consumer};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use std::time::Duration;
use tracing::{info, info_span, Instrument};

// One thread: a Lambda below 1,769 MB has one vCPU, and the handler's work (the pushes above
// all) is I/O that one thread drives; a multi-thread runtime only adds cross-thread wake-ups.
// Measured in BENCHMARKS.md (fan-out).
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    catalog_core::telemetry::init();
    let settings = ConsumerSettings::from_env()?;
    let sdk = clients::sdk_config().await;
    let Downstreams {
        products,
        connections,
        pusher,
        dynamo_breaker,
        management_breaker,
    } = Downstreams::connect(&sdk, settings.downstreams);
    let consumer = Consumer {
        products,
        connections,
        pusher,
        dead_letters: SqsDeadLetters::new(
            aws_sdk_sqs::Client::new(&sdk),
            settings.dead_letter_queue_url,
        ),
        redelivery: Box::new(SqsRedelivery::new(
            aws_sdk_sqs::Client::new(&sdk),
            settings.queue_url,
        )),
        retry_base: Duration::from_millis(settings.retry_base_ms),
        retry_max: Duration::from_millis(settings.retry_max_ms),
        change_log: DynamoChangeLog::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            settings.change_log_table,
            settings.change_log_retention_seconds,
            settings.change_log_shards,
        ),
        push_concurrency: settings.push_concurrency,
        group_concurrency: settings.group_concurrency,
        connection_view: Default::default(),
        faults: Faults::from_env(),
    };
    let metrics_target = MetricsTarget::from_env("consumer")?;
    let (consumer, metrics_target) = (&consumer, &metrics_target);
    let (dynamo_breaker, management_breaker) = (&dynamo_breaker, &management_breaker);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        let span = info_span!("invocation", request_id = %event.context.request_id, messages = event.payload.records.len());
        async move {
            let (response, counts) = consumer.handle_batch(event.payload).await;
            info!(
                received = counts.received,
                applied = counts.applied,
                duplicate = counts.duplicate,
                stale = counts.stale,
                malformed = counts.malformed,
                failed = counts.failed,
                pushes_sent = counts.pushes_sent,
                pushes_gone = counts.pushes_gone,
                pushes_failed = counts.pushes_failed,
                "batch done"
            );
            let mut metrics = metrics_target.set();
            counts.add_to(&mut metrics);
            metrics.breaker("DynamoDb", dynamo_breaker).breaker("ManagementApi", management_breaker);
            metrics.emit();
            Ok::<SqsBatchResponse, Error>(response)
        }
        .instrument(span)
        .await
    }))
    .await
}
