use catalog_core::aws::{clients, DynamoProducts, SnsPublisher};
use catalog_core::config::FromEnv;
use catalog_core::settings::GeneratorSettings;
use generator::{run_once, trigger_id, RunReport};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use tracing::{info_span, Instrument};

/// The payload is the EventBridge scheduled event (or anything, when invoked by hand): it carries no input.
#[tokio::main]
async fn main() -> Result<(), Error> {
    catalog_core::telemetry::init();
    let settings = GeneratorSettings::from_env()?;
    let sdk = clients::sdk_config().await;
    let store = DynamoProducts::new(aws_sdk_dynamodb::Client::new(&sdk), settings.products_table);
    let publisher = SnsPublisher::new(aws_sdk_sns::Client::new(&sdk), settings.changes_topic_arn);
    let products_per_run = settings.products_per_run;
    let (store, publisher) = (&store, &publisher);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let event_id = trigger_id(&event.payload);
        let span = info_span!("invocation", request_id = %event.context.request_id, event_id = %event_id);
        async move {
            let mut rng = catalog_core::generate::Rng::new();
            let report: RunReport = run_once(store, publisher, &mut rng, products_per_run).await?;
            tracing::info!(published = report.published.len(), "run done");
            Ok::<RunReport, Error>(report)
        }
        .instrument(span)
        .await
    }))
    .await
}
