use std::sync::Arc;

use aws_config::SdkConfig;

use super::{clients, DynamoConnections, DynamoProducts, Guarded, ManagementApiPusher};
use crate::breaker::{BreakerConfig, CircuitBreaker};
use crate::config::{self, ConfigError};

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
    pub fn from_env(sdk: &SdkConfig) -> Result<Self, ConfigError> {
        let dynamo = aws_sdk_dynamodb::Client::new(sdk);
        let breaker_config = BreakerConfig::from_env()?;
        let dynamo_breaker = Arc::new(CircuitBreaker::new("dynamodb", breaker_config.clone()));
        let management_breaker = Arc::new(CircuitBreaker::new("management-api", breaker_config));
        let endpoint = config::required("WS_MANAGEMENT_ENDPOINT")?;
        Ok(Self {
            products: Guarded::new(
                DynamoProducts::new(dynamo.clone(), config::required("PRODUCTS_TABLE")?),
                dynamo_breaker.clone(),
            ),
            connections: Guarded::new(
                DynamoConnections::new(dynamo, config::required("CONNECTIONS_TABLE")?),
                dynamo_breaker.clone(),
            ),
            pusher: Guarded::new(
                ManagementApiPusher::new(clients::management_client(sdk, &endpoint)),
                management_breaker.clone(),
            ),
            dynamo_breaker,
            management_breaker,
        })
    }
}
