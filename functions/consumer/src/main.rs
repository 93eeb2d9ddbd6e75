use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use catalog_core::aws::{clients, DynamoConnections, DynamoProducts, ManagementApiPusher};
use catalog_core::config;
use consumer::Consumer;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use tracing::{info, info_span, Instrument};

#[tokio::main]
async fn main() -> Result<(), Error> {
    catalog_core::telemetry::init();
    let sdk = clients::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let consumer = Consumer {
        products: DynamoProducts::new(dynamo.clone(), config::required("PRODUCTS_TABLE")?),
        connections: DynamoConnections::new(dynamo, config::required("CONNECTIONS_TABLE")?),
        pusher: ManagementApiPusher::new(clients::management_client(
            &sdk,
            &config::required("WS_MANAGEMENT_ENDPOINT")?,
        )),
        push_concurrency: config::parsed_or("PUSH_CONCURRENCY", 16usize)?,
    };
    let consumer = &consumer;
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
            Ok::<SqsBatchResponse, Error>(response)
        }
        .instrument(span)
        .await
    }))
    .await
}
