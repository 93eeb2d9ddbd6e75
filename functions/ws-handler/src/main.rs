use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use catalog_core::aws::{clients, Downstreams, DynamoChangeLog};
use catalog_core::config::FromEnv;
use catalog_core::metrics::MetricsTarget;
use catalog_core::settings::WsHandlerSettings;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use tracing::{error, info_span, Instrument};
use ws_handler::{RouteOutcome, WsHandler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    catalog_core::telemetry::init();
    let settings = WsHandlerSettings::from_env()?;
    let sdk = clients::sdk_config().await;
    let downstreams = Downstreams::connect(&sdk, settings.downstreams);
    let (dynamo_breaker, management_breaker) =
        (downstreams.dynamo_breaker, downstreams.management_breaker);
    let handler = WsHandler {
        connections: downstreams.connections,
        products: downstreams.products,
        pusher: downstreams.pusher,
        change_log: DynamoChangeLog::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            settings.change_log_table,
            0,
            settings.change_log_shards,
        ),
        resume_settle_ms: settings.resume_settle_ms,
        verifier: settings.verifier,
        limiter: catalog_core::rate::RateLimiter::new(
            settings.messages_per_second,
            settings.message_burst,
        ),
        connection_ttl_secs: settings.connection_ttl_seconds,
    };
    let metrics_target = MetricsTarget::from_env("ws-handler")?;
    let (handler, metrics_target) = (&handler, &metrics_target);
    let (dynamo_breaker, management_breaker) = (&dynamo_breaker, &management_breaker);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let context = &event.payload.request_context;
            let span = info_span!(
                "invocation",
                request_id = %event.context.request_id,
                route = context.route_key.as_deref().unwrap_or(""),
                connection_id = context.connection_id.as_deref().unwrap_or(""),
            );
            async move {
                let mut response = ApiGatewayProxyResponse::default();
                let outcome = handler.handle(&event.payload).await;
                let mut metrics = metrics_target.set();
                for kind in RouteOutcome::ALL {
                    metrics.count(
                        kind.metric_name(),
                        usize::from(outcome.as_ref().ok() == Some(&kind)),
                    );
                }
                metrics.count("RouteErrors", usize::from(outcome.is_err()));
                response.status_code = match outcome {
                    Ok(RouteOutcome::ConnectRefused) => 401,
                    Ok(_) => 200,
                    Err(e) => {
                        error!(error = %e, "route failed");
                        500
                    }
                };
                metrics
                    .breaker("DynamoDb", dynamo_breaker)
                    .breaker("ManagementApi", management_breaker);
                metrics.emit();
                Ok::<ApiGatewayProxyResponse, Error>(response)
            }
            .instrument(span)
            .await
        },
    ))
    .await
}
