use aws_lambda_events::event::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use catalog_core::aws::{clients, Downstreams};
use catalog_core::config;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use tracing::{error, info_span, Instrument};
use ws_handler::WsHandler;

#[tokio::main]
async fn main() -> Result<(), Error> {
    catalog_core::telemetry::init();
    let sdk = clients::sdk_config().await;
    let downstreams = Downstreams::from_env(&sdk)?;
    let handler = WsHandler {
        connections: downstreams.connections,
        products: downstreams.products,
        pusher: downstreams.pusher,
        connection_ttl_secs: config::parsed_or("CONNECTION_TTL_SECONDS", 7200)?,
    };
    let handler = &handler;
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
                response.status_code = match handler.handle(&event.payload).await {
                    Ok(()) => 200,
                    Err(e) => {
                        error!(error = %e, "route failed");
                        500
                    }
                };
                Ok::<ApiGatewayProxyResponse, Error>(response)
            }
            .instrument(span)
            .await
        },
    ))
    .await
}
