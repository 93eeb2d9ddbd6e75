use std::sync::Arc;

use aws_config::SdkConfig;

use super::{clients, DynamoConnections, DynamoProducts, Guarded, ManagementApiPusher};
use crate::breaker::CircuitBreaker;
use crate::settings::DownstreamSettings;

/// The products and connections tables and the management API, each behind its
/// downstream's circuit breaker (one for DynamoDB, one for the management API),
/// built once per container from the environment the template sets.
pub struct Downstreams {
    pub products: Guarded<DynamoProducts>,
    pub connections: Guarded<DynamoConnections>,
    pub pusher: Guarded<ManagementApiPusher>,
    pub dynamo_breaker: Arc<CircuitBreaker>,
    pub management_breaker: Arc<CircuitBreaker>,
}

impl Downstreams {
    pub fn connect(sdk: &SdkConfig, settings: DownstreamSettings) -> Self {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let dynamo_breaker = Arc::new(CircuitBreaker::new("dynamodb", settings.breaker.clone()));
        let management_breaker = Arc::new(CircuitBreaker::new("management-api", settings.breaker));
        Self {
            products: Guarded::new(
                DynamoProducts::new(dynamo.clone(), settings.products_table),
                dynamo_breaker.clone(),
            ),
            connections: Guarded::new(
                DynamoConnections::new(
                    dynamo,
                    settings.connections_table,
                    settings.connection_shards,
                ),
                dynamo_breaker.clone(),
            ),
            pusher: Guarded::new(
                ManagementApiPusher::new(clients::management_client(
                    sdk,
                    &settings.management_endpoint,
                )),
                management_breaker.clone(),
            ),
            dynamo_breaker,
            management_breaker,
        }
    }
}
