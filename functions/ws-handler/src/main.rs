use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use catalog_core::aws::{clients, Downstreams};
use catalog_core::config;
use catalog_core::metrics::MetricsTarget;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use tracing::{error, info_span, Instrument};
use ws_handler::{RouteOutcome, WsHandler};

#[tokio::main]
async fn main() -> Result<(), Error> {
    catalog_core::telemetry::init();
    let sdk = clients::sdk_config().await;
    let Downstreams {
        products,
        connections,
        pusher,
        dynamo_breaker,
        management_breaker,
    } = Downstreams::from_env(&sdk)?;
    let handler = WsHandler {
        connections,
        products,
        pusher,
        verifier: catalog_core::auth::TokenVerifier::from_env()?,
        limiter: catalog_core::rate::RateLimiter::new(
            config::parsed_or("WS_MESSAGES_PER_SECOND", 10.0)?,
            config::parsed_or("WS_MESSAGE_BURST", 20)?,
        ),
        connection_ttl_secs: config::parsed_or("CONNECTION_TTL_SECONDS", 7200)?,
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
