use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, SdkConfig};

/// Shared SDK configuration, loaded once per container. Endpoints follow
/// `AWS_ENDPOINT_URL` (the local emulator) when it is set, AWS otherwise.
/// Every call is bounded in time, and retried with exponential backoff and
/// jitter on throttling, 5xx and timeouts only (the SDK's standard mode).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(3)
                .with_initial_backoff(Duration::from_millis(50))
                .with_max_backoff(Duration::from_secs(1)),
        )
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(2))
                .operation_attempt_timeout(Duration::from_secs(3))
                .operation_timeout(Duration::from_secs(8))
                .build(),
        )
        .load()
        .await
}

/// The API Gateway management client always needs an explicit endpoint: the
/// WebSocket API's own URL in AWS, the emulator's `_aws/execute-api` path locally.
pub fn management_client(
    config: &SdkConfig,
    endpoint: &str,
) -> aws_sdk_apigatewaymanagement::Client {
    let conf = aws_sdk_apigatewaymanagement::config::Builder::from(config)
        .endpoint_url(endpoint)
        .build();
    aws_sdk_apigatewaymanagement::Client::from_conf(conf)
}

/// S3 addressed by path (`{endpoint}/{bucket}/{key}`) when a custom endpoint is set: the
/// emulator on 127.0.0.1 has no per-bucket host names. AWS keeps virtual-hosted style.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let custom_endpoint = std::env::var_os("AWS_ENDPOINT_URL").is_some();
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(config)
            .force_path_style(custom_endpoint)
            .build(),
    )
}
